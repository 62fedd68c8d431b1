//! Draining a backlog after an outage: small batches travel packed into few
//! requests, and live points keep flowing while the backlog drains.

mod common;
use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Write requests influxd itself has answered (its own `httpd` statistics).
fn influx_write_requests(influx: &Influx) -> u64 {
    use miniserde::json::{Number, Value};
    let v = influx.query("_internal", "SHOW STATS FOR 'httpd'");
    let series = |v: &Value| -> Option<(Vec<String>, Vec<Value>)> {
        let Value::Object(top) = v else { return None };
        let Value::Array(results) = top.get("results")? else {
            return None;
        };
        let Value::Object(r) = results.first()? else {
            return None;
        };
        let Value::Array(series) = r.get("series")? else {
            return None;
        };
        let Value::Object(s) = series.first()? else {
            return None;
        };
        let Value::Array(cols) = s.get("columns")? else {
            return None;
        };
        let Value::Array(values) = s.get("values")? else {
            return None;
        };
        let Value::Array(row) = values.first()? else {
            return None;
        };
        let cols = cols
            .iter()
            .map(|c| match c {
                Value::String(s) => s.clone(),
                _ => String::new(),
            })
            .collect();
        Some((cols, row.iter().cloned().collect()))
    };
    let (cols, row) = series(&v).expect("influxd answers SHOW STATS");
    let i = cols
        .iter()
        .position(|c| c == "writeReq")
        .expect("a writeReq column");
    match &row[i] {
        Value::Number(Number::U64(n)) => *n,
        Value::Number(Number::I64(n)) => *n as u64,
        other => panic!("writeReq is {other:?}"),
    }
}

#[test]
fn small_batches_from_an_outage_travel_packed_into_one_request() {
    let mut influx = Influx::start();
    influx.create_db("plant");
    influx.stop();
    let h = Hissrv::start(&influx.url(), "  database: plant\n");
    for t in 0..50 {
        assert_eq!(h.post("/write?db=plant", &format!("m v={t} {t}")).0, 204);
    }
    assert_eq!(h.buffered_points(), 50);
    influx.restart();
    wait_for("the backlog delivered", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == 50 && h.buffered_points() == 0
    });
    assert_eq!(
        influx_write_requests(&influx),
        1,
        "50 stored batches, one request"
    );
}

