//! `hissrv inspect`'s cold archive part: per archive target and
//! destination, what the buffer holds for it (batches, points, bytes, the
//! oldest commit's wait), how much of that the upstream has already taken
//! (held only for the archive), and the runs recorded but not finished (a
//! crash came between: the agent writes them again first).

use rusqlite::Connection;
use std::fmt::Write;

/// Appends the archive's report to `o` (nothing owed: one line saying so).
pub(super) fn report(c: &Connection, now_ms: i64, o: &mut String) -> Result<(), String> {
    let mut stmt = c
        .prepare(
            "SELECT a.target, b.db, b.rp, count(*), sum(b.points), sum(b.bytes),
                    min(b.created_ms), sum(a.delivered)
             FROM archive_duty a JOIN batches b ON b.id = a.batch_id
             GROUP BY a.target, b.db, b.rp ORDER BY a.target, b.db, b.rp",
        )
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })
        .map_err(|e| e.to_string())?;
    let mut any = false;
    for row in rows {
        let (target, db, rp, batches, points, bytes, oldest, delivered) =
            row.map_err(|e| e.to_string())?;
        if !any {
            let _ = writeln!(o, "cold archive (owed, not yet confirmed):");
            any = true;
        }
        let dest = if rp.is_empty() {
            db
        } else {
            format!("{db}/{rp}")
        };
        let _ = writeln!(
            o,
            "  {target} {dest}: {points} points in {batches} batches, {bytes} bytes; {delivered} of the batches delivered upstream already (held for the archive); oldest committed {} s ago",
            (now_ms - oldest).max(0) / 1000
        );
    }
    if !any {
        let _ = writeln!(o, "cold archive: nothing owed");
    }
    let open: i64 = c
        .query_row("SELECT count(*) FROM archive_runs", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if open > 0 {
        let _ = writeln!(
            o,
            "  {open} archive runs recorded and not finished (written again first at the next start)"
        );
    }
    Ok(())
}
