//! The hot tier (`lifecycle.rules[].hot_days`) against a real influxd 1.6.7:
//! the retention of the destinations a rule's points go to, set by
//! `manage_retention` (the longest of the rules writing there), points past
//! it expired as dead letters and counted apart while their aggregates reach
//! the warm tier, and destinations of no rule left alone.

mod common;
use common::scripted::{Answer, Scripted};
use common::*;
use std::time::Duration;

const NS: i64 = 1_000_000_000;
const DAY_NS: i64 = 86_400 * NS;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_nanos() as i64
}

const LIFECYCLE: &str = "lifecycle:
  checkpoint_interval: 1s
  rules:
    - measurement: telemetry
      hot_days: 2
      warm_days: 30
      downsample: 5m
    - measurement: \"power*\"
      hot_days: \"72h\"
";

#[test]
fn hot_days_sets_the_retention_of_the_rules_destinations_and_expires_older_points_to_dead_letters()
{
    let influx = Influx::start();
    influx.create_db("plant");
    influx.create_db("lab");
    let agent = Hissrv::start_with(
        &influx.url(),
        Sections {
            influxdb: "  database: plant\n  manage_retention: true\n",
            other: LIFECYCLE,
            ..Sections::default()
        },
    );
    // A database of no rule's points: its policy stays as it was.
    assert_eq!(agent.post("/write?db=lab", "other v=1\n").0, 204);
    // Ten points older than hot_days (four days), in one 5m window, then
    // ten of now: the old ones are past the hot tier, not the warm one.
    let now = now_ns();
    let old_window = (now - 4 * DAY_NS) / (300 * NS) * (300 * NS);
    let old: String = (0..10)
        .map(|i| format!("telemetry,id=m1 v={i} {}\n", old_window + i * NS))
        .collect();
    assert_eq!(agent.post("/write?db=plant", &old).0, 204);
    let recent: String = (0..10)
        .map(|i| format!("telemetry,id=m1 v={i} {}\n", now + i * NS))
        .collect();
    assert_eq!(agent.post("/write?db=plant", &recent).0, 204);
    wait_for(
        "plant's default policy at hot_days",
        Duration::from_secs(30),
        || influx.policy_duration("plant", "autogen").as_deref() == Some("48h0m0s"),
    );
    wait_for(
        "the old points expired, the recent ones delivered",
        DELIVERY_TIMEOUT,
        || {
            agent.metric("hissrv_hot_points_expired_total") == 10.0
                && influx.count("plant", "telemetry") == 10
        },
    );
    assert_eq!(agent.metric("hissrv_points_expired_total"), 10.0);
    let rows = influx.rows(
        "plant",
        "SELECT * FROM \"plant\".\"autogen\".\"telemetry\" WHERE time < now() - 1d",
    );
    assert!(rows.is_empty(), "no old point upstream: {rows:?}");
    // Their aggregates are in the warm tier, kept warm_days.
    let warm_rows = || {
        influx
            .rows(
                "plant",
                &format!(
                    "SELECT v_count, v_mean FROM \"plant\".\"autogen_5m\".\"telemetry\" WHERE time = {old_window}"
                ),
            )
    };
    wait_for("the old window's aggregates", DELIVERY_TIMEOUT, || {
        warm_rows().iter().any(|r| r.ends_with(",10,4.5]"))
    });
    assert_eq!(warm_rows().len(), 1, "{:?}", warm_rows());
    assert_eq!(
        influx.policy_duration("plant", "autogen_5m").as_deref(),
        Some("720h0m0s")
    );
    // The old points are dead letters, exportable.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hissrv"))
        .args(["export", "--dead-letters", "--buffer"])
        .arg(agent.buffer_path())
        .output()
        .expect("hissrv export");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("telemetry,id=m1"))
            .count(),
        10,
        "{text}"
    );
    // A rule with a longer hot_days writing there: the longest wins.
    assert_eq!(agent.post("/write?db=plant", "powermeter p=1\n").0, 204);
    wait_for(
        "plant's default policy at the longer hot_days",
        Duration::from_secs(30),
        || influx.policy_duration("plant", "autogen").as_deref() == Some("72h0m0s"),
    );
    assert_eq!(
        influx.policy_duration("lab", "autogen").as_deref(),
        Some("0s"),
        "a database of no rule is left alone"
    );
    assert!(
        agent
            .log()
            .contains("altered retention policy plant.autogen")
    );
}

