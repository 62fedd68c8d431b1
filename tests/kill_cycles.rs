//! kill -9 over and over under load: producers write without pause while the
//! agent is killed at arbitrary moments and restarted, `HISSRV_KILL_CYCLES`
//! times (default 100: a few seconds; BENCHMARKS.md records runs). Every
//! acknowledged point must reach influxd, and every restart must come up and
//! take writes again (no wedged buffer).

mod common;
use common::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const PRODUCERS: usize = 3;
/// Points per request; each request owns a block of timestamps this long.
const LINES: i64 = 100;

fn body(producer: usize, request: i64) -> String {
    (request * LINES..(request + 1) * LINES)
        .map(|t| format!("m,p=p{producer} v={t}i {t}\n"))
        .collect()
}

#[test]
fn repeated_kill_minus_nine_under_load_loses_no_acknowledged_point_and_never_wedges() {
    let cycles: usize = std::env::var("HISSRV_KILL_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let influx = Influx::start();
    influx.create_db("plant");
    let mut h = Hissrv::start(&influx.url(), "  database: plant\n");
    let url = h.url();
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    // Per producer: the requests acknowledged.
    let acked: Arc<Mutex<Vec<Vec<i64>>>> = Arc::new(Mutex::new(vec![Vec::new(); PRODUCERS]));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (url, stop, acks, acked) = (url.clone(), stop.clone(), acks.clone(), acked.clone());
            std::thread::spawn(move || {
                let client = agent();
                let mut request = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    let r = client
                        .post(format!("{url}/write?db=plant"))
                        .send(body(p, request));
                    if matches!(&r, Ok(r) if r.status() == 204) {
                        acked.lock().unwrap()[p].push(request);
                        acks.fetch_add(1, Ordering::Relaxed);
                    } else {
                        // The agent is down (or stopping): try again soon,
                        // with a new block (this one may or may not be stored).
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    request += 1;
                }
            })
        })
        .collect();
    for cycle in 0..cycles {
        // Kill after a varying amount of acknowledged work.
        let target = acks.load(Ordering::Relaxed) + 5 + (cycle * 7) % 23;
        wait_for("writes acknowledged", DELIVERY_TIMEOUT, || {
            acks.load(Ordering::Relaxed) >= target
        });
        h.kill9();
        h.spawn(); // waits for /ping: a wedged restart fails here
    }
    // After the last restart it still takes writes.
    let before = acks.load(Ordering::Relaxed);
    wait_for("writes after the last restart", DELIVERY_TIMEOUT, || {
        acks.load(Ordering::Relaxed) >= before + 10
    });
    stop.store(true, Ordering::Relaxed);
    for p in producers {
        p.join().unwrap();
    }
    wait_for("the buffer drained", DELIVERY_TIMEOUT, || {
        h.buffered_points() == 0
    });
    // Per producer, points per request block, counted by influxd.
    let acked = acked.lock().unwrap().clone();
    let mut total = 0;
    for (p, requests) in acked.iter().enumerate() {
        let rows = influx.rows(
            "plant",
            &format!(
                "SELECT count(v) FROM m WHERE p = 'p{p}' AND time >= 0 AND time < {} GROUP BY time({LINES}ns) fill(none)",
                (requests.last().copied().unwrap_or(0) + 1) * LINES
            ),
        );
        let stored: BTreeMap<i64, i64> = rows
            .iter()
            .map(|row| {
                let cols: Vec<i64> = row
                    .trim_matches(|c| c == '[' || c == ']')
                    .split(',')
                    .map(|c| c.trim().parse().expect("a number"))
                    .collect();
                (cols[0] / LINES, cols[1])
            })
            .collect();
        for r in requests {
            assert_eq!(
                stored.get(r).copied(),
                Some(LINES),
                "producer {p}: acknowledged request {r} is not whole upstream ({cycles} kill cycles)"
            );
        }
        total += requests.len();
    }
    assert!(total >= cycles * 5, "only {total} requests acknowledged");
    eprintln!(
        "{cycles} kill -9 cycles: {total} acknowledged requests ({} points), all delivered",
        total as i64 * LINES
    );
}
