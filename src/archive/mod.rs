//! Stage 2, archive: the cold tier (design notes §6). Every raw point of a
//! rule with `cold_storage` is written to an archive object before its
//! batch may leave the buffer, so the upstream may drop raw data after
//! `hot_days` and the full-resolution history still exists, readable by
//! standard tools (`influx -import -compressed`).
//!
//! Owns: the archiver thread (`archiver`), its own SQLite connection, its
//! back-off per target; the objects' format and names (`object`); the part
//! files objects are written to (`part`); the targets (`target`): a
//! directory (`dir`) or an S3 bucket (`s3`, with its failure table).
//!
//! Invariants:
//! - a batch owed to an archive leaves the buffer only once its objects
//!   are confirmed (synced and renamed) and the upstream took it
//!   (`wal/archive.rs` holds the custody);
//! - a run is recorded before its objects are written, and written again
//!   the same after a crash: duplicates are whole identical objects under
//!   one name, never a point missing;
//! - an object is never overwritten with other content;
//! - an unwritable archive never blocks delivery, and delivery never
//!   blocks the archive.
//!
//! May use: wal, route, observe, tls, config, lineproto, clock. Never ingest,
//! batch or deliver.

pub mod archiver;
pub mod dir;
pub mod object;
pub mod part;
mod run;
pub mod s3;
pub mod sigv4;
pub mod source;
pub mod target;

/// Why an archive could not be written: each is retried after a back-off
/// and shown in `/health`, `status` and the log; nothing leaves the buffer
/// meanwhile.
#[derive(Debug)]
pub enum ArchiveError {
    /// Reading or writing the target failed (full, unmounted, read-only).
    Io {
        what: String,
        source: std::io::Error,
    },
    /// An object of that name holds other lines: never overwritten.
    Conflict { object: String },
    /// The S3 store refused (see `s3.rs`'s table).
    Store {
        target: String,
        status: u16,
        code: String,
        message: String,
    },
    /// The buffer could not be read or written.
    Buffer(crate::wal::WalError),
}

impl std::fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArchiveError::Io { what, source } => write!(f, "cannot {what}: {source}"),
            ArchiveError::Conflict { object } => write!(
                f,
                "{object} exists with other lines; it is not overwritten (move it away to go on; \
                 two gateways cloned from one disk image share a buffer id, and so object names)"
            ),
            ArchiveError::Buffer(e) => write!(f, "buffer: {e}"),
            ArchiveError::Store {
                target,
                status,
                code,
                message,
            } => {
                let hint = match (status, code.as_str()) {
                    (403, _) => ": check the keys, their rights and the gateway's clock",
                    (404, "NoSuchBucket") => {
                        ": create the bucket, or set lifecycle.archive.s3.create_bucket: true"
                    }
                    _ => "",
                };
                write!(f, "{target} answered {status} {code} {message}{hint}")
            }
        }
    }
}

impl std::error::Error for ArchiveError {}

impl From<crate::wal::WalError> for ArchiveError {
    fn from(e: crate::wal::WalError) -> Self {
        ArchiveError::Buffer(e)
    }
}
