//! The disk reserve: a file of incompressible filler beside the buffer (`<buffer>-reserve`),
//! so that a full disk can always be drained.
//!
//! Why: on a full file system SQLite cannot even *delete*. Deleting delivered
//! batches writes pages to the WAL; the WAL only starts over once a
//! checkpoint has copied it into the database file, and that copy may need
//! the database file to grow. With no byte free, every delete fails, the
//! delivered batches are sent again and again, and nothing ever frees room:
//! a wedge (found by `tests/faults.rs`, on a real full tmpfs).
//!
//! Policy:
//! - at start the writer makes the reserve (real bytes, incompressible,
//!   synced: a sparse or compressible file would reserve nothing);
//! - ingest fills the disk as usual and meets `DiskFull` (507), the reserve
//!   untouched;
//! - when a delete of delivered batches meets a full disk, the forwarder
//!   releases the reserve and deletes again: the checkpoint and the deletes
//!   have room;
//! - while the reserve is missing, new writes get 507 (`ReserveMissing`): a
//!   buffer without its reserve could wedge at the next full disk. Every
//!   `RESERVE_RETRY_SECS` the forwarder truncates the WAL (giving back its
//!   space) and makes the reserve again; writes resume once it is back.
//!
//! Invariant: whenever the buffer accepts writes, the reserve exists whole.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The largest reserve (bytes): room for the largest checkpoint the WAL is
/// given (`space::WAL_CHECKPOINT_MAX_PAGES`, 16 MiB) and the deletes behind it.
pub const RESERVE_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// At most this fraction of the quota (1/8): a small quota on a small card
/// keeps most of its room for data.
pub const RESERVE_QUOTA_DIVISOR: u64 = 8;
/// At most this fraction (1/4) of what the file system has free for the
/// buffer at start (its free bytes plus the reserve already there): a quota
/// larger than the card (the default 1 GiB on a small one) still leaves the
/// card mostly for data, and the reserve can always be made.
pub const RESERVE_FREE_DIVISOR: u64 = 4;
/// The smallest reserve (bytes; or quota/8 if smaller): room for a
/// checkpoint of SQLite's default 1000 pages (4 MiB) and the deletes behind
/// it, the size the reserve had before it followed free space.
pub const RESERVE_FLOOR_BYTES: u64 = 8 * 1024 * 1024;
/// A reserve grown from free space is whole MiB: a start beside a slightly
/// fuller disk finds the reserve it made before instead of writing it again.
const RESERVE_UNIT_BYTES: u64 = 1024 * 1024;
/// How often a missing reserve is made again.
pub const RESERVE_RETRY_SECS: u64 = 5;
/// Zeros written per call while making the reserve.
const WRITE_CHUNK_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct Reserve {
    path: PathBuf,
    bytes: u64,
    /// Set while the reserve is not there: the commit thread refuses writes.
    missing: Arc<AtomicBool>,
}

