//! The lines counted lately, by key (`line_key`): what recognises a
//! producer's retry whose points the per-series horizon
//! (`DEDUP_RECENT_TIMESTAMPS`, the greatest timestamps of a series'
//! window) no longer holds. A retry resends its body's lines as they were,
//! and lines sent out of order (a poller that caught up, several producers
//! for one series) are older than the greatest eight; the kill -9 test
//! against influxd counted such a retry twice before this
//! (tests/downsampling.rs).
//!
//! - The same point with the same values again, which InfluxDB stores
//!   once, is not counted again, whatever the reason it came twice. A
//!   different value at a counted timestamp is a different point: the
//!   horizon rules of `windows` apply to it.
//! - **Horizon:** the newest `RECENT_LINES` keys at least, `2 ×
//!   RECENT_LINES` at most. Keys go by generation: two tables of
//!   `RECENT_LINES` keys, the newer filled, the older only looked in; when
//!   the newer is full the older is dropped whole. No key is ever removed
//!   one by one: a removal from a hash set a line was a third of the
//!   downsampling's cost with several producers (BENCHMARKS.md, "The
//!   windows' cost, measured counting").
//! - Each checkpoint saves the keys new since the last one
//!   (`downsample_recent`, 8 bytes a line counted: the price in flash
//!   writes), the newest `RECENT_LINES` kept; after a restart those and the
//!   replay of the batches committed since are remembered again, so a retry
//!   whose first try a checkpoint covered is known after a crash too (found
//!   in review: it was not).
//! - Keys the first release saved (`line_key::legacy`) are kept aside and
//!   looked for, by that key, until `2 × RECENT_LINES` new lines were
//!   counted (when they would have been forgotten anyway).

use std::collections::HashSet;

/// Lines remembered at least: a producer's retry comes within seconds to
/// minutes of its first try; 65,536 lines is a minute at 1,000 lines/s.
/// Memory: two tables of twice as many slots, 8 bytes each, and their
/// filters (2.1 MiB).
pub const RECENT_LINES: usize = 65_536;

/// One generation: keys in open addressing (linear probing), at most half
/// its slots used. 0 marks a free slot (key 0 is kept as 1).
struct Generation {
    slots: Box<[u64]>,
    len: usize,
    /// 64 less the slots' log2: a key's top bits pick its first slot.
    shift: u32,
    /// Two bits a key, in one word (`filter_word`): a lookup of a key
    /// never remembered (nearly every lookup) mostly stops here, in a table
    /// a sixteenth of the slots' size, without the slots' cache miss.
    filter: Box<[u64]>,
}

/// Bits of a generation's filter a key: with two bits set a key in one
/// word, about 5.5 % of the lookups of keys not there go on to the slots.
const FILTER_BITS_PER_KEY: usize = 8;

/// The key a line partly counted is remembered by (some values refused:
/// full, a type conflict, a field named twice): its retry is a repeat, but
/// its batch is not whole. Another key of the same 64-bit space; saved
/// keys rest on this constant (a checkpoint's `downsample_keys`).
pub fn partly(key: u64) -> u64 {
    key ^ PARTLY
}

const PARTLY: u64 = 0x9e37_79b9_7f4a_7c15;

/// Where a key goes: its slot and filter bits come from this, the same
/// for a key and its `partly` twin (the smaller of the two, mixed by an
/// odd multiplier so the top bits spread), so one walk looks for both
/// (`contains_pair`: every line that may be a retry asks for both, and
/// three lookups of a line were 40 ns of the agent's profile). In memory
/// only: the tables are rebuilt from the keys at a start.
#[inline]
fn spot(key: u64) -> u64 {
    key.min(key ^ PARTLY).wrapping_mul(0xd6e8_feb8_6659_fd93)
}

impl Generation {
    fn new(keys: usize) -> Generation {
        let slots = (2 * keys.max(1)).next_power_of_two();
        let bits = (FILTER_BITS_PER_KEY * keys.max(1))
            .next_power_of_two()
            .max(64);
        Generation {
            slots: vec![0; slots].into_boxed_slice(),
            len: 0,
            shift: 64 - slots.trailing_zeros(),
            filter: vec![0; bits / 64].into_boxed_slice(),
        }
    }

