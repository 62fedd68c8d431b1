//! Downsampling at the edge (the warm tier of the design notes' lifecycle):
//! per series × field × time window, the aggregates InfluxDB's
//! `GROUP BY time()` would compute over the raw points, computed here as the
//! points pass, by the points' own timestamps.
//!
//! - `aggregate`: one window's state for one series and field, its update by
//!   a point, and the aggregate fields it emits (`<field>_mean`, …);
//! - `windows`: every open window of every rule and destination, closed by
//!   the points' event time, with late points, retries and a bound.
//!
//! This is the engine, pure and tested against brute force. Not wired in
//! yet: nothing in the agent uses it and the config has no `lifecycle` key.
//! The plan for the rest (issue "Data lifecycle, part 1"):
//!
//! ```text
//! durability   window state = checkpoint + the raw batches committed after it,
//!              replayed in commit order (`windows` is deterministic: no clock).
//!              No per-commit write beyond the raw batch itself: a raw batch
//!              keeps a duty ("not yet in a checkpoint") and leaves the buffer
//!              only when delivered AND checkpointed (DESIGN.md, custody).
//! checkpoint   every few seconds on the commit thread, in one transaction:
//!              the windows' state (a blob), the batch id it covers, and the
//!              aggregate lines `close` emitted, as batches of the warm
//!              destinations (ordered, retried, dead-lettered like any batch).
//!              A crash before it: replay recomputes the same state and emits
//!              the same lines at the next checkpoint; after it: emitted once.
//! config       lifecycle.rules (measurement glob, tags, hot_days, warm_days,
//!              downsample, grace, max_lateness, aggregates, warm destination),
//!              lifecycle.max_open_windows.
//! ```
//!
//! May use: lineproto. No state of its own beyond the values it is given.

pub mod aggregate;
pub mod windows;
