//! The cold archive's custody of raw batches (`lifecycle.rules[].cold_storage`):
//! a batch of a rule that archives leaves the buffer only once the upstream
//! took it **and** its archive object is confirmed.
//!
//! - A batch is committed with its **archive duty** (`owe`), in the commit's
//!   transaction: a point acknowledged is a point the archive will get.
//! - Delivered before it is archived, it is marked `delivered` and stays,
//!   unseen by the forwarder (`NOT_HELD`), as with the windows' custody.
//! - The archiver takes a **run** (`start_run`): the oldest duties of one
//!   target and destination, whole commits, up to a byte cap, recorded
//!   before any object is written. After a crash the same run is written
//!   again: the same batches, so the same objects under the same names.
//! - `finish_run`, in one transaction, discharges the run's duties and
//!   deletes the batches among them already delivered that the windows do
//!   not hold (`downsample_duty`); the forwarder deletes the others when it
//!   delivers them (`finish`).
//! - Archiving does not wait for delivery (an uplink down for days must not
//!   keep points off the USB disk beside the gateway), nor delivery for the
//!   archive: each releases its hold on its own.
//! - `degrade` never takes a batch that still owes its archive.
//!
//! ```text
//! archive_duty(batch_id INTEGER PRIMARY KEY,  -- a raw batch owed to an archive
//!              target TEXT NOT NULL,           -- the rule's cold_storage URL
//!              seq INTEGER NOT NULL,           -- its commit (commit_seq): names
//!                                              --   objects, never handed out twice
//!              delivered INTEGER NOT NULL DEFAULT 0,  -- the upstream took it
//!              run INTEGER)                    -- the run writing it (archive_runs.id)
//! INDEX archive_duty_held ON archive_duty(batch_id) WHERE delivered = 1
//! INDEX archive_duty_queue ON archive_duty(target, seq)
//! INDEX archive_duty_run ON archive_duty(run) WHERE run IS NOT NULL
//! archive_runs(id INTEGER PRIMARY KEY,         -- a run recorded before its objects
//!              target TEXT, db TEXT, rp TEXT,
//!              first_seq INTEGER, last_seq INTEGER,
//!              period_s INTEGER)               -- its objects' period: written again
//!                                              --   the same after a config change
//! archive_marks(target TEXT PRIMARY KEY)      -- directory targets written to: their
//!                                              --   marker file must be there (a disk
//!                                              --   unmounted is not written under)
//! archive_meta(buffer_id TEXT NOT NULL)        -- random, made once: in object names,
//!                                              --   so a new buffer's seq 1 never
//!                                              --   names an old buffer's object
//! TRIGGER archive_duty_gone: a deleted batch (an undecodable one moved to
//!              dead letters) takes its duty with it
//! ```

use super::{Wal, WalError, codec};
use crate::route::dest::Destination;
use rusqlite::{OptionalExtension, params};

pub(super) const ARCHIVE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS archive_duty (
  batch_id INTEGER PRIMARY KEY,
  target TEXT NOT NULL,
  seq INTEGER NOT NULL,
  delivered INTEGER NOT NULL DEFAULT 0,
  run INTEGER
);
CREATE INDEX IF NOT EXISTS archive_duty_held ON archive_duty(batch_id) WHERE delivered = 1;
CREATE INDEX IF NOT EXISTS archive_duty_queue ON archive_duty(target, seq);
CREATE INDEX IF NOT EXISTS archive_duty_run ON archive_duty(run) WHERE run IS NOT NULL;
CREATE TABLE IF NOT EXISTS archive_runs (
  id INTEGER PRIMARY KEY,
  target TEXT NOT NULL, db TEXT NOT NULL, rp TEXT NOT NULL,
  first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
  period_s INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS archive_marks (target TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS archive_meta (buffer_id TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS archive_duty_gone AFTER DELETE ON batches
BEGIN DELETE FROM archive_duty WHERE batch_id = old.id; END;
";

/// Inserts the archive duties of a commit's batches (`ids`, in order;
/// `targets[i]`: the archive batch `i` is owed to) in its transaction.
pub(super) fn owe(
    tx: &rusqlite::Transaction,
    ids: &[i64],
    targets: &[Option<String>],
    seq: i64,
) -> Result<(), WalError> {
    if targets.iter().all(Option::is_none) {
        return Ok(());
    }
    let mut owe =
        tx.prepare_cached("INSERT INTO archive_duty (batch_id, target, seq) VALUES (?1, ?2, ?3)")?;
    for (id, target) in ids.iter().zip(targets) {
        if let Some(t) = target {
            owe.execute(params![*id, t, seq])?;
        }
    }
    Ok(())
}

/// One batch of a run, as its objects need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunBatch {
    pub id: i64,
    pub points: i64,
    pub first_ts: i64,
    pub last_ts: i64,
}

/// A run: the batches one archive pass writes, recorded before it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRun {
    pub id: i64,
    pub target: String,
    pub dest: Destination,
    pub first_seq: i64,
    pub last_seq: i64,
    /// Seconds of point time an object of it spans (hour or day).
    pub period_s: u64,
    pub batches: Vec<RunBatch>,
}

/// What waits for one target and destination (not in a run yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveQueue {
    pub target: String,
    pub dest: Destination,
    pub batches: u64,
    pub points: u64,
    /// Stored bytes.
    pub bytes: u64,
    /// The commit time of the oldest and the newest (ms, record time).
    pub oldest_ms: i64,
    pub newest_ms: i64,
    /// The newest point's timestamp (ns).
    pub newest_ts: i64,
}

