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

/// Reads one HTTP answer's status line from a raw socket (5 s at most).
fn status_of(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_write_without_credentials_is_refused_before_its_body_is_read() {
    let h = Hissrv::start_with(
        &format!("http://127.0.0.1:{}", free_port()),
        Sections {
            service: "  auth:\n    tokens: [\"t0ken\"]\n  max_inflight_body_mb: 8\n",
            ..Sections::default()
        },
    );
    // Announces the whole body budget and sends none of it: answered at
    // once, and holding nothing.
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", h.port)).unwrap();
        s.write_all(b"POST /write?db=x HTTP/1.1\r\nContent-Length: 8388608\r\n\r\n")
            .unwrap();
        assert_eq!(status_of(&mut s), "HTTP/1.1 401 Unauthorized");
        idle.push(s);
    }
    // A producer with the token is not held up by them.
    let r = agent()
        .post(format!("{}/write?db=x", h.url()))
        .header("Authorization", "Token t0ken")
        .send("m v=1 1")
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[test]
fn peers_that_announce_bodies_and_stall_hold_no_budget_from_writers() {
    let h = Hissrv::start_with(
        &format!("http://127.0.0.1:{}", free_port()),
        Sections {
            service: "  max_body_mb: 8\n  max_inflight_body_mb: 8\n",
            ..Sections::default()
        },
    );
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", h.port)).unwrap();
        s.write_all(b"POST /write?db=x HTTP/1.1\r\nContent-Length: 8388608\r\n\r\nm v=1")
            .unwrap();
        stalled.push(s);
    }
    // Before: each announced length reserved the whole budget, and this
    // write waited 60 s. The agent's ureq client times out after 5 s.
    let r = agent()
        .post(format!("{}/write?db=x", h.url()))
        .send("m v=2 2")
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(h.health().points_committed, 1);
}

#[test]
fn a_write_naming_one_destination_too_many_gets_400_and_known_ones_flow() {
    let h = Hissrv::start_with(
        &format!("http://127.0.0.1:{}", free_port()),
        Sections {
            service: "  max_destinations: 2\n",
            ..Sections::default()
        },
    );
    assert_eq!(h.post("/write?db=a", "m v=1 1").0, 204);
    assert_eq!(h.post("/write?db=b", "m v=1 1").0, 204);
    let (status, body) = h.post("/write?db=c", "m v=1 1");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("service.max_destinations is 2"), "{body}");
    assert_eq!(
        h.post("/write?db=a&rp=other", "m v=1 1").0,
        400,
        "db+rp is a destination"
    );
    assert_eq!(
        h.post("/write?db=b", "m v=2 2").0,
        204,
        "known ones still write"
    );
    let metrics = h.get("/metrics");
    assert!(
        metrics.contains("hissrv_write_requests_refused_total{reason=\"too_many_destinations\"} 2"),
        "{metrics}"
    );
}

#[test]
fn health_counts_a_point_as_buffered_the_moment_it_is_acknowledged() {
    let h = Hissrv::start(&format!("http://127.0.0.1:{}", free_port()), "");
    for i in 1..=3u64 {
        assert_eq!(h.post("/write?db=x", &format!("m v={i} {i}")).0, 204);
        // No wait: the 204 came after the commit, and so did the gauges.
        let health = h.health();
        assert_eq!(
            (health.backlog_points, health.backlog_batches),
            (i, i),
            "after write {i}"
        );
        assert!(health.oldest_unsent_age_ms < 60_000);
        assert!(health.backlog_bytes > 0);
    }
    assert_eq!(h.buffered_points(), 3, "the buffer agrees");
}

#[test]
fn udp_datagrams_are_refused_once_a_reload_turns_auth_on() {
    let upstream = format!("http://127.0.0.1:{}", free_port());
    let mut h = Hissrv::start(&upstream, "");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(b"u v=1 1\n", ("127.0.0.1", h.port)).unwrap();
    wait_for("the open datagram stored", DELIVERY_TIMEOUT, || {
        h.health().points_committed == 1
    });
    // Auth on; the file also turns UDP off, which needs a restart: until
    // then the listener is open, and must not store what it cannot check.
    h.rewrite_config(
        &upstream,
        Sections {
            service: "  auth:\n    tokens: [\"t0ken\"]\n",
            ..Sections::default()
        },
    );
    wait_for("the reload", DELIVERY_TIMEOUT, || {
        h.health().config_reloads == 1
    });
    assert!(
        h.health()
            .restart_needed
            .contains(&"service.udp_listen".to_string()),
        "{:?}",
        h.health().restart_needed
    );
    sock.send_to(b"u v=2 2\n", ("127.0.0.1", h.port)).unwrap();
    wait_for("the datagram refused and counted", DELIVERY_TIMEOUT, || {
        h.get("/metrics")
            .contains("hissrv_udp_datagrams_refused_total 1")
    });
    assert_eq!(h.health().points_committed, 1);
}

#[test]
fn a_reload_puts_auth_in_force_for_the_next_request() {
    let upstream = format!("http://127.0.0.1:{}", free_port());
    let mut h = Hissrv::start(&upstream, "");
    assert_eq!(h.post("/write?db=x", "m v=1 1").0, 204, "open before");
    h.rewrite_config(
        &upstream,
        Sections {
            service: "  auth:\n    tokens: [\"t0ken\"]\n",
            ..Sections::default()
        },
    );
    wait_for("the reload", DELIVERY_TIMEOUT, || {
        h.health().config_reloads == 1
    });
    assert_eq!(h.post("/write?db=x", "m v=2 2").0, 401, "closed after");
    assert_eq!(h.post("/write?db=x&p=t0ken", "m v=3 3").0, 204);
    assert_eq!(h.health().points_committed, 2);
}

#[test]
fn peers_that_never_read_their_answers_are_cut_off_and_free_their_slots() {
    let h = Hissrv::start_with(
        &format!("http://127.0.0.1:{}", free_port()),
        Sections {
            service: "  max_connections: 2\n",
            ..Sections::default()
        },
    );
    // Both slots taken by peers that pipeline requests and never read the
    // answers: the server's writes block once the socket buffers are full.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hogs: Vec<_> = (0..2)
        .map(|_| {
            let (port, stop) = (h.port, stop.clone());
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_write_timeout(Some(std::time::Duration::from_secs(1)))
                    .unwrap();
                let req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(64);
                while !stop.load(std::sync::atomic::Ordering::SeqCst) && s.write_all(&req).is_ok() {
                }
                // Keep the connection open, unread, until the test ends.
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            })
        })
        .collect();
    // Before: the slots were held for good. Now each blocked answer is
    // given up after 10 s and its connection closed.
    wait_for("a writer served despite the hogs", DELIVERY_TIMEOUT, || {
        agent()
            .post(format!("{}/write?db=x", h.url()))
            .send("m v=1 1")
            .is_ok_and(|r| r.status() == 204)
    });
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in hogs {
        t.join().unwrap();
    }
}

#[test]
fn a_body_sent_to_an_endpoint_that_takes_none_is_refused_unread() {
    let h = Hissrv::start_with(
        &format!("http://127.0.0.1:{}", free_port()),
        Sections {
            service: "  auth:\n    tokens: [\"t0ken\"]\n",
            ..Sections::default()
        },
    );
    // No credentials, a body announced to /health: refused from the head.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", h.port)).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nContent-Length: 1000000\r\n\r\nxx")
        .unwrap();
    assert_eq!(status_of(&mut s), "HTTP/1.1 400 Bad Request");
    // Without a body it still answers.
    assert!(h.get("/health").contains("\"status\":\"pass\""));
}
