//! InfluxDB line protocol: validation and normalisation of request bodies.
//!
//! Producers send line protocol; we accept exactly what InfluxDB 1.6 accepts (its
//! `models/points.go` scanner is the reference, and `tests/conformance.rs` checks
//! every input of `shared/conformance` against the real server's answers), so a
//! line we acknowledge is a line the upstream will take.
//!
//! We do not build a point tree: a good line is copied into the output as its
//! original text (measurement, tags and fields untouched, escapes and all)
//! followed by an explicit nanosecond timestamp. That keeps parsing allocation-free
//! and makes the stored payload plain line protocol at `precision=ns`.
//!
//! Invariants:
//! - one bad line never takes the good lines of the same body down: each line is
//!   judged alone and every error names its 1-based physical line and column;
//! - a line without a timestamp gets the arrival time (truncated to the request's
//!   precision) *before* it is buffered, so a replay after a crash overwrites
//!   the same point upstream instead of duplicating it.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// Justified allow: these are byte scanners. Every `buf[i]` sits behind an
// `i < len` test (a loop condition or a guard on the same line) and every
// index sum is bounded by a slice length, so neither can panic or wrap;
// spelling each access as `get` would slow the hot path and prove nothing
// the fuzz targets (`fuzz/`: ingest_roundtrip, decode_batch) and the 415
// conformance vectors do not already try on every CI run.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

/// InfluxDB's own limit on a series key (measurement + tags), in bytes.
pub const MAX_KEY_BYTES: usize = 65_535;
/// How much of an offending line an error quotes: enough to recognise it, and
/// bounded so a 1 MB garbage line cannot blow up a response.
pub const MAX_QUOTED_LINE_BYTES: usize = 256;
/// Parse errors kept per body; the rest are counted only. Bounds memory per request.
pub const MAX_REPORTED_ERRORS: usize = 10;
/// InfluxDB's valid time range is [i64::MIN + 2, i64::MAX - 1] ns (it reserves the ends).
const MIN_TIME_NS: i64 = i64::MIN + 2;
const MAX_TIME_NS: i64 = i64::MAX - 1;

/// Timestamp precision of a request (`precision=` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Nanos,
    Micros,
    Millis,
    Seconds,
    Minutes,
    Hours,
}

impl Precision {
    /// Parses the `precision` parameter as InfluxDB 1.x and 2.x spell it.
    pub fn from_param(s: &str) -> Option<Precision> {
        Some(match s {
            "" | "n" | "ns" => Precision::Nanos,
            "u" | "us" | "µ" | "µs" => Precision::Micros,
            "ms" => Precision::Millis,
            "s" => Precision::Seconds,
            "m" => Precision::Minutes,
            "h" => Precision::Hours,
            _ => return None,
        })
    }

    /// Nanoseconds in one unit of this precision.
    pub fn nanos(self) -> i64 {
        match self {
            Precision::Nanos => 1,
            Precision::Micros => 1_000,
            Precision::Millis => 1_000_000,
            Precision::Seconds => 1_000_000_000,
            Precision::Minutes => 60_000_000_000,
            Precision::Hours => 3_600_000_000_000,
        }
    }
}

/// How to read one body.
#[derive(Debug, Clone, Copy)]
pub struct ParseOptions {
    pub precision: Precision,
    /// Arrival time in ns since the epoch, for lines without a timestamp.
    pub now_ns: i64,
    /// Unsigned fields (`42u`) are InfluxDB 2.x only; 1.x rejects them.
    pub allow_unsigned: bool,
}

/// What came out of one body.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Good lines appended to the output.
    pub points: usize,
    /// Lines rejected, all of them (only the first few are in `errors`).
    pub rejected: usize,
    pub errors: Vec<ParseError>,
    pub min_ts: Option<i64>,
    pub max_ts: Option<i64>,
    /// Good lines that had no timestamp and got the arrival time.
    pub stamped: usize,
}

