//! Float columns: decimal coding when the values are really decimals, Gorilla
//! XOR coding otherwise — whichever applies, always bit-exact.
//!
//! Meters report quantised values (230.01 V, 49.98 Hz): such a column is
//! stored as integers n with v = n / 10^e for one exponent e per column (the
//! idea of ALP, SIGMOD 2024, without its sampling), then as zig-zag deltas of
//! n. Every value is checked to come back to the very same bits; if any does
//! not (−0.0, subnormals, noisy sensor values) the whole column falls back to
//! Gorilla XOR coding (Pelkonen et al., VLDB 2015).

use super::bits::{BitReader, BitWriter, Reader, Short, get_ints_into, put_ints, unzigzag, zigzag};
use crate::lineproto::numbers::{Decimal, digits, itoa_buf};

const DECIMAL: u8 = 0;
const GORILLA: u8 = 1;
/// Largest decimal exponent tried: 10^12 still leaves headroom under 2^52.
const MAX_DECIMAL_EXP: i32 = 12;
/// Above this magnitude n as f64 stops being exact.
const MAX_DECIMAL_MANTISSA: f64 = 4_503_599_627_370_496.0; // 2^52

/// The integer n with n / p == v to the bit (p = 10^e), checked the way the
/// decoder computes it (so −0.0, which no integer gives back, is refused).
fn decimal_n(v: f64, p: f64) -> Option<i64> {
    let n = (v * p).round();
    // NaN cannot reach here (the parser refuses it); the test is written so
    // that it would refuse NaN too.
    if n.is_nan() || n.abs() >= MAX_DECIMAL_MANTISSA {
        return None;
    }
    let n = n as i64;
    ((n as f64 / p).to_bits() == v.to_bits()).then_some(n)
}

/// The smallest exponent that represents every value exactly, if any, with
/// the integers in `ns` (each value is converted once per exponent tried,
/// and the winning conversion is kept for the encoder).
fn decimal_exponent(values: &[f64], ns: &mut Vec<i64>) -> Option<i32> {
    'search: for e in 0..=MAX_DECIMAL_EXP {
        // The decoder's divisor, computed as it computes it.
        let p = 10f64.powi(e);
        ns.clear();
        for &v in values {
            match decimal_n(v, p) {
                Some(n) => ns.push(n),
                None => continue 'search,
            }
        }
        return Some(e);
    }
    None
}

/// A float as the codec's reader of lines gives it: the digits of a plain
/// decimal, or (any other spelling) the f64.
pub type Digits = Result<Decimal, f64>;

/// Encodes a column from its values' digits, with no float arithmetic:
/// `true` if it did, `false` (nothing written) if some value is not a plain
/// decimal or the column cannot be decimal-coded, and `encode` must judge
/// the f64s. The f64 round trip of `decimal_exponent` (multiply, round,
/// divide, compare, per exponent tried) was a tenth of the commit thread's
/// time (issue "CPU per point").
///
/// Why it decodes to the very bits the parser made (and is the column
/// `encode` writes, where the search finds one):
/// - The exponent is the largest `frac` (each value's fewest decimal
///   places), each n scaled to it: n·10^(e−frac) / 10^e is the rational the
///   text spelt, n and 10^e are exact f64s (below `MAX_DECIMAL_MANTISSA`,
///   e ≤ `MAX_DECIMAL_EXP`), and one IEEE division rounds it correctly:
///   the very f64 the parser made of the same digits (`Decimal::to_f64`).
/// - No smaller exponent can do: a value with `frac` places has at most 15
///   digits (n < 2^50), and any other decimal with fewer places differs from
///   it by at least 1/n of its size, > 2^-50, while two reals rounding to
///   the same f64 differ by at most 2^-52 of it. So the search's first
///   exponent that works is this one; where its rounding of v·10^e misses
///   (n near 2^52, a few columns in 10,000 of random long decimals) it finds
///   none and writes Gorilla, and this column is the smaller.
/// - −0 is no n / 10^e: such a column is left to `encode` (Gorilla).
pub fn encode_digits(
    values: impl Iterator<Item = Digits> + Clone,
    ns: &mut Vec<u64>,
    out: &mut Vec<u8>,
) -> bool {
    let mut e = 0u32;
    for v in values.clone() {
        match v {
            Ok(d) if !(d.negative && d.n == 0) => e = e.max(d.frac),
            _ => return false,
        }
    }
    if e > MAX_DECIMAL_EXP as u32 {
        return false;
    }
    ns.clear();
    let mut prev = 0i64;
    for d in values.flatten() {
        // frac ≤ e ≤ 12: the power is exact, and the product is checked.
        let scaled = d.n.checked_mul(10u64.pow(e - d.frac));
        let Some(n) = scaled.filter(|&n| (n as f64) < MAX_DECIMAL_MANTISSA) else {
            return false;
        };
        let n = if d.negative { -(n as i64) } else { n as i64 };
        ns.push(zigzag(n.wrapping_sub(prev)));
        prev = n;
    }
    out.push(DECIMAL);
    out.push(e as u8);
    put_ints(out, ns);
    true
}

