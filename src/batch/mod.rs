//! Stage 2, batch: accepted points wait in fixed-capacity rings until the
//! batcher cuts them into batches (one per destination) and the commit thread
//! commits each cut to the write-ahead buffer in one transaction.
//!
//! Owns: the rings (memory bounded by `performance.ring_buffer_mb`, never by
//! load), the cut policy (`adaptive`: group commit, or the fixed batcher for
//! comparison) and the commit thread with its writing connection.
//!
//! Invariants:
//! - a producer hears 204 only after the commit holding its points returned;
//!   a failed commit answers every producer of that cut with the refusal;
//! - a write is never split across commits: one request's points for one
//!   destination go into one batch, or, where a cold archive takes some of
//!   them, one batch per archive and one of the rest, in one commit (`cold`);
//! - at most `COMMIT_PIPELINE_DEPTH` cuts are in flight, so memory stays
//!   bounded while the disk is slow.
//!
//! `cold` splits batches by the archive they owe (the cold tier's part);
//! `downsampler` is the warm tier's part on the commit thread (windows fed
//! after each commit, checkpointed with the buffer's custody); `warm` says
//! when the commit thread calls it; `timed_recv` is how the commit thread
//! waits for the next cut until a checkpoint is due.
//!
//! May use: wal (commit, the doorbell it rings), route, downsample, observe,
//! config, clock. Never the deliver stage: it learns of commits from the doorbell.

pub mod adaptive;
mod batcher;
pub mod cold;
pub mod downsampler;
mod restamp;
pub mod ring;
mod timed_recv;
pub mod warm;

pub use batcher::*;
