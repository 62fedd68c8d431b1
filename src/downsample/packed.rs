//! A window set's bytes (`state.rs`, version 1) compressed, as each
//! checkpoint stores them:
//!
//! ```text
//! packed = u8 2, u32 LE length of the set, u64 LE checksum of the set,
//!          the set as one LZ4 block (to the blob's last byte)
//! ```
//!
//! - **Why.** A changed set is written whole at each checkpoint (every
//!   series of a lane's window), and those writes were most of what a rule
//!   adds to the flash's wear: a meter set (series keys, slot timestamps,
//!   values that repeat) is about a fifth of its size compressed
//!   (BENCHMARKS.md, "Flash wear with a downsampling rule").
//! - **A block under a header of ours, not LZ4's frame.** The frame decoder
//!   reserved 12–16 MiB for a damaged header of 13–16 bytes, took a frame
//!   without its checksum, and bytes after it (found in review,
//!   `tests/state_memory.rs`).
//! - **Never more memory than the bytes justify:** a claimed length past
//!   what the block can expand to is damage, not an allocation; the set
//!   decoded is checked whole (its length and checksum) before it is read.
//! - **Older releases** read a packed set as damage: their windows are
//!   lost at that start, the raw points stay (`DamagedParts`).

use super::state::StateError;

/// The first byte of a packed set (a set's own version is 1).
const VERSION_PACKED: u8 = 2;
/// Version, length and checksum before the block.
const HEADER_BYTES: usize = 13;
/// The most an LZ4 block expands (a match of 255 bytes a byte, roughly),
/// as the batch codec's check.
const LZ4_MAX_EXPANSION: usize = 255;
/// The checksum's seed ("hissrv-s"): pinned, as the sets it checks are kept.
const CHECKSUM_SEED: u64 = 0x6869_7373_7276_2d73;

fn damaged(what: String) -> StateError {
    StateError(format!("lz4: {what}"))
}

/// Whether `blob` is a packed set (else a set as the first release stored
/// it, or damage its own decoder refuses).
pub(super) fn is_packed(blob: &[u8]) -> bool {
    blob.first() == Some(&VERSION_PACKED)
}

/// `plain` (a version-1 set) packed.
pub(super) fn pack(plain: Vec<u8>) -> Vec<u8> {
    // A set of 4 GiB or more is never held (`max_open_windows`); were it,
    // it is stored plain rather than under a length that wrapped.
    let Ok(len) = u32::try_from(plain.len()) else {
        return plain;
    };
    let block = lz4_flex::block::compress(&plain);
    let mut out = Vec::with_capacity(HEADER_BYTES + block.len());
    out.push(VERSION_PACKED);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(&plain).to_le_bytes());
    out.extend_from_slice(&block);
    out
}

/// The version-1 set inside a packed one, checked.
pub(super) fn unpack(blob: &[u8]) -> Result<Vec<u8>, StateError> {
    let cut_short = || damaged("a header cut short".into());
    let header = blob.get(1..HEADER_BYTES).ok_or_else(cut_short)?;
    let (len, sum) = header.split_at(4);
    let len = u32::from_le_bytes(len.try_into().map_err(|_| cut_short())?) as usize;
    let sum = u64::from_le_bytes(sum.try_into().map_err(|_| cut_short())?);
    let block = &blob[HEADER_BYTES..];
    if len > block.len().saturating_mul(LZ4_MAX_EXPANSION) {
        return Err(damaged(format!("claims {len} bytes from {}", block.len())));
    }
    let plain = lz4_flex::block::decompress(block, len).map_err(|e| damaged(e.to_string()))?;
    if plain.len() != len || checksum(&plain) != sum {
        return Err(damaged("a checksum that does not match".into()));
    }
    Ok(plain)
}

/// Damage on an SD card, not an adversary: the line keys' hash, with a
/// seed of its own (pinned across releases, as the keys are).
fn checksum(plain: &[u8]) -> u64 {
    crate::downsample::line_key::bytes_hash(CHECKSUM_SEED, plain)
}
