//! The open windows of every rule and destination ("lane"), advanced by the
//! points' own timestamps, and the aggregate lines they emit.
//!
//! - A lane's **watermark** is the greatest timestamp it has counted. A
//!   window [start, start + every) **closes** once the watermark reaches
//!   start + every + grace: `close` then emits its aggregate fields as one
//!   line per series (timestamp = the window's start, as InfluxDB labels a
//!   `GROUP BY time()` row).
//! - A point for a closed window still counts, and `close` emits the window
//!   again (InfluxDB keeps the last write of a point, so the re-emission
//!   corrects it), until the watermark passes the window's close by
//!   `max_lateness`: then the window is forgotten, and a point for it is
//!   `Late` (the caller counts it and keeps the raw point, never aggregates
//!   it into a window that was already forgotten).
//! - **Repeats**: a point of a field already counted at its timestamp,
//!   when that timestamp is among the `DEDUP_RECENT_TIMESTAMPS` greatest
//!   counted in its series' window (any field), is a producer's retry
//!   (InfluxDB stores it once) and is not counted again; so is a field named
//!   twice in one line. Beyond that horizon (older than the eight greatest)
//!   a repeat counts twice; a different value at a counted timestamp is
//!   taken for a repeat and the first value stays (InfluxDB would keep the
//!   last).
//! - Every point moves its lane's watermark, counted or not; one point far
//!   ahead (a producer with a wrong clock) moves it for every series of the
//!   lane, as the issue defines event time per rule and destination.
//! - **Bounds**: at most `max_open` field windows (series × field ×
//!   window) exist; a field that would open one more is `Full`, counted by
//!   the caller, and kept raw. Memory is this bound times a field window's
//!   size (150 bytes measured with 10 fields a series,
//!   `benches/downsample.rs`), never the load.
//!
//! Determinism (what durability will rest on): the state is a function of
//! the points given, in their order, and of the `close` calls between them;
//! nothing reads a clock. Replaying the same batches after a restart from a
//! checkpoint rebuilds the same windows and emits the same lines (the
//! series of one window in the order they came, `series_table`). Hints
//! (`SeriesHint`) change how a series is found, never what is counted.

use super::aggregate::{TypeConflict, Window, window_start};
use super::line_key;
use crate::lineproto::split::Value;

/// Latest counted timestamps per series × field × window kept to recognise
/// a retried point: a producer that lost an answer resends its last body,
/// a few points per series; 8 × 8 bytes a window bounds the cost.
pub const DEDUP_RECENT_TIMESTAMPS: usize = 8;
const _: () = assert!(DEDUP_RECENT_TIMESTAMPS <= 8, "Field::seen has a bit a slot");

/// A field name longer than this is not aggregated (`OutOfRange`): names
/// are kept as u32 offsets, and InfluxDB's own key limit is 64 KiB.
pub const MAX_FIELD_NAME_BYTES: usize = 65_535;

/// A rule applied to one destination's points: windows, watermark and
/// emitted lines are per lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lane {
    pub rule: u16,
    pub dest: u32,
}

/// One lane's window start: its series, and whether any changed since the
/// last `close` (a closed window held for late points is not walked again
/// until one comes).
#[derive(Debug)]
struct WindowSet {
    dirty: bool,
    /// Changed since the last checkpoint (`state`).
    unsaved: bool,
    series: SeriesTable,
    /// Unique in the process (`next_set_id`), and new again when a series
    /// is removed: a `SeriesHint` holds while it names this id.
    id: u64,
}

impl WindowSet {
    fn new(series: SeriesTable) -> WindowSet {
        WindowSet {
            dirty: false,
            unsaved: false,
            series,
            id: next_set_id(),
        }
    }
}

pub struct Windows {
    rules: Vec<Rule>,
    /// By lane and window start, then series: `close` emits in this order.
    open: Sorted<(Lane, i64), WindowSet>,
    /// Field windows held (the sum of `fields.len()` over `open`).
    held: usize,
    watermarks: Sorted<Lane, i64>,
    /// Sets forgotten since the last checkpoint (`state`).
    removed: Vec<(Lane, i64)>,
    max_open: usize,
    pub counts: Counts,
    /// The lane and window start `place` found last: a line of the same
    /// window skips the division (lines come by the thousand per window).
    last_start: Option<(Lane, i64)>,
    /// The common line's shortcut in `add_line_unless` (off only in the
    /// test that checks it against the general loop).
    fast_path: bool,
}

