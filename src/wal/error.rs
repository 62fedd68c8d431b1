//! The buffer's typed errors: what a caller must tell apart (a full quota or
//! disk is a 507 with stored data kept; a foreign file is a clear error at
//! start; a damaged payload is quarantined, not retried).

use rusqlite::ErrorCode;
use std::fmt;
use std::path::PathBuf;

/// Why the buffer could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalError {
    /// The file exists but is not a hissrv buffer (or is damaged).
    Foreign {
        path: PathBuf,
        why: String,
    },
    /// Committing would pass `buffer.max_size_mb`.
    QuotaFull {
        used_bytes: u64,
        quota_bytes: u64,
    },
    /// The file system is full.
    DiskFull,
    /// The buffer's file system refuses writes (an SD card the kernel
    /// remounted read-only after errors): see `writable`.
    ReadOnly {
        path: PathBuf,
    },
    /// Another agent holds the buffer (`lock`); `holder` is its PID as it
    /// wrote it.
    InUse {
        path: PathBuf,
        holder: String,
    },
    /// The disk reserve was spent draining a full disk and is not back yet
    /// (`reserve`): writes wait for it.
    ReserveMissing,
    /// A reader (or a long write) holds the WAL: it cannot be checkpointed
    /// and cut now (`space`).
    WalBusy,
    /// A stored payload cannot be decoded (damaged on disk).
    Undecodable {
        id: i64,
        why: String,
    },
    Sqlite(String),
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Foreign { path, why } => write!(
                f,
                "{} is not a usable hissrv buffer ({why}); it was left untouched: move it away or point buffer.path elsewhere",
                path.display()
            ),
            WalError::QuotaFull {
                used_bytes,
                quota_bytes,
            } => write!(
                f,
                "buffer quota reached: {used_bytes} of {quota_bytes} bytes used; new writes are refused until the upstream drains the backlog"
            ),
            WalError::DiskFull => write!(f, "disk full: the buffer cannot grow"),
            WalError::ReadOnly { path } => write!(
                f,
                "the buffer's file system is read-only ({}): new writes are refused and the stored points wait on it; writes and deliveries resume by themselves once it is writable again",
                path.display()
            ),
            WalError::InUse { path, holder } => write!(
                f,
                "the buffer {} is in use by another hissrv (pid {}): one agent per buffer; stop that one or point buffer.path elsewhere",
                path.display(),
                if holder.is_empty() { "unknown" } else { holder }
            ),
            WalError::ReserveMissing => write!(
                f,
                "disk full: the buffer's disk reserve is missing (spent draining a full disk, or no room to make it); new writes are refused until there is room to make it again"
            ),
            WalError::Undecodable { id, why } => write!(f, "batch {id}: {why}"),
            WalError::WalBusy => write!(
                f,
                "the buffer's WAL is in use (a reader holds it); checkpoint postponed"
            ),
            WalError::Sqlite(e) => write!(f, "buffer error: {e}"),
        }
    }
}

impl std::error::Error for WalError {}

impl From<rusqlite::Error> for WalError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => WalError::DiskFull,
            // (A plain I/O error on a read-only card is found by `writable`.)
            _ => WalError::Sqlite(e.to_string()),
        }
    }
}
