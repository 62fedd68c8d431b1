//! Disk use and giving room back. The quota counts what the file system
//! holds for the buffer: the database file, its WAL and its `-shm` index
//! (`DiskUse`), so a reader that keeps the WAL from being reset (an
//! `export | less`, an open `sqlite3` session) cannot take the card past
//! `buffer.max_size_mb`. The buffer's file shrinks after a drain (incremental
//! vacuum) and its WAL is truncated, so a gateway's card gets its space back
//! after an outage and the disk reserve (`reserve`) can be made again.

use super::{BUSY_TIMEOUT_MS, Wal, WalError};
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// How long truncating the WAL waits for readers: it is an opportunity, tried
/// again later, never worth stalling a commit or a turn for.
const TRUNCATE_BUSY_TIMEOUT_MS: u64 = 100;

/// The WAL is checkpointed (and, with no reader in the way, started over)
/// once it holds 1/`WAL_CHECKPOINT_QUOTA_SHARE` of the quota: the quota
/// counts the WAL, so a small quota gets a small WAL.
const WAL_CHECKPOINT_QUOTA_SHARE: u64 = 16;
/// The checkpoint size a buffer opens with for large quotas (pages;
/// SQLite's default, 4 MiB at 4 KiB): what any disk reserve covers. The
/// agent raises it with `size_checkpoints_to_reserve`.
const WAL_CHECKPOINT_OPEN_PAGES: u64 = 1000;
/// The checkpoint size the agent grows to when its disk reserve covers it
/// (pages, 16 MiB at 4 KiB). Flash wear (`cargo bench --bench flash`,
/// BENCHMARKS.md): a connected gateway wrote 2.5x the encoded data at 1000
/// pages, 2.0x at 4000 (a page rewritten by many commits and deletes goes
/// into the database once per checkpoint); 16,000 gave no more.
const WAL_CHECKPOINT_MAX_PAGES: u64 = 4000;
/// A checkpoint grows the database by the WAL's new pages while the WAL
/// still holds them, and the deletes that free room write the WAL first: on
/// a full disk the released reserve must hold both, so a checkpoint is at
/// most 1/`RESERVE_PER_CHECKPOINT` of the reserve (tests/faults.rs's
/// full-disk test wedged at 4000 pages behind an 8 MiB reserve).
const RESERVE_PER_CHECKPOINT: u64 = 2;
/// Below this a checkpoint would run every few commits (pages).
const WAL_CHECKPOINT_MIN_PAGES: u64 = 16;
/// A WAL that grew past twice its checkpoint size (a reader held it) is cut
/// back to this when it starts over, so its room returns to the card.
const JOURNAL_SIZE_LIMIT_CHECKPOINTS: u64 = 2;

/// WAL mode, `synchronous` and the WAL's size policy, scaled to the quota.
pub(super) fn configure_wal(
    conn: &Connection,
    sync: &str,
    quota_bytes: u64,
) -> Result<(), WalError> {
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {sync};"
    ))?;
    set_checkpoint_pages(conn, quota_bytes, WAL_CHECKPOINT_OPEN_PAGES)
}

/// The checkpoint size: 1/`WAL_CHECKPOINT_QUOTA_SHARE` of the quota, at most
/// `max_pages`; the WAL is cut back to `JOURNAL_SIZE_LIMIT_CHECKPOINTS` of it.
fn set_checkpoint_pages(
    conn: &Connection,
    quota_bytes: u64,
    max_pages: u64,
) -> Result<(), WalError> {
    let page_size: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))? as u64;
    let checkpoint_pages = (quota_bytes / WAL_CHECKPOINT_QUOTA_SHARE / page_size.max(1))
        .min(max_pages)
        .max(WAL_CHECKPOINT_MIN_PAGES);
    let journal_limit = checkpoint_pages * page_size * JOURNAL_SIZE_LIMIT_CHECKPOINTS;
    conn.execute_batch(&format!(
        "PRAGMA wal_autocheckpoint = {checkpoint_pages};
         PRAGMA journal_size_limit = {journal_limit};"
    ))?;
    Ok(())
}

/// A commit that could take the buffer past its quota.
#[derive(Debug, Clone, Copy)]
pub(super) struct Over {
    /// Disk use now.
    pub(super) used: u64,
    /// How far past the quota it could go.
    by: u64,
    free_pages: u64,
    page_size: u64,
    /// The WAL's bytes now, and the room it is always given.
    wal: u64,
    wal_room: u64,
}

impl Over {
    /// How far past the quota the commit could go, in bytes, counting the
    /// free pages (a commit writes into them first) as room: what deleting
    /// live rows can still help with (found in review: measured on the
    /// file's length alone, one look degraded every whole batch once a
    /// drain had left the file long and mostly free).
    pub(super) fn short_of_live_room(&self) -> u64 {
        self.by
            .saturating_sub(self.free_pages.saturating_mul(self.page_size))
    }
}

/// Pages a commit touches besides its payload's: the table's and the
/// index's leaf and interior pages, `commit_seq`, the header page and a
/// freelist trunk when it reuses free pages, and one to spare (found when a
/// schema change moved a full buffer 296 bytes past its quota with 4: a
/// commit through a held WAL wrote two pages more than counted).
const COMMIT_OVERHEAD_PAGES: u64 = 8;

