//! The encoder of format 2 (`delta`; the layout is in `codec/mod.rs`): a
//! batch of normalised lines taken apart into series keys, field keys,
//! shapes (a key with its fields and their types), timestamps and one column
//! per shape and field.
//!
//! This runs on the commit thread for every line committed, so it reads each
//! line once into a reused vector, interns with a fast hash, and remembers
//! each series' last shape (a meter sends the same fields line after line).

use super::bits::{BitWriter, put_bytes, put_ints, put_varint, zigzag};
use super::floats::{self, Digits};
use super::{CodecError, MAX_TS_SCALE_EXP, VERSION};
use crate::lineproto::numbers::Decimal;
use crate::lineproto::split::{self, Value};
use crate::lineproto::split_lines::{Parts, SplitLines};

/// The codec's maps. Their keys (series and field names) come from HTTP
/// clients, but a map lives for one batch (at most `max_batch_size` lines)
/// and foldhash is seeded per process: a client crafting collisions can slow
/// one batch's encoding, no more. SipHash was a tenth of the commit thread's
/// time (issue "CPU per point").
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Buffers reused from column to column while a batch is written: a batch
/// of 10,000 meter lines has 10,000 columns (one per series and field), and
/// a vector per column was a tenth of the commit thread's time in malloc.
#[derive(Default)]
struct Scratch<'a> {
    floats: Vec<f64>,
    ints: Vec<u64>,
    strs: Vec<&'a [u8]>,
    column: Vec<u8>,
}

/// Every line's values in line order, 8 bytes each (a 24-byte `Value` a
/// value made the commit thread's peak memory grow by megabytes): the shape
/// says each one's type.
#[derive(Default)]
struct Values<'a> {
    /// Floats as their bits or their digits (`digits`), integers as two's
    /// complement, booleans 0 or 1, strings as their index in `strs`.
    bits: Vec<u64>,
    /// One bit per value: set where `bits` holds a plain decimal's digits
    /// (`pack`) rather than an f64's bits (an eighth of a byte a value).
    digits: Vec<u64>,
    strs: Vec<&'a [u8]>,
    /// Where each line's values begin in `bits`.
    starts: Vec<u32>,
}

/// A plain decimal in 64 bits: sign, then `frac` (≤ 15, 4 bits) at bit 56,
/// then n (< 10^15 < 2^50).
fn pack(d: Decimal) -> u64 {
    // `decimal_digits` makes no other: at most 15 digits.
    debug_assert!(d.n < 1 << 50 && d.frac <= 15, "{d:?}");
    u64::from(d.negative) << 63 | u64::from(d.frac) << 56 | d.n
}

fn unpack(bits: u64) -> Decimal {
    Decimal {
        negative: bits >> 63 == 1,
        frac: (bits >> 56 & 0xF) as u32,
        n: bits & ((1 << 56) - 1),
    }
}

impl<'a> Values<'a> {
    /// Value `at` of a float column.
    fn float(&self, at: usize) -> Digits {
        let bits = self.bits[at];
        if self.digits[at / 64] >> (at % 64) & 1 == 1 {
            Ok(unpack(bits))
        } else {
            Err(f64::from_bits(bits))
        }
    }

    fn push_line(&mut self, fields: &[(&'a [u8], Value<'a>)]) -> Result<(), CodecError> {
        // Offsets in u32: a batch of 4 G values is far past any quota.
        let start = u32::try_from(self.bits.len())
            .map_err(|_| CodecError("a batch too large to encode".into()))?;
        self.starts.push(start);
        for (_, v) in fields {
            let at = self.bits.len();
            if at / 64 >= self.digits.len() {
                self.digits.push(0);
            }
            let bits = match *v {
                Value::Decimal(d) => {
                    self.digits[at / 64] |= 1 << (at % 64);
                    pack(d)
                }
                Value::Float(x) => x.to_bits(),
                Value::Int(x) => x as u64,
                Value::Uint(x) => x,
                Value::Bool(x) => u64::from(x),
                Value::Str(x) => {
                    self.strs.push(x);
                    (self.strs.len() - 1) as u64
                }
            };
            self.bits.push(bits);
        }
        Ok(())
    }
}

