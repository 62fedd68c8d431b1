//! The cold archive's cost (issue "Data lifecycle, part 2", Measure): the
//! archiver writing one run of buffered meter batches as gzip objects to a
//! `file://` target, against a baseline measured in the same run: reading
//! and decoding the same batches and gzipping their text in memory (what an
//! archive cannot avoid). Reports points/s, CPU µs per point (the process's
//! user+system time), object bytes per point beside the buffer's stored
//! bytes and the raw line protocol, and the peak RSS while one large object
//! is written (reset before; it must stay bounded, not grow with the object).
//!
//! Run: `cargo bench --bench archive` (HISSRV_BENCH_RUNS=5 runs,
//! HISSRV_BENCH_BODIES=200 bodies of 1,000 lines, 10 fields each).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use hissrv::archive::archiver::Archiver;
use hissrv::config::{Lifecycle, LifecycleRule, Synchronous};
use hissrv::observe::stats::Stats;
use hissrv::route::dest::Destination;
use hissrv::wal::{NewBatch, Wal};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;
use support::*;

const LINES: usize = 1_000;

/// User + system CPU seconds of this process so far (`/proc/self/stat`).
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 (utime, stime), counted from after the name.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0
}

fn hwm_kib() -> u64 {
    proc_status_kib(std::process::id(), "VmHWM")
}

fn main() {
    let runs = env_or("HISSRV_BENCH_RUNS", 5) as usize;
    let bodies = env_or("HISSRV_BENCH_BODIES", 200) as usize;
    let dir = common::TempDir::new("bench-archive");
    let target_dir = dir.path().join("archive");
    let url = format!("file://{}/", target_dir.display());
    let lifecycle = Lifecycle {
        rules: vec![LifecycleRule {
            measurement: "meter".into(),
            cold_storage: url.clone(),
            ..LifecycleRule::default()
        }],
        archive: hissrv::config::Archive {
            max_object_mb: 1024,
            ..Default::default()
        },
        ..Lifecycle::default()
    };
    let path = dir.path().join("buffer.db");
    let mut wal = Wal::open(&path, Synchronous::Off, 8 << 30).expect("buffer");
    let dest = Destination {
        db: "plant".into(),
        rp: String::new(),
    };
    let mut raw_bytes = 0u64;
    for body in telemetry(0, bodies, LINES) {
        raw_bytes += body.len() as u64;
        let stamps: Vec<i64> = hissrv::lineproto::lines(&body)
            .filter_map(hissrv::lineproto::line_ts)
            .collect();
        let b = NewBatch {
            dest: dest.clone(),
            points: LINES,
            first_ts: stamps.iter().copied().min().unwrap_or(0),
            last_ts: stamps.iter().copied().max().unwrap_or(0),
            payload: body.to_vec(),
        };
        wal.commit_with_duty_split(&[b], &[], &[], &[Some(url.clone())])
            .expect("commit");
    }
    let points = (bodies * LINES) as f64;
    let run = wal
        .start_run(&url, &dest, u64::MAX, 3_600)
        .expect("run")
        .expect("owed batches");
    let stored: u64 = wal.archive_queues().expect("queues")[0].bytes;
    let stats = Arc::new(Stats::default());
    let spool = dir.path().join("spool");
    let keys = Default::default();
    let mut archiver = Archiver::new(
        Wal::open(&path, Synchronous::Off, 8 << 30).expect("buffer"),
        &lifecycle,
        stats.clone(),
        &spool,
        &keys,
    )
    .expect("archiver")
    .expect("a rule archives");

    let (mut base_t, mut base_cpu, mut arch_t, mut arch_cpu) = (vec![], vec![], vec![], vec![]);
    let mut gz_bytes = 0;
    let mut hwm_growth = 0;
    for _ in 0..runs {
        // Baseline: read, decode and gzip the same batches in memory.
        let (t, c) = (Instant::now(), cpu_s());
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for b in &run.batches {
            let lines = wal.run_batch_lines(b.id).expect("read").expect("decodes");
            e.write_all(&lines).expect("gzip");
        }
        gz_bytes = e.finish().expect("gzip").len();
        base_t.push(t.elapsed().as_secs_f64());
        base_cpu.push(cpu_s() - c);

        let _ = std::fs::remove_dir_all(&target_dir);
        std::fs::create_dir_all(&target_dir).expect("archive root");
        // Peak RSS from here (Linux: 5 resets VmHWM).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = hwm_kib();
        let (t, c) = (Instant::now(), cpu_s());
        let objects = archiver.write_run(&run).expect("write run");
        arch_t.push(t.elapsed().as_secs_f64());
        arch_cpu.push(cpu_s() - c);
        hwm_growth = hwm_growth.max(hwm_kib().saturating_sub(before));
        assert!(objects >= 1);
    }
    let object_bytes: u64 = walk(&target_dir)
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".lp.gz"))
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let (bt, bc, at, ac) = (
        median(base_t),
        median(base_cpu),
        median(arch_t),
        median(arch_cpu),
    );
    println!(
        "{} points ({} bodies x {LINES} lines, 10 fields), one run; medians of {runs}",
        points, bodies
    );
    println!("| | points/s | CPU µs/point | bytes/point |");
    println!("|---|---|---|---|");
    println!(
        "| raw line protocol | | | {:.1} |",
        raw_bytes as f64 / points
    );
    println!("| buffer (stored) | | | {:.1} |", stored as f64 / points);
    println!(
        "| baseline: decode + gzip in memory | {:.0} | {:.2} | {:.1} |",
        points / bt,
        bc * 1e6 / points,
        gz_bytes as f64 / points
    );
    println!(
        "| archiver: objects, manifests, fsync, rename | {:.0} | {:.2} | {:.1} |",
        points / at,
        ac * 1e6 / points,
        object_bytes as f64 / points
    );
    println!(
        "archiver/baseline time {:.2}x; peak RSS growth while writing a {:.1} MiB object: {} KiB",
        at / bt,
        object_bytes as f64 / (1 << 20) as f64,
        hwm_growth
    );
}

fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
