//! A window set's bytes (`state.rs`, version 1) compressed, as each
//! checkpoint stores them:
//!
//! ```text
//! packed = u8 2, u32 LE CRC-32 of the set, chunk … (to the blob's end)
//! chunk  = u32 LE stored length s, u32 LE plain length p
//!          (1 ≤ p ≤ CHUNK_PLAIN_BYTES), s bytes: an LZ4 block of p bytes
//! ```
//!
//! - **Why.** A changed set is written whole at each checkpoint (every
//!   series of a lane's window), and those writes were most of what a rule
//!   adds to the flash's wear: a meter set (series keys, slot timestamps,
//!   values that repeat) is about a fifth of its size compressed
//!   (BENCHMARKS.md, "Flash wear with a downsampling rule").
//! - **Never more memory than the set really holds.** No length is trusted
//!   for more than a chunk: a chunk claims at most `CHUNK_PLAIN_BYTES` (and
//!   no more than its block can expand to), the chunks' lengths are summed
//!   and reserved once (fallibly: no memory is damage, not an abort), and
//!   each chunk decodes in place (a vector grown by doubling held 1.8x the
//!   set, found in review). A single length for the whole set let one
//!   flipped bit of a full set's claim reserve 264 MiB at every start, an
//!   abort on a 256 MB gateway (found in review, `tests/state_memory.rs`);
//!   LZ4's frame format before it reserved 12-16 MiB for 13-16 bytes of a
//!   damaged header, took a frame without its checksum and bytes after it.
//! - **Checked whole:** every chunk decodes to exactly its length, the last
//!   ends the blob, and the set's CRC-32 matches, before it is read. A CRC,
//!   not the line keys' hash: with a public seed, a float planted in a set
//!   zeroed that hash's state and hid every byte before it (found in
//!   review); a CRC-32 catches every burst of damage up to 32 bits.
//! - **Older releases** read a packed set as damage: their saved windows
//!   start empty (`batch/warm.rs`, `load_windows`), the raw points stay.

use super::state::StateError;

/// The first byte of a packed set (a set's own version is 1).
const VERSION_PACKED: u8 = 2;
/// Version and CRC-32 before the chunks.
const HEADER_BYTES: usize = 5;
/// A chunk's two lengths.
const CHUNK_HEADER_BYTES: usize = 8;
/// The most a chunk decodes to: the most any damaged length can claim.
/// Each chunk starts LZ4's matches afresh: the meters' set of BENCHMARKS.md
/// packs to 25 % in chunks of 64 KiB, 22 % of 256 KiB, 21 % of 1 MiB.
const CHUNK_PLAIN_BYTES: usize = 1024 * 1024;
/// The most an LZ4 block expands (a match of 255 bytes a byte, roughly),
/// as the batch codec's check.
const LZ4_MAX_EXPANSION: usize = 255;

fn damaged(what: String) -> StateError {
    StateError(format!("lz4: {what}"))
}

/// Whether `blob` is a packed set (else a set as the first release stored
/// it, or damage its own decoder refuses).
pub(super) fn is_packed(blob: &[u8]) -> bool {
    blob.first() == Some(&VERSION_PACKED)
}

/// `plain` (a version-1 set) packed.
pub(super) fn pack(plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + plain.len() / 4);
    out.push(VERSION_PACKED);
    out.extend_from_slice(&checksum(plain).to_le_bytes());
    for chunk in plain.chunks(CHUNK_PLAIN_BYTES) {
        let block = lz4_flex::block::compress(chunk);
        // Both fit: a chunk is at most 1 MiB, its block barely more.
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        out.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        out.extend_from_slice(&block);
    }
    out
}

/// The version-1 set inside a packed one, checked.
pub(super) fn unpack(blob: &[u8]) -> Result<Vec<u8>, StateError> {
    let crc = blob
        .get(1..HEADER_BYTES)
        .ok_or_else(|| damaged("a header cut short".into()))?;
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let chunks = chunks(&blob[HEADER_BYTES..])?;
    let total = chunks.iter().map(|(_, len)| len).sum::<usize>();
    let mut plain = Vec::new();
    plain
        .try_reserve_exact(total)
        .map_err(|_| damaged(format!("no memory for a set of {total} bytes")))?;
    for (block, len) in chunks {
        let at = plain.len();
        plain.resize(at + len, 0);
        let n = lz4_flex::block::decompress_into(block, &mut plain[at..])
            .map_err(|e| damaged(e.to_string()))?;
        if n != len {
            return Err(damaged(format!(
                "a chunk of {n} bytes where it claims {len}"
            )));
        }
    }
    if checksum(&plain) != crc {
        return Err(damaged("a checksum that does not match".into()));
    }
    Ok(plain)
}

/// Each chunk's block and the length it claims, checked against what a
/// chunk holds and its block can expand to; the last ends the bytes.
fn chunks(mut rest: &[u8]) -> Result<Vec<(&[u8], usize)>, StateError> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (head, tail) = rest
            .split_at_checked(CHUNK_HEADER_BYTES)
            .ok_or_else(|| damaged("a chunk's header cut short".into()))?;
        let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let (stored, len) = (word(&head[..4]), word(&head[4..]));
        let (block, after) = tail
            .split_at_checked(stored)
            .ok_or_else(|| damaged(format!("a chunk of {stored} bytes cut short")))?;
        if len == 0 || len > CHUNK_PLAIN_BYTES || len > stored.saturating_mul(LZ4_MAX_EXPANSION) {
            return Err(damaged(format!("a chunk claims {len} bytes from {stored}")));
        }
        out.push((block, len));
        rest = after;
    }
    Ok(out)
}

/// Damage on an SD card: CRC-32 (zlib's, through flate2).
fn checksum(plain: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(plain);
    crc.sum()
}
