//! The hot tier (`lifecycle.rules[].hot_days`) against a real influxd 1.6.7:
//! the retention of the destinations a rule's points go to, set by
//! `manage_retention` (the longest of the rules writing there), points past
//! it expired as dead letters and counted apart while their aggregates reach
//! the warm tier, and destinations of no rule left alone.

mod common;
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

/// `SHOW RETENTION POLICIES ON db` as (name, duration).
fn policies(influx: &Influx, db: &str) -> Vec<(String, String)> {
    influx
        .rows(db, &format!("SHOW RETENTION POLICIES ON \"{db}\""))
        .iter()
        .map(|row| {
            let cols: Vec<String> = row
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .map(|c| c.trim_matches('"').to_string())
                .collect();
            (cols[0].clone(), cols[1].clone())
        })
        .collect()
}

fn duration_of(influx: &Influx, db: &str, rp: &str) -> Option<String> {
    (policies(influx, db).into_iter())
        .find(|(n, _)| n == rp)
        .map(|(_, d)| d)
}

fn metric_of(h: &Hissrv, name: &str) -> f64 {
    h.get("/metrics")
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

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
        || duration_of(&influx, "plant", "autogen").as_deref() == Some("48h0m0s"),
    );
    wait_for(
        "the old points expired, the recent ones delivered",
        DELIVERY_TIMEOUT,
        || {
            metric_of(&agent, "hissrv_hot_points_expired_total") == 10.0
                && influx.count("plant", "telemetry") == 10
        },
    );
    assert_eq!(metric_of(&agent, "hissrv_points_expired_total"), 10.0);
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
        duration_of(&influx, "plant", "autogen_5m").as_deref(),
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
        || duration_of(&influx, "plant", "autogen").as_deref() == Some("72h0m0s"),
    );
    assert_eq!(
        duration_of(&influx, "lab", "autogen").as_deref(),
        Some("0s"),
        "a database of no rule is left alone"
    );
    assert!(
        agent
            .log()
            .contains("altered retention policy plant.autogen")
    );
}