    /// The filter's word of `key` and its two bits there: the word from
    /// the low bits of its `spot`, the bits from the middle ones (the
    /// slots take the top ones). Both bits in one word, so a lookup or an
    /// insert reads one place of the filter, not two (each a cache miss on
    /// the commit thread, which streams megabytes a batch between them;
    /// the false "maybe" rises from 4.9 % to about 5.5 %).
    #[inline]
    fn filter_word(&self, key: u64) -> (usize, u64) {
        let s = spot(key);
        let word = s as usize & (self.filter.len() - 1);
        (word, 1 << (s >> 32 & 63) | 1 << (s >> 38 & 63))
    }

    #[inline]
    fn may_hold(&self, key: u64) -> bool {
        let (word, bits) = self.filter_word(key);
        self.filter.get(word).is_some_and(|w| w & bits == bits)
    }

    #[inline]
    fn first(&self, key: u64) -> usize {
        // A shift of 64 (one slot) would overflow: `checked_shr` gives 0.
        spot(key).checked_shr(self.shift).unwrap_or(0) as usize
    }

    /// Whether `a` and whether `b` are held: one walk when they share a
    /// `spot` (a key and its `partly` twin, or the same key twice), else two.
    fn contains_pair(&self, a: u64, b: u64) -> (bool, bool) {
        if spot(a) != spot(b) {
            return (self.contains_pair(a, a).0, self.contains_pair(b, b).0);
        }
        if !self.may_hold(a) {
            return (false, false);
        }
        let mask = self.slots.len() - 1;
        let (mut has_a, mut has_b) = (false, false);
        let mut i = self.first(a);
        loop {
            match self.slots[i] {
                0 => return (has_a, has_b),
                k => {
                    has_a |= k == a;
                    has_b |= k == b;
                    i = (i + 1) & mask;
                }
            }
        }
    }

