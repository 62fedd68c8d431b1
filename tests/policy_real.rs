//! More of the status policy end to end against a real influxd 1.6.7: a line
//! larger than the server takes becomes a dead letter (413 on a single line)
//! while the rest is delivered; a destination's batches arrive in commit
//! order; a database dropped under the agent is created again
//! (`manage_retention`) and nothing is lost.

mod common;
use common::*;

fn dead_letters(h: &Hissrv) -> Vec<(i64, String)> {
    let c = rusqlite::Connection::open(h.buffer_path()).unwrap();
    let mut stmt = c
        .prepare("SELECT status, CAST(line AS TEXT) FROM dead_letters ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_single_line_larger_than_the_server_takes_is_a_dead_letter_and_the_rest_arrives() {
    let influx = Influx::start_with("  max-body-size = 20000\n");
    influx.create_db("plant");
    let h = Hissrv::start(&influx.url(), "  database: plant\n  gzip: false\n");
    let big = format!("m,k=big s=\"{}\" 5", "x".repeat(30_000));
    let body = format!("m,k=a v=1i 1\n{big}\nm,k=b v=2i 2\n");
    assert_eq!(h.post("/write?db=plant", &body).0, 204);
    wait_for("the small lines delivered", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == 2
    });
    wait_for("the buffer drained", DELIVERY_TIMEOUT, || {
        h.buffered_points() == 0
    });
    let dead = dead_letters(&h);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, 413);
    assert_eq!(dead[0].1, big);
}

#[test]
fn a_destinations_batches_arrive_in_commit_order_after_an_outage() {
    let influx = Influx::start();
    influx.create_db("plant");
    let proxy = CuttingProxy::recording(influx.port);
    let settings = "  database: plant\n  gzip: false\n";
    let mut h = Hissrv::start(&format!("http://127.0.0.1:{}", free_port()), settings);
    // Twenty commits, each ten points, timestamps rising across commits.
    for c in 0..20i64 {
        let body: String = (0..10)
            .map(|i| format!("m v={}i {}\n", c * 10 + i, c * 10 + i))
            .collect();
        assert_eq!(h.post("/write?db=plant", &body).0, 204);
    }
    h.rewrite_config(&proxy.url(), Sections::influxdb(settings));
    wait_for("all delivered", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == 200 && h.buffered_points() == 0
    });
    // What crossed the link, in order: the line-protocol lines' timestamps.
    let sent = proxy.sent.as_ref().unwrap().lock().unwrap().clone();
    let stamps: Vec<i64> = String::from_utf8_lossy(&sent)
        .lines()
        .filter(|l| l.starts_with("m v="))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(stamps.len(), 200, "each point sent once, no retry needed");
    assert!(
        stamps.windows(2).all(|w| w[0] < w[1]),
        "in commit order: {stamps:?}"
    );
}

#[test]
fn a_database_dropped_under_the_agent_is_created_again_and_nothing_is_lost() {
    let influx = Influx::start();
    let rules = "  manage_retention: true\n  sharding:\n    buckets:\n      - {name: week, retention: 7d, points: [m]}\n";
    let h = Hissrv::start(&influx.url(), rules);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    assert_eq!(h.post("/write?db=hissrv", &format!("m v=1i {now}")).0, 204);
    let rows = |influx: &Influx| {
        influx
            .rows("hissrv", "SELECT v FROM \"hissrv\".\"week\".\"m\"")
            .len()
    };
    wait_for(
        "the first point in the created policy",
        DELIVERY_TIMEOUT,
        || rows(&influx) == 1,
    );
    // An operator drops the database under the running agent.
    influx.exec("DROP DATABASE \"hissrv\"");
    wait_for("the database gone", DELIVERY_TIMEOUT, || {
        !influx.databases().iter().any(|d| d.contains("hissrv"))
    });
    assert_eq!(
        h.post("/write?db=hissrv", &format!("m v=2i {}", now + 1)).0,
        204
    );
    wait_for(
        "the database and policy created again",
        DELIVERY_TIMEOUT,
        || rows(&influx) == 1,
    );
    wait_for("the buffer drained", DELIVERY_TIMEOUT, || {
        h.buffered_points() == 0
    });
    assert!(dead_letters(&h).is_empty(), "nothing condemned");
}
