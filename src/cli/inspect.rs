//! Looking into a buffer file on the gateway: `hissrv inspect` (what is held,
//! per destination) and `hissrv export` (the points, decoded to line protocol,
//! ready for `influx -import` or curl).
//!
//! Both open the file read-only; WAL mode lets them run beside a live agent
//! without blocking it. The same answers are in two SQLite views the agent
//! creates, for operators with only the `sqlite3` CLI:
//! `select * from backlog_summary` and `select * from dead_letter_lines`.

use crate::wal::codec;
use rusqlite::{Connection, OpenFlags, params};
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

fn open(path: &Path) -> Result<Connection, String> {
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let app: i64 = c
        .query_row(
            "SELECT application_id FROM pragma_application_id",
            [],
            |r| r.get(0),
        )
        .map_err(|e| format!("{} is not a hissrv buffer: {e}", path.display()))?;
    if app != 0x4849_5353 {
        return Err(format!("{} is not a hissrv buffer", path.display()));
    }
    Ok(c)
}

use crate::clock::days_from_civil;
pub use crate::clock::rfc3339;

/// `--since` / `--until`: RFC 3339 (`2026-11-25T10:00:00Z`, a `+hh:mm` offset,
/// fractions) or integer nanoseconds.
pub fn parse_time(t: &str) -> Result<i64, String> {
    if let Ok(ns) = t.parse::<i64>() {
        return Ok(ns);
    }
    let bad = || format!("{t:?} is neither RFC 3339 (2026-11-25T10:00:00Z) nor nanoseconds");
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        t.get(r).and_then(|s| s.parse().ok()).ok_or_else(bad)
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)? as u32, num(8..10)? as u32);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut frac_ns = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &t[start..i.min(start + 9)];
        frac_ns = format!("{digits:0<9}").parse().map_err(|_| bad())?;
    }
    let offset_s = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() => {
            let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset_s;
    secs.checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(frac_ns))
        .ok_or_else(bad)
}

/// The `hissrv inspect` report.
pub fn inspect(path: &Path, now_ms: i64) -> Result<String, String> {
    let c = open(path)?;
    let mut o = String::new();
    let disk = crate::wal::DiskUse::of(&crate::wal::resolved_path(path));
    let _ = writeln!(
        o,
        "buffer {} ({} bytes on disk: database {}, WAL {}, shm {}; the quota counts them all)",
        path.display(),
        disk.total(),
        disk.database,
        disk.wal,
        disk.shm
    );
    let mut stmt = c
        .prepare(&format!(
            "SELECT db, rp, count(*), sum(points), sum(bytes), min(first_ts), max(last_ts),
                    min(created_ms),
                    (SELECT count(*) FROM dead_letters d WHERE d.db = b.db AND d.rp = b.rp)
             FROM batches b WHERE {} GROUP BY db, rp ORDER BY db, rp",
            undelivered(&c)
        ))
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, i64>(8)?,
            ))
        })
        .map_err(|e| e.to_string())?;
    let mut any = false;
    for row in rows {
        let (db, rp, batches, points, bytes, first, last, created, dead) =
            row.map_err(|e| e.to_string())?;
        any = true;
        let dest = if rp.is_empty() {
            db
        } else {
            format!("{db}/{rp}")
        };
        // Stamps are the agent's record time (`clock::RecordClock`); this
        // process has only its wall clock to compare with.
        let waited = if created <= now_ms {
            format!("{} s", (now_ms - created) / 1000)
        } else {
            "? s (committed ahead of this machine's clock: it was set back since)".into()
        };
        let _ = writeln!(
            o,
            "{dest}: {points} points in {batches} batches, {bytes} bytes ({:.2} bytes/point); points from {} to {}; oldest unsent waited {waited}; {dead} dead letters",
            bytes as f64 / points.max(1) as f64,
            rfc3339(first),
            rfc3339(last),
        );
    }
    if !any {
        let _ = writeln!(o, "no undelivered points");
    }
    let dead: i64 = c
        .query_row("SELECT count(*) FROM dead_letters", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    let _ = writeln!(
        o,
        "dead letters: {dead} (export them with: hissrv export --dead-letters)"
    );
    if has_custody(&c) {
        super::inspect_warm::report(&c, &mut o)?;
    }
    if has_table(&c, "archive_duty") && has_table(&c, "archive_runs") {
        super::inspect_archive::report(&c, now_ms, &mut o)?;
    }
    Ok(o)
}

/// The buffer has the downsampling tables (an older agent's may not).
pub(super) fn has_custody(c: &Connection) -> bool {
    ["downsample_duty", "downsample_sets", "downsample_marks"]
        .iter()
        .all(|t| has_table(c, t))
}

pub(super) fn has_table(c: &Connection, name: &str) -> bool {
    c.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .is_ok_and(|n| n > 0)
}

/// The condition of a batch not yet delivered: not one delivered and held
/// for the downsampling windows' checkpoint (`wal::NOT_HELD`).
fn undelivered(c: &Connection) -> &'static str {
    match (has_custody(c), has_table(c, "archive_duty")) {
        (true, true) => crate::wal::NOT_HELD,
        // A buffer of an agent from before the cold archive.
        (true, false) => "id NOT IN (SELECT batch_id FROM downsample_duty WHERE delivered = 1)",
        _ => "1",
    }
}

