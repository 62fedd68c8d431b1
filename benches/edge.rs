//! Edge footprint benchmark: binary size, idle RSS, RSS while ingesting
//! 10,000 lines/s, and saturated throughput, for one or more builds compared
//! in the same run (the first is the baseline for the ratios).
//!
//! Builds are given as `HISSRV_EDGE_BUILDS="name=path[@runner];…"`, e.g.
//! `o3=target/release/hissrv;os=/tmp/os/release/hissrv` or an ARM build with
//! `@qemu-aarch64` (under emulation RSS includes qemu's own, a sanity check
//! only). Without it: this checkout's release build. Each build runs against
//! the same real influxd:
//! - idle: started, no writes, RSS after `IDLE_SETTLE_MS`;
//! - 10k lines/s: `RATE_LINES_PER_S` telemetry lines/s (100-line bodies on two
//!   connections, open loop) for `HISSRV_EDGE_SECS` s, delivered upstream as
//!   they come; peak RSS (VmHWM) at the end;
//! - saturated: 4 connections, 5,000-line bodies, closed loop, points/s acked.
//!
//! Run: `cargo bench --bench edge` (env: HISSRV_EDGE_BUILDS, HISSRV_EDGE_SECS=20,
//! HISSRV_EDGE_RUNS=3). Needs `influxd` on the PATH.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::*;

/// The ingest rate the memory budget is stated at.
const RATE_LINES_PER_S: u64 = 10_000;
/// Lines per request at that rate (a PLC poller's batch).
const RATE_LINES_PER_BODY: usize = 100;
/// Connections sharing the rate.
const RATE_CONNS: u64 = 2;
/// How long an idle agent settles before its RSS is read.
const IDLE_SETTLE_MS: u64 = 2_000;
/// Saturated phase: closed loop, as in the load benchmark.
const SATURATE_CONNS: usize = 4;
const SATURATE_LINES_PER_BODY: usize = 5_000;

/// `RATE_LINES_PER_S` lines/s for `dur`, open loop; returns lines acked.
fn steady_rate(url: &str, dur: Duration) -> u64 {
    let bodies = telemetry(0, 50, RATE_LINES_PER_BODY);
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let every = Duration::from_secs_f64(
        RATE_LINES_PER_BODY as f64 * RATE_CONNS as f64 / RATE_LINES_PER_S as f64,
    );
    let threads: Vec<_> = (0..RATE_CONNS)
        .map(|c| {
            let (url, bodies, acked, stop) =
                (url.to_string(), bodies.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let http = agent();
                let mut next = Instant::now() + every.mul_f64(c as f64 / RATE_CONNS as f64);
                let mut i = c as usize;
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if now < next {
                        std::thread::sleep(next - now);
                    }
                    next += every;
                    let ok = http
                        .post(format!("{url}/write?db=edge"))
                        .send(&bodies[i % bodies.len()][..])
                        .is_ok_and(|r| r.status().as_u16() == 204);
                    if ok {
                        acked.fetch_add(RATE_LINES_PER_BODY as u64, Ordering::Relaxed);
                    }
                    i += RATE_CONNS as usize;
                }
            })
        })
        .collect();
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    acked.load(Ordering::Relaxed)
}

struct Row {
    idle_mib: f64,
    rate_mib: f64,
    rate_lines_s: f64,
    saturated_s: f64,
}

fn measure(influx: &Influx, secs: u64) -> Row {
    influx.create_db("edge");
    let h = Hissrv::start_with(
        &influx.url(),
        Sections {
            service: "  log_level: warn\n",
            influxdb: "  database: edge\n",
            ..Sections::default()
        },
    );
    std::thread::sleep(Duration::from_millis(IDLE_SETTLE_MS));
    let idle_mib = proc_status_kib(h.pid(), "VmRSS") as f64 / 1024.0;
    let started = Instant::now();
    let lines = steady_rate(&h.url(), Duration::from_secs(secs));
    let rate_lines_s = lines as f64 / started.elapsed().as_secs_f64();
    let rate_mib = vm_hwm_kib(h.pid()) as f64 / 1024.0;
    let bodies = telemetry(0, 20, SATURATE_LINES_PER_BODY);
    let load = drive(
        &format!("{}/write?db=edge", h.url()),
        &bodies,
        SATURATE_LINES_PER_BODY as u64,
        SATURATE_CONNS,
        Duration::from_secs(5),
    );
    drop(h);
    let _ = influx.query("edge", "DROP DATABASE edge");
    Row {
        idle_mib,
        rate_mib,
        rate_lines_s,
        saturated_s: load.points as f64 / load.elapsed.as_secs_f64(),
    }
}

fn main() {
    let secs = env_or("HISSRV_EDGE_SECS", 20);
    let runs = env_or("HISSRV_EDGE_RUNS", 3) as usize;
    let spec = std::env::var("HISSRV_EDGE_BUILDS").unwrap_or_else(|_| {
        format!(
            "this={}",
            concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/hissrv")
        )
    });
    let builds: Vec<(String, String, String)> = spec
        .split(';')
        .filter(|s| !s.is_empty())
        .map(|b| {
            let (name, rest) = b.split_once('=').expect("name=path[@runner]");
            let (path, runner) = rest.split_once('@').unwrap_or((rest, ""));
            (name.into(), path.into(), runner.into())
        })
        .collect();
    println!(
        "edge footprint: {} build(s), {runs} runs, {RATE_LINES_PER_S} lines/s for {secs} s",
        builds.len()
    );
    let influx = Influx::start();
    let mut rows: Vec<Vec<Row>> = builds.iter().map(|_| Vec::new()).collect();
    // Builds interleaved run by run, so drift in the machine hits all alike.
    for run in 1..=runs {
        for (i, (name, path, runner)) in builds.iter().enumerate() {
            *BINARY.lock().unwrap() = Some((path.clone(), runner.clone()));
            let r = measure(&influx, secs);
            println!(
                "run {run} {name}: idle RSS {:.2} MiB, at {:.0} lines/s peak RSS {:.2} MiB, saturated {:.0} points/s",
                r.idle_mib, r.rate_lines_s, r.rate_mib, r.saturated_s
            );
            rows[i].push(r);
        }
    }
    println!("\nmedians of {runs} runs (ratios to {}):", builds[0].0);
    let med = |v: &[Row], f: fn(&Row) -> f64| median(v.iter().map(f).collect());
    let base = med(&rows[0], |r| r.saturated_s);
    for ((name, path, runner), r) in builds.iter().zip(&rows) {
        let size = std::fs::metadata(path).map_or(0, |m| m.len());
        println!(
            "  {name:<8} {:>9} bytes ({:.2} MiB){}  idle {:.2} MiB  @10k lines/s {:.2} MiB  saturated {:.0} points/s ({:.2}x)",
            size,
            size as f64 / (1 << 20) as f64,
            if runner.is_empty() {
                String::new()
            } else {
                format!(" under {runner}")
            },
            med(r, |r| r.idle_mib),
            med(r, |r| r.rate_mib),
            med(r, |r| r.saturated_s),
            med(r, |r| r.saturated_s) / base,
        );
    }
}
