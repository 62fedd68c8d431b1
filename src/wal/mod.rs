//! Stage 3, wal: the write-ahead buffer, one SQLite file in WAL mode. Every
//! batch is committed here before its producer is acknowledged, and leaves
//! only once the upstream took it. Its durability contract and schema are in
//! `buffer` (the `text` block there); `views` are the read-only SQL views
//! over it for operators; `codec` the stored encodings; `reserve` the disk
//! reserve that keeps a full disk drainable; `doorbell` the commit signal;
//! `lock` the one-agent-per-buffer lock; `writable` tells a read-only file
//! system from other errors; `finish` deletes what was delivered; `space`
//! counts disk use for the quota and gives room back.
//!
//! Owns: the buffer file, its `-wal`/`-shm` files and the reserve file.
//!
//! Invariants (each stated once, next to its code):
//! - a commit is durable (per `buffer.synchronous`) before `commit` returns;
//! - the quota is checked before a commit; stored data is never dropped to
//!   make room, except with `buffer.when_full: degrade` raw batches whose
//!   every point the warm tier holds (`degrade`, counted); dead letters stay
//!   within their share;
//! - a batch is deleted only by `finish`, after the upstream accepted it
//!   (or by a checkpoint, delivered and held for it; or degraded);
//! - a file that is not a hissrv buffer is refused and left untouched.
//!
//! May use: route (destinations), config, lineproto (the codec re-splits
//! normalised lines), clock. Never ingest, batch or deliver: they use it.

mod buffer;
pub mod codec;
pub mod doorbell;
mod error;
pub mod lock;
pub mod reserve;
pub mod views;

pub use buffer::*;
pub use error::WalError;

/// Links followed by hand at most (the kernel's own limit is 40).
const MAX_SYMLINK_HOPS: usize = 40;

/// The buffer's real path. SQLite follows a symlinked database file and puts
/// its `-wal` and `-shm` beside the target, so the files that must share its
/// file system (the disk reserve) or name it once (the lock) use this path.
pub fn resolved_path(buffer: &std::path::Path) -> std::path::PathBuf {
    if let Ok(p) = std::fs::canonicalize(buffer) {
        return p;
    }
    // A symlink whose target does not exist yet (a new buffer): SQLite
    // creates the target, so follow the link by hand.
    let mut buffer = buffer.to_path_buf();
    for _ in 0..MAX_SYMLINK_HOPS {
        let Ok(target) = std::fs::read_link(&buffer) else {
            break;
        };
        buffer = match buffer.parent() {
            Some(dir) if target.is_relative() => dir.join(target),
            _ => target,
        };
    }
    let buffer = buffer.as_path();
    let dir = match buffer.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    match (std::fs::canonicalize(dir), buffer.file_name()) {
        (Ok(d), Some(name)) => d.join(name),
        _ => buffer.to_path_buf(),
    }
}
