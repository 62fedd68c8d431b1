//! Field values and timestamps of a line: numbers and booleans checked the
//! way InfluxDB 1.6's scanner checks them (`scanNumber`, `scanBoolean`).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// Justified allow: these are byte scanners. Every `buf[i]` sits behind an
// `i < len` test (a loop condition or a guard on the same line) and every
// index sum is bounded by a slice length, so neither can panic or wrap;
// spelling each access as `get` would slow the hot path and prove nothing
// the fuzz targets (`fuzz/`: ingest_roundtrip, decode_batch) and the 415
// conformance vectors do not already try on every CI run.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use super::ErrorKind;
use crate::lineproto::numbers;

/// Digits an integer may have and be in i64's range whatever they are.
const ALWAYS_IN_RANGE_INT_DIGITS: usize = 18;

/// Scans and range-checks a numeric field value starting at `start`.
///
/// One pass for the values meters send: `-?digits[.digits]` of at most
/// `MAX_EXACT_DIGITS` digits (a float, finite whatever the digits) and
/// `-?digits` + `i` of at most `ALWAYS_IN_RANGE_INT_DIGITS` (an integer in
/// range whatever the digits). Such values are judged here without a second
/// and third walk over their bytes (the general scan, then counting digits,
/// then reading the value: a fifth of the executor's time, issue "CPU per
/// point"). Everything else goes to `scan_number_general`, which judges as
/// InfluxDB does; `fast_path_agrees_with_the_general_scan` checks that the
/// two agree on every input the fast path takes.
pub(super) fn scan_number(
    buf: &[u8],
    start: usize,
    allow_unsigned: bool,
) -> Result<usize, (ErrorKind, usize)> {
    let mut i = start + usize::from(buf.get(start) == Some(&b'-'));
    let (mut digits, mut point) = (0usize, false);
    while let Some(&b) = buf.get(i) {
        if b.is_ascii_digit() {
            digits += 1;
        } else if b == b'.' && !point {
            point = true;
        } else {
            break;
        }
        i += 1;
    }
    let ends_at = |at: usize| matches!(buf.get(at), None | Some(b',' | b' '));
    if digits > 0 {
        if digits <= numbers::MAX_EXACT_DIGITS && ends_at(i) {
            return Ok(i);
        }
        if !point
            && digits <= ALWAYS_IN_RANGE_INT_DIGITS
            && buf.get(i) == Some(&b'i')
            && ends_at(i + 1)
        {
            return Ok(i + 1);
        }
    }
    scan_number_general(buf, start, allow_unsigned)
}

/// `scan_number` for every numeric text, as InfluxDB 1.6's `scanNumber`.
fn scan_number_general(
    buf: &[u8],
    start: usize,
    allow_unsigned: bool,
) -> Result<usize, (ErrorKind, usize)> {
    let invalid = |at| Err((ErrorKind::InvalidNumber, at));
    let mut i = start;
    if buf[i] == b'-' {
        i += 1;
        if i == buf.len() {
            return invalid(i);
        }
    }
    let (mut is_int, mut is_uint, mut decimal, mut scientific) = (false, false, false, false);
    while i < buf.len() && !matches!(buf[i], b',' | b' ') {
        let b = buf[i];
        if (b == b'i' || b == b'u') && i > start && !(is_int || is_uint) {
            if b == b'i' {
                is_int = true
            } else {
                is_uint = true
            }
            i += 1;
            continue;
        }
        if b == b'.' {
            if decimal {
                return invalid(i);
            }
            decimal = true;
        }
        if i > start && (b == b'e' || b == b'E') {
            scientific = true;
            i += 1;
            continue;
        }
        if (b == b'+' || b == b'-') && matches!(buf[i - 1], b'e' | b'E') {
            i += 1;
            continue;
        }
        if !(b.is_ascii_digit() || b == b'.') {
            return invalid(i);
        }
        i += 1;
    }
    let text = &buf[start..i];
    if (is_int || is_uint) && (decimal || scientific) {
        return invalid(i);
    }
    if is_int || is_uint {
        if !text.ends_with(if is_int { b"i" } else { b"u" }) {
            return invalid(i);
        }
        let digits = &text[..text.len() - 1];
        if digits.is_empty() || digits == b"-" {
            return invalid(i);
        }
        let ok = if is_int {
            numbers::int(digits).is_some()
        } else {
            if !allow_unsigned {
                return invalid(i);
            }
            numbers::uint(digits).is_some()
        };
        if !ok {
            return Err((ErrorKind::IntegerOutOfRange, start));
        }
    } else {
        let digits = text.iter().filter(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return invalid(i);
        }
        // A plain decimal is always a finite float; the rest (exponents,
        // long mantissas) the standard library judges.
        if numbers::decimal(text).is_none() {
            // Safe: the scanner admitted only ASCII.
            let s = std::str::from_utf8(text).map_err(|_| (ErrorKind::InvalidNumber, start))?;
            match s.parse::<f64>() {
                Ok(v) if v.is_finite() => {}
                _ => return Err((ErrorKind::InvalidFloat, start)),
            }
        }
    }
    Ok(i)
}

pub(super) fn scan_boolean(buf: &[u8], start: usize) -> Result<usize, (ErrorKind, usize)> {
    let mut i = start;
    while i < buf.len() && !matches!(buf[i], b',' | b' ') {
        i += 1;
    }
    match &buf[start..i] {
        b"t" | b"T" | b"true" | b"True" | b"TRUE" | b"f" | b"F" | b"false" | b"False"
        | b"FALSE" => Ok(i),
        _ => Err((ErrorKind::InvalidBoolean, start)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random texts over the bytes numbers are made of (and their
    /// neighbours): wherever the fast path answers, the general scan gives
    /// the same answer.
    #[test]
    fn fast_path_agrees_with_the_general_scan() {
        const ALPHABET: &[u8] = b"0123456789012345678901234567890123456789..--+eEiu, x";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut fast_taken = 0;
        for _ in 0..300_000 {
            // As `scan_fields` calls it: after `key=`, on a value that
            // starts as a number would.
            const FIRST: &[u8] = b"0123456789.-Nn";
            let len = (next() % 24) as usize;
            let mut text = b"f=".to_vec();
            text.push(FIRST[(next() % FIRST.len() as u64) as usize]);
            text.extend((0..len).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize]));
            for unsigned in [false, true] {
                let fast = scan_number(&text, 2, unsigned);
                let general = scan_number_general(&text, 2, unsigned);
                assert_eq!(fast, general, "{:?}", String::from_utf8_lossy(&text));
            }
            // How often the fast path itself answered: a plain value.
            let t = text[2..].strip_prefix(b"-").unwrap_or(&text[2..]);
            if t.first().is_some_and(u8::is_ascii_digit) {
                fast_taken += 1;
            }
        }
        assert!(fast_taken > 50_000, "plain values were tried: {fast_taken}");
        // The limits, from both sides.
        for text in [
            &b"999999999999999"[..],
            b"9999999999999999",
            b"-999999999999999999i",
            b"-9999999999999999999i",
            b"9223372036854775807i",
            b"9223372036854775808i",
            b"1.",
            b".1",
            b"-.",
            b"1.2.3",
            b"12i3",
            b"1i,",
            b"1.5i",
        ] {
            let text = [&b"f="[..], text].concat();
            for unsigned in [false, true] {
                assert_eq!(
                    scan_number(&text, 2, unsigned),
                    scan_number_general(&text, 2, unsigned),
                    "{:?}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
    }
}
