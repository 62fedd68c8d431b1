//! The batcher and the commit thread: from the ring into the write-ahead buffer.
//!
//! The batcher runs on the executor. Whenever the ring holds points and the
//! commit pipeline has room, it cuts everything waiting (up to
//! `max_batch_size` points) into one cut — one batch per destination — and
//! hands it to the commit thread, which commits it in one transaction and then
//! completes every request in it. While a commit (an fsync) is in flight, new
//! requests pile up in the ring and go into the next commit together: batches
//! grow with load and stay small and prompt when it is quiet (group commit),
//! with no timer to tune (`adaptive_batching.enabled: true`, the default).
//!
//! With `enabled: false` it is a fixed batcher, kept for comparison: it cuts
//! when `min_batch_size` points wait or the oldest has waited `max_wait_ms`
//! (producers wait for that cut too).
//!
//! Contract: a request's ack is sent only after [`Wal::commit`] returned for
//! the cut holding all of its points; a refused commit refuses every request in
//! it, and nothing of a refused commit is stored.

use crate::batch::adaptive::{CutPolicy, Decision, Load, RateMeter, decide};
use crate::batch::ring::{AckSender, Entry, Refusal, Ring};
use crate::batch::warm::WarmTier;
use crate::observe::stats::Stats;
use crate::wal::doorbell::Doorbell;
use crate::wal::{NewBatch, Wal};
use smol::channel::{Receiver, Sender};
use smol::lock::{Semaphore, SemaphoreGuardArc};
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Cuts that may be queued or committing at once: one committing while the
/// next is cut keeps the commit thread busy; more would only hold memory.
pub const COMMIT_PIPELINE_DEPTH: usize = 2;

/// A cut on its way to the commit thread.
pub struct Cut {
    pub batches: Vec<NewBatch>,
    /// Per batch: restored from an archive (`Entry::restored`).
    pub restored: Vec<bool>,
    acks: Vec<AckSender>,
    _permit: SemaphoreGuardArc,
}

/// Groups ring entries by destination (and whether restored from an
/// archive), keeping commit order within each. A group's first entry lends
/// its buffer to the batch, grown once to the final size: a cut of one
/// request per destination copies nothing.
fn cut(entries: Vec<Entry>, permit: SemaphoreGuardArc) -> Cut {
    let mut totals: Vec<(&crate::route::dest::Destination, bool, usize)> = Vec::new();
    for e in &entries {
        match totals
            .iter_mut()
            .find(|(d, r, _)| **d == e.dest && *r == e.restored)
        {
            Some((_, _, n)) => *n += e.payload.len(),
            None => totals.push((&e.dest, e.restored, e.payload.len())),
        }
    }
    let totals: Vec<usize> = totals.into_iter().map(|(_, _, n)| n).collect();
    let mut batches: Vec<NewBatch> = Vec::with_capacity(totals.len());
    let mut restored: Vec<bool> = Vec::with_capacity(totals.len());
    let mut acks = Vec::new();
    for e in entries {
        if let Some(ack) = e.ack {
            acks.push(ack);
        }
        let at =
            (batches.iter().zip(&restored)).position(|(b, r)| b.dest == e.dest && *r == e.restored);
        match at.and_then(|i| batches.get_mut(i)) {
            Some(b) => {
                b.payload.extend_from_slice(&e.payload);
                b.points += e.points;
                b.first_ts = b.first_ts.min(e.min_ts);
                b.last_ts = b.last_ts.max(e.max_ts);
            }
            None => {
                let mut payload = e.payload;
                payload.reserve_exact(totals[batches.len()] - payload.len());
                restored.push(e.restored);
                batches.push(NewBatch {
                    dest: e.dest,
                    points: e.points,
                    first_ts: e.min_ts,
                    last_ts: e.max_ts,
                    payload,
                });
            }
        }
    }
    Cut {
        batches,
        restored,
        acks,
        _permit: permit,
    }
}

