//! The upstream status policy end to end, the real agent against a scripted
//! server for the answers a real influxd never gives on demand (429 and 503
//! with Retry-After, 422, a 500 that never ends), and against a real influxd
//! with authentication for 403. The simulation (tests/forward_sim.rs) proves
//! the policy's logic over random fault sequences; these prove the wiring.

mod common;
use common::scripted::{Answer, Scripted};
use common::*;
use std::time::Duration;

fn agent_for(up: &Scripted, retry: &str) -> Hissrv {
    Hissrv::start_with(
        &up.url(),
        Sections {
            influxdb: "  database: plant\n  gzip: false\n",
            retry,
            ..Sections::default()
        },
    )
}

fn dead_letters(h: &Hissrv) -> Vec<(String, i64, String)> {
    let c = rusqlite::Connection::open(h.buffer_path()).unwrap();
    let mut stmt = c
        .prepare("SELECT CAST(line AS TEXT), status, reason FROM dead_letters ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_429_retry_after_is_waited_out_and_capped_by_max_retry_after_s() {
    // The server asks for 1 s, then for 3,600 s (capped to 2 s).
    let up = Scripted::with_script(vec![
        Answer::status(429).header("Retry-After", "1"),
        Answer::status(429).header("Retry-After", "3600"),
    ]);
    let h = agent_for(&up, "  max_retry_after_s: 2\n");
    assert_eq!(h.post("/write?db=plant", "m v=1 1").0, 204);
    wait_for("delivery after two 429s", DELIVERY_TIMEOUT, || {
        up.seen().len() == 3 && h.buffered_points() == 0
    });
    let seen = up.seen();
    assert_eq!(
        seen.iter().map(|s| s.status).collect::<Vec<_>>(),
        vec![429, 429, 204]
    );
    // Lower bounds only: a slow machine only waits longer.
    assert!(
        seen[1].at - seen[0].at >= Duration::from_secs(1),
        "Retry-After: 1 honoured"
    );
    assert!(
        seen[2].at - seen[1].at >= Duration::from_secs(2),
        "capped wait honoured"
    );
    // The cap is what let it through: 3,600 s could not have passed.
    let failures = h.get("/metrics");
    assert!(
        failures.contains("hissrv_upstream_write_failures_total{class=\"4xx\"} 2"),
        "{failures}"
    );
}

#[test]
fn a_503_without_retry_after_backs_off_and_delivers() {
    let up = Scripted::with_script(vec![Answer::status(503), Answer::status(503)]);
    let h = agent_for(&up, "");
    assert_eq!(h.post("/write?db=plant", "m v=1i 1\nm v=2i 2").0, 204);
    wait_for("delivery after two 503s", DELIVERY_TIMEOUT, || {
        h.buffered_points() == 0
    });
    let seen = up.seen();
    assert_eq!(
        seen.iter().map(|s| s.status).collect::<Vec<_>>(),
        vec![503, 503, 204]
    );
    assert_eq!(
        seen[2].body, "m v=1i 1\nm v=2i 2\n",
        "the whole batch, in order"
    );
    for w in seen.windows(2) {
        assert!(w[1].at - w[0].at >= Duration::from_millis(50), "backed off");
    }
    assert!(dead_letters(&h).is_empty());
}

#[test]
fn a_422_isolates_the_refused_line_as_a_dead_letter_and_delivers_the_rest() {
    let up = Scripted::start(
        Vec::new(),
        Box::new(|_, body| {
            if body.contains("v=13i") {
                Answer::status(422).body("{\"error\":\"unprocessable: v=13\"}")
            } else {
                Answer::status(204)
            }
        }),
    );
    let h = agent_for(&up, "");
    let body: String = (10..16).map(|t| format!("m v={t}i {t}\n")).collect();
    assert_eq!(h.post("/write?db=plant", &body).0, 204);
    wait_for("the batch settled", DELIVERY_TIMEOUT, || {
        h.buffered_points() == 0
    });
    let dead = dead_letters(&h);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].0.as_str(), dead[0].1), ("m v=13i 13", 422));
    assert!(dead[0].2.contains("unprocessable"), "{dead:?}");
    let delivered: Vec<String> = up
        .seen()
        .iter()
        .filter(|s| s.status == 204)
        .flat_map(|s| s.body.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    for t in [10, 11, 12, 14, 15] {
        assert!(
            delivered.contains(&format!("m v={t}i {t}")),
            "v={t}: {delivered:?}"
        );
    }
}

