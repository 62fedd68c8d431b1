//! Stage 3, wal: the write-ahead buffer, one SQLite file in WAL mode. Every
//! batch is committed here before its producer is acknowledged, and leaves
//! only once the upstream took it. Its durability contract and schema are in
//! `buffer` (the `text` block there); `views` are the read-only SQL views
//! over it for operators; `codec` the stored encodings; `reserve` the disk
//! reserve that keeps a full disk drainable; `doorbell` the commit signal;
//! `lock` the one-agent-per-buffer lock.
//!
//! Owns: the buffer file, its `-wal`/`-shm` files and the reserve file.
//!
//! Invariants (each stated once, next to its code):
//! - a commit is durable (per `buffer.synchronous`) before `commit` returns;
//! - the quota is checked before a commit; stored data is never dropped to
//!   make room; dead letters stay within their share;
//! - a batch is deleted only by `finish`, after the upstream accepted it;
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
