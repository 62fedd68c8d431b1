//! The lines counted lately, by hash: what recognises a producer's retry
//! whose points the per-series horizon (`DEDUP_RECENT_TIMESTAMPS`, the
//! greatest timestamps of a series' window) no longer holds. A retry
//! resends its body's lines as they were, and lines sent out of order (a
//! poller that caught up, several producers for one series) are older
//! than the greatest eight; the kill -9 test against influxd counted such
//! a retry twice before this (tests/downsampling.rs).
//!
//! - A line is remembered by a 64-bit hash of its point (series key,
//!   fields with typed values, timestamp) and its lane: the same point with
//!   the same values again, which InfluxDB stores once, is not counted
//!   again, whatever the reason it came twice. A different value at a
//!   counted timestamp is a different point: the horizon rules of
//!   `windows` apply to it.
//! - At most `RECENT_LINES` are remembered, the oldest forgotten first.
//!   Each checkpoint saves the keys new since the last one
//!   (`downsample_recent`, 8 bytes a line counted: the price in flash
//!   writes), so after a restart the saved keys and then the replay of the
//!   batches committed since rebuild the same set as an uninterrupted run
//!   holds. A retry whose first try a checkpoint covered (an answer lost on
//!   the network, the shutdown checkpoint) is known after a crash too (found
//!   in review: it was not).
//!
//! A hash collision takes a new line for a retry: with 64 bits and 65,536
//! lines remembered, about one chance in 2^48 a line.

use crate::lineproto::split::Value;
use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};

/// Lines remembered: a producer's retry comes within seconds to minutes of
/// its first try; 65,536 lines is a minute at 1,000 lines/s, about 1.5 MB
/// (a hash in the set and one in the queue a line).
pub const RECENT_LINES: usize = 65_536;

/// A fixed seed: the same line hashes alike in every process (the replay
/// after a restart must recognise what the run before counted).
const SEED: u64 = 0x6869_7373_7276_6c6e;

/// The keys are hashes already: the set takes them as they are.
#[derive(Default)]
struct AsIs(u64);

