//! What the last checkpoint of the downsampling windows saved
//! (`custody.rs` writes it): read once at start, to restore the windows and
//! the keys of the lines counted lately.

use super::{LaneKey, Wal, WalError};
use crate::route::dest::Destination;
use rusqlite::OptionalExtension;

/// What the last checkpoint saved: window sets, watermarks and the keys of
/// the lines counted lately (oldest first).
#[derive(Debug, Default)]
pub struct SavedWindows {
    pub sets: Vec<(LaneKey, i64, Vec<u8>)>,
    pub watermarks: Vec<(LaneKey, i64)>,
    pub recent: Vec<u64>,
    /// Keys the first release saved (`line_key::legacy`).
    pub legacy_recent: Vec<u64>,
    /// The buffer's secret (`downsample_meta`) that keys the line keys.
    pub secret: u64,
}

impl Wal {
    /// What the last checkpoint saved.
    pub fn saved_windows(&self) -> Result<SavedWindows, WalError> {
        let lane = |r: &rusqlite::Row| -> rusqlite::Result<LaneKey> {
            Ok(LaneKey {
                rule: r.get(0)?,
                dest: Destination {
                    db: r.get(1)?,
                    rp: r.get(2)?,
                },
            })
        };
        let mut stmt = self.conn.prepare(
            "SELECT rule, db, rp, start, state FROM downsample_sets ORDER BY rule, db, rp, start",
        )?;
        let sets = stmt
            .query_map([], |r| Ok((lane(r)?, r.get(3)?, r.get(4)?)))?
            .collect::<Result<_, _>>()?;
        let mut stmt = self.conn.prepare(
            "SELECT rule, db, rp, watermark FROM downsample_marks ORDER BY rule, db, rp",
        )?;
        let watermarks = stmt
            .query_map([], |r| Ok((lane(r)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        let keys = |table: &str| -> Result<Vec<u64>, WalError> {
            let mut keys = Vec::new();
            let mut stmt = self
                .conn
                .prepare(&format!("SELECT keys FROM {table} ORDER BY id"))?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let blob: Vec<u8> = r.get(0)?;
                keys.extend(
                    blob.chunks_exact(8)
                        .filter_map(|k| Some(u64::from_le_bytes(k.try_into().ok()?))),
                );
            }
            Ok(keys)
        };
        let recent = keys("downsample_keys")?;
        let legacy_recent = keys("downsample_recent")?;
        let secret = self
            .conn
            .query_row("SELECT secret FROM downsample_meta", [], |r| {
                r.get::<_, i64>(0)
            })
            .optional()?
            .unwrap_or(0) as u64;
        Ok(SavedWindows {
            sets,
            watermarks,
            recent,
            legacy_recent,
            secret,
        })
    }

    /// Deletes what the last checkpoint saved when it cannot even be read
    /// (`saved_windows` fails on a row, again and again: the damaged row
    /// cannot be named, so all of it goes), with the marks of raw batches
    /// whole (their points lived in windows now lost: `degrade` must not
    /// take them), in one transaction: a crash after it starts from empty
    /// windows that hold no whole batch. Returns the buffer's secret,
    /// made anew when it is missing or unreadable too (the keys it keyed
    /// are gone with the rest).
    pub fn reset_saved_windows(&mut self) -> Result<u64, WalError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for table in [
            "downsample_sets",
            "downsample_marks",
            "downsample_keys",
            "downsample_recent",
            "downsample_whole",
        ] {
            tx.execute(&format!("DELETE FROM {table}"), [])?;
        }
        let read = |tx: &rusqlite::Transaction| {
            tx.query_row("SELECT secret FROM downsample_meta", [], |r| {
                r.get::<_, i64>(0)
            })
        };
        let secret = match read(&tx) {
            Ok(s) => s,
            Err(_) => {
                tx.execute("DELETE FROM downsample_meta", [])?;
                tx.execute("INSERT INTO downsample_meta (secret) SELECT random()", [])?;
                read(&tx)?
            }
        };
        tx.commit()?;
        Ok(secret as u64)
    }
}