/// Validates `body` line by line and appends each good line to `out` as
/// `<original text without timestamp> <timestamp ns>\n`.
pub fn parse_into(body: &[u8], opts: &ParseOptions, out: &mut Vec<u8>) -> Parsed {
    let mut parsed = Parsed::default();
    let mut tags = Vec::new();
    let default_ts = opts.now_ns - opts.now_ns.rem_euclid(opts.precision.nanos());
    let mut pos = 0;
    let mut line_no = 1;
    while pos < body.len() {
        // A plain line (see `plain_line_end`) holds no newline, quote,
        // backslash or NUL: no inner line to count, nothing risky below.
        let (end, plain) = match plain_line_end(body, pos) {
            Some(end) => (end, true),
            None => (scan_line_escaped(body, pos), false),
        };
        let block = &body[pos..end];
        let this_line = line_no;
        line_no += 1;
        if !plain {
            line_no += block.iter().filter(|&&b| b == b'\n').count();
        }
        pos = end + 1;
        let start = skip_whitespace(block, 0);
        if start >= block.len() || block[start] == b'#' {
            continue;
        }
        let line = &block[start..];
        match parse_line(line, opts, &mut tags) {
            Ok((key_and_fields, ts)) => {
                if ts.is_none() {
                    parsed.stamped += 1;
                }
                let ts = ts.unwrap_or(default_ts);
                let line_start = out.len();
                out.extend_from_slice(key_and_fields);
                out.push(b' ');
                let mut buf = itoa_buf();
                out.extend_from_slice(fmt_i64(ts, &mut buf));
                out.push(b'\n');
                // Invariant: a stored line re-parses as itself (the upstream
                // and every later reader parse the stored form). Leading
                // whitespace the stored form lacks, or a timestamp it adds,
                // can change how quotes, escapes and NULs split a line (the
                // fuzz target found both), so such lines are re-parsed; plain
                // lines cannot change and skip the cost.
                let risky = start > 0
                    || !plain
                        && key_and_fields
                            .iter()
                            .any(|&b| matches!(b, b'"' | b'\\' | 0 | b'\n'));
                if risky && !reparses_to_itself(out, line_start, opts, &mut tags) {
                    out.truncate(line_start);
                    parsed.rejected += 1;
                    if parsed.errors.len() < MAX_REPORTED_ERRORS {
                        parsed.errors.push(ParseError {
                            line: this_line,
                            column: start + 1,
                            kind: ErrorKind::AmbiguousLine,
                            text: quote_line(line),
                        });
                    }
                    continue;
                }
                parsed.points += 1;
                parsed.min_ts = Some(parsed.min_ts.map_or(ts, |m| m.min(ts)));
                parsed.max_ts = Some(parsed.max_ts.map_or(ts, |m| m.max(ts)));
            }
            Err((kind, at)) => {
                parsed.rejected += 1;
                if parsed.errors.len() < MAX_REPORTED_ERRORS {
                    parsed.errors.push(ParseError {
                        line: this_line,
                        column: start + at + 1,
                        kind,
                        text: quote_line(line),
                    });
                }
            }
        }
    }
    parsed
}

/// Does the stored line at `out[start..]` (newline included) split as one
/// line and parse back to itself?
fn reparses_to_itself(
    out: &[u8],
    start: usize,
    opts: &ParseOptions,
    tags: &mut Vec<(usize, usize)>,
) -> bool {
    let Some(stored) = out.get(start..out.len().saturating_sub(1)) else {
        return false;
    };
    if scan_line(out, start) != out.len() - 1 || stored.first().is_some_and(|&b| b == b'#') {
        return false;
    }
    // The stored timestamp is in ns: re-read it so.
    let ns = ParseOptions {
        precision: Precision::Nanos,
        ..*opts
    };
    match parse_line(stored, &ns, tags) {
        Ok((kf, Some(ts))) => {
            let mut buf = itoa_buf();
            let ts_text = fmt_i64(ts, &mut buf);
            kf.len() + 1 + ts_text.len() == stored.len()
                && stored.get(kf.len()) == Some(&b' ')
                && stored.get(kf.len() + 1..) == Some(ts_text)
        }
        _ => false,
    }
}

