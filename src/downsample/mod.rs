//! Downsampling at the edge (the warm tier of the design notes' lifecycle):
//! per series × field × time window, the aggregates InfluxDB's
//! `GROUP BY time()` would compute over the raw points, computed here as the
//! points pass, by the points' own timestamps.
//!
//! - `aggregate`: one window's state for one series and field, its update by
//!   a point, and the aggregate fields it emits (`<field>_mean`, …);
//! - `windows`: every open window of every rule and destination, closed by
//!   the points' event time, with late points, retries and a bound; its
//!   `series` (a series' window, held per series), `checkpoint` (what
//!   changed since the last one; restore) and `state` (a window set's
//!   bytes, fuzzed: `fuzz/fuzz_targets/decode_state.rs`).
//!
//! What is built (issue "Data lifecycle, part 1"): this engine, tested
//! against brute force; its checkpoint, tested by restoring a copy at random
//! moments; the buffer's custody of raw batches (`wal/custody.rs`: duties,
//! checkpoint rows, replay), tested against a model over crashes; the
//! `lifecycle` config (`config/lifecycle.rs`), refused whole while rules are
//! not applied; which rules take a series (`route/lifecycle.rs`); the commit
//! thread's part (`batch/downsampler.rs`: duty, feed, checkpoint, restore and
//! replay), tested through random crashes against an uninterrupted run. Not
//! yet: calling it from the commit thread, so nothing in the agent runs it.
//! Plan:
//!
//! ```text
//! feed         after each commit, the commit thread feeds the committed lines
//!              of rule destinations to the windows (lanes = rule identity x
//!              warm destination) and commits them with a duty
//!              (`Wal::commit_with_duty`); the codec's split of each line is
//!              shared, not done twice (+0.35 µs a 10-field line measured
//!              with its own split: over the issue's 15 %).
//! checkpoint   every CHECKPOINT_INTERVAL (≈ 30 s, and at shutdown): `close`,
//!              `Windows::checkpoint`, the emitted lines as batches of the warm
//!              destinations (`<rp>_<downsample>`), `Wal::checkpoint_windows`
//!              covering `last_commit_seq`; the gauges told of the emitted
//!              batches as of any commit.
//! start        `Wal::saved_windows` → `Windows::restore` (lanes mapped by
//!              identity; sets of rules gone are dropped and logged), then
//!              `Wal::replay_duties` fed in order: the same windows as before
//!              the stop or the crash.
//! still owed   the warm destination's provisioning with `warm_days` and the
//!              hot one's with `hot_days`; `buffer.when_full: degrade`;
//!              metrics, status, inspect and a view of the windows; inspect
//!              and the `backlog_summary` view still count a delivered batch
//!              held for a checkpoint (the agent's own reads do not); the
//!              differential test against influxd and the kill -9 test.
//! ```
//!
//! May use: config, lineproto. No state of its own beyond the values it is
//! given.

pub mod aggregate;
pub mod recent;
pub mod windows;
