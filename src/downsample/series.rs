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
/// meter's 10 fields share one key, one table entry and one ring (150 bytes
/// a field window, 449 when each field had its own: `benches/downsample.rs`).
#[derive(Debug, Clone)]
pub(super) struct Series {
    /// In the order the fields first came.
    pub(super) fields: Vec<Field>,
    /// The fields' names, one after the other.
    pub(super) names: Vec<u8>,
    /// The `DEDUP_RECENT_TIMESTAMPS` greatest timestamps counted in this
    /// window (any field), in no order; `slots_used` of them are valid.
    /// Field `f` was counted at `slots[j]` iff `seen(f, j)`.
    pub(super) slots: [i64; DEDUP_RECENT_TIMESTAMPS],
    /// Bit `f` of `masks[j]`: field `f` (of the first `MASK_FIELDS`) was
    /// counted at `slots[j]`; past them, bit `j` of the field's `seen`.
    /// By slot rather than by field: a line counted marks its fields with
    /// one store, and a slot taken over is cleared with one (two walks
    /// over the fields a line were, profiled).
    masks: [u64; DEDUP_RECENT_TIMESTAMPS],
    pub(super) slots_used: u8,
    /// The greatest of `slots` (`i64::MIN` when none is used): a point
    /// newer than it has no slot and is no repeat by them, told without
    /// reading the ring (the in-order line's check; scanning the slots
    /// twice a line was a sixth of the windows' cost, profiled). Kept by
    /// `take_slot`, the only writer of `slots` but the restore (`restored`).
    greatest: i64,
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
    /// Bit `j`: counted at `Series::slots[j]`, for a field past the
    /// series' first `MASK_FIELDS` (theirs are in `Series::masks`; this is
    /// 0 for them).
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
            masks: [0; DEDUP_RECENT_TIMESTAMPS],
            slots_used: 0,
            greatest: i64::MIN,
            hint: 0,
            key_hash: 0,
            names_hash: 0,
            hashed_with: None,
        }
    }

    /// `new`, with room for `fields` fields of `names` bytes of names.
    pub(super) fn with_capacity(fields: usize, names: usize) -> Series {
        Series {
            fields: Vec::with_capacity(fields),
            names: Vec::with_capacity(names),
            ..Series::new()
        }
    }

    /// A series' window as a checkpoint saved it: each field with its
    /// `seen` bits by slot (`seen_bits`), whatever its place.
    pub(super) fn restored(
        mut fields: Vec<Field>,
        names: Vec<u8>,
        slots: [i64; DEDUP_RECENT_TIMESTAMPS],
        slots_used: u8,
    ) -> Series {
        let used = &slots[..usize::from(slots_used).min(DEDUP_RECENT_TIMESTAMPS)];
        let mut masks = [0u64; DEDUP_RECENT_TIMESTAMPS];
        for (f, field) in fields.iter_mut().enumerate().take(MASK_FIELDS) {
            for (j, mask) in masks.iter_mut().enumerate() {
                *mask |= u64::from(field.seen >> j & 1) << f;
            }
            field.seen = 0;
        }
        Series {
            fields,
            names,
            greatest: used.iter().copied().max().unwrap_or(i64::MIN),
            slots,
            masks,
            slots_used,
            ..Series::new()
        }
    }

    /// Whether field `f` was counted at slot `j`.
    #[inline]
    pub(super) fn seen(&self, f: usize, j: usize) -> bool {
        if f < MASK_FIELDS {
            self.masks[j] >> f & 1 != 0
        } else {
            self.fields
                .get(f)
                .is_some_and(|field| field.seen >> j & 1 != 0)
        }
    }

    /// Field `f` counted at slot `j`.
    #[inline]
    pub(super) fn mark(&mut self, f: usize, j: usize) {
        if f < MASK_FIELDS {
            self.masks[j] |= 1 << f;
        } else if let Some(field) = self.fields.get_mut(f) {
            field.seen |= 1 << j;
        }
    }

    /// Field `f`'s bits by slot (bit `j`: `seen(f, j)`), as a checkpoint
    /// saves them.
    pub(super) fn seen_bits(&self, f: usize) -> u8 {
        (0..DEDUP_RECENT_TIMESTAMPS).fold(0, |bits, j| bits | u8::from(self.seen(f, j)) << j)
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
            && fields.len() <= MASK_FIELDS
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
        // Taken once a field counted, as the general loop does; the line's
        // fields are the series' own in order, at most 64 (`holds_in_order`):
        // their bits are `counted`'s.
        if let Some(j) = self.take_slot(ts) {
            self.masks[j] |= counted;
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
        if ts > self.greatest {
            return false;
        }
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
            self.greatest = self.greatest.max(ts);
            return Some(used);
        }
        let (j, &least) = self.slots.iter().enumerate().min_by_key(|&(_, &t)| t)?;
        if ts < least {
            return None;
        }
        self.slots[j] = ts;
        self.greatest = self.greatest.max(ts);
        self.masks[j] = 0;
        for f in self.fields.iter_mut().skip(MASK_FIELDS) {
            f.seen &= !(1u8 << j);
        }
        Some(j)
    }
}