#[test]
fn live_points_arrive_while_a_large_backlog_still_drains() {
    let mut influx = Influx::start();
    influx.create_db("plant");
    influx.stop();
    let h = Arc::new(Hissrv::start_with(
        &influx.url(),
        Sections {
            influxdb: "  database: plant\n",
            other: "performance:\n  adaptive_batching:\n    max_batch_size: 1000\n  backlog_replay:\n    live_share_percent: 25\n    live_window_ms: 200\n",
            ..Sections::default()
        },
    ));
    const BODIES: i64 = 100;
    const LINES: i64 = 2_000;
    for b in 0..BODIES {
        let body: String = (b * LINES..(b + 1) * LINES)
            .map(|t| format!("backlog v={t}i {t}\n"))
            .collect();
        assert_eq!(h.post("/write?db=plant", &body).0, 204);
    }
    // The whole backlog ages past the live window (polled on the buffer's
    // own commit times).
    let newest_ms = || -> i64 {
        let c = rusqlite::Connection::open(h.buffer_path()).unwrap();
        c.query_row("SELECT max(created_ms) FROM batches", [], |r| r.get(0))
            .unwrap()
    };
    let backlog_newest = newest_ms();
    wait_for(
        "the backlog to age past the live window",
        DELIVERY_TIMEOUT,
        || hissrv::clock::now_ms() > backlog_newest + 200,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let live_acked = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (h, stop, acked) = (h.clone(), stop.clone(), live_acked.clone());
        std::thread::spawn(move || {
            let mut t = 0;
            while !stop.load(Ordering::SeqCst) {
                assert_eq!(
                    h.post("/write?db=plant", &format!("live v={t}i {t}")).0,
                    204
                );
                acked.fetch_add(1, Ordering::SeqCst);
                t += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        })
    };
    // Live data is in the buffer before the upstream comes back: the drain
    // then owes it every 4th request, long before the 200 the backlog takes.
    wait_for("live points in the buffer", DELIVERY_TIMEOUT, || {
        live_acked.load(Ordering::SeqCst) > 0
    });
    influx.restart();
    wait_for("a live point upstream", DELIVERY_TIMEOUT, || {
        influx.count("plant", "live") > 0
    });
    let backlog_then = influx.count("plant", "backlog");
    assert!(
        backlog_then < (BODIES * LINES) as usize,
        "live data arrived only after the whole backlog ({backlog_then} points)"
    );
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let live = live_acked.load(Ordering::SeqCst);
    wait_for("everything, backlog and live", DELIVERY_TIMEOUT, || {
        influx.count("plant", "backlog") == (BODIES * LINES) as usize
            && influx.count("plant", "live") == live
    });
}

#[test]
fn a_backlog_travels_in_requests_no_larger_than_max_request_mb() {
    // The backlog builds up with the upstream unreachable...
    let dead = format!("http://127.0.0.1:{}", free_port());
    let sections = || Sections {
        influxdb: "  database: plant\n",
        other: "performance:\n  max_request_mb: 1\n  adaptive_batching:\n    max_batch_size: 5000\n",
        ..Sections::default()
    };
    let mut h = Hissrv::start_with(&dead, sections());
    const BODIES: usize = 40;
    const LINES: usize = 100;
    let pad = "x".repeat(1_000);
    for b in 0..BODIES {
        let body: String = (0..LINES)
            .map(|l| format!("m s=\"{pad}\" {}\n", b * LINES + l))
            .collect();
        assert_eq!(h.post("/write?db=plant", &body).0, 204);
    }
    // ...then drains to a server that records each request.
    let up = common::scripted::Scripted::with_script(Vec::new());
    h.restart_with(&up.url(), sections());
    wait_for("the backlog drained", DELIVERY_TIMEOUT, || {
        h.buffered_points() == 0
    });
    let seen = up.seen();
    let lines: usize = seen.iter().map(|s| s.body.lines().count()).sum();
    assert_eq!(lines, BODIES * LINES);
    let largest = seen.iter().map(|s| s.body.len()).max().unwrap_or(0);
    assert!(largest <= 1024 * 1024, "a {largest}-byte request");
    assert!(
        seen.len() >= 4,
        "~4 MB in requests of at most 1 MiB: {} requests",
        seen.len()
    );
    assert!(
        seen.iter().any(|s| s.body.lines().count() > LINES),
        "stored batches are packed together up to the limit"
    );
}

#[test]
fn a_reload_reorders_the_drain_of_a_backlog_already_buffered() {
    let influx = Influx::start();
    influx.create_db("hissrv");
    let proxy = CuttingProxy::recording(influx.port);
    let buckets = |hf: u8, ev: u8| {
        format!(
            "  gzip: false\n  manage_retention: true\n  sharding:\n    fair_share_percent: 0\n    buckets:\n      \
             - {{name: high_frequency, retention: 7d, priority: {hf}, points: [voltage]}}\n      \
             - {{name: events, retention: 7d, priority: {ev}, points: [alarms]}}\n"
        )
    };
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    // Events first, while the upstream is unreachable: the backlog waits.
    let first = buckets(1, 9);
    let mut agent = Hissrv::start(&format!("http://127.0.0.1:{}", free_port()), &first);
    for r in 0..10i64 {
        let body = format!(
            "voltage,meter=m l1={r} {}\nalarms,site=s active=true {}\n",
            t + r,
            t + r
        );
        assert_eq!(agent.post("/write?db=hissrv", &body).0, 204);
    }
    assert_eq!(agent.buffered_points(), 20);

    // One reload: the uplink and the opposite priorities.
    let second = buckets(9, 1);
    agent.rewrite_config(&proxy.url(), Sections::influxdb(&second));
    wait_for("the backlog delivered", DELIVERY_TIMEOUT, || {
        agent.buffered_points() == 0
    });
    let writes: Vec<String> = proxy
        .request_lines()
        .into_iter()
        .filter(|l| l.starts_with("POST /write"))
        .collect();
    let last_voltage = writes
        .iter()
        .rposition(|l| l.contains("rp=high_frequency"))
        .expect("voltage delivered");
    let first_alarm = writes
        .iter()
        .position(|l| l.contains("rp=events"))
        .expect("alarms delivered");
    assert!(
        last_voltage < first_alarm,
        "strict priority after the reload: every high_frequency request before any events one: {writes:?}"
    );
    assert_eq!(agent.health().config_reloads, 1);
}
