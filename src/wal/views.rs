//! The buffer's read-only SQL views, for operators with the `sqlite3` CLI
//! (README, "Looking inside the buffer"). The agent creates them when it
//! opens the buffer; they are part of the buffer's schema, so they live with
//! it. `hissrv inspect` reads the tables directly.

/// Views for the `sqlite3` CLI, created by the agent when it opens the buffer.
pub const VIEWS: &str = "
CREATE VIEW IF NOT EXISTS backlog_summary AS
  SELECT db, rp, count(*) AS batches, sum(points) AS points, sum(bytes) AS bytes_on_disk,
         min(first_ts) AS oldest_ts_ns, max(last_ts) AS newest_ts_ns,
         datetime(min(created_ms) / 1000, 'unixepoch') AS oldest_committed_utc,
         CAST(strftime('%s', 'now') AS INTEGER) - min(created_ms) / 1000 AS oldest_unsent_age_s,
         max(attempts) AS max_attempts,
         (SELECT count(*) FROM dead_letters d WHERE d.db = b.db AND d.rp = b.rp) AS dead_letters
  FROM batches b GROUP BY db, rp;
CREATE VIEW IF NOT EXISTS dead_letter_lines AS
  SELECT id, batch_id, db, rp, datetime(failed_ms / 1000, 'unixepoch') AS failed_utc,
         status, reason, CAST(line AS TEXT) AS line
  FROM dead_letters;
";
