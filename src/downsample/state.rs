//! The windows' state as bytes, for the checkpoint the buffer will keep
//! (durability plan, `downsample/mod.rs`): one blob per lane and window
//! start ("window set"), so a checkpoint rewrites only the sets that changed
//! since the last one, not every window held.
//!
//! ```text
//! stored   = a version-1 set compressed (`packed.rs`, what `encode` writes)
//!          | a version-1 set (as the first release stored them; read still)
//! set      = u8 version (1), u8 dirty, varint n_series, n_series × series
//! series   = bytes key, u8 n_slots (≤ 8),
//!            n_slots × zigzag varint timestamp,
//!            bytes names, varint n_fields, n_fields × field
//! field    = varint name_at, varint name_len, u8 seen, u8 flags
//!            (1 changed, 2 emitted), u8 kind, window
//! window   = kind 0 float : varint count, u64 LE bits of sum, min, max,
//!                           zigzag varint last_ts, u64 LE bits of last
//!          | kind 1 int   : varint count, zigzag varint sum, min, max,
//!                           last_ts, last
//!          | kind 2 uint  : varint count, varint sum, min, max,
//!                           zigzag varint last_ts, varint last
//!          | kind 3 bool  : varint count, zigzag varint last_ts, u8 last
//!          | kind 4 string: varint count, zigzag varint last_ts, bytes last
//! bytes    = varint length, the bytes
//! ```
//! `dirty`: a point since the last close (1) or not (0). Lane and window
//! start are the row's key, not in the blob; nor is `Series::hint`, which
//! only speeds a lookup.
//!
//! The decoder takes bytes from a file that power cuts and SD cards can
//! damage: it never panics, never allocates more than the bytes justify,
//! and refuses a set that breaks an invariant `windows` relies on (field
//! names inside their buffer and distinct, slot bits only for slots in use,
//! counts ≥ 1, a string that cannot close its quotes early, keys and names
//! that read as line protocol, no series twice, no empty set).

use super::emittable::{closes_only_at_its_end, is_field_name, is_series_key};
use super::{Field, Series, SeriesTable, WindowSet};
use crate::downsample::aggregate::{Numbers, Window};
use crate::downsample::windows::DEDUP_RECENT_TIMESTAMPS;

const VERSION: u8 = 1;
const CHANGED: u8 = 1;
const EMITTED: u8 = 2;
/// The fewest bytes a series takes (empty key and names, no slots, one
/// field of the smallest kind): bounds a claimed count by the bytes left.
const MIN_SERIES_BYTES: usize = 4 + MIN_FIELD_BYTES;
/// Name offset and length, seen, flags, kind, count, and a boolean's
/// timestamp and value.
const MIN_FIELD_BYTES: usize = 8;

/// A stored set that cannot be read back: damage, or another version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "damaged downsampling state: {}", self.0)
    }
}

impl std::error::Error for StateError {}

fn damaged(what: &str) -> StateError {
    StateError(what.to_string())
}

/// A set's bytes as a checkpoint stores them: its version-1 bytes
/// compressed (`packed`).
pub(super) fn encode(set: &WindowSet) -> Vec<u8> {
    super::packed::pack(&encode_plain(set))
}

/// A set's version-1 bytes.
fn encode_plain(set: &WindowSet) -> Vec<u8> {
    let mut out = vec![VERSION, u8::from(set.dirty)];
    put_varint(&mut out, set.series.len() as u64);
    for (key, s) in set.series.iter() {
        put_bytes(&mut out, key);
        out.push(s.slots_used);
        for &t in &s.slots[..usize::from(s.slots_used)] {
            put_varint(&mut out, zigzag(t));
        }
        put_bytes(&mut out, &s.names);
        put_varint(&mut out, s.fields.len() as u64);
        for (i, f) in s.fields.iter().enumerate() {
            put_varint(&mut out, u64::from(f.name_at));
            put_varint(&mut out, u64::from(f.name_len));
            out.push(s.seen_bits(i));
            let flags = if f.changed { CHANGED } else { 0 } | if f.emitted { EMITTED } else { 0 };
            out.push(flags);
            out.push(f.window.kind());
            put_window(&mut out, &f.window);
        }
    }
    out
}

