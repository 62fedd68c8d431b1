//! One delivery turn of the forwarder: pack, expire, send under the status
//! policy, then delete (with dead letters) or back off. Every failure path
//! ends in a back-off (the forwarder's "no busy loop" contract); poison
//! counts are kept per pack head.

use super::{Backoff, Forwarder, MIN_RETRY_DELAY_MS};
use crate::deliver::delivery::{Deferred, Delivery, POISON_PROBE_AFTER_FAILURES};
use crate::deliver::prefetch::{self, Key, Prefetched};
use crate::observe::stats::Stats;
use crate::route::dest::Destination;
use std::sync::atomic::Ordering;

/// How often the server is asked for its time while none is known (any
/// answer's `Date` also tells it).
const ASK_TIME_EVERY_SECS: u64 = 60;
use crate::wal::{StoredBatch, WalError};
use std::time::Duration;

impl Forwarder {
    pub(super) fn deliver(&mut self, dest: &Destination, from: i64) {
        let key = (dest.clone(), from);
        let probe = self
            .server_errors
            .get(&key)
            .is_some_and(|&n| n >= POISON_PROBE_AFTER_FAILURES);
        // A probe needs a neighbour line: two batches at least.
        let min_batches = if probe { 2 } else { 1 };
        let limits = (self.policy.max_points, self.policy.max_bytes);
        let want = Key {
            dest: dest.clone(),
            from,
            max_points: limits.0,
            max_bytes: limits.1,
            gzip: self.influxdb.gzip,
        };
        // The pack read ahead during this destination's last request, if it
        // is this one (`prefetch`).
        let ready = self.take_prefetched(&want, probe);
        let (pack, mut zipped) = match ready {
            Some(p) => (Ok(p.pack), p.zipped),
            None => (
                self.wal.pack_at_least(
                    dest,
                    from,
                    self.policy.max_points,
                    self.policy.max_bytes,
                    min_batches,
                ),
                None,
            ),
        };
        let mut pack = match pack {
            Ok(p) if !p.is_empty() => p,
            Ok(_) => {
                // The cached head is gone (deleted elsewhere): look again.
                self.reload_head(dest);
                return;
            }
            Err(WalError::Undecodable { id, why }) => {
                log::error!("batch {id} cannot be decoded ({why}); kept as a dead letter");
                match self.on_full_disk(|wal| wal.quarantine(id, &why)) {
                    Ok(pruned) => {
                        Stats::add(&self.stats.dead_letters_pruned, pruned as usize);
                        self.forget_batches(std::iter::once(id));
                        self.reload_head(dest);
                    }
                    Err(e) => self.failed(dest, format!("cannot set batch {id} aside: {e}")),
                }
                return;
            }
            Err(e) => {
                return self.failed(dest, format!("cannot load batches from {from}: {e}"));
            }
        };
        // Expiry is for good: never on a clock in doubt.
        self.note_hot(dest, &pack);
        let retention = self.retention_of(dest);
        let retained = (retention.as_ref()).is_some_and(|(b, _)| b.retention_ns.is_some());
        let now = if retained {
            self.trusted_wall_ns()
        } else {
            None
        };
        let expired = match (&retention, now) {
            (Some((b, _)), Some(now)) => crate::deliver::drain::expire(&mut pack, b, now),
            _ => Vec::new(),
        };
        if !expired.is_empty() {
            // Lines left the pack: its body is made again at its request.
            zipped = None;
            Stats::add(&self.stats.points_expired, expired.len());
            if retention.as_ref().is_some_and(|(_, hot)| *hot) {
                Stats::add(&self.stats.points_expired_hot, expired.len());
            }
            log::warn!(
                "{} points for {:?} are older than its retention: not sent, kept as dead letters",
                expired.len(),
                dest.bucket()
            );
            if pack.iter().all(|b| b.points == 0) {
                // Nothing was sent: not a sign of a working upstream.
                self.delivered(dest, &pack, 0, expired, false);
                return;
            }
        }
        if pack.iter().any(|b| b.attempts > 0) {
            Stats::add(&self.stats.retries, 1);
        }
        let points: usize = pack.iter().map(|b| b.points).sum();
        if probe {
            log::warn!(
                "batch {} failed with server errors {POISON_PROBE_AFTER_FAILURES}+ times: probing it for a poison line",
                key.1
            );
        }
        // A backlog's next pack is read and compressed while the server
        // works on this one (`prefetch`).
        let next_from = pack.last().map_or(from, |b| b.id).saturating_add(1);
        let next = (!probe
            && prefetch::is_full(&pack, limits.0, limits.1)
            && self.heads.get(dest) == Some(&from)
            && !self.backoff.contains_key(dest)
            && !self.stop.load(Ordering::Relaxed)
            && self.prefetched.is_none()
            && !self.live_lane_next(dest, next_from))
        .then_some(Key {
            from: next_from,
            ..want
        });
        let mut unused = crate::deliver::delivery::ProbeState::default();
        let probed = if probe {
            self.probed.entry(key.clone()).or_default()
        } else {
            &mut unused
        };
        let max_lines = self.max_lines_per_request;
        let mut delivery = Delivery {
            upstream: self.sink.as_ref(),
            stats: &self.stats,
            stop: &self.stop,
            max_lines_per_request: &mut self.max_lines_per_request,
            probe,
            probed,
            latest: self.latest_written.entry(dest.clone()).or_default(),
            zipped: zipped.as_ref(),
        };
        let (result, prefetched) = match next {
            None => (delivery.send(&pack), None),
            Some(key) => {
                let wal = &mut self.wal;
                let (sent, ahead) = prefetch::overlap(
                    || delivery.send(&pack),
                    || prefetch::read(wal, key, max_lines),
                );
                let result = sent.unwrap_or_else(|| {
                    Err(Deferred {
                        delay: None,
                        reason: "the request's thread panicked".into(),
                        server_error: false,
                    })
                });
                (result, ahead)
            }
        };
        // A deferred pack comes back next: what follows it waits. (A turn
        // that read none ahead leaves another destination's in the slot.)
        if let Some(p) = prefetched.filter(|_| result.is_ok()) {
            self.prefetched = Some(p);
        }
        // The count survives throttling, network errors and the like (a
        // rate-limited upstream must not keep a probe from ever finishing);
        // only a delivery of this head ends it (in `delivered`).
        if let Err(d) = &result
            && d.server_error
        {
            let n = self.server_errors.entry(key).or_insert(0);
            *n = n.saturating_add(1);
        }
        match result {
            Ok(mut dead) => {
                let refused = dead.len();
                dead.extend(expired);
                self.delivered(dest, &pack, points.saturating_sub(refused), dead, true);
            }
            Err(deferred) => self.deferred(dest, &pack, points, deferred),
        }
    }

