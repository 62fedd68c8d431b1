//! Buckets against a real influxd: routing by each strategy, retention
//! policies created and altered, drain priority after an outage, and config
//! reload under a stream of writes.

mod common;
use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// The seed's buckets (the design notes' example), with drain priorities.
const SEED_BUCKETS: &str = "  manage_retention: true
  sharding:
    strategy: tag-based
    buckets:
      - name: high_frequency
        retention: 7d
        priority: 1
        points: [voltage, current, frequency]
      - name: low_frequency
        retention: 30d
        points: [temperature, humidity]
      - name: events
        retention: 365d
        priority: 9
        points: [alarms, controls]
";

/// Rows of `measurement` in `db`.`rp`.
fn rows_in(influx: &Influx, rp: &str, measurement: &str) -> Vec<String> {
    influx.rows(
        "hissrv",
        &format!("SELECT * FROM \"hissrv\".\"{rp}\".\"{measurement}\""),
    )
}

#[test]
fn tag_based_rules_route_the_seed_points_to_their_retention_policies() {
    let influx = Influx::start();
    influx.create_db("hissrv");
    let agent = Hissrv::start(&influx.url(), SEED_BUCKETS);
    let t = now_ns();
    let body = format!(
        "voltage,meter=m1 l1=230.1 {t}\n\
         current,meter=m1 l1=5.2 {t}\n\
         frequency,meter=m1 value=50.01 {t}\n\
         temperature,room=r1 value=21.5 {t}\n\
         humidity,room=r1 value=40 {t}\n\
         alarms,site=s1 active=true {t}\n\
         controls,site=s1 setpoint=3 {t}\n\
         meter,id=m2 voltage=229.9,temperature=40.5,serial=\"A7\" {t}\n"
    );
    assert_eq!(agent.post("/write?db=hissrv", &body).0, 204);
    let want = [
        ("high_frequency", "voltage"),
        ("high_frequency", "current"),
        ("high_frequency", "frequency"),
        ("low_frequency", "temperature"),
        ("low_frequency", "humidity"),
        ("events", "alarms"),
        ("events", "controls"),
    ];
    wait_for(
        "all routed points upstream",
        Duration::from_secs(20),
        || {
            want.iter()
                .all(|(rp, m)| rows_in(&influx, rp, m).len() == 1)
                && rows_in(&influx, "autogen", "meter").len() == 1
        },
    );
    for (rp, m) in want {
        for other in ["high_frequency", "low_frequency", "events", "autogen"] {
            if other != rp {
                assert!(
                    rows_in(&influx, other, m).is_empty(),
                    "{m} leaked into {other}"
                );
            }
        }
    }
    // The mixed line was split by field: each part where its field belongs,
    // the unmatched field where the producer sent it.
    let q = |f: &str, rp: &str| {
        influx.rows(
            "hissrv",
            &format!("SELECT \"{f}\" FROM \"hissrv\".\"{rp}\".\"meter\""),
        )
    };
    assert_eq!(q("voltage", "high_frequency").len(), 1);
    assert_eq!(q("temperature", "low_frequency").len(), 1);
    assert_eq!(q("serial", "autogen").len(), 1);
    assert!(q("temperature", "high_frequency").is_empty());
}

#[test]
fn range_rules_route_by_point_id_and_hash_spreads_series_stably() {
    let influx = Influx::start();
    influx.create_db("hissrv");
    let agent = Hissrv::start(
        &influx.url(),
        "  manage_retention: true
  sharding:
    strategy: range
    id_tag: point_id
    buckets:
      - {name: voltages, retention: 7d, ids: ['10001-10099']}
      - {name: temperatures, retention: 30d, ids: ['20001-20099']}
      - {name: alarms, retention: 365d, ids: ['30000-30999']}
",
    );
    let t = now_ns();
    let body = format!(
        "ems,point_id=10001 v=230 {t}\nems,point_id=10099 v=231 {t}\n\
         ems,point_id=20050 v=21 {t}\nems,point_id=30500 v=1 {t}\nems,point_id=99999 v=0 {t}\n"
    );
    assert_eq!(agent.post("/write?db=hissrv", &body).0, 204);
    wait_for("range-routed points", Duration::from_secs(20), || {
        rows_in(&influx, "voltages", "ems").len() == 2
            && rows_in(&influx, "temperatures", "ems").len() == 1
            && rows_in(&influx, "alarms", "ems").len() == 1
            && rows_in(&influx, "autogen", "ems").len() == 1
    });
    drop(agent);

    let agent = Hissrv::start(
        &influx.url(),
        "  manage_retention: true
  sharding:
    strategy: hash
    buckets: [{name: s0}, {name: s1}, {name: s2}, {name: s3}]
",
    );
    let mut body = String::new();
    for dev in 0..40 {
        for k in 0..3 {
            body.push_str(&format!("hashed,dev=d{dev} v={k} {}\n", t + k));
        }
    }
    assert_eq!(agent.post("/write?db=hissrv", &body).0, 204);
    let per_bucket = || -> Vec<usize> {
        (0..4)
            .map(|i| rows_in(&influx, &format!("s{i}"), "hashed").len())
            .collect()
    };
    wait_for("hashed points", Duration::from_secs(20), || {
        per_bucket().iter().sum::<usize>() == 120
    });
    assert!(per_bucket().iter().all(|&n| n > 0), "{:?}", per_bucket());
    for dev in 0..40 {
        let key = format!("hashed,dev=d{dev}");
        let home = hissrv::route::fnv1a64(key.as_bytes()) % 4;
        for i in 0..4u64 {
            let n = influx
                .rows(
                    "hissrv",
                    &format!("SELECT * FROM \"hissrv\".\"s{i}\".\"hashed\" WHERE dev = 'd{dev}'"),
                )
                .len();
            assert_eq!(n, if i == home { 3 } else { 0 }, "{key} in s{i}");
        }
    }
}

