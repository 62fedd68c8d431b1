//! Flash wear: what the agent makes the storage device write, per point and
//! against the encoded size of what passes through (the packaging issue's
//! target: steady state at most 2x). Read from `/proc/PID/io` `write_bytes`
//! (bytes the process sent toward the block device: the buffer, its WAL, the
//! disk reserve, the log), from just after start (the reserve is made then)
//! to the end of each phase:
//! - upstream down: `HISSRV_FLASH_LINES` meter lines (10 fields, 5,000-line
//!   bodies, 2 connections) go into the buffer and stay;
//! - upstream up (a real influxd): the same lines, committed, delivered and
//!   deleted; measured once the buffer is empty again (insert + delete +
//!   checkpoints: the steady state of a connected gateway).
//!
//! The encoded size is what each phase committed
//! (`hissrv_bytes_committed_total`): how bodies are cut into batches changes
//! it from run to run (bigger batches encode smaller).
//!
//! Run: `cargo bench --bench flash` (HISSRV_FLASH_LINES, default 500,000;
//! HISSRV_FLASH_RUNS, default 3). Needs `influxd` on the PATH and a disk-backed
//! temp dir (tmpfs writes reach no device and read 0).
//!
//! Paced, with and without a downsampling rule (`HISSRV_FLASH_RATE=1000`,
//! `HISSRV_FLASH_SECS`, default 150): the meters write at a gateway's pace,
//! one body a second of `RATE` lines from one connection, sent on schedule
//! (after a slow answer it catches up), so that the rule's checkpoints
//! (every 30 s, the default) and the keys of the lines counted lately they
//! save weigh as they do in the field; each phase runs once without and once
//! with a `5m` rule. At 1000 (the telemetry's 1,000 meters) each meter writes
//! a line a second; another rate moves event time faster or slower than the
//! clock. 150 s close no window (grace is one 5 m window): emission is left
//! out, and the measure stops after the last body, so a checkpoint more or
//! less inside it moves the rule's figure by a few bytes a line.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::*;
use std::time::Duration;
use support::*;

const LINES_PER_BODY: usize = 5_000;
const CONNS: usize = 2;

/// `write_bytes` of `pid` (bytes toward the block device).
fn write_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("write_bytes: "))
                .and_then(|v| v.trim().parse().ok())
        })
        .expect("/proc/PID/io")
}

