//! Downsampling at the edge (the warm tier of the design notes' lifecycle):
//! per series × field × time window, the aggregates InfluxDB's
//! `GROUP BY time()` would compute over the raw points, computed here as the
//! points pass, by the points' own timestamps.
//!
//! - `aggregate`: one window's state for one series and field, its update by
//!   a point, and the aggregate fields it emits (`<field>_mean`, …).
//!
//! This is the engine's core, pure and tested against a brute-force oracle;
//! rules (`lifecycle.rules`), durable window state in the commit transaction
//! and emission into the buffer come next (issue "Data lifecycle, part 1"),
//! so nothing in the agent uses it yet and the config has no `lifecycle` key.
//!
//! May use: lineproto. No state of its own beyond the values it is given.

pub mod aggregate;
