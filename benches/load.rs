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
//! HISSRV_BENCH_CONNS=4). Needs `influxd` on the PATH.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SERIES: usize = 1_000;
const FIELDS: usize = 10;
const LINES_PER_BODY: usize = 5_000;
/// Distinct bodies generated up front (then cycled: a re-sent point overwrites
/// itself upstream, and counting uses hissrv's own counters).
const BODIES: usize = 40;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Energy-meter-like telemetry: per series, 10 fields quantised like a meter's.
fn bodies() -> Vec<Arc<Vec<u8>>> {
    let base: i64 = 1_700_000_000_000_000_000;
    (0..BODIES)
        .map(|b| {
            let mut s = String::with_capacity(LINES_PER_BODY * 220);
            for l in 0..LINES_PER_BODY {
                let n = b * LINES_PER_BODY + l;
                let series = n % SERIES;
                let ts = base + (n / SERIES) as i64 * 1_000_000_000;
                s.push_str(&format!(
                    "meter,site=plant{},meter_id=m{series:04}",
                    series % 10
                ));
                for f in 0..FIELDS {
                    let sep = if f == 0 { ' ' } else { ',' };
                    if f % 4 == 3 {
                        s.push_str(&format!("{sep}f{f}={}i", (n * 7 + f) % 100_000));
                    } else {
                        let v = 230.0 + ((n + f * 13) % 200) as f64 * 0.01;
                        s.push_str(&format!("{sep}f{f}={v:.2}"));
                    }
                }
                s.push_str(&format!(" {ts}\n"));
            }
            Arc::new(s.into_bytes())
        })
        .collect()
}

/// One run's figures.
struct Row {
    acked_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    delivered_s: f64,
    rss_mib: f64,
    direct_s: f64,
}

struct Load {
    points: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    refused: u64,
}

fn drive(url: &str, bodies: &[Arc<Vec<u8>>], conns: usize, dur: Duration) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let lat = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let handles: Vec<_> = (0..conns)
        .map(|c| {
            let (url, stop, lat) = (url.to_string(), stop.clone(), lat.clone());
            let bodies: Vec<_> = bodies.to_vec();
            std::thread::spawn(move || {
                let agent = agent();
                let (mut ok, mut refused, mut mine) = (0u64, 0u64, Vec::new());
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let r = agent.post(&url).send(&bodies[i % bodies.len()][..]);
                    mine.push(t.elapsed());
                    match r.map(|r| r.status().as_u16()) {
                        Ok(204) => ok += LINES_PER_BODY as u64,
                        _ => refused += 1,
                    }
                    i += conns;
                }
                lat.lock().unwrap().extend(mine);
                (ok, refused)
            })
        })
        .collect();
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    let (mut points, mut refused) = (0, 0);
    for h in handles {
        let (o, r) = h.join().unwrap();
        points += o;
        refused += r;
    }
    let elapsed = start.elapsed();
    let mut latencies = std::mem::take(&mut *lat.lock().unwrap());
    latencies.sort();
    Load {
        points,
        elapsed,
        latencies,
        refused,
    }
}

fn pct(v: &[Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn health_counter(url: &str, key: &str) -> u64 {
    let body = agent()
        .get(format!("{url}/health"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    let pat = format!("\"{key}\":");
    body.find(&pat)
        .map(|i| &body[i + pat.len()..])
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let secs = env_or("HISSRV_BENCH_SECS", 10);
    let runs = env_or("HISSRV_BENCH_RUNS", 3) as usize;
    let conns = env_or("HISSRV_BENCH_CONNS", 4) as usize;
    let dur = Duration::from_secs(secs);
    let bodies = bodies();
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
            conns,
            dur,
        );
        let _ = influx.query("direct", "DROP DATABASE direct");

        influx.create_db("bench");
        let h = Hissrv::start_with(
            &influx.url(),
            Sections {
                service: "  log_level: info\n",
                influxdb: "  database: bench\n",
                ..Sections::default()
            },
        );
        let start = Instant::now();
        let load = drive(&format!("{}/write?db=bench", h.url()), &bodies, conns, dur);
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
