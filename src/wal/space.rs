//! Giving room back: the buffer's file shrinks after a drain (incremental
//! vacuum) and its WAL is truncated, so a gateway's card gets its space back
//! after an outage and the disk reserve (`reserve`) can be made again.

use super::{BUSY_TIMEOUT_MS, Wal, WalError};
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// How long truncating the WAL waits for readers: it is an opportunity, tried
/// again later, never worth stalling a commit or a turn for.
const TRUNCATE_BUSY_TIMEOUT_MS: u64 = 100;

impl Wal {
    /// Bytes held by live pages (free pages left by deletes are reused first).
    pub fn used_bytes(&self) -> Result<u64, WalError> {
        let used: i64 = self.conn.query_row(
            "SELECT (page_count - freelist_count) * page_size FROM pragma_page_count, pragma_freelist_count, pragma_page_size",
            [],
            |r| r.get(0),
        )?;
        Ok(used.max(0) as u64)
    }

    /// Commits are refused while `flag` is set (checked under the write
    /// lock): the disk reserve's "missing" flag.
    pub fn refuse_writes_while(&mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        self.refuse_writes = Some(flag);
    }

    /// Runs `f` holding the buffer's write lock (an empty IMMEDIATE
    /// transaction): no commit runs meanwhile.
    pub fn with_write_lock<T>(&mut self, f: impl FnOnce() -> T) -> Result<T, WalError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f();
        tx.commit()?;
        Ok(out)
    }

    /// Gives free pages beyond `keep_pages` back to the file system
    /// (incremental vacuum): the file shrinks after a drain. Returns the
    /// pages given back. Free pages are kept up to `keep_pages` because the
    /// next commits would only take the room again.
    pub fn give_back_free_pages(&self, keep_pages: u64) -> Result<u64, WalError> {
        let free: i64 = self.conn.query_row(
            "SELECT freelist_count FROM pragma_freelist_count",
            [],
            |r| r.get(0),
        )?;
        let surplus = (free.max(0) as u64).saturating_sub(keep_pages);
        if surplus == 0 {
            return Ok(0);
        }
        // One row per page freed: all must be stepped through.
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA incremental_vacuum({surplus})"))?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
        Ok(surplus)
    }

    /// Copies the WAL into the database file and truncates it to zero bytes,
    /// giving its room back to the file system (for the disk reserve). Busy
    /// while another connection reads: an error, tried again later.
    pub fn truncate_wal(&self) -> Result<(), WalError> {
        // A reader holding a snapshot makes it wait: briefly, not the full
        // busy timeout (it is tried again later).
        self.conn
            .busy_timeout(Duration::from_millis(TRUNCATE_BUSY_TIMEOUT_MS))?;
        let result = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
        self.conn
            .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
        if result? == 0 {
            Ok(())
        } else {
            Err(WalError::Sqlite(
                "the WAL is in use; checkpoint postponed".into(),
            ))
        }
    }
}

/// Buffers made before `auto_vacuum = INCREMENTAL` cannot give free pages
/// back. Switching needs a VACUUM (a rewrite of the file), so it is done
/// only at a start that finds the buffer empty, where it costs nothing.
pub(super) fn migrate_to_incremental_vacuum(
    conn: &Connection,
    path: &Path,
) -> Result<(), WalError> {
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode != 0 {
        return Ok(());
    }
    let rows: i64 = conn.query_row(
        "SELECT (SELECT count(*) FROM batches) + (SELECT count(*) FROM dead_letters)",
        [],
        |r| r.get(0),
    )?;
    if rows == 0 {
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
        log::info!(
            "buffer {}: free pages can now be given back to the file system (auto_vacuum)",
            path.display()
        );
    }
    Ok(())
}
