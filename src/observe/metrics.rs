//! Prometheus text exposition (`GET /metrics`) of the agent's statistics.
//!
//! Names follow Prometheus conventions: `hissrv_` prefix, base units (seconds,
//! bytes), `_total` for counters. The histograms are `histogram`'s.

use crate::observe::stats::Stats;
use portable_atomic::AtomicU64;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

fn counter(out: &mut String, name: &str, help: &str, labelled: &[(&str, &AtomicU64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, v) in labelled {
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}{braces} {}", v.load(Relaxed));
    }
}

fn gauge(out: &mut String, name: &str, help: &str, v: f64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

/// Live values only the executor knows.
pub struct RingGauges {
    pub points: usize,
    pub bytes: usize,
    pub capacity_bytes: usize,
}

/// The whole exposition.
pub fn render(s: &Stats, ring: &RingGauges) -> String {
    let mut o = String::with_capacity(8 * 1024);
    counter(
        &mut o,
        "hissrv_http_requests_total",
        "HTTP requests handled.",
        &[("", &s.http_requests)],
    );
    counter(
        &mut o,
        "hissrv_points_received_total",
        "Points parsed from producers (HTTP and UDP).",
        &[("", &s.points_received)],
    );
    counter(
        &mut o,
        "hissrv_points_restored_total",
        "Points written with the x-hissrv-restore header (hissrv restore): never archived again.",
        &[("", &s.points_restored)],
    );
    counter(
        &mut o,
        "hissrv_points_accepted_total",
        "Points committed to the write-ahead buffer.",
        &[("", &s.points_committed)],
    );
    counter(
        &mut o,
        "hissrv_points_written_total",
        "Points the upstream accepted.",
        &[("", &s.points_written)],
    );
    counter(
        &mut o,
        "hissrv_points_dropped_total",
        "UDP points dropped, by reason.",
        &[
            ("reason=\"ring_full\"", &s.udp_dropped_ring_full),
            ("reason=\"unparseable\"", &s.udp_lines_unparseable),
        ],
    );
    counter(
        &mut o,
        "hissrv_udp_datagrams_refused_total",
        "UDP datagrams refused: auth is on and service.udp_allow_unauthenticated is not.",
        &[("", &s.udp_datagrams_unauthenticated)],
    );
    counter(
        &mut o,
        "hissrv_lines_rejected_total",
        "Lines refused by the parser (HTTP and UDP).",
        &[("", &s.lines_rejected)],
    );
    counter(
        &mut o,
        "hissrv_write_requests_refused_total",
        "HTTP write requests refused whole, by reason.",
        &[
            ("reason=\"ring_full\"", &s.ring_full_refusals),
            ("reason=\"storage_full\"", &s.storage_full_refusals),
            ("reason=\"read_only\"", &s.read_only_refusals),
            ("reason=\"clock_unset\"", &s.clock_unset_refusals),
            ("reason=\"shutting_down\"", &s.shutdown_refusals),
            ("reason=\"too_many_destinations\"", &s.destination_refusals),
        ],
    );
    counter(
        &mut o,
        "hissrv_batches_committed_total",
        "Batches committed to the write-ahead buffer.",
        &[("", &s.batches_committed)],
    );
    counter(
        &mut o,
        "hissrv_bytes_committed_total",
        "Encoded bytes committed to the write-ahead buffer (payloads as stored).",
        &[("", &s.bytes_committed)],
    );
    counter(
        &mut o,
        "hissrv_batches_written_total",
        "Batches delivered upstream.",
        &[("", &s.batches_written)],
    );
    counter(
        &mut o,
        "hissrv_dead_letter_lines_total",
        "Lines the upstream refused for good (kept as dead letters).",
        &[("", &s.dead_letter_lines)],
    );
    counter(
        &mut o,
        "hissrv_upstream_write_failures_total",
        "Failed upstream writes, by status class.",
        &[
            ("class=\"4xx\"", &s.upstream_failures_4xx),
            ("class=\"5xx\"", &s.upstream_failures_5xx),
            ("class=\"network\"", &s.upstream_failures_network),
        ],
    );
    counter(
        &mut o,
        "hissrv_dead_letters_pruned_total",
        "Oldest dead letters removed to keep them under buffer.max_dead_letters_mb.",
        &[("", &s.dead_letters_pruned)],
    );
    counter(
        &mut o,
        "hissrv_points_expired_total",
        "Points not sent because they outlived their bucket's retention (kept as dead letters).",
        &[("", &s.points_expired)],
    );
    counter(
        &mut o,
        "hissrv_hot_points_expired_total",
        "Of the points expired, those past their hot tier's lifecycle hot_days (their aggregates are in the warm tier).",
        &[("", &s.points_expired_hot)],
    );
    counter(
        &mut o,
        "hissrv_retention_management_failures_total",
        "Failed attempts to create or adjust buckets upstream (manage_retention).",
        &[("", &s.provision_failures)],
    );
    counter(
        &mut o,
        "hissrv_config_reloads_total",
        "Config reloads, by result (refused: the file was invalid; the old config runs on).",
        &[
            ("result=\"applied\"", &s.config_reloads),
            ("result=\"refused\"", &s.config_reload_failures),
        ],
    );
    gauge(
        &mut o,
        "hissrv_config_file_valid",
        "1 if the config file in force is the one on disk, 0 after a refused reload.",
        if s.config_error.lock().is_ok_and(|e| e.is_empty()) {
            1.0
        } else {
            0.0
        },
    );
    gauge(
        &mut o,
        "hissrv_config_restart_needed",
        "Changed settings that take effect only after a restart.",
        s.restart_needed.lock().map_or(0, |r| r.len()) as f64,
    );
    counter(
        &mut o,
        "hissrv_upstream_retries_total",
        "Deliveries of a batch that had failed before.",
        &[("", &s.retries)],
    );
    gauge(
        &mut o,
        "hissrv_ingest_rate_points_per_second",
        "Ingest rate measured by the adaptive batcher.",
        s.ingest_rate.load(Relaxed) as f64,
    );
    gauge(
        &mut o,
        "hissrv_commit_latency_ewma_seconds",
        "Moving average of commit durations, as the batcher sees it.",
        s.commit_latency_ewma_us.load(Relaxed) as f64 / 1e6,
    );
    gauge(
        &mut o,
        "hissrv_ring_points",
        "Points in memory awaiting a commit (queue depth).",
        ring.points as f64,
    );
    gauge(
        &mut o,
        "hissrv_ring_bytes",
        "Bytes in memory awaiting a commit.",
        ring.bytes as f64,
    );
    gauge(
        &mut o,
        "hissrv_ring_capacity_bytes",
        "Configured ring capacity.",
        ring.capacity_bytes as f64,
    );
    gauge(
        &mut o,
        "hissrv_buffer_bytes",
        "Bytes of live data in the buffer file.",
        s.buffer_bytes.load(Relaxed) as f64,
    );
    gauge(
        &mut o,
        "hissrv_buffer_disk_bytes",
        "What the file system holds for the buffer (database, WAL, -shm): what buffer.max_size_mb counts.",
        s.buffer_disk_bytes.load(Relaxed) as f64,
    );
    gauge(
        &mut o,
        "hissrv_backlog_points",
        "Points stored and not yet delivered.",
        s.backlog.points.load(Relaxed) as f64,
    );
    gauge(
        &mut o,
        "hissrv_backlog_batches",
        "Batches stored and not yet delivered.",
        s.backlog.batches.load(Relaxed) as f64,
    );
    let oldest = s.backlog.oldest_ms.load(Relaxed) as i64;
    let age = if oldest > 0 {
        crate::clock::age_ms(oldest) as f64 / 1e3
    } else {
        0.0
    };
    gauge(
        &mut o,
        "hissrv_oldest_unsent_age_seconds",
        "How long the oldest undelivered point has waited in the buffer.",
        age,
    );
    gauge(
        &mut o,
        "hissrv_dead_letters",
        "Dead-letter lines stored in the buffer.",
        s.dead_letters_stored.load(Relaxed) as f64,
    );
    gauge(
        &mut o,
        "hissrv_upstream_up",
        "1 if the last upstream write reached the server.",
        if s.upstream_up.load(Relaxed) {
            1.0
        } else {
            0.0
        },
    );
    gauge(
        &mut o,
        "hissrv_wall_clock_untrusted",
        "1 while the wall clock is unset or stepped forward past the monotonic clock: retention expiry paused.",
        if s.clock_untrusted.load(Relaxed) {
            1.0
        } else {
            0.0
        },
    );
    gauge(
        &mut o,
        "hissrv_upstream_failing_seconds",
        "How long the destination failing longest has failed without a success (0 while all deliver).",
        s.upstream_failing_for_ms() as f64 / 1e3,
    );
    gauge(
        &mut o,
        "hissrv_buffer_disk_reserve_missing",
        "1 while the buffer's disk reserve is spent (after draining a full disk): writes get 507.",
        if s.disk_reserve_missing.load(Relaxed) {
            1.0
        } else {
            0.0
        },
    );
    gauge(
        &mut o,
        "hissrv_buffer_read_only",
        "1 while the buffer's file system refuses writes: writes get 503 and deliveries pause.",
        if s.buffer_read_only.load(Relaxed) {
            1.0
        } else {
            0.0
        },
    );
    s.write_duration.render(
        &mut o,
        "hissrv_write_duration_seconds",
        "Duration of upstream write requests.",
    );
    s.batch_size.render(
        &mut o,
        "hissrv_batch_size_points",
        "Points per committed batch.",
    );
    s.ack_latency.render(
        &mut o,
        "hissrv_ack_latency_seconds",
        "From a write request's arrival to its durable acknowledgement.",
    );
    s.commit_duration.render(
        &mut o,
        "hissrv_commit_duration_seconds",
        "Duration of write-ahead buffer commits.",
    );
    downsampling(&mut o, &s.downsampling);
    archiving(&mut o, &s.archiving);
    o
}

/// The cold archive (`lifecycle.rules` with `cold_storage`); zeros without one.
fn archiving(o: &mut String, a: &crate::observe::archiving::Archiving) {
    for (name, help, v) in [
        (
            "hissrv_archive_objects_total",
            "Archive objects written and confirmed (synced and renamed).",
            &a.objects,
        ),
        (
            "hissrv_archive_points_total",
            "Raw points written to archive objects.",
            &a.points,
        ),
        (
            "hissrv_archive_bytes_total",
            "Bytes of archive objects written (gzip).",
            &a.bytes,
        ),
        (
            "hissrv_archive_failures_total",
            "Archive runs that failed (retried after a back-off; nothing left the buffer).",
            &a.failures,
        ),
    ] {
        counter(o, name, help, &[("", v)]);
    }
    for (name, help, v) in [
        (
            "hissrv_archive_pending_points",
            "Raw points buffered that an archive has not confirmed yet.",
            &a.pending_points,
        ),
        (
            "hissrv_archive_pending_bytes",
            "Stored bytes of the batches an archive has not confirmed yet (counted in the quota).",
            &a.pending_bytes,
        ),
        (
            "hissrv_archive_oldest_pending_seconds",
            "Age of the oldest batch an archive has not confirmed yet.",
            &a.oldest_pending_s,
        ),
    ] {
        gauge(o, name, help, v.load(Relaxed) as f64);
    }
}

/// The warm tier (`lifecycle.rules` with `downsample`); zeros without one.
fn downsampling(o: &mut String, d: &crate::observe::downsampling::Downsampling) {
    for (name, help, v) in [
        (
            "hissrv_downsample_values_counted_total",
            "Field values counted into a downsampling window.",
            &d.counted,
        ),
        (
            "hissrv_downsample_values_repeated_total",
            "Field values at a series, field and timestamp already counted (a retry): not counted again.",
            &d.repeats,
        ),
        (
            "hissrv_downsample_values_late_total",
            "Field values later than their window's max_lateness: kept raw, not aggregated.",
            &d.late,
        ),
        (
            "hissrv_downsample_values_refused_full_total",
            "Field values not aggregated because lifecycle.max_open_windows windows were open.",
            &d.full,
        ),
        (
            "hissrv_downsample_type_conflicts_total",
            "Field values of another type than their window's first: not aggregated.",
            &d.type_conflicts,
        ),
        (
            "hissrv_downsample_windows_emitted_total",
            "Windows emitted for the first time (aggregates written to the warm destination).",
            &d.emitted,
        ),
        (
            "hissrv_downsample_windows_reemitted_total",
            "Windows emitted again, corrected by points later than the grace.",
            &d.re_emitted,
        ),
        (
            "hissrv_downsample_aggregate_points_total",
            "Aggregate points committed to the buffer for the warm destinations.",
            &d.points_committed,
        ),
        (
            "hissrv_downsample_points_degraded_total",
            "Raw points deleted undelivered by buffer.when_full: degrade (the warm tier holds them).",
            &d.points_degraded,
        ),
        (
            "hissrv_downsample_batches_degraded_total",
            "Raw batches deleted undelivered by buffer.when_full: degrade.",
            &d.batches_degraded,
        ),
        (
            "hissrv_downsample_checkpoints_total",
            "Window checkpoints written to the buffer.",
            &d.checkpoints,
        ),
        (
            "hissrv_downsample_checkpoint_failures_total",
            "Window checkpoints whose write failed (retried; the windows rebuilt from the buffer).",
            &d.checkpoint_failures,
        ),
    ] {
        counter(o, name, help, &[("", v)]);
    }
    gauge(
        o,
        "hissrv_downsample_open_windows",
        "Field windows (series x field x window) held in memory.",
        d.open_windows.load(Relaxed) as f64,
    );
    gauge(
        o,
        "hissrv_downsample_max_open_windows",
        "lifecycle.max_open_windows: field windows held at most.",
        d.max_open_windows.load(Relaxed) as f64,
    );
}
