//! Downsampling benchmark (issue "Data lifecycle, part 1"): the CPU a line
//! costs the windows, and the memory their state takes, for the issue's
//! 10,000 open series × 10 fields.
//!
//! Load: 10,000 meters, 10 float fields each (values as a meter writes them,
//! 2 decimals), one line per meter per second, event time in order, rule
//! `5m` with the defaults (grace one window, max_lateness 1 h), `close`
//! every 10,000 lines as the commit thread will. The baseline in the same
//! run is what every line costs without a rule: cutting it into its fields
//! (`split_into`), which the windows need as well.
//!
//! Reported: median ns per line over the runs, for the baseline, with the
//! windows, and for the commit thread's whole part (`batch::downsampler`:
//! rule matching, split, windows, and a checkpoint's encoding every 30 s of
//! load, without its SQLite write), and that part less the batch's split
//! (`SplitLines`), which the codec now takes anyway and shares; the RSS growth per field window held (from /proc/self/statm),
//! at the peak of windows held, in the first run (later runs reuse the
//! pages it freed).
//!
//! Then the feed of the shared split in batches of 5 s, without and with
//! the codec's line shapes (series hints), and with them, the batches in
//! the order three producers deliver them (lines out of order: the lookups
//! among the lines counted lately), only the feed timed.
//!
//! Run: `cargo bench --bench downsample` (HISSRV_BENCH_RUNS=5 runs,
//! HISSRV_BENCH_SERIES=10000 series).

use hissrv::downsample::windows::{Lane, Rule, Windows};
use hissrv::lineproto::split::split_into;
use std::time::Instant;

/// Series by default (the 10,000); `HISSRV_BENCH_SERIES` sets it
/// (fewer: state that fits the caches, to tell misses from work).
const SERIES_DEFAULT: usize = 10_000;