#[test]
fn manage_retention_creates_policies_and_alters_them_after_a_reload() {
    let influx = Influx::start();
    let mut agent = Hissrv::start(&influx.url(), SEED_BUCKETS);
    wait_for("retention policies", Duration::from_secs(20), || {
        influx.policies("hissrv").len() == 4
    });
    assert_eq!(
        influx
            .policy_duration("hissrv", "high_frequency")
            .as_deref(),
        Some("168h0m0s")
    );
    assert_eq!(
        influx.policy_duration("hissrv", "low_frequency").as_deref(),
        Some("720h0m0s")
    );
    assert_eq!(
        influx.policy_duration("hissrv", "events").as_deref(),
        Some("8760h0m0s")
    );
    // The database's own default policy is left alone.
    assert_eq!(
        influx.policy_duration("hissrv", "autogen").as_deref(),
        Some("0s")
    );

    let changed = SEED_BUCKETS.replace("retention: 7d", "retention: 14d");
    agent.rewrite_config(&influx.url(), Sections::influxdb(&changed));
    wait_for("altered policy", Duration::from_secs(20), || {
        influx
            .policy_duration("hissrv", "high_frequency")
            .as_deref()
            == Some("336h0m0s")
    });
    assert_eq!(agent.health().config_reloads, 1);
}

#[test]
fn after_an_outage_the_high_priority_bucket_drains_first_and_the_rest_follows() {
    let influx = Influx::start();
    influx.create_db("hissrv");
    let proxy = CuttingProxy::recording(influx.port);
    let settings = format!(
        "  gzip: false\n{SEED_BUCKETS}\
         performance:\n  adaptive_batching:\n    min_batch_size: 1\n    max_batch_size: 50\n"
    );
    let sections = Sections {
        other: "",
        influxdb: &settings,
        ..Sections::default()
    };
    // Upstream unreachable: everything is buffered.
    let mut agent = Hissrv::start_with(&format!("http://127.0.0.1:{}", free_port()), sections);
    let t = now_ns();
    for r in 0..40 {
        let mut body = String::new();
        for i in 0..50 {
            body.push_str(&format!("voltage,meter=m{i} l1={r} {}\n", t + r));
        }
        assert_eq!(agent.post("/write?db=hissrv", &body).0, 204);
    }
    let alarms = format!("alarms,site=s1 active=true {t}\nalarms,site=s2 active=false {t}\n");
    assert_eq!(agent.post("/write?db=hissrv", &alarms).0, 204);
    assert_eq!(agent.buffered_points(), 2002);

    // The uplink comes back (the agent restarts towards it, as after a power cut).
    let settings = settings.clone();
    agent.restart_with(&proxy.url(), Sections::influxdb(&settings));
    wait_for("backlog delivered", Duration::from_secs(30), || {
        rows_in(&influx, "high_frequency", "voltage").len() == 2000
            && rows_in(&influx, "events", "alarms").len() == 2
    });
    let writes: Vec<String> = proxy
        .request_lines()
        .into_iter()
        .filter(|l| l.starts_with("POST /write"))
        .collect();
    assert!(writes.len() >= 40, "{writes:?}");
    assert!(
        writes[0].contains("rp=events"),
        "alarms should go first, requests were: {:?}",
        &writes[..3]
    );
    assert_eq!(agent.buffered_points(), 0);
}

