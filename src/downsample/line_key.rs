//! A counted line's key: the 64-bit hash `recent` remembers it by, so that
//! a producer's retry of it is not counted again.
//!
//! - **Typed, not the text.** The replay after a restart reads the lines
//!   back from the codec, which spells numbers its own way (`23` comes back
//!   `23.0`, `T` as `true`), and must know the producer's retry all the
//!   same: a value is hashed as its type and its 64 bits (a string as its
//!   bytes' hash).
//! - **Made of parts the windows keep.** A key is the lane's seed, the
//!   timestamp, the series key's hash, the hash of the field names in the
//!   line's order, then each value. The windows keep a series' hash and
//!   its fields' names hash (`series.rs`), so the common line (its series'
//!   fields, in their order) hashes only its values: a few instructions a
//!   field, where laying the whole line out and hashing it (the first
//!   release's key, `legacy`) was about a third of the windows' cost
//!   (BENCHMARKS.md, "The windows' cost, measured counting").
//! - **Stable.** The lane's part is the buffer's secret, its rule identity
//!   and warm destination (`lane_seed`), not the ids a process gives them:
//!   a key saved by one process is the same key in the next
//!   (`keys_are_pinned_across_releases`).
//! - **Keyed by a secret.** Every part is hashed from the lane's seed, so
//!   from the buffer's secret (random, made once, `wal/custody.rs`): with
//!   public seeds a producer could write a series key, a field name or a
//!   string whose first word cancels the hash's state, and so make a new
//!   point of another series look like a counted one, dropped from the
//!   aggregates (found in review).
//!
//! A hash collision takes a new line for a retry: with 64 bits and at most
//! `2 × RECENT_LINES` lines remembered, about one chance in 2^47 a line.

use crate::lineproto::split::Value;
use std::hash::{BuildHasher, Hasher};

/// The seed of every part: the same line hashes alike in every process.
const SEED: u64 = 0x6869_7373_7276_6c6e;
/// Odd constants of the mixing (the fractional digits of pi).
const K: [u64; 3] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d1,
];

/// The full 64 × 64 → 128-bit product, folded: every bit of the output
/// depends on every bit of both inputs. Written out in u128, not taken
/// from a hashing crate: keys are saved, so they must be the same on every
/// architecture (foldhash approximates this on 32-bit ones) and in every
/// release of a dependency.
#[inline(always)]
fn fold(x: u64, y: u64) -> u64 {
    let p = u128::from(x).wrapping_mul(u128::from(y));
    (p as u64) ^ ((p >> 64) as u64)
}

/// A running hash, fed 128 bits at a time.
#[derive(Clone, Copy)]
struct Mix(u64);

impl Mix {
    #[inline(always)]
    fn new(seed: u64) -> Mix {
        Mix(seed ^ SEED)
    }

    #[inline(always)]
    fn pair(&mut self, a: u64, b: u64) {
        self.0 = fold(a ^ self.0, b ^ K[0]);
    }

    #[inline(always)]
    fn finish(self) -> u64 {
        fold(self.0 ^ K[1], K[2])
    }
}

/// A byte string's hash (a series key, a field name, a string value),
/// keyed by `seed` (a lane's, so by the buffer's secret).
#[inline]
pub fn bytes_hash(seed: u64, b: &[u8]) -> u64 {
    let mut h = Mix::new(seed ^ b.len() as u64);
    // Each block's second word meets a key made from the seed, not the
    // public `K[0]`: a block whose second word was `K[0]` multiplied the
    // state by 0 whatever the secret (found in review: crafted tags and
    // strings collided under every buffer's secret).
    let k = fold(seed ^ K[1], K[0]) ^ K[0];
    let word = |c: &[u8]| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(w)
    };
    let mut blocks = b.chunks_exact(16);
    for block in &mut blocks {
        h.pair(word(&block[..8]), word(&block[8..]) ^ k);
    }
    let rest = blocks.remainder();
    if !rest.is_empty() {
        let (lo, hi) = rest.split_at(rest.len().min(8));
        h.pair(word(lo), word(hi) ^ k);
    }
    h.finish()
}

