//! The forwarder's view of the buffer: each destination's head, cached, and
//! the backlog gauges.
//!
//! # Heads
//! Every turn needs each destination's oldest batch. Re-reading them all per
//! turn cost three index lookups per destination (670 ms a turn with 20,000
//! made-up databases). Instead the forwarder keeps them: a commit's doorbell
//! names the destinations it reached (a new one costs one lookup; a known
//! one's head cannot change, commits only append), and a delivery re-reads
//! its own destination's head (one lookup). A full re-read happens at start,
//! after a read error, and every `HEADS_FULL_RELOAD_MS` as a safety net.
//!
//! # Gauges
//! Exact at every moment (`backlog`): commits add, deletes subtract, and the
//! re-read (a scan, spaced out by its cost) corrects drift without erasing or
//! double-counting a commit.

use crate::deliver::forward::Forwarder;
use crate::wal::{StoredBatch, WalError};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A full re-read of the heads this often, in case a ring was missed (and
/// to let go of destinations admitted for writes refused at commit).
const HEADS_FULL_RELOAD_MS: u64 = 60_000;
/// How often the backlog gauges are re-read from the buffer.
const BACKLOG_REFRESH_MS: u64 = 1_000;
/// The re-read may take at most 1/this of the forwarder's time: with
/// millions of batches it is spaced out instead of slowing delivery.
const BACKLOG_REFRESH_COST_FACTOR: u32 = 20;

impl Forwarder {
    /// Brings the cached heads up to date with what commits reached.
    pub(crate) fn update_heads(&mut self) -> Result<(), WalError> {
        let now = self.clock.now();
        if !self.heads_loaded || now >= self.heads_reload_at {
            // Taken first: a commit after the full read rings again.
            drop(self.bell.take_committed());
            let mark = self.destinations.mark();
            let all = self
                .wal
                .heads()
                .inspect_err(|_| self.heads_loaded = false)?;
            self.heads = all.into_iter().map(|(id, d)| (d, id)).collect();
            // Admitted before this read and not buffered: refused later.
            self.destinations.reconcile(self.heads.keys(), mark);
            self.heads_loaded = true;
            self.heads_reload_at = now + Duration::from_millis(HEADS_FULL_RELOAD_MS);
        }
        for d in self.bell.take_committed() {
            self.destinations.insert(&d);
            if self.heads.contains_key(&d) {
                continue;
            }
            match self.wal.head_of(&d) {
                Ok(Some(id)) => {
                    self.heads.insert(d, id);
                }
                Ok(None) => {}
                Err(e) => {
                    // This ring's list is lost: read everything again.
                    self.heads_loaded = false;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The heads, oldest first.
    pub(crate) fn sorted_heads(&self) -> Vec<(i64, crate::route::dest::Destination)> {
        let mut heads: Vec<_> = self.heads.iter().map(|(d, &id)| (id, d.clone())).collect();
        heads.sort_unstable_by_key(|(id, _)| *id);
        heads
    }

    /// Re-reads one destination's head after its batches were deleted; an
    /// emptied destination leaves the set ingest counts.
    pub(crate) fn reload_head(&mut self, dest: &crate::route::dest::Destination) {
        match self.wal.head_of(dest) {
            Ok(Some(id)) => {
                self.heads.insert(dest.clone(), id);
            }
            Ok(None) => {
                self.heads.remove(dest);
                self.destinations.release(dest);
            }
            Err(e) => {
                log::warn!("cannot read the head of {:?}: {e}", dest.bucket());
                self.heads_loaded = false;
            }
        }
    }

    /// Lowers the gauges by what a delete removed (`points`: before any
    /// expired line was set aside).
    pub(crate) fn deleted(&self, pack: &[StoredBatch], points: usize) {
        let bytes: usize = pack.iter().map(|b| b.stored_bytes).sum();
        self.stats.backlog.deleted(crate::observe::backlog::Delta {
            points: points as i64,
            batches: pack.len() as i64,
            bytes: bytes as i64,
        });
    }

    /// Re-reads the backlog totals from the buffer (see `backlog`).
    pub(crate) fn refresh_gauges(&mut self) {
        self.publish_failing();
        let started = Instant::now();
        let s = &self.stats;
        match self.wal.backlog() {
            Ok(b) => {
                s.backlog.reread(crate::observe::backlog::Snapshot {
                    totals: crate::observe::backlog::Delta {
                        points: b.points as i64,
                        batches: b.batches as i64,
                        bytes: b.payload_bytes as i64,
                    },
                    seq: b.commit_seq,
                    oldest_ms: b.oldest_created_ms,
                });
                s.dead_letters_stored
                    .store(b.dead_letters, Ordering::Relaxed);
            }
            Err(e) => log::warn!("cannot read the backlog: {e}"),
        }
        if let Ok(used) = self.wal.used_bytes() {
            s.buffer_bytes.store(used, Ordering::Relaxed);
        }
        s.buffer_disk_bytes
            .store(self.wal.disk_use().total(), Ordering::Relaxed);
        let cost = started.elapsed() * BACKLOG_REFRESH_COST_FACTOR;
        self.next_gauges = self.clock.now() + cost.max(Duration::from_millis(BACKLOG_REFRESH_MS));
    }
}