#[test]
fn a_reload_under_streaming_writes_loses_nothing_and_an_invalid_file_is_refused() {
    let influx = Influx::start();
    influx.create_db("hissrv");
    let rules = |bucket: &str| {
        format!(
            "  manage_retention: true\n  sharding:\n    buckets:\n      - {{name: {bucket}, retention: 7d, points: [flow]}}\n"
        )
    };
    let first = rules("first");
    let mut agent = Hissrv::start(&influx.url(), &first);
    let url = agent.url();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let producer = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let http = common::agent();
            let t = now_ns();
            let mut seq = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let body = format!("flow,src=p seq={seq}i {}\n", t + seq as i64);
                let r = http
                    .post(format!("{url}/write?db=hissrv"))
                    .send(&body)
                    .expect("hissrv answers");
                assert_eq!(r.status().as_u16(), 204, "write {seq} refused");
                seq += 1;
                sent.store(seq, Ordering::Relaxed);
            }
        })
    };
    wait_for(
        "some points before the reload",
        Duration::from_secs(10),
        || sent.load(Ordering::Relaxed) > 200,
    );
    let second = rules("second");
    agent.rewrite_config(&influx.url(), Sections::influxdb(&second));
    wait_for("reload applied", Duration::from_secs(10), || {
        agent.health().config_reloads == 1
    });
    let at_reload = sent.load(Ordering::Relaxed);
    wait_for("points after the reload", Duration::from_secs(10), || {
        sent.load(Ordering::Relaxed) > at_reload + 200
    });

    // An operator's typo: refused whole, the agent keeps running on the old file.
    agent.rewrite_raw("influxdb:\n  sharding:\n    strategy: by-magic\n");
    wait_for("invalid file refused", Duration::from_secs(10), || {
        !agent.health().config_error.is_empty()
    });
    let h = agent.health();
    assert!(h.config_error.contains("by-magic"), "{}", h.config_error);
    assert_eq!(h.config_reloads_refused, 1);
    assert!(agent.get("/metrics").contains("hissrv_config_file_valid 0"));
    let after_typo = sent.load(Ordering::Relaxed);
    wait_for("writes go on", Duration::from_secs(10), || {
        sent.load(Ordering::Relaxed) > after_typo + 100
    });
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer");
    let total = sent.load(Ordering::Relaxed);

    wait_for(
        "every acknowledged point upstream",
        Duration::from_secs(30),
        || {
            rows_in(&influx, "first", "flow").len() + rows_in(&influx, "second", "flow").len()
                == total
        },
    );
    // New rules for new points, and no point moved retroactively: every
    // point of the first bucket came before every point of the second.
    let seqs = |rp: &str| -> Vec<i64> {
        influx
            .rows(
                "hissrv",
                &format!("SELECT seq FROM \"hissrv\".\"{rp}\".\"flow\""),
            )
            .iter()
            .map(|r| {
                r.trim_matches(|c| c == '[' || c == ']')
                    .split(',')
                    .nth(1)
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect()
    };
    let (a, b) = (seqs("first"), seqs("second"));
    assert!(a.len() > 200 && b.len() > 300, "{} / {}", a.len(), b.len());
    assert!(a.iter().max() < b.iter().min());

    // A setting that cannot change live is reported, not applied.
    agent.rewrite_config(&influx.url(), Sections::influxdb(&second));
    let path = agent.dir.path().join("hissrv.yaml");
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        &format!("\"127.0.0.1:{}\"", agent.port),
        "\"127.0.0.1:1\"",
        1,
    );
    agent.rewrite_raw(&text);
    wait_for("restart-needed reported", Duration::from_secs(10), || {
        agent.health().restart_needed == vec!["service.http_listen".to_string()]
    });
    assert!(agent.health().config_error.is_empty());
    assert_eq!(
        agent.post("/write?db=hissrv", "flow v=1\n").0,
        204,
        "still on its old port"
    );
}

#[test]
fn a_point_older_than_its_bucket_retention_is_not_sent_but_kept_as_a_dead_letter() {
    let influx = Influx::start();
    influx.create_db("hissrv");
    let agent = Hissrv::start(&influx.url(), SEED_BUCKETS);
    let t = now_ns();
    let ten_days_ago = t - 10 * 86_400 * 1_000_000_000;
    let body = format!("voltage,meter=old l1=1.5 {ten_days_ago}\nvoltage,meter=new l1=2 {t}\n");
    assert_eq!(agent.post("/write?db=hissrv", &body).0, 204);
    wait_for("the young point upstream", Duration::from_secs(20), || {
        rows_in(&influx, "high_frequency", "voltage").len() == 1 && agent.buffered_points() == 0
    });
    assert!(rows_in(&influx, "high_frequency", "voltage")[0].contains("new"));
    assert!(
        agent
            .get("/metrics")
            .contains("hissrv_points_expired_total 1")
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hissrv"))
        .args(["export", "--dead-letters", "--buffer"])
        .arg(agent.buffer_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("voltage,meter=old l1=1.5 {ten_days_ago}")),
        "{text}"
    );
}

