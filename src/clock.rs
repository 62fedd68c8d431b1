//! Time, for every stage: the wall clock (timestamps for points that carry
//! none, retention), the record clock (batch commit times and every age and
//! window computed from them), and the [`Clock`] the forwarder runs on, which
//! the simulation replaces with a virtual one.
//!
//! A leaf: it uses no other module, so any stage may use it.

use std::sync::{Mutex, OnceLock};
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
    /// Wall-clock time, ns since the epoch (retention).
    fn wall_ns(&self) -> i64;
    /// Record time, ms since the epoch ([`record_ms`]): the live window.
    fn record_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall_ns(&self) -> i64 {
        now_ns()
    }
    fn record_ms(&self) -> i64 {
        record_ms()
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

/// [`WALL_CLOCK_FLOOR_NS`] in ms.
pub const WALL_CLOCK_FLOOR_MS: i64 = WALL_CLOCK_FLOOR_NS / 1_000_000;

/// Record time: what batches are stamped with (`created_ms`) and aged by
/// (`/health`, `/metrics`, the live window), in ms since the epoch. It is the
/// wall clock read once, when this process starts, carried on by the
/// monotonic clock: a step of the wall clock (an NTP step, an operator, an
/// RTC that was wrong) moves no age and no window, and within a process it
/// never goes back.
///
/// A process that starts with its wall clock unset (below the floor: a
/// gateway without an RTC boots at 1970) anchors provisionally at the floor
/// and, once the wall clock is set, for good at it: record time jumps forward
/// once, and what was stamped provisionally is known by its range
/// ([`Restamp`]): ages count it right at once, and the committer shifts its
/// stored stamps (`Wal::restamp`) so that other processes and later runs
/// read them right too.
///
/// Across processes stamps are as good as the wall clock at each start. A
/// stamp ahead of this process's record time (a run whose clock was ahead)
/// ages from this process's start: a lower bound that grows, never a silent 0.
pub struct RecordClock {
    start: Instant,
    state: Mutex<RecordState>,
}

#[derive(Debug, Clone, Copy)]
struct RecordState {
    /// Record time = `anchor_ms` + ms since `start`.
    anchor_ms: i64,
    /// Anchored at the floor while the wall clock was unset.
    provisional: bool,
    /// The latest provisional time handed out (a caller holding an older
    /// `Instant` may come later): the restamp's range reaches it.
    last_provisional_ms: i64,
    restamp: Option<Restamp>,
}

/// Stamps made while the anchor was provisional, `from_ms..=to_ms`, belong
/// `shift_ms` later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restamp {
    pub from_ms: i64,
    pub to_ms: i64,
    pub shift_ms: i64,
}

impl Restamp {
    /// `stamp` in the final frame.
    pub fn apply(&self, stamp: i64) -> i64 {
        if (self.from_ms..=self.to_ms).contains(&stamp) {
            stamp.saturating_add(self.shift_ms)
        } else {
            stamp
        }
    }
}

impl RecordClock {
    /// A record clock starting at `start`, when the wall clock read `wall_ms`.
    pub fn new(start: Instant, wall_ms: i64) -> RecordClock {
        let provisional = wall_ms < WALL_CLOCK_FLOOR_MS;
        RecordClock {
            start,
            state: Mutex::new(RecordState {
                anchor_ms: if provisional {
                    WALL_CLOCK_FLOOR_MS
                } else {
                    wall_ms
                },
                provisional,
                last_provisional_ms: i64::MIN,
                restamp: None,
            }),
        }
    }

    fn elapsed_ms(&self, now: Instant) -> i64 {
        now.saturating_duration_since(self.start).as_millis() as i64
    }

    /// Record time at monotonic `now`, the wall clock reading `wall_ms`.
    pub fn at(&self, now: Instant, wall_ms: i64) -> i64 {
        let elapsed = self.elapsed_ms(now);
        let Ok(mut st) = self.state.lock() else {
            return wall_ms;
        };
        if st.provisional && wall_ms >= WALL_CLOCK_FLOOR_MS {
            // The wall clock is set at last: anchor for good.
            let anchor = wall_ms.saturating_sub(elapsed);
            st.restamp = Some(Restamp {
                from_ms: st.anchor_ms,
                to_ms: st
                    .anchor_ms
                    .saturating_add(elapsed)
                    .max(st.last_provisional_ms),
                shift_ms: anchor.saturating_sub(st.anchor_ms),
            });
            st.anchor_ms = anchor;
            st.provisional = false;
        }
        let t = st.anchor_ms.saturating_add(elapsed);
        if st.provisional {
            st.last_provisional_ms = st.last_provisional_ms.max(t);
        }
        t
    }

