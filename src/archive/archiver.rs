//! The archiver thread: takes runs of the batches owed to each archive and
//! writes their objects, on its own SQLite connection, beside (never in the
//! way of) the forwarder.
//!
//! When a destination's owed batches are written (one run, whole commits,
//! up to `lifecycle.archive.max_object_mb` of stored bytes):
//! - they reach the size cap;
//! - the oldest has waited `flush_interval` (a period still open is written
//!   as a part: custody stays short);
//! - every point is in a period that has ended and no batch came for
//!   `SETTLE_MS` (an hour's objects are written as it ends, not each time
//!   a producer's backlog sends a few more).
//!
//! A run is split by the points' period (hour or day of their own
//! timestamps): one object per period (`run.rs` writes one). At most `OPEN_OBJECTS_MAX` objects
//! are open at once (a gzip stream each); a run spanning more periods is
//! read again for each group of them. Memory: the batch being read and the
//! open streams, never a whole object.
//!
//! A failing run backs off (1 s doubling to `lifecycle.archive.
//! max_backoff`) and is shown, per target and destination: one destination
//! whose objects cannot be written (a name, a conflict, a directory's
//! rights) never stops the others (review). Runs left open by a crash are
//! written first, the same again (with the period they were started with).
//!
//! A point whose string field holds a line break goes to the object's
//! sidecar (`object::MULTILINE_SUFFIX`): `influx -import` reads one point a
//! line.

use super::ArchiveError;
use super::object::period_of;
use super::target::Target;
use crate::config::Lifecycle;
use crate::observe::archiving::Archiving;
use crate::observe::stats::Stats;
use crate::route::dest::Destination;
use crate::wal::{ArchiveRun, Wal};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the archiver looks at what is owed: one grouped query.
const POLL_MS: u64 = 1_000;
/// How long a destination's batches must have stopped coming before a
/// period that ended is written (see the module doc).
const SETTLE_MS: i64 = 5_000;
/// Gzip streams open at once while a run is written (~300 KiB each).
pub(super) const OPEN_OBJECTS_MAX: usize = 16;
/// The first back-off after a failure.
const FIRST_BACKOFF_MS: u64 = 1_000;

/// How objects are cut (`lifecycle.archive`, validated).
#[derive(Debug, Clone, Copy)]
pub struct Cutting {
    pub period_s: u64,
    pub max_object_bytes: u64,
    pub flush_ms: i64,
    pub max_backoff: Duration,
}

impl Cutting {
    pub fn from_config(l: &Lifecycle) -> Cutting {
        let a = &l.archive;
        Cutting {
            period_s: a.period_s().unwrap_or(3_600),
            max_object_bytes: a.max_object_bytes().unwrap_or(64 << 20),
            flush_ms: (a.flush_interval_s().unwrap_or(600) as i64).saturating_mul(1_000),
            max_backoff: Duration::from_secs(a.max_backoff_s().unwrap_or(300)),
        }
    }
}

struct Backoff {
    until: Instant,
    wait: Duration,
}

pub struct Archiver {
    pub(super) wal: Wal,
    pub(super) targets: BTreeMap<String, Target>,
    pub(super) cutting: Cutting,
    pub(super) buffer_id: String,
    pub(super) stats: Arc<Stats>,
    /// Per target and destination.
    backoff: HashMap<(String, Destination), Backoff>,
}

