//! The adaptive batcher's decision: cut now, or wait a little for a fuller
//! batch. Load is measured, not guessed.
//!
//! Measured: the ingest rate (points/s, an EWMA over short windows, kept by
//! [`RateMeter`]) and the commit latency (an EWMA of commit durations, kept by
//! the commit thread). The decision, each time the commit pipeline has room:
//!
//! - the commit thread is **idle**: cut now — waiting would only leave the
//!   disk idle too;
//! - expected arrivals during one commit = rate × commit latency;
//! - **quiet** (fewer than `min_batch_size` expected): cut now — a lone write
//!   is committed at once, batches stay small and prompt;
//! - **busy** (a commit in flight and a commit's worth of points expected):
//!   keep gathering until that commit ends, at most one commit latency (never
//!   past `max_wait_ms`), or until `max_batch_size` is reached. The cut would
//!   have queued behind the running commit anyway, so the wait costs no
//!   throughput, and commits get bigger under load: fewer fsyncs, less flash
//!   wear, fewer rows to deliver.
//!
//! A point therefore waits at most `min(commit latency, max_wait_ms)` in the
//! ring before its cut, on top of the commit itself. With
//! `adaptive_batching.enabled: false` the fixed rule applies instead: cut at
//! `min_batch_size` points or when the oldest has waited `max_wait_ms`.

use std::time::{Duration, Instant};

/// Rate samples are taken over windows at least this long (a shorter one is
/// mostly noise from single requests).
const RATE_WINDOW: Duration = Duration::from_millis(50);
/// Weight of a new sample in the rate EWMA.
const RATE_ALPHA: f64 = 0.5;

/// When to cut, from `performance.adaptive_batching`.
#[derive(Debug, Clone, Copy)]
pub struct CutPolicy {
    pub adaptive: bool,
    pub min_points: usize,
    pub max_points: usize,
    pub max_wait: Duration,
}

impl CutPolicy {
    pub fn from_config(b: &crate::config::AdaptiveBatching) -> CutPolicy {
        CutPolicy {
            adaptive: b.enabled,
            min_points: b.min_batch_size,
            max_points: b.max_batch_size,
            max_wait: Duration::from_millis(b.max_wait_ms),
        }
    }
}

/// Ingest rate, points per second.
#[derive(Debug)]
pub struct RateMeter {
    window_start: Instant,
    points: usize,
    rate: f64,
}

impl RateMeter {
    pub fn new(now: Instant) -> RateMeter {
        RateMeter {
            window_start: now,
            points: 0,
            rate: 0.0,
        }
    }

    pub fn record(&mut self, points: usize, now: Instant) {
        self.points += points;
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= RATE_WINDOW {
            let sample = self.points as f64 / elapsed.as_secs_f64();
            self.rate = RATE_ALPHA * sample + (1.0 - RATE_ALPHA) * self.rate;
            self.points = 0;
            self.window_start = now;
        }
    }

    /// The current estimate; after a quiet spell it falls to what the quiet
    /// window itself shows instead of remembering an old burst.
    pub fn rate(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed > RATE_WINDOW * 4 {
            (self.points as f64 / elapsed.as_secs_f64()).min(self.rate)
        } else {
            self.rate
        }
    }
}

/// What the load looks like right now.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub rate_points_per_s: f64,
    pub commit_latency: Duration,
    /// A commit is running (or queued) right now.
    pub committing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    Cut,
    /// Wait this long (or until more points arrive), then decide again.
    Wait(Duration),
}

/// Cut now or wait, for a ring holding `points` whose oldest waited `age`.
pub fn decide(p: &CutPolicy, load: &Load, points: usize, age: Duration) -> Decision {
    if !p.adaptive {
        if points >= p.min_points || age >= p.max_wait {
            return Decision::Cut;
        }
        return Decision::Wait(p.max_wait - age);
    }
    if points >= p.max_points || !load.committing {
        return Decision::Cut;
    }
    let linger = load.commit_latency.min(p.max_wait);
    let expected = load.rate_points_per_s * linger.as_secs_f64();
    if expected < p.min_points as f64 || age >= linger {
        return Decision::Cut;
    }
    Decision::Wait(linger - age)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: CutPolicy = CutPolicy {
        adaptive: true,
        min_points: 100,
        max_points: 10_000,
        max_wait: Duration::from_millis(1000),
    };

    fn load(rate: f64, commit_ms: u64) -> Load {
        Load {
            rate_points_per_s: rate,
            commit_latency: Duration::from_millis(commit_ms),
            committing: true,
        }
    }

    #[test]
    fn a_quiet_agent_cuts_at_once() {
        assert_eq!(decide(&P, &load(50.0, 5), 1, Duration::ZERO), Decision::Cut);
    }

    #[test]
    fn an_idle_commit_thread_gets_the_points_at_once() {
        let idle = Load {
            committing: false,
            ..load(1e9, 5)
        };
        assert_eq!(decide(&P, &idle, 1, Duration::ZERO), Decision::Cut);
    }

    #[test]
    fn a_busy_agent_waits_about_one_commit_for_a_fuller_batch() {
        let busy = load(500_000.0, 4);
        assert_eq!(
            decide(&P, &busy, 1000, Duration::from_millis(1)),
            Decision::Wait(Duration::from_millis(3))
        );
        assert_eq!(
            decide(&P, &busy, 1000, Duration::from_millis(4)),
            Decision::Cut
        );
        assert_eq!(decide(&P, &busy, 10_000, Duration::ZERO), Decision::Cut);
    }

    #[test]
    fn the_wait_never_passes_max_wait() {
        let slow_disk = load(1_000_000.0, 5_000);
        assert_eq!(
            decide(&P, &slow_disk, 10, Duration::from_millis(999)),
            Decision::Wait(Duration::from_millis(1))
        );
        assert_eq!(decide(&P, &slow_disk, 10, P.max_wait), Decision::Cut);
    }

    #[test]
    fn the_fixed_batcher_waits_for_min_points_or_max_wait() {
        let fixed = CutPolicy {
            adaptive: false,
            ..P
        };
        assert_eq!(
            decide(&fixed, &load(0.0, 1), 100, Duration::ZERO),
            Decision::Cut
        );
        assert_eq!(
            decide(&fixed, &load(1e9, 1), 99, Duration::from_millis(400)),
            Decision::Wait(Duration::from_millis(600))
        );
    }

    #[test]
    fn the_rate_meter_follows_bursts_and_forgets_them_when_quiet() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(t0);
        for i in 1..=10 {
            m.record(10_000, t0 + RATE_WINDOW * i);
        }
        let busy = m.rate(t0 + RATE_WINDOW * 10);
        assert!((150_000.0..=210_000.0).contains(&busy), "{busy}");
        let later = t0 + RATE_WINDOW * 10 + Duration::from_secs(5);
        assert!(m.rate(later) < 1.0, "{}", m.rate(later));
    }
}
