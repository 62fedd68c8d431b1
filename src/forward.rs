//! The forwarder: a worker thread that drains the write-ahead buffer upstream.
//!
//! It reads with its own connection. Each turn it picks a destination that is
//! not backing off, packs consecutive stored batches of it into one request
//! (up to `max_batch_size` points and `max_request_mb`), and hands the pack to
//! [`crate::deliver`], which applies the status policy. A delivered pack is
//! deleted, with its dead letters, in one transaction.
//!
//! # Backlog replay
//! After an outage a destination holds a backlog (batches committed more than
//! `backlog_replay.live_window_ms` ago) and live data (committed since). The
//! backlog drains in commit order in the largest requests allowed, back to
//! back, as fast as the upstream answers; but one request in
//! `100 / live_share_percent` (default: every 4th) carries the oldest *live*
//! batches instead, so fresh points keep reaching the server during a long
//! drain. With `live_share_percent: 0` everything goes strictly oldest-first.
//!
//! # Contracts
//! - **Order:** within a destination, the backlog goes in commit order and so
//!   does live data; a failed pack is retried before anything after it in its
//!   lane. The two lanes interleave only while a backlog drains.
//! - **Delete:** a batch is deleted only after the server took every line of
//!   it, or those it refused are stored as dead letters in the same transaction.
//! - **At-least-once:** a crash between the 2xx and the delete, or a retry after
//!   half a split went through, re-sends lines; InfluxDB overwrites a point with
//!   the same series and timestamp, so the replay is harmless.

use crate::config::{Config, Influxdb, Retry};
use crate::deliver::{Deferred, Delivery, POISON_PROBE_AFTER_FAILURES};
use crate::dest::Destination;
use crate::drain::{DrainPolicy, Plan, Scheduler};
use crate::provision::ProvisionError;
use crate::stats::Stats;
use crate::upstream::Upstream;
use crate::wal::{StoredBatch, Wal, WalError, now_ms};
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
/// The scan may take at most 1/this of the forwarder's time: with millions
/// of batches it is spaced out instead of slowing delivery.
const BACKLOG_REFRESH_COST_FACTOR: u32 = 20;
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

struct Backoff {
    ready_at: Instant,
    failures: u32,
}

/// A new config for the forwarder, left by a reload; taken at its next turn.
pub type Mailbox = Arc<Mutex<Option<Config>>>;

pub struct Forwarder {
    wal: Wal,
    upstream: Upstream,
    influxdb: Influxdb,
    retry: Retry,
    policy: DrainPolicy,
    plan: Plan,
    scheduler: Scheduler,
    mailbox: Mailbox,
    /// When to (re)check the buckets upstream (`manage_retention`); failures
    /// in a row so far.
    provision_at: Option<Instant>,
    provision_failures: u32,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    bell: Arc<Doorbell>,
    backoff: HashMap<Destination, Backoff>,
    max_lines_per_request: usize,
    /// Requests since the live lane last had its turn.
    since_live: u32,
    /// Server errors in a row per destination, with the pack head they hit.
    server_errors: HashMap<Destination, (i64, u32)>,
    rng: u64,
}

