//! The warm tier's pace on the commit thread: which batches of a cut are
//! committed with a downsampling duty, the windows fed once the commit
//! returned, and a checkpoint every `lifecycle.checkpoint_interval` after
//! the first feed since the last one, and at shutdown (`downsampler.rs` is
//! what each step does; this file is when).
//!
//! Invariants:
//! - the windows are fed only what a commit stored, after it returned, in
//!   commit order (a refused commit's producer retries: counting it now
//!   would count it twice);
//! - a checkpoint covers the last commit fed, never one not yet fed (this
//!   thread alone commits raw batches, and feeds each before the next);
//! - a checkpoint whose write failed leaves the buffer as it was, and the
//!   windows are rebuilt from it (`Downsampler::rebuild`): computing the
//!   checkpoint took the emitted lines and marked the sets saved, so the
//!   windows in memory no longer say what the next one must write.
//!
//! Emitted aggregates are committed batches like any: the backlog gauges
//! and the forwarder hear of them as of a commit.

use super::downsampler::Downsampler;
use crate::config::Lifecycle;
use crate::lineproto::split_lines::SplitLines;
use crate::observe::backlog::Delta;
use crate::observe::downsampling::Counts;
use crate::observe::stats::Stats;
use crate::route::lifecycle::WarmDestinations;
use crate::wal::doorbell::Doorbell;
use crate::wal::{NewBatch, Wal};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Fields a cut's shared splits may hold together: each takes 40 bytes
/// (a name slice and a value), so 10 MiB at most on the commit thread
/// beside the codec's columns (a review measured 99 MiB for one 8 MiB body
/// of short fields without a bound).
pub const SHARED_SPLIT_MAX_FIELDS: usize = 262_144;

pub struct WarmTier {
    ds: Downsampler,
    lifecycle: Lifecycle,
    interval: Duration,
    /// When the first feed since the last checkpoint happened: `None`,
    /// nothing to save.
    dirty_since: Option<Instant>,
    /// The engine's counts last published to the stats.
    published: Counts,
    /// The windows could not be made to say what the buffer holds (it
    /// cannot be read): until a restart, batches are committed with their
    /// duty but not fed, and no checkpoint discharges anything, so the next
    /// start replays them all. Raw batches are held meanwhile.
    suspended: bool,
    /// Where the forwarder learns the warm destinations.
    registry: Arc<WarmDestinations>,
}

/// The windows as the buffer has them: the last checkpoint, then the owed
/// batches replayed (`Downsampler::rebuild`). Saved windows that cannot be
/// read are logged, marked for deletion at the next checkpoint (so they do
/// not fail every start after; a part holding a row no read can take is
/// deleted at once, `Wal::reset_damaged_windows`), and the windows start
/// empty with the owed batches replayed: the raw points are all still delivered, only the
/// aggregates of windows open at the damage come out short. `Err` when the
/// owed batches cannot be read either: the windows would not say what the
/// buffer holds.
fn load(l: &Lifecycle, wal: &mut Wal, stats: &Stats) -> Result<Downsampler, String> {
    match wal.repair_damaged_duties() {
        Ok(0) => {}
        Ok(n) => log::error!(
            "downsampling: {n} owed batches had a commit number that cannot be read; replayed last"
        ),
        // Suspended: a duty left unrepaired fails the replay, not skipped
        // there and then discharged by a checkpoint unfed (third review).
        Err(e) => return Err(format!("the owed batches cannot be checked: {e}")),
    }
    let ds = load_windows(l, wal, stats)?;
    if ds.lost_windows {
        forget_whole(wal)?;
    }
    Ok(ds)
}

/// Unmarks the batches `degrade` may take (their windows are gone); an
/// error when it cannot, so the caller suspends the tier.
fn forget_whole(wal: &mut Wal) -> Result<(), String> {
    match wal.forget_whole() {
        Ok(0) => Ok(()),
        Ok(n) => {
            log::warn!(
                "downsampling: saved windows dropped: {n} raw batches they held are no longer degradable"
            );
            Ok(())
        }
        Err(e) => Err(format!("cannot unmark degradable batches: {e}")),
    }
}