pub fn encode(values: &[f64], out: &mut Vec<u8>) {
    let mut ns = Vec::with_capacity(values.len());
    if let Some(e) = decimal_exponent(values, &mut ns) {
        out.push(DECIMAL);
        out.push(e as u8);
        let mut prev = 0i64;
        let deltas: Vec<u64> = ns
            .iter()
            .map(|&n| {
                let d = zigzag(n.wrapping_sub(prev));
                prev = n;
                d
            })
            .collect();
        put_ints(out, &deltas);
        return;
    }
    out.push(GORILLA);
    let mut w = BitWriter::default();
    let mut prev = 0u64;
    let (mut prev_lz, mut prev_tz) = (u32::MAX, 0);
    for (i, &v) in values.iter().enumerate() {
        let bits = v.to_bits();
        if i == 0 {
            w.put(bits, 64);
            prev = bits;
            continue;
        }
        let xor = bits ^ prev;
        prev = bits;
        if xor == 0 {
            w.put(0, 1);
            continue;
        }
        w.put(1, 1);
        let lz = xor.leading_zeros().min(31);
        let tz = xor.trailing_zeros();
        if prev_lz != u32::MAX && lz >= prev_lz && tz >= prev_tz {
            w.put(0, 1);
            w.put(xor >> prev_tz, 64 - prev_lz - prev_tz);
        } else {
            let sig = 64 - lz - tz;
            w.put(1, 1);
            w.put(lz as u64, 5);
            w.put((sig - 1) as u64, 6);
            w.put(xor >> tz, sig);
            (prev_lz, prev_tz) = (lz, tz);
        }
    }
    out.extend_from_slice(&w.finish());
}

/// How the values of a decoded float column read (they sit in the batch's
/// one value vector, `decode_into`): decimal columns keep their integers, so
/// they are rendered from their digits without formatting a float.
#[derive(Debug, Clone, Copy)]
pub enum FloatForm {
    /// Each value is n (an i64's bits), v = n / p with p = 10^e.
    Decimal { e: u32, p: f64 },
    /// Each value is the f64's bits.
    Bits,
}

/// Below this magnitude `{:?}` writes a float with an exponent (and from
/// 1e16 up, which no decimal column reaches: |n| < 2^52).
const DEBUG_EXPONENT_BELOW: f64 = 1e-4;
/// Integers below this have at most 15 digits: every decimal of 15
/// significant digits is a different f64 (DBL_DIG), so its digits are the
/// shortest that round-trip, the ones `{:?}` writes.
const SHORTEST_DIGITS_BELOW: i64 = 1_000_000_000_000_000;

impl FloatForm {
    /// The value, as the decoder computes it.
    pub fn value(self, bits: u64) -> f64 {
        match self {
            FloatForm::Decimal { p, .. } => bits as i64 as f64 / p,
            FloatForm::Bits => f64::from_bits(bits),
        }
    }

    /// Writes the value exactly as `{:?}` writes the f64 (the stored
    /// spelling is the same either way).
    pub fn render(self, bits: u64, out: &mut Vec<u8>) {
        use std::io::Write;
        let x = self.value(bits);
        if let FloatForm::Decimal { e, .. } = self {
            let n = bits as i64;
            if n.unsigned_abs() < SHORTEST_DIGITS_BELOW.unsigned_abs()
                && (n == 0 || x.abs() >= DEBUG_EXPONENT_BELOW)
            {
                push_decimal(n, e, out);
                return;
            }
        }
        // Writing to a Vec cannot fail.
        let _ = write!(out, "{x:?}");
    }
}

/// A decoded float column on its own (the tests' view of `decode_into`).
#[cfg(test)]
pub struct FloatColumn {
    pub form: FloatForm,
    pub bits: Vec<u64>,
}

#[cfg(test)]
impl FloatColumn {
    pub fn decimal(ns: &[i64], e: u32) -> FloatColumn {
        FloatColumn {
            form: FloatForm::Decimal {
                e,
                p: 10f64.powi(e as i32),
            },
            bits: ns.iter().map(|&n| n as u64).collect(),
        }
    }

