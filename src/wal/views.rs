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

/// The views' SQL, run by the agent when it opens the buffer.
pub fn views() -> String {
    format!(
        "
DROP VIEW IF EXISTS backlog_summary;
CREATE VIEW backlog_summary AS
  SELECT db, rp, count(*) AS batches, sum(points) AS points, sum(bytes) AS bytes_on_disk,
         min(first_ts) AS oldest_ts_ns, max(last_ts) AS newest_ts_ns,
         datetime(min(created_ms) / 1000, 'unixepoch') AS oldest_committed_utc,
         CAST(strftime('%s', 'now') AS INTEGER) - min(created_ms) / 1000 AS oldest_unsent_age_s,
         max(attempts) AS max_attempts,
         (SELECT count(*) FROM dead_letters d WHERE d.db = b.db AND d.rp = b.rp) AS dead_letters
  FROM batches b WHERE {NOT_HELD} GROUP BY db, rp;
DROP VIEW IF EXISTS dead_letter_lines;
CREATE VIEW dead_letter_lines AS
  SELECT id, batch_id, db, rp, datetime(failed_ms / 1000, 'unixepoch') AS failed_utc,
         status, reason, CAST(line AS TEXT) AS line
  FROM dead_letters;
DROP VIEW IF EXISTS downsample_windows;
CREATE VIEW downsample_windows AS
  SELECT s.rule, s.db, s.rp, count(*) AS window_sets, sum(length(s.state)) AS state_bytes,
         datetime(min(s.start) / 1000000000, 'unixepoch') AS oldest_window_utc,
         datetime(max(s.start) / 1000000000, 'unixepoch') AS newest_window_utc,
         datetime(m.watermark / 1000000000, 'unixepoch') AS watermark_utc
  FROM downsample_sets s
  LEFT JOIN downsample_marks m ON m.rule = s.rule AND m.db = s.db AND m.rp = s.rp
  GROUP BY s.rule, s.db, s.rp;
"
    )
}
