//! What becomes of a batch the forwarder sent: deleted, with the lines the
//! upstream refused for good kept as dead letters, in one transaction (the
//! durability contract's **Delete**, `buffer`), or its failed attempt noted.

use super::{DeadLetter, StoredBatch, Wal, WalError, dead_letters};
use crate::clock::now_ms;
use rusqlite::params;

impl Wal {
    /// The upstream took these batches: delete them, and keep the lines it
    /// refused for good as dead letters, in one transaction. Returns how
    /// many old dead letters were pruned to stay within their quota.
    pub fn finish(
        &mut self,
        batches: &[StoredBatch],
        dead: &[DeadLetter],
    ) -> Result<u64, WalError> {
        self.finish_once(batches, dead).map_err(|e| self.explain(e))
    }

    fn finish_once(
        &mut self,
        batches: &[StoredBatch],
        dead: &[DeadLetter],
    ) -> Result<u64, WalError> {
        let quota = self.dead_letter_quota_bytes;
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO dead_letters (batch_id, db, rp, failed_ms, status, reason, line)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let now = now_ms();
            for d in dead {
                let (db, rp) = batches
                    .iter()
                    .find(|b| b.id == d.batch_id)
                    .map_or(("", ""), |b| (b.dest.db.as_str(), b.dest.rp.as_str()));
                insert.execute(params![d.batch_id, db, rp, now, d.status, d.reason, d.line])?;
            }
            // A batch the downsampling windows still owe a checkpoint is
            // kept, marked delivered (`custody`): the replay after a crash
            // needs its points; the checkpoint deletes it. So is one the
            // cold archive still owes (`archive`): its run deletes it.
            let mut delete = tx.prepare_cached(
                "DELETE FROM batches WHERE id = ?1
                 AND NOT EXISTS (SELECT 1 FROM downsample_duty WHERE batch_id = ?1)
                 AND NOT EXISTS (SELECT 1 FROM archive_duty WHERE batch_id = ?1)",
            )?;
            let mut held =
                tx.prepare_cached("UPDATE downsample_duty SET delivered = 1 WHERE batch_id = ?1")?;
            let mut archive_held =
                tx.prepare_cached("UPDATE archive_duty SET delivered = 1 WHERE batch_id = ?1")?;
            for b in batches {
                if delete.execute([b.id])? == 0 {
                    held.execute([b.id])?;
                    archive_held.execute([b.id])?;
                }
            }
        }
        let (pruned, kept) = if dead.is_empty() {
            (0, self.dead_letter_bytes)
        } else {
            let added: u64 = dead
                .iter()
                .map(|d| (d.line.len() + d.reason.len()) as u64)
                .sum();
            let total = match self.dead_letter_bytes {
                Some(before) => before.saturating_add(added),
                None => dead_letters::total_bytes(&tx)?,
            };
            let (count, removed) = dead_letters::prune_dead_letters(&tx, quota, total)?;
            (count, Some(total.saturating_sub(removed)))
        };
        tx.commit()?;
        self.dead_letter_bytes = kept;
        Ok(pruned)
    }

    /// Notes a failed attempt on the batch (for operators; order is unchanged).
    pub fn record_failure(&mut self, id: i64, error: &str) -> Result<(), WalError> {
        self.conn
            .execute(
                "UPDATE batches SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![id, error],
            )
            .map_err(|e| self.explain(e.into()))?;
        Ok(())
    }
}