/// The bytes `payload` bytes take as pages of `page_size` (an overflow page
/// holds 4 bytes less than a page), plus a commit's other pages.
/// An SQLite WAL frame's header, before each page it holds.
const WAL_FRAME_HEADER_BYTES: u64 = 24;
/// The SQLite WAL file's own header.
const WAL_HEADER_BYTES: u64 = 32;

fn on_pages(payload: u64, page_size: i64) -> u64 {
    let page = page_size.max(512) as u64;
    payload
        .div_ceil(page - 4)
        .saturating_add(COMMIT_OVERHEAD_PAGES)
        * page
}

/// What the file system holds for the buffer, in bytes (file lengths; `du`
/// rounds each up to its blocks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUse {
    pub database: u64,
    pub wal: u64,
    pub shm: u64,
}

impl DiskUse {
    /// The buffer database at `path` and its `-wal` and `-shm` files (a
    /// missing one counts 0).
    pub fn of(path: &Path) -> DiskUse {
        let len = |suffix: &str| {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(p).map_or(0, |m| m.len())
        };
        DiskUse {
            database: len(""),
            wal: len("-wal"),
            shm: len("-shm"),
        }
    }

    /// The files of the database `conn` has open (none for an in-memory one).
    fn of_connection(conn: &Connection) -> DiskUse {
        conn.path()
            .filter(|p| !p.is_empty())
            .map_or_else(DiskUse::default, |p| DiskUse::of(Path::new(p)))
    }

    pub fn total(&self) -> u64 {
        self.database
            .saturating_add(self.wal)
            .saturating_add(self.shm)
    }
}

impl Wal {
    /// What the file system holds for this buffer now.
    pub fn disk_use(&self) -> DiskUse {
        DiskUse::of_connection(&self.conn)
    }

    /// [`Wal::over_quota`], after what can make room without dropping
    /// data: the WAL is checkpointed and cut (a WAL a reader kept from
    /// starting over: with the reader gone, only a commit or a delete would,
    /// and none comes while the quota is full), then free pages are given
    /// back when they are what stands in the way (counted as file, they are
    /// not room for the WAL). Both write, so neither runs while a reader
    /// holds the WAL: a vacuum's pages would pile up in it.
    pub(super) fn room_for(&self, incoming: u64) -> Result<Option<u64>, WalError> {
        let Some(over) = self.over_quota(incoming)? else {
            return Ok(None);
        };
        // Only when it can help: a WAL grown past its room (a reader held
        // it), or free pages in the way. Else a quota full of data would pay
        // a checkpoint (and up to 100 ms behind a reader) per refused cut.
        if over.wal <= over.wal_room && over.free_pages == 0 {
            return Ok(Some(over.used));
        }
        // A WAL past its room is cut; otherwise it only must start over, so
        // the vacuum writes into its existing room (a full disk has no other).
        let ready = if over.wal > over.wal_room {
            self.truncate_wal()
        } else {
            self.restart_wal()
        };
        if ready.is_err() {
            return Ok(Some(over.used));
        }
        let Some(over) = self.over_quota(incoming)? else {
            return Ok(None);
        };
        self.give_back_for(over)?;
        self.over_quota(incoming).map(|o| o.map(|o| o.used))
    }

    /// The buffer takes more of the disk than its quota (a reader holds the
    /// WAL, or the quota was lowered).
    pub fn disk_over_quota(&self) -> bool {
        self.disk_use().total() > self.quota_bytes
    }

    /// Gives back free pages when they cover what `over` is over by.
    fn give_back_for(&self, over: Over) -> Result<(), WalError> {
        if over.free_pages > 0 && over.free_pages * over.page_size >= over.by {
            let pages = over.by.div_ceil(over.page_size.max(1));
            self.give_back_free_pages(over.free_pages.saturating_sub(pages))?;
        }
        Ok(())
    }

    /// See [`over_quota`].
    pub(super) fn over_quota(&self, incoming: u64) -> Result<Option<Over>, WalError> {
        over_quota(&self.conn, self.quota_bytes, incoming)
    }

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

    /// [`Wal::give_back_free_pages`] only once the WAL can start over (no
    /// reader holds it): a vacuum's pages would pile up in a held WAL. The
    /// WAL keeps its room, which the vacuum writes into (a full disk has no
    /// other).
    pub fn shrink(&self, keep_pages: u64) -> Result<u64, WalError> {
        if self.free_pages()? <= keep_pages {
            return Ok(0);
        }
        self.restart_wal()?;
        self.give_back_free_pages(keep_pages)
    }

    fn free_pages(&self) -> Result<u64, WalError> {
        let free: i64 = self.conn.query_row(
            "SELECT freelist_count FROM pragma_freelist_count",
            [],
            |r| r.get(0),
        )?;
        Ok(free.max(0) as u64)
    }

