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

/// No point this agent delivers can be judged against a wall clock earlier
/// than this (2026-01-01T00:00:00Z, before this release was built): a clock
/// below it is unset (a gateway without an RTC boots at 1970).
pub const WALL_CLOCK_FLOOR_NS: i64 = 1_767_225_600_000_000_000;
/// How far the wall clock may run ahead of what the monotonic clock allows
/// since it was first trusted (one day: an NTP correction of a drifting RTC,
/// not a jump of years) before irreversible decisions stop trusting it.
pub const MAX_FORWARD_STEP_NS: i64 = 86_400_000_000_000;

/// Whether the wall clock can be trusted for an irreversible decision (a
/// point expired for good). It is not while it is below
/// [`WALL_CLOCK_FLOOR_NS`], nor after a step forward that the monotonic clock
/// contradicts: since the first plausible reading, the wall clock may not
/// gain more than [`MAX_FORWARD_STEP_NS`] on the monotonic one. A step back
/// is harmless (less expires) and becomes the new reference. When in doubt,
/// nothing expires: the point is delivered and the server judges it.
#[derive(Debug, Default)]
pub struct WallCheck {
    /// The first plausible reading: (wall ns, monotonic instant).
    anchor: Option<(i64, Instant)>,
}

/// Why the wall clock is not trusted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Untrusted {
    /// Below the floor: not set yet.
    Unset,
    /// Ahead of what the monotonic clock allows by this many ns.
    SteppedForward(i64),
}

impl WallCheck {
    /// Judges `wall_ns` read at `mono`.
    pub fn judge(&mut self, wall_ns: i64, mono: Instant) -> Result<(), Untrusted> {
        if wall_ns < WALL_CLOCK_FLOOR_NS {
            return Err(Untrusted::Unset);
        }
        let Some((anchor_wall, anchor_mono)) = self.anchor else {
            self.anchor = Some((wall_ns, mono));
            return Ok(());
        };
        let elapsed = i64::try_from(mono.saturating_duration_since(anchor_mono).as_nanos())
            .unwrap_or(i64::MAX);
        let expected = anchor_wall.saturating_add(elapsed);
        let ahead = wall_ns.saturating_sub(expected);
        if ahead > MAX_FORWARD_STEP_NS {
            return Err(Untrusted::SteppedForward(ahead));
        }
        if ahead < 0 {
            // Stepped back (or the anchor ran fast): the earlier reference.
            self.anchor = Some((wall_ns, mono));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const DAY: i64 = 86_400_000_000_000;

    #[test]
    fn an_unset_clock_and_a_step_forward_the_monotonic_clock_denies_are_not_trusted() {
        let t0 = Instant::now();
        let mut c = WallCheck::default();
        assert_eq!(c.judge(30_000_000_000, t0), Err(Untrusted::Unset), "1970");
        let now = WALL_CLOCK_FLOOR_NS + 300 * DAY;
        assert_eq!(c.judge(now, t0), Ok(()), "the first plausible reading");
        let later = t0 + Duration::from_secs(3_600);
        assert_eq!(c.judge(now + 3_600_000_000_000, later), Ok(()), "in step");
        assert_eq!(
            c.judge(now + 3_650 * DAY, later),
            Err(Untrusted::SteppedForward(3_650 * DAY - 3_600_000_000_000)),
            "ten years ahead of an hour"
        );
        assert_eq!(
            c.judge(now + 3_600_000_000_000 + DAY / 2, later),
            Ok(()),
            "an NTP correction"
        );
        // Back: trusted, and the new reference.
        assert_eq!(c.judge(now - DAY, later), Ok(()));
        assert_eq!(
            c.judge(now - DAY / 2, later),
            Ok(()),
            "within a day of the new reference"
        );
        assert!(c.judge(now + DAY, later).is_err(), "two days ahead of it");
    }
}
