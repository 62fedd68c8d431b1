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
//!              only when delivered AND checkpointed (the design notes'
//!              custody rule: each duty a state of the row, not a copy).
//! cursor       the checkpoint covers batches by `commit_seq`, never by id:
//!              SQLite reuses the ids of deleted rows, so an id cursor would
//!              skip a new batch after the buffer emptied (review).
//! checkpoint   every few seconds on the commit thread, in one transaction:
//!              the windows' state (a blob), the commit_seq it covers, and the
//!              aggregate lines `close` emitted, as batches of the warm
//!              destinations (ordered, retried, dead-lettered like any batch),
//!              marked so that replay skips them. A crash before it: replay
//!              recomputes the same state and emits the same lines at the next
//!              checkpoint; after it: emitted once.
//! other exits  every way a raw batch leaves (delivery, dead letters, 400
//!              splits, retention expiry) waits for the duty, or the replay
//!              after a crash would miss its points.
//! size         measured (`benches/downsample.rs`): 150 bytes of memory a
//!              field window; a checkpoint of 10,000 series x 10 fields x 3
//!              windows would be some 20 MB, too much to rewrite every few
//!              seconds on an SD card: checkpoint the window sets changed
//!              since the last one (`WindowSet::dirty`), one row each.
//! cost         +0.3 to 0.4 µs a 10-field line on this machine (the split is
//!              shared with the codec): over the issue's 15 % of the ingest
//!              CPU, so the wiring counts the codec's own split once.
//! lanes        keyed by the rule's identity (its text), not its position: a
//!              reload that reorders rules must not move windows between them.
//! config       lifecycle.rules (measurement glob, tags, hot_days, warm_days,
//!              downsample, grace, max_lateness, aggregates, warm destination),
//!              lifecycle.max_open_windows.
//! ```
//!
//! May use: lineproto. No state of its own beyond the values it is given.

pub mod aggregate;
pub mod windows;
