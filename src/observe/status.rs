//! `hissrv status`: a human summary read from a running agent's `/health`.
//!
//! Two samples a second apart give the throughput; the rest is the agent's
//! own counters and gauges. The same [`Health`] document is what `/health`
//! serves, so the two cannot drift apart.

use std::fmt::Write;
use std::time::{Duration, Instant};

/// Between the two samples that give the throughput.
const SAMPLE_INTERVAL_MS: u64 = 1_000;

/// The `/health` document.
#[derive(Debug, Clone, miniserde::Serialize, miniserde::Deserialize)]
pub struct Health {
    pub name: String,
    pub status: String,
    pub message: String,
    pub version: String,
    pub upstream_url: String,
    pub upstream_up: bool,
    /// How long deliveries have failed without one success (0: they do not).
    pub upstream_failing_for_ms: u64,
    /// The wall clock is unset or stepped forward: retention expiry paused
    /// (and, while unset, lines without a timestamp refused).
    pub clock_untrusted: bool,
    pub points_received: u64,
    pub points_committed: u64,
    pub points_written: u64,
    pub lines_rejected: u64,
    pub dead_letter_lines: u64,
    pub backlog_batches: u64,
    pub backlog_points: u64,
    pub backlog_bytes: u64,
    /// What the file system holds for the buffer (database, WAL, `-shm`).
    pub buffer_disk_bytes: u64,
    pub oldest_unsent_age_ms: u64,
    pub dead_letters_stored: u64,
    pub ring_points: u64,
    pub ring_bytes: u64,
    pub ring_capacity_bytes: u64,
    pub refused_ring_full: u64,
    pub refused_storage_full: u64,
    /// The buffer's disk reserve was spent draining a full disk: writes get
    /// 507 until it is made again.
    pub disk_reserve_missing: bool,
    /// The buffer's file system refuses writes: writes get 503, deliveries
    /// pause, both resume when it is writable again.
    pub buffer_read_only: bool,
    pub refused_read_only: u64,
    pub udp_points_dropped: u64,
    pub upstream_failures: u64,
    pub points_expired: u64,
    /// Of them, older than a hot tier's `hot_days`.
    pub points_expired_hot: u64,
    pub retention_failures: u64,
    pub last_error: String,
    pub config_reloads: u64,
    pub config_reloads_refused: u64,
    /// Why the last reload was refused; empty when the file in force is valid.
    pub config_error: String,
    /// Changed settings waiting for a restart.
    pub restart_needed: Vec<String>,
    /// The warm tier, with a downsampling rule.
    pub downsampling: Option<crate::observe::downsampling::WarmHealth>,
    /// The cold archive, with an archiving rule.
    pub archive: Option<crate::observe::archiving::ColdHealth>,
}

