//! The InfluxDB-compatible surface end to end, against a real influxd (and
//! VictoriaMetrics for the 2.x upstream): the 400 text, unsigned integers
//! only towards 2.x, `destination: fixed`, the upstream org and token, Basic
//! auth with a chunked body on a kept-alive connection, credentials from the
//! environment.

mod common;
use common::*;
use std::io::{Read, Write};

#[test]
fn a_partial_write_names_the_line_column_and_dropped_count_and_keeps_the_good_lines() {
    let influx = Influx::start();
    influx.create_db("plant");
    let h = Hissrv::start(&influx.url(), "  database: plant\n");
    let (status, body) = h.post(
        "/write?db=plant",
        "m v=1i 1\nm v=2i 2\nm,t=a v=\"open 3\nm v=4i 4\nm v=5z 5\n",
    );
    assert_eq!(status, 400);
    assert_eq!(
        body,
        "{\"error\":\"partial write: unable to parse 'm,t=a v=\\\"open 3\\nm v=4i 4\\nm v=5z 5': unbalanced quotes at column 9 (line 3) dropped=1\"}"
            .replace("\\\\n", "\\n"),
        "InfluxDB's text, with line and column"
    );
    wait_for("the good lines upstream", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == 2
    });
}

#[test]
fn unsigned_integers_are_refused_towards_1x_and_delivered_towards_2x() {
    let influx = Influx::start();
    influx.create_db("plant");
    let v1 = Hissrv::start(&influx.url(), "  database: plant\n");
    let (status, body) = v1.post("/write?db=plant", "m u=42u 1");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unable to parse 'm u=42u 1'"), "{body}");
    let vm = Victoria::start();
    let v2 = Hissrv::start(&vm.url(), "  api: v2\n  org: site\n  token: secret\n");
    assert_eq!(
        v2.post(
            "/api/v2/write?bucket=plant&precision=s",
            "m u=42u 1700000000"
        )
        .0,
        204
    );
    let mut out = String::new();
    wait_for(
        "the unsigned value in victoria-metrics",
        DELIVERY_TIMEOUT,
        || {
            out = vm.export("{__name__=\"m_u\"}");
            out.contains("[42]")
        },
    );
}

#[test]
fn destination_fixed_pins_every_point_to_the_configured_database() {
    let influx = Influx::start();
    influx.create_db("pinned");
    let h = Hissrv::start(&influx.url(), "  database: pinned\n  destination: fixed\n");
    assert_eq!(h.post("/write?db=elsewhere", "m v=1i 1").0, 204);
    assert_eq!(h.post("/api/v2/write?bucket=other/rp", "m v=2i 2").0, 204);
    wait_for("both in the pinned database", DELIVERY_TIMEOUT, || {
        influx.count("pinned", "m") == 2
    });
    assert_eq!(
        influx.rows("pinned", "SELECT v FROM m"),
        vec!["[1,1]", "[2,2]"]
    );
}

#[test]
fn the_upstream_org_and_token_come_from_the_config_not_the_producer() {
    // A 2.x upstream: the scripted server records what hissrv sends.
    let up = common::scripted::Scripted::with_script(Vec::new());
    let h = Hissrv::start(&up.url(), "  api: v2\n  org: site-org\n  token: up-token\n");
    assert_eq!(
        h.post("/api/v2/write?org=producer-org&bucket=plant", "m v=1i 1")
            .0,
        204
    );
    wait_for("one request upstream", DELIVERY_TIMEOUT, || {
        !up.seen().is_empty()
    });
    let seen = &up.seen()[0];
    assert!(seen.target.starts_with("/api/v2/write?"), "{}", seen.target);
    assert!(seen.target.contains("org=site-org"), "{}", seen.target);
    assert!(!seen.target.contains("producer-org"), "{}", seen.target);
    assert!(seen.target.contains("bucket=plant"), "{}", seen.target);
    assert_eq!(seen.authorization.as_deref(), Some("Token up-token"));
}

#[test]
fn basic_auth_with_a_chunked_body_on_a_kept_alive_connection() {
    let influx = Influx::start();
    influx.create_db("plant");
    let h = Hissrv::start_with(
        &influx.url(),
        Sections {
            influxdb: "  database: plant\n",
            service: "  auth:\n    users: [{username: meter, password: pw}]\n",
            ..Sections::default()
        },
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", h.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    // "meter:pw"
    let auth = "Authorization: Basic bWV0ZXI6cHc=\r\n";
    for t in 1..=3 {
        let line = format!("m v={t}i {t}\n");
        let req = format!(
            "POST /write?db=plant HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{line}\r\n0\r\n\r\n",
            line.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "the connection stays open for request {t}");
            got.extend_from_slice(&buf[..n]);
        }
        let head = String::from_utf8_lossy(&got);
        assert!(head.starts_with("HTTP/1.1 204"), "request {t}: {head}");
        assert!(!head.contains("Connection: close"), "{head}");
    }
    wait_for("3 points upstream", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == 3
    });
}

#[test]
fn upstream_credentials_can_come_from_the_environment() {
    let influx = influx_with_auth();
    let answer = query_as(
        &influx,
        "admin",
        "adminpw",
        "CREATE USER envuser WITH PASSWORD 'envpw'; GRANT WRITE ON hissrv TO envuser",
    );
    assert!(!answer.contains("error"), "{answer}");
    // The file names no credentials: only the environment has them.
    let h = Hissrv::start_with_env(
        &influx.url(),
        Sections {
            influxdb: "  database: hissrv\n",
            ..Sections::default()
        },
        &[
            ("HISSRV_INFLUXDB_USERNAME", "envuser"),
            ("HISSRV_INFLUXDB_PASSWORD", "envpw"),
        ],
    );
    assert_eq!(h.post("/write?db=hissrv", "m v=1i 1").0, 204);
    wait_for(
        "delivery with the environment's credentials",
        DELIVERY_TIMEOUT,
        || h.buffered_points() == 0,
    );
    let rows = query_as(&influx, "admin", "adminpw", "SELECT v FROM hissrv..m");
    assert!(rows.contains("[1,1]") || rows.contains(",1]"), "{rows}");
}
