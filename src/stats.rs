//! Counters and gauges shared by the executor, the commit thread and the
//! forwarder. Plain atomics: every thread updates them without locks, and
//! `/health` (and later `/metrics`) reads a snapshot.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub struct Stats {
    pub http_requests: AtomicU64,
    /// Points parsed and offered to the rings (HTTP + UDP).
    pub points_received: AtomicU64,
    /// Points committed to the write-ahead buffer.
    pub points_committed: AtomicU64,
    pub batches_committed: AtomicU64,
    /// Lines rejected by the parser.
    pub lines_rejected: AtomicU64,
    /// HTTP writes refused because the rings were full (503).
    pub ring_full_refusals: AtomicU64,
    /// UDP points dropped (rings full, or unparseable).
    pub udp_points_dropped: AtomicU64,
    /// Writes refused because the buffer quota or the disk was full (507).
    pub storage_full_refusals: AtomicU64,
    pub points_written: AtomicU64,
    pub batches_written: AtomicU64,
    pub dead_letter_lines: AtomicU64,
    pub upstream_failures: AtomicU64,
    pub upstream_up: AtomicBool,
    /// Backlog in the buffer (gauges, refreshed by the forwarder).
    pub backlog_batches: AtomicU64,
    pub backlog_points: AtomicU64,
    pub backlog_bytes: AtomicU64,
    pub dead_letters_stored: AtomicU64,
    pub last_error: Mutex<String>,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    pub fn set_error(&self, e: impl Into<String>) {
        if let Ok(mut s) = self.last_error.lock() {
            *s = e.into();
        }
    }

    pub fn last_error(&self) -> String {
        self.last_error
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}