    /// How long ago `stamp` was, at `now` (see the type's doc for stamps
    /// ahead of this process's record time).
    pub fn age_ms(&self, stamp: i64, now: Instant, wall_ms: i64) -> u64 {
        let record = self.at(now, wall_ms);
        let stamp = self.restamp().map_or(stamp, |r| r.apply(stamp));
        if stamp <= record {
            (record - stamp) as u64
        } else {
            self.elapsed_ms(now) as u64
        }
    }

    /// Set once the anchor turned final after a provisional start.
    pub fn restamp(&self) -> Option<Restamp> {
        self.state.lock().ok().and_then(|st| st.restamp)
    }
}

fn record_clock() -> &'static RecordClock {
    static RECORD: OnceLock<RecordClock> = OnceLock::new();
    RECORD.get_or_init(|| RecordClock::new(Instant::now(), now_ms()))
}

/// This process's record time (see [`RecordClock`]); `main` reads it first
/// thing, so that it starts with the process.
pub fn record_ms() -> i64 {
    record_clock().at(Instant::now(), now_ms())
}

/// How long ago record time `stamp` was.
pub fn age_ms(stamp: i64) -> u64 {
    record_clock().age_ms(stamp, Instant::now(), now_ms())
}

/// Record time is still anchored provisionally (the wall clock was never
/// set in this run).
pub fn record_is_provisional() -> bool {
    record_clock().state.lock().is_ok_and(|st| st.provisional)
}

/// The provisional stamps' shift, once the wall clock was set after a start
/// without it.
pub fn restamp() -> Option<Restamp> {
    record_clock().restamp()
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

/// Days since 1970-01-01 → (year, month, day) (proleptic Gregorian).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Nanoseconds since the epoch as RFC 3339 UTC.
pub fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000_000;

    const MS_DAY: i64 = 86_400_000;
    const NOW_MS: i64 = 1_795_000_000_000; // 2026-11-19

    #[test]
    fn record_time_follows_the_monotonic_clock_whatever_the_wall_clock_does() {
        let t0 = Instant::now();
        let c = RecordClock::new(t0, NOW_MS);
        let at = |s: u64, wall: i64| c.at(t0 + std::time::Duration::from_secs(s), wall);
        assert_eq!(at(0, NOW_MS), NOW_MS);
        // Ten years forward, then back before the start: record time moves
        // on by the seconds that passed, no more, no less.
        assert_eq!(at(10, NOW_MS + 3650 * MS_DAY), NOW_MS + 10_000);
        assert_eq!(at(20, NOW_MS - MS_DAY), NOW_MS + 20_000);
        let stamp = at(20, 0);
        assert_eq!(
            c.age_ms(stamp, t0 + std::time::Duration::from_secs(80), 0),
            60_000
        );
        assert_eq!(c.restamp(), None, "a good start never restamps");
    }

    #[test]
    fn a_start_at_1970_anchors_at_the_floor_then_for_good_at_the_set_clock() {
        let t0 = Instant::now();
        let c = RecordClock::new(t0, 30_000);
        let t = |s: u64| t0 + std::time::Duration::from_secs(s);
        let early = c.at(t(5), 35_000);
        assert_eq!(early, WALL_CLOCK_FLOOR_MS + 5_000, "provisional");
        assert_eq!(c.age_ms(early, t(15), 45_000), 10_000);
        // NTP sets the clock at 100 s: record time jumps to it once.
        assert_eq!(c.at(t(100), NOW_MS), NOW_MS);
        let r = c.restamp().expect("a restamp");
        assert_eq!(
            r.apply(early),
            NOW_MS - 95_000,
            "the early stamp in the final frame"
        );
        assert_eq!(
            c.age_ms(early, t(110), NOW_MS + 10_000),
            105_000,
            "aged right before any restamp is stored"
        );
        // Later steps change nothing, and the restamp stays as it was.
        assert_eq!(c.at(t(200), 30_000), NOW_MS + 100_000);
        assert_eq!(c.restamp(), Some(r));
        assert_eq!(
            r.apply(NOW_MS - 5 * MS_DAY),
            NOW_MS - 5 * MS_DAY,
            "other stamps stay"
        );
    }

    #[test]
    fn a_stamp_ahead_of_this_process_ages_from_its_start_not_zero() {
        // A backlog stamped by a run whose clock was good, read by a run
        // booted at 1970 whose clock was never set.
        let t0 = Instant::now();
        let c = RecordClock::new(t0, 30_000);
        let t = |s: u64| t0 + std::time::Duration::from_secs(s);
        assert_eq!(c.age_ms(NOW_MS, t(42), 72_000), 42_000);
        assert_eq!(c.age_ms(NOW_MS, t(43), 73_000), 43_000, "it grows");
    }

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