#[test]
fn a_server_failing_every_request_keeps_the_batch_whole_with_no_dead_letter() {
    let up = Scripted::start(
        Vec::new(),
        Box::new(|_, _| Answer::status(500).body("{\"error\":\"internal\"}")),
    );
    let h = agent_for(&up, "");
    assert_eq!(
        h.post("/write?db=plant", "m v=1 1\nm v=2 2\nm v=3 3").0,
        204
    );
    // Past the probe threshold (5 in a row), probing splits down to lines,
    // finds nothing written, and defers: several rounds of it.
    wait_for("probing rounds", DELIVERY_TIMEOUT, || {
        up.seen()
            .iter()
            .filter(|s| s.body.lines().count() == 1)
            .count()
            >= 9
    });
    assert!(
        dead_letters(&h).is_empty(),
        "nothing condemned: the server is at fault"
    );
    assert_eq!(h.buffered_points(), 3, "the batch waits whole");
}

#[test]
fn a_user_without_write_rights_gets_403_and_the_data_waits_for_the_grant() {
    let influx = influx_with_auth();
    let answer = query_as(
        &influx,
        "admin",
        "adminpw",
        "CREATE USER reader WITH PASSWORD 'readerpw'; GRANT READ ON hissrv TO reader",
    );
    assert!(!answer.contains("error"), "{answer}");
    let h = Hissrv::start(
        &influx.url(),
        "  database: hissrv\n  username: reader\n  password: readerpw\n",
    );
    assert_eq!(h.post("/write?db=hissrv", "m v=1 1\nm v=2 2").0, 204);
    let last_error = || -> String {
        let c = rusqlite::Connection::open(h.buffer_path()).unwrap();
        c.query_row("SELECT coalesce(last_error, '') FROM batches", [], |r| {
            r.get(0)
        })
        .unwrap_or_default()
    };
    wait_for("a 403 recorded on the batch", DELIVERY_TIMEOUT, || {
        last_error().starts_with("403: ")
    });
    assert_eq!(h.buffered_points(), 2);
    let answer = query_as(
        &influx,
        "admin",
        "adminpw",
        "GRANT WRITE ON hissrv TO reader",
    );
    assert!(!answer.contains("error"), "{answer}");
    wait_for("delivery after the grant", DELIVERY_TIMEOUT, || {
        h.buffered_points() == 0
    });
    let rows = query_as(
        &influx,
        "admin",
        "adminpw",
        "SELECT count(v) FROM hissrv..m",
    );
    assert!(rows.contains("[0,2]") || rows.contains(",2]"), "{rows}");
}

#[test]
fn a_reload_puts_new_back_off_settings_in_force_and_no_delay_exceeds_max_backoff_ms() {
    let up = Scripted::start(Vec::new(), Box::new(|_, _| Answer::status(503)));
    // Ten minutes between attempts, to begin with.
    let slow = "  initial_backoff_ms: 600000\n  max_backoff_ms: 600000\n";
    let mut h = Hissrv::start_with(
        &up.url(),
        Sections {
            influxdb: "  database: plant\n  gzip: false\n",
            retry: slow,
            ..Sections::default()
        },
    );
    assert_eq!(h.post("/write?db=plant", "m v=1i 1").0, 204);
    wait_for("the first attempt", DELIVERY_TIMEOUT, || {
        !up.seen().is_empty()
    });
    h.rewrite_config(
        &up.url(),
        Sections {
            influxdb: "  database: plant\n  gzip: false\n",
            retry: "  initial_backoff_ms: 20\n  max_backoff_ms: 100\n",
            ..Sections::default()
        },
    );
    wait_for("the reload", DELIVERY_TIMEOUT, || {
        h.health().config_reloads == 1
    });
    // The agent's own schedule, as logged after the reload. Under the old
    // settings the next attempts would be minutes apart.
    let delays_after_reload = |log: &str| -> Vec<u64> {
        let Some(at) = log.find("config reloaded from") else {
            return Vec::new();
        };
        log[at..]
            .lines()
            .filter_map(|l| l.split("; retry in ").nth(1))
            .filter_map(|r| r.strip_suffix(" ms")?.parse().ok())
            .collect()
    };
    wait_for("ten attempts on the new settings", DELIVERY_TIMEOUT, || {
        delays_after_reload(&h.log()).len() >= 10
    });
    let delays = delays_after_reload(&h.log());
    assert!(delays.len() >= 10, "{delays:?}");
    assert!(delays.iter().all(|&d| d <= 100), "{delays:?}");
    assert_eq!(h.buffered_points(), 1, "the point waits");
    assert!(dead_letters(&h).is_empty());
}

