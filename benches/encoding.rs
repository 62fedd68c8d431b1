//! Encoding benchmark: bytes on disk per field value, and encode/decode speed,
//! for raw line protocol, lz4 of line protocol and encoding v2 (`delta`), on
//! three generated datasets, all in one run. A batch is what the agent stores:
//! 10,000 lines, normalised by the real parser.
//!
//! (a) energy meters at 1 s: voltage, current, power, frequency quantised to
//!     the meter's resolution (0.1, 0.01, 0.1, 0.01), drifting slowly, so
//!     consecutive values are often equal;
//! (b) noisy float sensors at irregular intervals (full-precision values);
//! (c) mixed types: counters, integers, booleans, status strings.
//!
//! Run: `cargo bench --bench encoding` (HISSRV_BENCH_RUNS=15 timing runs).

use hissrv::lineproto::{ParseOptions, Precision, parse_into};
use hissrv::wal::codec::{FORMAT_DELTA, FORMAT_LZ4, decode, encode};
use std::time::Instant;

const LINES: usize = 10_000;
const T0: i64 = 1_700_000_000_000_000_000;

/// xorshift64*, so every run sees the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// -1, 0 or +1 steps, mostly 0.
    fn drift(&mut self, p_move: f64) -> i64 {
        let u = self.unit();
        if u < p_move / 2.0 {
            -1
        } else if u < p_move {
            1
        } else {
            0
        }
    }
}

fn normalise(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let opts = ParseOptions {
        precision: Precision::Nanos,
        now_ns: T0,
        allow_unsigned: false,
    };
    let p = parse_into(text.as_bytes(), &opts, &mut out);
    assert_eq!(p.rejected, 0, "{:?}", p.errors);
    out
}

/// (a) 100 meters × 100 s, 4 quantised fields each.
fn meters() -> (Vec<u8>, usize) {
    let mut r = Rng(1);
    let meters = 100;
    // State in units of each field's resolution.
    let mut st: Vec<[i64; 4]> = (0..meters)
        .map(|_| {
            [
                2300 + (r.next() % 40) as i64,
                1200 + (r.next() % 500) as i64,
                28_000 + (r.next() % 5000) as i64,
                5000,
            ]
        })
        .collect();
    let mut s = String::new();
    for t in 0..LINES / meters {
        for (m, v) in st.iter_mut().enumerate() {
            v[0] += r.drift(0.2);
            v[1] += r.drift(0.4);
            v[2] += r.drift(0.5) * (1 + (r.next() % 3) as i64);
            v[3] = (v[3] + r.drift(0.3)).clamp(4995, 5005);
            s.push_str(&format!(
                "meter,site=plant{},meter_id=m{m:04} voltage={:.1},current={:.2},power={:.1},frequency={:.2} {}\n",
                m % 4,
                v[0] as f64 / 10.0,
                v[1] as f64 / 100.0,
                v[2] as f64 / 10.0,
                v[3] as f64 / 100.0,
                T0 + t as i64 * 1_000_000_000
            ));
        }
    }
    (normalise(&s), LINES * 4)
}

/// (b) 50 sensors, 2 noisy fields at the sensor's resolution (0.001 °C,
/// 0.0001 hPa, like a BME280), irregular intervals (0.9–1.1 s, ms stamps).
fn sensors() -> (Vec<u8>, usize) {
    sensors_printed(|s, t, p| {
        s.push_str(&format!("temperature={t:.3},pressure={p:.4}"));
    })
}

/// (b') the same sensors printed at full double precision: the worst case
/// for any float coding (about 52 random bits a value), shown for honesty.
fn sensors_full_precision() -> (Vec<u8>, usize) {
    sensors_printed(|s, t, p| {
        s.push_str(&format!("temperature={t:?},pressure={p:?}"));
    })
}

fn sensors_printed(fields: impl Fn(&mut String, f64, f64)) -> (Vec<u8>, usize) {
    let mut r = Rng(2);
    let mut ts = vec![T0; 50];
    let mut temp = vec![21.0f64; 50];
    let mut s = String::new();
    for i in 0..LINES {
        let k = i % 50;
        ts[k] += (900 + (r.next() % 200) as i64) * 1_000_000;
        temp[k] += (r.unit() - 0.5) * 0.05;
        let t = temp[k] + (r.unit() - 0.5) * 0.2;
        let p = 1013.25 + (r.unit() - 0.5) * 4.0;
        s.push_str(&format!("env,sensor=s{k:02},room=r{} ", k % 5));
        fields(&mut s, t, p);
        s.push_str(&format!(" {}\n", ts[k]));
    }
    (normalise(&s), LINES * 2)
}

/// (c) 100 devices: counter, integer, boolean, status string.
fn mixed() -> (Vec<u8>, usize) {
    let mut r = Rng(3);
    let mut counters = [0i64; 100];
    let mut running = [true; 100];
    let states = ["ok", "ok", "ok", "warn", "alarm"];
    let mut s = String::new();
    for i in 0..LINES {
        let d = i % 100;
        counters[d] += (r.next() % 20) as i64;
        if r.unit() < 0.02 {
            running[d] = !running[d];
        }
        let state = states[if r.unit() < 0.9 {
            0
        } else {
            (r.next() % 5) as usize
        }];
        s.push_str(&format!(
            "plc,device=d{d:03} pulses={}i,setpoint={}i,running={},state=\"{state}\" {}\n",
            counters[d],
            (r.next() % 8) as i64 * 5,
            running[d],
            T0 + (i / 100) as i64 * 1_000_000_000
        ));
    }
    (normalise(&s), LINES * 4)
}

fn median_secs(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}

fn main() {
    let runs = std::env::var("HISSRV_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    println!(
        "batches of {LINES} lines; bytes per field value (one timestamp + one value); median of {runs} timing runs\n"
    );
    println!(
        "{:<28} {:>8} {:>8} {:>8} {:>9} {:>9} {:>13} {:>13}",
        "dataset", "raw LP", "lz4 LP", "v2", "raw/v2", "lz4/v2", "encode val/s", "decode val/s"
    );
    for (name, (lp, values)) in [
        ("(a) energy meters, 1 s", meters()),
        ("(b) noisy sensors, irregular", sensors()),
        ("(b') same, full precision", sensors_full_precision()),
        ("(c) mixed types", mixed()),
    ] {
        let lz4 = encode(FORMAT_LZ4, &lp).expect("lz4");
        let v2 = encode(FORMAT_DELTA, &lp).expect("v2");
        let back = decode(FORMAT_DELTA, &v2).expect("decode");
        assert_eq!(hissrv::lineproto::lines(&back).count(), LINES, "round trip");
        let per = |n: usize| n as f64 / values as f64;
        let enc = median_secs(runs, || {
            std::hint::black_box(encode(FORMAT_DELTA, std::hint::black_box(&lp)).ok());
        });
        let dec = median_secs(runs, || {
            std::hint::black_box(decode(FORMAT_DELTA, std::hint::black_box(&v2)).ok());
        });
        println!(
            "{name:<28} {:>8.2} {:>8.2} {:>8.2} {:>8.1}x {:>8.1}x {:>13.0} {:>13.0}",
            per(lp.len()),
            per(lz4.len()),
            per(v2.len()),
            lp.len() as f64 / v2.len() as f64,
            lz4.len() as f64 / v2.len() as f64,
            values as f64 / enc,
            values as f64 / dec,
        );
    }
}