    /// Adds `key` (not yet in); the caller keeps `len` at most half the slots.
    fn insert(&mut self, key: u64) {
        let mask = self.slots.len() - 1;
        let mut i = self.first(key);
        loop {
            match self.slots[i] {
                0 => {
                    self.slots[i] = key;
                    self.len += 1;
                    let (word, bits) = self.filter_word(key);
                    if let Some(w) = self.filter.get_mut(word) {
                        *w |= bits;
                    }
                    return;
                }
                k if k == key => return,
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn clear(&mut self) {
        self.slots.fill(0);
        self.filter.fill(0);
        self.len = 0;
    }
}

/// Keys remembered but not yet in a table: put there together, so that
/// the CPU waits on their cache misses side by side, not one a line (the
/// tables are megabytes; one miss a line was 70 ns, most of a line's
/// downsampling cost, with the flush ~10: BENCHMARKS.md).
const PENDING_KEYS: usize = 512;
/// Bits of the filter that tells a lookup whether a key may be pending:
/// 8 per pending key, so a lookup flushes early once in ~8.
const PENDING_FILTER_BITS: usize = 4096;

pub struct RecentLines {
    newer: Generation,
    older: Generation,
    /// Remembered, in order, not yet in `newer` (at most `PENDING_KEYS`),
    /// and a bit per key's low bits (the tables index by the top ones).
    pending: Vec<u64>,
    pending_filter: [u64; PENDING_FILTER_BITS / 64],
    /// What `flush`'s first reads saw, kept so they are made.
    touched: u64,
    /// Keys per generation.
    cap: usize,
    /// The first release's keys (`line_key::legacy`), and how many lines
    /// may still be counted before they are forgotten.
    legacy: HashSet<u64>,
    legacy_left: usize,
}

impl Default for RecentLines {
    fn default() -> Self {
        RecentLines::with_capacity(RECENT_LINES)
    }
}

/// 0 marks a free slot: key 0 is taken as 1 (one more collision in 2^64).
#[inline]
fn stored(key: u64) -> u64 {
    key.max(1)
}

impl RecentLines {
    /// Remembers the newest `cap` keys at least, `2 × cap` at most.
    pub fn with_capacity(cap: usize) -> RecentLines {
        let cap = cap.max(1);
        RecentLines {
            newer: Generation::new(cap),
            older: Generation::new(cap),
            cap,
            pending: Vec::with_capacity(PENDING_KEYS),
            pending_filter: [0; PENDING_FILTER_BITS / 64],
            touched: 0,
            legacy: HashSet::new(),
            legacy_left: 0,
        }
    }

    /// Was `key` remembered (a repeat)?
    pub fn contains(&mut self, key: u64) -> bool {
        self.contains_pair(key).0
    }

    /// Whether `key` and whether `partly(key)` were remembered, in one walk
    /// of each table.
    pub fn contains_pair(&mut self, key: u64) -> (bool, bool) {
        let (a, b) = (stored(key), stored(partly(key)));
        // Flushed first when a key may be pending, or when the pending
        // keys would turn a generation over (the older one's keys then
        // forgotten): the answers are the ones an unbuffered set gives.
        if self.may_be_pending(a)
            || self.may_be_pending(b)
            || self.newer.len + self.pending.len() > self.cap
        {
            self.flush();
        }
        let (newer_a, newer_b) = self.newer.contains_pair(a, b);
        let (older_a, older_b) = self.older.contains_pair(a, b);
        (newer_a || older_a, newer_b || older_b)
    }

    /// Remembers `key`, looked for and not found (`contains`).
    pub fn insert(&mut self, key: u64) {
        if self.contains(key) {
            return;
        }
        self.remember(key);
    }

    /// `true` when `key` was remembered (a repeat); otherwise remembers it.
    pub fn seen(&mut self, key: u64) -> bool {
        if self.contains(key) {
            return true;
        }
        self.remember(key);
        false
    }

    /// Remembers `key` of a point known never counted before (newer than
    /// any of its series' window, so not remembered either): no lookup
    /// first. Most points of most series come in order.
    #[inline]
    pub fn remember(&mut self, key: u64) {
        let key = stored(key);
        if self.pending.len() >= PENDING_KEYS {
            self.flush();
        }
        self.pending.push(key);
        let bit = spot(key) as usize % PENDING_FILTER_BITS;
        self.pending_filter[bit / 64] |= 1 << (bit % 64);
        if self.legacy_left > 0 {
            self.legacy_left -= 1;
            if self.legacy_left == 0 {
                self.legacy = HashSet::new();
            }
        }
    }

    #[inline]
    fn may_be_pending(&self, key: u64) -> bool {
        let bit = spot(key) as usize % PENDING_FILTER_BITS;
        self.pending_filter[bit / 64] & 1 << (bit % 64) != 0
    }

    /// Puts the pending keys into the tables, in order: a generation
    /// fills and turns over exactly as if each had gone in at once.
    fn flush(&mut self) {
        // First every key's slot and filter word read, loads that wait on
        // nothing, so the CPU has many cache misses in flight at once; then
        // the inserts find them in cache. (The reads' sum is kept only so
        // that they are not optimised away.)
        let mut touched = 0u64;
        for &key in &self.pending {
            let at = self.newer.first(key);
            touched ^= self.newer.slots.get(at).copied().unwrap_or(0);
            let (word, _) = self.newer.filter_word(key);
            touched ^= self.newer.filter.get(word).copied().unwrap_or(0);
        }
        self.touched ^= touched;
        for i in 0..self.pending.len() {
            if self.newer.len >= self.cap {
                std::mem::swap(&mut self.newer, &mut self.older);
                self.newer.clear();
            }
            self.newer.insert(self.pending[i]);
        }
        self.pending.clear();
        self.pending_filter = [0; PENDING_FILTER_BITS / 64];
    }

    /// Keys a checkpoint of the first release saved: looked for with
    /// `legacy_contains` until as many lines were counted as the horizon
    /// holds at most.
    pub fn remember_legacy(&mut self, keys: &[u64]) {
        self.legacy.extend(keys);
        self.legacy_left = if self.legacy.is_empty() {
            0
        } else {
            2 * self.cap
        };
    }

    /// Whether a line may have a legacy key at all (to skip computing it).
    pub fn has_legacy(&self) -> bool {
        !self.legacy.is_empty()
    }

    /// Was this legacy key saved (computed only when `has_legacy`)?
    pub fn legacy_contains(&self, key: u64) -> bool {
        self.legacy.contains(&key)
    }

    /// Keys remembered now (between `cap` and `2 × cap` once that many
    /// lines were counted).
    pub fn len(&mut self) -> usize {
        // Flushed first: a key pending twice is in a table once (found in
        // review: counted twice).
        self.flush();
        self.newer.len + self.older.len
    }

    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[path = "recent_tests.rs"]
mod tests;