/// Writes one column: the values of field `f` of the lines `lines`, all of
/// type `kind`.
fn write_column<'a>(
    kind: u8,
    f: usize,
    lines: &[u32],
    values: &Values<'a>,
    sc: &mut Scratch<'a>,
    out: &mut Vec<u8>,
) {
    let at = |line: &u32| values.starts[*line as usize] as usize + f;
    let value = |line: &u32| values.bits[at(line)];
    sc.column.clear();
    let b = &mut sc.column;
    match kind {
        0 => {
            let digits = lines.iter().map(|l| values.float(at(l)));
            if !floats::encode_digits(digits.clone(), &mut sc.ints, b) {
                sc.floats.clear();
                sc.floats
                    .extend(digits.map(|d| d.map_or_else(|x| x, Decimal::to_f64)));
                floats::encode(&sc.floats, b);
            }
        }
        1 | 2 => {
            let mut prev = 0i64;
            sc.ints.clear();
            sc.ints.extend(lines.iter().map(|l| {
                let x = value(l) as i64;
                (zigzag(x.wrapping_sub(prev)), prev = x).0
            }));
            put_ints(b, &sc.ints);
        }
        3 => {
            let mut w = BitWriter::default();
            for l in lines {
                w.put(value(l), 1);
            }
            *b = w.finish();
        }
        _ => {
            sc.strs.clear();
            sc.strs.extend(
                lines
                    .iter()
                    .map(|l| values.strs.get(value(l) as usize).copied().unwrap_or(b"")),
            );
            let mut dict: HashMap<&[u8], u64> = HashMap::default();
            let mut order = Vec::new();
            let ids: Vec<u64> = sc
                .strs
                .iter()
                .map(|s| {
                    let n = dict.len() as u64;
                    *dict.entry(s).or_insert_with(|| {
                        order.push(*s);
                        n
                    })
                })
                .collect();
            put_varint(b, order.len() as u64);
            for s in order {
                put_bytes(b, s);
            }
            for id in ids {
                put_varint(b, id);
            }
        }
    }
    put_bytes(out, &sc.column);
}

/// Interns byte strings in first-seen order.
#[derive(Default)]
struct Dict<'a> {
    ids: HashMap<&'a [u8], u64>,
    order: Vec<&'a [u8]>,
}

impl<'a> Dict<'a> {
    fn id(&mut self, s: &'a [u8]) -> u64 {
        let next = self.order.len() as u64;
        *self.ids.entry(s).or_insert_with(|| {
            self.order.push(s);
            next
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        put_varint(out, self.order.len() as u64);
        for s in &self.order {
            put_bytes(out, s);
        }
    }
}

/// No shape yet for a series key (`last_shape`).
const NO_SHAPE: usize = usize::MAX;

/// Does `shape` (key id, then field key id << 3 | type per field) have
/// exactly these fields, in this order, of these types?
fn shape_matches(shape: &[u64], fields: &[(&[u8], Value)], fkeys: &Dict) -> bool {
    shape.len() == fields.len() + 1
        && shape[1..].iter().zip(fields).all(|(&f, (k, v))| {
            f & 7 == u64::from(v.kind()) && fkeys.order.get((f >> 3) as usize) == Some(k)
        })
}

/// Line protocol → format 2 body (before lz4). Split line by line, no
/// arena: a batch no rule takes pays no more memory than its columns.
pub(super) fn columns(lp: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut c = Columns::default();
    let mut fields = Vec::with_capacity(16);
    for line in crate::lineproto::lines(lp) {
        let parts = split::split_into(line, &mut fields).map(|(key, t)| (key, &fields[..], t));
        c.push(parts.ok_or(line))?;
    }
    Ok(c.finish(lp.len()))
}

/// As `columns`, from line protocol split already (shared with the
/// downsampling windows).
pub(super) fn columns_of(split: &SplitLines) -> Result<Vec<u8>, CodecError> {
    let mut c = Columns::default();
    for parts in split.parts() {
        c.push(parts)?;
    }
    // Shapes number below the lines, which a batch's `max_batch_size`
    // keeps far below 2^32; a batch past that gives none.
    let shapes: Option<Vec<u32>> = (c.line_shapes.iter())
        .map(|&s| u32::try_from(s).ok())
        .collect();
    if let Some(shapes) = shapes {
        // Set once: the codec encodes a split once (a second encoding
        // would number the same shapes the same).
        let _ = split.shapes.set(shapes);
    }
    Ok(c.finish(split.payload.len()))
}

/// The columns of a body as its lines come.
#[derive(Default)]
struct Columns<'a> {
    keys: Dict<'a>,
    fkeys: Dict<'a>,
    /// shape = key id + (field key id, type) list → shape id
    shape_ids: HashMap<Vec<u64>, usize>,
    shapes: Vec<Vec<u64>>,
    values: Values<'a>,
    /// The shape a series key had last, by key id: a meter sends the same
    /// fields line after line, so most lines skip hashing their field names.
    last_shape: Vec<usize>,
    line_shapes: Vec<u64>,
    ts: Vec<i64>,
    sig: Vec<u64>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, parts: Result<Parts<'a, '_>, &[u8]>) -> Result<(), CodecError> {
        let (key, fields, t) = parts.map_err(|line| {
            CodecError(format!(
                "not a normalised line: {}",
                String::from_utf8_lossy(&line[..line.len().min(200)])
            ))
        })?;
        let kid = self.keys.id(key);
        let kidx = kid as usize;
        if self.last_shape.len() <= kidx {
            self.last_shape.resize(kidx + 1, NO_SHAPE);
        }
        let cached = self.last_shape[kidx];
        let shape =
            if cached != NO_SHAPE && shape_matches(&self.shapes[cached], fields, &self.fkeys) {
                cached
            } else {
                self.sig.clear();
                self.sig.push(kid);
                for (k, v) in fields {
                    self.sig.push(self.fkeys.id(k) << 3 | v.kind() as u64);
                }
                let shape = match self.shape_ids.get(&self.sig) {
                    Some(&s) => s,
                    None => {
                        self.shape_ids.insert(self.sig.clone(), self.shapes.len());
                        self.shapes.push(self.sig.clone());
                        self.shapes.len() - 1
                    }
                };
                self.last_shape[kidx] = shape;
                shape
            };
        self.values.push_line(fields)?;
        self.line_shapes.push(shape as u64);
        self.ts.push(t);
        Ok(())
    }