/// A series' first fields whose bits by slot are kept in `Series::masks`
/// (a u64 a slot); the shortcut takes lines of at most as many fields.
pub(super) const MASK_FIELDS: usize = 64;

/// `a == b`, without a call to `memcmp` for the short names fields have (a
/// call a field was measurable, `benches/downsample.rs`): up to 16 bytes as
/// two overlapping words (the head and the tail), not byte by byte (the
/// names' compare was a tenth of the windows' cost a line, profiled).
#[inline]
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        8..=SHORT_NAME_BYTES => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        _ => a == b,
    }
}

/// The 4 bytes of `s` at `at` (the caller checked the length).
#[inline(always)]
fn word4(s: &[u8], at: usize) -> u32 {
    s.get(at..at + 4)
        .and_then(|w| w.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

/// The 8 bytes of `s` at `at` (the caller checked the length).
#[inline(always)]
fn word8(s: &[u8], at: usize) -> u64 {
    s.get(at..at + 8)
        .and_then(|w| w.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}

/// Names up to this long are compared as two words, inline.
const SHORT_NAME_BYTES: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_same_exactly_when_every_byte_and_the_length_agree() {
        // Every length across the word boundaries, a difference at each
        // byte (the overlapping words must see all of them), and lengths
        // that differ with a shared prefix.
        for n in 0..40usize {
            let a: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(same(&a, &a.clone()), "length {n}");
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x20;
                assert!(!same(&a, &b), "length {n}, byte {i}");
                assert!(!same(&b, &a), "length {n}, byte {i}");
            }
            let mut longer = a.clone();
            longer.push(b'z');
            assert!(!same(&a, &longer), "length {n} against {}", n + 1);
            assert!(!same(&longer, &a), "length {} against {n}", n + 1);
        }
        // Unicode names: bytes, not characters.
        assert!(same("é_ü".as_bytes(), "é_ü".as_bytes()));
        assert!(!same("é_ü".as_bytes(), "é_u".as_bytes()));
    }

    /// A slot taken over by a newer timestamp forgets which fields were
    /// counted at the old one, for a series' first fields (`masks`) and for
    /// those past them (`Field::seen`) alike: else a field first counted at
    /// the new timestamp would be taken for a repeat.
    #[test]
    fn a_slot_taken_over_forgets_the_fields_counted_at_its_old_timestamp() {
        use crate::downsample::windows::{Lane, Outcome, Rule, Windows};
        let rule = Rule {
            every_ns: 1_000,
            grace_ns: 0,
            max_lateness_ns: 1_000,
            aggregates: None,
        };
        let mut w = Windows::new(vec![rule], 10_000);
        let lane = Lane { rule: 0, dest: 0 };
        let names: Vec<String> = (0..70).map(|f| format!("f{f}")).collect();
        let wide: Vec<(&[u8], Value)> = (names.iter())
            .map(|n| (n.as_bytes(), Value::Int(1)))
            .collect();
        let mut outcomes = Vec::new();
        w.add_line(lane, b"m", &wide, 1, |_, o| outcomes.push(o));
        assert_eq!(outcomes, vec![Outcome::Counted; 70]);
        // Eight newer timestamps of f0 alone: the slot of ts 1 goes to ts 9.
        for ts in 2..=9 {
            assert_eq!(
                w.add(lane, b"m", b"f0", &Value::Int(2), ts),
                Outcome::Counted
            );
        }
        for f in [5, 63, 64, 69] {
            let name = names[f].as_bytes();
            assert_eq!(
                w.add(lane, b"m", name, &Value::Int(3), 9),
                Outcome::Counted,
                "f{f} at 9, never counted there"
            );
            assert_eq!(
                w.add(lane, b"m", name, &Value::Int(3), 9),
                Outcome::Repeat,
                "f{f} at 9 again"
            );
        }
    }
}