/// Executor-side state shared by the listeners and the batcher.
pub struct Intake {
    pub ring: RefCell<Ring>,
    doorbell: (Sender<()>, Receiver<()>),
    stopping: Cell<bool>,
    rate: RefCell<RateMeter>,
    /// When to cut; a reload may change it.
    policy: Cell<CutPolicy>,
    stats: Arc<Stats>,
}

impl Intake {
    pub fn new(ring_bytes: usize, policy: CutPolicy, stats: Arc<Stats>) -> Intake {
        Intake {
            ring: RefCell::new(Ring::new(ring_bytes)),
            doorbell: smol::channel::bounded(1),
            stopping: Cell::new(false),
            rate: RefCell::new(RateMeter::new(Instant::now())),
            policy: Cell::new(policy),
            stats,
        }
    }

    /// Offers the entries of one write to the ring, all or none; gives them
    /// back if the ring is full.
    pub fn push(&self, entries: Vec<Entry>) -> Result<(), Vec<Entry>> {
        let points = entries.iter().map(|e| e.points).sum();
        self.ring.borrow_mut().push_all(entries)?;
        self.rate.borrow_mut().record(points, Instant::now());
        let _ = self.doorbell.0.try_send(());
        Ok(())
    }

    /// Wakes the batcher from another thread (the commit thread, when a
    /// commit ends).
    pub fn waker(&self) -> Sender<()> {
        self.doorbell.0.clone()
    }

    /// New batching knobs, from the next cut on.
    pub fn set_policy(&self, policy: CutPolicy) {
        self.policy.set(policy);
        let _ = self.doorbell.0.try_send(());
    }

