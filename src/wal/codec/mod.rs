//! Batch payload encodings: how a batch's points are stored in the buffer.
//!
//! Gateways have small SD cards and outages can last days: every byte per
//! point saved is outage survived. A stored batch carries its `format`, so
//! encodings can evolve without a flag day — old batches stay readable.
//!
//! | format | name  | payload                                              |
//! |--------|-------|------------------------------------------------------|
//! | 1      | none  | line protocol, one point per line, ns timestamps     |
//! | 2      | delta | the column encoding below, then lz4 (default)        |
//! | 3      | lz4   | lz4 of format 1                                      |
//!
//! # Format 2 (`delta`)
//! ```text
//! blob     = u32 LE decoded length, lz4 block of `body`     (lz4_flex size-prepended)
//! body     = u8 version (2)
//!            varint n_lines
//!            varint n_keys,   n_keys   × bytes             -- series keys: measurement + tag set
//!            varint n_fkeys,  n_fkeys  × bytes             -- field keys
//!            varint n_shapes, n_shapes × shape
//!            n_lines × varint shape id                     -- line order is kept
//!            u8 k, bytes(ints(zigzag(delta of delta of ts / 10^k)))
//!                                                          -- k: coarsest shared power of ten (≤ 9)
//!            per shape, per field of the shape: column      -- one column per series × field key
//! shape    = varint key id, varint n_fields, n_fields × (varint fkey id, u8 type)
//! column   = varint byte length, bytes:
//!   float  : u8 0, u8 e, ints(zigzag(delta of n))       -- v = n / 10^e exactly
//!          | u8 1, Gorilla XOR bit stream                  -- otherwise
//!   int    : ints(zigzag(wrapping delta))
//!   uint   : ints(zigzag(wrapping delta as i64))
//!   bool   : bits, 8 a byte, first value in the high bit
//!   string : varint n_distinct, n_distinct × bytes, then varint index each
//! bytes    = varint length, raw bytes (escapes kept as written)
//! ints     = u8 0, varint each                            -- whichever is smaller:
//!          | u8 1, u8 width, each in `width` bits, MSB first, zero-padded
//! type     = 0 float, 1 int, 2 uint, 3 bool, 4 string
//! ```
//! Decoding gives back every point exactly: the same key and field text,
//! field types, bit-identical floats (−0.0 and subnormals included), full
//! i64/u64 range, nanosecond timestamps, and line order. It renders line
//! protocol that differs from what was written only in spelling (`1.50` comes
//! back as `1.5`, `T` as `true`), never in value.
//!
//! The decoder never panics and never allocates more than the input can
//! justify: counts are checked against the bytes left, the decoded size is
//! capped by [`MAX_DECODED_BYTES`], and garbage is a [`CodecError`].

mod bits;
mod columns;
mod floats;

use crate::lineproto::numbers::{push_i64, push_u64};
use crate::lineproto::split_lines::SplitLines;
use bits::{Reader, Short, get_ints, get_ints_into, unzigzag};
use std::fmt;

/// The stored format `performance.compression` selects.
pub fn format_for(c: &crate::config::Compression) -> i64 {
    match (c.enabled, c.algorithm.as_str()) {
        (true, "delta") => FORMAT_DELTA,
        (true, "lz4") => FORMAT_LZ4,
        _ => FORMAT_NONE,
    }
}

pub const FORMAT_NONE: i64 = 1;
pub const FORMAT_DELTA: i64 = 2;
pub const FORMAT_LZ4: i64 = 3;
const VERSION: u8 = 2;
/// Timestamps are stored in units of 10^k ns, k ≤ 9 (whole seconds).
const MAX_TS_SCALE_EXP: u32 = 9;
/// A stored batch never decodes to more than this: batches are at most
/// `MAX_BATCH_POINTS_LIMIT` points, and a larger claim is a damaged blob.
pub const MAX_DECODED_BYTES: usize = 512 * 1024 * 1024;
/// LZ4's block format turns one input byte into at most 255 output bytes (a
/// match length is extended 255 at a time), so a larger claim is damage.
const LZ4_MAX_EXPANSION: usize = 255;

