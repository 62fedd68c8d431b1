//! The read-only pages of the ingest listener: `/metrics` (Prometheus text)
//! and `/health` (the JSON document `hissrv status` reads), built from the
//! shared statistics and the rings' live gauges.

use super::*;

impl Ingest {
    pub(super) fn metrics(&self) -> Response {
        let ring = self.intake.ring.borrow();
        let gauges = crate::observe::metrics::RingGauges {
            points: ring.points(),
            bytes: ring.bytes(),
            capacity_bytes: ring.capacity_bytes(),
        };
        let body = crate::observe::metrics::render(&self.stats, &gauges);
        let mut r =
            Response::new(200).header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        r.body = body.into_bytes();
        r
    }

    pub(super) fn health(&self) -> Response {
        let s = &self.stats;
        let live = self.settings();
        let ring = self.intake.ring.borrow();
        let oldest = Stats::get(&s.backlog.oldest_ms) as i64;
        let reserve_missing = s.disk_reserve_missing.load(Relaxed);
        let read_only = s.buffer_read_only.load(Relaxed);
        let (status, message) = if read_only {
            (
                "fail",
                "writes refused and deliveries paused: the buffer's file system is read-only",
            )
        } else if reserve_missing {
            (
                "warn",
                "writes refused: the disk is full (the buffer's disk reserve is missing)",
            )
        } else {
            ("pass", "ready for writes")
        };
        let h = Health {
            name: live.config.service.name.clone(),
            status: status.into(),
            message: message.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            upstream_url: live.config.influxdb.url.clone(),
            upstream_up: s.upstream_up.load(Relaxed),
            upstream_failing_for_ms: s.upstream_failing_for_ms(),
            clock_untrusted: s.clock_untrusted.load(Relaxed)
                || crate::clock::now_ns() < crate::clock::WALL_CLOCK_FLOOR_NS,
            points_received: Stats::get(&s.points_received),
            points_committed: Stats::get(&s.points_committed),
            points_written: Stats::get(&s.points_written),
            lines_rejected: Stats::get(&s.lines_rejected),
            dead_letter_lines: Stats::get(&s.dead_letter_lines),
            backlog_batches: Stats::get(&s.backlog.batches),
            backlog_points: Stats::get(&s.backlog.points),
            backlog_bytes: Stats::get(&s.backlog.bytes),
            buffer_disk_bytes: Stats::get(&s.buffer_disk_bytes),
            oldest_unsent_age_ms: if oldest > 0 {
                crate::clock::age_ms(oldest)
            } else {
                0
            },
            dead_letters_stored: Stats::get(&s.dead_letters_stored),
            ring_points: ring.points() as u64,
            ring_bytes: ring.bytes() as u64,
            ring_capacity_bytes: ring.capacity_bytes() as u64,
            refused_ring_full: Stats::get(&s.ring_full_refusals),
            refused_storage_full: Stats::get(&s.storage_full_refusals),
            disk_reserve_missing: s.disk_reserve_missing.load(Relaxed),
            buffer_read_only: read_only,
            refused_read_only: Stats::get(&s.read_only_refusals),
            udp_points_dropped: Stats::get(&s.udp_points_dropped),
            upstream_failures: Stats::get(&s.upstream_failures),
            points_expired: Stats::get(&s.points_expired),
            points_expired_hot: Stats::get(&s.points_expired_hot),
            retention_failures: Stats::get(&s.provision_failures),
            last_error: s.last_error(),
            config_reloads: Stats::get(&s.config_reloads),
            config_reloads_refused: Stats::get(&s.config_reload_failures),
            config_error: s.config_error.lock().map(|e| e.clone()).unwrap_or_default(),
            restart_needed: s
                .restart_needed
                .lock()
                .map(|r| r.clone())
                .unwrap_or_default(),
            downsampling: s.downsampling.health(),
            archive: s.archiving.health(),
        };
        Response::json(200, miniserde::json::to_string(&h))
    }
}
