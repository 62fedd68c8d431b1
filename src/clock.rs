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
/// How far the wall clock may be from the upstream server's (its HTTP
/// `Date`) for an irreversible decision (one day: a drifting RTC, not a
/// clock years off).
pub const MAX_SKEW_FROM_SERVER_NS: i64 = 86_400_000_000_000;

/// Why the wall clock is not trusted for an irreversible decision (a point
/// expired for good).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Untrusted {
    /// Below [`WALL_CLOCK_FLOOR_NS`]: not set yet.
    Unset,
    /// No word from the upstream server's clock yet to check it against.
    NoServerTime,
    /// This far (ns, signed) from the server's clock.
    DisagreesWithServer(i64),
}

/// Judges the wall clock against the upstream server's: expiry trusts it
/// only while it is set and within [`MAX_SKEW_FROM_SERVER_NS`] of the
/// server's `Date` (which survives our restarts and our reboots, unlike any
/// reference of our own). The server judges retention on its own clock in
/// any case, so when in doubt nothing expires here and it judges.
pub fn judge_wall_clock(wall_ns: i64, server_now_ns: Option<i64>) -> Result<(), Untrusted> {
    if wall_ns < WALL_CLOCK_FLOOR_NS {
        return Err(Untrusted::Unset);
    }
    let Some(server) = server_now_ns else {
        return Err(Untrusted::NoServerTime);
    };
    let skew = wall_ns.saturating_sub(server);
    if skew.saturating_abs() > MAX_SKEW_FROM_SERVER_NS {
        return Err(Untrusted::DisagreesWithServer(skew));
    }
    Ok(())
}

/// An HTTP `Date` (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`) in ns
/// since the epoch; `None` for anything else (the obsolete formats, signs,
/// impossible dates, years outside 1970..=9999, trailing text).
pub fn parse_http_date(text: &str) -> Option<i64> {
    let digits = |s: &str, len: usize| -> Option<i64> {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let mut parts = text.split(' ');
    let weekday = parts.next()?;
    if weekday.len() != 4 || !weekday.ends_with(',') {
        return None;
    }
    let day = digits(parts.next()?, 2)?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year = digits(parts.next()?, 4)?;
    let mut hms = parts.next()?.split(':');
    let (h, m, sec) = (
        digits(hms.next()?, 2)?,
        digits(hms.next()?, 2)?,
        digits(hms.next()?, 2)?,
    );
    if hms.next().is_some() || parts.next()? != "GMT" || parts.next().is_some() {
        return None;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let max_day = *month_days.get(usize::try_from(month - 1).ok()?)?;
    if year < 1970 || !(1..=max_day).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3_600 + m * 60 + sec;
    secs.checked_mul(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000_000;

    #[test]
    fn the_wall_clock_is_trusted_only_when_set_and_close_to_the_servers() {
        let now = WALL_CLOCK_FLOOR_NS + 300 * DAY;
        assert_eq!(
            judge_wall_clock(30_000_000_000, Some(now)),
            Err(Untrusted::Unset)
        );
        assert_eq!(judge_wall_clock(now, None), Err(Untrusted::NoServerTime));
        assert_eq!(
            judge_wall_clock(now, Some(now - DAY / 4)),
            Ok(()),
            "an RTC hours off"
        );
        assert_eq!(
            judge_wall_clock(now + 3_650 * DAY, Some(now)),
            Err(Untrusted::DisagreesWithServer(3_650 * DAY)),
            "ten years ahead"
        );
        assert!(
            judge_wall_clock(now - 60 * DAY, Some(now)).is_err(),
            "months behind"
        );
    }

    #[test]
    fn http_dates_parse_to_their_instant_and_anything_else_is_none() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000_000_000)
        );
        assert_eq!(
            parse_http_date("Fri, 27 Nov 2026 02:57:00 GMT"),
            Some(1_795_748_220_000_000_000)
        );
        for bad in [
            "",
            "Sun, 06 Nov 1994",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 06 Nov 1994 24:00:00 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }
}
