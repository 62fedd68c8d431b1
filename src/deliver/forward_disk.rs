//! The buffer's disk as the forwarder meets it: a full disk (give the WAL's
//! room back, then spend the disk reserve, so delivered batches can still be
//! deleted), a read-only file system (deliveries pause: a batch that cannot
//! be deleted would only be sent again), and a buffer over its quota whose
//! WAL a reader holds (deliveries pause until it lets go). Each pause is
//! looked at again on a named period, busy or idle, so `/health` tells.

use super::Forwarder;
use crate::wal::WalError;
use crate::wal::reserve::RESERVE_RETRY_SECS;
use crate::wal::writable::READ_ONLY_PROBE_SECS;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often a forwarder paused by a reader holding the WAL looks again.
const READER_RECHECK_MS: u64 = 500;

impl Forwarder {
    /// Runs a write that frees room (a delete, a quarantine); on a full
    /// disk, first gives the WAL's room back and tries again, then spends the
    /// disk reserve and tries once more (`wal::reserve`).
    pub(super) fn on_full_disk<T>(
        &mut self,
        mut write: impl FnMut(&mut crate::wal::Wal) -> Result<T, WalError>,
    ) -> Result<T, WalError> {
        let mut result = write(&mut self.wal);
        if matches!(result, Err(WalError::DiskFull)) && self.wal.truncate_wal().is_ok() {
            result = write(&mut self.wal);
        }
        if matches!(result, Err(WalError::DiskFull)) && self.spend_reserve() {
            result = write(&mut self.wal);
        }
        result
    }

    /// A delete met a full disk: release the disk reserve so the checkpoint
    /// and the deletes have room (`wal::reserve`). False when none is left.
    fn spend_reserve(&mut self) -> bool {
        let Some(r) = self.reserve.as_ref().filter(|r| !r.is_missing()) else {
            return false;
        };
        // Under the write lock: a commit already running finishes first, and
        // the next sees the flag before it writes (`Wal::commit_at`).
        let released = self
            .wal
            .with_write_lock(|| r.release())
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match released {
            Ok(()) => {
                log::warn!(
                    "disk full: released the {}-byte disk reserve so that delivered batches can be deleted; new writes are refused until it is made again",
                    r.bytes()
                );
                self.stats
                    .set_error("disk full: the disk reserve was spent to drain the buffer");
                // Not made again at once (8 MiB of flash writes): first let
                // the deletes free room.
                self.reserve_retry_at = self.clock.now() + Duration::from_secs(RESERVE_RETRY_SECS);
                true
            }
            Err(e) => {
                log::error!("disk full, and the disk reserve cannot be released: {e}");
                false
            }
        }
    }

    /// A write of ours met a read-only file system: deliveries pause.
    pub(super) fn note_read_only(&mut self, e: &WalError) {
        if !matches!(e, WalError::ReadOnly { .. }) {
            return;
        }
        if !self.stats.buffer_read_only.swap(true, Ordering::AcqRel) {
            log::error!("{e}; deliveries paused");
        }
        self.read_only_probe_at = self.clock.now() + Duration::from_secs(READ_ONLY_PROBE_SECS);
    }

    /// While the buffer's file system refuses writes, deliveries pause: a
    /// delivered batch could not be deleted, so every send would be a
    /// duplicate. The file system is asked every `READ_ONLY_PROBE_SECS`,
    /// busy or idle, so `/health` tells within seconds even with no write
    /// coming in; returns when to look again while paused.
    pub(super) fn paused_read_only(&mut self) -> Option<std::time::Instant> {
        let now = self.clock.now();
        if now >= self.read_only_probe_at {
            self.read_only_probe_at = now + Duration::from_secs(READ_ONLY_PROBE_SECS);
            let read_only = !self.wal.writable();
            if read_only
                != self
                    .stats
                    .buffer_read_only
                    .swap(read_only, Ordering::AcqRel)
            {
                if read_only {
                    log::error!(
                        "the buffer's file system is read-only: deliveries paused, writes refused"
                    );
                } else {
                    log::info!("the buffer is writable again: deliveries resume");
                }
            }
        }
        self.stats
            .buffer_read_only
            .load(Ordering::Acquire)
            .then_some(self.read_only_probe_at)
    }

    /// While the buffer takes more of the disk than its quota and a reader
    /// holds its WAL (so the WAL cannot be cut), deliveries pause: each
    /// delete would add its pages to that WAL. Looked at every
    /// `READER_RECHECK_MS` at most (a cut costs a checkpoint); any other
    /// failure to cut does not pause (a full disk has its own path: the
    /// reserve). Returns when to look again while paused.
    pub(super) fn paused_over_quota(&mut self) -> Option<std::time::Instant> {
        let now = self.clock.now();
        if now < self.over_quota_check_at {
            return self.paused_for_reader.then_some(self.over_quota_check_at);
        }
        self.over_quota_check_at = now + Duration::from_millis(READER_RECHECK_MS);
        let held = self.wal.disk_over_quota()
            && match self.wal.truncate_wal() {
                Ok(()) => false,
                Err(WalError::WalBusy) => true,
                Err(e) => {
                    log::debug!("over the quota, and the WAL cannot be cut: {e}");
                    false
                }
            };
        if held && !self.paused_for_reader {
            log::warn!(
                "the buffer is over its quota and a reader holds its WAL (an open sqlite3 session, a paused export?): deliveries paused until it lets go"
            );
            self.stats
                .set_error("buffer over its quota: a reader holds its WAL; deliveries paused");
        } else if !held && self.paused_for_reader {
            log::info!("the buffer's WAL was cut back: deliveries resume");
        }
        self.paused_for_reader = held;
        held.then_some(self.over_quota_check_at)
    }
}