    pub fn values(&self) -> Vec<f64> {
        self.bits.iter().map(|&b| self.form.value(b)).collect()
    }

    /// Value `at` as `{:?}` writes it; `false` if there is no such value.
    pub fn render(&self, at: usize, out: &mut Vec<u8>) -> bool {
        self.bits
            .get(at)
            .map(|&b| self.form.render(b, out))
            .is_some()
    }
}

/// n / 10^e in plain decimal digits, trailing fractional zeros dropped, at
/// least one fractional digit (`{:?}`'s `23.0`).
fn push_decimal(n: i64, e: u32, out: &mut Vec<u8>) {
    let mut buf = itoa_buf();
    let at = digits(n.unsigned_abs(), &mut buf);
    let ds = &buf[at..];
    let e = e as usize;
    if n < 0 {
        out.push(b'-');
    }
    // The integer part: the digits before the last e, or 0.
    let whole = ds.len().saturating_sub(e);
    if whole == 0 {
        out.push(b'0');
    } else {
        out.extend_from_slice(&ds[..whole]);
    }
    out.push(b'.');
    // The fraction: e digits, zero-padded in front, trailing zeros dropped.
    let frac = &ds[whole..];
    let kept = frac.len() - frac.iter().rev().take_while(|&&d| d == b'0').count();
    if kept == 0 {
        out.push(b'0');
    } else {
        out.extend(std::iter::repeat_n(b'0', e - frac.len()));
        out.extend_from_slice(&frac[..kept]);
    }
}

#[cfg(test)]
pub fn decode(r: &mut Reader, n: usize) -> Result<FloatColumn, Short> {
    let mut bits = Vec::new();
    let form = decode_into(r, n, &mut bits)?;
    Ok(FloatColumn { form, bits })
}