#[test]
fn manage_retention_on_2x_creates_the_bucket_through_the_buckets_api_then_delivers() {
    use std::sync::{Arc, Mutex};
    // A 2.x server in miniature: one org, buckets created by POST.
    let buckets: Arc<Mutex<Vec<String>>> = Arc::default();
    let made = buckets.clone();
    let up = Scripted::start(
        Vec::new(),
        Box::new(move |target, body| {
            let path = target.split('?').next().unwrap_or("");
            match path {
                "/api/v2/orgs" => {
                    Answer::status(200).body("{\"orgs\":[{\"id\":\"0123\",\"name\":\"plant\"}]}")
                }
                "/api/v2/buckets" if body.is_empty() => {
                    let names = made.lock().unwrap();
                    let name = target
                        .split("name=")
                        .nth(1)
                        .unwrap_or("")
                        .split('&')
                        .next()
                        .unwrap_or("");
                    if names.iter().any(|n| n == name) {
                        Answer::status(200).body(&format!(
                            "{{\"buckets\":[{{\"id\":\"b1\",\"name\":\"{name}\",\"retentionRules\":[{{\"type\":\"expire\",\"everySeconds\":604800}}]}}]}}"
                        ))
                    } else {
                        Answer::status(200).body("{\"buckets\":[]}")
                    }
                }
                "/api/v2/buckets" => {
                    let name = body
                        .split("\"name\":\"")
                        .nth(1)
                        .unwrap_or("")
                        .split('"')
                        .next()
                        .unwrap_or("");
                    made.lock().unwrap().push(name.to_string());
                    Answer::status(201).body("{}")
                }
                "/api/v2/write" => Answer::status(204),
                _ => Answer::status(404),
            }
        }),
    );
    let h = Hissrv::start_with(
        &up.url(),
        Sections {
            influxdb: "  api: v2\n  org: plant\n  token: t0k\n  gzip: false\n  manage_retention: true\n  sharding:\n    buckets:\n      - {name: week, retention: 7d, points: [m]}\n",
            ..Sections::default()
        },
    );
    let now = hissrv::clock::now_ns();
    assert_eq!(
        h.post("/api/v2/write?bucket=x", &format!("m v=1i {now}")).0,
        204
    );
    wait_for("the write delivered", DELIVERY_TIMEOUT, || {
        up.seen()
            .iter()
            .any(|s| s.target.starts_with("/api/v2/write"))
    });
    let seen = up.seen();
    let created = seen
        .iter()
        .position(|s| s.target.starts_with("/api/v2/buckets") && !s.body.is_empty())
        .expect("a bucket created");
    assert!(
        seen[created].body.contains("\"everySeconds\":604800"),
        "{:?}",
        seen[created]
    );
    assert!(
        seen[created].body.contains("\"orgID\":\"0123\""),
        "{:?}",
        seen[created]
    );
    let write = seen
        .iter()
        .position(|s| s.target.starts_with("/api/v2/write"))
        .unwrap();
    assert!(created < write, "the bucket exists before the first write");
    assert!(
        seen[write].target.contains("bucket=week"),
        "{}",
        seen[write].target
    );
    assert_eq!(seen[write].authorization.as_deref(), Some("Token t0k"));
    assert_eq!(*buckets.lock().unwrap(), vec!["week".to_string()]);
}

#[test]
fn a_redirect_is_retried_never_taken_for_written() {
    // A captive portal: the write is sent elsewhere, whose page answers 200
    // to a GET. Followed, the batch would be deleted and delivered nowhere.
    let up = Scripted::with_script(vec![
        Answer::status(302).header("Location", "/portal"),
        Answer::status(302).header("Location", "/portal"),
    ]);
    let h = agent_for(&up, "");
    assert_eq!(h.post("/write?db=plant", "m v=1i 1").0, 204);
    wait_for("delivery once the redirects stop", DELIVERY_TIMEOUT, || {
        h.buffered_points() == 0
    });
    let seen = up.seen();
    assert_eq!(
        seen.iter().map(|s| s.status).collect::<Vec<_>>(),
        vec![302, 302, 204],
        "retried, not followed"
    );
    assert!(
        seen.iter().all(|s| s.body == "m v=1i 1\n"),
        "every try the batch itself"
    );
}