impl Archiver {
    /// `None` when no rule archives. Duties of archives no rule names any
    /// more are dropped first (their batches are delivered, not archived).
    /// `spool`: where S3 objects are written before they are sent (beside
    /// the buffer, emptied here); `keys`: the S3 keys in force (live).
    pub fn new(
        mut wal: Wal,
        l: &Lifecycle,
        stats: Arc<Stats>,
        spool: &std::path::Path,
        keys: &super::s3::LiveS3,
    ) -> Result<Option<Archiver>, ArchiveError> {
        let canonical = |url: &str| crate::config::ArchiveTarget::canonical(url).ok();
        let mut targets = BTreeMap::new();
        for r in l.rules.iter().filter(|r| !r.cold_storage.is_empty()) {
            let Some(url) = canonical(&r.cold_storage) else {
                continue;
            };
            if let std::collections::btree_map::Entry::Vacant(v) = targets.entry(url) {
                let t = Target::open(v.key(), l, spool, keys)?;
                v.insert(t);
            }
        }
        // Part files of a run a crash cut short: written again from the run.
        if let Ok(entries) = std::fs::read_dir(spool) {
            for e in entries.flatten() {
                if e.path()
                    .to_string_lossy()
                    .ends_with(super::part::PART_SUFFIX)
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let named: Vec<String> = targets.keys().cloned().collect();
        let dropped = wal.forget_archives_except(&named, canonical)?;
        if dropped > 0 {
            log::warn!(
                "archive: {dropped} buffered batches were owed to archives no rule names any more; they are delivered, not archived"
            );
        }
        if targets.is_empty() {
            return Ok(None);
        }
        let buffer_id = wal.buffer_id()?;
        stats.archiving.enabled.store(true, Ordering::Relaxed);
        Ok(Some(Archiver {
            wal,
            targets,
            cutting: Cutting::from_config(l),
            buffer_id,
            stats,
            backoff: HashMap::new(),
        }))
    }

    /// Runs on its own thread until `stop`.
    pub fn spawn(mut self, stop: Arc<AtomicBool>) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("hissrv-archive".into())
            .spawn(move || {
                log::info!(
                    "archive: {} targets; objects by {}, cut at {} MiB, parts every {}s",
                    self.targets.len(),
                    if self.cutting.period_s >= 86_400 {
                        "day"
                    } else {
                        "hour"
                    },
                    self.cutting.max_object_bytes >> 20,
                    self.cutting.flush_ms / 1_000
                );
                while !stop.load(Ordering::Relaxed) {
                    self.turn(&stop);
                    let until = Instant::now() + Duration::from_millis(POLL_MS);
                    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
    }

    /// One look: open runs first, then every destination that is due.
    /// Returns the runs written.
    pub fn turn(&mut self, stop: &AtomicBool) -> usize {
        let mut written = 0;
        match self.wal.open_runs() {
            Ok(runs) => {
                for run in runs {
                    if stop.load(Ordering::Relaxed) {
                        return written;
                    }
                    written += usize::from(self.attempt(run));
                }
            }
            Err(e) => self.buffer_failed(&e),
        }
        let queues = match self.wal.archive_queues() {
            Ok(q) => q,
            Err(e) => {
                self.buffer_failed(&e);
                return written;
            }
        };
        self.publish(&queues);
        let now_ms = crate::clock::record_ms();
        let period_now = period_of(
            crate::clock::now_ms().saturating_mul(1_000_000),
            self.cutting.period_s,
        );
        for q in queues {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let due = q.bytes >= self.cutting.max_object_bytes
                || now_ms.saturating_sub(q.oldest_ms) >= self.cutting.flush_ms
                || (period_of(q.newest_ts, self.cutting.period_s) < period_now
                    && now_ms.saturating_sub(q.newest_ms) >= SETTLE_MS);
            if !due || self.backing_off(&q.target, &q.dest) {
                continue;
            }
            let (max, period) = (self.cutting.max_object_bytes, self.cutting.period_s);
            match self.wal.start_run(&q.target, &q.dest, max, period) {
                Ok(Some(run)) => written += usize::from(self.attempt(run)),
                Ok(None) => {}
                Err(e) => self.failed(&q.target, &q.dest, &ArchiveError::Buffer(e)),
            }
        }
        if written > 0 {
            // What is owed now, not as of the look before the runs.
            if let Ok(q) = self.wal.archive_queues() {
                self.publish(&q);
            }
        }
        written
    }

    fn backing_off(&self, target: &str, dest: &Destination) -> bool {
        self.backoff
            .get(&(target.to_string(), dest.clone()))
            .is_some_and(|b| Instant::now() < b.until)
    }

    /// Writes a run and finishes it; false on failure (noted, backed off).
    fn attempt(&mut self, run: ArchiveRun) -> bool {
        if self.backing_off(&run.target, &run.dest) {
            return false;
        }
        let ready = match self.targets.get(&run.target) {
            Some(t) => t.ready(&mut self.wal, &run.target, &self.buffer_id),
            None => Ok(()),
        };
        match ready
            .and_then(|()| self.write_run(&run))
            .and_then(|objects| {
                let deleted = self.wal.finish_run(run.id)?;
                Ok((objects, deleted))
            }) {
            Ok((objects, deleted)) => {
                log::debug!(
                    "archive: run {} of {}/{} (commits {}-{}) written as {objects} objects; {deleted} batches left the buffer",
                    run.id,
                    run.dest.db,
                    run.dest.rp,
                    run.first_seq,
                    run.last_seq
                );
                let key = (run.target.clone(), run.dest.clone());
                if self.backoff.remove(&key).is_some() {
                    log::info!(
                        "archive {} ({}/{}): writing again",
                        run.target,
                        run.dest.db,
                        run.dest.rp
                    );
                    if self.backoff.is_empty() {
                        self.stats.archiving.set_error(String::new());
                    }
                }
                true
            }
            Err(e) => {
                self.failed(&run.target, &run.dest, &e);
                false
            }
        }
    }

    /// The buffer could not be read: shown, tried again at the next look.
    fn buffer_failed(&self, e: &crate::wal::WalError) {
        let a = &self.stats.archiving;
        Archiving::add(&a.failures, 1);
        let msg = format!("archive: cannot read what is owed ({e}); trying again");
        log::warn!("{msg}");
        a.set_error(msg);
    }

    fn failed(&mut self, target: &str, dest: &Destination, e: &ArchiveError) {
        let a = &self.stats.archiving;
        Archiving::add(&a.failures, 1);
        let max = self.cutting.max_backoff;
        let key = (target.to_string(), dest.clone());
        let b = self.backoff.entry(key).or_insert(Backoff {
            until: Instant::now(),
            wait: Duration::from_millis(FIRST_BACKOFF_MS / 2),
        });
        b.wait = (b.wait * 2).min(max);
        b.until = Instant::now() + b.wait;
        let msg = format!(
            "archive {target} ({}/{}): {e}; nothing left the buffer, trying again in {}s",
            dest.db,
            dest.rp,
            b.wait.as_secs_f64().ceil()
        );
        log::warn!("{msg}");
        a.set_error(msg);
    }

    fn publish(&self, queues: &[crate::wal::ArchiveQueue]) {
        let a = &self.stats.archiving;
        let sum = |f: fn(&crate::wal::ArchiveQueue) -> u64| queues.iter().map(f).sum::<u64>();
        let oldest = queues.iter().map(|q| q.oldest_ms).min();
        let age_s = oldest.map_or(0, |o| {
            crate::clock::record_ms().saturating_sub(o).max(0) / 1_000
        });
        a.pending_batches
            .store(sum(|q| q.batches), Ordering::Relaxed);
        a.pending_points.store(sum(|q| q.points), Ordering::Relaxed);
        a.pending_bytes.store(sum(|q| q.bytes), Ordering::Relaxed);
        a.oldest_pending_s.store(age_s as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[path = "archiver_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "restore_tests.rs"]
mod restore_tests;
