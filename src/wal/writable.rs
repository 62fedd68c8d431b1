//! A read-only buffer: how a file system that stopped taking writes (an SD
//! card the kernel remounted read-only after I/O errors, `errors=remount-ro`)
//! is told apart from other buffer errors, and how its return is noticed.
//!
//! SQLite reports such a card as a plain "disk I/O error" (or
//! `SQLITE_READONLY`). A failed write is classified by asking the file system
//! itself: opening the database file for writing fails with `EROFS` exactly
//! while the mount refuses writes. The probe opens and closes a descriptor
//! and writes nothing, so it costs no flash wear and may run every few
//! seconds.
//!
//! The policy built on it (README, "A read-only buffer"): commits are refused
//! with 503 and counted (reason `read_only`); the forwarder stops delivering
//! (a delivered batch could not be deleted, so every send would be a
//! duplicate) and probes every `READ_ONLY_PROBE_SECS`; both resume by
//! themselves once the probe opens the file.

use super::{Wal, WalError};
use std::path::{Path, PathBuf};

/// How often a paused forwarder asks whether the buffer is writable again:
/// one `open(2)`, cheap, and a few seconds is how soon an operator expects
/// a remount to show.
pub const READ_ONLY_PROBE_SECS: u64 = 2;

/// The errno of a read-only file system (Linux, and every Unix we target).
const EROFS: i32 = 30;

/// False when `path`'s file system refuses writes (`EROFS`). Any other
/// outcome (written, or another error) is not a read-only file system.
pub fn writable(path: &Path) -> bool {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(_) => true,
        Err(e) => e.raw_os_error() != Some(EROFS),
    }
}

impl Wal {
    /// The database file's path as SQLite opened it.
    pub(super) fn file_path(&self) -> Option<PathBuf> {
        self.conn
            .path()
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    }

    /// False while the buffer's file system refuses writes.
    pub fn writable(&self) -> bool {
        self.file_path().is_none_or(|p| writable(&p))
    }

    /// Names a failed write for what it is: `ReadOnly` when the file system
    /// refuses writes, the error unchanged otherwise.
    pub(super) fn explain(&self, e: WalError) -> WalError {
        match (&e, self.file_path()) {
            (WalError::Sqlite(_), Some(path)) if !writable(&path) => WalError::ReadOnly { path },
            _ => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_or_missing_file_is_not_called_read_only() {
        let dir = std::env::temp_dir().join(format!("hissrv-writable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(writable(&file));
        // Only EROFS means read-only: a missing file is another error.
        assert!(writable(&dir.join("missing")));
        assert_eq!(
            std::fs::read(&file).unwrap(),
            b"x",
            "the probe writes nothing"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
