//! Self-monitoring: every `service.self_monitoring.interval_ms` the agent
//! writes one `hissrv_internal` point with its own counters and gauges to
//! `influxdb.database`, through the same ring, buffer and forwarder as any
//! producer's points — so the operator sees the gateway's health upstream,
//! including for the hours its uplink was down.
//!
//! Off by default. A point that finds the ring full is skipped (and logged):
//! the agent's own telemetry never pushes out producers' data.

use crate::clock::now_ns;
use crate::ingest::Ingest;
use crate::observe::stats::Stats;
use std::fmt::Write;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Escapes a tag value per line protocol (commas, spaces, equals signs).
fn escape_tag(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, ',' | ' ' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One `hissrv_internal` line from the current counters.
pub fn line(agent: &str, s: &Stats, ring_points: usize, ts_ns: i64) -> String {
    let mut l = format!("hissrv_internal,agent={} ", escape_tag(agent));
    let fields: [(&str, u64); 12] = [
        ("points_received", Stats::get(&s.points_received)),
        ("points_accepted", Stats::get(&s.points_committed)),
        ("points_written", Stats::get(&s.points_written)),
        ("lines_rejected", Stats::get(&s.lines_rejected)),
        ("udp_points_dropped", Stats::get(&s.udp_points_dropped)),
        ("refused_ring_full", Stats::get(&s.ring_full_refusals)),
        ("refused_storage_full", Stats::get(&s.storage_full_refusals)),
        ("upstream_failures", Stats::get(&s.upstream_failures)),
        ("backlog_points", Stats::get(&s.backlog.points)),
        ("backlog_batches", Stats::get(&s.backlog.batches)),
        ("buffer_bytes", Stats::get(&s.buffer_bytes)),
        ("dead_letters", Stats::get(&s.dead_letters_stored)),
    ];
    for (name, v) in fields {
        let _ = write!(l, "{name}={v}i,");
    }
    let _ = write!(
        l,
        "ring_points={ring_points}i,ingest_rate={}i,upstream_up={} {ts_ns}",
        Stats::get(&s.ingest_rate),
        s.upstream_up.load(Relaxed)
    );
    l
}

/// Runs until `stop` closes.
pub async fn run(ingest: Rc<Ingest>, interval: Duration, stop: smol::channel::Receiver<()>) {
    loop {
        let tick = async {
            smol::Timer::after(interval).await;
            true
        };
        let stopped = async {
            let _ = stop.recv().await;
            false
        };
        if !smol::future::or(stopped, tick).await {
            return;
        }
        let ring_points = ingest.intake.ring.borrow().points();
        let l = line(
            &ingest.settings().config.service.name,
            &ingest.stats,
            ring_points,
            now_ns(),
        );
        if !ingest.store_internal(l.as_bytes()) {
            log::debug!("self-monitoring point skipped: ring full");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineproto::{ParseOptions, Precision, parse_into};

    #[test]
    fn the_internal_line_is_valid_line_protocol() {
        let s = Stats::default();
        Stats::add(&s.points_received, 42);
        let l = line("gw 1,a=b", &s, 7, 123);
        let mut out = Vec::new();
        let opts = ParseOptions {
            precision: Precision::Nanos,
            now_ns: 0,
            allow_unsigned: false,
        };
        let p = parse_into(l.as_bytes(), &opts, &mut out);
        assert_eq!((p.points, p.rejected), (1, 0), "{l}");
        assert!(l.starts_with("hissrv_internal,agent=gw\\ 1\\,a\\=b points_received=42i,"));
        assert!(l.ends_with(",ring_points=7i,ingest_rate=0i,upstream_up=false 123"));
    }
}