fn put_window(out: &mut Vec<u8>, w: &Window) {
    match w {
        Window::Float(n) => {
            put_varint(out, n.count);
            for x in [n.sum, n.min, n.max] {
                out.extend_from_slice(&x.to_bits().to_le_bytes());
            }
            put_varint(out, zigzag(n.last_ts));
            out.extend_from_slice(&n.last.to_bits().to_le_bytes());
        }
        Window::Int(n) => {
            put_varint(out, n.count);
            for x in [n.sum, n.min, n.max, n.last_ts, n.last] {
                put_varint(out, zigzag(x));
            }
        }
        Window::Uint(n) => {
            put_varint(out, n.count);
            for x in [n.sum, n.min, n.max] {
                put_varint(out, x);
            }
            put_varint(out, zigzag(n.last_ts));
            put_varint(out, n.last);
        }
        Window::Bool {
            count,
            last_ts,
            last,
        } => {
            put_varint(out, *count);
            put_varint(out, zigzag(*last_ts));
            out.push(u8::from(*last));
        }
        Window::Str {
            count,
            last_ts,
            last,
        } => {
            put_varint(out, *count);
            put_varint(out, zigzag(*last_ts));
            put_bytes(out, last);
        }
    }
}

/// Reads a set back; `held` is the field windows it holds.
pub(super) fn decode(blob: &[u8]) -> Result<(WindowSet, usize), StateError> {
    if super::packed::is_packed(blob) {
        decode_plain(&super::packed::unpack(blob)?)
    } else {
        decode_plain(blob)
    }
}

/// Reads a version-1 set back.
fn decode_plain(blob: &[u8]) -> Result<(WindowSet, usize), StateError> {
    let mut r = Reader { buf: blob, at: 0 };
    if r.u8()? != VERSION {
        return Err(damaged("unknown version"));
    }
    let dirty = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(damaged("bad flag")),
    };
    let n_series = r.count(MIN_SERIES_BYTES)?;
    if n_series == 0 {
        return Err(damaged("an empty set"));
    }
    let mut series = SeriesTable::default();
    series
        .try_reserve(n_series)
        .map_err(|()| damaged("no memory"))?;
    let mut held = 0usize;
    for _ in 0..n_series {
        let key: Box<[u8]> = r.bytes()?.into();
        if !is_series_key(&key) {
            return Err(damaged("a series key that is no line protocol"));
        }
        let slots_used = r.u8()?;
        if usize::from(slots_used) > DEDUP_RECENT_TIMESTAMPS {
            return Err(damaged("too many slots"));
        }
        let mut slots = [0i64; DEDUP_RECENT_TIMESTAMPS];
        for j in 0..usize::from(slots_used) {
            let t = unzigzag(r.varint()?);
            // Distinct, as `take_slot` keeps them: a slot twice would hide
            // the second's bits from `slot_of` (found in review: a retry
            // then counted again).
            if slots[..j].contains(&t) {
                return Err(damaged("a timestamp in two slots"));
            }
            slots[j] = t;
        }
        let names = r.bytes()?.to_vec();
        let n_fields = r.count(MIN_FIELD_BYTES)?;
        if n_fields == 0 {
            return Err(damaged("a series without fields"));
        }
        let mut fields = Vec::new();
        fields
            .try_reserve_exact(n_fields)
            .map_err(|_| damaged("no memory"))?;
        for _ in 0..n_fields {
            let field = field(&mut r, &names, slots_used)?;
            let name = &names[field.name()];
            if !is_field_name(name) {
                return Err(damaged("a field name that is no line protocol"));
            }
            if fields.iter().any(|f: &Field| names[f.name()] == *name) {
                return Err(damaged("a field twice"));
            }
            fields.push(field);
        }
        held += fields.len();
        // Its key's parts are hashed at its first line (`hash_with`).
        let s = Series::restored(fields, names, slots, slots_used);
        if series.find(&key).is_some() {
            return Err(damaged("a series twice"));
        }
        series.push(key, s);
    }
    if r.at != blob.len() {
        return Err(damaged("bytes after the set"));
    }
    Ok((
        WindowSet {
            dirty,
            ..WindowSet::new(series)
        },
        held,
    ))
}

fn field(r: &mut Reader, names: &[u8], slots_used: u8) -> Result<Field, StateError> {
    let name_at = u32::try_from(r.varint()?).map_err(|_| damaged("bad name"))?;
    let name_len = u32::try_from(r.varint()?).map_err(|_| damaged("bad name"))?;
    let end = (name_at as usize).checked_add(name_len as usize);
    if end.is_none_or(|end| end > names.len()) {
        return Err(damaged("a name outside its buffer"));
    }
    let seen = r.u8()?;
    // Bits only for slots in use (`take_slot` clears a slot's bits when it
    // reuses it, and hands out slots in order while some are free).
    if u32::from(seen) >> slots_used != 0 {
        return Err(damaged("bits for unused slots"));
    }
    let flags = r.u8()?;
    if flags & !(CHANGED | EMITTED) != 0 {
        return Err(damaged("bad field flags"));
    }
    let window = window(r)?;
    Ok(Field {
        name_at,
        name_len,
        window,
        seen,
        changed: flags & CHANGED != 0,
        emitted: flags & EMITTED != 0,
    })
}