/// A lane's part of its lines' keys: the buffer's secret
/// (`downsample_meta`, random, made once), its rule's identity and its
/// warm destination, as the config and the buffer name them.
pub fn lane_seed(secret: u64, rule_identity: &str, db: &str, rp: &str) -> u64 {
    let mut h = Mix::new(secret);
    for part in [rule_identity, db, rp] {
        h.pair(part.len() as u64, bytes_hash(secret, part.as_bytes()));
    }
    h.finish()
}

/// The hash of field names, in the order given, keyed by `seed`.
pub fn names_hash<'a>(seed: u64, names: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut h = Mix::new(seed ^ 1);
    for name in names {
        h.pair(bytes_hash(seed, name), 0);
    }
    h.finish()
}

/// A value as its type and 64 bits (`Decimal` and `Float` alike: the same
/// number however spelled).
/// Inlined: a call a field was half the key's cost (the string's hash
/// stays a call).
#[inline(always)]
pub fn typed(seed: u64, v: &Value) -> (u64, u64) {
    match v {
        Value::Decimal(d) => (0, d.to_f64().to_bits()),
        Value::Float(f) => (0, f.to_bits()),
        Value::Int(i) => (1, *i as u64),
        Value::Uint(u) => (2, *u),
        Value::Bool(b) => (3, u64::from(*b)),
        Value::Str(t) => (4, string_hash(seed, t)),
    }
}

#[inline(never)]
fn string_hash(seed: u64, t: &[u8]) -> u64 {
    bytes_hash(seed, t)
}

/// The key of a line from its parts, in the lane seeded `lane`: `series`
/// is `bytes_hash` of its series key, `names` the `names_hash` of its
/// field names in its order, both keyed by `lane`.
#[inline]
pub fn key_of(lane: u64, series: u64, names: u64, fields: &[(&[u8], Value)], ts: i64) -> u64 {
    let mut k = KeyChains::start(lane, series, names, fields.len(), ts);
    for (_, v) in fields {
        let (tag, bits) = typed(lane, v);
        k.push(tag, bits);
    }
    k.finish()
}

/// A key made value by value (`key_of`'s), for a caller that has each
/// value's `typed` form anyway (the windows' shortcut: one conversion of a
/// decimal a field, not two).
pub struct KeyChains {
    even: Mix,
    odd: Mix,
    next_odd: bool,
}

impl KeyChains {
    #[inline(always)]
    pub fn start(lane: u64, series: u64, names: u64, fields: usize, ts: i64) -> KeyChains {
        let mut even = Mix::new(lane);
        even.pair(ts as u64, series);
        even.pair(names, fields as u64);
        KeyChains {
            even,
            odd: Mix::new(!lane),
            next_odd: false,
        }
    }

    /// The next field's value. Two chains, the even fields' and the odd
    /// ones', joined at the end: each step waits on the one before (a
    /// multiply), so two chains take half the time of one.
    #[inline(always)]
    pub fn push(&mut self, tag: u64, bits: u64) {
        if self.next_odd {
            self.odd.pair(bits, tag);
        } else {
            self.even.pair(bits, tag);
        }
        self.next_odd = !self.next_odd;
    }

    #[inline(always)]
    pub fn finish(mut self) -> u64 {
        self.even.pair(self.odd.0, K[2]);
        self.even.finish()
    }
}

/// The key of a line, every part hashed here (a line the windows hold no
/// parts for; tests).
pub fn key(lane: u64, series: &[u8], fields: &[(&[u8], Value)], ts: i64) -> u64 {
    let names = names_hash(lane, fields.iter().map(|(n, _)| *n));
    key_of(lane, bytes_hash(lane, series), names, fields, ts)
}

