//! Downsampling at the edge (the warm tier of the design notes' lifecycle):
//! per series × field × time window, the aggregates InfluxDB's
//! `GROUP BY time()` would compute over the raw points, computed here as the
//! points pass, by the points' own timestamps.
//!
//! - `aggregate`: one window's state for one series and field, its update by
//!   a point, and the aggregate fields it emits (`<field>_mean`, …);
//! - `windows`: every open window of every rule and destination, closed by
//!   the points' event time, with late points, retries and a bound; its
//!   `outcome` (what became of a value, the counts), `series` (a series'
//!   window, held per series), `checkpoint` (what
//!   changed since the last one; restore) and `state` (a window set's
//!   bytes, stored compressed by `packed`; fuzzed:
//!   `fuzz/fuzz_targets/decode_state.rs`);
//! - `recent`: the lines counted lately (a retry older than a series'
//!   horizon), by `line_key`: a line's key, from parts the windows keep.
//!
//! The commit thread drives it (`batch/downsampler.rs`: duty, feed,
//! checkpoint, restore and replay; `batch/warm.rs`: when), the buffer keeps
//! the custody of the raw batches it counted (`wal/custody.rs`):
//!
//! ```text
//! feed         after each commit, the commit thread feeds the committed lines
//!              of rule destinations to the windows (lanes = rule identity x
//!              warm destination), having committed them with a duty
//!              (`Wal::commit_with_duty`).
//! checkpoint   every `lifecycle.checkpoint_interval` after a feed (30 s) and
//!              at shutdown: `close`, `Windows::checkpoint`, the emitted lines
//!              as batches of the warm destinations (`<rp>_<downsample>`),
//!              `Wal::checkpoint_windows` covering `last_commit_seq`; the
//!              gauges and the forwarder told of the emitted batches.
//! start        `Wal::saved_windows` → `Windows::restore` (lanes mapped by
//!              identity; sets of rules gone are dropped and logged), then
//!              `Wal::replay_duties` fed in order: the same windows as before
//!              the stop or the crash.
//! degrade     `buffer.when_full: degrade`: batches the windows hold whole
//!              (marked by the checkpoint that discharges them) may be
//!              deleted undelivered by the forwarder (`wal/degrade.rs`).
//! still owed   one split of each line shared with the codec (the hot tier's
//!              retention is `route/hot.rs`'s).
//! ```
//!
//! May use: config, lineproto. No state of its own beyond the values it is
//! given.

pub mod aggregate;
pub mod line_key;
pub mod recent;
pub mod windows;
