//! Shared by the benchmarks: telemetry generation, a closed-loop HTTP load
//! driver, percentiles, and readings of the agent under test.
#![allow(dead_code)]

use super::common::agent;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Series in the generated telemetry (meters × sites).
pub const SERIES: usize = 1_000;
/// Fields per line: voltage-like floats quantised to 0.01, every fourth an integer.
pub const FIELDS: usize = 10;
const BASE_TS_NS: i64 = 1_700_000_000_000_000_000;

pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One meter line: `series`' key, the fields of its point number `n`
/// (voltage-like floats quantised to 0.01, every fourth an integer), `ts`.
fn meter_line(s: &mut String, series: usize, n: usize, ts: i64) {
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

/// Energy-meter-like telemetry: `n_bodies` bodies of `lines` lines, point
/// numbers from `first` on (each series advances 1 s per point).
pub fn telemetry(first: usize, n_bodies: usize, lines: usize) -> Vec<Arc<Vec<u8>>> {
    (0..n_bodies)
        .map(|b| {
            let mut s = String::with_capacity(lines * 220);
            for l in 0..lines {
                let n = first + b * lines + l;
                let series = n % SERIES;
                let ts = BASE_TS_NS + (n / SERIES) as i64 * 1_000_000_000;
                meter_line(&mut s, series, n, ts);
            }
            Arc::new(s.into_bytes())
        })
        .collect()
}

/// `telemetry`'s meters and values, each producer writing only its own
/// meters, in order: body `b` is the one connection `b % conns` of `drive`
/// sends, holding the series `s` with `s % conns == b % conns`, at the
/// timestamps that producer reached (each series advances 1 s per point,
/// as in `telemetry`). The edge's common shape (one poller a meter); in
/// `telemetry` every producer writes every meter, so a meter's points
/// arrive out of order by up to `conns` bodies.
pub fn telemetry_owned(n_bodies: usize, lines: usize, conns: usize) -> Vec<Arc<Vec<u8>>> {
    let conns = conns.max(1);
    (0..n_bodies)
        .map(|b| {
            let (c, k) = (b % conns, b / conns);
            // The producer's meters: c, c + conns, … (the last ones may
            // be one fewer when conns does not divide SERIES).
            let mine: Vec<usize> = (c..SERIES).step_by(conns).collect();
            let mut s = String::with_capacity(lines * 220);
            for l in 0..lines {
                let n = k * lines + l;
                let series = mine[n % mine.len()];
                let point = n / mine.len();
                let ts = BASE_TS_NS + point as i64 * 1_000_000_000;
                let n = point * SERIES + series;
                meter_line(&mut s, series, n, ts);
            }
            Arc::new(s.into_bytes())
        })
        .collect()
}

pub struct Load {
    pub points: u64,
    pub elapsed: Duration,
    /// Sorted request latencies.
    pub latencies: Vec<Duration>,
    pub refused: u64,
}

/// `conns` keep-alive connections post `bodies` (cycled) to `url` for `dur`,
/// each waiting for its answer before the next (closed loop).
/// `body` with every line's timestamp (its last field) moved by `by_ns`.
pub fn shifted(body: &[u8], by_ns: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 64);
    for line in body.split_inclusive(|&b| b == b'\n') {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let at = text.iter().rposition(|&b| b == b' ').map_or(0, |i| i + 1);
        let ts: i64 = std::str::from_utf8(&text[at..])
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        out.extend_from_slice(&text[..at]);
        out.extend_from_slice((ts + by_ns).to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

pub fn drive(
    url: &str,
    bodies: &[Arc<Vec<u8>>],
    lines_per_body: u64,
    conns: usize,
    dur: Duration,
) -> Load {
    drive_at_most(url, bodies, lines_per_body, conns, dur, usize::MAX)
}

/// `drive`, ending too once `max_bodies` bodies were posted (all
/// connections together): two agents then take the same lines, whatever
/// their pace.
pub fn drive_at_most(
    url: &str,
    bodies: &[Arc<Vec<u8>>],
    lines_per_body: u64,
    conns: usize,
    dur: Duration,
    max_bodies: usize,
) -> Load {
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
                // HISSRV_BENCH_FRESH=1: each pass over the bodies moves their
                // timestamps on by the time they span, so no line repeats
                // (a downsampling rule otherwise sees retries after one pass).
                let fresh = std::env::var("HISSRV_BENCH_FRESH").is_ok_and(|v| v == "1");
                let span_ns = (bodies.len() as i64 * lines_per_body as i64 / SERIES as i64).max(1)
                    * 1_000_000_000;
                while !stop.load(Ordering::Relaxed) && i < max_bodies {
                    let body = &bodies[i % bodies.len()];
                    let pass = (i / bodies.len()) as i64;
                    let moved;
                    let body: &[u8] = if fresh && pass > 0 {
                        moved = shifted(body, pass * span_ns);
                        &moved
                    } else {
                        body
                    };
                    let t = Instant::now();
                    let r = agent.post(&url).send(body);
                    mine.push(t.elapsed());
                    match r.map(|r| r.status().as_u16()) {
                        Ok(204) => ok += lines_per_body,
                        _ => refused += 1,
                    }
                    i += conns;
                }
                lat.lock().unwrap().extend(mine);
                (ok, refused)
            })
        })
        .collect();
    while start.elapsed() < dur && !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(10));
    }
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

pub fn pct(v: &[Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3
}

/// The median; NaN for no values (a part of the bench that did not run).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

pub fn health_counter(url: &str, key: &str) -> u64 {
    let body = agent()
        .get(format!("{url}/health"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    counter_in(&body, key).unwrap_or(0)
}

/// The unsigned counter `key` of a `/health` body, if it holds one.
pub fn counter_in(body: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let at = body.find(&pat)? + pat.len();
    body[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

pub fn vm_hwm_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmHWM")
}

/// A `/proc/PID/status` memory line (`VmRSS`, `VmHWM`) in KiB; 0 if gone.
pub fn proc_status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