fn series_count() -> usize {
    std::env::var("HISSRV_BENCH_SERIES")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(SERIES_DEFAULT)
}
const FIELDS: usize = 10;
const SECONDS: i64 = 660;
const NS: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * NS;
/// The planned checkpoint interval, in seconds of this load.
const CHECKPOINT_EVERY_S: usize = 30;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// One second of lines, one per meter.
fn second(t: i64, series: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(series * 120);
    for s in 0..series {
        out.extend_from_slice(format!("meter,site=plant{},id={s} ", s % 7).as_bytes());
        for f in 0..FIELDS {
            let v = ((s * 31 + f * 17) as i64 * 100 + (t / NS) % 97) as f64 / 100.0;
            if f > 0 {
                out.push(b',');
            }
            out.extend_from_slice(format!("f{f}={v}").as_bytes());
        }
        out.extend_from_slice(format!(" {}\n", T0 + t).as_bytes());
    }
    out
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("HISSRV_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    // 11 minutes of data: two windows' worth and more, so windows close,
    // are emitted, and stay held for late points (max_lateness).
    let series = series_count();
    let seconds: Vec<Vec<u8>> = (0..SECONDS).map(|t| second(t * NS, series)).collect();
    let lines = series as f64 * SECONDS as f64;
    let rule = Rule {
        every_ns: 300 * NS,
        grace_ns: 300 * NS,
        max_lateness_ns: 3_600 * NS,
        aggregates: None,
    };
    let lane = Lane { rule: 0, dest: 0 };
    let (mut base, mut with) = (Vec::new(), Vec::new());
    let mut per_window = Vec::new();
    let mut emitted_bytes = 0usize;
    let mut held_peak = 0usize;
    for _ in 0..runs {
        let mut fields = Vec::with_capacity(16);
        let started = Instant::now();
        let mut sink = 0usize;
        for body in &seconds {
            for line in hissrv::lineproto::lines(body) {
                if let Some((key, ts)) = split_into(line, &mut fields) {
                    sink = sink
                        .wrapping_add(key.len() + fields.len())
                        .wrapping_add(ts as usize);
                }
            }
        }
        base.push(started.elapsed().as_nanos() as f64 / lines);
        std::hint::black_box(sink);

        let before = rss_bytes();
        let mut w = Windows::new(vec![rule], 10_000_000);
        let started = Instant::now();
        let mut since_close = 0;
        let mut peak = (0usize, 0u64);
        for body in &seconds {
            for line in hissrv::lineproto::lines(body) {
                if let Some((key, ts)) = split_into(line, &mut fields) {
                    w.add_line(lane, key, &fields, ts, |_, _| {});
                }
                since_close += 1;
                if since_close == 10_000 {
                    since_close = 0;
                    w.close(|_, l| emitted_bytes += l.len());
                    if w.len() > peak.0 {
                        peak = (w.len(), rss_bytes());
                    }
                }
            }
        }
        with.push(started.elapsed().as_nanos() as f64 / lines);
        held_peak = peak.0;
        // The first run only: later runs reuse the pages the first freed.
        if per_window.is_empty() {
            per_window.push(peak.1.saturating_sub(before) as f64 / peak.0.max(1) as f64);
        }
        drop(w);
    }
    // The commit thread's whole part (`batch::downsampler`): which rules
    // take each line (`takes`, before the commit), then `feed` (rule
    // matching by measurement glob, split, windows), per 10,000-line batch.
    let cfg = hissrv::config::Config::from_yaml("lifecycle:\n  max_open_windows: 1000000\n")
        .expect("config");
    let mut lifecycle = cfg.lifecycle.clone();
    lifecycle.rules.push(hissrv::config::LifecycleRule {
        measurement: "meter".into(),
        downsample: "5m".into(),
        ..Default::default()
    });
    let dest = hissrv::route::dest::Destination {
        db: "db".into(),
        rp: String::new(),
    };
    let mut fed = Vec::new();
    let mut arena = Vec::new();
    for _ in 0..runs {
        // The split the codec takes of a batch with a duty (one arena a
        // batch): the feed reads it, so a line is split once, not twice.
        let started = Instant::now();
        let mut n = 0usize;
        for body in &seconds {
            n = n.wrapping_add(
                hissrv::lineproto::split_lines::SplitLines::of(body)
                    .fields
                    .len(),
            );
        }
        arena.push(started.elapsed().as_nanos() as f64 / lines);
        std::hint::black_box(n);
    }
    for _ in 0..runs {
        let mut d =
            hissrv::batch::downsampler::Downsampler::from_config(&lifecycle).expect("a rule");
        let started = Instant::now();
        let mut checkpoints = 0usize;
        for (i, body) in seconds.iter().enumerate() {
            if d.takes(body) {
                d.feed(&dest, body);
            }
            if i % CHECKPOINT_EVERY_S == CHECKPOINT_EVERY_S - 1 {
                checkpoints += d.checkpoint(0).sets.len();
            }
        }
        fed.push(started.elapsed().as_nanos() as f64 / lines);
        std::hint::black_box(checkpoints);
    }
    // The codec's line shapes as series hints (`SeriesHint`): batches of
    // 5 s (each series 5 times, as in the ingest bench's bodies), the feed
    // of the shared split timed without and with the codec's shapes (the
    // split and the codec's encoding, on both sides, not timed: the codec
    // runs anyway).
    let batches: Vec<Vec<u8>> = seconds.chunks(5).map(|c| c.concat()).collect();
    // The same batches as several producers deliver them (the ingest
    // bench's connections): each group of three in reverse, so the first
    // of a group comes after the series' ring of greatest timestamps has
    // moved past it, and its lines, a third, are looked for among the lines
    // counted lately (`recent`), as 34 % of the ingest bench's were.
    let interleaved: Vec<Vec<u8>> = batches
        .chunks(3)
        .flat_map(|g| g.iter().rev().cloned())
        .collect();
    let (mut unshaped, mut shaped, mut producers) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        for (with_shapes, batches, out) in [
            (false, &batches, &mut unshaped),
            (true, &batches, &mut shaped),
            (true, &interleaved, &mut producers),
        ] {
            let mut d =
                hissrv::batch::downsampler::Downsampler::from_config(&lifecycle).expect("a rule");
            let mut spent = std::time::Duration::ZERO;
            for (i, batch) in batches.iter().enumerate() {
                let mut split = hissrv::lineproto::split_lines::SplitLines::of(batch);
                // Encoded on both sides, as the commit thread does (the
                // codec's memory traffic cools the caches the feed uses);
                // its shapes dropped on one.
                let format = hissrv::wal::codec::FORMAT_DELTA;
                let blob = hissrv::wal::codec::encode_split(format, &split).expect("encodes");
                std::hint::black_box(blob);
                if !with_shapes {
                    split.shapes.take();
                }
                let started = Instant::now();
                std::hint::black_box(d.feed_split(&dest, &split));
                spent += started.elapsed();
                if i % (CHECKPOINT_EVERY_S / 5) == CHECKPOINT_EVERY_S / 5 - 1 {
                    std::hint::black_box(d.checkpoint(0).sets.len());
                }
            }
            out.push(spent.as_nanos() as f64 / lines);
        }
    }
    let (b, m) = (median(base), median(with));
    println!(
        "downsample bench: {series} series x {FIELDS} fields, {SECONDS} s at 1 s, rule 5m, {runs} runs"
    );
    println!("split only (baseline): {b:.0} ns/line");
    println!(
        "split + windows:       {m:.0} ns/line  (windows: +{:.0} ns/line, {:.2}x)",
        m - b,
        m / b
    );
    let f = median(fed);
    let a = median(arena);
    println!(
        "takes + feed + a checkpoint each 30 s (batch::downsampler): {f:.0} ns/line ({:.2}x the split)",
        f / b
    );
    println!(
        "of which the batch's split (SplitLines, shared with the codec): {a:.0} ns/line; the rest, the windows' own cost on the commit thread: {:.0} ns/line ({:.2}x the split)",
        f - a,
        (f - a) / b
    );
    println!(
        "feed of a shared split, 5 s a batch: {:.0} ns/line without the codec's shapes, {:.0} with them (series hints); {:.0} with them, batches as three producers deliver them (a third of the lines looked for among those counted lately)",
        median(unshaped),
        median(shaped),
        median(producers)
    );
    println!(
        "field windows held at peak: {held_peak}; RSS growth per field window: {:.0} B (first run); emitted {emitted_bytes} bytes",
        median(per_window)
    );
}