fn load_windows(l: &Lifecycle, wal: &mut Wal, stats: &Stats) -> Result<Downsampler, String> {
    let mut e = match Downsampler::rebuild(l, wal) {
        Ok(Some(ds)) => return Ok(ds),
        Ok(None) => return Err("no downsampling rule".into()),
        Err(e) => e,
    };
    // A saved row no read can take fails every start alike, and cannot be
    // named to be deleted alone: the part it is in goes, and the rest is
    // restored again (found in review: the windows started empty at every
    // start, keys were made with a secret of 0, and batches marked whole
    // stayed marked though their windows were lost, for `degrade` to
    // delete). A read failing otherwise deletes nothing: the tier is
    // suspended until a restart.
    let damaged = (wal.reset_damaged_windows())
        .map_err(|e| format!("the saved windows cannot be read ({e})"))?;
    if damaged.any() {
        let msg = format!(
            "downsampling: saved rows that cannot be read ({e}); deleted: {damaged}{}",
            if damaged.windows {
                "; the windows start empty"
            } else {
                ""
            }
        );
        log::error!("{msg}");
        stats.set_error(msg);
        e = match Downsampler::rebuild(l, wal) {
            Ok(Some(mut ds)) => {
                ds.lost_windows |= damaged.windows;
                return Ok(ds);
            }
            Ok(None) => return Err("no downsampling rule".into()),
            Err(e) => e,
        };
    }
    let msg = format!("downsampling: the saved windows cannot be read ({e}); starting them empty");
    log::error!("{msg}");
    stats.set_error(msg);
    let mut ds = Downsampler::from_config(l).ok_or("no downsampling rule")?;
    // Sets that do not decode: deleted at the next checkpoint. Read again
    // here, where the first read passed: a failure now is not damage.
    let saved =
        (wal.saved_windows()).map_err(|e| format!("the saved windows cannot be read ({e})"))?;
    ds.discard_saved(&saved);
    wal.replay_duties(|owed, dest, lines| ds.feed_batch(owed, dest, lines, None))
        .map_err(|e| format!("the owed batches cannot be read: {e}"))?;
    Ok(ds)
}

impl WarmTier {
    /// The windows the last run left (`load`); `None` when no rule
    /// downsamples, after clearing what an earlier run's rules left in the
    /// buffer (`Wal::clear_custody`): nothing would ever discharge it.
    /// Windows that cannot be loaded leave the tier suspended (see
    /// `suspended`).
    pub fn start(
        l: &Lifecycle,
        wal: &mut Wal,
        stats: &Stats,
        registry: Arc<WarmDestinations>,
    ) -> Option<WarmTier> {
        let Some(fresh) = Downsampler::from_config(l) else {
            match wal.clear_custody() {
                Ok(0) => {}
                Ok(n) => log::warn!(
                    "downsampling: no rule any more; {n} rows of the last run's windows and held batches cleared"
                ),
                Err(e) => log::error!("downsampling: cannot clear the last run's windows: {e}"),
            }
            return None;
        };
        let (mut ds, suspended) = match load(l, wal, stats) {
            Ok(ds) => (ds, false),
            Err(e) => {
                let msg = format!(
                    "downsampling suspended until a restart: {e}; raw batches are committed with their duty and kept for the next start"
                );
                log::error!("{msg}");
                stats.set_error(msg);
                let _ = wal.forget_whole();
                (fresh, true)
            }
        };
        ds.set_registry(registry.clone());
        let interval = Duration::from_secs(
            l.checkpoint_interval_s()
                .unwrap_or(crate::config::DEFAULT_CHECKPOINT_INTERVAL_S),
        );
        let d = &stats.downsampling;
        d.enabled.store(true, Relaxed);
        d.max_open_windows.store(l.max_open_windows as u64, Relaxed);
        d.open_windows.store(ds.open_windows() as u64, Relaxed);
        log::info!(
            "downsampling: {} rules; {} field windows open after the restore; checkpoints every {}s",
            l.rules.iter().filter(|r| !r.downsample.is_empty()).count(),
            ds.open_windows(),
            interval.as_secs()
        );
        Some(WarmTier {
            published: counts(&ds),
            // Replayed batches owe a checkpoint as much as fed ones.
            dirty_since: (!suspended).then(Instant::now),
            ds,
            lifecycle: l.clone(),
            interval,
            suspended,
            registry,
        })
    }

    /// Per batch of a cut: does a rule take any of its lines? Never one
    /// `restored[i]` from an archive: its points were counted when they
    /// first came (second review: a span restored within `max_lateness`
    /// was counted twice).
    pub fn duties(&mut self, batches: &[NewBatch], restored: &[bool]) -> Vec<bool> {
        (batches.iter().enumerate())
            .map(|(i, b)| !restored.get(i).copied().unwrap_or(false) && self.ds.takes(&b.payload))
            .collect()
    }