/// Decodes a float column of `n` values, appended to `out`.
pub fn decode_into(r: &mut Reader, n: usize, out: &mut Vec<u64>) -> Result<FloatForm, Short> {
    match r.u8()? {
        DECIMAL => {
            let e = r.u8()? as i32;
            if e > MAX_DECIMAL_EXP {
                return Err(Short);
            }
            let from = out.len();
            get_ints_into(r, n, out)?;
            let mut prev = 0i64;
            for v in &mut out[from..] {
                prev = prev.wrapping_add(unzigzag(*v));
                *v = prev as u64;
            }
            Ok(FloatForm::Decimal {
                e: e as u32,
                // The divisor the encoder checked against, computed alike.
                p: 10f64.powi(e),
            })
        }
        GORILLA => {
            let rest = r.take(r.remaining())?;
            // Each value takes at least one bit.
            out.reserve(n.min(rest.len().saturating_mul(8)));
            let mut b = BitReader::new(rest);
            let mut prev = 0u64;
            let (mut lz, mut tz) = (0u32, 0u32);
            for i in 0..n {
                if i == 0 {
                    prev = b.get(64)?;
                } else if b.get(1)? == 1 {
                    if b.get(1)? == 1 {
                        lz = b.get(5)? as u32;
                        let sig = b.get(6)? as u32 + 1;
                        if lz + sig > 64 {
                            return Err(Short);
                        }
                        tz = 64 - lz - sig;
                    }
                    let sig = 64 - lz - tz;
                    prev ^= b.get(sig)? << tz;
                }
                out.push(prev);
            }
            Ok(FloatForm::Bits)
        }
        _ => Err(Short),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(values: &[f64]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(values, &mut out);
        let back = decode(&mut Reader::new(&out), values.len()).unwrap();
        let a: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        let b: Vec<u64> = back.values().iter().map(|v| v.to_bits()).collect();
        assert_eq!(a, b);
        out
    }

    #[test]
    fn decimal_columns_render_from_their_digits_exactly_as_debug_formats_the_float() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let edges = [
            0i64,
            1,
            -1,
            9,
            10,
            99,
            100,
            999_999_999_999_999,
            -999_999_999_999_999,
            1_000_000_000_000_000,
            4_503_599_627_370_495,
        ];
        let (mut fast, mut slow) = (0, 0);
        for i in 0..300_000 {
            let n = match i % 3 {
                0 => edges[(next() % edges.len() as u64) as usize],
                1 => (next() % 1_000_000) as i64 - 500_000,
                _ => (next() >> (12 + next() % 52)) as i64 * if next() & 1 == 1 { -1 } else { 1 },
            };
            let e = (next() % (MAX_DECIMAL_EXP as u64 + 1)) as i32;
            let col = FloatColumn::decimal(&[n], e as u32);
            let mut ours = Vec::new();
            assert!(col.render(0, &mut ours));
            let want = format!("{:?}", n as f64 / 10f64.powi(e));
            assert_eq!(String::from_utf8(ours).unwrap(), want, "n {n} e {e}");
            if n.unsigned_abs() < SHORTEST_DIGITS_BELOW as u64
                && (n == 0 || (n as f64 / 10f64.powi(e)).abs() >= DEBUG_EXPONENT_BELOW)
            {
                fast += 1;
            } else {
                slow += 1;
            }
        }
        assert!(
            fast > 100_000 && slow > 1_000,
            "both paths tried: {fast} {slow}"
        );
        assert!(!FloatColumn::decimal(&[1], 0).render(1, &mut Vec::new()));
    }

    #[test]
    fn quantised_meter_values_take_the_decimal_path_and_a_byte_each() {
        let v: Vec<f64> = (0..1000).map(|i| 230.0 + (i % 7) as f64 * 0.01).collect();
        let out = round_trip(&v);
        assert_eq!(out[0], DECIMAL);
        assert!(out.len() < 1100, "{}", out.len());
    }

    #[test]
    fn negative_zero_subnormals_and_extremes_fall_back_to_gorilla_bit_exact() {
        let v = [
            0.0,
            -0.0,
            5e-324,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            1.5,
            1.5,
            -2.25,
        ];
        assert_eq!(round_trip(&v)[0], GORILLA);
    }

    /// Columns of random decimals (meter-like, long, signed, −0, many
    /// places): from the digits, the same bytes as from the f64s where
    /// `encode_digits` takes the column, and bit-exact values either way.
    #[test]
    fn a_column_from_its_digits_is_the_column_from_its_floats() {
        use crate::lineproto::numbers::decimal_digits;
        let mut x: u64 = 0x5851_f42d_4c95_7f2d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut taken, mut left, mut smaller) = (0, 0, 0);
        for _ in 0..20_000 {
            let len = 1 + (next() % 12) as usize;
            let kind = next() % 4;
            let texts: Vec<String> = (0..len)
                .map(|_| {
                    let digits = match kind {
                        0 => 1 + next() % 6,
                        1 => 1 + next() % 15,
                        _ => 1 + next() % 17,
                    } as usize;
                    let mut s: String = (0..digits)
                        .map(|_| char::from(b'0' + (next() % 10) as u8))
                        .collect();
                    if next() % 3 > 0 {
                        s.insert((next() % (digits as u64 + 1)) as usize, '.');
                    }
                    if next() & 1 == 1 {
                        s.insert(0, '-');
                    }
                    if kind == 3 && next() % 8 == 0 {
                        s = "-0.0".into();
                    }
                    s
                })
                .collect();
            let digits: Vec<Digits> = texts
                .iter()
                .map(|t| decimal_digits(t.as_bytes()).ok_or_else(|| t.parse::<f64>().unwrap()))
                .collect();
            let floats: Vec<f64> = texts.iter().map(|t| t.parse().unwrap()).collect();
            let mut from_floats = Vec::new();
            encode(&floats, &mut from_floats);
            let mut from_digits = Vec::new();
            let want: Vec<u64> = floats.iter().map(|v| v.to_bits()).collect();
            let decoded = |col: &[u8]| -> Vec<u64> {
                let back = decode(&mut Reader::new(col), len).unwrap().values();
                back.iter().map(|v| v.to_bits()).collect()
            };
            assert_eq!(decoded(&from_floats), want, "{texts:?}");
            if encode_digits(digits.iter().copied(), &mut Vec::new(), &mut from_digits) {
                taken += 1;
                assert_eq!(decoded(&from_digits), want, "{texts:?}");
                if from_floats[0] == DECIMAL {
                    assert_eq!(from_digits, from_floats, "{texts:?}");
                } else {
                    // The search's rounding of v·10^e missed near 2^52:
                    // the digits still make a decimal column, and smaller.
                    smaller += 1;
                    assert!(from_digits.len() < from_floats.len(), "{texts:?}");
                }
            } else {
                left += 1;
                assert!(from_digits.is_empty());
            }
        }
        assert!(
            taken > 5_000 && left > 1_000 && smaller > 0,
            "every way tried: {taken} {left} {smaller}"
        );
    }

    #[test]
    fn an_empty_column_round_trips() {
        round_trip(&[]);
    }
}
