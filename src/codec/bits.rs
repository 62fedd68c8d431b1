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

/// Appends bits, most significant first.
#[derive(Default)]
pub struct BitWriter {
    pub bytes: Vec<u8>,
    used: u32,
}

impl BitWriter {
    pub fn put(&mut self, value: u64, bits: u32) {
        for i in (0..bits).rev() {
            if self.used == 0 {
                self.bytes.push(0);
            }
            let bit = ((value >> i) & 1) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= bit << (7 - self.used);
            }
            self.used = (self.used + 1) % 8;
        }
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

    pub fn get(&mut self, bits: u32) -> Result<u64, Short> {
        let mut v = 0u64;
        for _ in 0..bits {
            let byte = *self.bytes.get(self.pos / 8).ok_or(Short)?;
            v = (v << 1) | ((byte >> (7 - self.pos % 8)) & 1) as u64;
            self.pos += 1;
        }
        Ok(v)
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
    fn bits_round_trip() {
        let mut w = BitWriter::default();
        w.put(0b101, 3);
        w.put(u64::MAX, 64);
        w.put(0, 1);
        let mut r = BitReader::new(&w.bytes);
        assert_eq!(
            (r.get(3), r.get(64), r.get(1)),
            (Ok(0b101), Ok(u64::MAX), Ok(0))
        );
        assert_eq!(BitReader::new(&[]).get(1), Err(Short));
    }
}