    /// The batches with a duty, split once for the codec and the feed,
    /// while their fields fit `SHARED_SPLIT_MAX_FIELDS` together; the
    /// others are split line by line by each (no arena).
    pub fn splits<'a>(batches: &'a [NewBatch], duties: &[bool]) -> Vec<Option<SplitLines<'a>>> {
        let mut budget = SHARED_SPLIT_MAX_FIELDS;
        (batches.iter().zip(duties))
            .map(|(b, &d)| {
                if !d {
                    return None;
                }
                let s = SplitLines::of_at_most(&b.payload, budget)?;
                budget = budget.saturating_sub(s.fields.len());
                Some(s)
            })
            .collect()
    }

    /// After the commit `seq` of `batches` (given `ids`) returned: counts
    /// the ones with a duty.
    pub fn fed(
        &mut self,
        batches: &[NewBatch],
        ids: &[i64],
        seq: i64,
        duties: &[bool],
        splits: &[Option<SplitLines>],
        stats: &Stats,
    ) {
        if self.suspended {
            return;
        }
        let mut any = false;
        for (i, ((b, id), _)) in
            (batches.iter().zip(ids).zip(duties).enumerate()).filter(|(_, (_, d))| **d)
        {
            let split = splits.get(i).and_then(Option::as_ref);
            self.ds.feed_batch((*id, seq), &b.dest, &b.payload, split);
            any = true;
        }
        if any {
            self.dirty_since.get_or_insert_with(Instant::now);
            self.publish(stats);
        }
    }

    /// How long until a checkpoint is due; `None`: nothing to save.
    pub fn due_in(&self) -> Option<Duration> {
        let since = self.dirty_since?;
        Some(self.interval.saturating_sub(since.elapsed()))
    }

    /// Closes what event time passed and saves the windows, covering the
    /// last commit; commits the emitted aggregates and rings for them.
    pub fn checkpoint(&mut self, wal: &mut Wal, stats: &Stats, forwarder: &Doorbell) {
        let c = self.ds.checkpoint(wal.last_commit_seq());
        let points: usize = c.emitted.iter().map(|b| b.points).sum();
        match wal.checkpoint_windows(&c) {
            Ok(ids) => {
                self.dirty_since = None;
                Stats::add(&stats.downsampling.checkpoints, 1);
                if !ids.is_empty() {
                    Stats::add(&stats.downsampling.points_committed, points);
                    stats.backlog.committed(
                        wal.last_commit_seq(),
                        Delta {
                            points: points as i64,
                            batches: ids.len() as i64,
                            bytes: wal.last_commit_bytes() as i64,
                        },
                        crate::clock::record_ms().max(1),
                    );
                    forwarder.ring_for(c.emitted.iter().map(|b| &b.dest));
                }
                self.publish(stats);
            }
            Err(e) => {
                Stats::add(&stats.downsampling.checkpoint_failures, 1);
                let msg = format!("downsampling: checkpoint not written ({e}); trying again");
                log::warn!("{msg}");
                stats.set_error(msg);
                // Try again a whole interval later, from the buffer's truth.
                self.dirty_since = Some(Instant::now());
                match load(&self.lifecycle, wal, stats) {
                    Ok(mut ds) => {
                        ds.set_registry(self.registry.clone());
                        self.ds = ds;
                        // The replay's counts were published as they were fed.
                        self.published = counts(&self.ds);
                    }
                    Err(e) => {
                        let msg = format!("downsampling suspended until a restart: {e}");
                        log::error!("{msg}");
                        stats.set_error(msg);
                        let _ = wal.forget_whole();
                        self.suspended = true;
                        self.dirty_since = None;
                    }
                }
            }
        }
    }

    fn publish(&mut self, stats: &Stats) {
        let now = counts(&self.ds);
        stats.downsampling.add(self.published, now);
        self.published = now;
        (stats.downsampling.open_windows).store(self.ds.open_windows() as u64, Relaxed);
    }
}

fn counts(ds: &Downsampler) -> Counts {
    let c = ds.counts();
    Counts {
        counted: c.counted,
        repeats: c.repeats,
        late: c.late,
        full: c.full,
        type_conflicts: c.type_conflicts,
        emitted: c.emitted,
        re_emitted: c.re_emitted,
    }
}

#[cfg(test)]
#[path = "warm_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "damage_sim_tests.rs"]
mod damage_sim_tests;