fn window(r: &mut Reader) -> Result<Window, StateError> {
    let kind = r.u8()?;
    let count = r.varint()?;
    if count == 0 {
        return Err(damaged("a window without points"));
    }
    let w = match kind {
        0 => {
            let (sum, min, max) = (r.f64()?, r.f64()?, r.f64()?);
            let last_ts = unzigzag(r.varint()?);
            let last = r.f64()?;
            Window::Float(Numbers {
                count,
                sum,
                min,
                max,
                last_ts,
                last,
            })
        }
        1 => {
            let mut x = [0i64; 5];
            for v in &mut x {
                *v = unzigzag(r.varint()?);
            }
            let [sum, min, max, last_ts, last] = x;
            Window::Int(Numbers {
                count,
                sum,
                min,
                max,
                last_ts,
                last,
            })
        }
        2 => {
            let (sum, min, max) = (r.varint()?, r.varint()?, r.varint()?);
            let last_ts = unzigzag(r.varint()?);
            let last = r.varint()?;
            Window::Uint(Numbers {
                count,
                sum,
                min,
                max,
                last_ts,
                last,
            })
        }
        3 => {
            let last_ts = unzigzag(r.varint()?);
            let last = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(damaged("bad boolean")),
            };
            Window::Bool {
                count,
                last_ts,
                last,
            }
        }
        4 => {
            let last_ts = unzigzag(r.varint()?);
            let last = r.bytes()?;
            if !closes_only_at_its_end(last) {
                return Err(damaged("a string that ends early"));
            }
            Window::Str {
                count,
                last_ts,
                last: last.into(),
            }
        }
        _ => return Err(damaged("unknown kind")),
    };
    Ok(w)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StateError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| damaged("cut short"))?;
        let b = &self.buf[self.at..end];
        self.at = end;
        Ok(b)
    }

    fn u8(&mut self) -> Result<u8, StateError> {
        Ok(self.take(1)?[0])
    }

    fn f64(&mut self) -> Result<f64, StateError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_bits(u64::from_le_bytes(a)))
    }

    fn varint(&mut self) -> Result<u64, StateError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err(damaged("varint overflow"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(damaged("varint overflow"))
    }

    /// A count of items of at least `min_bytes_each` bytes: refused when
    /// the bytes left could not hold them.
    fn count(&mut self, min_bytes_each: usize) -> Result<usize, StateError> {
        let n = usize::try_from(self.varint()?).map_err(|_| damaged("bad count"))?;
        let left = self.buf.len() - self.at;
        if n.checked_mul(min_bytes_each).is_none_or(|need| need > left) {
            return Err(damaged("a count beyond the bytes"));
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8], StateError> {
        let n = usize::try_from(self.varint()?).map_err(|_| damaged("bad length"))?;
        self.take(n)
    }
}

/// Hand-made sets for the tests of the decoder's refusals.
#[cfg(test)]
pub(super) mod tests_support {
    use super::{VERSION, put_bytes, put_varint, zigzag};

    /// A boolean field window (count 1, last_ts 0, true) of `kind` 3.
    pub fn field_bytes(name_at: u64, name_len: u64, seen: u8, kind: u8) -> Vec<u8> {
        assert_eq!(kind, 3, "only booleans are made by hand");
        let mut out = Vec::new();
        put_varint(&mut out, name_at);
        put_varint(&mut out, name_len);
        out.extend_from_slice(&[seen, 0, kind, 1, 0, 1]);
        out
    }

    /// The version-1 bytes inside a stored set (`encode`).
    pub fn plain(stored: &[u8]) -> Vec<u8> {
        super::super::packed::unpack(stored).expect("a whole compressed set")
    }

    pub type SeriesSpec<'a> = (&'a [u8], &'a [i64], &'a [u8], &'a [Vec<u8>]);

    pub fn set_bytes(dirty: u8, series: &[SeriesSpec]) -> Vec<u8> {
        let mut out = vec![VERSION, dirty];
        put_varint(&mut out, series.len() as u64);
        for (key, slots, names, fields) in series {
            put_bytes(&mut out, key);
            out.push(slots.len() as u8);
            for &t in *slots {
                put_varint(&mut out, zigzag(t));
            }
            put_bytes(&mut out, names);
            put_varint(&mut out, fields.len() as u64);
            for f in *fields {
                out.extend_from_slice(f);
            }
        }
        out
    }
}
