//! The write-ahead buffer: an SQLite file (WAL journal) holding every accepted
//! batch until the upstream has taken it.
//!
//! # Durability contract
//! - **Ack:** [`Wal::commit`] returns only after the transaction holding the
//!   batches committed at the configured `synchronous` level. Producers get
//!   their 204 after that, never before. With `FULL` (default) an acknowledged
//!   point survives power loss; with `NORMAL` it survives a crash of hissrv but a
//!   power cut may lose the last commits; with `OFF` a power cut may lose or
//!   corrupt recent data.
//! - **Delete:** a batch row is deleted only after the upstream answered 2xx for
//!   all of its lines, or moved the lines it refused, in the same transaction,
//!   to `dead_letters` with the server's reason ([`Wal::finish`]); the one
//!   exception is `buffer.when_full: degrade` (`degrade.rs`).
//! - **Order:** `batches.id` is the commit order; the forwarder always sends the
//!   lowest id of a destination first.
//! - **Bounds:** the quota is checked *before* a commit: a commit that would take
//!   the live data past `buffer.max_size_mb` is refused whole (nothing stored is
//!   dropped to make room), and so is one that meets a full disk. Dead letters
//!   are kept within `buffer.max_dead_letters_percent` of the quota by removing
//!   the oldest (counted), the only data the buffer ever drops on its own
//!   (besides what an operator's `when_full: degrade` lets go, counted).
//! - **Foreign files:** a file that is not a hissrv buffer (other
//!   `application_id`, unreadable header) is an error; it is never deleted or
//!   rewritten.
//!
//! # Schema (readable with the `sqlite3` CLI)
//! ```text
//! PRAGMA application_id = 0x48495353;  -- 'HISS'
//! PRAGMA user_version   = 1;           -- schema version
//! PRAGMA auto_vacuum    = INCREMENTAL; -- free pages can be given back to the
//!                                      --   file system (older buffers migrate
//!                                      --   at a start that finds them empty)
//!
//! batches(                             -- one row per committed batch, per destination
//!   id          INTEGER PRIMARY KEY,   -- commit order
//!   db          TEXT NOT NULL,         -- destination database (1.x) / bucket (2.x)
//!   rp          TEXT NOT NULL,         -- retention policy, '' = default
//!   points      INTEGER NOT NULL,      -- lines in the payload
//!   first_ts    INTEGER NOT NULL,      -- smallest point timestamp, ns since epoch
//!   last_ts     INTEGER NOT NULL,      -- largest point timestamp, ns
//!   bytes       INTEGER NOT NULL,      -- payload length
//!   format      INTEGER NOT NULL,      -- payload encoding: 1 none, 2 delta, 3 lz4 (see codec)
//!   created_ms  INTEGER NOT NULL,      -- commit time, record time (clock::RecordClock), ms
//!   attempts    INTEGER NOT NULL DEFAULT 0,  -- failed delivery attempts
//!   last_error  TEXT,                  -- the last failure, for operators
//!   payload     BLOB NOT NULL)
//! INDEX batches_by_destination ON batches(db, rp, id)
//! VIEW backlog_summary, VIEW dead_letter_lines   -- for the sqlite3 CLI (views.rs)
//!
//! downsample_duty, downsample_sets, downsample_marks   -- the downsampling
//!                                      --   windows' custody and checkpoint (custody.rs)
//! archive_duty, archive_runs, archive_meta   -- the cold archive's custody
//!                                      --   (archive.rs)
//! commit_seq(n)                        -- commits so far (only grows; the gauges'
//!                                      --   re-read tells which commits it saw)
//!
//! dead_letters(                        -- lines the upstream refused for good
//!   id          INTEGER PRIMARY KEY,
//!   batch_id    INTEGER NOT NULL,      -- the batch they came from
//!   db TEXT NOT NULL, rp TEXT NOT NULL,
//!   failed_ms   INTEGER NOT NULL,
//!   status      INTEGER NOT NULL,      -- HTTP status of the refusal; 0 = an undecodable
//!                                      --   batch kept raw; 1 = a line never sent, older
//!                                      --   than its bucket's retention
//!   reason      TEXT NOT NULL,         -- the server's message
//!   line        BLOB NOT NULL)         -- the refused line (line protocol, ns)
//! ```

use rusqlite::{Connection, ErrorCode, OpenFlags, params};
use std::path::Path;
use std::time::Duration;

use super::WalError;
use crate::config::Synchronous;
use crate::route::dest::Destination;
use crate::wal::codec;

