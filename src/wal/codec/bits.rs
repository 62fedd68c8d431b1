//! Byte and bit plumbing for the batch encoding: LEB128 varints, zig-zag,
//! a bounds-checked reader, and bit streams for Gorilla floats and booleans.
//!
//! Invariant: nothing here panics or allocates on the say-so of its input;
//! every read is checked against what is left and fails with [`Short`].

/// The input ended (or lied about a length) before the value did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short;

pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Reads from a byte slice, never past its end.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn u8(&mut self) -> Result<u8, Short> {
        let b = *self.buf.get(self.pos).ok_or(Short)?;
        self.pos += 1;
        Ok(b)
    }

    pub fn varint(&mut self) -> Result<u64, Short> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Short)
    }

    /// A count that must be backed by at least `min_bytes_each` bytes per
    /// item still unread, so a forged count cannot make us allocate.
    pub fn count(&mut self, min_bytes_each: usize) -> Result<usize, Short> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| Short)?;
        if n.saturating_mul(min_bytes_each) > self.remaining() {
            return Err(Short);
        }
        Ok(n)
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Short> {
        let end = self.pos.checked_add(n).ok_or(Short)?;
        let s = self.buf.get(self.pos..end).ok_or(Short)?;
        self.pos = end;
        Ok(s)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], Short> {
        let n = self.count(1)?;
        self.take(n)
    }
}

/// Appends bits, most significant first (whole bytes at a time: this is on
/// the encoder's hot path for every XOR-coded float).
#[derive(Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Pending bits, right-aligned; fewer than 8 between calls.
    acc: u128,
    pending: u32,
}

impl BitWriter {
    /// Writes the low `bits` bits of `value` (`bits` ≤ 64).
    pub fn put(&mut self, value: u64, bits: u32) {
        if bits == 0 {
            return;
        }
        let masked = if bits >= 64 {
            value
        } else {
            value & ((1u64 << bits) - 1)
        };
        self.acc = (self.acc << bits) | masked as u128;
        self.pending += bits;
        while self.pending >= 8 {
            self.pending -= 8;
            self.bytes.push((self.acc >> self.pending) as u8);
        }
        self.acc &= (1u128 << self.pending) - 1;
    }

    /// The bytes, the last one padded with zero bits.
    pub fn finish(mut self) -> Vec<u8> {
        if self.pending > 0 {
            self.bytes.push((self.acc << (8 - self.pending)) as u8);
        }
        self.bytes
    }
}

pub struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8]) -> BitReader<'a> {
        BitReader { bytes, pos: 0 }
    }

    /// Reads `bits` bits (≤ 64), a byte's worth at a time.
    pub fn get(&mut self, bits: u32) -> Result<u64, Short> {
        let mut v = 0u64;
        let mut left = bits;
        while left > 0 {
            let byte = *self.bytes.get(self.pos / 8).ok_or(Short)?;
            let avail = 8 - (self.pos % 8) as u32;
            let take = avail.min(left);
            let chunk = (byte as u16 >> (avail - take)) & ((1u16 << take) - 1);
            v = (v << take) | chunk as u64;
            self.pos += take as usize;
            left -= take;
        }
        Ok(v)
    }
}

fn varint_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).div_ceil(7).max(1)
}

const INTS_VARINT: u8 = 0;
const INTS_PACKED: u8 = 1;

/// A run of unsigned integers (zig-zagged deltas, mostly): as varints, or
/// bit-packed at the width of the largest — whichever is smaller. Noisy
/// sensor deltas fill most of their bits; varints would waste one in eight.
pub fn put_ints(out: &mut Vec<u8>, values: &[u64]) {
    let max = values.iter().copied().max().unwrap_or(0);
    let width = 64 - max.leading_zeros();
    let packed = (values.len() * width as usize).div_ceil(8) + 1;
    let varints: usize = values.iter().map(|&v| varint_len(v)).sum();
    if packed < varints {
        out.push(INTS_PACKED);
        out.push(width as u8);
        let mut w = BitWriter::default();
        for &v in values {
            w.put(v, width);
        }
        out.extend_from_slice(&w.finish());
    } else {
        out.push(INTS_VARINT);
        for &v in values {
            put_varint(out, v);
        }
    }
}

/// Reads `n` integers written by [`put_ints`].
pub fn get_ints(r: &mut Reader, n: usize) -> Result<Vec<u64>, Short> {
    let mut v = Vec::new();
    get_ints_into(r, n, &mut v)?;
    Ok(v)
}

/// As `get_ints`, appended to `out` (the decoder keeps a batch's values in
/// one vector: a vector per column was the drain's malloc and free).
pub fn get_ints_into(r: &mut Reader, n: usize, out: &mut Vec<u64>) -> Result<(), Short> {
    match r.u8()? {
        INTS_VARINT => {
            out.reserve(n.min(r.remaining()));
            for _ in 0..n {
                out.push(r.varint()?);
            }
            Ok(())
        }
        INTS_PACKED => {
            let width = r.u8()? as u32;
            if width > 64 {
                return Err(Short);
            }
            let len = n.checked_mul(width as usize).ok_or(Short)?.div_ceil(8);
            let mut b = BitReader::new(r.take(len)?);
            if width == 0 {
                // Zero-width values carry no bytes: bound n by what a
                // column could hold before allocating.
                if n > super::MAX_DECODED_BYTES {
                    return Err(Short);
                }
                out.resize(out.len() + n, 0);
                return Ok(());
            }
            out.reserve(n);
            for _ in 0..n {
                out.push(b.get(width)?);
            }
            Ok(())
        }
        _ => Err(Short),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_round_trip_at_the_extremes() {
        for v in [0i64, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put_varint(&mut out, zigzag(v));
            assert_eq!(unzigzag(Reader::new(&out).varint().unwrap()), v);
        }
    }

    #[test]
    fn a_forged_count_is_refused_before_any_allocation() {
        let mut out = Vec::new();
        put_varint(&mut out, u64::MAX);
        assert_eq!(Reader::new(&out).count(1), Err(Short));
        assert_eq!(Reader::new(&[0xff; 11]).varint(), Err(Short));
    }

    #[test]
    fn integer_runs_pick_the_smaller_of_varints_and_packing() {
        for values in [
            vec![],
            vec![0; 100],
            vec![300, 5, 70_000, 1],
            (0..1000).collect::<Vec<u64>>(),
            vec![u64::MAX, 0],
        ] {
            let mut out = Vec::new();
            put_ints(&mut out, &values);
            let mut r = Reader::new(&out);
            assert_eq!(get_ints(&mut r, values.len()).unwrap(), values);
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn bits_round_trip() {
        let mut w = BitWriter::default();
        w.put(0b101, 3);
        w.put(u64::MAX, 64);
        w.put(0, 1);
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes);
        assert_eq!(
            (r.get(3), r.get(64), r.get(1)),
            (Ok(0b101), Ok(u64::MAX), Ok(0))
        );
        assert_eq!(BitReader::new(&[]).get(1), Err(Short));
    }
}
