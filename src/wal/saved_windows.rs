//! What the last checkpoint of the downsampling windows saved
//! (`custody.rs` writes it): read once at start, to restore the windows and
//! the keys of the lines counted lately; and what is done when a saved row
//! cannot be read at all (`reset_damaged_windows`).

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

/// The parts of the saved windows `reset_damaged_windows` deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DamagedParts {
    /// Window sets and watermarks (one part: sets without their lanes'
    /// watermarks would take a forgotten window's late point for a new
    /// window, and emit it over the right one).
    pub windows: bool,
    /// The keys of the lines counted lately (both tables). The windows
    /// stay: a producer's retry of a line they counted before the restart,
    /// older than its series' eight greatest timestamps, is then counted a
    /// second time (the keys alone knew it). Dropping the windows instead
    /// would leave out every point they held, and re-emit their windows
    /// short over the right aggregates upstream: the larger error (review).
    pub keys: bool,
    /// The buffer's secret, made anew (the keys go with it: they were
    /// keyed by the old one).
    pub secret: bool,
}

impl DamagedParts {
    pub fn any(self) -> bool {
        self.windows || self.keys || self.secret
    }
}

impl std::fmt::Display for DamagedParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<&str> = [
            (self.windows, "window sets and watermarks"),
            (self.keys, "keys of the lines counted lately"),
            (self.secret, "the secret"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
        f.write_str(&parts.join(", "))
    }
}

/// A read that fails on a row's value of the wrong type or text that is not
/// UTF-8 (a flipped bit): the damage every read meets again (not a busy
/// database or an I/O error, which pass; found in review: `Utf8Error` was
/// not taken, and left the tier suspended for good).
pub(super) fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::Utf8Error(..)
    )
}

fn lane(r: &rusqlite::Row) -> rusqlite::Result<LaneKey> {
    Ok(LaneKey {
        rule: r.get(0)?,
        dest: Destination {
            db: r.get(1)?,
            rp: r.get(2)?,
        },
    })
}

impl Wal {
    /// What the last checkpoint saved.
    pub fn saved_windows(&self) -> Result<SavedWindows, WalError> {
        Ok(SavedWindows {
            sets: self.saved_sets()?,
            watermarks: self.saved_marks()?,
            recent: self.saved_keys("downsample_keys")?,
            legacy_recent: self.saved_keys("downsample_recent")?,
            secret: self.saved_secret()?.unwrap_or(0),
        })
    }

    fn saved_sets(&self) -> rusqlite::Result<Vec<(LaneKey, i64, Vec<u8>)>> {
        let mut stmt = self.conn.prepare(
            "SELECT rule, db, rp, start, state FROM downsample_sets ORDER BY rule, db, rp, start",
        )?;
        stmt.query_map([], |r| Ok((lane(r)?, r.get(3)?, r.get(4)?)))?
            .collect()
    }

    fn saved_marks(&self) -> rusqlite::Result<Vec<(LaneKey, i64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT rule, db, rp, watermark FROM downsample_marks ORDER BY rule, db, rp",
        )?;
        stmt.query_map([], |r| Ok((lane(r)?, r.get(3)?)))?.collect()
    }

    fn saved_keys(&self, table: &str) -> rusqlite::Result<Vec<u64>> {
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
    }

    fn saved_secret(&self) -> rusqlite::Result<Option<u64>> {
        self.conn
            .query_row("SELECT secret FROM downsample_meta", [], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map(|s| s.map(|s| s as u64))
    }

    /// Deletes the parts of the saved windows that hold a row no read can
    /// take (a value of the wrong type: `saved_windows` fails on it at every
    /// start, and the row cannot be named to be deleted alone), each part
    /// read on its own so that the others stay. With the windows go the
    /// marks of raw batches whole (their points lived in windows now lost:
    /// `degrade` must not take them), in the same transaction: a crash after
    /// it starts from windows that hold no whole batch. An unreadable
    /// secret is made anew, and the keys it keyed go. A read failing
    /// otherwise (busy, I/O) is returned, and nothing is deleted.
    pub fn reset_damaged_windows(&mut self) -> Result<DamagedParts, WalError> {
        let damaged = |r: rusqlite::Result<()>| match r {
            Ok(()) => Ok(false),
            Err(e) if is_damage(&e) => Ok(true),
            Err(e) => Err(WalError::from(e)),
        };
        let secret = damaged(self.saved_secret().map(drop))?;
        let parts = DamagedParts {
            windows: damaged(self.saved_sets().map(drop))?
                || damaged(self.saved_marks().map(drop))?,
            keys: secret
                || damaged(self.saved_keys("downsample_keys").map(drop))?
                || damaged(self.saved_keys("downsample_recent").map(drop))?,
            secret,
        };
        if !parts.any() {
            return Ok(parts);
        }
        let result = match self.delete_parts(parts) {
            // As a commit does: a WAL cut on a full disk cannot grow back by
            // itself (found in review: the reset had no such retry).
            Err(WalError::DiskFull) if self.truncate_wal().is_ok() => self.delete_parts(parts),
            other => other,
        };
        result.map_err(|e| self.explain(e))?;
        Ok(parts)
    }

    fn delete_parts(&mut self, parts: DamagedParts) -> Result<(), WalError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut tables = Vec::new();
        if parts.windows {
            tables.extend(["downsample_sets", "downsample_marks", "downsample_whole"]);
        }
        if parts.keys {
            tables.extend(["downsample_keys", "downsample_recent"]);
        }
        if parts.secret {
            tables.push("downsample_meta");
        }
        for table in tables {
            tx.execute(&format!("DELETE FROM {table}"), [])?;
        }
        if parts.secret {
            tx.execute("INSERT INTO downsample_meta (secret) SELECT random()", [])?;
        }
        tx.commit()?;
        Ok(())
    }
}
