//! `hissrv inspect`'s downsampling part: per rule and warm destination, the
//! windows the last checkpoint saved and the lane's event time, the warm
//! tier's backlog (aggregate batches not yet delivered), and the raw
//! batches the windows hold in the buffer (owed a checkpoint; degradable).

use super::inspect::rfc3339;
use rusqlite::Connection;
use std::fmt::Write as _;

/// One lane's row: rule, warm db and rp, watermark, sets saved, the oldest
/// set's start, undelivered aggregate batches and their points.
type LaneRow = (String, String, String, i64, i64, Option<i64>, i64, i64);

/// Appends the report; nothing when no rule ever downsampled here.
pub(super) fn report(c: &Connection, o: &mut String) -> Result<(), String> {
    let err = |e: rusqlite::Error| e.to_string();
    let mut stmt = c
        .prepare(
            "SELECT m.rule, m.db, m.rp, m.watermark,
                    (SELECT count(*) FROM downsample_sets s
                      WHERE s.rule = m.rule AND s.db = m.db AND s.rp = m.rp),
                    (SELECT min(start) FROM downsample_sets s
                      WHERE s.rule = m.rule AND s.db = m.db AND s.rp = m.rp),
                    (SELECT count(*) FROM batches b WHERE b.db = m.db AND b.rp = m.rp),
                    (SELECT coalesce(sum(points), 0) FROM batches b WHERE b.db = m.db AND b.rp = m.rp)
             FROM downsample_marks m ORDER BY m.rule, m.db, m.rp",
        )
        .map_err(err)?;
    let lanes: Vec<LaneRow> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .and_then(|rows| rows.collect())
        .map_err(err)?;
    let (owed, delivered): (i64, i64) = c
        .query_row(
            "SELECT count(*), coalesce(sum(delivered), 0) FROM downsample_duty",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(err)?;
    // A buffer an agent from before `degrade` wrote has no such table.
    let (whole, whole_points): (i64, i64) = if super::inspect::has_table(c, "downsample_whole") {
        c.query_row(
            "SELECT count(*), coalesce(sum(b.points), 0)
             FROM downsample_whole w JOIN batches b ON b.id = w.batch_id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(err)?
    } else {
        (0, 0)
    };
    if lanes.is_empty() && owed == 0 && whole == 0 {
        return Ok(());
    }
    let _ = writeln!(o, "downsampling (as of the last checkpoint):");
    for (rule, db, rp, mark, sets, oldest, batches, points) in lanes {
        let open = match oldest {
            Some(start) => format!("{sets} window sets open since {}", rfc3339(start)),
            None => "no window open".into(),
        };
        let _ = writeln!(
            o,
            "  rule {rule} -> {db}/{rp}: {open}; event time at {}; {points} aggregate points in {batches} batches not yet delivered",
            rfc3339(mark)
        );
    }
    let _ = writeln!(
        o,
        "  raw batches held for the windows: {owed} owed a checkpoint ({delivered} of them delivered already); {whole} batches ({whole_points} points) the warm tier holds whole (buffer.when_full: degrade may delete them)"
    );
    Ok(())
}