/// A bucket whose policy is the database's default one (`retention_policy:
/// autogen`) keeps its own retention (README: "a bucket of
/// influxdb.sharding keeps its own retention"). The rule's points go to
/// (plant, "") — the same upstream policy under another Destination — so
/// the wants are merged by the policy they name, the bucket's first (found
/// in review: altered to hot_days on every provisioning pass).
#[test]
fn a_bucket_on_the_default_policy_keeps_its_own_retention_over_hot_days() {
    let influx = Influx::start();
    influx.create_db("plant");
    let agent = Hissrv::start_with(
        &influx.url(),
        Sections {
            influxdb: "  database: plant\n  manage_retention: true\n  sharding:\n    strategy: tag-based\n    buckets:\n      - {name: events, retention_policy: autogen, retention: 30d, points: [alarms]}\n",
            other: "lifecycle:\n  rules:\n    - measurement: telemetry\n      hot_days: 2\n",
            ..Sections::default()
        },
    );
    wait_for("the bucket's policy", Duration::from_secs(30), || {
        influx.policy_duration("plant", "autogen").as_deref() == Some("720h0m0s")
    });
    let t = now_ns();
    assert_eq!(
        agent
            .post("/write?db=plant", &format!("alarms a=1 {t}\n"))
            .0,
        204
    );
    assert_eq!(
        agent
            .post("/write?db=plant", &format!("telemetry v=1 {t}\n"))
            .0,
        204
    );
    wait_for("both delivered", DELIVERY_TIMEOUT, || {
        influx.count("plant", "telemetry") == 1 && influx.count("plant", "alarms") == 1
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        influx.policy_duration("plant", "autogen").as_deref(),
        Some("720h0m0s"),
        "the bucket's 30d retention was overridden by hot_days; log:\n{}",
        agent
            .log()
            .lines()
            .filter(|l| l.contains("retention policy"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Points written without rp and with rp=autogen land in one upstream policy
/// but are two destinations noted: merged, the longest hot_days wins (found
/// in review: the policy was altered twice a pass, in hash order, so the
/// shorter won about half the time and rule B's points went after 2 days).
#[test]
fn rp_autogen_and_no_rp_are_one_policy_and_the_longest_hot_days_wins() {
    let influx = Influx::start();
    let dbs: Vec<String> = (0..6).map(|i| format!("p{i}")).collect();
    for db in &dbs {
        influx.create_db(db);
    }
    let agent = Hissrv::start_with(
        &influx.url(),
        Sections {
            influxdb: "  database: p0\n  manage_retention: true\n",
            other: "lifecycle:\n  rules:\n    - measurement: telemetry\n      hot_days: 2\n    - measurement: power\n      hot_days: 30\n",
            ..Sections::default()
        },
    );
    let t = now_ns();
    for db in &dbs {
        assert_eq!(
            agent
                .post(&format!("/write?db={db}"), &format!("telemetry v=1 {t}\n"))
                .0,
            204
        );
        assert_eq!(
            agent
                .post(
                    &format!("/write?db={db}&rp=autogen"),
                    &format!("power v=1 {t}\n")
                )
                .0,
            204
        );
    }
    wait_for("all delivered", DELIVERY_TIMEOUT, || {
        dbs.iter()
            .all(|db| influx.count(db, "telemetry") == 1 && influx.count(db, "power") == 1)
    });
    std::thread::sleep(Duration::from_secs(2));
    let got: Vec<(String, Option<String>)> = dbs
        .iter()
        .map(|db| (db.clone(), influx.policy_duration(db, "autogen")))
        .collect();
    assert!(
        got.iter().all(|(_, d)| d.as_deref() == Some("720h0m0s")),
        "the longest hot_days (30d) must win in every db: {got:?}"
    );
}

/// Backlog buffered before a restart, the outage still on: its destination
/// is noted as its batches are read (found in review: noted at commit, it
/// was not until a new point came), and the first delivery after the
/// outage waits for the server's time, so the old points are expired, not
/// sent (README: "Points older than hot_days when they are delivered").
#[test]
fn backlog_buffered_before_a_restart_mid_outage_is_expired_by_hot_days() {
    let mut influx = Influx::start();
    influx.create_db("plant");
    let url = influx.url();
    influx.stop();
    let sections = || Sections {
        influxdb: "  database: plant\n  manage_retention: true\n",
        other: "lifecycle:\n  rules:\n    - measurement: telemetry\n      hot_days: 2\n",
        ..Sections::default()
    };
    let mut agent = Hissrv::start_with(&url, sections());
    let now = now_ns();
    let old: String = (0..10)
        .map(|i| format!("telemetry,id=m1 v={i} {}\n", now - 4 * DAY_NS + i * NS))
        .collect();
    assert_eq!(agent.post("/write?db=plant", &old).0, 204);
    assert_eq!(agent.buffered_points(), 10);
    // The outage goes on across a restart (an edge box rebooted).
    agent.restart_with(&url, sections());
    influx.restart();
    wait_for("the backlog drained", DELIVERY_TIMEOUT, || {
        agent.buffered_points() == 0
    });
    assert_eq!(
        agent.metric("hissrv_hot_points_expired_total"),
        10.0,
        "sent instead of expired: {} upstream, autogen {:?}",
        influx.count("plant", "telemetry"),
        influx.policy_duration("plant", "autogen")
    );
}

/// 2.x refuses a retention shorter than the bucket's shard group duration
/// (422 "shard-group duration must also be updated to be smaller than new
/// retention duration", from its storage engine; a scripted 2.x server
/// answers so): the PATCH shrinks it too (found in review).
#[test]
fn a_2x_bucket_is_shortened_to_hot_days_with_its_shard_group_duration() {
    let up = Scripted::start(
        Vec::new(),
        Box::new(move |target, body| {
            let path = target.split('?').next().unwrap_or("");
            match path {
                "/api/v2/orgs" => Answer::status(200).body("{\"orgs\":[{\"id\":\"0123\",\"name\":\"o\"}]}"),
                "/api/v2/buckets" if body.is_empty() => Answer::status(200).body(
                    "{\"buckets\":[{\"id\":\"b1\",\"name\":\"plant\",\"retentionRules\":[{\"type\":\"expire\",\"everySeconds\":0,\"shardGroupDurationSeconds\":604800}]}]}",
                ),
                "/api/v2/buckets/b1" => {
                    let sgd_ok = body
                        .split("\"shardGroupDurationSeconds\":")
                        .nth(1)
                        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok())
                        .is_some_and(|s| s <= 172_800);
                    if sgd_ok {
                        Answer::status(200).body("{}")
                    } else {
                        Answer::status(422).body("{\"code\":\"unprocessable entity\",\"message\":\"shard-group duration must also be updated to be smaller than new retention duration\"}")
                    }
                }
                "/api/v2/write" => Answer::status(204),
                _ => Answer::status(404),
            }
        }),
    );
    let h = Hissrv::start_with(
        &up.url(),
        Sections {
            influxdb: "  api: v2\n  org: o\n  token: t\n  gzip: false\n  manage_retention: true\n",
            other: "lifecycle:\n  rules:\n    - measurement: telemetry\n      hot_days: 2\n",
            ..Sections::default()
        },
    );
    assert_eq!(
        h.post(
            "/api/v2/write?bucket=plant",
            &format!("telemetry v=1 {}", now_ns())
        )
        .0,
        204
    );
    wait_for("a PATCH of the bucket", DELIVERY_TIMEOUT, || {
        up.seen()
            .iter()
            .any(|s| s.target.starts_with("/api/v2/buckets/b1"))
    });
    std::thread::sleep(Duration::from_secs(1));
    let patches: Vec<_> = up
        .seen()
        .into_iter()
        .filter(|s| s.target.starts_with("/api/v2/buckets/b1"))
        .collect();
    assert!(
        patches.iter().any(|s| s.status == 200),
        "every PATCH refused: {patches:?}"
    );
}

/// A database whose default policy is not `autogen`, a bucket on it: points
/// without rp go there, kept 30 days upstream, so the forwarder sends
/// points 4 days old rather than expiring them at hot_days (found in
/// review: the default was taken for `autogen`, and they were
/// dead-lettered).
#[test]
fn points_without_rp_keep_the_bucket_retention_of_a_default_policy_not_named_autogen() {
    let influx = Influx::start();
    influx.create_db("plant");
    influx.exec(
        "CREATE RETENTION POLICY \"one_year\" ON \"plant\" DURATION 365d REPLICATION 1 DEFAULT",
    );
    let agent = Hissrv::start_with(
        &influx.url(),
        Sections {
            influxdb: "  database: plant\n  manage_retention: true\n  sharding:\n    strategy: tag-based\n    buckets:\n      - {name: events, retention_policy: one_year, retention: 30d, points: [alarms]}\n",
            other: "lifecycle:\n  rules:\n    - measurement: telemetry\n      hot_days: 2\n",
            ..Sections::default()
        },
    );
    wait_for("the bucket's policy", Duration::from_secs(30), || {
        influx.policy_duration("plant", "one_year").as_deref() == Some("720h0m0s")
    });
    let now = now_ns();
    // A fresh point first (the server's time known), then 4-day-old ones.
    assert_eq!(
        agent
            .post("/write?db=plant", &format!("telemetry v=0 {now}\n"))
            .0,
        204
    );
    wait_for("the fresh point", DELIVERY_TIMEOUT, || {
        influx.count("plant", "telemetry") == 1
    });
    let old: String = (1..=10)
        .map(|i| format!("telemetry,id=m1 v={i} {}\n", now - 4 * DAY_NS + i * NS))
        .collect();
    assert_eq!(agent.post("/write?db=plant", &old).0, 204);
    wait_for("the backlog drained", DELIVERY_TIMEOUT, || {
        agent.buffered_points() == 0
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        influx.policy_duration("plant", "one_year").as_deref(),
        Some("720h0m0s"),
        "the bucket keeps its retention upstream"
    );
    assert_eq!(
        (
            influx.count("plant", "telemetry"),
            agent.metric("hissrv_hot_points_expired_total")
        ),
        (11, 0.0),
        "points upstream keeps 30 days were expired at hot_days"
    );
}

/// One database whose policies cannot be read (the user lacks the rights on
/// `bad`; a timeout does the same) stops no other's provisioning (found in
/// review: `good`'s policy was never set).
#[test]
fn one_database_refusing_provisioning_does_not_stop_the_others() {
    let up = Scripted::start(
        Vec::new(),
        Box::new(move |target, _body| {
            let path = target.split('?').next().unwrap_or("");
            match path {
                "/query" if target.contains("bad") => Answer::status(403)
                    .body("{\"error\":\"user is not authorized to execute statement\"}"),
                "/query" if target.contains("SHOW") => Answer::status(200).body(
                    "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"retention_policies\",\"columns\":[\"name\",\"duration\",\"shardGroupDuration\",\"replicaN\",\"default\"],\"values\":[[\"autogen\",\"0s\",\"168h0m0s\",1,true]]}]}]}",
                ),
                "/query" => Answer::status(200).body("{\"results\":[{\"statement_id\":0}]}"),
                _ => Answer::status(204),
            }
        }),
    );
    let agent = Hissrv::start_with(
        &up.url(),
        Sections {
            influxdb: "  database: good\n  gzip: false\n  manage_retention: true\n",
            other: "lifecycle:\n  rules:\n    - measurement: telemetry\n      hot_days: 2\n",
            ..Sections::default()
        },
    );
    let t = now_ns();
    for db in ["bad", "good"] {
        assert_eq!(
            agent
                .post(&format!("/write?db={db}"), &format!("telemetry v=1 {t}\n"))
                .0,
            204
        );
    }
    wait_for("both delivered", DELIVERY_TIMEOUT, || {
        agent.buffered_points() == 0
    });
    std::thread::sleep(Duration::from_secs(3));
    let alters: Vec<_> = (up.seen().into_iter())
        .filter(|s| s.target.contains("ALTER") && s.target.contains("good"))
        .collect();
    assert!(
        !alters.is_empty(),
        "good's policy never altered; log:\n{}",
        agent.log()
    );
}

/// Aggregates buffered before a restart, read back by a run whose warm
/// tier does not know their lane (the rule's `downsample` removed; a changed
/// rule identity or a suspended tier does the same), match the hot rule by
/// measurement but never make the warm policy hot: every warm destination
/// emitted to is kept in the buffer (found in review: the warm policy was
/// shrunk to hot_days, upstream dropping its history).
#[test]
fn aggregates_buffered_before_a_restart_never_make_the_warm_policy_hot() {
    let mut influx = Influx::start();
    influx.create_db("plant");
    let url = influx.url();
    let with_warm = || Sections {
        influxdb: "  database: plant\n  manage_retention: true\n",
        other: "lifecycle:\n  checkpoint_interval: 1s\n  rules:\n    - measurement: telemetry\n      hot_days: 2\n      warm_days: 30\n      downsample: 5m\n",
        ..Sections::default()
    };
    let mut agent = Hissrv::start_with(&url, with_warm());
    let now = now_ns();
    let window = |days_ago: i64| (now - days_ago * DAY_NS) / (300 * NS) * (300 * NS);
    let post = |agent: &Hissrv, start: i64| {
        let old: String = (0..5)
            .map(|i| format!("telemetry,id=m1 v={i} {}\n", start + i * NS))
            .collect();
        assert_eq!(agent.post("/write?db=plant", &old).0, 204);
        let fresh = format!("telemetry,id=m1 v=1 {}\n", now_ns());
        assert_eq!(agent.post("/write?db=plant", &fresh).0, 204);
    };
    post(&agent, window(1));
    wait_for("the warm policy", DELIVERY_TIMEOUT, || {
        influx.policy_duration("plant", "autogen_5m").as_deref() == Some("720h0m0s")
    });
    // An outage: the next window's aggregates stay buffered.
    influx.stop();
    post(&agent, window(1) + 300 * NS);
    std::thread::sleep(Duration::from_secs(4));
    // The operator stops downsampling (hot_days kept); the outage ends.
    agent.restart_with(
        &url,
        Sections {
            influxdb: "  database: plant\n  manage_retention: true\n",
            other: "lifecycle:\n  rules:\n    - measurement: telemetry\n      hot_days: 2\n",
            ..Sections::default()
        },
    );
    influx.restart();
    wait_for("the backlog drained", DELIVERY_TIMEOUT, || {
        agent.buffered_points() == 0
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        influx.policy_duration("plant", "autogen_5m").as_deref(),
        Some("720h0m0s"),
        "the warm tier's policy was made hot; log:\n{}",
        agent.log()
    );
}

/// `Date` as an HTTP date (IMF-fixdate), for a scripted
/// upstream whose time the agent must trust.
fn http_date(ns: i64) -> String {
    let secs = ns / NS;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A new hot destination is provisioned before its pack is judged even
/// when an earlier pass failed: one database refusing (`bad`, 403) plans
/// the next pass `max_backoff_ms` later, and a good database's destination
/// (no rp) waited for it, its default policy unknown, its backlog older than
/// hot_days sent (found in the third review).
#[test]
fn another_database_refusing_provisioning_does_not_let_a_good_one_s_old_backlog_through() {
    let up = Scripted::start(
        Vec::new(),
        Box::new(move |target, _body| {
            let path = target.split('?').next().unwrap_or("");
            let answer = match path {
                "/query" if target.contains("bad") => Answer::status(403)
                    .body("{\"error\":\"user is not authorized to execute statement\"}"),
                "/query" if target.contains("SHOW") => Answer::status(200).body(
                    "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"retention_policies\",\"columns\":[\"name\",\"duration\",\"shardGroupDuration\",\"replicaN\",\"default\"],\"values\":[[\"autogen\",\"0s\",\"168h0m0s\",1,true]]}]}]}",
                ),
                "/query" => Answer::status(200).body("{\"results\":[{\"statement_id\":0}]}"),
                _ => Answer::status(204),
            };
            answer.header("Date", &http_date(now_ns()))
        }),
    );
    let agent = Hissrv::start_with(
        &up.url(),
        Sections {
            influxdb: "  database: good\n  gzip: false\n  manage_retention: true\n",
            retry: "  initial_backoff_ms: 50\n  max_backoff_ms: 60000\n",
            other: "lifecycle:\n  rules:\n    - measurement: telemetry\n      hot_days: 2\n",
            ..Sections::default()
        },
    );
    let t = now_ns();
    let post =
        |db: &str, body: &str| assert_eq!(agent.post(&format!("/write?db={db}"), body).0, 204);
    post("bad", &format!("telemetry v=1 {t}\n"));
    wait_for("bad's provisioning refused", DELIVERY_TIMEOUT, || {
        up.seen().iter().any(|s| s.status == 403) && agent.buffered_points() == 0
    });
    let old: String = (1..=10)
        .map(|i| format!("telemetry,id=m1 v={i} {}\n", t - 4 * DAY_NS + i * NS))
        .collect();
    post("good", &old);
    wait_for("good's backlog handled", DELIVERY_TIMEOUT, || {
        agent.buffered_points() == 0
    });
    let sent_old = (up.seen().into_iter())
        .filter(|s| s.target.starts_with("/write") && s.target.contains("db=good"))
        .any(|s| s.body.contains("v=1"));
    assert!(
        !sent_old && agent.metric("hissrv_hot_points_expired_total") == 10.0,
        "good's 4-day-old backlog was sent, not expired at hot_days 2 (sent: {sent_old}); log:\n{}",
        agent.log()
    );
}

/// A silent upstream (link black-holed: every request runs into
/// `timeout_ms`) costs one timeout a provisioning pass, not one per
/// database: the pass runs on the forwarder thread, which delivers nothing
/// and checks no stop flag meanwhile (found in the third review: `ensure`
/// went on past every database, 20 of them 200 s at the default timeout).
#[test]
fn a_silent_upstream_costs_one_timeout_a_provisioning_pass_not_one_per_database() {
    use hissrv::deliver::provision::{ProvisionError, Want, ensure};
    // Accepts connections in the kernel's backlog, never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let db = hissrv::config::Influxdb {
        url: format!("http://{}", silent.local_addr().expect("addr")),
        timeout_ms: 300,
        manage_retention: true,
        ..hissrv::config::Influxdb::default()
    };
    let up = hissrv::deliver::upstream::Upstream::new(&db);
    let wants: Vec<Want> = (0..6)
        .map(|i| Want {
            dest: hissrv::route::dest::Destination {
                db: format!("p{i}"),
                rp: String::new(),
            },
            retention_s: Some(2 * 86_400),
        })
        .collect();
    let t = std::time::Instant::now();
    let got = ensure(&up, &db, &wants);
    let took = t.elapsed();
    assert!(
        matches!(got, Err(ProvisionError::Unreachable(_))),
        "{got:?}"
    );
    assert!(
        took < Duration::from_millis(2 * 300),
        "one pass against a silent upstream took {took:?} (timeout 300 ms, 6 databases)"
    );
}
