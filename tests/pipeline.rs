//! End-to-end: producers → hissrv → a real InfluxDB 1.6.7 (and VictoriaMetrics
//! for the 2.x request path), with faults injected against the real servers.

mod common;
use common::*;

fn v1(db: &str) -> String {
    format!("  api: v1\n  database: \"{db}\"\n")
}

#[test]
fn points_written_through_v1_and_v2_arrive_with_their_values_types_tags_and_timestamps() {
    let influx = Influx::start();
    influx.create_db("plant");
    let h = Hissrv::start(&influx.url(), &v1("plant"));
    let (s, b) = h.post(
        "/write?db=plant&precision=s",
        "meter,site=north,id=m\\ 1 voltage=230.5,count=42i,ok=true,state=\"run, fast\" 1700000000\n",
    );
    assert_eq!(s, 204, "{b}");
    let (s, b) = h.post(
        "/api/v2/write?org=o&bucket=plant&precision=ms",
        "meter,site=south voltage=-1.25e-3,count=-7i,ok=F,state=\"a \\\"q\\\"\" 1700000000123",
    );
    assert_eq!(s, 204, "{b}");
    wait_for("2 points upstream", DELIVERY_TIMEOUT, || {
        influx.count("plant", "meter") == 2
    });
    let rows = influx.rows(
        "plant",
        "SELECT count, id, ok, site, state, voltage FROM meter",
    );
    assert_eq!(
        rows,
        vec![
            r#"[1700000000000000000,42,"m 1",true,"north","run, fast",230.5]"#.to_string(),
            r#"[1700000000123000000,-7,null,false,"south","a \"q\"",-0.00125]"#.to_string(),
        ]
    );
    let types = influx.rows("plant", "SHOW FIELD KEYS FROM meter");
    assert_eq!(
        types,
        vec![
            r#"["count","integer"]"#.to_string(),
            r#"["ok","boolean"]"#.to_string(),
            r#"["state","string"]"#.to_string(),
            r#"["voltage","float"]"#.to_string(),
        ]
    );
}

#[test]
fn one_malformed_line_gets_a_partial_write_naming_it_and_the_good_lines_arrive() {
    let influx = Influx::start();
    influx.create_db("plant");
    let h = Hissrv::start(&influx.url(), &v1("plant"));
    let (s, body) = h.post("/write?db=plant", "m v=1 1\nm v=2 2\nm v=oops 3\nm v=4 4\n");
    assert_eq!(s, 400);
    assert!(
        body.contains("partial write: unable to parse 'm v=oops 3': invalid boolean")
            && body.contains("(line 3)"),
        "{body}"
    );
    wait_for("3 good points upstream", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == 3
    });
    assert_eq!(
        influx.rows("plant", "SELECT v FROM m"),
        vec!["[1,1]", "[2,2]", "[4,4]"]
    );
}

/// `n` lines of measurement `m` with timestamps `first..first+n` (ns).
fn body(first: i64, n: i64) -> String {
    (first..first + n)
        .map(|t| format!("m,src=t v={t}i {t}\n"))
        .collect()
}

