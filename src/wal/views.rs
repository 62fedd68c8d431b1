//! The buffer's read-only SQL views, for operators with the `sqlite3` CLI
//! (README, "Looking inside the buffer"). The agent makes them anew each
//! time it opens the buffer (an older agent's definitions replaced); they
//! are part of the buffer's schema, so they live with it. `hissrv inspect`
//! reads the tables directly.
//!
//! - `backlog_summary`: per destination, what waits for the upstream (not
//!   the delivered batches held for the downsampling windows' checkpoint);
//! - `dead_letter_lines`: the lines set aside, as text;
//! - `downsample_windows`: per rule and warm destination, the window sets
//!   the last checkpoint saved and the lane's watermark (event time).

use crate::wal::NOT_HELD;

/// Each view's name and its `CREATE VIEW` statement.
pub fn views() -> Vec<(&'static str, String)> {
    vec![
        (
            "backlog_summary",
            format!(
                "CREATE VIEW backlog_summary AS
  SELECT db, rp, count(*) AS batches, sum(points) AS points, sum(bytes) AS bytes_on_disk,
         min(first_ts) AS oldest_ts_ns, max(last_ts) AS newest_ts_ns,
         datetime(min(created_ms) / 1000, 'unixepoch') AS oldest_committed_utc,
         CAST(strftime('%s', 'now') AS INTEGER) - min(created_ms) / 1000 AS oldest_unsent_age_s,
         max(attempts) AS max_attempts,
         (SELECT count(*) FROM dead_letters d WHERE d.db = b.db AND d.rp = b.rp) AS dead_letters
  FROM batches b WHERE {NOT_HELD} GROUP BY db, rp"
            ),
        ),
        (
            "dead_letter_lines",
            "CREATE VIEW dead_letter_lines AS
  SELECT id, batch_id, db, rp, datetime(failed_ms / 1000, 'unixepoch') AS failed_utc,
         status, reason, CAST(line AS TEXT) AS line
  FROM dead_letters"
                .into(),
        ),
        (
            "downsample_windows",
            "CREATE VIEW downsample_windows AS
  SELECT s.rule, s.db, s.rp, count(*) AS window_sets, sum(length(s.state)) AS state_bytes,
         datetime(min(s.start) / 1000000000, 'unixepoch') AS oldest_window_utc,
         datetime(max(s.start) / 1000000000, 'unixepoch') AS newest_window_utc,
         datetime(m.watermark / 1000000000, 'unixepoch') AS watermark_utc
  FROM downsample_sets s
  LEFT JOIN downsample_marks m ON m.rule = s.rule AND m.db = s.db AND m.rp = s.rp
  GROUP BY s.rule, s.db, s.rp"
                .into(),
        ),
    ]
}

/// Makes each view as `views` says, writing only the ones that differ (an
/// older agent's): an open of a buffer whose views are current writes
/// nothing, so it still opens on a full disk (found in review). A view
/// that cannot be written is logged, never a reason not to open.
pub fn ensure(conn: &rusqlite::Connection) {
    let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for (name, sql) in views() {
        let have: Option<String> = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'view' AND name = ?1",
                [name],
                |r| r.get(0),
            )
            .ok();
        if have.is_some_and(|have| squeeze(&have) == squeeze(&sql)) {
            continue;
        }
        let made = conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; DROP VIEW IF EXISTS {name}; {sql}; COMMIT;"
        ));
        if let Err(e) = made {
            let _ = conn.execute_batch("ROLLBACK");
            log::warn!("cannot make the view {name} in the buffer: {e}");
        }
    }
}