impl Windows {
    /// Rules with a window of at most 0 or a negative grace or lateness
    /// are taken as 1 ns, 0 and 0 (the config refuses them before this).
    pub fn new(rules: Vec<Rule>, max_open: usize) -> Windows {
        let rules = rules
            .into_iter()
            .map(|r| Rule {
                every_ns: r.every_ns.max(1),
                grace_ns: r.grace_ns.max(0),
                max_lateness_ns: r.max_lateness_ns.max(0),
                ..r
            })
            .collect();
        Windows {
            rules,
            open: Sorted::default(),
            held: 0,
            watermarks: Sorted::default(),
            removed: Vec::new(),
            max_open,
            counts: Counts::default(),
            last_start: None,
            fast_path: true,
        }
    }

    /// Windows open (series × field × window; emitted or not, not yet
    /// forgotten): what `max_open` bounds.
    pub fn len(&self) -> usize {
        self.held
    }

    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Counts one field of one point into its window.
    pub fn add(&mut self, lane: Lane, series: &[u8], field: &[u8], v: &Value, ts: i64) -> Outcome {
        let mut outcome = Outcome::OutOfRange;
        self.add_line(lane, series, &[(field, *v)], ts, |_, o| outcome = o);
        outcome
    }

    /// Counts every field of one point (one map lookup for the line);
    /// `each(i, outcome)` tells what became of `fields[i]`.
    pub fn add_line(
        &mut self,
        lane: Lane,
        series: &[u8],
        fields: &[(&[u8], Value)],
        ts: i64,
        each: impl FnMut(usize, Outcome),
    ) {
        self.add_line_unless(lane, series, fields, ts, 0, None, |_| false, each);
    }