fn fetch(url: &str) -> Result<Health, String> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent();
    let body = agent
        .get(format!("{url}/health"))
        .call()
        .map_err(|e| format!("cannot reach hissrv at {url}: {e}"))?
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("cannot read {url}/health: {e}"))?;
    miniserde::json::from_str(&body)
        .map_err(|_| format!("{url}/health is not a hissrv health document"))
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn age(ms: u64) -> String {
    match ms / 1000 {
        s if s >= 86_400 => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// Renders the summary from two samples taken `secs` apart.
pub fn render(url: &str, a: &Health, b: &Health, secs: f64) -> String {
    let rate = |x: u64, y: u64| (y.saturating_sub(x)) as f64 / secs.max(1e-3);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} {} at {url}: {} ({})",
        b.name, b.version, b.message, b.status
    );
    let _ = writeln!(
        o,
        "upstream     {} {}",
        b.upstream_url,
        match (b.upstream_failing_for_ms, b.upstream_up) {
            (0, true) => "up".to_string(),
            (0, false) => "not reached yet".to_string(),
            (ms, _) => format!(
                "DOWN: deliveries failing for {} s (see last error)",
                ms / 1000
            ),
        }
    );
    let _ = writeln!(
        o,
        "throughput   {:.0} points/s in, {:.0} points/s delivered (over {secs:.1} s)",
        rate(a.points_received, b.points_received),
        rate(a.points_written, b.points_written)
    );
    let oldest = if b.backlog_points > 0 {
        format!("; oldest unsent waited {}", age(b.oldest_unsent_age_ms))
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        "backlog      {} points in {} batches, {} ({} on disk){oldest}",
        b.backlog_points,
        b.backlog_batches,
        bytes(b.backlog_bytes),
        bytes(b.buffer_disk_bytes)
    );
    let _ = writeln!(
        o,
        "memory ring  {} points, {} of {}",
        b.ring_points,
        bytes(b.ring_bytes),
        bytes(b.ring_capacity_bytes)
    );
    let _ = writeln!(
        o,
        "totals       {} received, {} stored, {} delivered, {} lines rejected, {} dead letters",
        b.points_received,
        b.points_committed,
        b.points_written,
        b.lines_rejected,
        b.dead_letters_stored
    );
    let _ = writeln!(
        o,
        "refused      {} writes (rings full), {} writes (storage full), {} writes (buffer read-only), {} UDP points dropped, {} failed upstream writes",
        b.refused_ring_full,
        b.refused_storage_full,
        b.refused_read_only,
        b.udp_points_dropped,
        b.upstream_failures
    );
    let last = if b.last_error.is_empty() {
        "none"
    } else {
        &b.last_error
    };
    let _ = writeln!(o, "last error   {last}");
    if b.points_expired > 0 || b.retention_failures > 0 {
        let _ = writeln!(
            o,
            "retention    {} points older than their bucket's retention (dead letters; {} of them past a hot tier's hot_days), {} failed attempts to manage retention",
            b.points_expired, b.points_expired_hot, b.retention_failures
        );
    }
    let mut config = format!(
        "{} reloads applied, {} refused",
        b.config_reloads, b.config_reloads_refused
    );
    if !b.config_error.is_empty() {
        let _ = write!(
            config,
            "; FILE REFUSED, old config running: {}",
            b.config_error
        );
    }
    if !b.restart_needed.is_empty() {
        let _ = write!(
            config,
            "; restart needed for {}",
            b.restart_needed.join(", ")
        );
    }
    let _ = writeln!(o, "config       {config}");
    if let Some(w) = &b.downsampling {
        let _ = writeln!(
            o,
            "downsampling {} of {} field windows open; {} windows emitted, {} again after late points; {} aggregate points stored; {} values late (kept raw), {} refused (windows full), {} retries not counted again; {} raw points degraded{}",
            w.open_windows,
            w.max_open_windows,
            w.windows_emitted,
            w.windows_reemitted,
            w.aggregate_points,
            w.values_late,
            w.values_refused_full,
            w.values_repeated,
            w.points_degraded,
            if w.checkpoint_failures > 0 {
                format!(
                    "; {} CHECKPOINTS FAILED (see last error)",
                    w.checkpoint_failures
                )
            } else {
                String::new()
            }
        );
    }
    if let Some(a) = &b.archive {
        let _ = writeln!(
            o,
            "archive      {} points ({}) in {} batches owed, oldest {}; {} objects written ({} points, {}){}",
            a.pending_points,
            bytes(a.pending_bytes),
            a.pending_batches,
            age(a.oldest_pending_s.saturating_mul(1000)),
            a.objects_written,
            a.points_archived,
            bytes(a.bytes_written),
            if a.last_error.is_empty() {
                String::new()
            } else {
                format!("; FAILING ({} runs): {}", a.failures, a.last_error)
            }
        );
    }
    o
}

/// Samples the agent at `url` twice and returns the summary.
pub fn status(url: &str) -> Result<String, String> {
    let url = url.trim_end_matches('/');
    let first = fetch(url)?;
    let t = Instant::now();
    std::thread::sleep(Duration::from_millis(SAMPLE_INTERVAL_MS));
    let second = fetch(url)?;
    Ok(render(url, &first, &second, t.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_read_like_a_person_would_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(age(90_000), "1m 30s");
        assert_eq!(age(2 * 86_400_000 + 3_600_000), "2d 1h");
    }
}
