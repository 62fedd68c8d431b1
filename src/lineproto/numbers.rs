//! Numbers from ASCII digits, for the hot paths: the parser's range checks
//! (executor) and the codec's reading of stored lines (commit thread). Each
//! gives exactly what the standard library's `str::parse` gives for the same
//! bytes, or `None` where this shortcut does not apply and the caller asks
//! the standard library. Why not just `str::parse`: its UTF-8 check and
//! generic paths were about a tenth of both threads' time at ten fields a
//! line (issue "CPU per point").

#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

/// Decimal digits with an optional sign, as `str::parse::<i64>` reads them.
pub fn int(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, b),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulated negative, so i64::MIN fits.
    let mut n: i64 = 0;
    for &d in digits {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d))?;
    }
    if neg { Some(n) } else { n.checked_neg() }
}

/// As `int`, for `str::parse::<u64>`.
pub fn uint(b: &[u8]) -> Option<u64> {
    let digits = b.strip_prefix(b"+").unwrap_or(b);
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(n)
}

/// Significant digits a plain decimal may have for `decimal`: below 2^53,
/// so the integer of its digits is an exact f64.
pub const MAX_EXACT_DIGITS: usize = 15;
/// Exact powers of ten as f64 (10^22 is the largest).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A plain decimal's digits: ±n / 10^frac, the value `decimal` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    pub negative: bool,
    /// At most `MAX_EXACT_DIGITS` digits, so below 10^15 < 2^50.
    pub n: u64,
    /// Digits after the point, trailing zeros dropped (`1.50` is 15 / 10^1):
    /// so `frac` is the fewest decimal places that spell the value, the
    /// exponent a float column needs (`wal::codec`).
    pub frac: u32,
}

impl Decimal {
    /// The nearest f64, as `str::parse::<f64>` gives it: with n and 10^frac
    /// both exact, one division is correctly rounded (Clinger's fast path,
    /// the first thing the standard library tries too).
    pub fn to_f64(self) -> f64 {
        // n < 10^15 < 2^53 and frac ≤ 15 ≤ 22: both exact (`decimal_digits`
        // makes no other; the fields are public for the codec's packing).
        debug_assert!(self.n < 1 << 53 && self.frac <= MAX_EXACT_DIGITS as u32);
        let v = self.n as f64 / POW10[self.frac as usize];
        if self.negative { -v } else { v }
    }
}

/// A plain decimal (`-?digits[.digits]`, at most `MAX_EXACT_DIGITS` digits
/// in all) as its digits. `None` for anything else (exponents, more digits,
/// `inf`, …): ask `str::parse`.
pub fn decimal_digits(b: &[u8]) -> Option<Decimal> {
    let (negative, text) = match b.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, b),
    };
    let (mut n, mut digits, mut frac, mut point) = (0u64, 0usize, 0u32, false);
    for &c in text {
        match c {
            b'0'..=b'9' => {
                digits += 1;
                if digits > MAX_EXACT_DIGITS {
                    return None;
                }
                n = n * 10 + u64::from(c - b'0');
                frac += u32::from(point);
            }
            b'.' if !point => point = true,
            _ => return None,
        }
    }
    if digits == 0 {
        return None;
    }
    while frac > 0 && n % 10 == 0 {
        n /= 10;
        frac -= 1;
    }
    Some(Decimal { negative, n, frac })
}

/// A plain decimal (see `decimal_digits`) as the nearest f64, bit for bit
/// what `str::parse::<f64>` gives; `None` where that shortcut does not apply.
pub fn decimal(b: &[u8]) -> Option<f64> {
    decimal_digits(b).map(Decimal::to_f64)
}

/// A buffer for `fmt_i64`: 19 digits and a sign, or 20 digits of a u64.
pub fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// "00" to "99": digits are written two at a time, halving the divisions
/// (every stored line's timestamp is written on ingest and again, with its
/// integers, on delivery).
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes `n` in decimal at the end of `buf`; returns where it starts.
pub fn digits(mut n: u64, buf: &mut [u8; 20]) -> usize {
    let mut i = buf.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    i
}