impl Reserve {
    /// The reserve of the buffer at `buffer` with quota `quota_bytes`; not
    /// made yet (call `make`).
    /// `missing` is the flag the commit thread and `/health` read.
    pub fn for_buffer(buffer: &Path, quota_bytes: u64, missing: Arc<AtomicBool>) -> Reserve {
        // Beside the real file: on the file system SQLite writes to.
        let mut name = super::resolved_path(buffer).into_os_string();
        name.push("-reserve");
        let name = PathBuf::from(name);
        missing.store(true, Ordering::Release);
        Reserve {
            bytes: reserve_bytes(&name, quota_bytes),
            path: name,
            missing,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// True while writes must be refused.
    pub fn is_missing(&self) -> bool {
        self.missing.load(Ordering::Acquire)
    }

    /// Makes the reserve (or finds it whole). On failure nothing partial is
    /// left behind and the reserve stays missing.
    pub fn make(&self) -> std::io::Result<()> {
        // Whole and really allocated (a sparse or restored copy is not).
        let whole = |m: std::fs::Metadata| {
            use std::os::unix::fs::MetadataExt;
            m.len() == self.bytes && m.blocks().saturating_mul(512) >= self.bytes
        };
        if std::fs::metadata(&self.path).is_ok_and(whole) {
            self.missing.store(false, Ordering::Release);
            return Ok(());
        }
        let result = self.write_filler();
        match &result {
            Ok(()) => self.missing.store(false, Ordering::Release),
            Err(_) => {
                let _ = std::fs::remove_file(&self.path);
            }
        }
        result
    }

    /// Incompressible bytes: JFFS2 and UBIFS (OpenWrt's overlay), btrfs and
    /// ZFS compress, and a file of zeros would reserve almost nothing there.
    fn write_filler(&self) -> std::io::Result<()> {
        let mut f = std::fs::File::create(&self.path)?;
        let mut chunk = vec![0u8; WRITE_CHUNK_BYTES];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut left = self.bytes;
        while left > 0 {
            for w in chunk.chunks_mut(8) {
                // xorshift64: spread, not secrecy.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                w.copy_from_slice(&x.to_le_bytes()[..w.len()]);
            }
            let n = usize::try_from(left).map_or(WRITE_CHUNK_BYTES, |l| l.min(WRITE_CHUNK_BYTES));
            f.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        f.sync_all()
    }

    /// Gives the reserve's room back to the file system; writes are refused
    /// until `make` succeeds again.
    pub fn release(&self) -> std::io::Result<()> {
        self.missing.store(true, Ordering::Release);
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// The reserve's size for a buffer whose reserve file is `path` (see
/// `reserve_size`), from the file system's free space and the reserve
/// already there.
fn reserve_bytes(path: &Path, quota_bytes: u64) -> u64 {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let existing = std::fs::metadata(path).map_or(0, |m| m.len());
    let free = rustix::fs::statvfs(dir)
        .ok()
        .map(|st| st.f_bavail.saturating_mul(st.f_frsize));
    reserve_size(quota_bytes, free, existing)
}

/// The reserve for a quota, the file system's free bytes (`None`: unknown)
/// and the size of a reserve file already there:
/// - never below `RESERVE_FLOOR_BYTES` (or quota/8 if smaller): what a
///   1000-page checkpoint needs. Free space is no floor: a start beside a
///   full disk would make a reserve of nothing and accept writes;
/// - grown toward `RESERVE_MAX_BYTES` by a quarter of the free space (its
///   own file counted as free), for the larger checkpoints;
/// - never shrunk below the reserve already there: sized anew at each start
///   beside a full disk, it lost three quarters a start, and four restarts
///   during an outage wedged the buffer (a review found it);
/// - at most quota/8, whatever else.
fn reserve_size(quota_bytes: u64, free: Option<u64>, existing: u64) -> u64 {
    let quota_share = quota_bytes / RESERVE_QUOTA_DIVISOR;
    let grown = match free {
        Some(free) => {
            let share = free.saturating_add(existing) / RESERVE_FREE_DIVISOR;
            share / RESERVE_UNIT_BYTES * RESERVE_UNIT_BYTES
        }
        None => 0,
    };
    grown
        .max(existing)
        .clamp(RESERVE_FLOOR_BYTES, RESERVE_MAX_BYTES)
        .min(quota_share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_real_bytes_of_its_size_and_release_refuses_writes_until_made_again() {
        let dir = std::env::temp_dir().join(format!("hissrv-reserve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = Reserve::for_buffer(
            &dir.join("buffer.db"),
            1024 * 1024 * 1024,
            Default::default(),
        );
        assert!(r.is_missing(), "not made yet");
        r.make().unwrap();
        assert!(!r.is_missing());
        let meta = std::fs::metadata(r.path()).unwrap();
        assert!(r.bytes() > 0 && r.bytes() <= RESERVE_MAX_BYTES);
        assert_eq!(meta.len(), r.bytes());
        {
            use std::os::unix::fs::MetadataExt;
            assert!(meta.blocks() * 512 >= r.bytes(), "not sparse");
        }
        r.release().unwrap();
        assert!(r.is_missing());
        assert!(!r.path().exists());
        r.make().unwrap();
        assert!(!r.is_missing());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_reserve_never_shrinks_below_its_floor_or_the_reserve_already_there() {
        const MIB: u64 = 1024 * 1024;
        let gib = 1024 * MIB;
        // Plenty of room: the largest reserve.
        assert_eq!(reserve_size(gib, Some(10 * gib), 0), RESERVE_MAX_BYTES);
        // A small card: a quarter of it, in whole MiB, but never below the floor.
        assert_eq!(reserve_size(gib, Some(60 * MIB), 0), 15 * MIB);
        assert_eq!(reserve_size(gib, Some(24 * MIB), 0), RESERVE_FLOOR_BYTES);
        // A full disk at the first start, or free space unknown: the floor
        // (made if there is room, else writes stay refused).
        assert_eq!(reserve_size(gib, Some(0), 0), RESERVE_FLOOR_BYTES);
        assert_eq!(reserve_size(gib, None, 0), RESERVE_FLOOR_BYTES);
        // Restarts beside a full disk keep the reserve there, every time.
        let mut r = reserve_size(gib, Some(100 * MIB), 0);
        assert_eq!(r, 25 * MIB);
        for _ in 0..10 {
            r = reserve_size(gib, Some(0), r);
            assert_eq!(r, 25 * MIB);
        }
        // More free space later grows it, up to the largest.
        assert_eq!(reserve_size(gib, Some(200 * MIB), r), 32 * MIB);
        // The quota's share bounds everything, a foreign big file included.
        assert_eq!(reserve_size(16 * MIB, Some(10 * gib), 64 * MIB), 2 * MIB);
        assert_eq!(reserve_size(gib, Some(0), 500 * MIB), RESERVE_MAX_BYTES);
    }

    #[test]
    fn a_small_quota_gets_a_small_reserve() {
        let r = Reserve::for_buffer(
            Path::new("/x/buffer.db"),
            16 * 1024 * 1024,
            Default::default(),
        );
        assert_eq!(r.bytes(), 2 * 1024 * 1024);
        assert_eq!(r.path(), Path::new("/x/buffer.db-reserve"));
    }
}
