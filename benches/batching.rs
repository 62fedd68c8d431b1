//! Batching benchmark: adaptive against fixed batching on the same workload
//! against a real InfluxDB, and the drain of a large backlog.
//!
//! 1. Saturation: 32 connections post 50-line bodies (10 fields) as fast as
//!    answers come, for each batcher: adaptive (default knobs), fixed at
//!    `min_batch_size` (100) and fixed at `max_batch_size` (10,000). Reports
//!    points/s acknowledged durably and points/s delivered end to end (until
//!    the buffer drained), commits and upstream requests.
//! 2. Low rate: one producer writes 100 points/s, one point a request; a
//!    poller reads influxd every 5 ms; end-to-end latency = first seen
//!    upstream − sent. p50/p99 for adaptive and fixed at `min_batch_size`.
//! 3. Backlog drain: with influxd stopped, HISSRV_BENCH_BACKLOG_POINTS
//!    (default 10,000,000) points go into hissrv; influxd starts; drain rate =
//!    points / time to an empty buffer. Baseline in the same run: the same
//!    number of points written straight to influxd by one writer and by four,
//!    10,000-point requests.
//!
//! Run: `cargo bench --bench batching` (env: HISSRV_BENCH_SECS=10,
//! HISSRV_BENCH_BACKLOG_POINTS=10000000, HISSRV_BENCH_PARTS=123 to pick parts,
//! HISSRV_BENCH_GZIP=1 for gzip upstream). Needs `influxd` on the PATH.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
use support::*;

const ADAPTIVE: &str = "performance:\n  adaptive_batching:\n    enabled: true\n    min_batch_size: 100\n    max_batch_size: 10000\n    max_wait_ms: 1000\n";
const FIXED_MIN: &str = "performance:\n  adaptive_batching:\n    enabled: false\n    min_batch_size: 100\n    max_batch_size: 100\n    max_wait_ms: 1000\n";
const FIXED_MAX: &str = "performance:\n  adaptive_batching:\n    enabled: false\n    min_batch_size: 10000\n    max_batch_size: 10000\n    max_wait_ms: 1000\n";

fn start(influx: &Influx, db: &str, batching: &str) -> Hissrv {
    influx.create_db(db);
    Hissrv::start_with(
        &influx.url(),
        Sections {
            service: "  log_level: warn\n  max_connections: 128\n",
            influxdb: &format!("  database: {db}\n"),
            other: batching,
            ..Sections::default()
        },
    )
}