    fn finish(self, lp_len: usize) -> Vec<u8> {
        let Columns {
            keys,
            fkeys,
            shapes,
            values,
            line_shapes,
            ts,
            ..
        } = self;
        let mut out = Vec::with_capacity(lp_len / 4);
        out.push(VERSION);
        put_varint(&mut out, ts.len() as u64);
        keys.write(&mut out);
        fkeys.write(&mut out);
        put_varint(&mut out, shapes.len() as u64);
        for s in &shapes {
            put_varint(&mut out, s[0]);
            put_varint(&mut out, (s.len() - 1) as u64);
            for f in &s[1..] {
                put_varint(&mut out, f >> 3);
                out.push((f & 7) as u8);
            }
        }
        for s in &line_shapes {
            put_varint(&mut out, *s);
        }
        // Timestamps in the coarsest power-of-ten unit they all share (a
        // producer writing at ms precision stores ms), then delta-of-delta.
        let scale = (0..=MAX_TS_SCALE_EXP)
            .rev()
            .find(|&k| ts.iter().all(|t| t.rem_euclid(10i64.pow(k)) == 0))
            .unwrap_or(0);
        out.push(scale as u8);
        let unit = 10i64.pow(scale);
        let (mut prev, mut prev_delta) = (0i64, 0i64);
        let dod: Vec<u64> = ts
            .iter()
            .map(|&t| {
                let t = t / unit;
                let delta = t.wrapping_sub(prev);
                let d = zigzag(delta.wrapping_sub(prev_delta));
                (prev, prev_delta) = (t, delta);
                d
            })
            .collect();
        let mut packed = Vec::new();
        put_ints(&mut packed, &dod);
        put_bytes(&mut out, &packed);
        // The lines of each shape, shape after shape (a counting sort).
        let mut first = vec![0u32; shapes.len() + 1];
        for &s in &line_shapes {
            first[s as usize + 1] += 1;
        }
        for i in 1..first.len() {
            first[i] += first[i - 1];
        }
        let mut next = first.clone();
        let mut by_shape = vec![0u32; line_shapes.len()];
        for (line, &s) in line_shapes.iter().enumerate() {
            by_shape[next[s as usize] as usize] = line as u32;
            next[s as usize] += 1;
        }
        let mut scratch = Scratch::default();
        for (s, shape) in shapes.iter().enumerate() {
            let lines = &by_shape[first[s] as usize..first[s + 1] as usize];
            for (f, field) in shape[1..].iter().enumerate() {
                write_column((field & 7) as u8, f, lines, &values, &mut scratch, &mut out);
            }
        }
        out
    }
}