    /// The prefetched pack, if it is what this turn of `want.dest` wants.
    /// A turn of this destination takes it either way (only its next turn
    /// may use it: `prefetch`'s invariant); another destination's leaves it
    /// (and reads none ahead itself, so two packs stay the bound).
    fn take_prefetched(&mut self, want: &Key, probe: bool) -> Option<Prefetched> {
        if self.prefetched.as_ref()?.key.dest != want.dest {
            return None;
        }
        self.prefetched.take().filter(|p| !probe && p.key == *want)
    }

    /// `written`: points the server took; `dead`: lines it refused or that
    /// had outlived their retention; `sent`: a request went out and the
    /// server took it (not a pack that only expired).
    fn delivered(
        &mut self,
        dest: &Destination,
        pack: &[StoredBatch],
        written: usize,
        dead: Vec<crate::wal::DeadLetter>,
        sent: bool,
    ) {
        let finished = self.on_full_disk(|wal| wal.finish(pack, &dead));
        let pruned = match finished {
            Ok(pruned) => pruned,
            Err(e) => {
                self.note_read_only(&e);
                return self.failed(
                    dest,
                    format!(
                        "batches {}.. were delivered but cannot be deleted ({e}); they will be re-sent",
                        pack.first().map_or(0, |b| b.id)
                    ),
                );
            }
        };
        Stats::add(&self.stats.dead_letters_pruned, pruned as usize);
        // The counts of heads now deleted go; another lane's head keeps its count.
        let (first, last) = (
            pack.first().map_or(0, |b| b.id),
            pack.last().map_or(0, |b| b.id),
        );
        self.server_errors
            .retain(|(d, id), _| d != dest || !(first..=last).contains(id));
        self.probed
            .retain(|(d, id), _| d != dest || !(first..=last).contains(id));
        self.forget_batches(pack.iter().map(|b| b.id));
        // Expired lines left the pack's counts when they were set aside.
        let expired = dead
            .iter()
            .filter(|d| d.status == crate::wal::STATUS_EXPIRED)
            .count();
        let points = pack.iter().map(|b| b.points).sum::<usize>() + expired;
        self.deleted(pack, points);
        self.reload_head(dest);
        Stats::add(&self.stats.points_written, written);
        Stats::add(&self.stats.dead_letter_lines, dead.len());
        if sent {
            Stats::add(&self.stats.batches_written, pack.len());
            self.stats.delivery_ok();
            if self.backoff.remove(dest).is_some() {
                self.publish_failing();
                log::info!("upstream accepts writes to {:?} again", dest.bucket());
            }
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
        // Someone dropped a database or policy we manage, or a warm tier's
        // is not there yet: (re)create it.
        if self.influxdb.manage_retention
            && (d.reason.contains("database not found")
                || d.reason.contains("retention policy not found")
                // 2.x: `bucket "db/rp" not found` (found in review).
                || (d.reason.contains("bucket") && d.reason.contains("not found")))
        {
            self.missing(dest);
        }
        self.stats.set_error(d.reason.clone());
        if let Some(first) = pack.first()
            && let Err(e) = self.wal.record_failure(first.id, &d.reason)
        {
            log::warn!("cannot record the failure of batch {}: {e}", first.id);
            self.note_read_only(&e);
        }
        // No server time yet and no answer: ask again before the next
        // delivery, so the first one after an outage (a backlog that may
        // have outlived its retention) is judged by a trusted clock, not
        // sent unexpired (found in review: after a restart mid-outage).
        if self.sink.server_time().is_none() {
            self.time_asked_at = None;
        }
        let delay = self.back_off(dest, d.delay);
        log::warn!(
            "delivery of {points} points to {:?} failed: {}; retry in {} ms",
            dest.bucket(),
            d.reason,
            delay.as_millis()
        );
    }

    /// The wall clock, if it can be trusted for expiry: set, and within a
    /// day of the upstream server's `Date` (`clock::judge_wall_clock`); a
    /// change of verdict is logged and shown (`/health` `clock_untrusted`).
    fn trusted_wall_ns(&mut self) -> Option<i64> {
        let wall = self.clock.wall_ns();
        let now = self.clock.now();
        if self.sink.server_time().is_none()
            && self
                .time_asked_at
                .is_none_or(|t| now >= t + Duration::from_secs(ASK_TIME_EVERY_SECS))
        {
            // Ask (influx answers /ping with its Date): cheaper than sending
            // points the server would drop one by one. Not every turn: a
            // silent upstream would cost a timeout each time.
            self.time_asked_at = Some(now);
            self.sink.learn_server_time();
        }
        let now = self.clock.now();
        let server_now = self.sink.server_time().map(|(ns, at)| {
            ns.saturating_add(
                i64::try_from(now.saturating_duration_since(at).as_nanos()).unwrap_or(i64::MAX),
            )
        });
        let verdict = crate::clock::judge_wall_clock(wall, server_now);
        let was_untrusted = self
            .stats
            .clock_untrusted
            .swap(verdict.is_err(), std::sync::atomic::Ordering::Relaxed);
        match verdict {
            Ok(()) => {
                if was_untrusted {
                    log::info!("the wall clock is trusted again: retention expiry resumes");
                }
                Some(wall)
            }
            Err(why) => {
                if !was_untrusted {
                    log::warn!(
                        "the wall clock is not trusted ({why:?}): no point is expired for retention until it is; points are delivered and the server judges them"
                    );
                }
                None
            }
        }
    }

    /// A failure of our own (buffer read or delete): logged, shown, and the
    /// destination backs off like after a failed request.
    fn failed(&mut self, dest: &Destination, why: String) {
        // Its read-ahead followed a pack that is still there.
        if self
            .prefetched
            .as_ref()
            .is_some_and(|p| p.key.dest == *dest)
        {
            self.prefetched = None;
        }
        let delay = self.back_off(dest, None);
        log::error!("{why}; retry in {} ms", delay.as_millis());
        self.stats.set_error(why);
    }

    /// Puts `dest` in back-off: `given` (a server's Retry-After, capped) or
    /// exponential with full jitter.
    fn back_off(&mut self, dest: &Destination, given: Option<Duration>) -> Duration {
        let now = self.clock.now();
        let failures = {
            let b = self.backoff.entry(dest.clone()).or_insert(Backoff {
                ready_at: now,
                failures: 0,
                since: now,
            });
            b.failures = b.failures.saturating_add(1);
            b.failures
        };
        self.publish_failing();
        let delay = match given {
            Some(ra) => ra
                .min(Duration::from_secs(self.retry.max_retry_after_s))
                .max(Duration::from_millis(MIN_RETRY_DELAY_MS)),
            None => self.jittered_backoff(failures),
        };
        if let Some(b) = self.backoff.get_mut(dest) {
            b.ready_at = now + delay;
        }
        delay
    }

    /// Publishes since when the destination failing longest has failed
    /// (among those with something left to send).
    pub(crate) fn publish_failing(&self) {
        let since = self
            .backoff
            .iter()
            .filter(|(d, _)| self.heads.contains_key(*d))
            .map(|(_, b)| b.since)
            .min();
        self.stats.set_failing_since(since);
    }

    /// Batches deleted: what any probe knew of their lines goes. SQLite
    /// reuses the id of a deleted last row, so a mark left behind would
    /// name a line of a later batch (and skip it as written: a loss).
    fn forget_batches(&mut self, ids: impl Iterator<Item = i64>) {
        let ids: std::collections::HashSet<i64> = ids.collect();
        for state in self.probed.values_mut() {
            state.written.retain(|(b, _)| !ids.contains(b));
            state.suspects.retain(|(b, _)| !ids.contains(b));
        }
        self.server_errors
            .retain(|(_, head), _| !ids.contains(head));
        self.probed.retain(|(_, head), _| !ids.contains(head));
    }

    /// Exponential back-off with full jitter: uniform in [0, min(cap, base·2^n)].
    pub(super) fn jittered_backoff(&mut self, failures: u32) -> Duration {
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
