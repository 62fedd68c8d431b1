//! Dead letters: lines the upstream refused for good, points past their
//! retention, and undecodable batches set aside whole. Kept for export
//! (`hissrv export --dead-letters`), never retried, and held within their
//! share of the quota (`buffer.max_dead_letters_percent`).

use super::{STATUS_UNDECODABLE, Wal, WalError};
use crate::clock::now_ms;
use rusqlite::params;

impl Wal {
    /// A batch that cannot be decoded leaves the queue so it cannot block its
    /// destination, but is kept, whole and raw, as a dead letter ([`STATUS_UNDECODABLE`]).
    pub fn quarantine(&mut self, id: i64, why: &str) -> Result<u64, WalError> {
        let quota = self.dead_letter_quota_bytes;
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO dead_letters (batch_id, db, rp, failed_ms, status, reason, line)
             SELECT id, db, rp, ?2, ?4, ?3, payload FROM batches WHERE id = ?1",
            params![
                id,
                now_ms(),
                format!("undecodable batch: {why}"),
                STATUS_UNDECODABLE
            ],
        )?;
        tx.execute("DELETE FROM batches WHERE id = ?1", [id])?;
        // Its duty goes with it: a replay could not read it either.
        tx.execute("DELETE FROM downsample_duty WHERE batch_id = ?1", [id])?;
        let total = total_bytes(&tx)?;
        let (pruned, removed) = prune_dead_letters(&tx, quota, total)?;
        tx.commit()?;
        self.dead_letter_bytes = Some(total.saturating_sub(removed));
        Ok(pruned)
    }
}

/// Bytes the dead letters hold (line + reason, as bytes): a full count,
/// run once per connection and after a quarantine.
pub(super) fn total_bytes(tx: &rusqlite::Transaction) -> Result<u64, WalError> {
    let total: i64 = tx.query_row(
        "SELECT coalesce(sum(length(line) + length(CAST(reason AS BLOB))), 0) FROM dead_letters",
        [],
        |r| r.get(0),
    )?;
    Ok(total.max(0) as u64)
}

/// Dead letters past `quota_bytes` (line + reason) are removed oldest first,
/// reading only as many rows as go; the newest always stays, whatever its
/// size. `total` is what they hold now. Returns how many went and their bytes.
///
/// Invariant: dead letters never hold more than their share of the buffer
/// after a transaction that added one, so refused lines cannot fill the
/// quota and turn every later write into a 507.
pub(super) fn prune_dead_letters(
    tx: &rusqlite::Transaction,
    quota_bytes: u64,
    total: u64,
) -> Result<(u64, u64), WalError> {
    let mut excess = total.saturating_sub(quota_bytes);
    if excess == 0 {
        return Ok((0, 0));
    }
    let mut last_id = None;
    let (mut count, mut removed) = (0u64, 0u64);
    {
        let mut oldest = tx.prepare(
            "SELECT id, length(line) + length(CAST(reason AS BLOB)) FROM dead_letters
             WHERE id < (SELECT max(id) FROM dead_letters) ORDER BY id",
        )?;
        let mut rows = oldest.query([])?;
        while let Some(row) = rows.next()? {
            let (id, size): (i64, i64) = (row.get(0)?, row.get(1)?);
            let size = size.max(0) as u64;
            last_id = Some(id);
            count += 1;
            removed = removed.saturating_add(size);
            excess = excess.saturating_sub(size);
            if excess == 0 {
                break;
            }
        }
    }
    if let Some(id) = last_id {
        tx.execute("DELETE FROM dead_letters WHERE id <= ?1", [id])?;
        log::warn!("dead letters over their share of the buffer: the {count} oldest were removed");
    }
    Ok((count, removed))
}
