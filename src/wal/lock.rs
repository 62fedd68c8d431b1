//! One agent per buffer: an exclusive lock on `<buffer>.lock`, taken before
//! anything touches the buffer and held for the agent's life.
//!
//! Why: two agents on one buffer each deliver every batch (a review saw 197 k
//! lines sent for 100 k, both counting them written) and race on deletes.
//! `flock` is released by the kernel when the process ends, however it ends
//! (kill -9 and power loss included), so a stale lock never blocks a restart.
//! The file holds the holder's PID, for the message the second agent gives.
//! `hissrv inspect` and `export` do not take it: they only read.

use super::WalError;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Held while the agent runs; the lock goes with it.
#[derive(Debug)]
pub struct BufferLock {
    _file: File,
}

/// The lock file of the buffer at `buffer`.
pub fn lock_path(buffer: &Path) -> PathBuf {
    let mut name = buffer.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl BufferLock {
    /// Takes the buffer's lock, or says who holds it.
    pub fn acquire(buffer: &Path) -> Result<BufferLock, WalError> {
        if let Some(dir) = buffer.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        }
        // Two paths to one file (a symlink) are one buffer: one lock.
        let path = lock_path(&super::resolved_path(buffer));
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path);
        // A lock file left by another user (an agent once run as root): a
        // read-only descriptor locks as well; only the PID goes unwritten.
        let (mut file, writable) = match opened {
            Ok(f) => (f, true),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                (File::open(&path).map_err(|e| io_error(&path, e))?, false)
            }
            Err(e) => return Err(io_error(&path, e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(WalError::InUse {
                    path: buffer.to_path_buf(),
                    holder: holder.trim().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&path, e)),
        }
        // Ours now: say who we are. The PID is written before the file is
        // cut to its length, so a rival reading it never sees it empty.
        if writable {
            let pid = format!("{}\n", std::process::id());
            file.seek(SeekFrom::Start(0))
                .and_then(|_| file.write_all(pid.as_bytes()))
                .and_then(|_| file.set_len(pid.len() as u64))
                .map_err(|e| io_error(&path, e))?;
        }
        Ok(BufferLock { _file: file })
    }
}

fn io_error(path: &Path, e: std::io::Error) -> WalError {
    WalError::Sqlite(format!("cannot lock {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_buffer_is_refused_naming_the_holder_and_freed_on_drop() {
        let dir = std::env::temp_dir().join(format!("hissrv-lock-{}", std::process::id()));
        let buffer = dir.join("buffer.db");
        let first = BufferLock::acquire(&buffer).expect("free");
        let e = BufferLock::acquire(&buffer).expect_err("held");
        assert_eq!(
            e,
            WalError::InUse {
                path: buffer.clone(),
                holder: std::process::id().to_string()
            }
        );
        drop(first);
        assert!(
            BufferLock::acquire(&buffer).is_ok(),
            "released with its holder"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