/// Polls /health until everything committed was written upstream.
fn wait_drained(h: &Hissrv, limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        let committed = health_counter(&h.url(), "points_committed");
        let written = health_counter(&h.url(), "points_written");
        if written >= committed || Instant::now() > deadline {
            return Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn metric(h: &Hissrv, name: &str) -> f64 {
    let text = agent()
        .get(format!("{}/metrics", h.url()))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn saturation(influx: &Influx, secs: u64) {
    println!("\n1. saturation: 32 connections, 50-line bodies (10 fields), {secs} s each");
    let bodies = telemetry(0, 400, 50);
    let mut acked = Vec::new();
    for (name, cfg) in [
        ("adaptive", ADAPTIVE),
        ("fixed@min (100)", FIXED_MIN),
        ("fixed@max (10000)", FIXED_MAX),
    ] {
        let db = format!("sat{}", acked.len());
        let h = start(influx, &db, cfg);
        let t0 = Instant::now();
        let load = drive(
            &format!("{}/write?db={db}", h.url()),
            &bodies,
            50,
            32,
            Duration::from_secs(secs),
        );
        let done = wait_drained(&h, Duration::from_secs(600));
        let ack_s = load.points as f64 / load.elapsed.as_secs_f64();
        let e2e_s = health_counter(&h.url(), "points_written") as f64 / (done - t0).as_secs_f64();
        println!(
            "  {name:<18} acked {ack_s:>9.0} points/s (p99 request {:>7.1} ms) | delivered {e2e_s:>9.0} points/s | {} commits, {} upstream requests",
            pct(&load.latencies, 0.99),
            metric(&h, "hissrv_batches_committed_total"),
            metric(&h, "hissrv_write_duration_seconds_count"),
        );
        acked.push((ack_s, e2e_s));
        let _ = influx.query(&db, &format!("DROP DATABASE {db}"));
    }
    println!(
        "  adaptive / fixed@min: acked {:.2}x, delivered {:.2}x; adaptive / fixed@max: acked {:.2}x, delivered {:.2}x",
        acked[0].0 / acked[1].0,
        acked[0].1 / acked[1].1,
        acked[0].0 / acked[2].0,
        acked[0].1 / acked[2].1
    );
}

fn low_rate(influx: &Influx, secs: u64) {
    println!(
        "\n2. low rate: 100 points/s, one point a request (open loop), {secs} s; end-to-end latency to influxd"
    );
    // Producers on a schedule, as meters are: a slow answer does not delay
    // the next point (each of SENDERS threads owns every SENDERS-th slot).
    const SENDERS: usize = 128;
    const BASE_MS: i64 = 1_700_000_000_000;
    for (name, cfg) in [("adaptive", ADAPTIVE), ("fixed@min (100)", FIXED_MIN)] {
        let db = "lowrate";
        let h = start(influx, db, cfg);
        let n = (secs * 100) as usize;
        let sent: Arc<Vec<AtomicI64>> = Arc::new((0..n).map(|_| AtomicI64::new(0)).collect());
        let epoch = Instant::now();
        let senders: Vec<_> = (0..SENDERS)
            .map(|t| {
                let sent = sent.clone();
                let url = format!("{}/write?db={db}&precision=ms", h.url());
                std::thread::spawn(move || {
                    let a = agent();
                    for k in (t..n).step_by(SENDERS) {
                        let due = epoch + Duration::from_millis(10 * k as u64);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        sent[k].store(epoch.elapsed().as_micros() as i64, Ordering::SeqCst);
                        let body = format!("lat,src=bench k={k}i {}", BASE_MS + k as i64);
                        let _ = a.post(&url).send(body.as_str());
                    }
                })
            })
            .collect();
        // The poller: which points are visible upstream, and since when.
        let mut seen = vec![false; n];
        let mut lat = Vec::with_capacity(n);
        let mut first_unseen = 0;
        let a = agent();
        let deadline = Instant::now() + Duration::from_secs(secs + 60);
        while first_unseen < n && Instant::now() < deadline {
            let q = format!(
                "SELECT k FROM lat WHERE time >= {}ms",
                BASE_MS + first_unseen as i64
            );
            let body = a
                .get(format!("{}/query", influx.url()))
                .query("db", db)
                .query("q", &q)
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .unwrap_or_default();
            let now = epoch.elapsed().as_micros() as i64;
            let rows = body
                .split("\"values\":[[")
                .nth(1)
                .and_then(|v| v.split("]]").next())
                .unwrap_or("");
            for k in rows.split("],[") {
                let Some(k) = k.rsplit(',').next().and_then(|v| v.parse::<usize>().ok()) else {
                    continue;
                };
                if k < n && !seen[k] {
                    seen[k] = true;
                    let t = sent[k].load(Ordering::SeqCst);
                    lat.push(Duration::from_micros((now - t).max(0) as u64));
                }
            }
            while first_unseen < n && seen[first_unseen] {
                first_unseen += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for s in senders {
            s.join().unwrap();
        }
        lat.sort();
        println!(
            "  {name:<18} end-to-end p50 {:>7.1} ms, p99 {:>7.1} ms, max {:>7.1} ms ({} of {n} seen, {} commits)",
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            pct(&lat, 1.0),
            lat.len(),
            metric(&h, "hissrv_batches_committed_total"),
        );
        let _ = influx.query(db, "DROP DATABASE lowrate");
    }
}

/// Feeds generated bodies of 10,000 points through a small queue, so
/// generation overlaps the writes instead of holding gigabytes in memory.
fn feeder(total: usize) -> std::sync::mpsc::Receiver<Arc<Vec<u8>>> {
    const LINES: usize = 10_000;
    let (tx, rx) = std::sync::mpsc::sync_channel(8);
    std::thread::spawn(move || {
        for first in (0..total).step_by(LINES) {
            let body = telemetry(first, 1, LINES.min(total - first)).remove(0);
            if tx.send(body).is_err() {
                return;
            }
        }
    });
    rx
}

/// Writes `total` points to `url` over `conns` connections; returns points/s.
fn write_all(url: &str, total: usize, conns: usize) -> f64 {
    let rx = Arc::new(std::sync::Mutex::new(feeder(total)));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..conns)
        .map(|_| {
            let (rx, url) = (rx.clone(), url.to_string());
            std::thread::spawn(move || {
                let a = agent();
                loop {
                    let Ok(body) = rx.lock().unwrap().recv() else {
                        return;
                    };
                    loop {
                        match a.post(&url).send(&body[..]).map(|r| r.status().as_u16()) {
                            Ok(204) => break,
                            _ => std::thread::sleep(Duration::from_millis(50)),
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    total as f64 / t0.elapsed().as_secs_f64()
}

fn backlog(total: usize, gzip: bool) {
    println!(
        "\n3. backlog drain: {total} points (10 fields) buffered while influxd is down (gzip {})",
        if gzip { "on" } else { "off" }
    );
    let mut influx = Influx::start();
    influx.create_db("direct");
    let direct1 = write_all(&format!("{}/write?db=direct", influx.url()), total, 1);
    let _ = influx.query("direct", "DROP DATABASE direct");
    influx.create_db("direct");
    let direct4 = write_all(&format!("{}/write?db=direct", influx.url()), total, 4);
    let _ = influx.query("direct", "DROP DATABASE direct");
    influx.create_db("drain");
    influx.stop();
    let h = Hissrv::start_with(
        &influx.url(),
        Sections {
            service: "  log_level: warn\n",
            influxdb: &format!("  database: drain\n  gzip: {gzip}\n"),
            buffer: "  max_size_mb: 16384\n",
            ..Sections::default()
        },
    );
    let ingest = write_all(&format!("{}/write?db=drain", h.url()), total, 4);
    influx.restart();
    let t0 = Instant::now();
    let done = wait_drained(&h, Duration::from_secs(3600));
    let drain = total as f64 / (done - t0).as_secs_f64();
    println!("  buffered into hissrv at        {ingest:>9.0} points/s");
    println!(
        "  hissrv drain to influxd        {drain:>9.0} points/s ({} upstream requests)",
        metric(&h, "hissrv_write_duration_seconds_count")
    );
    println!("  direct writer, 1 connection    {direct1:>9.0} points/s");
    println!("  direct writers, 4 connections  {direct4:>9.0} points/s");
    println!(
        "  drain / direct(1) {:.2}, drain / direct(4) {:.2}",
        drain / direct1,
        drain / direct4
    );
}

fn main() {
    let secs = env_or("HISSRV_BENCH_SECS", 10);
    let total = env_or("HISSRV_BENCH_BACKLOG_POINTS", 10_000_000) as usize;
    let parts = std::env::var("HISSRV_BENCH_PARTS").unwrap_or_else(|_| "123".into());
    let gzip = env_or("HISSRV_BENCH_GZIP", 1) == 1;
    let influx = Influx::start();
    if parts.contains('1') {
        saturation(&influx, secs);
    }
    if parts.contains('2') {
        low_rate(&influx, secs);
    }
    drop(influx);
    if parts.contains('3') {
        backlog(total, gzip);
    }
}