/// 'HISS': marks a file as ours so we never adopt someone else's database.
const APPLICATION_ID: i64 = 0x4849_5353;
const SCHEMA_VERSION: i64 = 1;
/// Share of the quota dead letters may use unless the config says otherwise.
const DEFAULT_DEAD_LETTERS_PERCENT: u8 = 10;
/// How long a writer waits for the other connection's lock; commits are short.
pub(super) const BUSY_TIMEOUT_MS: u64 = 10_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS batches (
  id INTEGER PRIMARY KEY,
  db TEXT NOT NULL,
  rp TEXT NOT NULL,
  points INTEGER NOT NULL,
  first_ts INTEGER NOT NULL,
  last_ts INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  format INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_by_destination ON batches(db, rp, id);
CREATE TABLE IF NOT EXISTS dead_letters (
  id INTEGER PRIMARY KEY,
  batch_id INTEGER NOT NULL,
  db TEXT NOT NULL,
  rp TEXT NOT NULL,
  failed_ms INTEGER NOT NULL,
  status INTEGER NOT NULL,
  reason TEXT NOT NULL,
  line BLOB NOT NULL
);
";

/// Commits so far, kept with the data (`commit_seq`): a number that only
/// grows, unlike batch ids (SQLite reuses the id of a deleted last row), so
/// a reader can tell which commits one consistent read already saw. Created
/// at open, so buffers from before it gain it without a migration.
const COMMIT_SEQ: &str = "
CREATE TABLE IF NOT EXISTS commit_seq (n INTEGER NOT NULL);
INSERT INTO commit_seq (n) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM commit_seq);
";

/// A batch ready to commit: one destination, a line-protocol payload.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBatch {
    pub dest: Destination,
    pub points: usize,
    pub first_ts: i64,
    pub last_ts: i64,
    pub payload: Vec<u8>,
}

/// A stored batch, as the forwarder reads it.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    pub id: i64,
    pub dest: Destination,
    pub points: usize,
    pub format: i64,
    pub attempts: i64,
    /// Smallest point timestamp (ns): retention checks skip young batches.
    pub first_ts: i64,
    /// Bytes of the payload as stored (encoded).
    pub stored_bytes: usize,
    pub payload: Vec<u8>,
}

/// Dead-letter status of a whole batch that could not be decoded (kept raw).
pub const STATUS_UNDECODABLE: u16 = 0;
/// Dead-letter status of a line not sent: older than its bucket's retention.
pub const STATUS_EXPIRED: u16 = 1;

/// A line the upstream refused for good, with its reason.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The batch the line came from.
    pub batch_id: i64,
    pub status: u16,
    pub reason: String,
    pub line: Vec<u8>,
}

/// Totals, for `/health` and the logs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Backlog {
    pub batches: u64,
    pub points: u64,
    pub payload_bytes: u64,
    pub dead_letters: u64,
    /// Commit time of the oldest batch (ms since epoch), if any.
    pub oldest_created_ms: Option<i64>,
    /// The commits this (consistent, one-statement) read saw (`commit_seq`).
    pub commit_seq: i64,
}

/// One connection to the buffer file. The commit thread and the forwarder
/// each open their own; WAL lets the forwarder read while commits go on.
pub struct Wal {
    conn: Connection,
    /// Set while the disk reserve is spent: commits are refused, checked
    /// under the write lock (`reserve`).
    refuse_writes: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    quota_bytes: u64,
    /// Dead letters (line + reason bytes) kept at most; the oldest go first.
    dead_letter_quota_bytes: u64,
    /// Encoded bytes the last successful commit stored (for the gauges).
    last_commit_bytes: u64,
    /// `commit_seq` after the last successful commit (at open: the file's).
    last_commit_seq: i64,
    /// Bytes (line + reason) the dead letters hold, once counted: kept up to
    /// date here so adding one does not sum the whole table again.
    dead_letter_bytes: Option<u64>,
    /// How new batches are encoded (`codec::FORMAT_*`).
    format: i64,
    /// Read statements run so far by this connection's reads (`wal_read`):
    /// the forwarder's per-turn cost, observable by tests.
    reads: std::cell::Cell<u64>,
}

