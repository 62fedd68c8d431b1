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