impl Forwarder {
    pub fn new(
        wal: Wal,
        cfg: &Config,
        stats: Arc<Stats>,
        stop: Arc<AtomicBool>,
        bell: Arc<Doorbell>,
        mailbox: Mailbox,
    ) -> Forwarder {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Forwarder {
            wal,
            upstream: Upstream::new(&cfg.influxdb),
            influxdb: cfg.influxdb.clone(),
            retry: cfg.retry.clone(),
            policy: DrainPolicy::from_config(&cfg.performance),
            plan: Plan::from_config(&cfg.influxdb),
            scheduler: Scheduler::default(),
            mailbox,
            provision_at: cfg.influxdb.manage_retention.then(Instant::now),
            provision_failures: 0,
            stats,
            stop,
            bell,
            backoff: HashMap::new(),
            max_lines_per_request: usize::MAX,
            since_live: 0,
            server_errors: HashMap::new(),
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
        let s = &self.stats;
        match self.wal.backlog() {
            Ok(b) => {
                s.backlog_batches.store(b.batches, Ordering::Relaxed);
                s.backlog_points.store(b.points, Ordering::Relaxed);
                s.backlog_bytes.store(b.payload_bytes, Ordering::Relaxed);
                s.dead_letters_stored
                    .store(b.dead_letters, Ordering::Relaxed);
                let oldest = b.oldest_created_ms.unwrap_or(0).max(0) as u64;
                s.oldest_unsent_ms.store(oldest, Ordering::Relaxed);
            }
            Err(e) => log::warn!("cannot read the backlog: {e}"),
        }
        if let Ok(used) = self.wal.used_bytes() {
            s.buffer_bytes.store(used, Ordering::Relaxed);
        }
    }

    /// Takes a config a reload left: upstream, credentials, packing, drain
    /// order and retention apply from the next request on.
    fn reconfigure(&mut self) {
        let Some(cfg) = self.mailbox.lock().ok().and_then(|mut m| m.take()) else {
            return;
        };
        self.upstream = Upstream::new(&cfg.influxdb);
        self.retry = cfg.retry.clone();
        self.policy = DrainPolicy::from_config(&cfg.performance);
        self.plan = Plan::from_config(&cfg.influxdb);
        self.provision_at = cfg.influxdb.manage_retention.then(Instant::now);
        self.provision_failures = 0;
        self.influxdb = cfg.influxdb;
        // New address or credentials deserve a try now, not after the old
        // ones' back-off.
        self.backoff.clear();
        self.max_lines_per_request = usize::MAX;
        log::info!(
            "forwarder: new upstream settings in force ({})",
            self.influxdb.url
        );
    }

    /// `manage_retention`: creates or adjusts the buckets upstream when due.
    fn provision(&mut self) {
        if self.provision_at.is_none_or(|t| t > Instant::now()) {
            return;
        }
        match crate::provision::ensure(&self.upstream, &self.influxdb) {
            Ok(changes) => {
                for c in &changes {
                    log::info!("upstream: {c}");
                }
                self.provision_at = None;
                self.provision_failures = 0;
            }
            Err(e) => {
                Stats::add(&self.stats.provision_failures, 1);
                self.stats.set_error(format!("manage_retention: {e}"));
                self.provision_failures = self.provision_failures.saturating_add(1);
                let delay = match e {
                    // The operator must grant rights: ask again at the slowest pace.
                    ProvisionError::Forbidden(_) | ProvisionError::Failed(_) => {
                        log::error!(
                            "manage_retention: {e}; delivering to what exists, retrying later"
                        );
                        Duration::from_millis(self.retry.max_backoff_ms)
                    }
                    ProvisionError::Unreachable(_) => {
                        log::warn!("manage_retention: {e}");
                        self.jittered_backoff(self.provision_failures)
                    }
                };
                self.provision_at = Some(Instant::now() + delay);
            }
        }
    }

    fn run(mut self) {
        let mut next_refresh = Instant::now();
        while !self.stopping() {
            self.reconfigure();
            self.provision();
            if Instant::now() >= next_refresh {
                let started = Instant::now();
                self.refresh_backlog();
                let cost = started.elapsed() * BACKLOG_REFRESH_COST_FACTOR;
                next_refresh = Instant::now() + cost.max(Duration::from_millis(BACKLOG_REFRESH_MS));
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
                self.refresh_backlog();
                self.bell.wait(Duration::from_millis(IDLE_POLL_MS));
                continue;
            }
            let now = Instant::now();
            let ready_at = |d: &Destination| self.backoff.get(d).map_or(now, |b| b.ready_at);
            let pick = self
                .scheduler
                .pick(&self.plan, &heads, |d| ready_at(d) <= now)
                .cloned();
            match pick {
                Some((head, dest)) => {
                    let from = self.choose_lane(&dest, head);
                    self.deliver(&dest, from);
                }
                None => {
                    let next = heads.iter().map(|(_, d)| ready_at(d)).min().unwrap_or(now);
                    // Wake for the gauges too, during a long back-off.
                    self.sleep_until(next.min(now + Duration::from_millis(BACKLOG_REFRESH_MS)));
                }
            }
        }
        log::debug!("forwarder done");
    }

    /// Where this request starts: the backlog's head, or on the live lane's
    /// turn the first live batch (when there is a backlog before it).
    fn choose_lane(&mut self, dest: &Destination, head: i64) -> i64 {
        if self.policy.live_every == 0 {
            return head;
        }
        self.since_live += 1;
        if self.since_live < self.policy.live_every {
            return head;
        }
        match self
            .wal
            .first_since(dest, now_ms() - self.policy.live_window_ms)
        {
            Ok(Some(live)) if live > head => {
                self.since_live = 0;
                live
            }
            _ => head,
        }
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

    fn deliver(&mut self, dest: &Destination, from: i64) {
        let mut pack =
            match self
                .wal
                .pack(dest, from, self.policy.max_points, self.policy.max_bytes)
            {
                Ok(p) if !p.is_empty() => p,
                Ok(_) => return,
                Err(WalError::Undecodable { id, why }) => {
                    log::error!("batch {id} cannot be decoded ({why}); kept as a dead letter");
                    if let Err(e) = self.wal.quarantine(id, &why) {
                        log::error!("cannot set batch {id} aside: {e}");
                    }
                    return;
                }
                Err(e) => {
                    log::error!("cannot load batches from {from}: {e}");
                    return;
                }
            };
        let expired = match self.plan.bucket(dest) {
            Some(b) => crate::drain::expire(&mut pack, b, crate::ingest::now_ns()),
            None => Vec::new(),
        };
        if !expired.is_empty() {
            Stats::add(&self.stats.points_expired, expired.len());
            log::warn!(
                "{} points for {:?} are older than its retention: not sent, kept as dead letters",
                expired.len(),
                dest.bucket()
            );
            if pack.iter().all(|b| b.points == 0) {
                self.delivered(dest, &pack, 0, expired);
                return;
            }
        }
        if pack.iter().any(|b| b.attempts > 0) {
            Stats::add(&self.stats.retries, 1);
        }
        let points: usize = pack.iter().map(|b| b.points).sum();
        let probe = self
            .server_errors
            .get(dest)
            .is_some_and(|&(id, n)| id == pack[0].id && n >= POISON_PROBE_AFTER_FAILURES);
        if probe {
            log::warn!(
                "batch {} failed with server errors {POISON_PROBE_AFTER_FAILURES}+ times: probing it for a poison line",
                pack[0].id
            );
        }
        let result = Delivery {
            upstream: &self.upstream,
            stats: &self.stats,
            stop: &self.stop,
            max_lines_per_request: &mut self.max_lines_per_request,
            probe,
        }
        .send(&pack);
        match &result {
            Err(d) if d.server_error => {
                let e = self
                    .server_errors
                    .entry(dest.clone())
                    .or_insert((pack[0].id, 0));
                if e.0 != pack[0].id {
                    *e = (pack[0].id, 0);
                }
                e.1 += 1;
            }
            _ => {
                self.server_errors.remove(dest);
            }
        }
        match result {
            Ok(mut dead) => {
                let refused = dead.len();
                dead.extend(expired);
                self.delivered(dest, &pack, points.saturating_sub(refused), dead);
            }
            Err(deferred) => self.deferred(dest, &pack, points, deferred),
        }
    }

    /// `written`: points the server took; `dead`: lines it refused or that
    /// had outlived their retention.
    fn delivered(
        &mut self,
        dest: &Destination,
        pack: &[StoredBatch],
        written: usize,
        dead: Vec<crate::wal::DeadLetter>,
    ) {
        if let Err(e) = self.wal.finish(pack, &dead) {
            log::error!(
                "batches {}.. were delivered but cannot be deleted ({e}); they will be re-sent",
                pack[0].id
            );
            return;
        }
        Stats::add(&self.stats.points_written, written);
        Stats::add(&self.stats.batches_written, pack.len());
        Stats::add(&self.stats.dead_letter_lines, dead.len());
        self.stats.upstream_up.store(true, Ordering::Relaxed);
        if self.backoff.remove(dest).is_some() {
            log::info!("upstream accepts writes to {:?} again", dest.bucket());
        }
        // Expired lines were summed up when they were set aside.
        for d in dead
            .iter()
            .filter(|d| d.status != crate::wal::STATUS_EXPIRED)
        {
            log::warn!(
                "upstream refused a line of {:?} for good (dead letter): {} ({})",
                dest.bucket(),
                String::from_utf8_lossy(&d.line),
                d.reason
            );
        }
    }

    fn deferred(&mut self, dest: &Destination, pack: &[StoredBatch], points: usize, d: Deferred) {
        Stats::add(&self.stats.upstream_failures, 1);
        // Someone dropped a database or policy we manage: put it back.
        if self.influxdb.manage_retention
            && self.provision_at.is_none()
            && (d.reason.contains("database not found")
                || d.reason.contains("retention policy not found"))
        {
            self.provision_at = Some(Instant::now());
        }
        self.stats.set_error(d.reason.clone());
        if let Err(e) = self.wal.record_failure(pack[0].id, &d.reason) {
            log::warn!("cannot record the failure of batch {}: {e}", pack[0].id);
        }
        let failures = {
            let b = self.backoff.entry(dest.clone()).or_insert(Backoff {
                ready_at: Instant::now(),
                failures: 0,
            });
            b.failures = b.failures.saturating_add(1);
            b.failures
        };
        let delay = match d.delay {
            Some(ra) => ra.min(Duration::from_secs(self.retry.max_retry_after_s)),
            None => self.jittered_backoff(failures),
        };
        if let Some(b) = self.backoff.get_mut(dest) {
            b.ready_at = Instant::now() + delay;
        }
        log::warn!(
            "delivery of {points} points to {:?} failed: {}; retry in {} ms",
            dest.bucket(),
            d.reason,
            delay.as_millis()
        );
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
}
