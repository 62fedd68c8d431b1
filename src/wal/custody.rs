//! The downsampling windows' custody of raw batches (durability plan,
//! `downsample/mod.rs`). The windows live in memory, fed by each commit;
//! their durable form is the last checkpoint plus the raw batches committed
//! after it, replayed in commit order after a restart. So a batch the
//! windows counted keeps a **duty** until a checkpoint covers it:
//!
//! - it is committed with its duty (`commit_with_duty`), in the same
//!   transaction: a batch acknowledged is a batch the replay will see;
//! - delivered before that, it is marked `delivered` and stays: the
//!   forwarder no longer sees it (every backlog read leaves it out), the
//!   replay still does;
//! - a checkpoint (`checkpoint_windows`), in one transaction, writes the
//!   window sets that changed, the watermarks and the aggregate lines
//!   emitted (as batches of the warm destinations, without a duty: the
//!   windows never count their own output), and discharges every duty up
//!   to the commit it covers, deleting the batches already delivered.
//!
//! A crash anywhere loses nothing and counts nothing twice: before the
//! checkpoint's commit, the replay rebuilds the same windows from the same
//! batches (and emits the same lines again at the next checkpoint); after
//! it, the batches it covered are no longer replayed.
//!
//! ```text
//! downsample_duty(batch_id INTEGER PRIMARY KEY,  -- a raw batch the windows counted
//!                 seq INTEGER NOT NULL,          -- its commit (commit_seq): replay order
//!                 delivered INTEGER NOT NULL DEFAULT 0)  -- the upstream took it
//! downsample_sets(rule TEXT, db TEXT, rp TEXT,   -- lane: rule identity, warm destination
//!                 start INTEGER,                 -- window start, ns
//!                 state BLOB,                    -- downsample::state's bytes, packed
//!                                                -- (LZ4 chunks: packed.rs; the first release's plain)
//!                 PRIMARY KEY (rule, db, rp, start)) WITHOUT ROWID
//! downsample_whole(batch_id INTEGER PRIMARY KEY) -- a rule took every line
//!                 -- of this raw batch: once no duty is left, its points
//!                 -- live on in the windows and their aggregates, and
//!                 -- `buffer.when_full: degrade` may delete it undelivered
//!                 -- (`degrade.rs`); a trigger drops the row with the batch
//! downsample_keys(id INTEGER PRIMARY KEY,        -- one checkpoint's
//!                 keys BLOB)                     -- new keys of the lines
//!                 -- counted lately (`downsample::line_key`), 8 bytes
//!                 -- each, little-endian; the newest RECENT_LINES kept
//! downsample_recent(id INTEGER PRIMARY KEY,      -- the same, keyed as the
//!                 keys BLOB)                     -- first release did
//!                 -- (`line_key::legacy`): read at start, emptied by the
//!                 -- first checkpoint after they are no longer looked for
//! downsample_meta(secret INTEGER NOT NULL)      -- random (SQLite's
//!                 -- `random()`, from the OS), made once: keys every line
//!                 -- key, so a producer cannot aim a collision (review);
//!                 -- made anew when its row is gone, `downsample_keys`
//!                 -- emptied first (the keys of another secret)
//! downsample_dests(db TEXT, rp TEXT,           -- every warm destination
//!                 retention_s INTEGER,           -- emitted to (warm_days;
//!                 PRIMARY KEY (db, rp)) WITHOUT ROWID  -- NULL: for ever), kept
//!                 -- when its rule goes: its aggregates still buffered are
//!                 -- never taken for a hot tier's raw points (review)
//! downsample_marks(rule TEXT, db TEXT, rp TEXT, watermark INTEGER,
//!                 PRIMARY KEY (rule, db, rp)) WITHOUT ROWID
//! ```
//! Dead letters: a batch the forwarder splits or refuses goes through
//! `finish` like any (its duty kept); an undecodable one loses its duty with
//! its row (the replay could not read it either).

use super::{NewBatch, Wal, WalError, codec};
use crate::route::dest::Destination;
use rusqlite::params;

