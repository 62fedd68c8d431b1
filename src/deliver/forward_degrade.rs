//! `buffer.when_full: degrade` on the forwarder: while deliveries fail (or
//! after a write was refused for room) and the buffer has less than
//! `1/DEGRADE_HEADROOM_QUOTA_SHARE` of its quota free, the oldest raw
//! batches whose points the warm tier holds are deleted undelivered
//! (`wal/degrade.rs` says which), counted and logged per destination. So
//! writes keep being accepted through a long outage, and only when nothing
//! degradable is left does a commit meet the full quota (507). While the
//! upstream takes the backlog, nothing is degraded unless a write is
//! refused: the deliveries make the room.
//!
//! The forwarder does it, not the commit thread: it alone deletes
//! undelivered batches, and after a degrade it forgets its cached heads and
//! its read-ahead, which may name batches just deleted.

use super::Forwarder;
use crate::observe::backlog::Delta;
use crate::observe::stats::Stats;
use std::time::Duration;

/// Degrading keeps this share of the quota free (1/10): room for the
/// commits of the time between two looks, so none meets the full quota
/// while degradable batches remain.
const DEGRADE_HEADROOM_QUOTA_SHARE: u64 = 10;
/// How often the forwarder looks at the room left (a look reads the page
/// counts and the files' sizes: cheap, but not per request).
const DEGRADE_CHECK_MS: u64 = 250;

/// The room `degrade` keeps free, in bytes; 0 when it is off.
pub(super) fn degrade_headroom(b: &crate::config::Buffer) -> u64 {
    if b.when_full != crate::config::WhenFull::Degrade {
        return 0;
    }
    b.max_size_mb.saturating_mul(1024 * 1024) / DEGRADE_HEADROOM_QUOTA_SHARE
}

impl Forwarder {
    /// When due and short of the headroom: degrade what covers it.
    pub(super) fn degrade_for_room(&mut self) {
        let now = self.clock.now();
        if self.degrade_headroom == 0 || now < self.degrade_at {
            return;
        }
        self.degrade_at = now + Duration::from_millis(DEGRADE_CHECK_MS);
        // Only while deliveries fail, or once a write was refused for room:
        // while the upstream takes the backlog, its deletes make the room,
        // and degrading would take the batches about to be delivered (the
        // week test lost the newest raw points so).
        let refusals = Stats::get(&self.stats.storage_full_refusals);
        let refused = refusals > self.degrade_refusals_seen;
        self.degrade_refusals_seen = refusals;
        if !refused && self.stats.upstream_failing_for_ms() == 0 {
            return;
        }
        let short = match self.wal.short_of_room(self.degrade_headroom) {
            Ok(Some(short)) => short,
            Ok(None) => return,
            Err(e) => {
                log::warn!("degrade: cannot measure the buffer's room: {e}");
                return;
            }
        };
        let gone = match self.on_full_disk(|w| w.degrade(short)) {
            Ok(gone) => gone,
            Err(e) => {
                log::error!("degrade: cannot delete raw batches the warm tier holds: {e}");
                self.stats.set_error(format!("degrade: {e}"));
                self.note_read_only(&e);
                return;
            }
        };
        if gone.is_empty() {
            return;
        }
        for d in &gone {
            log::warn!(
                "buffer nearly full: {} raw points ({} batches, {} bytes) of {}/{} deleted undelivered; their aggregates stay in the warm tier",
                d.points,
                d.batches,
                d.bytes,
                d.dest.db,
                d.dest.rp
            );
            Stats::add(&self.stats.downsampling.points_degraded, d.points as usize);
            Stats::add(
                &self.stats.downsampling.batches_degraded,
                d.batches as usize,
            );
            self.stats.backlog.deleted(Delta {
                points: d.points as i64,
                batches: d.batches as i64,
                bytes: d.bytes as i64,
            });
        }
        // What was read of those batches is gone with them.
        self.heads_loaded = false;
        self.prefetched = None;
    }
}