    /// Stop: the batcher drains what the ring holds, then ends.
    pub fn stop(&self) {
        self.stopping.set(true);
        let _ = self.doorbell.0.try_send(());
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    /// The load the batcher decides on, also published for `/metrics`.
    fn load(&self) -> Load {
        let rate = self.rate.borrow().rate(Instant::now());
        self.stats
            .ingest_rate
            .store(rate as u64, std::sync::atomic::Ordering::Relaxed);
        Load {
            committing: self
                .stats
                .commits_in_flight
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0,
            rate_points_per_s: rate,
            commit_latency: Duration::from_micros(
                self.stats
                    .commit_latency_ewma_us
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
        }
    }
}

/// Runs until stopped and the ring is empty. Dropping `to_commit` at the end
/// lets the commit thread finish.
pub async fn run_batcher(intake: &Intake, to_commit: Sender<Cut>) {
    let permits = Arc::new(Semaphore::new(COMMIT_PIPELINE_DEPTH));
    loop {
        let policy = intake.policy.get();
        if intake.ring.borrow().is_empty() {
            if intake.stopping.get() {
                break;
            }
            if intake.doorbell.1.recv().await.is_err() {
                break;
            }
            continue;
        }
        if !intake.stopping.get() {
            let (points, age) = {
                let ring = intake.ring.borrow();
                (ring.points(), ring.oldest_age())
            };
            if let Decision::Wait(d) = decide(&policy, &intake.load(), points, age) {
                let more = async {
                    let _ = intake.doorbell.1.recv().await;
                };
                let due = async {
                    smol::Timer::after(d).await;
                };
                smol::future::or(more, due).await;
                continue;
            }
        }
        let permit = permits.acquire_arc().await;
        let entries = intake.ring.borrow_mut().take(policy.max_points);
        intake
            .stats
            .commits_in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if to_commit.send(cut(entries, permit)).await.is_err() {
            log::error!("commit thread is gone; refusing further writes");
            break;
        }
    }
}

/// Starts the commit thread: it owns the writing connection.
/// `warm`: the downsampling windows, fed after each commit and checkpointed
/// on their interval (between cuts too) and when the cuts end.
pub fn spawn_committer(
    mut wal: Wal,
    cuts: Receiver<Cut>,
    stats: Arc<Stats>,
    forwarder: Arc<Doorbell>,
    batcher: Sender<()>,
    mut warm: Option<WarmTier>,
    mut cold: Option<super::cold::ColdTier>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("hissrv-commit".into())
        .spawn(move || {
            let mut provisional = super::restamp::Provisional::default();
            loop {
                let mut cut = match next_cut(&cuts, warm.as_ref().and_then(WarmTier::due_in)) {
                    Next::Cut(cut) => cut,
                    Next::Due => {
                        if let Some(w) = warm.as_mut() {
                            w.checkpoint(&mut wal, &stats, &forwarder);
                        }
                        continue;
                    }
                    Next::Closed => break,
                };
                // The wall clock was set after a start without it: what this
                // run stamped before goes to the final frame, a chunk per
                // cut, before the next stamp (this thread alone stamps).
                if !provisional.is_empty()
                    && let Some(r) = crate::clock::restamp()
                {
                    provisional.restamp_some(&mut wal, r);
                }
                let stamped_provisionally = crate::clock::record_is_provisional();
                let points: usize = cut.batches.iter().map(|b| b.points).sum();
                let started = std::time::Instant::now();
                // The archive each batch owes, batches split where they
                // mix archives (before the windows' duties: those are per
                // stored batch).
                let owed = match cold.as_mut() {
                    Some(c) => {
                        let (batches, owed) =
                            c.split(std::mem::take(&mut cut.batches), &mut cut.restored);
                        cut.batches = batches;
                        owed
                    }
                    None => Vec::new(),
                };
                // No reserve, no new data: it could wedge the next full disk.
                // Restored points are not counted by the windows again
                // (second review: a span restored within max_lateness
                // was counted twice).
                let duties = warm.as_mut().map(|w| w.duties(&cut.batches, &cut.restored));
                let splits = (duties.as_ref())
                    .map(|d| WarmTier::splits(&cut.batches, d))
                    .unwrap_or_default();
                let committed = if stats.disk_reserve_missing.load(Ordering::Acquire) {
                    Err(crate::wal::WalError::ReserveMissing)
                } else {
                    match &duties {
                        Some(d) => wal.commit_with_duty_split(&cut.batches, d, &splits, &owed),
                        None if !owed.is_empty() => {
                            wal.commit_with_duty_split(&cut.batches, &[], &[], &owed)
                        }
                        None => wal.commit(&cut.batches),
                    }
                };
                // What the windows are fed once the producers have their
                // answer (the feed is in no ack's path; a crash before it
                // replays the batch: it carries its duty).
                let to_feed = match (&committed, &duties) {
                    (Ok(ids), Some(d)) => Some((ids.clone(), wal.last_commit_seq(), d.clone())),
                    _ => None,
                };
                if stamped_provisionally && let Ok(ids) = &committed {
                    provisional.committed(ids);
                }
                let seq = committed.as_ref().ok().map(|_| wal.last_commit_seq());
                // Only a commit that ran tells: a refusal for another reason
                // says nothing of the file system.
                let read_only = match &committed {
                    Ok(_) => Some(false),
                    Err(crate::wal::WalError::ReadOnly { .. }) => Some(true),
                    Err(_) => None,
                };
                if let Some(ro) = read_only
                    && ro != stats.buffer_read_only.swap(ro, Ordering::AcqRel)
                {
                    if ro {
                        log::error!(
                            "the buffer's file system turned read-only: writes are refused and deliveries paused until it is writable again"
                        );
                    } else {
                        log::info!("the buffer is writable again: writes accepted");
                    }
                }
                let result = committed.map(|_| ()).map_err(|e| {
                    log::warn!("commit of {points} points refused: {e}");
                    match e {
                        crate::wal::WalError::ReadOnly { .. } => {
                            Stats::add(&stats.read_only_refusals, 1)
                        }
                        _ => Stats::add(&stats.storage_full_refusals, 1),
                    }
                    stats.set_error(e.to_string());
                    Refusal::Storage(e)
                });
                let took = started.elapsed();
                stats.commit_duration.observe(took.as_secs_f64());
                stats.observe_commit_latency(took);
                if let Some(seq) = seq {
                    for b in &cut.batches {
                        stats.batch_size.observe(b.points as f64);
                    }
                    Stats::add(&stats.points_committed, points);
                    Stats::add(&stats.batches_committed, cut.batches.len());
                    Stats::add(&stats.bytes_committed, wal.last_commit_bytes() as usize);
                    // The backlog shows the commit before its producers hear of it.
                    stats.backlog.committed(
                        seq,
                        crate::observe::backlog::Delta {
                            points: points as i64,
                            batches: cut.batches.len() as i64,
                            bytes: wal.last_commit_bytes() as i64,
                        },
                        crate::clock::record_ms().max(1),
                    );
                    forwarder.ring_for(cut.batches.iter().map(|b| &b.dest));
                }
                for ack in &cut.acks {
                    let _ = ack.try_send(result.clone());
                }
                if let (Some((ids, seq, d)), Some(w)) = (to_feed, warm.as_mut()) {
                    w.fed(&cut.batches, &ids, seq, &d, &splits, &stats);
                }
                drop(splits);
                drop(cut);
                stats
                    .commits_in_flight
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                // The batcher may be gathering until this commit ended.
                let _ = batcher.try_send(());
                if let Some(w) = warm.as_mut()
                    && w.due_in() == Some(Duration::ZERO)
                {
                    w.checkpoint(&mut wal, &stats, &forwarder);
                }
            }
            // The cuts ended (shutdown): save what the windows counted.
            if let Some(w) = warm.as_mut()
                && w.due_in().is_some()
            {
                w.checkpoint(&mut wal, &stats, &forwarder);
            }
            log::debug!("commit thread done");
        })
}

enum Next {
    Cut(Cut),
    /// The warm tier's checkpoint is due.
    Due,
    Closed,
}

/// The next cut, or `Due` once `due_in` passed without one.
fn next_cut(cuts: &Receiver<Cut>, due_in: Option<Duration>) -> Next {
    let Some(wait) = due_in else {
        return cuts.recv_blocking().map_or(Next::Closed, Next::Cut);
    };
    if wait.is_zero() {
        return Next::Due;
    }
    // Parked by the clock, not a reactor timer (`timed_recv`).
    match super::timed_recv::recv_until(cuts, Instant::now() + wait) {
        Ok(Some(cut)) => Next::Cut(cut),
        Ok(None) => Next::Due,
        Err(_) => Next::Closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::dest::Destination;

    fn entry(db: &str, payload: &str, ts: i64) -> Entry {
        Entry {
            dest: Destination {
                db: db.into(),
                rp: String::new(),
            },
            points: payload.lines().count(),
            min_ts: ts,
            max_ts: ts,
            payload: payload.as_bytes().to_vec(),
            ack: None,
            arrived: std::time::Instant::now(),
            restored: false,
        }
    }

    #[test]
    fn a_cut_makes_one_batch_per_destination_in_arrival_order() {
        let permits = Arc::new(Semaphore::new(1));
        let permit = permits.try_acquire_arc().unwrap();
        let c = cut(
            vec![
                entry("a", "m v=1 1\n", 1),
                entry("b", "m v=2 2\n", 2),
                entry("a", "m v=3 3\nm v=4 4\n", 3),
            ],
            permit,
        );
        assert_eq!(c.batches.len(), 2);
        let a = &c.batches[0];
        assert_eq!(a.payload, b"m v=1 1\nm v=3 3\nm v=4 4\n");
        assert_eq!((a.points, a.first_ts, a.last_ts), (3, 1, 3));
        assert_eq!(c.batches[1].payload, b"m v=2 2\n");
        assert!(permits.try_acquire().is_none(), "the cut holds its permit");
        drop(c);
        assert!(
            permits.try_acquire().is_some(),
            "and frees it once committed"
        );
    }
}
