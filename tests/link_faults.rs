//! Faults of the link between hissrv and a real influxd, injected by a proxy
//! in front of it (tests/common/fault_proxy.rs): an upstream that accepts and
//! never answers, one that answers at a byte a second, a link cut in the
//! middle of a request body, a load balancer answering 502 to everything.
//! For each: the writes are acknowledged and kept, `/health` and `/metrics`
//! say that deliveries are failing and why, nothing is condemned, and once
//! the link heals every point arrives with nothing left behind.

mod common;
use common::fault_proxy::{Fault, FaultProxy};
use common::*;

const BODIES: i64 = 3;
const LINES: i64 = 100;

fn body(first: i64) -> String {
    (first..first + LINES)
        .map(|t| format!("m,src=link v={t}i {t}\n"))
        .collect()
}

/// Runs `fault` under a live agent, then heals the link. `why` is what the
/// last error must say during the fault.
fn survives(fault: Fault, why: &[&str]) {
    let influx = Influx::start();
    influx.create_db("plant");
    let proxy = FaultProxy::start(influx.port);
    proxy.set(fault);
    let h = Hissrv::start(
        &proxy.url(),
        "  database: plant\n  timeout_ms: 1000\n  gzip: false\n",
    );
    for i in 0..BODIES {
        assert_eq!(h.post("/write?db=plant", &body(i * LINES)).0, 204);
    }
    wait_for("the failure shown", DELIVERY_TIMEOUT, || {
        let health = h.health();
        health.upstream_failing_for_ms >= 2_000 && why.iter().any(|w| health.last_error.contains(w))
    });
    let health = h.health();
    assert_eq!(health.backlog_points, (BODIES * LINES) as u64, "all kept");
    assert_eq!(health.dead_letters_stored, 0, "nothing condemned");
    let metrics = h.get("/metrics");
    let failing = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hissrv_upstream_failing_seconds "))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("the gauge");
    assert!(failing >= 2.0, "{failing}");
    let status = common::hissrv_command()
        .args(["status", "--url", &h.url()])
        .output()
        .expect("hissrv status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("DOWN: deliveries failing for"), "{text}");

    proxy.set(Fault::Pass);
    wait_for("every point delivered", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == (BODIES * LINES) as usize
    });
    wait_for("the buffer emptied", DELIVERY_TIMEOUT, || {
        h.buffered_points() == 0
    });
    let health = h.health();
    assert_eq!(health.upstream_failing_for_ms, 0, "recovered");
    assert_eq!(health.dead_letters_stored, 0);
}

#[test]
fn an_upstream_that_accepts_and_never_answers_times_out_keeps_everything_and_recovers() {
    survives(
        Fault::Blackhole,
        &["no complete answer within influxdb.timeout_ms"],
    );
}

#[test]
fn an_upstream_answering_a_byte_a_second_times_out_keeps_everything_and_recovers() {
    survives(
        Fault::Trickle,
        &["no complete answer within influxdb.timeout_ms"],
    );
}

#[test]
fn a_link_cut_in_the_middle_of_a_request_body_keeps_everything_and_recovers() {
    survives(
        Fault::CutMidBody,
        &["Peer disconnected", "reset", "Broken pipe", "io:"],
    );
}

#[test]
fn a_storm_of_502_answers_condemns_nothing_and_everything_arrives_after_it() {
    survives(Fault::Storm502, &["502"]);
}

#[test]
fn a_destination_failing_for_long_shows_while_another_delivers() {
    // Found by review: any success reset the failing clock, so one healthy
    // destination hid another failing for hours.
    let influx = Influx::start();
    influx.create_db("healthy");
    let h = std::sync::Arc::new(Hissrv::start(&influx.url(), "  gzip: false\n"));
    assert_eq!(h.post("/write?db=missing", "m v=1i 1").0, 204);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (h, stop) = (h.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut t = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                t += 1;
                assert_eq!(h.post("/write?db=healthy", &format!("m v={t}i {t}")).0, 204);
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        })
    };
    wait_for(
        "the missing database shown as failing",
        DELIVERY_TIMEOUT,
        || h.health().upstream_failing_for_ms >= 3_000,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(influx.count("healthy", "m") > 0, "the healthy one delivers");
    assert!(h.health().last_error.contains("database not found"));
}