impl Hasher for AsIs {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64`s are hashed; any other input still spreads.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub struct RecentLines {
    set: HashSet<u64, std::hash::BuildHasherDefault<AsIs>>,
    /// Every key remembered, oldest first; the newest `unsynced` of them
    /// not yet in `set`.
    order: VecDeque<u64>,
    unsynced: usize,
    cap: usize,
}

impl Default for RecentLines {
    fn default() -> Self {
        RecentLines::with_capacity(RECENT_LINES)
    }
}

impl RecentLines {
    pub fn with_capacity(cap: usize) -> RecentLines {
        RecentLines {
            set: HashSet::with_capacity_and_hasher(cap.min(RECENT_LINES) + 1, Default::default()),
            order: VecDeque::new(),
            unsynced: 0,
            cap: cap.max(1),
        }
    }

    /// The hash of a point (series key, fields with their typed values,
    /// timestamp) in the lane `lane` (its rule and destination ids). Typed,
    /// not the text: the replay after a restart reads the lines back from
    /// the codec, which spells numbers its own way (`23` comes back `23.0`,
    /// `T` as `true`), and must know the producer's retry all the same
    /// (found in review). The point is laid out in `scratch` and hashed in
    /// one pass (a hasher call a field cost more than the windows' work:
    /// `benches/downsample.rs`).
    pub fn key(
        scratch: &mut Vec<u8>,
        series: &[u8],
        fields: &[(&[u8], Value)],
        ts: i64,
        lane: (u16, u32),
    ) -> u64 {
        // Sized first, then written in place: one capacity check a line,
        // not one a piece (the extends were most of the key's cost,
        // `benches/downsample.rs`). The bytes are as they always were: the
        // keys a checkpoint saved still match after an upgrade.
        const HEAD: usize = 2 + 4 + 8;
        const VALUE: usize = 1 + 8;
        let mut len = HEAD + 4 + series.len();
        for (name, v) in fields {
            len += 4 + name.len() + VALUE;
            if let Value::Str(t) = v {
                len += 4 + t.len();
            }
        }
        scratch.clear();
        scratch.resize(len, 0);
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            if let Some(to) = scratch.get_mut(at..at + bytes.len()) {
                to.copy_from_slice(bytes);
            }
            at += bytes.len();
        };
        put(&lane.0.to_le_bytes());
        put(&lane.1.to_le_bytes());
        put(&ts.to_le_bytes());
        put(&(series.len() as u32).to_le_bytes());
        put(series);
        for (name, v) in fields {
            put(&(name.len() as u32).to_le_bytes());
            put(name);
            let (tag, bits): (u8, u64) = match v {
                Value::Decimal(d) => (0, d.to_f64().to_bits()),
                Value::Float(f) => (0, f.to_bits()),
                Value::Int(i) => (1, *i as u64),
                Value::Uint(u) => (2, *u),
                Value::Bool(b) => (3, u64::from(*b)),
                Value::Str(t) => {
                    put(&(t.len() as u32).to_le_bytes());
                    put(t);
                    (4, 0)
                }
            };
            put(&[tag]);
            put(&bits.to_le_bytes());
        }
        let mut h = foldhash::fast::FixedState::with_seed(SEED).build_hasher();
        h.write(scratch);
        h.finish()
    }

    /// Was `key` remembered (a repeat)?
    pub fn contains(&mut self, key: u64) -> bool {
        self.sync();
        self.set.contains(&key)
    }

    /// Remembers `key`, looked for and not found (`contains`).
    pub fn insert(&mut self, key: u64) {
        self.sync();
        if self.set.insert(key) {
            self.order.push_back(key);
            self.evict();
        }
    }

    /// `true` when `key` was remembered (a repeat); otherwise remembers it.
    pub fn seen(&mut self, key: u64) -> bool {
        if self.contains(key) {
            return true;
        }
        self.insert(key);
        false
    }

    /// Remembers `key` of a point known never counted before (newer than
    /// any of its series' window, so not remembered either): no lookup, and no set insert until a lookup
    /// needs the set (`sync`). Most points of most series come in order, so
    /// the set, two cache misses a line beside 45 MB of windows
    /// (`benches/downsample.rs`), is then rarely touched.
    pub fn remember(&mut self, key: u64) {
        self.order.push_back(key);
        self.unsynced += 1;
        self.evict();
    }

    /// Puts the keys remembered since the last lookup into the set.
    fn sync(&mut self) {
        let n = self.order.len();
        for &k in self.order.range(n.saturating_sub(self.unsynced)..) {
            self.set.insert(k);
        }
        self.unsynced = 0;
    }

    /// Forgets the oldest beyond the capacity (from the set too, once in it).
    fn evict(&mut self) {
        while self.order.len() > self.cap {
            let in_set = self.unsynced < self.order.len();
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if in_set {
                self.set.remove(&old);
            } else {
                self.unsynced -= 1;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(line: &str, lane: (u16, u32)) -> u64 {
        let l = crate::lineproto::split::split(line.as_bytes()).expect("a line");
        RecentLines::key(&mut Vec::new(), l.key, &l.fields, l.ts, lane)
    }

    #[test]
    fn a_line_is_a_repeat_in_its_lane_until_it_is_forgotten() {
        let mut r = RecentLines::with_capacity(3);
        assert!(!r.seen(k("m v=1 1", (0, 0))));
        assert!(r.seen(k("m v=1 1", (0, 0))), "the same line again");
        assert!(!r.seen(k("m v=1 1", (0, 1))), "another lane's");
        assert!(!r.seen(k("m v=2 1", (0, 0))), "another value");
        assert!(!r.seen(k("m v=1 2", (0, 0))));
        assert_eq!(r.len(), 3, "bounded");
        assert!(!r.seen(k("m v=1 1", (0, 0))), "the oldest forgotten");
        assert!(r.seen(k("m v=1 2", (0, 0))), "the newest kept");
    }

    /// Keys remembered without a lookup are found by the next lookup, and
    /// forgotten in order, whichever way they came in.
    #[test]
    fn keys_remembered_without_a_lookup_are_found_and_forgotten_in_order() {
        let mut r = RecentLines::with_capacity(4);
        r.remember(1);
        r.remember(2);
        assert!(r.seen(1), "found after the sync");
        assert!(!r.seen(3));
        r.remember(4);
        r.remember(5);
        r.remember(6);
        assert_eq!(r.len(), 4, "bounded");
        assert!(!r.seen(1), "1 and 2 forgotten first");
        assert!(r.seen(6) && r.seen(4) && r.seen(5));
        assert!(!r.seen(3), "3 forgotten after 1 went again");
        // A model: the last `cap` keys, however remembered.
        let mut model = std::collections::VecDeque::new();
        let mut r = RecentLines::with_capacity(16);
        let mut x = 7u64;
        for i in 0..5_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = x % 40;
            if i % 3 == 0 {
                let want = model.contains(&k);
                assert_eq!(r.seen(k), want, "step {i}");
                if !want {
                    model.push_back(k);
                }
            } else if !model.contains(&k) {
                r.remember(k);
                model.push_back(k);
            } else {
                continue;
            }
            while model.len() > 16 {
                model.pop_front();
            }
        }
    }

    #[test]
    fn a_point_hashes_alike_however_its_numbers_are_spelled_and_apart_by_type() {
        for (a, b) in [
            ("m f=23 1", "m f=23.0 1"),
            ("m f=1.50 1", "m f=1.5 1"),
            ("m f=1e3 1", "m f=1000.0 1"),
            ("m b=T 1", "m b=true 1"),
            ("m b=f 1", "m b=false 1"),
        ] {
            assert_eq!(k(a, (0, 0)), k(b, (0, 0)), "{a} / {b}");
        }
        for (a, b) in [
            ("m f=1 1", "m f=1i 1"),
            ("m f=1i 1", "m f=1u 1"),
            ("m f=\"1\" 1", "m f=1i 1"),
            ("m,t=a f=1 1", "m f=1 1"),
            ("m a=1,b=2 1", "m a=2,b=1 1"),
        ] {
            assert_ne!(k(a, (0, 0)), k(b, (0, 0)), "{a} / {b}");
        }
    }

    #[test]
    fn hashes_do_not_depend_on_the_process() {
        // A fixed seed: a value computed once stays (a replay in the next
        // process must hash alike).
        assert_eq!(k("m,t=a v=1 1", (1, 2)), k("m,t=a v=1 1", (1, 2)));
        assert_ne!(k("m,t=a v=1 1", (1, 2)), k("m,t=a v=1 1", (2, 1)));
    }

    /// The key as the first release laid it out, piece by piece: the bytes
    /// hashed must stay these, or the keys a checkpoint saved before an
    /// upgrade no longer match a retry after it.
    fn key_as_released(series: &[u8], fields: &[(&[u8], Value)], ts: i64, lane: (u16, u32)) -> u64 {
        let mut b = Vec::new();
        b.extend_from_slice(&lane.0.to_le_bytes());
        b.extend_from_slice(&lane.1.to_le_bytes());
        b.extend_from_slice(&ts.to_le_bytes());
        let piece = |b: &mut Vec<u8>, bytes: &[u8]| {
            b.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            b.extend_from_slice(bytes);
        };
        piece(&mut b, series);
        for (name, v) in fields {
            piece(&mut b, name);
            let (tag, bits): (u8, u64) = match v {
                Value::Decimal(d) => (0, d.to_f64().to_bits()),
                Value::Float(f) => (0, f.to_bits()),
                Value::Int(i) => (1, *i as u64),
                Value::Uint(u) => (2, *u),
                Value::Bool(x) => (3, u64::from(*x)),
                Value::Str(t) => {
                    piece(&mut b, t);
                    (4, 0)
                }
            };
            b.push(tag);
            b.extend_from_slice(&bits.to_le_bytes());
        }
        let mut h = foldhash::fast::FixedState::with_seed(SEED).build_hasher();
        h.write(&b);
        h.finish()
    }

    #[test]
    fn keys_hash_the_same_bytes_as_the_first_release_for_every_value_type() {
        let mut scratch = Vec::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..2_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = 1 + (x % 12) as usize;
            let fields: String = (0..n)
                .map(|f| match (x >> (f * 3)) % 6 {
                    0 => format!("f{f}={}.{}", x % 1000, f),
                    1 => format!("f{f}={}i", (x as i64) >> 20),
                    2 => format!("f{f}={}u", x >> 30),
                    3 => format!("f{f}={}", if x & 1 == 0 { "T" } else { "false" }),
                    4 => format!("f{f}=\"s{}\\\"é\"", x % 97),
                    _ => format!("ferné{f}=1e{}", x % 30),
                })
                .collect::<Vec<_>>()
                .join(",");
            let line = format!("m{},t=ü{} {fields} {}", i % 7, x % 5, x >> 8);
            let l = crate::lineproto::split::split(line.as_bytes()).expect(&line);
            let lane = ((x % 3) as u16, (x >> 40) as u32);
            assert_eq!(
                RecentLines::key(&mut scratch, l.key, &l.fields, l.ts, lane),
                key_as_released(l.key, &l.fields, l.ts, lane),
                "{line}"
            );
        }
    }
}