/// A stored payload that cannot be read back (damaged or foreign).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "undecodable batch payload: {}", self.0)
    }
}

impl std::error::Error for CodecError {}

impl From<Short> for CodecError {
    fn from(_: Short) -> Self {
        CodecError("truncated or inconsistent".into())
    }
}

/// Encodes normalised line protocol in `format`.
pub fn encode(format: i64, lp: &[u8]) -> Result<Vec<u8>, CodecError> {
    match format {
        FORMAT_NONE => Ok(lp.to_vec()),
        FORMAT_LZ4 => Ok(lz4_flex::compress_prepend_size(lp)),
        FORMAT_DELTA => Ok(lz4_flex::compress_prepend_size(&columns::columns(lp)?)),
        f => Err(CodecError(format!("unknown format {f}"))),
    }
}

/// As `encode`, from the payload split already (the commit thread shares
/// one split of a batch with the downsampling windows).
pub fn encode_split(format: i64, split: &SplitLines) -> Result<Vec<u8>, CodecError> {
    match format {
        FORMAT_DELTA => Ok(lz4_flex::compress_prepend_size(&columns::columns_of(
            split,
        )?)),
        other => encode(other, split.payload),
    }
}

/// `encode`, or the text itself when the encoder refuses (logged): points
/// are never lost to an encoder. The stored format and bytes.
pub fn encode_or_text(format: i64, lp: &[u8], split: Option<&SplitLines>) -> (i64, Vec<u8>) {
    let encoded = match split {
        Some(s) => encode_split(format, s),
        None => encode(format, lp),
    };
    match encoded {
        Ok(blob) => (format, blob),
        Err(e) => {
            log::warn!("storing a batch unencoded: {e}");
            (FORMAT_NONE, lp.to_vec())
        }
    }
}

/// Decodes a stored payload back to normalised line protocol.
pub fn decode(format: i64, blob: &[u8]) -> Result<Vec<u8>, CodecError> {
    match format {
        FORMAT_NONE => Ok(blob.to_vec()),
        FORMAT_LZ4 => unlz4(blob),
        FORMAT_DELTA => lines(&unlz4(blob)?),
        f => Err(CodecError(format!("unknown format {f}"))),
    }
}

fn unlz4(blob: &[u8]) -> Result<Vec<u8>, CodecError> {
    let size = blob
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or(Short)?;
    // A damaged header must not make us allocate hundreds of MiB on a 256 MB
    // gateway: LZ4 cannot expand more than LZ4_MAX_EXPANSION times.
    let possible = (blob.len() - 4)
        .saturating_mul(LZ4_MAX_EXPANSION)
        .saturating_add(LZ4_MAX_EXPANSION);
    if size > MAX_DECODED_BYTES || size > possible {
        return Err(CodecError(format!(
            "claims {size} bytes decoded from {} stored",
            blob.len()
        )));
    }
    lz4_flex::decompress(&blob[4..], size).map_err(|e| CodecError(format!("lz4: {e}")))
}

/// A decoded column: its values are `n` entries of the batch's one value
/// vector from `start` (a vector per column was a tenth of the drain's time
/// in malloc and free, issue "CPU per point").
#[derive(Clone, Copy)]
enum Column {
    Float(floats::FloatForm, usize),
    /// Integers as two's complement.
    Int(usize),
    Uint(usize),
    Bool(usize),
    /// Each value is an index into `strs` (checked on decoding).
    Str(usize),
}

