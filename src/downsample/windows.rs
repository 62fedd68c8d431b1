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
//! - **Repeats**: a point whose series, field and timestamp are among the
//!   `DEDUP_RECENT_TIMESTAMPS` greatest counted in its window is a
//!   producer's retry (InfluxDB stores it once) and is not counted again.
//!   Beyond that horizon (older than the eight latest) a repeat counts twice;
//!   a different value at a counted timestamp is taken for a repeat and the
//!   first value stays (InfluxDB would keep the last).
//! - Every point moves its lane's watermark, counted or not; one point far
//!   ahead (a producer with a wrong clock) moves it for every series of the
//!   lane, as the issue defines event time per rule and destination.
//! - **Bounds**: at most `max_open` windows (series × field × window) exist;
//!   a point that would open one more is `Full`, counted by the caller, and
//!   kept raw. Memory is this bound times a window's size, never the load.
//!
//! Determinism (what durability will rest on): the state is a function of
//! the points given, in their order, and of the `close` calls between them;
//! nothing reads a clock. Replaying the same batches after a restart from a
//! checkpoint rebuilds the same windows and emits the same lines.

use super::aggregate::{Aggregates, TypeConflict, Window, window_start};
use crate::lineproto::numbers::push_i64;
use crate::lineproto::split::Value;
use std::collections::BTreeMap;

/// Latest counted timestamps per series × field × window kept to recognise
/// a retried point: a producer that lost an answer resends its last body,
/// a few points per series; 8 × 8 bytes a window bounds the cost.
pub const DEDUP_RECENT_TIMESTAMPS: usize = 8;

/// One rule's windowing, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// Window length (`downsample`), > 0.
    pub every_ns: i64,
    /// How far past a window's end the watermark goes before it closes.
    pub grace_ns: i64,
    /// How long past its close a window is kept for late points.
    pub max_lateness_ns: i64,
    /// `None`: the defaults for each field's type.
    pub aggregates: Option<Aggregates>,
}

/// A rule applied to one destination's points: windows, watermark and
/// emitted lines are per lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lane {
    pub rule: u16,
    pub dest: u32,
}

/// What became of a point given to `add`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Counted,
    /// A retry of a point already counted.
    Repeat,
    /// For a window already forgotten (past `max_lateness`).
    Late,
    /// `max_open` windows exist already.
    Full,
    /// The field's type differs from its window's.
    TypeConflict,
    /// A timestamp whose window starts before the earliest i64 nanosecond,
    /// or a lane whose rule does not exist.
    OutOfRange,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    lane: Lane,
    start: i64,
    /// Measurement and tags, as written.
    series: Box<[u8]>,
    field: Box<[u8]>,
}

#[derive(Debug, Clone)]
struct Open {
    window: Window,
    /// The latest counted timestamps, oldest first.
    recent: heapless::Deque<i64, DEDUP_RECENT_TIMESTAMPS>,
    /// Counted into since it was last emitted (or never emitted).
    changed: bool,
    emitted: bool,
}

/// Counters of what the windows did, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub counted: u64,
    pub repeats: u64,
    pub late: u64,
    pub full: u64,
    pub type_conflicts: u64,
    /// Windows emitted for the first time, and again after late points.
    pub emitted: u64,
    pub re_emitted: u64,
}