impl Wal {
    /// What waits for each archive (in a run or not), per target and
    /// destination, by commit order of its oldest batch.
    pub fn archive_queues(&self) -> Result<Vec<ArchiveQueue>, WalError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.target, b.db, b.rp, count(*), sum(b.points), sum(b.bytes), min(b.created_ms),
                    max(b.created_ms), max(b.last_ts)
             FROM archive_duty a JOIN batches b ON b.id = a.batch_id
             GROUP BY a.target, b.db, b.rp ORDER BY min(a.seq)",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ArchiveQueue {
                target: r.get(0)?,
                dest: Destination {
                    db: r.get(1)?,
                    rp: r.get(2)?,
                },
                batches: r.get::<_, i64>(3)?.max(0) as u64,
                points: r.get::<_, i64>(4)?.max(0) as u64,
                bytes: r.get::<_, i64>(5)?.max(0) as u64,
                oldest_ms: r.get(6)?,
                newest_ms: r.get(7)?,
                newest_ts: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Takes the oldest duties of `target` and `dest` not in a run, whole
    /// commits, until their stored bytes reach `max_bytes` (one commit at
    /// least), and records them as a run, in one transaction. `None`:
    /// nothing waits.
    pub fn start_run(
        &mut self,
        target: &str,
        dest: &Destination,
        max_bytes: u64,
        period_s: u64,
    ) -> Result<Option<ArchiveRun>, WalError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut batches = Vec::new();
        let (mut first_seq, mut last_seq) = (None, 0i64);
        {
            let mut pick = tx.prepare_cached(
                "SELECT a.batch_id, a.seq, b.points, b.first_ts, b.last_ts, b.bytes
                 FROM archive_duty a JOIN batches b ON b.id = a.batch_id
                 WHERE a.target = ?1 AND a.run IS NULL AND b.db = ?2 AND b.rp = ?3
                 ORDER BY a.seq, a.batch_id",
            )?;
            let mut rows = pick.query(params![target, dest.db, dest.rp])?;
            let mut bytes = 0u64;
            while let Some(r) = rows.next()? {
                let seq: i64 = r.get(1)?;
                // Whole commits: a run's seq range is its own.
                if bytes >= max_bytes && seq != last_seq {
                    break;
                }
                first_seq.get_or_insert(seq);
                last_seq = seq;
                bytes = bytes.saturating_add(r.get::<_, i64>(5)?.max(0) as u64);
                batches.push(RunBatch {
                    id: r.get(0)?,
                    points: r.get(2)?,
                    first_ts: r.get(3)?,
                    last_ts: r.get(4)?,
                });
            }
        }
        let Some(first_seq) = first_seq else {
            return Ok(None);
        };
        tx.execute(
            "INSERT INTO archive_runs (target, db, rp, first_seq, last_seq, period_s)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                target,
                dest.db,
                dest.rp,
                first_seq,
                last_seq,
                i64::try_from(period_s).unwrap_or(i64::MAX)
            ],
        )?;
        let id = tx.last_insert_rowid();
        {
            let mut take =
                tx.prepare_cached("UPDATE archive_duty SET run = ?2 WHERE batch_id = ?1")?;
            for b in &batches {
                take.execute([b.id, id])?;
            }
        }
        tx.commit()?;
        Ok(Some(ArchiveRun {
            id,
            target: target.to_string(),
            dest: dest.clone(),
            first_seq,
            last_seq,
            period_s,
            batches,
        }))
    }

    /// The runs recorded and not finished (a crash came between), oldest
    /// first: they are written again before any new one.
    pub fn open_runs(&self) -> Result<Vec<ArchiveRun>, WalError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, target, db, rp, first_seq, last_seq, period_s FROM archive_runs ORDER BY id",
        )?;
        let runs: Vec<ArchiveRun> = stmt
            .query_map([], |r| {
                Ok(ArchiveRun {
                    id: r.get(0)?,
                    target: r.get(1)?,
                    dest: Destination {
                        db: r.get(2)?,
                        rp: r.get(3)?,
                    },
                    first_seq: r.get(4)?,
                    last_seq: r.get(5)?,
                    period_s: r.get::<_, i64>(6)?.max(1) as u64,
                    batches: Vec::new(),
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut batches = self.conn.prepare(
            "SELECT b.id, b.points, b.first_ts, b.last_ts
             FROM archive_duty a JOIN batches b ON b.id = a.batch_id
             WHERE a.run = ?1 ORDER BY a.seq, a.batch_id",
        )?;
        let mut out = Vec::with_capacity(runs.len());
        for mut run in runs {
            run.batches = batches
                .query_map([run.id], |r| {
                    Ok(RunBatch {
                        id: r.get(0)?,
                        points: r.get(1)?,
                        first_ts: r.get(2)?,
                        last_ts: r.get(3)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            out.push(run);
        }
        Ok(out)
    }

    /// A run's batch `id`, decoded (normalised lines). `Ok(None)`: it is
    /// gone or no longer decodes (the forwarder moves such a batch to dead
    /// letters, raw).
    pub fn run_batch_lines(&self, id: i64) -> Result<Option<Vec<u8>>, WalError> {
        let row: Option<(i64, Vec<u8>)> = self
            .conn
            .prepare_cached("SELECT format, payload FROM batches WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(row.and_then(|(format, blob)| codec::decode(format, &blob).ok()))
    }

    /// The run's objects are confirmed: discharges its duties and deletes
    /// its batches the upstream took already and no window holds, in one
    /// transaction. Returns the batches deleted.
    pub fn finish_run(&mut self, run: i64) -> Result<u64, WalError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let deleted = tx.execute(
            "DELETE FROM batches WHERE id IN
               (SELECT batch_id FROM archive_duty WHERE run = ?1 AND delivered = 1)
             AND NOT EXISTS (SELECT 1 FROM downsample_duty d WHERE d.batch_id = batches.id)",
            [run],
        )?;
        tx.execute("DELETE FROM archive_duty WHERE run = ?1", [run])?;
        tx.execute("DELETE FROM archive_runs WHERE id = ?1", [run])?;
        tx.commit()?;
        Ok(deleted as u64)
    }

    /// Drops the duties and runs of archives no rule names any more
    /// (`targets`: the configured ones, each in its canonical spelling;
    /// `canonical` spells a stored one so), deleting the batches they alone
    /// held; returns the duties dropped. The operator took the archive
    /// away: what was buffered for it is delivered, not archived. A stored
    /// target spelled otherwise than its configured one (`file:///x` for
    /// `file:///x/`) is the same archive: respelled, kept (review).
    pub fn forget_archives_except(
        &mut self,
        targets: &[String],
        canonical: impl Fn(&str) -> Option<String>,
    ) -> Result<u64, WalError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let stored: Vec<String> = {
            let mut stmt = tx
                .prepare("SELECT target FROM archive_duty UNION SELECT target FROM archive_runs")?;
            let all = stmt.query_map([], |r| r.get::<_, String>(0))?;
            all.collect::<Result<_, _>>()?
        };
        let mut gone = Vec::new();
        for t in stored {
            match canonical(&t).filter(|c| targets.contains(c)) {
                Some(c) if c == t => {}
                Some(c) => {
                    tx.execute(
                        "UPDATE archive_duty SET target = ?2 WHERE target = ?1",
                        [&t, &c],
                    )?;
                    tx.execute(
                        "UPDATE archive_runs SET target = ?2 WHERE target = ?1",
                        [&t, &c],
                    )?;
                }
                None => gone.push(t),
            }
        }
        let mut n = 0;
        for t in &gone {
            n += tx.query_row(
                "SELECT count(*) FROM archive_duty WHERE target = ?1",
                [t],
                |r| r.get::<_, i64>(0),
            )?;
            tx.execute(
                "DELETE FROM batches WHERE id IN
                   (SELECT batch_id FROM archive_duty WHERE target = ?1 AND delivered = 1)
                 AND NOT EXISTS (SELECT 1 FROM downsample_duty d WHERE d.batch_id = batches.id)",
                [t],
            )?;
            tx.execute("DELETE FROM archive_duty WHERE target = ?1", [t])?;
            tx.execute("DELETE FROM archive_runs WHERE target = ?1", [t])?;
        }
        tx.commit()?;
        Ok(n.max(0) as u64)
    }

    /// Whether the directory target `target` was written to before (its
    /// marker file must then be there).
    pub fn archive_marked(&self, target: &str) -> Result<bool, WalError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM archive_marks WHERE target = ?1",
                [target],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Notes that `target`'s marker file was written.
    pub fn mark_archive(&mut self, target: &str) -> Result<(), WalError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO archive_marks (target) VALUES (?1)",
            [target],
        )?;
        Ok(())
    }

    /// This buffer's id in object names, made on first use.
    pub fn buffer_id(&mut self) -> Result<String, WalError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let known: Option<String> = tx
            .query_row("SELECT buffer_id FROM archive_meta", [], |r| r.get(0))
            .optional()?;
        let id = match known {
            Some(id) => id,
            None => {
                use std::hash::{BuildHasher, Hasher};
                // A random-keyed hash of the time: 64 random bits, no crate.
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u128(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos()),
                );
                let id = format!("{:016x}", h.finish());
                tx.execute("INSERT INTO archive_meta (buffer_id) VALUES (?1)", [&id])?;
                id
            }
        };
        tx.commit()?;
        Ok(id)
    }
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