#[test]
fn without_admin_rights_manage_retention_is_a_visible_error_and_delivery_goes_on() {
    let influx = influx_with_auth();
    for q in [
        "CREATE USER writer WITH PASSWORD 'writerpw'",
        "GRANT WRITE ON hissrv TO writer",
    ] {
        let answer = query_as(&influx, "admin", "adminpw", q);
        assert!(!answer.contains("error"), "{q}: {answer}");
    }
    let settings = format!("  username: writer\n  password: writerpw\n{SEED_BUCKETS}");
    let agent = Hissrv::start(&influx.url(), &settings);
    let t = now_ns();
    let body = format!("unrouted,site=s1 v=1 {t}\nalarms,site=s1 active=true {t}\n");
    assert_eq!(agent.post("/write?db=hissrv", &body).0, 204);
    wait_for(
        "a clear error about rights",
        Duration::from_secs(20),
        || {
            agent
                .health()
                .last_error
                .contains("not allowed to manage retention")
                || agent.log().contains("not allowed to manage retention")
        },
    );
    assert!(
        agent.log().contains("admin privilege"),
        "the server's reason is logged"
    );
    assert!(agent.get("/metrics").lines().any(|l| {
        l.starts_with("hissrv_retention_management_failures_total ") && !l.ends_with(" 0")
    }));
    // Points for places that exist still go; the alarm waits for its policy.
    wait_for("unrouted point delivered", Duration::from_secs(20), || {
        query_as(
            &influx,
            "admin",
            "adminpw",
            "SELECT * FROM hissrv.autogen.unrouted",
        )
        .contains("values")
    });
    wait_for("only the alarm waits", Duration::from_secs(20), || {
        agent.buffered_points() == 1
    });
    // Once an admin creates it, the alarm is delivered too.
    query_as(
        &influx,
        "admin",
        "adminpw",
        "CREATE RETENTION POLICY events ON hissrv DURATION 365d REPLICATION 1",
    );
    wait_for("alarm delivered", Duration::from_secs(20), || {
        agent.buffered_points() == 0
    });
}

#[test]
fn sighup_reloads_at_once_even_with_the_file_watch_off() {
    let influx = Influx::start();
    influx.create_db("hissrv");
    let sections = |influxdb| Sections {
        service: "  config_poll_ms: 0\n",
        influxdb,
        ..Sections::default()
    };
    let mut agent = Hissrv::start_with(&influx.url(), sections(""));
    agent.rewrite_config(&influx.url(), sections(SEED_BUCKETS));
    // An absence can only be shown over time: three of the default poll
    // periods (2 s) pass without a reload, so the watch is really off and the
    // reload below is SIGHUP's.
    let quiet_until = std::time::Instant::now() + Duration::from_secs(6);
    while std::time::Instant::now() < quiet_until {
        assert_eq!(
            agent.health().config_reloads,
            0,
            "config_poll_ms: 0 still watches"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let kill = std::process::Command::new("kill")
        .args(["-HUP", &agent.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    wait_for("reload on SIGHUP", Duration::from_secs(10), || {
        agent.health().config_reloads == 1
    });
    let t = now_ns();
    assert_eq!(
        agent
            .post("/write?db=hissrv", &format!("alarms active=true {t}\n"))
            .0,
        204
    );
    wait_for("routed by the new rules", Duration::from_secs(20), || {
        rows_in(&influx, "events", "alarms").len() == 1
    });
}

#[test]
fn a_reload_that_fixes_the_upstream_url_and_credentials_delivers_the_buffer() {
    let influx = influx_with_auth();
    let mut agent = Hissrv::start(
        &format!("http://127.0.0.1:{}", free_port()),
        "  username: admin\n  password: wrong\n",
    );
    let t = now_ns();
    assert_eq!(
        agent.post("/write?db=hissrv", &format!("m v=1 {t}\n")).0,
        204
    );
    let creds = |password| format!("  username: admin\n  password: {password}\n");
    let wrong = creds("wrong");
    agent.rewrite_config(&influx.url(), Sections::influxdb(&wrong));
    wait_for(
        "the server refuses the wrong password",
        Duration::from_secs(20),
        || agent.health().last_error.contains("401"),
    );
    let right = creds("adminpw");
    agent.rewrite_config(&influx.url(), Sections::influxdb(&right));
    wait_for("buffer delivered", Duration::from_secs(20), || {
        agent.buffered_points() == 0
    });
    let rows = query_as(
        &influx,
        "admin",
        "adminpw",
        "SELECT * FROM hissrv.autogen.m",
    );
    assert!(rows.contains("values"), "{rows}");
    assert_eq!(agent.health().config_reloads, 2);
}