/// Reads one column of `n` values, appending them to `vals` (and a string
/// column's dictionary to `strs`, its values made indices into `strs`).
fn read_column<'a>(
    bytes: &'a [u8],
    kind: u8,
    n: usize,
    vals: &mut Vec<u64>,
    strs: &mut Vec<&'a [u8]>,
) -> Result<Column, Short> {
    let mut r = Reader::new(bytes);
    let start = vals.len();
    Ok(match kind {
        0 => Column::Float(floats::decode_into(&mut r, n, vals)?, start),
        1 | 2 => {
            get_ints_into(&mut r, n, vals)?;
            let mut prev = 0i64;
            for v in &mut vals[start..] {
                prev = prev.wrapping_add(unzigzag(*v));
                *v = prev as u64;
            }
            if kind == 1 {
                Column::Int(start)
            } else {
                Column::Uint(start)
            }
        }
        3 => {
            if n.div_ceil(8) > bytes.len() {
                return Err(Short);
            }
            vals.extend((0..n).map(|i| u64::from(bytes[i / 8] >> (7 - i % 8) & 1)));
            Column::Bool(start)
        }
        4 => {
            let d = r.count(1)?;
            // The encoder's dictionary holds the column's distinct values.
            if d > n {
                return Err(Short);
            }
            let first = strs.len();
            for _ in 0..d {
                strs.push(r.bytes()?);
            }
            vals.reserve(n.min(bytes.len()));
            for _ in 0..n {
                let id = r.varint()? as usize;
                if id >= d {
                    return Err(Short);
                }
                vals.push((first + id) as u64);
            }
            Column::Str(start)
        }
        _ => return Err(Short),
    })
}

/// A dictionary of at most `max` entries.
fn read_dict<'a>(r: &mut Reader<'a>, max: usize) -> Result<Vec<&'a [u8]>, Short> {
    let k = r.count(1)?;
    if k > max {
        return Err(Short);
    }
    (0..k).map(|_| r.bytes()).collect()
}

