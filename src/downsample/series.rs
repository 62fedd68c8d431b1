//! One series' window of one lane: its fields' windows, the timestamps
//! counted lately and which fields each (what tells a retry), and the
//! lookups `windows` makes on every line.

use super::DEDUP_RECENT_TIMESTAMPS;
use super::{Counts, Outcome};
use crate::downsample::aggregate::Window;
use crate::downsample::line_key;
use crate::lineproto::split::Value;

/// One series' window: its fields' windows, and the timestamps counted
/// lately with which fields each. Held per series rather than per field: a
/// meter's 10 fields share one key, one map entry and one ring (150 bytes
/// a field window, 449 when each field had its own: `benches/downsample.rs`).
#[derive(Debug, Clone)]
pub(super) struct Series {
    /// In the order the fields first came.
    pub(super) fields: Vec<Field>,
    /// The fields' names, one after the other.
    pub(super) names: Vec<u8>,
    /// The `DEDUP_RECENT_TIMESTAMPS` greatest timestamps counted in this
    /// window (any field), in no order; `slots_used` of them are valid.
    /// Field `f` was counted at `slots[j]` iff bit `j` of `f.seen`.
    pub(super) slots: [i64; DEDUP_RECENT_TIMESTAMPS],
    pub(super) slots_used: u8,
    /// Where the next field of a line is likely found: fields come in the
    /// same order line after line.
    pub(super) hint: usize,
    /// `line_key::bytes_hash` of the series key, and `line_key::names_hash`
    /// of `fields`' names in their order, keyed by `hashed_with` (the lane's
    /// seed; `None`: not yet, as after a restore): the parts of a line's
    /// key that the common line (`holds_in_order`) need not hash again.
    pub(super) key_hash: u64,
    pub(super) names_hash: u64,
    pub(super) hashed_with: Option<u64>,
}

#[derive(Debug, Clone)]
pub(super) struct Field {
    /// The name: `Series::names[name_at..name_at + name_len]` (one buffer
    /// a series, not an allocation a field: comparing names then touches
    /// one place in memory, not ten).
    pub(super) name_at: u32,
    pub(super) name_len: u32,
    pub(super) window: Window,
    /// Bit `j`: counted at `Series::slots[j]`.
    pub(super) seen: u8,
    /// Counted into since it was last emitted (or never emitted).
    pub(super) changed: bool,
    pub(super) emitted: bool,
}

impl Field {
    pub(super) fn name(&self) -> std::ops::Range<usize> {
        let at = self.name_at as usize;
        at..at + self.name_len as usize
    }
}

impl Series {
    /// The window of a series not yet counted in it.
    pub(super) fn new() -> Series {
        Series {
            fields: Vec::new(),
            names: Vec::new(),
            slots: [0; DEDUP_RECENT_TIMESTAMPS],
            slots_used: 0,
            hint: 0,
            key_hash: 0,
            names_hash: 0,
            hashed_with: None,
        }
    }

    /// The key's parts this series keeps, hashed with `lane_seed` (once a
    /// window; `series` is the series key it is held under).
    #[inline]
    pub(super) fn hash_with(&mut self, lane_seed: u64, series: &[u8]) {
        if self.hashed_with != Some(lane_seed) {
            self.hashed_with = Some(lane_seed);
            self.key_hash = line_key::bytes_hash(lane_seed, series);
            self.rehash_names();
        }
    }

    /// `names_hash` again, after fields were added.
    pub(super) fn rehash_names(&mut self) {
        let names = &self.names;
        self.names_hash = line_key::names_hash(
            self.hashed_with.unwrap_or(0),
            (self.fields.iter()).map(|f| names.get(f.name()).unwrap_or_default()),
        );
    }

    /// The key of a line of this series (`line_key`); `in_order`: the
    /// line holds this series' fields in their order (`holds_in_order`),
    /// so their names need no hashing.
    #[inline]
    pub(super) fn line_key(
        &self,
        lane_seed: u64,
        fields: &[(&[u8], Value)],
        ts: i64,
        in_order: bool,
    ) -> u64 {
        let names = if in_order {
            self.names_hash
        } else {
            line_key::names_hash(lane_seed, fields.iter().map(|(n, _)| *n))
        };
        line_key::key_of(lane_seed, self.key_hash, names, fields, ts)
    }

    /// The field named `name`, looked for first where the hint points.
    pub(super) fn find(&mut self, name: &[u8]) -> Option<usize> {
        // Wrapped by a compare, not `%`: a division a field was a tenth of
        // the windows' cost a line (`benches/downsample.rs`).
        let n = self.fields.len();
        let mut f = if self.hint < n { self.hint } else { 0 };
        for _ in 0..n {
            if self
                .names
                .get(self.fields[f].name())
                .is_some_and(|n| same(n, name))
            {
                self.hint = f + 1;
                return Some(f);
            }
            f += 1;
            if f == n {
                f = 0;
            }
        }
        None
    }