/// Formats an i64 without allocating, as `{}` writes it (the parser runs
/// this once per accepted line).
pub fn fmt_i64(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = digits(v.unsigned_abs(), buf);
    if v < 0 {
        // i64::MIN has 19 digits: the sign always fits in the 20-byte buffer.
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// Appends `v` in decimal, as `{}` writes it.
pub fn push_u64(out: &mut Vec<u8>, v: u64) {
    let mut buf = itoa_buf();
    let i = digits(v, &mut buf);
    out.extend_from_slice(&buf[i..]);
}

/// Appends `v` in decimal, as `{}` writes it.
pub fn push_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(fmt_i64(v, &mut itoa_buf()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn integers_read_as_the_standard_library_reads_them() {
        let cases: &[&str] = &[
            "0",
            "-0",
            "+0",
            "7",
            "-7",
            "+7",
            "",
            "-",
            "+",
            "--1",
            "1-",
            "12a",
            " 1",
            "1 ",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "18446744073709551615",
            "18446744073709551616",
            "00000000000000000000000000042",
            "-00000000000000000000000000042",
            "٣",
        ];
        for c in cases {
            assert_eq!(int(c.as_bytes()), c.parse::<i64>().ok(), "i64 {c:?}");
            assert_eq!(uint(c.as_bytes()), c.parse::<u64>().ok(), "u64 {c:?}");
        }
        let mut next = rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..100_000 {
            let x = next();
            for t in [
                (x as i64).to_string(),
                x.to_string(),
                (x >> (x % 64)).to_string(),
            ] {
                assert_eq!(int(t.as_bytes()), t.parse::<i64>().ok(), "{t}");
                assert_eq!(uint(t.as_bytes()), t.parse::<u64>().ok(), "{t}");
            }
        }
    }

    #[test]
    fn integers_are_written_as_display_writes_them() {
        let mut next = rng(0x0123_4567_89ab_cdef);
        for i in 0..100_000u64 {
            let x = if i < 64 {
                1u64 << i
            } else {
                next() >> (next() % 64)
            };
            for v in [x as i64, (x as i64).wrapping_neg(), i64::MIN, i64::MAX, 0] {
                let mut out = Vec::new();
                push_i64(&mut out, v);
                assert_eq!(out, v.to_string().into_bytes());
            }
            let mut out = Vec::new();
            push_u64(&mut out, x);
            assert_eq!(out, x.to_string().into_bytes());
        }
    }

    #[test]
    fn plain_decimals_come_out_bit_identical_to_the_standard_library_or_not_at_all() {
        let cases: &[&str] = &[
            "0",
            "-0",
            "0.0",
            "-0.0",
            ".5",
            "5.",
            "-.5",
            ".",
            "-",
            "",
            "1.2.3",
            "1e5",
            "inf",
            "NaN",
            "+1",
            "230.01",
            "49.98",
            "0.1",
            "0.2",
            "0.3",
            "999999999999999",
            "9999999999999999",
            "0.000000000000001",
            "123456789.012345",
            "1234567890123456",
            "00000000000000000001.5",
        ];
        for c in cases {
            let ours = decimal(c.as_bytes());
            if let Some(v) = ours {
                let std: f64 = c.parse().expect("std reads what we read");
                assert_eq!(v.to_bits(), std.to_bits(), "{c:?}");
            }
        }
        assert_eq!(
            decimal(b"-0.0").map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
        assert!(decimal(b"1e5").is_none() && decimal(b"").is_none() && decimal(b".").is_none());
        // Random digit strings with a point anywhere, up to 17 digits (so
        // both sides of the 15-digit limit).
        let mut next = rng(0x9e37_79b9_7f4a_7c15);
        let mut taken = 0;
        for _ in 0..200_000 {
            let x = next();
            let len = 1 + (x % 17) as usize;
            let mut s: String = (0..len)
                .map(|_| char::from(b'0' + (next() % 10) as u8))
                .collect();
            let at = (next() % (len as u64 + 1)) as usize;
            s.insert(at, '.');
            if x & 1 == 1 {
                s.insert(0, '-');
            }
            if let Some(v) = decimal(s.as_bytes()) {
                taken += 1;
                let std: f64 = s.parse().expect("a decimal");
                assert_eq!(v.to_bits(), std.to_bits(), "{s}");
            }
        }
        assert!(taken > 100_000, "the fast path is the common path: {taken}");
    }
}
