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
//! timestamps): one object per period. At most `OPEN_OBJECTS_MAX` objects
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
use super::object::{MULTILINE_SUFFIX, Manifest, OBJECT_SUFFIX, object_name, period_of};
use super::part::PartFile;
use super::target::Target;
use crate::config::Lifecycle;
use crate::observe::archiving::Archiving;
use crate::observe::stats::Stats;
use crate::route::dest::Destination;
use crate::wal::{ArchiveRun, Wal};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the archiver looks at what is owed: one grouped query.
const POLL_MS: u64 = 1_000;
/// How long a destination's batches must have stopped coming before a
/// period that ended is written (see the module doc).
const SETTLE_MS: i64 = 5_000;
/// Gzip streams open at once while a run is written (~300 KiB each).
const OPEN_OBJECTS_MAX: usize = 16;
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
    wal: Wal,
    targets: BTreeMap<String, Target>,
    cutting: Cutting,
    buffer_id: String,
    stats: Arc<Stats>,
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
        keys: &super::s3::LiveKeys,
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

    /// Writes a run's objects, one per period its points fall in; returns
    /// how many.
    pub fn write_run(&mut self, run: &ArchiveRun) -> Result<usize, ArchiveError> {
        let target = self
            .targets
            .get(&run.target)
            .ok_or_else(|| ArchiveError::Io {
                what: format!("find target {}", run.target),
                source: std::io::Error::other("no rule names it"),
            })?;
        let p = run.period_s;
        // The periods the batches' ranges span, when few; else those their
        // points are really in (one more read).
        let mut spans = BTreeSet::new();
        let mut few = true;
        for b in &run.batches {
            let (lo, hi) = (period_of(b.first_ts, p), period_of(b.last_ts, p));
            if hi.saturating_sub(lo) >= OPEN_OBJECTS_MAX as i64
                || spans.len() > 4 * OPEN_OBJECTS_MAX
            {
                few = false;
                break;
            }
            spans.extend(lo..=hi);
        }
        let periods: Vec<i64> = if few {
            spans.into_iter().collect()
        } else {
            let mut seen = BTreeSet::new();
            for b in &run.batches {
                if let Some(lines) = self.wal.run_batch_lines(b.id)? {
                    for line in crate::lineproto::lines(&lines) {
                        seen.insert(period_of(
                            crate::lineproto::line_ts(line).unwrap_or(b.first_ts),
                            p,
                        ));
                    }
                }
            }
            seen.into_iter().collect()
        };
        let mut objects = 0;
        let mut undecodable = BTreeSet::new();
        for group in periods.chunks(OPEN_OBJECTS_MAX) {
            let (lo, hi) = match (group.first(), group.last()) {
                (Some(lo), Some(hi)) => (*lo, *hi),
                _ => continue,
            };
            // Per period: the object and, for points holding a line break,
            // its sidecar.
            let mut open: BTreeMap<i64, (PartFile, Option<PartFile>)> = BTreeMap::new();
            for b in &run.batches {
                if period_of(b.last_ts, p) < lo || period_of(b.first_ts, p) > hi {
                    continue;
                }
                let Some(lines) = self.wal.run_batch_lines(b.id)? else {
                    undecodable.insert(b.id);
                    continue;
                };
                // The common case: one period, no line break inside a line
                // (as many newlines as lines the parser's scan finds): the
                // whole payload at once.
                let one = period_of(b.first_ts, p);
                let in_one = one == period_of(b.last_ts, p) && group.contains(&one);
                let n = if in_one {
                    crate::lineproto::lines(&lines).count()
                } else {
                    0
                };
                let whole = in_one
                    && lines.ends_with(b"\n")
                    && lines.iter().filter(|&&c| c == b'\n').count() == n;
                if whole {
                    let name = object_name(
                        &run.dest.db,
                        &run.dest.rp,
                        one,
                        p,
                        &self.buffer_id,
                        (run.first_seq, run.last_seq),
                    );
                    let (main, _) = match open.entry(one) {
                        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::btree_map::Entry::Vacant(v) => {
                            v.insert((target.begin(&name, &run.dest.db, &run.dest.rp)?, None))
                        }
                    };
                    main.payload(&lines, n as u64, b.first_ts, b.last_ts)?;
                    continue;
                }
                for line in crate::lineproto::lines(&lines) {
                    let ts = crate::lineproto::line_ts(line).unwrap_or(b.first_ts);
                    let period = period_of(ts, p);
                    if !group.contains(&period) {
                        continue;
                    }
                    let name = || {
                        object_name(
                            &run.dest.db,
                            &run.dest.rp,
                            period,
                            p,
                            &self.buffer_id,
                            (run.first_seq, run.last_seq),
                        )
                    };
                    let (main, side) = match open.entry(period) {
                        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::btree_map::Entry::Vacant(v) => {
                            let o = target.begin(&name(), &run.dest.db, &run.dest.rp)?;
                            v.insert((o, None))
                        }
                    };
                    if !line.contains(&b'\n') {
                        main.line(line, ts)?;
                        continue;
                    }
                    if side.is_none() {
                        let n = name();
                        let stem = n.strip_suffix(OBJECT_SUFFIX).unwrap_or(&n);
                        let side_name = format!("{stem}{MULTILINE_SUFFIX}");
                        *side = Some(target.begin(&side_name, &run.dest.db, &run.dest.rp)?);
                    }
                    if let Some(side) = side.as_mut() {
                        side.line(line, ts)?;
                    }
                }
            }
            for (period, (o, side)) in open {
                let name = o.name().to_string();
                // The sidecar first: the manifest, last, says both are there.
                let side = side.map(|s| target.confirm(s)).transpose()?;
                let multiline = side.as_ref().map_or(0, |s| s.points);
                let mut w = target.confirm(o)?;
                // The manifest's range covers the sidecar's points too: a
                // restore by time finds them (second review).
                if let Some(s) = &side {
                    w.first_ts = w.first_ts.min(s.first_ts);
                    w.last_ts = w.last_ts.max(s.last_ts);
                }
                let start_ns = period
                    .saturating_mul(p as i64)
                    .saturating_mul(1_000_000_000);
                target.put_manifest(&Manifest {
                    object: name,
                    database: run.dest.db.clone(),
                    retention_policy: run.dest.rp.clone(),
                    points: w.points,
                    first_ts: w.first_ts,
                    last_ts: w.last_ts,
                    first: crate::clock::rfc3339(w.first_ts),
                    last: crate::clock::rfc3339(w.last_ts),
                    period_start: crate::clock::rfc3339(start_ns),
                    period_s: p,
                    bytes: w.bytes,
                    sha256: w.sha256,
                    multiline_points: multiline,
                    buffer: self.buffer_id.clone(),
                    first_seq: run.first_seq,
                    last_seq: run.last_seq,
                    format: "influx -import -compressed -precision ns".into(),
                })?;
                if w.existed {
                    // Written before a crash, counted then.
                    continue;
                }
                let a = &self.stats.archiving;
                Archiving::add(&a.objects, 1);
                Archiving::add(&a.points, w.points);
                Archiving::add(&a.bytes, w.bytes);
                objects += 1;
            }
        }
        if !undecodable.is_empty() {
            Archiving::add(&self.stats.archiving.undecodable, undecodable.len() as u64);
            log::error!(
                "archive: {} batches of {}/{} no longer decode; not archived (the forwarder keeps them raw as dead letters)",
                undecodable.len(),
                run.dest.db,
                run.dest.rp
            );
        }
        Ok(objects)
    }
}

#[cfg(test)]
#[path = "archiver_tests.rs"]
mod tests;
