//! The heap a stored window set's decoder takes, against its contract
//! (src/downsample/state.rs): "never allocate more than the bytes justify".
//! Measured with a counting allocator (per thread: the test harness runs
//! tests on threads of their own), through the public restore the fuzz
//! target uses. A review measured 12-16 MiB taken for 13-16 bytes of the
//! LZ4 frame the sets were first compressed in, and 25 MiB before a
//! refusal of 65 KB; the sets now use a block with a header of ours.
//! (`unsafe` here only: a global allocator is an unsafe trait.)

use hissrv::downsample::windows::{Lane, Rule, Windows};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grew(by: usize) {
    let _ = LIVE.try_with(|l| {
        let n = l.get().saturating_add(by);
        l.set(n);
        let _ = PEAK.try_with(|p| p.set(p.get().max(n)));
    });
}

fn shrank(by: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(by)));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        shrank(l.size());
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            shrank(l.size());
            grew(new);
        }
        q
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Restores `blob` as the fuzz target does; the most heap bytes held at
/// once beyond what was live before, and whether it was read.
fn restore_peak(blob: &[u8]) -> (bool, usize) {
    let rules = vec![Rule {
        every_ns: 10,
        grace_ns: 0,
        max_lateness_ns: 5,
        aggregates: None,
    }];
    let lane = Lane { rule: 0, dest: 0 };
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let read = Windows::restore(rules, 1 << 20, &[(lane, 12)], [(lane, 0, blob)]).is_ok();
    (read, PEAK.with(Cell::get) - base)
}

/// A compressed set as `state.rs` stores it: version 2, the length it
/// claims, a checksum, then `block`.
fn stored(claims: u32, sum: u64, block: &[u8]) -> Vec<u8> {
    let mut out = vec![2u8];
    out.extend_from_slice(&claims.to_le_bytes());
    out.extend_from_slice(&sum.to_le_bytes());
    out.extend_from_slice(block);
    out
}

/// LZ4's own worst ratio (255, as the batch codec's check), and a MiB for
/// the windows' own tables.
fn justified(blob: &[u8]) -> usize {
    (1 << 20) + 255 * blob.len()
}

#[test]
fn a_set_claiming_more_than_its_bytes_can_expand_to_takes_no_memory_for_it() {
    for claims in [u32::MAX, 64 << 20, 4 << 20] {
        let blob = stored(claims, 0, &[0x1f, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        let (read, peak) = restore_peak(&blob);
        assert!(!read);
        assert!(
            peak <= justified(&blob),
            "{} stored bytes claiming {claims} took {peak} bytes of heap",
            blob.len()
        );
    }
}

#[test]
fn a_set_that_decodes_to_what_it_claims_yet_fails_its_checksum_takes_no_more_than_its_bytes_justify()
 {
    // 16 MiB of zeros compress to ~64 KB: a claim LZ4 can justify, decoded
    // whole to be checked, and refused (a checksum of 0).
    let zeros = vec![0u8; 16 << 20];
    let blob = stored(zeros.len() as u32, 0, &lz4_flex::block::compress(&zeros));
    drop(zeros);
    let (read, peak) = restore_peak(&blob);
    assert!(!read);
    assert!(
        peak <= justified(&blob),
        "{} stored bytes took {peak} bytes of heap",
        blob.len()
    );
}

#[test]
fn a_header_of_an_lz4_frame_takes_no_memory() {
    // What the sets were first stored as: version 2, then LZ4's frame
    // magic declaring 4 MiB blocks (the review's 16 bytes), and its legacy
    // magic (8 MiB blocks).
    for blob in [
        &[
            2u8, 0x04, 0x22, 0x4d, 0x18, 0x64, 0x70, 0xb9, 0, 0, 0, 0, 0x3c, 0x9a, 0x51, 0x47,
        ][..],
        &[2, 0x02, 0x21, 0x4c, 0x18, 0, 0, 0, 0, 0, 0, 0, 0],
    ] {
        let (read, peak) = restore_peak(blob);
        assert!(!read);
        assert!(peak <= justified(blob), "{} bytes took {peak}", blob.len());
    }
}
