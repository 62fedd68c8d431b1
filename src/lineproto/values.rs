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

/// Scans and range-checks a numeric field value starting at `start`.
pub(super) fn scan_number(
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