/// Format 2 body → line protocol.
fn lines(body: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut r = Reader::new(body);
    if r.u8()? != VERSION {
        return Err(CodecError("unknown format 2 version".into()));
    }
    let n = r.count(1)?; // each line costs at least its shape id
    // The encoder writes no series key and no shape that no line uses, and
    // no shape without fields (line protocol has none): more is damage, and
    // refused before it is held (found in review: 5M unused shapes in a
    // 39 KB blob took 200 MB).
    let keys = read_dict(&mut r, n)?;
    let fkeys = read_dict(&mut r, usize::MAX)?;
    let n_shapes = r.count(2)?;
    if n_shapes > n {
        return Err(CodecError(format!("{n_shapes} shapes for {n} lines")));
    }
    let mut shapes = Vec::with_capacity(n_shapes);
    for _ in 0..n_shapes {
        let key = r.varint()? as usize;
        let nf = r.count(2)?;
        if nf == 0 {
            return Err(CodecError("a shape without fields".into()));
        }
        let mut fields = Vec::with_capacity(nf);
        for _ in 0..nf {
            let fk = r.varint()? as usize;
            let kind = r.u8()?;
            if fk >= fkeys.len() || kind > 4 {
                return Err(Short.into());
            }
            fields.push((fk, kind));
        }
        if key >= keys.len() {
            return Err(Short.into());
        }
        shapes.push((key, fields));
    }
    let mut line_shapes = Vec::with_capacity(n);
    let mut per_shape = vec![0usize; n_shapes];
    for _ in 0..n {
        let s = r.varint()? as usize;
        *per_shape.get_mut(s).ok_or(Short)? += 1;
        line_shapes.push(s);
    }
    // The least these lines can render to: a line its key, a space, a digit
    // of timestamp and a newline; a value its separator, key, `=` and two
    // bytes (`0i`). Past the cap, refuse before decoding a column: a blob of
    // a few hundred bytes can claim billions of values (one shape of 20,000
    // fields with zero-width columns, found in review), and a column's
    // values are held until the lines are written.
    let (mut least, mut n_values) = (0u64, 0u64);
    for ((key, fields), &lines) in shapes.iter().zip(&per_shape) {
        let key_len = keys.get(*key).map_or(0, |k| k.len()) as u64;
        let line = fields.iter().fold(key_len + 3, |sum, (fk, _)| {
            sum + fkeys.get(*fk).map_or(0, |k| k.len()) as u64 + 4
        });
        least = least.saturating_add(line.saturating_mul(lines as u64));
        n_values = n_values.saturating_add((fields.len() as u64).saturating_mul(lines as u64));
    }
    if least > MAX_DECODED_BYTES as u64 {
        return Err(CodecError(format!(
            "claims lines of at least {least} bytes, over the {MAX_DECODED_BYTES}-byte cap"
        )));
    }
    // Reserved fallibly: on a 32-bit gateway a batch near the cap may not
    // fit in memory, which is an error for this batch, not an abort.
    let too_large = |_| CodecError(format!("{least} bytes of lines do not fit in memory here"));
    let mut vals: Vec<u64> = Vec::new();
    vals.try_reserve_exact(usize::try_from(n_values).unwrap_or(usize::MAX))
        .map_err(too_large)?;
    let mut out: Vec<u8> = Vec::new();
    out.try_reserve(least as usize).map_err(too_large)?;
    let mut ts = Vec::with_capacity(n);
    let scale = r.u8()? as u32;
    if scale > MAX_TS_SCALE_EXP {
        return Err(Short.into());
    }
    let unit = 10i64.pow(scale);
    let (mut prev, mut prev_delta) = (0i64, 0i64);
    let mut tr = Reader::new(r.bytes()?);
    for d in get_ints(&mut tr, n)? {
        let delta = prev_delta.wrapping_add(unzigzag(d));
        prev = prev.wrapping_add(delta);
        prev_delta = delta;
        ts.push(prev.wrapping_mul(unit));
    }
    // Every column's values in one vector, each column's in a run.
    let mut strs: Vec<&[u8]> = Vec::new();
    let mut cols: Vec<Column> = Vec::new();
    let mut first_col = Vec::with_capacity(n_shapes);
    for (s, (_, fields)) in shapes.iter().enumerate() {
        first_col.push(cols.len());
        for &(_, kind) in fields {
            cols.push(read_column(
                r.bytes()?,
                kind,
                per_shape[s],
                &mut vals,
                &mut strs,
            )?);
        }
    }
    let mut cursor = vec![0usize; n_shapes];
    for (i, &s) in line_shapes.iter().enumerate() {
        let (key, fields) = &shapes[s];
        let at = cursor[s];
        cursor[s] += 1;
        out.extend_from_slice(keys[*key]);
        let shape_cols = cols.get(first_col[s]..).unwrap_or(&[]);
        for (f, ((fk, _), col)) in fields.iter().zip(shape_cols).enumerate() {
            out.push(if f == 0 { b' ' } else { b',' });
            out.extend_from_slice(fkeys[*fk]);
            out.push(b'=');
            // Numbers without the formatting machinery: the drain renders
            // every value of every line it sends (issue "CPU per point").
            // A column holds `per_shape[s]` values and `at` counts the
            // shape's lines, so `start + at` is inside the column's run;
            // read with `get` all the same: the decoder never panics.
            let val = |start: usize| vals.get(start + at).copied().ok_or(Short);
            match *col {
                Column::Float(form, start) => form.render(val(start)?, &mut out),
                Column::Int(start) => {
                    push_i64(&mut out, val(start)? as i64);
                    out.push(b'i');
                }
                Column::Uint(start) => {
                    push_u64(&mut out, val(start)?);
                    out.push(b'u');
                }
                Column::Bool(start) => {
                    let b: &[u8] = if val(start)? == 1 { b"true" } else { b"false" };
                    out.extend_from_slice(b);
                }
                Column::Str(start) => {
                    out.push(b'"');
                    out.extend_from_slice(strs.get(val(start)? as usize).ok_or(Short)?);
                    out.push(b'"');
                }
            }
        }
        out.push(b' ');
        push_i64(&mut out, ts[i]);
        out.push(b'\n');
        if out.len() > MAX_DECODED_BYTES {
            return Err(CodecError("decodes to more than the size cap".into()));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
