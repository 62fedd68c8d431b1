//! gzip levels for upstream bodies: compression ratio and time per line, on
//! 10,000 meter lines as the drain sends them (issue "CPU per point"; the
//! level in force is `UPSTREAM_GZIP_LEVEL` in src/deliver/upstream.rs).
//! Uses flate2 with the backend the agent is built with (zlib-rs).
//!
//! Run: `cargo bench --bench gzip` (HISSRV_BENCH_RUNS=31 timings per level).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::io::Write;
use std::time::Instant;
use support::*;

const LINES: usize = 10_000;

fn main() {
    let runs = env_or("HISSRV_BENCH_RUNS", 31) as usize;
    let body = telemetry(0, 1, LINES).remove(0);
    println!(
        "{LINES} meter lines, {} bytes; median of {runs} compressions per level",
        body.len()
    );
    println!("| level | bytes | ratio | ms per {LINES} lines | µs per line |");
    println!("|---|---|---|---|---|");
    for level in 1..=6 {
        let mut times = Vec::with_capacity(runs);
        let mut size = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::new(level),
            );
            e.write_all(&body).expect("gzip in memory");
            size = e.finish().expect("gzip in memory").len();
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let ms = median(times);
        println!(
            "| {level} | {size} | {:.1}x | {ms:.2} | {:.3} |",
            body.len() as f64 / size as f64,
            ms * 1e3 / LINES as f64
        );
    }
}
