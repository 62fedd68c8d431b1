//! Routing, shared by the stages: a point's destination (a 1.x database and
//! retention policy, or the 2.x bucket mapped to one) and the bucket rules of
//! `influxdb.sharding` that split a write by tag, id range or series hash.
//!
//! - `dest`: destinations, the db/rp ⇄ bucket mapping, the set of
//!   destinations admitted (capped by `service.max_destinations`);
//! - `rules`: the router applied to each write on the executor;
//! - `lifecycle`: which `lifecycle.rules` take a point, and each rule's
//!   identity (what its checkpointed windows are stored under);
//! - `hot`: the destinations holding points of rules with `hot_days`, and
//!   the retention each gets upstream.
//!
//! Invariant: routing happens once, at ingest; a stored batch has one
//! destination, and a reload never re-routes what is already buffered.
//!
//! May use: config, lineproto, clock. No stage state: pure functions and the
//! shared destination set.

pub mod dest;
pub mod hot;
pub mod lifecycle;
mod rules;

pub use rules::*;