pub struct Windows {
    rules: Vec<Rule>,
    open: BTreeMap<Key, Open>,
    watermarks: BTreeMap<Lane, i64>,
    max_open: usize,
    pub counts: Counts,
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
            open: BTreeMap::new(),
            watermarks: BTreeMap::new(),
            max_open,
            counts: Counts::default(),
        }
    }

    /// Windows open (emitted or not, not yet forgotten).
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Counts one field of one point into its window.
    pub fn add(&mut self, lane: Lane, series: &[u8], field: &[u8], v: &Value, ts: i64) -> Outcome {
        let outcome = self.add_inner(lane, series, field, v, ts);
        let c = &mut self.counts;
        match outcome {
            Outcome::Counted => c.counted += 1,
            Outcome::Repeat => c.repeats += 1,
            Outcome::Late => c.late += 1,
            Outcome::Full => c.full += 1,
            Outcome::TypeConflict => c.type_conflicts += 1,
            Outcome::OutOfRange => {}
        }
        outcome
    }

    fn add_inner(
        &mut self,
        lane: Lane,
        series: &[u8],
        field: &[u8],
        v: &Value,
        ts: i64,
    ) -> Outcome {
        let Some(rule) = self.rules.get(usize::from(lane.rule)).copied() else {
            return Outcome::OutOfRange;
        };
        let Some(start) = window_start(ts, rule.every_ns) else {
            return Outcome::OutOfRange;
        };
        // Every point moves its lane's event time, whatever becomes of it:
        // a lane whose points are all refused for room must still close its
        // windows and free the room (found in review: it stayed full).
        let previous = self.watermarks.get(&lane).copied();
        let watermark = previous.map_or(ts, |w| w.max(ts));
        self.watermarks.insert(lane, watermark);
        if forgotten(&rule, start, watermark) {
            return Outcome::Late;
        }
        let key = Key {
            lane,
            start,
            series: series.into(),
            field: field.into(),
        };
        match self.open.get_mut(&key) {
            Some(open) => {
                if open.recent.iter().any(|&t| t == ts) {
                    return Outcome::Repeat;
                }
                if open.window.add(v, ts) == Err(TypeConflict) {
                    return Outcome::TypeConflict;
                }
                remember(&mut open.recent, ts);
                open.changed = true;
            }
            None => {
                if self.open.len() >= self.max_open {
                    return Outcome::Full;
                }
                let mut recent = heapless::Deque::new();
                let _ = recent.push_back(ts);
                self.open.insert(
                    key,
                    Open {
                        window: Window::first(v, ts),
                        recent,
                        changed: true,
                        emitted: false,
                    },
                );
            }
        }
        Outcome::Counted
    }

    /// Emits each closed window that changed since it was last emitted, as
    /// `emit(lane, line)` with one line per lane, window and series (the
    /// fields of every field's window, `\n`-terminated), and forgets the
    /// windows past `max_lateness`. Lines come in key order: lane, window
    /// start, series.
    pub fn close(&mut self, mut emit: impl FnMut(Lane, &[u8])) {
        let mut line: Vec<u8> = Vec::new();
        let mut current: Option<(Lane, i64, Box<[u8]>)> = None;
        let mut finish = |line: &mut Vec<u8>, current: &Option<(Lane, i64, Box<[u8]>)>| {
            if let Some((lane, start, _)) = current
                && !line.is_empty()
            {
                line.push(b' ');
                push_i64(line, *start);
                line.push(b'\n');
                emit(*lane, line);
            }
            line.clear();
        };
        for (key, open) in self.open.iter_mut() {
            let Some(rule) = self.rules.get(usize::from(key.lane.rule)) else {
                continue;
            };
            let Some(&w) = self.watermarks.get(&key.lane) else {
                continue;
            };
            if !open.changed || !closed(rule, key.start, w) {
                continue;
            }
            let same = current.as_ref().is_some_and(|(l, s, series)| {
                *l == key.lane && *s == key.start && **series == *key.series
            });
            if !same {
                finish(&mut line, &current);
                current = Some((key.lane, key.start, key.series.clone()));
            }
            let aggs = rule
                .aggregates
                .unwrap_or_else(|| Aggregates::defaults_for(open.window.kind()));
            let mark = line.len();
            if line.is_empty() {
                line.extend_from_slice(&key.series);
            }
            let fields_at = line.len();
            open.window.push_fields(&key.field, aggs, &mut line);
            open.changed = false;
            if line.len() == fields_at {
                // Nothing to write (a string window asked only for a mean).
                line.truncate(mark);
                continue;
            }
            if mark == 0 {
                // The first field of the line: no comma before it.
                line[fields_at] = b' ';
            }
            if open.emitted {
                self.counts.re_emitted += 1;
            } else {
                self.counts.emitted += 1;
                open.emitted = true;
            }
        }
        finish(&mut line, &current);
        let (rules, watermarks) = (&self.rules, &self.watermarks);
        self.open.retain(|key, _| {
            let rule = rules.get(usize::from(key.lane.rule));
            let w = watermarks.get(&key.lane);
            !matches!((rule, w), (Some(r), Some(&w)) if forgotten(r, key.start, w))
        });
    }
}

#[cfg(test)]
impl Windows {
    /// Moves a lane's watermark to `ts` as a point there would.
    fn advance_to(&mut self, lane: Lane, ts: i64) {
        let w = self.watermarks.entry(lane).or_insert(ts);
        *w = (*w).max(ts);
    }
}

/// Keeps `ts` among the `DEDUP_RECENT_TIMESTAMPS` greatest counted: a
/// retried body resends its points in their order, and keeping the latest
/// by arrival let each re-counted old point push out the next one, so a
/// retry of nine points counted all nine twice (found in review). Kept by
/// value, a retry is recognised for all but its points older than the eight
/// latest. `recent` is sorted, oldest first.
fn remember(recent: &mut heapless::Deque<i64, DEDUP_RECENT_TIMESTAMPS>, ts: i64) {
    if recent.is_full() {
        if recent.front().is_some_and(|&oldest| ts < oldest) {
            return;
        }
        recent.pop_front();
    }
    // Insert in order: at most eight moves.
    let mut kept: heapless::Vec<i64, DEDUP_RECENT_TIMESTAMPS> = heapless::Vec::new();
    while let Some(&last) = recent.back() {
        if last <= ts {
            break;
        }
        let _ = kept.push(last);
        recent.pop_back();
    }
    let _ = recent.push_back(ts);
    while let Some(t) = kept.pop() {
        let _ = recent.push_back(t);
    }
}

/// The watermark has passed the window's end by its grace.
fn closed(rule: &Rule, start: i64, watermark: i64) -> bool {
    let close_at = start
        .saturating_add(rule.every_ns)
        .saturating_add(rule.grace_ns);
    watermark >= close_at
}

/// The watermark has passed the window's close by `max_lateness`.
fn forgotten(rule: &Rule, start: i64, watermark: i64) -> bool {
    let forget_at = start
        .saturating_add(rule.every_ns)
        .saturating_add(rule.grace_ns)
        .saturating_add(rule.max_lateness_ns);
    watermark > forget_at
}

#[cfg(test)]
#[path = "windows_tests.rs"]
mod tests;