/// The first release's key: its point laid out, then hashed, with the
/// lane as the process numbered it. Keys a checkpoint of that release
/// saved are recognised by it until they would have been forgotten
/// (`recent::RecentLines::legacy`); nothing new is keyed so.
pub fn legacy(
    scratch: &mut Vec<u8>,
    series: &[u8],
    fields: &[(&[u8], Value)],
    ts: i64,
    lane: (u16, u32),
) -> u64 {
    scratch.clear();
    scratch.extend_from_slice(&lane.0.to_le_bytes());
    scratch.extend_from_slice(&lane.1.to_le_bytes());
    scratch.extend_from_slice(&ts.to_le_bytes());
    let piece = |b: &mut Vec<u8>, bytes: &[u8]| {
        b.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        b.extend_from_slice(bytes);
    };
    piece(scratch, series);
    for (name, v) in fields {
        piece(scratch, name);
        let (tag, bits): (u8, u64) = match v {
            Value::Decimal(d) => (0, d.to_f64().to_bits()),
            Value::Float(f) => (0, f.to_bits()),
            Value::Int(i) => (1, *i as u64),
            Value::Uint(u) => (2, *u),
            Value::Bool(x) => (3, u64::from(*x)),
            Value::Str(t) => {
                piece(scratch, t);
                (4, 0)
            }
        };
        scratch.push(tag);
        scratch.extend_from_slice(&bits.to_le_bytes());
    }
    let mut h = foldhash::fast::FixedState::with_seed(SEED).build_hasher();
    h.write(scratch);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(line: &str, lane: u64) -> u64 {
        let l = crate::lineproto::split::split(line.as_bytes()).expect("a line");
        key(lane, l.key, &l.fields, l.ts)
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
            assert_eq!(k(a, 0), k(b, 0), "{a} / {b}");
        }
        for (a, b) in [
            ("m f=1 1", "m f=1i 1"),
            ("m f=1i 1", "m f=1u 1"),
            ("m f=\"1\" 1", "m f=1i 1"),
            ("m f=0i 1", "m f=false 1"),
            ("m,t=a f=1 1", "m f=1 1"),
            ("m a=1,b=2 1", "m a=2,b=1 1"),
            ("m a=1,b=2 1", "m b=2,a=1 1"),
            ("m a=1 1", "m a=1 2"),
            ("m s=\"ab\",t=\"c\" 1", "m s=\"a\",t=\"bc\" 1"),
            ("m ab=1,c=2 1", "m a=1,bc=2 1"),
        ] {
            assert_ne!(k(a, 0), k(b, 0), "{a} / {b}");
        }
        assert_ne!(k("m a=1 1", 0), k("m a=1 1", 1), "apart by lane");
        assert_ne!(
            lane_seed(7, "r", "db", "rp_5m"),
            lane_seed(7, "r", "dbrp", "_5m"),
            "the lane's parts are delimited"
        );
    }

    /// Keys are saved (`downsample_recent`) and looked for by the next
    /// process, maybe the next release: they must not change with the
    /// build. These values were computed once, by this code; a change here
    /// means keys saved before it no longer match a retry after it.
    #[test]
    fn keys_are_pinned_across_releases() {
        let lane = lane_seed(0x5eed, "telemetry:5m", "db", "autogen_5m");
        assert_eq!(lane, PINNED.0, "lane seed");
        assert_eq!(
            k(
                "meter,site=a v=1.5,n=3i,s=\"x\",b=t 1700000000000000000",
                lane
            ),
            PINNED.1,
            "line key"
        );
    }
    const PINNED: (u64, u64) = (11933174071424557830, 3254772197685626119);

    /// Byte strings of every length up to three blocks, each byte's
    /// change seen (the tail's zero padding must not hide a length).
    #[test]
    fn byte_hashes_see_every_byte_and_the_length() {
        let mut seen = std::collections::HashSet::new();
        for len in 0..48usize {
            let b: Vec<u8> = (0..len as u8).collect();
            assert!(seen.insert(bytes_hash(3, &b)), "length {len}");
            for i in 0..len {
                let mut c = b.clone();
                c[i] ^= 0x80;
                assert!(seen.insert(bytes_hash(3, &c)), "length {len}, byte {i}");
            }
            let mut z = b.clone();
            z.push(0);
            assert_ne!(
                bytes_hash(3, &b),
                bytes_hash(3, &z),
                "a zero appended, {len}"
            );
        }
    }

    /// The first release's key, as it laid lines out (its test compared
    /// that layout with the pieces written one by one).
    #[test]
    fn the_legacy_key_is_the_first_releases() {
        let l = crate::lineproto::split::split(b"m,t=a v=1.5,s=\"x\" 9").expect("a line");
        let mut b = Vec::new();
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&9i64.to_le_bytes());
        for piece in [&b"m,t=a"[..], b"v"] {
            b.extend_from_slice(&(piece.len() as u32).to_le_bytes());
            b.extend_from_slice(piece);
        }
        b.push(0);
        b.extend_from_slice(&1.5f64.to_bits().to_le_bytes());
        for piece in [&b"s"[..], b"x"] {
            b.extend_from_slice(&(piece.len() as u32).to_le_bytes());
            b.extend_from_slice(piece);
        }
        b.push(4);
        b.extend_from_slice(&0u64.to_le_bytes());
        let mut h = foldhash::fast::FixedState::with_seed(SEED).build_hasher();
        h.write(&b);
        assert_eq!(
            legacy(&mut Vec::new(), l.key, &l.fields, l.ts, (1, 2)),
            h.finish()
        );
    }

    /// Found in review: with public seeds, a string whose first word
    /// equals the hash's starting state cancels it, so two series keys
    /// (or strings, or field names) sharing such a prefix hashed alike, and
    /// a new point of one was taken for a counted point of the other. Keyed
    /// by a secret the state is unknown: the same prefix no longer cancels
    /// it (for a seed other than the one it was aimed at).
    #[test]
    fn a_prefix_aimed_at_one_seed_does_not_collide_under_another() {
        let aimed = |seed: u64, len: u64| (Mix::new(seed ^ len).0).to_le_bytes();
        let key = |seed: u64, tail: &[u8]| {
            let mut b = aimed(0, 15).to_vec();
            b.extend_from_slice(tail);
            bytes_hash(seed, &b)
        };
        assert_eq!(
            key(0, b",t=aaaa"),
            key(0, b",t=bbbb"),
            "the attack, aimed at seed 0, works there"
        );
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..1_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            assert_ne!(key(x, b",t=aaaa"), key(x, b",t=bbbb"), "seed {x}");
        }
    }

    /// Different buffers' secrets give different keys to the same point.
    #[test]
    fn the_secret_keys_every_part() {
        let l = crate::lineproto::split::split(b"m,t=a v=1,s=\"x\" 5").expect("a line");
        let a = key(lane_seed(1, "r", "db", "rp"), l.key, &l.fields, l.ts);
        let b = key(lane_seed(2, "r", "db", "rp"), l.key, &l.fields, l.ts);
        assert_ne!(a, b);
        assert_ne!(bytes_hash(1, b"m"), bytes_hash(2, b"m"));
        assert_ne!(names_hash(1, [&b"v"[..]]), names_hash(2, [&b"v"[..]]));
    }

    /// The parts the windows keep give the key the whole line gives.
    #[test]
    fn a_key_from_kept_parts_equals_the_key_of_the_whole_line() {
        let line = "m,t=ü v=1.25,n=-3i,u=7u,b=F,s=\"q\\\"é\" 42";
        let l = crate::lineproto::split::split(line.as_bytes()).expect("a line");
        let names = names_hash(9, [&b"v"[..], b"n", b"u", b"b", b"s"]);
        assert_eq!(
            key_of(9, bytes_hash(9, l.key), names, &l.fields, l.ts),
            key(9, l.key, &l.fields, l.ts)
        );
    }
}