fn quote_line(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if line.len() <= MAX_QUOTED_LINE_BYTES {
        return String::from_utf8_lossy(line).into_owned();
    }
    let mut cut = String::from_utf8_lossy(&line[..MAX_QUOTED_LINE_BYTES]).into_owned();
    cut.push('…');
    cut
}

fn skip_whitespace(buf: &[u8], mut i: usize) -> usize {
    while i < buf.len() && matches!(buf[i], b' ' | b'\t' | 0) {
        i += 1;
    }
    i
}

type LineResult<'a> = Result<(&'a [u8], Option<i64>), (ErrorKind, usize)>;

/// Parses one line (leading whitespace already skipped). Returns the text up to
/// the end of the field set, and the timestamp in ns if the line had one.
fn parse_line<'a>(
    buf: &'a [u8],
    opts: &ParseOptions,
    tags: &mut Vec<(usize, usize)>,
) -> LineResult<'a> {
    let key_end = scan_key(buf, tags)?;
    if key_end == 0 {
        return Err((ErrorKind::MissingMeasurement, 0));
    }
    if key_end > MAX_KEY_BYTES {
        return Err((ErrorKind::KeyTooLong, MAX_KEY_BYTES));
    }
    let (fields_start, fields_end) = scan_fields(buf, key_end, opts)?;
    if fields_end == fields_start {
        return Err((ErrorKind::MissingFields, fields_start));
    }
    let ts_start = skip_whitespace(buf, fields_end);
    let mut i = ts_start;
    while i < buf.len() && buf[i] != b'\n' && buf[i] != b' ' {
        if !(buf[i].is_ascii_digit() || (i == ts_start && buf[i] == b'-')) {
            return Err((ErrorKind::BadTimestamp, i));
        }
        i += 1;
    }
    let ts_text = &buf[ts_start..i];
    while i < buf.len() {
        if buf[i] != b' ' {
            return Err((ErrorKind::InvalidPoint, i));
        }
        i += 1;
    }
    if ts_text.is_empty() {
        return Ok((&buf[..fields_end], None));
    }
    let raw: i64 = super::numbers::int(ts_text).ok_or((ErrorKind::BadTimestamp, ts_start))?;
    let ns = raw
        .checked_mul(opts.precision.nanos())
        .filter(|ns| (MIN_TIME_NS..=MAX_TIME_NS).contains(ns))
        .ok_or((ErrorKind::TimeOutOfRange, ts_start))?;
    Ok((&buf[..fields_end], Some(ns)))
}

/// Scans `measurement[,tag=value...]`; returns the end of the key.
fn scan_key(buf: &[u8], tags: &mut Vec<(usize, usize)>) -> Result<usize, (ErrorKind, usize)> {
    if buf.is_empty() || buf[0] == b',' {
        return Err((ErrorKind::MissingMeasurement, 0));
    }
    let mut i = 0;
    loop {
        i += 1;
        if i >= buf.len() {
            return Err((ErrorKind::MissingFields, i));
        }
        if buf[i - 1] == b'\\' {
            continue;
        }
        if buf[i] == b' ' {
            return Ok(i);
        }
        if buf[i] == b',' {
            break;
        }
    }
    // Tags: key=value pairs until an unescaped space.
    tags.clear();
    i += 1;
    loop {
        let key_start = i;
        if i >= buf.len() || matches!(buf[i], b' ' | b',' | b'=') {
            return Err((ErrorKind::MissingTagKey, i));
        }
        loop {
            i += 1;
            if i >= buf.len() || (matches!(buf[i], b' ' | b',') && buf[i - 1] != b'\\') {
                return Err((ErrorKind::MissingTagValue, i));
            }
            if buf[i] == b'=' && buf[i - 1] != b'\\' {
                break;
            }
        }
        tags.push((key_start, i));
        i += 1;
        if i >= buf.len() || matches!(buf[i], b',' | b' ') {
            return Err((ErrorKind::MissingTagValue, i));
        }
        let more = loop {
            i += 1;
            if i >= buf.len() {
                return Err((ErrorKind::MissingFields, i));
            }
            let escaped = buf[i - 1] == b'\\';
            if buf[i] == b'=' && !escaped {
                return Err((ErrorKind::InvalidTagFormat, i));
            }
            if buf[i] == b',' && !escaped {
                break true;
            }
            if buf[i] == b' ' && !escaped {
                break false;
            }
        };
        if !more {
            check_tags(buf, tags)?;
            return Ok(i);
        }
        i += 1;
    }
}

