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

fn phase(influx: &Influx, up: bool, bodies: &[std::sync::Arc<Vec<u8>>]) -> Phase {
    influx.create_db("flash");
    let proxy = CuttingProxy::start(influx.port);
    proxy.set_cut(!up);
    let h = Hissrv::start_with(
        &proxy.url(),
        Sections {
            service: "  log_level: warn\n",
            influxdb: "  database: flash\n",
            ..Sections::default()
        },
    );
    // The disk reserve is written at start: not the points' wear.
    std::thread::sleep(Duration::from_millis(500));
    let before = write_bytes(h.pid());
    ingest(&h, bodies);
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

fn main() {
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
