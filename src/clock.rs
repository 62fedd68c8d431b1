//! Time, for every stage: the wall clock (timestamps for points that carry
//! none, batch commit times, retention) and the [`Clock`] the forwarder runs
//! on, which the simulation replaces with a virtual one.
//!
//! A leaf: it uses no other module, so any stage may use it.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Wall-clock time, ns since the epoch (0 before 1970: a clock that wrong
/// is reported elsewhere, never a panic here).
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Wall-clock time, ms since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Where time comes from: the system, or the simulation's virtual clock.
pub trait Clock: Send {
    fn now(&self) -> Instant;
    /// Wall-clock time, ns since the epoch (retention, the live window).
    fn wall_ns(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall_ns(&self) -> i64 {
        now_ns()
    }
}