    /// Whether `fields` are this series' fields, each once, in the order
    /// held (at most 64: the fast path's bit set).
    pub(super) fn holds_in_order(&self, fields: &[(&[u8], Value)]) -> bool {
        fields.len() == self.fields.len()
            && fields.len() <= 64
            && (fields.iter().zip(&self.fields))
                .all(|((name, _), f)| self.names.get(f.name()).is_some_and(|n| same(n, name)))
    }

    /// Counts a line without a slot at `ts` (never counted in this window,
    /// or older than the ring and not a line counted lately: no field of it
    /// is a repeat by the slots) whose fields are this
    /// series' own in their order (`holds_in_order`: none new, none twice):
    /// the look-ups a field of the general loop skipped. Returns whether a
    /// field counted, and the line's key when `key` was given (started
    /// by `key_chains`).
    pub(super) fn add_in_order(
        &mut self,
        fields: &[(&[u8], Value)],
        ts: i64,
        mut key: Option<line_key::KeyChains>,
        counts: &mut Counts,
        mut each: impl FnMut(usize, Outcome),
    ) -> (bool, Option<u64>) {
        let mut counted = 0u64;
        // The lane's (`hash_with` came first); only strings use it.
        let seed = self.hashed_with.unwrap_or(0);
        for (i, ((_, v), field)) in fields.iter().zip(self.fields.iter_mut()).enumerate() {
            let (tag, bits) = line_key::typed(seed, v);
            if let Some(k) = key.as_mut() {
                k.push(tag, bits);
            }
            let outcome = if field.window.add_typed(v, bits, ts).is_ok() {
                field.changed = true;
                counted |= 1 << i;
                Outcome::Counted
            } else {
                Outcome::TypeConflict
            };
            counts.add(outcome);
            each(i, outcome);
        }
        let key = key.map(line_key::KeyChains::finish);
        if counted == 0 {
            return (false, key);
        }
        // Taken once a field counted, as the general loop does.
        if let Some(j) = self.take_slot(ts) {
            for (i, field) in self.fields.iter_mut().enumerate() {
                if counted & 1 << i != 0 {
                    field.seen |= 1 << j;
                }
            }
        }
        (true, key)
    }

    /// A key made as the line is counted (`add_in_order`), from the parts
    /// this series keeps: the line holds its fields in their order.
    #[inline]
    pub(super) fn key_chains(&self, lane_seed: u64, fields: usize, ts: i64) -> line_key::KeyChains {
        line_key::KeyChains::start(lane_seed, self.key_hash, self.names_hash, fields, ts)
    }

    /// Whether a point at `ts` may have been counted in this window: `ts`
    /// has a slot, or is older than every slot of a full ring. The slots
    /// are the greatest timestamps counted (`take_slot`), so one not among
    /// them yet newer than the least of a full ring (or of any ring not
    /// full) never was: a sure "no", without asking the lines counted
    /// lately (a lookup a line out of order, with producers writing one
    /// series in parallel, cost more than the windows' work: BENCHMARKS.md,
    /// "The windows' cost, measured counting").
    #[inline]
    pub(super) fn may_have_counted(&self, ts: i64) -> bool {
        let used = &self.slots[..usize::from(self.slots_used)];
        let (mut at, mut least) = (false, i64::MAX);
        for &t in used {
            at |= t == ts;
            least = least.min(t);
        }
        at || (used.len() == DEDUP_RECENT_TIMESTAMPS && ts < least)
    }

    /// The slot holding `ts`, if it is among the greatest counted.
    pub(super) fn slot_of(&self, ts: i64) -> Option<usize> {
        self.slots[..usize::from(self.slots_used)]
            .iter()
            .position(|&t| t == ts)
    }

    /// A slot for `ts`, newly among the `DEDUP_RECENT_TIMESTAMPS` greatest
    /// counted: a free one, or the least one's when `ts` is greater than it
    /// (its fields' bits cleared). `None`: `ts` is older than all of them.
    ///
    /// Kept by value, not by arrival: a retried body resends its points in
    /// their order, and keeping the latest by arrival let each re-counted
    /// old point push out the next one, so a retry of nine points counted
    /// all nine twice (found in review). A retry is recognised for all but
    /// its points older than the eight greatest.
    pub(super) fn take_slot(&mut self, ts: i64) -> Option<usize> {
        let used = usize::from(self.slots_used);
        if used < DEDUP_RECENT_TIMESTAMPS {
            self.slots[used] = ts;
            self.slots_used += 1;
            return Some(used);
        }
        let (j, &least) = self.slots.iter().enumerate().min_by_key(|&(_, &t)| t)?;
        if ts < least {
            return None;
        }
        self.slots[j] = ts;
        for f in &mut self.fields {
            f.seen &= !(1u8 << j);
        }
        Some(j)
    }
}

/// `a == b`, without a call to `memcmp` for the short names fields have (a
/// call a field was measurable, `benches/downsample.rs`).
#[inline]
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && if a.len() > SHORT_NAME_BYTES {
            a == b
        } else {
            a.iter().zip(b).all(|(x, y)| x == y)
        }
}

/// Names up to this long are compared byte by byte, inline.
const SHORT_NAME_BYTES: usize = 16;
