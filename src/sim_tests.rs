//! What the seeded simulations share (tests only): their random numbers
//! and how many seeds they run.

/// xorshift64: reproducible randomness without a crate; `x` must not be 0.
pub fn rng(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// Seeds to run: all of `n`, or the share `HISSRV_SIM_SHARE` (percent) asks
/// for: the ARM builds run the simulations under qemu, 10-20 times slower
/// (`cross/test-arm.sh`), where a tenth still tries 32-bit arithmetic (a
/// fifth put CI at its 30-minute limit).
pub fn seeds(n: u64) -> u64 {
    let share = std::env::var("HISSRV_SIM_SHARE")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    (n * share.unwrap_or(100).clamp(1, 100) / 100).max(1)
}