#[test]
fn every_acknowledged_point_arrives_after_influxdb_is_stopped_and_restarted() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    let mut influx = Influx::start();
    influx.create_db("plant");
    let h = Arc::new(Hissrv::start(&influx.url(), &v1("plant")));
    const LINES: i64 = 50;
    const BODIES: i64 = 300;
    let acked = Arc::new(AtomicI64::new(0));
    let producer = {
        let (h, acked) = (h.clone(), acked.clone());
        std::thread::spawn(move || {
            for i in 0..BODIES {
                let (s, b) = h.post("/write?db=plant", &body(i * LINES, LINES));
                assert_eq!(s, 204, "body {i}: {b}");
                acked.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    wait_for("first acks", DELIVERY_TIMEOUT, || {
        acked.load(Ordering::SeqCst) >= 50
    });
    influx.stop();
    let at_stop = acked.load(Ordering::SeqCst);
    wait_for("acks while upstream is down", DELIVERY_TIMEOUT, || {
        acked.load(Ordering::SeqCst) >= at_stop + 100 || acked.load(Ordering::SeqCst) == BODIES
    });
    assert!(
        h.buffered_points() > 0,
        "points are held while influxd is down"
    );
    influx.restart();
    producer.join().expect("producer saw only 204s");
    let total = (BODIES * LINES) as usize;
    wait_for("every acknowledged point", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == total
    });
    wait_for("buffer drained", DELIVERY_TIMEOUT, || {
        h.buffered_points() == 0
    });
}

#[test]
fn a_field_type_conflict_sends_only_the_refused_line_to_dead_letters() {
    let influx = Influx::start();
    influx.create_db("plant");
    let h = Hissrv::start(&influx.url(), &v1("plant"));
    assert_eq!(h.post("/write?db=plant", "m v=1 1").0, 204);
    wait_for("the float field exists", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == 1
    });
    assert_eq!(
        h.post("/write?db=plant", "m v=2 2\nm v=3i 3\nm v=4 4").0,
        204
    );
    wait_for("the batch is settled", DELIVERY_TIMEOUT, || {
        h.buffered_points() == 0
    });
    assert_eq!(
        influx.rows("plant", "SELECT v FROM m"),
        vec!["[1,1]", "[2,2]", "[4,4]"]
    );
    let c = rusqlite::Connection::open(h.buffer_path()).unwrap();
    let (line, status, reason): (Vec<u8>, i64, String) = c
        .query_row("SELECT line, status, reason FROM dead_letters", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((line.as_slice(), status), (&b"m v=3i 3"[..], 400));
    assert!(reason.contains("field type conflict"), "{reason}");
}

#[test]
fn a_missing_database_keeps_the_data_until_it_is_created() {
    let influx = Influx::start();
    let h = Hissrv::start(&influx.url(), &v1("later"));
    assert_eq!(h.post("/write?db=later", "m v=1 1\nm v=2 2").0, 204);
    // The buffer records each failed attempt with the server's answer.
    let last_error = || -> String {
        let c = rusqlite::Connection::open(h.buffer_path()).unwrap();
        c.query_row("SELECT coalesce(last_error, '') FROM batches", [], |r| {
            r.get(0)
        })
        .unwrap_or_default()
    };
    wait_for(
        "a 404 from influxd recorded on the batch",
        DELIVERY_TIMEOUT,
        || last_error().starts_with("404: "),
    );
    assert!(
        last_error().contains("database not found"),
        "{}",
        last_error()
    );
    assert_eq!(h.buffered_points(), 2);
    influx.create_db("later");
    wait_for("delivery after CREATE DATABASE", DELIVERY_TIMEOUT, || {
        influx.count("later", "m") == 2
    });
}

#[test]
fn the_v2_request_path_delivers_to_a_server_that_speaks_api_v2_write() {
    let vm = Victoria::start();
    let h = Hissrv::start(
        &vm.url(),
        "  api: v2\n  org: \"site\"\n  token: \"secret\"\n",
    );
    let (s, b) = h.post(
        "/api/v2/write?org=site&bucket=plant&precision=s",
        "meter,site=north voltage=230.5 1700000000\nmeter,site=north voltage=231.5 1700000060",
    );
    assert_eq!(s, 204, "{b}");
    let mut out = String::new();
    wait_for("samples in victoria-metrics", DELIVERY_TIMEOUT, || {
        out = vm.export("{__name__=\"meter_voltage\"}");
        out.contains("231.5")
    });
    assert!(out.contains("\"site\":\"north\""), "{out}");
    assert!(out.contains("[230.5,231.5]"), "{out}");
    assert!(out.contains("[1700000000000,1700000060000]"), "{out}");
}

#[test]
fn a_413_from_influxdb_splits_the_batch_and_every_point_arrives() {
    // A real influxd that takes at most 20 kB per request.
    let influx = Influx::start_with("  max-body-size = 20000\n");
    influx.create_db("plant");
    let h = Hissrv::start(&influx.url(), "  database: plant\n  gzip: false\n");
    assert_eq!(h.post("/write?db=plant", &body(0, 2_000)).0, 204); // ~40 kB
    wait_for("all 2000 points after splitting", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == 2_000
    });
    assert!(
        h.log()
            .contains("upstream said 413: requests are now at most"),
        "the split was driven by a 413"
    );
    wait_for("buffer drained", DELIVERY_TIMEOUT, || {
        h.buffered_points() == 0
    });
}

#[test]
fn connections_cut_between_hissrv_and_influxdb_lose_nothing() {
    use std::sync::atomic::Ordering;
    let influx = Influx::start();
    influx.create_db("plant");
    let proxy = CuttingProxy::start(influx.port);
    let h = Hissrv::start(&proxy.url(), "  database: plant\n");
    const LINES: i64 = 100;
    for i in 0..20 {
        assert_eq!(h.post("/write?db=plant", &body(i * LINES, LINES)).0, 204);
    }
    proxy.set_cut(true);
    let cut_at = proxy.connections.load(Ordering::SeqCst);
    for i in 20..60 {
        assert_eq!(h.post("/write?db=plant", &body(i * LINES, LINES)).0, 204);
    }
    wait_for("retries against the cut link", DELIVERY_TIMEOUT, || {
        proxy.connections.load(Ordering::SeqCst) >= cut_at + 3
    });
    assert!(
        h.buffered_points() > 0,
        "points wait in the buffer while the link is cut"
    );
    proxy.set_cut(false);
    wait_for(
        "every point once the link is back",
        DELIVERY_TIMEOUT,
        || influx.count("plant", "m") == 6_000 && h.buffered_points() == 0,
    );
}

#[test]
fn a_line_the_server_fails_on_every_time_is_isolated_and_the_rest_delivered() {
    // influxd 1.6.7 answers 500 (an internal panic) to a line with exactly
    // 100 tags; our parser, like later InfluxDB versions, accepts it.
    let influx = Influx::start();
    influx.create_db("plant");
    let h = Hissrv::start(&influx.url(), "  database: plant\n");
    let tags: String = (1..=100).map(|i| format!(",t{i}=x")).collect();
    let poison = format!("m{tags} v=99.5 99");
    let body = format!("{}{poison}\n{}", body(0, 5), body(5, 5));
    assert_eq!(h.post("/write?db=plant", &body).0, 204);
    wait_for("the good lines upstream", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == 10 && h.buffered_points() == 0
    });
    let c = rusqlite::Connection::open(h.buffer_path()).unwrap();
    let (line, status, reason): (Vec<u8>, i64, String) = c
        .query_row("SELECT line, status, reason FROM dead_letters", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((String::from_utf8(line).unwrap(), status), (poison, 500));
    assert!(reason.contains("neighbours were written"), "{reason}");
}