/// What `hissrv export` writes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ExportFilter {
    /// `db` or `db/rp`.
    pub destination: Option<String>,
    pub since_ns: Option<i64>,
    pub until_ns: Option<i64>,
    pub dead_letters: bool,
}

impl ExportFilter {
    pub(crate) fn dest_matches(&self, db: &str, rp: &str) -> bool {
        match &self.destination {
            None => true,
            Some(d) => match d.split_once('/') {
                Some((fdb, frp)) => fdb == db && frp == rp,
                None => d == db,
            },
        }
    }

    pub(crate) fn time_matches(&self, line: &[u8]) -> bool {
        let ts = line.iter().rposition(|&b| b == b' ').and_then(|i| {
            std::str::from_utf8(&line[i + 1..])
                .ok()?
                .parse::<i64>()
                .ok()
        });
        match ts {
            Some(ts) => {
                self.since_ns.is_none_or(|s| ts >= s) && self.until_ns.is_none_or(|u| ts < u)
            }
            None => true,
        }
    }
}

/// Writes the buffer's points (or dead letters) as line protocol; returns
/// how many lines were written.
/// Batches read per statement by `export`: each statement is a short read
/// transaction, so the agent's checkpoints can reset the WAL while a slow
/// consumer (`hissrv export | less`) holds the pipe.
const EXPORT_CHUNK_BATCHES: i64 = 64;

/// What `export` wrote: lines, and the batches it could not decode (id and
/// why), which it skipped.
#[derive(Debug, Default)]
pub struct Exported {
    pub lines: u64,
    pub damaged: Vec<(i64, String)>,
}

pub fn export(path: &Path, f: &ExportFilter, out: &mut impl Write) -> Result<Exported, String> {
    let c = open(path)?;
    let mut n = 0;
    let io = |e: std::io::Error| format!("cannot write: {e}");
    if f.dead_letters {
        // Chunks too (see EXPORT_CHUNK_BATCHES): a stalled reader of our
        // output holds no snapshot of the buffer.
        let mut stmt = c
            .prepare("SELECT id, db, rp, status, line FROM dead_letters WHERE id > ?1 ORDER BY id LIMIT ?2")
            .map_err(|e| e.to_string())?;
        let mut after = 0i64;
        loop {
            let chunk: Vec<(i64, String, String, i64, Vec<u8>)> = stmt
                .query_map(params![after, EXPORT_CHUNK_BATCHES], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .and_then(|rows| rows.collect())
                .map_err(|e| e.to_string())?;
            let Some(last) = chunk.last() else { break };
            after = last.0;
            for (_, db, rp, status, line) in chunk {
                // Status 0: a whole undecodable batch, kept raw; not line protocol.
                if status == crate::wal::STATUS_UNDECODABLE as i64
                    || !f.dest_matches(&db, &rp)
                    || !f.time_matches(&line)
                {
                    continue;
                }
                out.write_all(&line).map_err(io)?;
                out.write_all(b"\n").map_err(io)?;
                n += 1;
            }
        }
        return Ok(Exported {
            lines: n,
            damaged: Vec::new(),
        });
    }
    let mut damaged = Vec::new();
    let mut stmt = c
        .prepare(&format!(
            "SELECT id, db, rp, format, payload FROM batches WHERE id > ?3 AND (?1 IS NULL OR last_ts >= ?1) AND (?2 IS NULL OR first_ts < ?2) AND {} ORDER BY id LIMIT ?4",
            undelivered(&c)
        ))
        .map_err(|e| e.to_string())?;
    // Chunks of batches, each read in its own statement (see
    // EXPORT_CHUNK_BATCHES), then written out.
    let mut after = 0i64;
    loop {
        let chunk: Vec<(i64, String, String, i64, Vec<u8>)> = stmt
            .query_map(
                params![f.since_ns, f.until_ns, after, EXPORT_CHUNK_BATCHES],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .and_then(|rows| rows.collect())
            .map_err(|e| e.to_string())?;
        let Some(last) = chunk.last() else { break };
        after = last.0;
        for (id, db, rp, format, blob) in chunk {
            if !f.dest_matches(&db, &rp) {
                continue;
            }
            // A damaged batch is reported and skipped, like the forwarder
            // quarantines it: the batches after it are still exported.
            let lp = match codec::decode(format, &blob) {
                Ok(lp) => lp,
                Err(e) => {
                    damaged.push((id, e.to_string()));
                    continue;
                }
            };
            for line in crate::lineproto::lines(&lp) {
                if f.time_matches(line) {
                    out.write_all(line).map_err(io)?;
                    out.write_all(b"\n").map_err(io)?;
                    n += 1;
                }
            }
        }
    }
    Ok(Exported { lines: n, damaged })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_and_parse_as_rfc_3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z"),
            Ok(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_time("2023-11-14T23:13:20.5+01:00"),
            Ok(1_700_000_000_500_000_000)
        );
        assert_eq!(parse_time("-5"), Ok(-5));
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2023-13-01T00:00:00Z").is_err());
    }
}
