//! The cold archive's statistics (`lifecycle.rules` with `cold_storage`):
//! set by the archiver thread, read by `/metrics`, `/health` and
//! `hissrv status`. Counters are totals since this start; the pending
//! gauges are what the buffer holds for the archives (their bytes count
//! against `buffer.max_size_mb` like any buffered batch).

use portable_atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

#[derive(Default)]
pub struct Archiving {
    /// Any rule archives: the section appears in `/health` and status.
    pub enabled: std::sync::atomic::AtomicBool,
    /// Raw batches, points and stored bytes owed to an archive now.
    pub pending_batches: AtomicU64,
    pub pending_points: AtomicU64,
    pub pending_bytes: AtomicU64,
    /// Age of the oldest batch owed (seconds since its commit).
    pub oldest_pending_s: AtomicU64,
    /// Objects confirmed (renamed and synced), their points and bytes.
    pub objects: AtomicU64,
    pub points: AtomicU64,
    pub bytes: AtomicU64,
    /// Runs whose objects could not all be written (retried after a
    /// back-off; nothing leaves the buffer meanwhile).
    pub failures: AtomicU64,
    /// Batches of a run that no longer decoded (kept raw as dead letters
    /// by the forwarder, not archived).
    pub undecodable: AtomicU64,
    /// The last failure, cleared by the next run that succeeds.
    pub last_error: std::sync::Mutex<String>,
}

/// The cold archive in `/health` (absent without an archiving rule).
#[derive(Debug, Clone, PartialEq, miniserde::Serialize, miniserde::Deserialize)]
pub struct ColdHealth {
    pub pending_batches: u64,
    pub pending_points: u64,
    pub pending_bytes: u64,
    pub oldest_pending_s: u64,
    pub objects_written: u64,
    pub points_archived: u64,
    pub bytes_written: u64,
    pub failures: u64,
    pub last_error: String,
}

impl Archiving {
    /// `None` when no rule archives.
    pub fn health(&self) -> Option<ColdHealth> {
        if !self.enabled.load(Relaxed) {
            return None;
        }
        let g = |v: &AtomicU64| v.load(Relaxed);
        Some(ColdHealth {
            pending_batches: g(&self.pending_batches),
            pending_points: g(&self.pending_points),
            pending_bytes: g(&self.pending_bytes),
            oldest_pending_s: g(&self.oldest_pending_s),
            objects_written: g(&self.objects),
            points_archived: g(&self.points),
            bytes_written: g(&self.bytes),
            failures: g(&self.failures),
            last_error: self
                .last_error
                .lock()
                .map(|e| e.clone())
                .unwrap_or_default(),
        })
    }

    pub fn set_error(&self, e: String) {
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = e;
        }
    }

    pub fn add(v: &AtomicU64, n: u64) {
        v.fetch_add(n, Relaxed);
    }
}
