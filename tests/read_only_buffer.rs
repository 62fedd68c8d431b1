//! The buffer's file system turning read-only under a running agent (an SD
//! card the kernel remounted read-only after I/O errors), on a real FUSE file
//! system that refuses writes on demand (`common::disk::ReadOnlySwitch`), in
//! front of a real influxd.

mod common;
use common::*;

fn body(first: i64, n: i64) -> String {
    (first..first + n)
        .map(|t| format!("m,src=t v={t}i {t}\n"))
        .collect()
}

const LINES: i64 = 100;

#[test]
fn a_read_only_buffer_refuses_writes_pauses_delivery_says_so_and_recovers_with_nothing_lost() {
    let dir = TempDir::new("read-only");
    let Some(card) = common::disk::read_only_switch_or_skip(dir.path()) else {
        return;
    };
    let influx = Influx::start();
    influx.create_db("plant");
    let proxy = CuttingProxy::recording(influx.port);
    proxy.set_cut(true); // the uplink is down: a backlog builds
    let buffer = format!("  path: \"{}\"\n", card.path().join("buffer.db").display());
    let mut h = Hissrv::start_with(
        &proxy.url(),
        Sections {
            influxdb: "  database: plant\n",
            buffer: &buffer,
            ..Sections::default()
        },
    );
    for i in 0..10 {
        let (s, b) = h.post("/write?db=plant", &body(i * LINES, LINES));
        assert_eq!(s, 204, "{b}");
    }
    let acked = 10 * LINES;

    card.set_read_only(true);
    let (s, b) = h.post("/write?db=plant", &body(acked, LINES));
    assert_eq!(
        s, 503,
        "a write on a read-only card is refused, not lost: {b}"
    );
    assert!(b.contains("read-only"), "{b}");
    wait_for("/health to say read-only", DELIVERY_TIMEOUT, || {
        h.health().buffer_read_only
    });
    let health = h.health();
    assert_eq!(health.status, "fail", "{}", health.message);
    assert!(health.message.contains("read-only"), "{}", health.message);
    assert!(health.refused_read_only >= 1);
    assert_eq!(
        health.backlog_points, acked as u64,
        "what was stored is kept"
    );
    let metrics = h.get("/metrics");
    assert!(
        metrics.contains("\nhissrv_buffer_read_only 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hissrv_write_requests_refused_total{reason=\"read_only\"} 1\n"),
        "{metrics}"
    );
    let status = hissrv_command()
        .args(["status", "--url", &h.url()])
        .output()
        .expect("hissrv status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("the buffer's file system is read-only"),
        "{text}"
    );
    assert!(text.contains("1 writes (buffer read-only)"), "{text}");

    // The uplink comes back while the card is still read-only: nothing is
    // sent, since nothing sent could be deleted (each send would be a
    // duplicate next time). An absence, so it is watched for a while: many
    // of the tests' back-off periods (at most 500 ms) and probe periods.
    proxy.set_cut(false);
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(
        proxy.request_lines().iter().all(|l| !l.contains("/write")),
        "sent while read-only: {:?}",
        proxy.request_lines()
    );
    assert_eq!(influx.count("plant", "m"), 0);

    // kill -9 on the read-only card, then a restart once it is writable:
    // every acknowledged point is there and goes upstream.
    h.kill9();
    card.set_read_only(false);
    h.spawn();
    wait_for(
        "every acknowledged point upstream",
        DELIVERY_TIMEOUT,
        || influx.count("plant", "m") == acked as usize,
    );
    wait_for("the buffer emptied", DELIVERY_TIMEOUT, || {
        h.buffered_points() == 0
    });

    // Read-only again under the running agent, then writable: it recovers by
    // itself, without a restart.
    card.set_read_only(true);
    wait_for("the idle agent to notice", DELIVERY_TIMEOUT, || {
        h.health().buffer_read_only
    });
    assert_eq!(h.post("/write?db=plant", &body(acked, LINES)).0, 503);
    card.set_read_only(false);
    wait_for("/health to clear", DELIVERY_TIMEOUT, || {
        !h.health().buffer_read_only
    });
    let (s, b) = h.post("/write?db=plant", &body(acked, LINES));
    assert_eq!(s, 204, "writes resume: {b}");
    wait_for("the new point upstream", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == (acked + LINES) as usize
    });
    assert_eq!(h.health().status, "pass");
    assert!(h.get("/metrics").contains("\nhissrv_buffer_read_only 0\n"));
}
