//! The forwarder: a worker thread that drains the write-ahead buffer upstream.
//!
//! It reads with its own connection, picks the oldest batch of a destination
//! that is not backing off, sends it, and acts on the answer (DESIGN's status
//! policy):
//!
//! | answer                     | action                                                   |
//! |----------------------------|----------------------------------------------------------|
//! | 2xx                        | delete the batch                                         |
//! | 400/422 (partial or whole) | split in halves until the refused lines are isolated; the rest is delivered, those lines go to dead letters with the server's message |
//! | 413                        | split in halves, and send smaller requests from then on  |
//! | 401/403/404                | keep, back off, log an error                             |
//! | 429/503                    | keep, wait `Retry-After` (capped) or back off            |
//! | other 5xx, network         | keep, exponential back-off with full jitter, capped      |
//!
//! Contracts: within a destination batches go in commit order and a failed
//! batch is retried before anything after it (order); a batch is deleted only
//! after the server took every line of it, or those it refused are stored as
//! dead letters in the same transaction (delete). Delivery is at-least-once: a
//! crash between the 2xx and the delete, or a retry after half a split went
//! through, re-sends lines; InfluxDB overwrites a point with the same series and
//! timestamp, so the replay is harmless.

use crate::config::Retry;
use crate::dest::Destination;
use crate::lineproto;
use crate::stats::Stats;
use crate::upstream::{Outcome, Upstream};
use crate::wal::{DeadLetter, StoredBatch, Wal};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often an idle forwarder looks at the buffer even unprompted (a commit
/// rings the doorbell; this only bounds a missed ring).
const IDLE_POLL_MS: u64 = 1_000;
/// How often the backlog gauges are refreshed (a scan of the batch table).
const BACKLOG_REFRESH_MS: u64 = 1_000;
/// Floor on a retry delay, so full jitter never turns into a busy loop.
const MIN_RETRY_DELAY_MS: u64 = 50;

/// Wakes the forwarder: a commit happened, or it is time to stop.
#[derive(Default)]
pub struct Doorbell {
    rung: Mutex<bool>,
    cv: Condvar,
}

impl Doorbell {
    pub fn ring(&self) {
        if let Ok(mut r) = self.rung.lock() {
            *r = true;
            self.cv.notify_all();
        }
    }

    /// Waits until rung or `timeout`; clears the bell.
    pub fn wait(&self, timeout: Duration) {
        let Ok(guard) = self.rung.lock() else { return };
        let Ok((mut guard, _)) = self.cv.wait_timeout_while(guard, timeout, |r| !*r) else {
            return;
        };
        *guard = false;
    }
}

/// Why a batch stays for a later attempt.
struct Deferred {
    delay: Option<Duration>,
    reason: String,
}

struct Backoff {
    ready_at: Instant,
    failures: u32,
}

pub struct Forwarder {
    wal: Wal,
    upstream: Upstream,
    retry: Retry,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    bell: Arc<Doorbell>,
    backoff: HashMap<Destination, Backoff>,
    /// Lowered after a 413, so we stop sending what the server cannot take.
    max_lines_per_request: usize,
    rng: u64,
}

impl Forwarder {
    pub fn new(
        wal: Wal,
        upstream: Upstream,
        retry: Retry,
        stats: Arc<Stats>,
        stop: Arc<AtomicBool>,
        bell: Arc<Doorbell>,
    ) -> Forwarder {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Forwarder {
            wal,
            upstream,
            retry,
            stats,
            stop,
            bell,
            backoff: HashMap::new(),
            max_lines_per_request: usize::MAX,
            rng: seed,
        }
    }

    pub fn spawn(self) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("hissrv-forward".into())
            .spawn(move || self.run())
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn refresh_backlog(&self) {
        match self.wal.backlog() {
            Ok(b) => {
                let s = &self.stats;
                s.backlog_batches.store(b.batches, Ordering::Relaxed);
                s.backlog_points.store(b.points, Ordering::Relaxed);
                s.backlog_bytes.store(b.payload_bytes, Ordering::Relaxed);
                s.dead_letters_stored
                    .store(b.dead_letters, Ordering::Relaxed);
                let oldest = b.oldest_created_ms.unwrap_or(0).max(0) as u64;
                s.oldest_unsent_ms.store(oldest, Ordering::Relaxed);
                if let Ok(used) = self.wal.used_bytes() {
                    s.buffer_bytes.store(used, Ordering::Relaxed);
                }
            }
            Err(e) => log::warn!("cannot read the backlog: {e}"),
        }
    }

    fn run(mut self) {
        let mut refreshed = Instant::now() - Duration::from_millis(BACKLOG_REFRESH_MS);
        while !self.stopping() {
            if refreshed.elapsed() >= Duration::from_millis(BACKLOG_REFRESH_MS) {
                self.refresh_backlog();
                refreshed = Instant::now();
            }
            let heads = match self.wal.heads() {
                Ok(h) => h,
                Err(e) => {
                    log::error!("forwarder cannot read the buffer: {e}");
                    self.bell.wait(Duration::from_millis(IDLE_POLL_MS));
                    continue;
                }
            };
            if heads.is_empty() {
                self.bell.wait(Duration::from_millis(IDLE_POLL_MS));
                continue;
            }
            let now = Instant::now();
            let ready_at = |d: &Destination| self.backoff.get(d).map_or(now, |b| b.ready_at);
            match heads.iter().find(|(_, d)| ready_at(d) <= now) {
                Some((id, _)) => self.deliver(*id),
                None => {
                    let next = heads.iter().map(|(_, d)| ready_at(d)).min().unwrap_or(now);
                    // Wake for the gauges too, during a long back-off.
                    self.sleep_until(next.min(now + Duration::from_millis(BACKLOG_REFRESH_MS)));
                }
            }
        }
        log::debug!("forwarder done");
    }

    /// Sleeps until `deadline`, waking early only to stop.
    fn sleep_until(&self, deadline: Instant) {
        loop {
            let now = Instant::now();
            if now >= deadline || self.stopping() {
                return;
            }
            self.bell.wait(deadline - now);
        }
    }

    fn deliver(&mut self, id: i64) {
        let batch = match self.wal.load(id) {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(e) => {
                log::error!("cannot load batch {id}: {e}");
                return;
            }
        };
        if batch.attempts > 0 {
            Stats::add(&self.stats.retries, 1);
        }
        match self.send_batch(&batch) {
            Ok(dead) => {
                if let Err(e) = self.wal.finish(&batch, &dead) {
                    log::error!(
                        "batch {id} was delivered but cannot be deleted ({e}); it will be re-sent"
                    );
                    return;
                }
                Stats::add(&self.stats.points_written, batch.points - dead.len());
                Stats::add(&self.stats.batches_written, 1);
                Stats::add(&self.stats.dead_letter_lines, dead.len());
                self.stats.upstream_up.store(true, Ordering::Relaxed);
                if self.backoff.remove(&batch.dest).is_some() {
                    log::info!("upstream accepts writes to {:?} again", batch.dest.bucket());
                }
                for d in &dead {
                    log::warn!(
                        "upstream refused a line of {:?} for good (dead letter): {} ({})",
                        batch.dest.bucket(),
                        String::from_utf8_lossy(&d.line),
                        d.reason
                    );
                }
            }
            Err(deferred) => {
                Stats::add(&self.stats.upstream_failures, 1);
                self.stats.set_error(deferred.reason.clone());
                if let Err(e) = self.wal.record_failure(id, &deferred.reason) {
                    log::warn!("cannot record the failure of batch {id}: {e}");
                }
                let b = self.backoff.entry(batch.dest.clone()).or_insert(Backoff {
                    ready_at: Instant::now(),
                    failures: 0,
                });
                b.failures = b.failures.saturating_add(1);
                let failures = b.failures;
                let delay = match deferred.delay {
                    Some(d) => d.min(Duration::from_secs(self.retry.max_retry_after_s)),
                    None => self.jittered_backoff(failures),
                };
                if let Some(b) = self.backoff.get_mut(&batch.dest) {
                    b.ready_at = Instant::now() + delay;
                }
                log::warn!(
                    "delivery of batch {id} ({} points to {:?}) failed: {}; retry in {} ms",
                    batch.points,
                    batch.dest.bucket(),
                    deferred.reason,
                    delay.as_millis()
                );
            }
        }
    }

    /// Exponential back-off with full jitter: uniform in [0, min(cap, base·2^n)].
    fn jittered_backoff(&mut self, failures: u32) -> Duration {
        let ceiling = self
            .retry
            .initial_backoff_ms
            .saturating_mul(1u64 << failures.min(32).saturating_sub(1))
            .min(self.retry.max_backoff_ms);
        // xorshift64: jitter needs spread, not cryptographic quality.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        Duration::from_millis((self.rng % (ceiling + 1)).max(MIN_RETRY_DELAY_MS))
    }

    /// Sends a batch, splitting where the server asks; returns the dead letters.
    fn send_batch(&mut self, batch: &StoredBatch) -> Result<Vec<DeadLetter>, Deferred> {
        let lines: Vec<&[u8]> = lineproto::lines(&batch.payload).collect();
        let mut dead = Vec::new();
        // Ranges still to send, the next on top: halves are pushed right first.
        let mut todo = vec![(0, lines.len())];
        let mut body = Vec::new();
        while let Some((a, b)) = todo.pop() {
            if b - a > self.max_lines_per_request {
                let mid = a + (b - a) / 2;
                todo.extend([(mid, b), (a, mid)]);
                continue;
            }
            if self.stopping() {
                return Err(Deferred {
                    delay: None,
                    reason: "shutting down".into(),
                });
            }
            // The whole batch is its payload as stored: send it without a copy.
            let request: &[u8] = if (a, b) == (0, lines.len()) {
                &batch.payload
            } else {
                body.clear();
                for l in &lines[a..b] {
                    body.extend_from_slice(l);
                    body.push(b'\n');
                }
                &body
            };
            let started = Instant::now();
            let outcome = self.upstream.write(&batch.dest, request);
            self.stats
                .write_duration
                .observe(started.elapsed().as_secs_f64());
            let class = match &outcome {
                Outcome::Written | Outcome::Refused { .. } | Outcome::TooLarge => None,
                Outcome::Misconfigured { .. } => Some(&self.stats.upstream_failures_4xx),
                Outcome::Throttled { status, .. } if *status < 500 => {
                    Some(&self.stats.upstream_failures_4xx)
                }
                Outcome::Throttled { .. } | Outcome::ServerError { .. } => {
                    Some(&self.stats.upstream_failures_5xx)
                }
                Outcome::Network(_) => Some(&self.stats.upstream_failures_network),
            };
            if let Some(c) = class {
                Stats::add(c, 1);
            }
            match outcome {
                Outcome::Written => {}
                Outcome::Refused { status, message } if b - a == 1 => dead.push(DeadLetter {
                    status,
                    reason: message,
                    line: lines[a].to_vec(),
                }),
                Outcome::TooLarge if b - a == 1 => dead.push(DeadLetter {
                    status: 413,
                    reason: "a single line is larger than the server accepts".into(),
                    line: lines[a].to_vec(),
                }),
                Outcome::Refused { .. } => {
                    let mid = a + (b - a) / 2;
                    todo.extend([(mid, b), (a, mid)]);
                }
                Outcome::TooLarge => {
                    self.max_lines_per_request = ((b - a) / 2).max(1);
                    log::info!(
                        "upstream said 413: requests are now at most {} lines",
                        self.max_lines_per_request
                    );
                    let mid = a + (b - a) / 2;
                    todo.extend([(mid, b), (a, mid)]);
                }
                Outcome::Misconfigured { status, message } => {
                    log::error!(
                        "upstream refuses writes to {:?} with {status}: {message} — check influxdb credentials and that the database exists; data is kept",
                        batch.dest.bucket()
                    );
                    return Err(Deferred {
                        delay: None,
                        reason: format!("{status}: {message}"),
                    });
                }
                Outcome::Throttled {
                    status,
                    retry_after,
                } => {
                    return Err(Deferred {
                        delay: retry_after,
                        reason: format!("{status}: upstream overloaded"),
                    });
                }
                Outcome::ServerError { status, message } => {
                    return Err(Deferred {
                        delay: None,
                        reason: format!("{status}: {message}"),
                    });
                }
                Outcome::Network(e) => {
                    self.stats.upstream_up.store(false, Ordering::Relaxed);
                    return Err(Deferred {
                        delay: None,
                        reason: e,
                    });
                }
            }
        }
        Ok(dead)
    }
}
