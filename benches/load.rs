//! Load benchmark: drives the release build of hissrv over HTTP from this
//! separate process, as producers on a gateway would, and measures it against
//! a baseline in the same run: the same load written straight to influxd.
//!
//! Workload: 1,000 series × 10 float/int fields, 5,000-line bodies, several
//! keep-alive connections, `synchronous: full`. Reports, per run and as the
//! median of runs: points/s acknowledged (204 = committed durably), p50/p99
//! request latency, peak RSS of hissrv (VmHWM), and points/s delivered to the
//! real InfluxDB (drain of everything acknowledged).
//!
//! Run: `cargo bench --bench load` (env: HISSRV_BENCH_SECS=10, HISSRV_BENCH_RUNS=3,
//! HISSRV_BENCH_CONNS=4, HISSRV_BENCH_ROUTING=1 to route by bucket rules). Needs
//! `influxd` on the PATH.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::*;
use std::time::{Duration, Instant};
use support::*;

const LINES_PER_BODY: usize = 5_000;
/// Distinct bodies generated up front (then cycled: a re-sent point overwrites
/// itself upstream, and counting uses hissrv's own counters).
const BODIES: usize = 40;

/// `HISSRV_BENCH_ROUTING=1`: every line is split by field into two buckets
/// and the producer's database (the tag-based rule's worst case).
const ROUTING: &str = "  database: bench\n  manage_retention: true\n  sharding:\n    buckets:\n      - {name: electrical, points: [f0, f1, f2]}\n      - {name: energy, points: [f3, f7]}\n";

/// One run's figures.
struct Row {
    acked_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    delivered_s: f64,
    rss_mib: f64,
    direct_s: f64,
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let secs = env_or("HISSRV_BENCH_SECS", 10);
    let runs = env_or("HISSRV_BENCH_RUNS", 3) as usize;
    let conns = env_or("HISSRV_BENCH_CONNS", 4) as usize;
    let routing = env_or("HISSRV_BENCH_ROUTING", 0) == 1;
    let dur = Duration::from_secs(secs);
    let bodies = telemetry(0, BODIES, LINES_PER_BODY);
    let body_kb = bodies[0].len() / 1024;
    println!(
        "workload: {SERIES} series x {FIELDS} fields, {LINES_PER_BODY}-line bodies (~{body_kb} KiB), {conns} connections, {secs} s per run, {runs} runs"
    );
    let influx = Influx::start();
    let mut rows = Vec::new();
    for run in 1..=runs {
        // Baseline: the same load straight into influxd.
        influx.create_db("direct");
        let direct = drive(
            &format!("{}/write?db=direct&precision=ns", influx.url()),
            &bodies,
            LINES_PER_BODY as u64,
            conns,
            dur,
        );
        let _ = influx.query("direct", "DROP DATABASE direct");

        influx.create_db("bench");
        let h = Hissrv::start_with(
            &influx.url(),
            Sections {
                service: "  log_level: info\n",
                influxdb: if routing {
                    ROUTING
                } else {
                    "  database: bench\n"
                },
                ..Sections::default()
            },
        );
        let start = Instant::now();
        let load = drive(
            &format!("{}/write?db=bench", h.url()),
            &bodies,
            LINES_PER_BODY as u64,
            conns,
            dur,
        );
        let committed = health_counter(&h.url(), "points_committed");
        let mut written = 0;
        let drain_deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < drain_deadline {
            written = health_counter(&h.url(), "points_written");
            if written >= committed {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let delivered_s = written as f64 / start.elapsed().as_secs_f64();
        let rss_mib = vm_hwm_kib(h.pid()) as f64 / 1024.0;
        let acked_s = load.points as f64 / load.elapsed.as_secs_f64();
        let direct_s = direct.points as f64 / direct.elapsed.as_secs_f64();
        println!(
            "run {run}: acked {acked_s:.0} points/s (p50 {:.1} ms, p99 {:.1} ms, {} refused), delivered {delivered_s:.0} points/s, peak RSS {rss_mib:.1} MiB | influxd direct {direct_s:.0} points/s (p50 {:.1} ms, p99 {:.1} ms)",
            pct(&load.latencies, 0.5),
            pct(&load.latencies, 0.99),
            load.refused,
            pct(&direct.latencies, 0.5),
            pct(&direct.latencies, 0.99),
        );
        rows.push(Row {
            acked_s,
            p50_ms: pct(&load.latencies, 0.5),
            p99_ms: pct(&load.latencies, 0.99),
            delivered_s,
            rss_mib,
            direct_s,
        });
        drop(h);
        let _ = influx.query("bench", "DROP DATABASE bench");
    }
    let col = |f: fn(&Row) -> f64| median(rows.iter().map(f).collect());
    let (acked, direct) = (col(|r| r.acked_s), col(|r| r.direct_s));
    println!("\nmedian of {runs} runs:");
    println!("  acknowledged durably (synchronous=full): {acked:.0} points/s");
    println!(
        "  request latency: p50 {:.1} ms, p99 {:.1} ms",
        col(|r| r.p50_ms),
        col(|r| r.p99_ms)
    );
    println!(
        "  delivered to influxd:                    {:.0} points/s",
        col(|r| r.delivered_s)
    );
    println!("  influxd direct (baseline):               {direct:.0} points/s");
    println!(
        "  ratio acknowledged / direct:             {:.2}",
        acked / direct
    );
    println!(
        "  peak RSS of hissrv:                      {:.1} MiB",
        col(|r| r.rss_mib)
    );
}