    /// Sizes this connection's checkpoints to a disk reserve of
    /// `reserve_bytes` (see `RESERVE_PER_CHECKPOINT`), within the quota's
    /// share and `WAL_CHECKPOINT_MAX_PAGES`. Every connection that writes
    /// must get the same size: each checkpoints by its own setting.
    pub fn size_checkpoints_to_reserve(&self, reserve_bytes: u64) -> Result<(), WalError> {
        let page_size: u64 =
            self.conn
                .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))? as u64;
        let pages = (reserve_bytes / RESERVE_PER_CHECKPOINT / page_size.max(1))
            .min(WAL_CHECKPOINT_MAX_PAGES);
        set_checkpoint_pages(&self.conn, self.quota_bytes, pages)
    }

    /// The WAL's checkpoint size, pages.
    pub fn checkpoint_pages(&self) -> Result<u64, WalError> {
        let pages: i64 = self
            .conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))?;
        Ok(pages.max(0) as u64)
    }

    /// Gives free pages beyond `keep_pages` back to the file system
    /// (incremental vacuum): the file shrinks after a drain. Returns the
    /// pages given back. Free pages are kept up to `keep_pages` because the
    /// next commits would only take the room again.
    pub fn give_back_free_pages(&self, keep_pages: u64) -> Result<u64, WalError> {
        let surplus = self.free_pages()?.saturating_sub(keep_pages);
        if surplus == 0 {
            return Ok(0);
        }
        // A vacuum's pages go through the WAL, and the file shrinks only at
        // the checkpoint: in steps of the checkpoint size, the WAL starts
        // over between them instead of taking the whole surplus again (a
        // drained 20 MiB buffer took 14 MiB more in one step).
        let step: i64 = self
            .conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))?;
        let step = (step.max(1) as u64).min(surplus);
        let mut left = surplus;
        while left > 0 {
            let n = step.min(left);
            // One row per page freed: all must be stepped through.
            let mut stmt = self
                .conn
                .prepare(&format!("PRAGMA incremental_vacuum({n})"))?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
            left -= n;
        }
        Ok(surplus)
    }

    /// Copies the WAL into the database file and truncates it to zero bytes,
    /// giving its room back to the file system (for the disk reserve). Busy
    /// while another connection reads: an error, tried again later.
    pub fn truncate_wal(&self) -> Result<(), WalError> {
        self.checkpoint("TRUNCATE")
    }

    /// Checkpoints the WAL so that the next write starts it over from the
    /// beginning, in its existing room (the file keeps its size): `WalBusy`
    /// while a reader holds it.
    pub fn restart_wal(&self) -> Result<(), WalError> {
        self.checkpoint("RESTART")
    }

    fn checkpoint(&self, mode: &str) -> Result<(), WalError> {
        // A reader holding a snapshot makes it wait: briefly, not the full
        // busy timeout (it is tried again later).
        self.conn
            .busy_timeout(Duration::from_millis(TRUNCATE_BUSY_TIMEOUT_MS))?;
        let result = self
            .conn
            .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                r.get::<_, i64>(0)
            });
        self.conn
            .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
        match result {
            Ok(0) => Ok(()),
            Ok(_) => Err(WalError::WalBusy),
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
                Err(WalError::WalBusy)
            }
            Err(e) => Err(e.into()),
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

/// Whether committing `incoming` more bytes could take the buffer's disk use
/// past the quota: the database file grows only beyond its free pages, and
/// the WAL by the commit's pages until a checkpoint resets it.
pub(super) fn over_quota(
    conn: &Connection,
    quota_bytes: u64,
    incoming: u64,
) -> Result<Option<Over>, WalError> {
    let (live, file, page_size, free_pages): (i64, i64, i64, i64) = conn.query_row(
        "SELECT (page_count - freelist_count) * page_size, page_count * page_size, page_size, freelist_count FROM pragma_page_count, pragma_freelist_count, pragma_page_size",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let checkpoint_pages: i64 = conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))?;
    let disk = DiskUse::of_connection(conn);
    let incoming = on_pages(incoming, page_size);
    let database = (file.max(0) as u64).max((live.max(0) as u64).saturating_add(incoming));
    // In the WAL each page is a frame with its own header, and the file
    // has one (found when a schema change moved a full buffer 296 bytes
    // past its quota: the frames' headers were not counted).
    let page = page_size.max(1) as u64;
    let frames = |bytes: u64| bytes / page * (page + WAL_FRAME_HEADER_BYTES);
    // The WAL grows to its checkpoint size and a commit before it starts
    // over, so that much is always counted (the database file must leave
    // it room); more while a reader holds it.
    let wal_room = (checkpoint_pages.max(0) as u64)
        .saturating_mul(page + WAL_FRAME_HEADER_BYTES)
        .saturating_add(WAL_HEADER_BYTES);
    let projected = database
        .saturating_add(disk.wal.max(wal_room))
        .saturating_add(frames(incoming))
        .saturating_add(disk.shm);
    Ok((projected > quota_bytes).then(|| Over {
        used: disk.total(),
        by: projected - quota_bytes,
        free_pages: free_pages.max(0) as u64,
        page_size: page_size.max(0) as u64,
        wal: disk.wal,
        wal_room,
    }))
}
