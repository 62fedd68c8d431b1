//! The backlog gauges (`/health`, `/metrics`): points, batches and bytes in
//! the buffer, and the age of the oldest, exact at every moment.
//!
//! `/health` must count a point as buffered as soon as its producer has its
//! 204, under any load. The commit thread adds each commit, the forwarder
//! subtracts each delete, and a periodic re-read of the buffer corrects any
//! drift (quarantined batches, for one). The re-read is a consistent snapshot
//! (one SQLite statement: totals and the buffer's commit sequence number,
//! `commit_seq`); commits newer than the snapshot are added back from a short
//! list of recent commits. So a re-read neither erases a commit nor counts
//! one twice, and it is never skipped under continuous ingest.
//!
//! ```text
//! commit (seq c):  lock; if c > snapshot_seq { totals += c; recent.push(c) }
//! delete:          lock; totals -= deleted
//! re-read (T, S):  lock; recent.retain(seq > S); totals = T + sum(recent);
//!                  snapshot_seq = S
//! ```
//! The sequence only grows (batch ids do not: SQLite reuses a deleted last
//! row's id), so "in the snapshot" is "seq <= S".

use portable_atomic::AtomicU64;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;

/// One commit's share of the totals.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delta {
    pub points: i64,
    pub batches: i64,
    pub bytes: i64,
}

#[derive(Debug, Default)]
struct Totals {
    now: Delta,
    /// Commit time (ms) of the oldest batch in the buffer; 0 = none.
    oldest_ms: i64,
    /// The commit sequence number the last re-read saw.
    snapshot_seq: i64,
    /// Commits newer than the last re-read: (sequence number, delta, commit ms).
    recent: VecDeque<(i64, Delta, i64)>,
}

/// The exact totals, and the atomics readers see.
#[derive(Debug, Default)]
pub struct BacklogGauges {
    totals: Mutex<Totals>,
    pub points: AtomicU64,
    pub batches: AtomicU64,
    pub bytes: AtomicU64,
    /// Commit time (ms since epoch) of the oldest undelivered batch; 0 = none.
    pub oldest_ms: AtomicU64,
}

/// What one consistent read of the buffer saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    pub totals: Delta,
    pub seq: i64,
    pub oldest_ms: Option<i64>,
}

impl BacklogGauges {
    fn publish(&self, t: &Totals) {
        let clamp = |v: i64| v.max(0) as u64;
        self.points.store(clamp(t.now.points), Relaxed);
        self.batches.store(clamp(t.now.batches), Relaxed);
        self.bytes.store(clamp(t.now.bytes), Relaxed);
        self.oldest_ms.store(clamp(t.oldest_ms), Relaxed);
    }

    /// Commit number `seq`, at `now_ms`.
    pub fn committed(&self, seq: i64, d: Delta, now_ms: i64) {
        let Ok(mut t) = self.totals.lock() else {
            return;
        };
        if seq > t.snapshot_seq {
            t.now.points = t.now.points.saturating_add(d.points);
            t.now.batches = t.now.batches.saturating_add(d.batches);
            t.now.bytes = t.now.bytes.saturating_add(d.bytes);
            if t.oldest_ms == 0 {
                t.oldest_ms = now_ms;
            }
            t.recent.push_back((seq, d, now_ms));
        }
        self.publish(&t);
    }

    /// Batches deleted (delivered, or set aside).
    pub fn deleted(&self, d: Delta) {
        let Ok(mut t) = self.totals.lock() else {
            return;
        };
        t.now.points = t.now.points.saturating_sub(d.points);
        t.now.batches = t.now.batches.saturating_sub(d.batches);
        t.now.bytes = t.now.bytes.saturating_sub(d.bytes);
        self.publish(&t);
    }

    /// A consistent re-read of the buffer (see the module doc).
    pub fn reread(&self, s: Snapshot) {
        let Ok(mut t) = self.totals.lock() else {
            return;
        };
        t.recent.retain(|(id, _, _)| *id > s.seq);
        let mut now = s.totals;
        for (_, d, _) in &t.recent {
            now.points = now.points.saturating_add(d.points);
            now.batches = now.batches.saturating_add(d.batches);
            now.bytes = now.bytes.saturating_add(d.bytes);
        }
        t.now = now;
        t.oldest_ms = s
            .oldest_ms
            .or_else(|| t.recent.front().map(|(_, _, ms)| *ms))
            .unwrap_or(0);
        t.snapshot_seq = t.snapshot_seq.max(s.seq);
        self.publish(&t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(points: i64) -> Delta {
        Delta {
            points,
            batches: 1,
            bytes: points * 10,
        }
    }

    #[test]
    fn a_reread_neither_erases_nor_double_counts_a_commit_whatever_the_interleaving() {
        // Commit 1 lands in the buffer before the snapshot, its gauge update
        // after: counted once.
        let g = BacklogGauges::default();
        g.reread(Snapshot {
            totals: d(5),
            seq: 1,
            oldest_ms: Some(100),
        });
        g.committed(1, d(5), 100);
        assert_eq!(g.points.load(Relaxed), 5);
        // Commit 2 updates the gauges, then a snapshot that does not see it
        // yet: kept.
        g.committed(2, d(3), 200);
        g.reread(Snapshot {
            totals: d(5),
            seq: 1,
            oldest_ms: Some(100),
        });
        assert_eq!(g.points.load(Relaxed), 8);
        // A snapshot that sees it: counted once, its entry dropped.
        g.reread(Snapshot {
            totals: Delta {
                points: 8,
                batches: 2,
                bytes: 80,
            },
            seq: 2,
            oldest_ms: Some(100),
        });
        assert_eq!((g.points.load(Relaxed), g.batches.load(Relaxed)), (8, 2));
        // Deletes subtract; a delete can run before its commit's update (the
        // totals go negative inside, readers see 0, then the right value).
        g.deleted(d(8));
        g.deleted(d(4));
        assert_eq!(g.points.load(Relaxed), 0);
        g.committed(3, d(4), 300);
        assert_eq!(
            g.points.load(Relaxed),
            0,
            "the early delete is accounted for"
        );
    }

    #[test]
    fn the_oldest_commit_time_comes_from_the_snapshot_or_the_recent_commits() {
        let g = BacklogGauges::default();
        g.committed(7, d(1), 500);
        assert_eq!(g.oldest_ms.load(Relaxed), 500);
        g.reread(Snapshot {
            totals: Delta::default(),
            seq: 6,
            oldest_ms: None,
        });
        assert_eq!(
            g.oldest_ms.load(Relaxed),
            500,
            "commit 7 is not in the snapshot"
        );
        g.reread(Snapshot {
            totals: Delta::default(),
            seq: 7,
            oldest_ms: None,
        });
        assert_eq!(g.oldest_ms.load(Relaxed), 0, "delivered: nothing is old");
    }
}