impl Wal {
    /// Opens (creating if absent) the buffer at `path`.
    pub fn open(path: &Path, sync: Synchronous, quota_bytes: u64) -> Result<Wal, WalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| WalError::Sqlite(format!("cannot create {}: {e}", dir.display())))?;
        }
        // Only SQLite's own "not a database" / "corrupt" mean a foreign or
        // damaged file; an I/O error or a full disk is not the file's fault
        // and must never be answered with "move it away".
        let foreign = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => WalError::Foreign {
                path: path.to_path_buf(),
                why: e.to_string(),
            },
            _ => WalError::from(e),
        };
        let refuse = |why: String| WalError::Foreign {
            path: path.to_path_buf(),
            why,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
        // The first read of the header tells a foreign or damaged file apart.
        let (app_id, version): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT application_id FROM pragma_application_id), (SELECT user_version FROM pragma_user_version)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(foreign)?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(foreign)?;
        if app_id == 0 && tables > 0 {
            return Err(refuse(format!(
                "an SQLite database with {tables} objects and no hissrv mark"
            )));
        }
        if app_id != 0 && app_id != APPLICATION_ID {
            return Err(refuse(format!("application_id {app_id:#x}")));
        }
        if version > SCHEMA_VERSION {
            return Err(refuse(format!(
                "schema version {version} is newer than this hissrv ({SCHEMA_VERSION})"
            )));
        }
        let sync = match sync {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
            Synchronous::Off => "OFF",
        };
        if app_id == 0 {
            // Before anything writes the header: it only takes effect on a
            // database without tables.
            conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")?;
        }
        space::configure_wal(&conn, sync, quota_bytes)?;
        if app_id == 0 {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE;
                 {SCHEMA}
                 PRAGMA application_id = {APPLICATION_ID};
                 PRAGMA user_version = {SCHEMA_VERSION};
                 COMMIT;"
            ))?;
        }
        // Views for operators with only the sqlite3 CLI (see `inspect`).
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {COMMIT_SEQ} {} {} COMMIT;",
            custody::CUSTODY_SCHEMA,
            archive::ARCHIVE_SCHEMA
        ))?;
        crate::wal::views::ensure(&conn);
        space::migrate_to_incremental_vacuum(&conn, path)?;
        // The commits so far, not 0: a checkpoint of the downsampling
        // windows right after a start covers them (found by the crash
        // simulation: a checkpoint covering 0 left duties its state held).
        let last_commit_seq = conn.query_row("SELECT n FROM commit_seq", [], |r| r.get(0))?;
        Ok(Wal {
            conn,
            refuse_writes: None,
            quota_bytes,
            dead_letter_quota_bytes: quota_bytes / 100 * u64::from(DEFAULT_DEAD_LETTERS_PERCENT),
            last_commit_bytes: 0,
            last_commit_seq,
            dead_letter_bytes: None,
            format: codec::FORMAT_DELTA,
            reads: std::cell::Cell::new(0),
        })
    }

    /// Dead letters may take at most `percent` of the quota.
    pub fn set_dead_letter_share(&mut self, percent: u8) {
        self.dead_letter_quota_bytes = self.quota_bytes / 100 * u64::from(percent);
    }

    /// Read statements this connection has run (see `reads`).
    pub fn reads(&self) -> u64 {
        self.reads.get()
    }

    fn count_read(&self) {
        self.reads.set(self.reads.get().saturating_add(1));
    }

    /// The commit sequence number of the last successful commit.
    pub fn last_commit_seq(&self) -> i64 {
        self.last_commit_seq
    }

    /// Encoded bytes stored by the last successful commit.
    pub fn last_commit_bytes(&self) -> u64 {
        self.last_commit_bytes
    }

    /// Encoding for batches committed from now on; stored batches keep theirs.
    pub fn set_format(&mut self, format: i64) {
        self.format = format;
    }

    /// Commits `batches` in one transaction (group commit: many requests'
    /// points share it). Returns the new batch ids in order.
    pub fn commit(&mut self, batches: &[NewBatch]) -> Result<Vec<i64>, WalError> {
        self.commit_at(batches, crate::clock::record_ms())
    }

    /// [`Wal::commit`] with the commit time given (ms since the epoch): the
    /// forwarder's simulation runs in virtual time.
    pub fn commit_at(&mut self, batches: &[NewBatch], now: i64) -> Result<Vec<i64>, WalError> {
        self.commit_duty_at(batches, &[], now)
    }

    /// [`Wal::commit_at`], with the downsampling duties (`custody`).
    pub fn commit_duty_at(
        &mut self,
        batches: &[NewBatch],
        duty: &[bool],
        now: i64,
    ) -> Result<Vec<i64>, WalError> {
        let encoded = self.encode_all(batches);
        self.commit_encoded_at(batches, &encoded, duty, &[], now)
    }

    /// Each batch's stored format and bytes.
    fn encode_all(&self, batches: &[NewBatch]) -> Vec<(i64, Vec<u8>)> {
        (batches.iter())
            .map(|b| codec::encode_or_text(self.format, &b.payload, None))
            .collect()
    }

    /// The stored format of new batches.
    pub fn format(&self) -> i64 {
        self.format
    }

    fn commit_once(
        &mut self,
        batches: &[NewBatch],
        encoded: &[(i64, Vec<u8>)],
        duty: &[bool],
        cold: &[Option<String>],
        now: i64,
    ) -> Result<Vec<i64>, WalError> {
        let incoming: u64 = encoded.iter().map(|(_, b)| b.len() as u64).sum();
        if let Some(used) = self.room_for(incoming)? {
            return Err(WalError::QuotaFull {
                used_bytes: used,
                quota_bytes: self.quota_bytes,
            });
        }
        // The write lock first, then the reserve's flag: the forwarder
        // releases the reserve only while it holds this lock
        // (`with_write_lock`), so no commit can take the room it frees.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if self
            .refuse_writes
            .as_ref()
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::Acquire))
        {
            return Err(WalError::ReserveMissing);
        }
        // Again under the write lock: a delete or a dead letter of the
        // forwarder's may have landed since (no remedies here: they write).
        if let Some(over) = space::over_quota(&tx, self.quota_bytes, incoming)? {
            return Err(WalError::QuotaFull {
                used_bytes: over.used,
                quota_bytes: self.quota_bytes,
            });
        }
        let ids = Wal::insert_batches(&tx, batches, encoded, now)?;
        let seq: i64 = tx.query_row("UPDATE commit_seq SET n = n + 1 RETURNING n", [], |r| {
            r.get(0)
        })?;
        custody::owe(&tx, &ids, duty, seq)?;
        archive::owe(&tx, &ids, cold, seq)?;
        tx.commit()?;
        self.last_commit_bytes = incoming;
        self.last_commit_seq = seq;
        Ok(ids)
    }

    fn insert_batches(
        tx: &rusqlite::Transaction,
        batches: &[NewBatch],
        encoded: &[(i64, Vec<u8>)],
        now: i64,
    ) -> Result<Vec<i64>, WalError> {
        let mut ids = Vec::with_capacity(batches.len());
        let mut insert = tx.prepare_cached(
            "INSERT INTO batches (db, rp, points, first_ts, last_ts, bytes, format, created_ms, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for (b, (format, blob)) in batches.iter().zip(encoded) {
            insert.execute(params![
                b.dest.db,
                b.dest.rp,
                b.points as i64,
                b.first_ts,
                b.last_ts,
                blob.len() as i64,
                format,
                now,
                blob
            ])?;
            ids.push(tx.last_insert_rowid());
        }
        Ok(ids)
    }

    /// Shifts the commit times stamped while record time was provisional
    /// (`clock::Restamp`: the wall clock was set after the start). Returns
    /// the batches restamped.
    /// Only batches `lo..=hi` (this run's), and only when the quota has
    /// room for the pages it writes.
    pub fn restamp(
        &mut self,
        r: crate::clock::Restamp,
        lo: i64,
        hi: i64,
    ) -> Result<usize, WalError> {
        if let Some(used) = self.room_for(0)? {
            return Err(WalError::QuotaFull {
                used_bytes: used,
                quota_bytes: self.quota_bytes,
            });
        }
        let n = self.conn.execute(
            "UPDATE batches SET created_ms = created_ms + ?3
             WHERE id BETWEEN ?4 AND ?5 AND created_ms BETWEEN ?1 AND ?2",
            params![r.from_ms, r.to_ms, r.shift_ms, lo, hi],
        )?;
        Ok(n)
    }
}

#[path = "finish.rs"]
mod finish;

#[path = "custody.rs"]
mod custody;
pub use custody::{LaneKey, NOT_HELD, SavedWindows, WindowsCheckpoint};

#[cfg(test)]
#[path = "custody_tests.rs"]
mod custody_tests;

#[path = "archive.rs"]
mod archive;
pub use archive::{ArchiveQueue, ArchiveRun, RunBatch};

#[path = "degrade.rs"]
mod degrade;
pub use degrade::Degraded;

#[path = "writable.rs"]
pub mod writable;

#[path = "space.rs"]
mod space;
pub use space::DiskUse;

#[path = "dead_letters.rs"]
mod dead_letters;

#[path = "read.rs"]
mod read;

#[cfg(test)]
#[path = "buffer_tests.rs"]
mod tests;