    /// As `add_line`, asking `repeat(key)` first when the point may have
    /// been counted: its series held in its window, and `ts` at a slot or
    /// older than every slot of a full ring (`Series::may_have_counted`).
    /// `key` is the line's
    /// (`line_key`, in the lane seeded `lane_seed`), made from the parts
    /// the series' window keeps. When `repeat` says so, nothing changes
    /// but the repeats count, and `each` is not called. Returns whether
    /// the point may have been counted (`false` is sure: most points of
    /// most series are among or newer than the greatest counted,
    /// `recent.rs`), and the key
    /// when a field counted or `repeat` was asked (else 0). One lookup of
    /// the series for all (it was two, `benches/downsample.rs`), none
    /// when `hint` (this line's shape's, `SeriesHint`) still holds.
    #[allow(clippy::too_many_arguments)]
    pub fn add_line_unless(
        &mut self,
        lane: Lane,
        series: &[u8],
        fields: &[(&[u8], Value)],
        ts: i64,
        lane_seed: u64,
        hint: Option<&mut SeriesHint>,
        repeat: impl FnOnce(u64) -> bool,
        mut each: impl FnMut(usize, Outcome),
    ) -> Added {
        // Moving the watermark first changes nothing for a repeat: every
        // point counted moved it to at least its timestamp already.
        let start = match self.place(lane, ts) {
            Ok(start) => start,
            Err(o) => {
                // A retry into a window past max_lateness not yet forgotten
                // (no close since) is a repeat, not late: its batch stays
                // whole (review).
                let held = (self.rules.get(usize::from(lane.rule)))
                    .and_then(|r| window_start(ts, r.every_ns))
                    .and_then(|start| self.open.get(&(lane, start))?.series.get(series))
                    .is_some_and(|e| e.may_have_counted(ts));
                if o == Outcome::Late && held {
                    let key = line_key::key(lane_seed, series, fields, ts);
                    if repeat(key) {
                        self.counts.repeats =
                            self.counts.repeats.saturating_add(fields.len() as u64);
                        return Added {
                            maybe_counted: true,
                            key,
                        };
                    }
                }
                for i in 0..fields.len() {
                    self.counts.add(o);
                    each(i, o);
                }
                return Added::NOT;
            }
        };
        let room = self.max_open.saturating_sub(self.held);
        let counts = &mut self.counts;
        let set = self
            .open
            .get_or_insert_with((lane, start), || WindowSet::new(SeriesTable::default()));
        let window = &mut set.series;
        // A hint of this lane, window and epoch names this line's series
        // (the caller's contract: one hint a shape of one batch); its key's
        // length is checked all the same (it is beside the number, no
        // reading of the key), its bytes in tests.
        let hinted = (hint.as_deref()).filter(|h| {
            h.set == set.id
                && window.key_of(h.series).is_some_and(|k| {
                    debug_assert_eq!(k, series, "a hint of another series");
                    k.len() == series.len()
                })
        });
        let (number, in_order_at) = match hinted.map(|h| (h.series, h.in_order_at)) {
            Some(known) => known,
            None => (window.find(series).unwrap_or(u32::MAX), u32::MAX),
        };
        let found = window.at_mut(number);
        let (number, entry, created) = match found {
            Some((_, entry)) => (number, entry, false),
            None if room == 0 || !emittable::is_series_key(series) => {
                let o = if room == 0 {
                    Outcome::Full
                } else {
                    Outcome::OutOfRange
                };
                if window.is_empty() {
                    self.open.remove(&(lane, start));
                }
                for i in 0..fields.len() {
                    self.counts.add(o);
                    each(i, o);
                }
                return Added::NOT;
            }
            None => {
                // Sized for the line's fields (malloc was 4 ns a line with
                // a rule, profiled); what the line did not keep is given back
                // below (found in review: held past what `max_open` bounds).
                let n = fields.len().min(room).min(series::MASK_FIELDS);
                let names = fields.iter().take(n).map(|(n, _)| n.len()).sum();
                let number = window.push(series, Series::with_capacity(n, names));
                match window.at_mut(number) {
                    Some((_, entry)) => (number, entry, true),
                    None => return Added::NOT, // just pushed: never
                }
            }
        };
        entry.hash_with(lane_seed, series);
        let maybe_counted = entry.may_have_counted(ts);
        let fields_now = u32::try_from(entry.fields.len()).unwrap_or(u32::MAX - 1);
        let in_order =
            !fields.is_empty() && (in_order_at == fields_now || entry.holds_in_order(fields));
        if let Some(h) = hint {
            *h = SeriesHint {
                set: set.id,
                series: number,
                in_order_at: if in_order { fields_now } else { u32::MAX },
            };
        }
        let shortcut = self.fast_path && in_order;
        // Made before any field changes the series' names (the key is of
        // the line as it came); by the shortcut as it counts, when no
        // repeat needs it first.
        let key = if maybe_counted || !shortcut {
            Some(entry.line_key(lane_seed, fields, ts, in_order))
        } else {
            None
        };
        if let Some(key) = key
            && maybe_counted
            && repeat(key)
        {
            counts.repeats = (counts.repeats).saturating_add(fields.len() as u64);
            return Added { maybe_counted, key };
        }
        // No slot at `ts` (never counted, or not a repeat by the lines
        // counted lately and older than the ring): no field of the line is
        // a repeat by the slots, nor named twice when in order.
        if shortcut && (!maybe_counted || entry.slot_of(ts).is_none()) {
            // The common line (`Series::add_in_order`): the general loop
            // below gives the same outcome field by field
            // (`fast_path_tests.rs` checks the two agree).
            let chains = key
                .is_none()
                .then(|| entry.key_chains(lane_seed, fields.len(), ts));
            let (any, made) = entry.add_in_order(fields, ts, chains, counts, each);
            if any {
                set.dirty = true;
                set.unsaved = true;
            }
            return Added {
                maybe_counted,
                key: key.or(made).unwrap_or(0),
            };
        }
        let key = key.unwrap_or(0);
        // The slot remembering `ts`, taken at the first field counted: then
        // a field named twice in the line, or the line retried, is a repeat.
        let mut slot = entry.slot_of(ts);
        let mut slot_tried = slot.is_some();
        let mut added = 0usize;
        // Bit `i`: `fields[i]` counted (the first 64; past them a name seen
        // before in the line is taken as counted).
        let mut counted_here = 0u64;
        for (i, (name, v)) in fields.iter().enumerate() {
            let (outcome, at) = match entry.find(name) {
                Some(f) => {
                    // Named twice in this line: one point to InfluxDB. The
                    // slot bits tell it when `ts` has a slot; when it has
                    // none (older than the 8 greatest), the line itself
                    // (found in review: counted twice then).
                    // Only a counted one: a type conflict before a valid
                    // value must not hide it (second review).
                    let again = slot.is_none()
                        && (fields[..i].iter().enumerate()).any(|(k, (n, _))| {
                            series::same(n, name) && (k >= 64 || counted_here & 1 << k != 0)
                        });
                    let repeat = again || slot.is_some_and(|j| entry.seen(f, j));
                    let field = &mut entry.fields[f];
                    if repeat {
                        (Outcome::Repeat, None)
                    } else if field.window.add(v, ts) == Err(TypeConflict) {
                        (Outcome::TypeConflict, None)
                    } else {
                        field.changed = true;
                        (Outcome::Counted, Some(f))
                    }
                }
                None if added >= room => (Outcome::Full, None),
                None if name.len() > MAX_FIELD_NAME_BYTES
                    || entry.names.len() + name.len() > u32::MAX as usize
                    || !emittable::is_field_name(name) =>
                {
                    (Outcome::OutOfRange, None)
                }
                None => {
                    added += 1;
                    let name_at = entry.names.len() as u32;
                    entry.names.extend_from_slice(name);
                    entry.fields.push(Field {
                        name_at,
                        name_len: name.len() as u32,
                        window: Window::first(v, ts),
                        seen: 0,
                        changed: true,
                        emitted: false,
                    });
                    entry.hint = entry.fields.len();
                    (Outcome::Counted, Some(entry.fields.len() - 1))
                }
            };
            if let Some(f) = at {
                if !slot_tried {
                    slot = entry.take_slot(ts);
                    slot_tried = true;
                }
                if let Some(j) = slot {
                    entry.mark(f, j);
                }
            }
            if at.is_some() && i < 64 {
                counted_here |= 1 << i;
            }
            set.dirty |= at.is_some();
            set.unsaved |= at.is_some();
            counts.add(outcome);
            each(i, outcome);
        }
        if added > 0 {
            entry.rehash_names();
        }
        if created {
            // No-ops for a meter's line of distinct, accepted names.
            entry.fields.shrink_to_fit();
            entry.names.shrink_to_fit();
        }
        if entry.fields.is_empty() {
            // Every field refused (or none given): no empty entry stays.
            // Only a series this line added can be empty (a series is
            // kept with its first counted field, and fields stay), and it
            // is the newest.
            window.pop_newest();
            // A hint of the series removed must not find the next one
            // numbered alike.
            set.id = next_set_id();
            if window.is_empty() {
                self.open.remove(&(lane, start));
            }
        }
        self.held += added;
        Added { maybe_counted, key }
    }

