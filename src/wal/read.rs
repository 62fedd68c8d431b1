//! The forwarder's reads of the write-ahead buffer: where each destination's
//! queue starts, packs of consecutive batches, and where live data begins.
//! Read-only; run on the forwarder's own connection while commits go on.

use super::{Backlog, StoredBatch, Wal, WalError};
use crate::route::dest::Destination;
use crate::wal::codec;
use rusqlite::params;

use super::custody::NOT_HELD;

impl Wal {
    /// The oldest batch id of each destination, oldest first.
    ///
    /// Runs before every delivery, so it walks the `(db, rp, id)` index
    /// destination by destination (a few lookups each) instead of grouping
    /// every row: with millions of small batches after a long outage, a
    /// `GROUP BY` scan cost ~350 ms a call, this ~0.3 ms.
    pub fn heads(&self) -> Result<Vec<(i64, Destination)>, WalError> {
        let mut heads = Vec::new();
        let mut db: Option<String> = None;
        loop {
            self.count_read();
            db = match &db {
                None => self
                    .conn
                    .query_row("SELECT min(db) FROM batches", [], |r| r.get(0))?,
                Some(prev) => self.conn.query_row(
                    "SELECT min(db) FROM batches WHERE db > ?1",
                    [prev],
                    |r| r.get(0),
                )?,
            };
            let Some(d) = &db else { break };
            let mut rp: Option<String> = None;
            loop {
                self.count_read();
                rp = match &rp {
                    None => self.conn.query_row(
                        "SELECT min(rp) FROM batches WHERE db = ?1",
                        [d],
                        |r| r.get(0),
                    )?,
                    Some(prev) => self.conn.query_row(
                        "SELECT min(rp) FROM batches WHERE db = ?1 AND rp > ?2",
                        [d, prev],
                        |r| r.get(0),
                    )?,
                };
                let Some(r) = &rp else { break };
                self.count_read();
                let head: Option<i64> = self.conn.query_row(
                    &format!(
                        "SELECT min(id) FROM batches WHERE db = ?1 AND rp = ?2 AND {NOT_HELD}"
                    ),
                    [d, r],
                    |row| row.get(0),
                )?;
                // Only batches delivered and held for the windows' checkpoint.
                let Some(head) = head else { continue };
                heads.push((
                    head,
                    Destination {
                        db: d.clone(),
                        rp: r.clone(),
                    },
                ));
            }
        }
        heads.sort_by_key(|(id, _)| *id);
        Ok(heads)
    }

    /// Consecutive batches of `dest` from `from_id` on, in commit order, up
    /// to `max_points` points and `max_bytes` of line protocol (decoded: what
    /// the request carries), at least one batch.
    /// Several small batches then travel upstream as one request.
    pub fn pack(
        &self,
        dest: &Destination,
        from_id: i64,
        max_points: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredBatch>, WalError> {
        self.pack_at_least(dest, from_id, max_points, max_bytes, 1)
    }

    /// [`Wal::pack`], with at least `min_batches` batches when there are that
    /// many, whatever their size: probing for a poison line needs a
    /// neighbour line to tell a failing line from a failing server.
    pub fn pack_at_least(
        &self,
        dest: &Destination,
        from_id: i64,
        max_points: usize,
        max_bytes: usize,
        min_batches: usize,
    ) -> Result<Vec<StoredBatch>, WalError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id, points, bytes, format, attempts, first_ts FROM batches
                 WHERE db = ?1 AND rp = ?2 AND id >= ?3 AND {NOT_HELD}
                 ORDER BY id LIMIT ?4"
        ))?;
        let rows = stmt.query_map(
            params![
                dest.db,
                dest.rp,
                from_id,
                max_points.max(min_batches).max(1) as i64
            ],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)? as usize,
                    r.get::<_, i64>(2)? as usize,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            },
        )?;
        self.count_read();
        let candidates: Vec<_> = rows.collect::<Result<_, _>>()?;
        let mut load = self
            .conn
            .prepare_cached("SELECT payload FROM batches WHERE id = ?1")?;
        // `max_bytes` bounds the request, so it counts decoded line protocol:
        // an encoded batch can be 10x smaller than what it sends.
        let (mut points, mut bytes) = (0usize, 0usize);
        let mut out: Vec<StoredBatch> = Vec::new();
        for (id, p, stored_bytes, format, attempts, first_ts) in candidates {
            if out.len() >= min_batches.max(1) && points.saturating_add(p) > max_points {
                break;
            }
            self.count_read();
            let blob: Vec<u8> = load.query_row([id], |r| r.get(0))?;
            let payload = codec::decode(format, &blob).map_err(|e| WalError::Undecodable {
                id,
                why: e.to_string(),
            })?;
            if out.len() >= min_batches.max(1) && bytes.saturating_add(payload.len()) > max_bytes {
                break;
            }
            points = points.saturating_add(p);
            bytes = bytes.saturating_add(payload.len());
            out.push(StoredBatch {
                id,
                dest: dest.clone(),
                points: p,
                format,
                attempts,
                first_ts,
                stored_bytes,
                payload,
            });
        }
        Ok(out)
    }

    /// The first batch of `dest` committed at or after `since_ms`, if any:
    /// where live data starts while an older backlog drains.
    pub fn first_since(&self, dest: &Destination, since_ms: i64) -> Result<Option<i64>, WalError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT min(id) FROM batches WHERE db = ?1 AND rp = ?2 AND created_ms >= ?3
                 AND {NOT_HELD}"
        ))?;
        self.count_read();
        Ok(stmt.query_row(params![dest.db, dest.rp, since_ms], |r| r.get(0))?)
    }
}

impl Wal {
    /// The oldest batch id of one destination, if it has any: one index
    /// lookup, whatever the number of destinations.
    pub fn head_of(&self, dest: &Destination) -> Result<Option<i64>, WalError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT min(id) FROM batches WHERE db = ?1 AND rp = ?2 AND {NOT_HELD}"
        ))?;
        self.count_read();
        Ok(stmt.query_row(params![dest.db, dest.rp], |r| r.get(0))?)
    }

    /// Totals of what the buffer holds, in one consistent statement.
    pub fn backlog(&self) -> Result<Backlog, WalError> {
        Ok(self.conn.query_row(
            &format!(
                "SELECT count(*), coalesce(sum(points), 0), coalesce(sum(bytes), 0),
                    (SELECT count(*) FROM dead_letters),
                    (SELECT created_ms FROM batches WHERE {NOT_HELD} ORDER BY id LIMIT 1),
                    (SELECT n FROM commit_seq) FROM batches
                 WHERE {NOT_HELD}"
            ),
            [],
            |r| {
                Ok(Backlog {
                    batches: r.get::<_, i64>(0)? as u64,
                    points: r.get::<_, i64>(1)? as u64,
                    payload_bytes: r.get::<_, i64>(2)? as u64,
                    dead_letters: r.get::<_, i64>(3)? as u64,
                    oldest_created_ms: r.get(4)?,
                    commit_seq: r.get::<_, Option<i64>>(5)?.unwrap_or(0),
                })
            },
        )?)
    }
}
