//! Counters, gauges and histograms shared by the executor, the commit thread
//! and the forwarder. Plain atomics: every thread updates them without locks;
//! `/health` and `/metrics` read them.

use crate::observe::histogram::{Histogram, POINTS_BUCKETS, SECONDS_BUCKETS};
use portable_atomic::AtomicU64;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

pub struct Stats {
    pub http_requests: AtomicU64,
    /// Points parsed and offered to the rings (HTTP + UDP).
    pub points_received: AtomicU64,
    /// Points written with the restore header (`hissrv restore`): not
    /// archived again. Counted, as any producer could send the header.
    pub points_restored: AtomicU64,
    /// Points committed to the write-ahead buffer.
    pub points_committed: AtomicU64,
    pub batches_committed: AtomicU64,
    /// Encoded bytes committed (what the buffer stores for them; the flash
    /// wear benchmark's yardstick).
    pub bytes_committed: AtomicU64,
    /// Lines rejected by the parser.
    pub lines_rejected: AtomicU64,
    /// HTTP writes refused because the rings were full (503).
    pub ring_full_refusals: AtomicU64,
    /// UDP points dropped (rings full, or unparseable).
    pub udp_points_dropped: AtomicU64,
    pub udp_dropped_ring_full: AtomicU64,
    pub udp_lines_unparseable: AtomicU64,
    /// UDP datagrams refused because auth is on (set by a reload) and
    /// `udp_allow_unauthenticated` is not.
    pub udp_datagrams_unauthenticated: AtomicU64,
    /// HTTP writes refused because hissrv was stopping (503).
    pub shutdown_refusals: AtomicU64,
    /// Writes refused because the buffer quota or the disk was full (507).
    pub storage_full_refusals: AtomicU64,
    /// Writes refused because the buffer's file system is read-only (503).
    pub read_only_refusals: AtomicU64,
    /// Writes (and UDP datagrams) refused because they held lines without a
    /// timestamp while the wall clock was not set (503).
    pub clock_unset_refusals: AtomicU64,
    pub points_written: AtomicU64,
    pub batches_written: AtomicU64,
    pub dead_letter_lines: AtomicU64,
    /// Oldest dead letters removed to keep them under `buffer.max_dead_letters_mb`.
    pub dead_letters_pruned: AtomicU64,
    /// Writes refused because they named one destination more than
    /// `service.max_destinations`.
    pub destination_refusals: AtomicU64,
    /// Points not sent because they outlived their bucket's retention.
    pub points_expired: AtomicU64,
    /// Of them, points of a hot tier's destination (`lifecycle` `hot_days`).
    pub points_expired_hot: AtomicU64,
    /// `manage_retention` attempts that failed (rights, network, refusals).
    pub provision_failures: AtomicU64,
    /// Config reloads put in force / refused (invalid file).
    pub config_reloads: AtomicU64,
    pub config_reload_failures: AtomicU64,
    /// Why the last reload was refused; empty once one succeeds.
    pub config_error: Mutex<String>,
    /// Changed settings that only a restart puts in force.
    pub restart_needed: Mutex<Vec<String>>,
    pub upstream_failures: AtomicU64,
    pub upstream_failures_4xx: AtomicU64,
    pub upstream_failures_5xx: AtomicU64,
    pub upstream_failures_network: AtomicU64,
    /// Deliveries of a batch that had failed before.
    pub retries: AtomicU64,
    pub upstream_up: AtomicBool,
    /// When the destination failing longest began to fail, in ms since
    /// `epoch` plus one; 0 while every destination delivers (monotonic: a
    /// clock step does not fake an outage).
    pub upstream_failing_since: AtomicU64,
    /// The wall clock is unset or stepped forward past what the monotonic
    /// clock allows: retention expiry is paused (`clock::WallCheck`).
    pub clock_untrusted: AtomicBool,
    /// Origin of the monotonic gauges.
    pub epoch: std::time::Instant,
    /// The buffer's disk reserve is spent (see `wal::reserve`): writes get 507.
    pub disk_reserve_missing: std::sync::Arc<AtomicBool>,
    /// The buffer's file system refuses writes (`wal::writable`): set by a
    /// refused commit or delete, cleared by a commit or the forwarder's probe.
    pub buffer_read_only: AtomicBool,
    /// Backlog in the buffer: exact gauges (see `backlog`).
    pub backlog: crate::observe::backlog::BacklogGauges,
    /// The warm tier's windows and aggregates.
    pub downsampling: crate::observe::downsampling::Downsampling,
    /// The cold archive's backlog and objects.
    pub archiving: crate::observe::archiving::Archiving,
    pub dead_letters_stored: AtomicU64,
    /// Live bytes in the buffer file.
    pub buffer_bytes: AtomicU64,
    /// What the file system holds for the buffer (database, WAL, `-shm`):
    /// what the quota counts.
    pub buffer_disk_bytes: AtomicU64,
    /// Ingest rate the batcher last measured (points/s).
    pub ingest_rate: AtomicU64,
    /// EWMA of commit durations (µs), for the batcher.
    pub commit_latency_ewma_us: AtomicU64,
    /// Cuts handed to the commit thread and not yet committed.
    pub commits_in_flight: std::sync::atomic::AtomicUsize,
    pub write_duration: Histogram,
    pub batch_size: Histogram,
    pub ack_latency: Histogram,
    pub commit_duration: Histogram,
    pub last_error: Mutex<String>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            http_requests: AtomicU64::new(0),
            points_received: AtomicU64::new(0),
            points_restored: AtomicU64::new(0),
            points_committed: AtomicU64::new(0),
            batches_committed: AtomicU64::new(0),
            bytes_committed: AtomicU64::new(0),
            lines_rejected: AtomicU64::new(0),
            ring_full_refusals: AtomicU64::new(0),
            udp_points_dropped: AtomicU64::new(0),
            udp_dropped_ring_full: AtomicU64::new(0),
            udp_lines_unparseable: AtomicU64::new(0),
            udp_datagrams_unauthenticated: AtomicU64::new(0),
            shutdown_refusals: AtomicU64::new(0),
            storage_full_refusals: AtomicU64::new(0),
            read_only_refusals: AtomicU64::new(0),
            clock_unset_refusals: AtomicU64::new(0),
            points_written: AtomicU64::new(0),
            batches_written: AtomicU64::new(0),
            dead_letter_lines: AtomicU64::new(0),
            dead_letters_pruned: AtomicU64::new(0),
            destination_refusals: AtomicU64::new(0),
            points_expired: AtomicU64::new(0),
            points_expired_hot: AtomicU64::new(0),
            provision_failures: AtomicU64::new(0),
            config_reloads: AtomicU64::new(0),
            config_reload_failures: AtomicU64::new(0),
            config_error: Mutex::new(String::new()),
            restart_needed: Mutex::new(Vec::new()),
            upstream_failures: AtomicU64::new(0),
            upstream_failures_4xx: AtomicU64::new(0),
            upstream_failures_5xx: AtomicU64::new(0),
            upstream_failures_network: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            upstream_up: AtomicBool::new(false),
            upstream_failing_since: AtomicU64::new(0),
            clock_untrusted: AtomicBool::new(false),
            epoch: std::time::Instant::now(),
            disk_reserve_missing: Default::default(),
            buffer_read_only: AtomicBool::new(false),
            backlog: Default::default(),
            downsampling: Default::default(),
            archiving: Default::default(),
            dead_letters_stored: AtomicU64::new(0),
            buffer_bytes: AtomicU64::new(0),
            buffer_disk_bytes: AtomicU64::new(0),
            ingest_rate: AtomicU64::new(0),
            commit_latency_ewma_us: AtomicU64::new(0),
            commits_in_flight: std::sync::atomic::AtomicUsize::new(0),
            write_duration: Histogram::new(SECONDS_BUCKETS),
            batch_size: Histogram::new(POINTS_BUCKETS),
            ack_latency: Histogram::new(SECONDS_BUCKETS),
            commit_duration: Histogram::new(SECONDS_BUCKETS),
            last_error: Mutex::new(String::new()),
        }
    }
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    /// Folds one commit's duration into the EWMA (weight 1/4 for the new one).
    pub fn observe_commit_latency(&self, took: std::time::Duration) {
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        let _ = self
            .commit_latency_ewma_us
            .fetch_update(Relaxed, Relaxed, |old| {
                Some(if old == 0 { us } else { (old * 3 + us) / 4 })
            });
    }

    pub fn set_error(&self, e: impl Into<String>) {
        if let Ok(mut s) = self.last_error.lock() {
            *s = e.into();
        }
    }

    /// A delivery went through.
    pub fn delivery_ok(&self) {
        self.upstream_up.store(true, Relaxed);
    }

    /// Since when the destination failing longest has failed without a
    /// success (`None`: every destination delivers). The forwarder keeps it
    /// per destination, so one that delivers does not hide one that fails.
    pub fn set_failing_since(&self, since: Option<std::time::Instant>) {
        let v = since.map_or(0, |t| {
            t.saturating_duration_since(self.epoch).as_millis() as u64 + 1
        });
        self.upstream_failing_since.store(v, Relaxed);
    }

    /// How long deliveries have been failing without one success (0: not).
    pub fn upstream_failing_for_ms(&self) -> u64 {
        match self.upstream_failing_since.load(Relaxed) {
            0 => 0,
            since => (self.epoch.elapsed().as_millis() as u64 + 1).saturating_sub(since),
        }
    }

    pub fn last_error(&self) -> String {
        self.last_error
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}