pub(super) const CUSTODY_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS downsample_duty (
  batch_id INTEGER PRIMARY KEY,
  seq INTEGER NOT NULL,
  delivered INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS downsample_sets (
  rule TEXT NOT NULL, db TEXT NOT NULL, rp TEXT NOT NULL, start INTEGER NOT NULL,
  state BLOB NOT NULL,
  PRIMARY KEY (rule, db, rp, start)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS downsample_whole (
  batch_id INTEGER PRIMARY KEY
);
CREATE TRIGGER IF NOT EXISTS downsample_whole_gone AFTER DELETE ON batches
BEGIN DELETE FROM downsample_whole WHERE batch_id = old.id; END;
CREATE TABLE IF NOT EXISTS downsample_recent (
  id INTEGER PRIMARY KEY,
  keys BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS downsample_keys (
  id INTEGER PRIMARY KEY,
  keys BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS downsample_meta (secret INTEGER NOT NULL);
-- A secret made anew (its row gone) takes the keys the old one keyed:
-- they match no key of the new one, and would be saved beside its keys
-- (one transaction with the insert: `Wal::open`).
DELETE FROM downsample_keys WHERE NOT EXISTS (SELECT 1 FROM downsample_meta);
INSERT INTO downsample_meta (secret)
  SELECT random() WHERE NOT EXISTS (SELECT 1 FROM downsample_meta);
CREATE TABLE IF NOT EXISTS downsample_dests (
  db TEXT NOT NULL, rp TEXT NOT NULL, retention_s INTEGER,
  PRIMARY KEY (db, rp)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS downsample_marks (
  rule TEXT NOT NULL, db TEXT NOT NULL, rp TEXT NOT NULL, watermark INTEGER NOT NULL,
  PRIMARY KEY (rule, db, rp)
) WITHOUT ROWID;
";

/// Not a batch the upstream took that waits, for the downsampling windows'
/// checkpoint, to be deleted: every read of the backlog leaves those out
/// (the agent's, the views', `inspect`'s and `export`'s). The table is
/// empty without lifecycle rules: no cost then; with them it holds the
/// commits of one checkpoint interval, a few hundred rows, read once a
/// statement.
/// The cold archive holds batches the same way (`archive.rs`).
pub const NOT_HELD: &str = "id NOT IN (SELECT batch_id FROM downsample_duty WHERE delivered = 1
    UNION ALL SELECT batch_id FROM archive_duty WHERE delivered = 1)";

/// Deletes the oldest rows of `downsample_keys` not needed to keep the
/// newest `RECENT_LINES` keys.
fn forget_old_keys(tx: &rusqlite::Transaction) -> Result<(), WalError> {
    let want = (crate::downsample::recent::RECENT_LINES as i64).saturating_mul(8);
    let mut stmt =
        tx.prepare_cached("SELECT id, length(keys) FROM downsample_keys ORDER BY id DESC")?;
    let mut rows = stmt.query([])?;
    let mut kept = 0i64;
    let mut cut = None;
    while let Some(r) = rows.next()? {
        if kept >= want {
            cut = Some(r.get::<_, i64>(0)?);
            break;
        }
        kept = kept.saturating_add(r.get::<_, i64>(1)?);
    }
    drop(rows);
    if let Some(id) = cut {
        tx.execute("DELETE FROM downsample_keys WHERE id <= ?1", [id])?;
    }
    Ok(())
}

/// Inserts the duties of a commit's batches (`ids`, in order; `duty[i]`:
/// the windows count batch `i`) in its transaction.
pub(super) fn owe(
    tx: &rusqlite::Transaction,
    ids: &[i64],
    duty: &[bool],
    seq: i64,
) -> Result<(), WalError> {
    if !duty.contains(&true) {
        return Ok(());
    }
    let mut owe =
        tx.prepare_cached("INSERT INTO downsample_duty (batch_id, seq) VALUES (?1, ?2)")?;
    for (id, _) in ids.iter().zip(duty).filter(|(_, d)| **d) {
        owe.execute([*id, seq])?;
    }
    Ok(())
}

/// A lane as the buffer keys it: the rule's identity and the destination its
/// aggregates are written to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LaneKey {
    pub rule: String,
    pub dest: Destination,
}

/// One checkpoint's rows (see the module doc).
#[derive(Debug, Default)]
pub struct WindowsCheckpoint {
    /// Every batch committed up to this commit (`commit_seq`) has been
    /// counted by the windows being saved.
    pub covers_seq: i64,
    pub sets: Vec<(LaneKey, i64, Vec<u8>)>,
    pub removed: Vec<(LaneKey, i64)>,
    pub watermarks: Vec<(LaneKey, i64)>,
    /// The aggregate lines emitted since the last checkpoint.
    pub emitted: Vec<NewBatch>,
    /// Raw batches (id, commit) whose every value the windows counted:
    /// marked in `downsample_whole` if still the batch of that commit.
    pub whole: Vec<(i64, i64)>,
    /// The keys of the lines counted lately that are new since the last
    /// checkpoint, oldest first (`downsample::recent`): a retry of one is
    /// known after a restart too (review).
    pub recent: Vec<u64>,
    /// The first release's keys (`downsample_recent`) are no longer
    /// looked for: their rows go.
    pub forget_legacy: bool,
    /// The warm destinations emitted to, with their retention (seconds;
    /// `None`: for ever): kept for good (`downsample_dests`).
    pub warm: Vec<(Destination, Option<u64>)>,
}

impl Wal {
    /// [`Wal::commit`], with a duty on each batch whose `duty[i]` is true
    /// (the windows count it): committed in the same transaction.
    pub fn commit_with_duty(
        &mut self,
        batches: &[NewBatch],
        duty: &[bool],
    ) -> Result<Vec<i64>, WalError> {
        self.commit_duty_at(batches, duty, crate::clock::record_ms())
    }

    /// [`Wal::commit_with_duty`] with the batches split already (`split[i]`
    /// of `batches[i]`, or `None`): the codec takes the split the windows
    /// will be fed (one split a line, not two: `benches/downsample.rs`).
    pub fn commit_with_duty_split(
        &mut self,
        batches: &[NewBatch],
        duty: &[bool],
        split: &[Option<crate::lineproto::split_lines::SplitLines>],
        cold: &[Option<String>],
    ) -> Result<Vec<i64>, WalError> {
        let format = self.format();
        let encoded: Vec<(i64, Vec<u8>)> = (batches.iter().enumerate())
            .map(|(i, b)| {
                // Only the split of this very payload: any other would
                // store other points.
                let s = (split.get(i).and_then(Option::as_ref)).filter(|s| {
                    s.payload.as_ptr() == b.payload.as_ptr() && s.payload.len() == b.payload.len()
                });
                codec::encode_or_text(format, &b.payload, s)
            })
            .collect();
        self.commit_encoded_at(batches, &encoded, duty, cold, crate::clock::record_ms())
    }

    /// As `commit_duty_at`, each batch's stored form given (`encoded[i]`:
    /// `codec::encode_or_text` of batch `i` in this buffer's format).
    pub(super) fn commit_encoded_at(
        &mut self,
        batches: &[NewBatch],
        encoded: &[(i64, Vec<u8>)],
        duty: &[bool],
        cold: &[Option<String>],
        now: i64,
    ) -> Result<Vec<i64>, WalError> {
        let result = match self.commit_once(batches, encoded, duty, cold, now) {
            // A WAL that was truncated on a full disk cannot grow to its
            // checkpoint size, so it never starts over by itself: the
            // database's free pages are there, only the WAL is in the way.
            Err(WalError::DiskFull) if self.truncate_wal().is_ok() => {
                self.commit_once(batches, encoded, duty, cold, now)
            }
            other => other,
        };
        result.map_err(|e| self.explain(e))
    }

    /// Writes a checkpoint in one transaction; returns the ids of the
    /// emitted batches. The emitted lines are small beside the raw points
    /// they summarise and free those points' rows: they are not refused for
    /// the quota (a full quota must not stop the checkpoint that frees it),
    /// only for a full disk.
    pub fn checkpoint_windows(&mut self, c: &WindowsCheckpoint) -> Result<Vec<i64>, WalError> {
        let result = match self.checkpoint_once(c) {
            // As a commit does (`commit_duty_at`): a WAL cut on a full disk
            // cannot grow back by itself, and the checkpoint is what deletes
            // the delivered batches it holds (review).
            Err(WalError::DiskFull) if self.truncate_wal().is_ok() => self.checkpoint_once(c),
            other => other,
        };
        result.map_err(|e| self.explain(e))
    }

    fn checkpoint_once(&mut self, c: &WindowsCheckpoint) -> Result<Vec<i64>, WalError> {
        let encoded = self.encode_all(&c.emitted);
        let now = crate::clock::record_ms();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            // Deletes first: a set removed and written in one checkpoint (a
            // damaged saved set replaced) ends written.
            let mut del = tx.prepare_cached(
                "DELETE FROM downsample_sets WHERE rule = ?1 AND db = ?2 AND rp = ?3 AND start = ?4",
            )?;
            for (lane, start) in &c.removed {
                del.execute(params![lane.rule, lane.dest.db, lane.dest.rp, start])?;
            }
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO downsample_sets (rule, db, rp, start, state)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (lane, start, blob) in &c.sets {
                put.execute(params![lane.rule, lane.dest.db, lane.dest.rp, start, blob])?;
            }
            tx.execute("DELETE FROM downsample_marks", [])?;
            let mut mark = tx.prepare_cached(
                "INSERT INTO downsample_marks (rule, db, rp, watermark) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (lane, w) in &c.watermarks {
                mark.execute(params![lane.rule, lane.dest.db, lane.dest.rp, w])?;
            }
        }
        {
            // Before the duties go: a duty row of the same commit proves the
            // id is still that batch (ids are handed out again).
            let mut whole = tx.prepare_cached(
                "INSERT OR IGNORE INTO downsample_whole (batch_id)
                 SELECT batch_id FROM downsample_duty
                 WHERE batch_id = ?1 AND seq = ?2 AND seq <= ?3 AND delivered = 0",
            )?;
            for (id, seq) in &c.whole {
                whole.execute([*id, *seq, c.covers_seq])?;
            }
        }
        // Not those the archive still holds: its run deletes them (`archive.rs`).
        // A duty whose commit number cannot be read (no longer an integer)
        // is covered too: every duty there now was fed (this thread commits
        // and feeds, and checkpoints between), so its points are in the
        // windows saved; kept, the start's repair would count them again
        // (review).
        tx.execute(
            "DELETE FROM batches WHERE id IN
               (SELECT batch_id FROM downsample_duty
                WHERE (seq <= ?1 OR typeof(seq) != 'integer') AND delivered = 1)
             AND NOT EXISTS (SELECT 1 FROM archive_duty a WHERE a.batch_id = batches.id)",
            [c.covers_seq],
        )?;
        tx.execute(
            "DELETE FROM downsample_duty WHERE seq <= ?1 OR typeof(seq) != 'integer'",
            [c.covers_seq],
        )?;
        let mut dest = tx.prepare_cached(
            "INSERT OR REPLACE INTO downsample_dests (db, rp, retention_s) VALUES (?1, ?2, ?3)",
        )?;
        for (d, retention_s) in &c.warm {
            let r = retention_s.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
            dest.execute(params![d.db, d.rp, r])?;
        }
        drop(dest);
        if !c.recent.is_empty() {
            let blob: Vec<u8> = c.recent.iter().flat_map(|k| k.to_le_bytes()).collect();
            tx.execute("INSERT INTO downsample_keys (keys) VALUES (?1)", [blob])?;
            forget_old_keys(&tx)?;
        }
        if c.forget_legacy {
            // Kept until then: a crash before still finds them.
            tx.execute("DELETE FROM downsample_recent", [])?;
        }
        let ids = Wal::insert_batches(&tx, &c.emitted, &encoded, now)?;
        let seq = if ids.is_empty() {
            None
        } else {
            Some(
                tx.query_row("UPDATE commit_seq SET n = n + 1 RETURNING n", [], |r| {
                    r.get::<_, i64>(0)
                })?,
            )
        };
        tx.commit()?;
        if let Some(seq) = seq {
            self.last_commit_seq = seq;
            self.last_commit_bytes = encoded.iter().map(|(_, b)| b.len() as u64).sum();
        }
        Ok(ids)
    }

    /// Clears what downsampling rules left when none is configured any
    /// more: the delivered batches held for a checkpoint (deleted), every
    /// duty, saved window and watermark; returns the rows removed. In one
    /// transaction. Undelivered batches stay for the forwarder.
    pub fn clear_custody(&mut self) -> Result<u64, WalError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut n = tx.execute(
            "DELETE FROM batches WHERE id IN (SELECT batch_id FROM downsample_duty WHERE delivered = 1)
             AND NOT EXISTS (SELECT 1 FROM archive_duty a WHERE a.batch_id = batches.id)",
            [],
        )?;
        for table in [
            "downsample_duty",
            "downsample_sets",
            "downsample_marks",
            "downsample_whole",
            "downsample_recent",
            "downsample_keys",
        ] {
            n += tx.execute(&format!("DELETE FROM {table}"), [])?;
        }
        tx.commit()?;
        Ok(n as u64)
    }

    /// Unmarks every raw batch marked whole: the windows that held their
    /// points are gone (a rule changed, saved windows unreadable), so
    /// `degrade` must not take them. Returns how many were marked.
    pub fn forget_whole(&mut self) -> Result<u64, WalError> {
        let n = self
            .conn
            .execute("DELETE FROM downsample_whole", [])
            .map_err(|e| self.explain(e.into()))?;
        Ok(n as u64)
    }

    /// Every warm destination a checkpoint ever emitted to, with its
    /// retention: their batches are aggregates, whatever rules are
    /// configured now.
    pub fn warm_destinations(&self) -> Result<Vec<(Destination, Option<u64>)>, WalError> {
        let mut stmt = self
            .conn
            .prepare("SELECT db, rp, retention_s FROM downsample_dests ORDER BY db, rp")?;
        let rows = stmt.query_map([], |r| {
            let d = Destination {
                db: r.get(0)?,
                rp: r.get(1)?,
            };
            let retention: Option<i64> = r.get(2)?;
            Ok((d, retention.and_then(|s| u64::try_from(s).ok())))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The batches with a duty, in commit order, decoded: what the windows
    /// counted after the last checkpoint. `each((id, seq), destination,
    /// lines)`; a batch that no longer decodes is skipped and returned by id.
    pub fn replay_duties(
        &self,
        mut each: impl FnMut((i64, i64), &Destination, &[u8]),
    ) -> Result<Vec<i64>, WalError> {
        let mut stmt = self.conn.prepare(
            "SELECT b.id, b.db, b.rp, b.format, b.payload, d.seq
             FROM downsample_duty d JOIN batches b ON b.id = d.batch_id
             ORDER BY d.seq, d.batch_id",
        )?;
        let mut rows = stmt.query([])?;
        let mut undecodable = Vec::new();
        let read = |r: &rusqlite::Row| -> rusqlite::Result<_> {
            let dest = Destination {
                db: r.get(1)?,
                rp: r.get(2)?,
            };
            let (format, blob): (i64, Vec<u8>) = (r.get(3)?, r.get(4)?);
            Ok((dest, format, blob))
        };
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            // Never skipped: the start repairs it first
            // (`repair_damaged_duties`), and one left so must fail the
            // replay, not be skipped here and then discharged unfed by a
            // checkpoint (third review).
            let seq: i64 = r.get(5)?;
            match read(r) {
                Ok((dest, format, blob)) => match codec::decode(format, &blob) {
                    Ok(lines) => each((id, seq), &dest, &lines),
                    Err(_) => undecodable.push(id),
                },
                // A value of the wrong type: skipped as undecodable, not a
                // replay failing at every start (review).
                Err(e) if saved_windows::is_damage(&e) => undecodable.push(id),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(undecodable)
    }
}

impl Wal {
    /// Gives each duty whose commit number cannot be read (a value of the
    /// wrong type: the replay failed on it at every start, suspending the
    /// tier for good, and no checkpoint discharged it; found in review) the
    /// number of the last commit: it replays with that commit's batches (its
    /// place is lost), once, and the next checkpoint discharges it. Returns
    /// how many.
    pub fn repair_damaged_duties(&mut self) -> Result<usize, WalError> {
        self.conn
            .execute(
                "UPDATE downsample_duty SET seq = (SELECT n FROM commit_seq)
                 WHERE typeof(seq) != 'integer'",
                [],
            )
            .map_err(|e| self.explain(e.into()))
    }
}

#[path = "saved_windows.rs"]
mod saved_windows;
pub use saved_windows::SavedWindows;
