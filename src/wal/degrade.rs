//! `buffer.when_full: degrade`: room made by deleting raw batches the warm
//! tier already holds, oldest first, before new writes would be refused.
//!
//! A batch may go only when a downsampling rule took every one of its lines
//! and every value was counted, and a checkpoint covers it: the checkpoint
//! that discharges its duty is the one that marks it in `downsample_whole`
//! (`custody.rs`), so a marked batch owes nothing. Its points then live on in
//! saved windows and emitted aggregates: the shape survives and only the
//! raw detail goes. A batch its cold archive has not confirmed yet
//! (`archive.rs`) stays: its raw detail is owed there. Data of no rule, a batch
//! with a late, refused or conflicting value, and the warm tier's own
//! aggregate batches are never degraded.
//!
//! Only the forwarder calls this (it alone deletes undelivered batches, and
//! must forget what it had read of them: its cached heads and read-ahead).

use super::{Wal, WalError};
use crate::route::dest::Destination;

/// What one degrade deleted of one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Degraded {
    pub dest: Destination,
    pub points: u64,
    pub batches: u64,
    /// Stored (encoded) bytes.
    pub bytes: u64,
}

impl Wal {
    /// How many bytes of live rows stand between a commit of `incoming`
    /// bytes and the quota now (`None`: none; free pages count as room).
    pub fn short_of_room(&self, incoming: u64) -> Result<Option<u64>, WalError> {
        Ok(self
            .over_quota(incoming)?
            .map(|o| o.short_of_live_room())
            .filter(|&short| short > 0))
    }

    /// Deletes the oldest degradable batches (see the module doc) until
    /// their stored bytes reach `bytes`, in one transaction; per destination,
    /// what went. Empty when nothing may go.
    pub fn degrade(&mut self, bytes: u64) -> Result<Vec<Degraded>, WalError> {
        self.degrade_once(bytes).map_err(|e| self.explain(e))
    }

    fn degrade_once(&mut self, bytes: u64) -> Result<Vec<Degraded>, WalError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut out: Vec<Degraded> = Vec::new();
        {
            let mut pick = tx.prepare_cached(
                "SELECT b.id, b.db, b.rp, b.points, b.bytes
                 FROM downsample_whole w JOIN batches b ON b.id = w.batch_id
                 WHERE NOT EXISTS (SELECT 1 FROM archive_duty a WHERE a.batch_id = b.id)
                 ORDER BY w.batch_id",
            )?;
            // Picked first, deleted after: rows are not deleted under a
            // statement still reading their table.
            let mut picked = Vec::new();
            let mut rows = pick.query([])?;
            let mut freed = 0u64;
            while freed < bytes
                && let Some(r) = rows.next()?
            {
                let stored = r.get::<_, i64>(4)?.max(0) as u64;
                freed = freed.saturating_add(stored);
                picked.push((
                    r.get::<_, i64>(0)?,
                    Destination {
                        db: r.get(1)?,
                        rp: r.get(2)?,
                    },
                    r.get::<_, i64>(3)?.max(0) as u64,
                    stored,
                ));
            }
            drop(rows);
            let mut delete = tx.prepare_cached("DELETE FROM batches WHERE id = ?1")?;
            for (id, dest, points, stored) in picked {
                delete.execute([id])?;
                match out.iter_mut().find(|d| d.dest == dest) {
                    Some(d) => {
                        d.points += points;
                        d.batches += 1;
                        d.bytes += stored;
                    }
                    None => out.push(Degraded {
                        dest,
                        points,
                        batches: 1,
                        bytes: stored,
                    }),
                }
            }
        }
        tx.commit()?;
        Ok(out)
    }
}
