//! The warm tier's statistics (`lifecycle.rules` with `downsample`): set by
//! the commit thread after each feed and checkpoint, read by `/metrics`,
//! `/health` and `hissrv status`. Counters are totals since this start
//! (the windows' own counts restart with the agent; a replay after a crash
//! counts its batches again, as it feeds them again).

use portable_atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

#[derive(Default)]
pub struct Downsampling {
    /// Any rule downsamples: the section appears in `/health` and status.
    pub enabled: std::sync::atomic::AtomicBool,
    /// Field windows (series × field × window) held now.
    pub open_windows: AtomicU64,
    /// `lifecycle.max_open_windows`, for the gauge's neighbour.
    pub max_open_windows: AtomicU64,
    /// Field values counted into a window.
    pub counted: AtomicU64,
    /// Field values already counted (same series, field and timestamp: a
    /// producer's retry), not counted again.
    pub repeats: AtomicU64,
    /// Field values later than their window's `max_lateness`: kept raw only.
    pub late: AtomicU64,
    /// Field values refused a window because `max_open_windows` were open.
    pub full: AtomicU64,
    /// Field values whose type differs from their window's first.
    pub type_conflicts: AtomicU64,
    /// Windows emitted for the first time, and again after late points.
    pub emitted: AtomicU64,
    pub re_emitted: AtomicU64,
    /// Aggregate points committed to the buffer for the warm destinations.
    pub points_committed: AtomicU64,
    pub checkpoints: AtomicU64,
    /// Raw points (and batches) deleted undelivered by `buffer.when_full:
    /// degrade`: the warm tier holds them.
    pub points_degraded: AtomicU64,
    pub batches_degraded: AtomicU64,
    /// Checkpoints whose write failed (the windows were rebuilt from the
    /// buffer; their batches stay held until one succeeds).
    pub checkpoint_failures: AtomicU64,
}

/// The engine's counts, as plain numbers (the engine is a layer above).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub counted: u64,
    pub repeats: u64,
    pub late: u64,
    pub full: u64,
    pub type_conflicts: u64,
    pub emitted: u64,
    pub re_emitted: u64,
}

/// The warm tier in `/health` (absent without a downsampling rule).
#[derive(Debug, Clone, PartialEq, miniserde::Serialize, miniserde::Deserialize)]
pub struct WarmHealth {
    pub open_windows: u64,
    pub max_open_windows: u64,
    pub values_counted: u64,
    pub values_repeated: u64,
    pub values_late: u64,
    pub values_refused_full: u64,
    pub windows_emitted: u64,
    pub windows_reemitted: u64,
    pub aggregate_points: u64,
    pub checkpoint_failures: u64,
    pub points_degraded: u64,
}

impl Downsampling {
    /// `None` when no rule downsamples.
    pub fn health(&self) -> Option<WarmHealth> {
        if !self.enabled.load(Relaxed) {
            return None;
        }
        let g = Downsampling::get;
        Some(WarmHealth {
            open_windows: g(&self.open_windows),
            max_open_windows: g(&self.max_open_windows),
            values_counted: g(&self.counted),
            values_repeated: g(&self.repeats),
            values_late: g(&self.late),
            values_refused_full: g(&self.full),
            windows_emitted: g(&self.emitted),
            windows_reemitted: g(&self.re_emitted),
            aggregate_points: g(&self.points_committed),
            checkpoint_failures: g(&self.checkpoint_failures),
            points_degraded: g(&self.points_degraded),
        })
    }

    /// Adds what the engine counted since `before`.
    pub fn add(&self, before: Counts, now: Counts) {
        let d = |a: u64, b: u64| b.saturating_sub(a);
        self.counted
            .fetch_add(d(before.counted, now.counted), Relaxed);
        self.repeats
            .fetch_add(d(before.repeats, now.repeats), Relaxed);
        self.late.fetch_add(d(before.late, now.late), Relaxed);
        self.full.fetch_add(d(before.full, now.full), Relaxed);
        self.type_conflicts
            .fetch_add(d(before.type_conflicts, now.type_conflicts), Relaxed);
        self.emitted
            .fetch_add(d(before.emitted, now.emitted), Relaxed);
        self.re_emitted
            .fetch_add(d(before.re_emitted, now.re_emitted), Relaxed);
    }

    pub fn get(v: &AtomicU64) -> u64 {
        v.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_added_as_the_difference_since_the_last_look() {
        let s = Downsampling::default();
        let a = Counts {
            counted: 10,
            late: 1,
            ..Counts::default()
        };
        let b = Counts {
            counted: 25,
            late: 1,
            emitted: 3,
            ..Counts::default()
        };
        s.add(Counts::default(), a);
        s.add(a, b);
        assert_eq!(Downsampling::get(&s.counted), 25);
        assert_eq!(Downsampling::get(&s.late), 1);
        assert_eq!(Downsampling::get(&s.emitted), 3);
        // A rebuilt engine starts its counts again: nothing goes backwards.
        s.add(b, Counts::default());
        assert_eq!(Downsampling::get(&s.counted), 25);
    }
}
