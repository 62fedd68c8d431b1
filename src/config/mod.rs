//! The config, shared by the stages: the YAML schema with its embedded
//! defaults (`schema`), the buckets of `influxdb.sharding` (`sharding`), and
//! validation that names the bad key (`validate`). Hot reload itself is
//! wiring (`app::reload`); which keys are live and which need a restart is
//! decided there.
//!
//! Invariant: a `Config` that exists has been validated whole; an invalid
//! file is refused whole, never half-applied.
//!
//! May use: lineproto (precision names). Nothing else: every stage uses it.

mod schema;

pub use schema::*;

/// A cut holds at most what the rings hold, and committing it costs its size
/// twice on disk for a moment (its WAL frames, then its database pages) beside
/// the WAL's room: rings (and so bodies) of at most 1/`RING_QUOTA_SHARE` of
/// `buffer.max_size_mb` keep the largest cut committable into an empty buffer
/// (a larger one would be refused with 507 for ever, and the writes sharing
/// its cut with it).
pub const RING_QUOTA_SHARE: u64 = 4;