    /// The window of `ts` in `lane`, after moving the lane's watermark:
    /// every point moves its lane's event time, whatever becomes of it (a
    /// lane whose points are all refused for room must still close its
    /// windows and free the room; found in review: it stayed full).
    fn place(&mut self, lane: Lane, ts: i64) -> Result<i64, Outcome> {
        let rule = *self
            .rules
            .get(usize::from(lane.rule))
            .ok_or(Outcome::OutOfRange)?;
        let start = match self.last_start {
            // ts - s fits in u64 when ts >= s, whatever their signs.
            Some((l, s))
                if l == lane && ts >= s && (ts.wrapping_sub(s) as u64) < rule.every_ns as u64 =>
            {
                s
            }
            _ => {
                let s = window_start(ts, rule.every_ns).ok_or(Outcome::OutOfRange)?;
                self.last_start = Some((lane, s));
                s
            }
        };
        let mark = self.watermarks.get_or_insert_with(lane, || ts);
        *mark = (*mark).max(ts);
        if rule.forgotten(start, *mark) {
            return Err(Outcome::Late);
        }
        Ok(start)
    }
}

#[cfg(test)]
#[path = "windows_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "fast_path_tests.rs"]
mod fast_path_tests;

#[cfg(test)]
#[path = "bounds_tests.rs"]
mod bounds_tests;

#[path = "close.rs"]
mod close;

#[path = "sorted.rs"]
mod sorted;
use sorted::Sorted;

#[path = "rule.rs"]
mod rule;
pub use rule::Rule;

#[path = "outcome.rs"]
mod outcome;
pub use outcome::{Added, Counts, Outcome};

#[path = "series.rs"]
mod series;
use series::{Field, Series};

#[path = "series_table.rs"]
mod series_table;
use series_table::SeriesTable;

#[path = "series_hint.rs"]
mod series_hint;
pub use series_hint::SeriesHint;
use series_hint::next_set_id;

#[path = "emittable.rs"]
mod emittable;

#[path = "packed.rs"]
mod packed;
#[path = "state.rs"]
mod state;
pub use state::StateError;

#[path = "checkpoint.rs"]
mod checkpoint;
pub use checkpoint::Checkpoint;

#[cfg(test)]
#[path = "state_tests.rs"]
mod state_tests;
