//! The HTTP and UDP surface, against the real binary and a real influxd:
//! authentication, gzip, body limits, UDP, /ping and /health.

mod common;
use common::*;
use std::io::Write;

#[test]
fn only_producers_with_configured_credentials_may_write() {
    let influx = Influx::start();
    influx.create_db("plant");
    let h = Hissrv::start_with(
        &influx.url(),
        Sections {
            influxdb: "  database: plant\n",
            service: "  auth:\n    tokens: [\"t0ken\"]\n    users: [{username: meter, password: pw}]\n",
            ..Sections::default()
        },
    );
    let (s, b) = h.post("/write?db=plant", "m v=1 1");
    assert_eq!(s, 401, "{b}");
    assert_eq!(h.post("/write?db=plant&u=meter&p=pw", "m v=2 2").0, 204);
    let r = agent()
        .post(format!("{}/api/v2/write?bucket=plant", h.url()))
        .header("Authorization", "Token t0ken")
        .send("m v=3 3")
        .unwrap();
    assert_eq!(r.status(), 204);
    wait_for("2 authorised points", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == 2
    });
    assert_eq!(
        influx.rows("plant", "SELECT v FROM m"),
        vec!["[2,2]", "[3,3]"]
    );
}

#[test]
fn gzip_bodies_are_accepted_and_oversized_bodies_get_413() {
    let influx = Influx::start();
    influx.create_db("plant");
    let h = Hissrv::start_with(
        &influx.url(),
        Sections {
            influxdb: "  database: plant\n",
            service: "  max_body_mb: 1\n",
            ..Sections::default()
        },
    );
    let lines: String = (0..1000).map(|t| format!("m,host=a v={t} {t}\n")).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(lines.as_bytes()).unwrap();
    let r = agent()
        .post(format!("{}/write?db=plant", h.url()))
        .header("Content-Encoding", "gzip")
        .send(&gz.finish().unwrap()[..])
        .unwrap();
    assert_eq!(r.status(), 204);
    wait_for("1000 gzipped points", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == 1000
    });
    // 1.2 MB of zeros gzips to ~1 kB: the limit applies after decompression.
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    bomb.write_all(&vec![b'0'; 1_200_000]).unwrap();
    let r = agent()
        .post(format!("{}/write?db=plant", h.url()))
        .header("Content-Encoding", "gzip")
        .send(&bomb.finish().unwrap()[..])
        .unwrap();
    assert_eq!(r.status(), 413);
    let big = "m v=1 1\n".repeat(150_000);
    assert_eq!(h.post("/write?db=plant", &big).0, 413);
}

#[test]
fn udp_datagrams_reach_the_configured_database() {
    let influx = Influx::start();
    influx.create_db("udpdb");
    let h = Hissrv::start_with(
        &influx.url(),
        Sections {
            influxdb: "  database: udpdb\n",
            service: "  udp_precision: s\n",
            ..Sections::default()
        },
    );
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(
        b"u,src=udp v=1 1\nu,src=udp v=2 2\nbad line\n",
        ("127.0.0.1", h.port),
    )
    .unwrap();
    wait_for("udp points upstream", DELIVERY_TIMEOUT, || {
        influx.count("udpdb", "u") == 2
    });
    assert_eq!(
        influx.rows("udpdb", "SELECT v FROM u"),
        vec!["[1000000000,1]", "[2000000000,2]"],
        "timestamps read at udp_precision: s"
    );
    let health = h.get("/health");
    assert!(health.contains("\"udp_points_dropped\":1"), "{health}");
}

#[test]
fn ping_and_health_answer_like_influxdb_and_bad_precision_is_a_clear_400() {
    let h = Hissrv::start(&format!("http://127.0.0.1:{}", free_port()), "");
    let r = agent().get(format!("{}/ping", h.url())).call().unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers().get("X-Influxdb-Version").is_some());
    let mut r = agent().get(format!("{}/health", h.url())).call().unwrap();
    assert_eq!(r.status(), 200);
    let body = r.body_mut().read_to_string().unwrap();
    assert!(body.contains("\"status\":\"pass\""), "{body}");
    let (s, b) = h.post("/write?db=x&precision=weeks", "m v=1");
    assert_eq!(s, 400);
    assert!(b.contains("invalid precision"), "{b}");
    assert_eq!(h.post("/nowhere", "").0, 404);
}
