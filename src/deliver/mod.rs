//! Stage 4, deliver: the forwarder thread drains the buffer in order, per
//! destination, and writes to InfluxDB over blocking HTTP (ureq).
//!
//! - `forward`: the thread, its turns, back-off, the live lane during a
//!   backlog (`forward_turn`: one delivery turn; `forward_disk`: a full,
//!   read-only or over-quota buffer; `heads`: cached heads and the backlog
//!   gauges);
//! - `drain`: which destination goes next (bucket priority with a fair
//!   share), retention expiry;
//! - `prefetch`: a backlog's next pack, read and compressed while the
//!   server works on the current one;
//! - `delivery`: one request's worth of batches under the status policy
//!   (split on 413, isolate poison lines by probing);
//! - `upstream`: one write to InfluxDB and what its answer means;
//! - `provision`: `manage_retention` (databases, retention policies, buckets);
//!
//! Owns: the reading connection to the buffer, the upstream client, the
//! back-off state.
//!
//! Invariants:
//! - a batch is deleted only after the server accepted it (2xx, or a partial
//!   write whose refused lines became dead letters);
//! - per destination, batches go in commit order;
//! - a failed turn backs off (never a busy loop), at most `retry.max_backoff_ms`
//!   or the server's Retry-After capped by `retry.max_retry_after_s`;
//! - a line is condemned (dead letter) only on the server's word: a 4xx for
//!   it, or confirmed failures between canaries that the server did take.
//!
//! May use: wal, route, observe, tls, config, lineproto, clock. Never ingest or
//! batch: it hears of commits from the wal's doorbell.

pub mod delivery;
pub mod drain;
pub mod forward;
mod heads;
mod prefetch;
pub mod provision;
pub mod upstream;

pub use forward::{Forwarder, IDLE_POLL_MS, MIN_RETRY_DELAY_MS, Mailbox, MakeSink, Step};
