//! Cutting a body into physical lines: where a line ends (a newline inside
//! a quoted string field, or escaped, does not end it), as InfluxDB 1.6's
//! `scanLine` decides. Both threads call this for every line (the executor
//! on request bodies, the commit thread on normalised batches), so plain
//! lines take a fast path.

#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

/// Splits a body into physical points: the end index of the line starting at
/// `i` (a newline inside a quoted string field does not end it).
pub fn scan_line(buf: &[u8], i: usize) -> usize {
    match plain_line_end(buf, i) {
        Some(end) => end,
        None => scan_line_escaped(buf, i),
    }
}

/// The end of the line starting at `i` when no quote, backslash or NUL comes
/// before it: then nothing can hide a newline, and the line ends at the first
/// one (or at the end of `buf`). `None` when such a byte comes first: the
/// caller scans the careful way. Most meter lines are plain; this looks at
/// eight bytes a step (the bytewise state machine was a tenth of the
/// executor's and of the commit thread's time, issue "CPU per point").
pub fn plain_line_end(buf: &[u8], i: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    /// A byte of `x` is zero (exact when used only as "any", as here).
    fn any_zero(x: u64) -> bool {
        x.wrapping_sub(ONES) & !x & HIGHS != 0
    }
    let rest = buf.get(i..)?;
    let mut chunks = rest.chunks_exact(8);
    let mut at = i;
    for c in chunks.by_ref() {
        let w = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let special = any_zero(w ^ (ONES * u64::from(b'\n')))
            || any_zero(w ^ (ONES * u64::from(b'"')))
            || any_zero(w ^ (ONES * u64::from(b'\\')))
            || any_zero(w);
        if special {
            break;
        }
        at += 8;
    }
    for &b in &buf[at..] {
        match b {
            b'\n' => return Some(at),
            b'"' | b'\\' | 0 => return None,
            _ => at += 1,
        }
    }
    Some(at)
}

pub(super) fn scan_line_escaped(buf: &[u8], mut i: usize) -> usize {
    let (mut quoted, mut fields) = (false, false);
    let (mut equals, mut commas) = (0usize, 0usize);
    while i < buf.len() {
        let b = buf[i];
        if b == b'\\' && i + 2 < buf.len() {
            i += 2;
            continue;
        }
        if b == b' ' {
            fields = true;
        }
        if fields {
            if !quoted && b == b'=' {
                equals += 1;
                i += 1;
                continue;
            } else if !quoted && b == b',' {
                commas += 1;
                i += 1;
                continue;
            } else if b == b'"' && equals > commas {
                quoted = !quoted;
                i += 1;
                continue;
            }
        }
        if b == b'\n' && !quoted {
            break;
        }
        i += 1;
    }
    i
}

/// Iterates over the physical lines of a normalised payload (as written by
/// [`parse_into`]), without their trailing newline.
pub fn lines(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < payload.len() {
            let end = scan_line(payload, pos);
            let line = &payload[pos..end];
            pos = end + 1;
            if !line.is_empty() {
                return Some(line);
            }
        }
        None
    })
}

/// A normalised line's timestamp (ns): its last space-separated field.
pub fn line_ts(line: &[u8]) -> Option<i64> {
    let at = line.iter().rposition(|&b| b == b' ')?;
    std::str::from_utf8(line.get(at + 1..)?).ok()?.parse().ok()
}