fn ingest(h: &Hissrv, bodies: &[std::sync::Arc<Vec<u8>>]) {
    let url = format!("{}/write?db=flash", h.url());
    let threads: Vec<_> = (0..CONNS)
        .map(|c| {
            let (url, bodies) = (url.clone(), bodies.to_vec());
            std::thread::spawn(move || {
                let http = agent();
                for b in bodies.iter().skip(c).step_by(CONNS) {
                    let r = http.post(&url).send(&b[..]).expect("hissrv answers");
                    assert_eq!(r.status().as_u16(), 204);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("producer");
    }
}

struct Phase {
    device_bytes: u64,
    encoded_bytes: u64,
}

/// One body a second, from a single connection (open loop: a slow answer
/// does not slow the meters down, it only shows as a late body).
fn paced(h: &Hissrv, bodies: &[std::sync::Arc<Vec<u8>>]) {
    let url = format!("{}/write?db=flash", h.url());
    let http = agent();
    let start = std::time::Instant::now();
    for (k, b) in bodies.iter().enumerate() {
        let due = start + Duration::from_secs(k as u64);
        if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(wait);
        }
        let r = http.post(&url).send(&b[..]).expect("hissrv answers");
        assert_eq!(r.status().as_u16(), 204);
    }
}

/// The downsampling rule of the paced phases (the defaults otherwise:
/// checkpoints every 30 s, grace one window, max_lateness 1 h).
const RULE: &str = "lifecycle:\n  rules:\n    - measurement: meter\n      downsample: 5m\n";

fn phase(influx: &Influx, up: bool, bodies: &[std::sync::Arc<Vec<u8>>]) -> Phase {
    phase_with(influx, up, bodies, false, false)
}

fn phase_with(
    influx: &Influx,
    up: bool,
    bodies: &[std::sync::Arc<Vec<u8>>],
    pace: bool,
    rule: bool,
) -> Phase {
    influx.create_db("flash");
    let proxy = CuttingProxy::start(influx.port);
    proxy.set_cut(!up);
    let h = Hissrv::start_with(
        &proxy.url(),
        Sections {
            service: "  log_level: warn\n",
            influxdb: "  database: flash\n",
            other: if rule { RULE } else { "" },
            ..Sections::default()
        },
    );
    // The disk reserve is written at start: not the points' wear.
    std::thread::sleep(Duration::from_millis(500));
    let before = write_bytes(h.pid());
    if pace {
        paced(&h, bodies);
    } else {
        ingest(&h, bodies);
    }
    if up {
        wait_for("the buffer drained", Duration::from_secs(300), || {
            h.health().backlog_points == 0
        });
    }
    let encoded_bytes = h
        .get("/metrics")
        .lines()
        .find_map(|l| l.strip_prefix("hissrv_bytes_committed_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("hissrv_bytes_committed_total") as u64;
    let device_bytes = write_bytes(h.pid()) - before;
    drop(h);
    let _ = influx.query("flash", "DROP DATABASE flash");
    Phase {
        device_bytes,
        encoded_bytes,
    }
}

/// `HISSRV_FLASH_RATE`: the paced phases, without and with a rule.
fn main_paced(rate: usize) {
    let secs = env_or("HISSRV_FLASH_SECS", 150) as usize;
    let runs = env_or("HISSRV_FLASH_RUNS", 1) as usize;
    // One body a second: `rate` lines, each meter once (its point n / SERIES).
    let bodies = telemetry(0, secs, rate);
    let lines = (secs * rate) as f64;
    let influx = Influx::start();
    let mut rows: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
    for run in 1..=runs {
        for (up, rule) in [(false, false), (false, true), (true, false), (true, true)] {
            let p = phase_with(&influx, up, &bodies, true, rule);
            let name = format!(
                "{}, {}",
                if up {
                    "up (steady state)"
                } else {
                    "down (all buffered)"
                },
                if rule { "5m rule" } else { "no rule" }
            );
            println!(
                "run {run}: {name}: {} bytes written, {:.1} a line, {} encoded",
                p.device_bytes,
                p.device_bytes as f64 / lines,
                p.encoded_bytes
            );
            match rows.iter_mut().find(|r| r.0 == name) {
                Some(r) => {
                    r.1.push(p.device_bytes as f64);
                    r.2.push(p.encoded_bytes as f64);
                }
                None => rows.push((
                    name,
                    vec![p.device_bytes as f64],
                    vec![p.encoded_bytes as f64],
                )),
            }
        }
    }
    println!("\n{rate} lines/s for {secs} s ({FIELDS} fields), median of {runs} runs:");
    println!("| upstream, rule | device writes | per line | / encoded |");
    println!("|---|---|---|---|");
    for (name, w, e) in rows {
        let (w, e) = (median(w), median(e));
        println!(
            "| {name} | {:.1} MB | {:.1} bytes | {:.2}x |",
            w / 1e6,
            w / lines,
            w / e.max(1.0)
        );
    }
}

fn main() {
    let rate = env_or("HISSRV_FLASH_RATE", 0) as usize;
    if rate > 0 {
        return main_paced(rate);
    }
    let lines = env_or("HISSRV_FLASH_LINES", 500_000) as usize;
    let runs = env_or("HISSRV_FLASH_RUNS", 3) as usize;
    let bodies = telemetry(0, lines / LINES_PER_BODY, LINES_PER_BODY);
    let lines = bodies.len() * LINES_PER_BODY;
    let raw: usize = bodies.iter().map(|b| b.len()).sum();
    let influx = Influx::start();
    let (mut down, mut up, mut down_x, mut up_x) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut encoded = Vec::new();
    for run in 1..=runs {
        let d = phase(&influx, false, &bodies);
        let u = phase(&influx, true, &bodies);
        let ratio = |p: &Phase| p.device_bytes as f64 / p.encoded_bytes.max(1) as f64;
        println!(
            "run {run}: upstream down {} bytes written for {} encoded ({:.2}x), up {} for {} ({:.2}x)",
            d.device_bytes,
            d.encoded_bytes,
            ratio(&d),
            u.device_bytes,
            u.encoded_bytes,
            ratio(&u)
        );
        down.push(d.device_bytes as f64);
        up.push(u.device_bytes as f64);
        encoded.push(d.encoded_bytes as f64);
        encoded.push(u.encoded_bytes as f64);
        down_x.push(ratio(&d));
        up_x.push(ratio(&u));
    }
    let e = median(encoded);
    println!(
        "\n{lines} lines ({FIELDS} fields, {raw} bytes of line protocol), median of {runs} runs:"
    );
    println!(
        "| upstream | device writes | per line | / encoded (per run; median encoded {:.1} bytes/line) |",
        e / lines as f64
    );
    println!("|---|---|---|---|");
    for (name, w, x) in [
        ("down (all buffered)", median(down), median(down_x)),
        ("up (steady state)", median(up), median(up_x)),
    ] {
        println!(
            "| {name} | {:.1} MB | {:.1} bytes | {:.2}x |",
            w / 1e6,
            w / lines as f64,
            x
        );
    }
}