/// InfluxDB sorts tags and rejects duplicate keys and the reserved key `time`.
fn check_tags(buf: &[u8], tags: &mut [(usize, usize)]) -> Result<(), (ErrorKind, usize)> {
    let key = |&(s, e): &(usize, usize)| &buf[s..e];
    if let Some(t) = tags.iter().find(|t| key(t) == b"time") {
        return Err((ErrorKind::InvalidTagKeyTime, t.0));
    }
    let sorted = tags.windows(2).all(|w| key(&w[0]) < key(&w[1]));
    if !sorted {
        tags.sort_unstable_by(|a, b| key(a).cmp(key(b)));
        if let Some(w) = tags.windows(2).find(|w| key(&w[0]) == key(&w[1])) {
            return Err((ErrorKind::DuplicateTags, w[1].0));
        }
    }
    Ok(())
}

/// Scans the field set starting at `i` (whitespace allowed before it).
/// Returns (start, end) of the field set.
fn scan_fields(
    buf: &[u8],
    i: usize,
    opts: &ParseOptions,
) -> Result<(usize, usize), (ErrorKind, usize)> {
    let start = skip_whitespace(buf, i);
    let mut i = start;
    let mut quoted = false;
    let (mut equals, mut commas) = (0usize, 0usize);
    let mut value_start = 0;
    while i < buf.len() {
        let b = buf[i];
        if b == b'\\' && i + 1 < buf.len() {
            i += 2;
            continue;
        }
        if b == b'"' && equals > commas {
            quoted = !quoted;
            if quoted {
                value_start = i;
            } else if i + 1 < buf.len() && !matches!(buf[i + 1], b',' | b' ') {
                // `f="a"=1` or `f="a"b`: text glued to a closed string.
                return Err((ErrorKind::InvalidValue, i + 1));
            }
            i += 1;
            continue;
        }
        if b == b'=' && !quoted {
            equals += 1;
            let before = buf[i - 1];
            let before2 = if i >= 2 { buf[i - 2] } else { 0 };
            if (before == b' ' || before == b',') && before2 != b'\\' || i == start {
                return Err((ErrorKind::MissingFieldKey, i));
            }
            if i + 1 >= buf.len() || matches!(buf[i + 1], b',' | b' ') {
                return Err((ErrorKind::MissingFieldValue, i + 1));
            }
            let next = buf[i + 1];
            if next.is_ascii_digit() || matches!(next, b'.' | b'-' | b'N' | b'n') {
                i = scan_number(buf, i + 1, opts.allow_unsigned)?;
                continue;
            }
            if next != b'"' {
                i = scan_boolean(buf, i + 1)?;
                continue;
            }
        }
        if b == b',' && !quoted {
            commas += 1;
        }
        if b == b' ' && !quoted {
            break;
        }
        i += 1;
    }
    if quoted {
        return Err((ErrorKind::UnbalancedQuotes, value_start));
    }
    if i == start {
        return Ok((start, i));
    }
    if equals == 0 || commas + 1 != equals {
        return Err((ErrorKind::InvalidFieldFormat, i));
    }
    Ok((start, i))
}

#[path = "lines.rs"]
mod lines;
use lines::scan_line_escaped;
pub use lines::{line_ts, lines, plain_line_end, scan_line};

#[path = "errors.rs"]
mod errors;
pub use errors::{ErrorKind, ParseError};

#[path = "values.rs"]
mod values;
use super::numbers::{fmt_i64, itoa_buf};
use values::{scan_boolean, scan_number};

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
