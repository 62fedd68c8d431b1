//! Backlog ages on record time (the wall clock read at start, carried on by
//! the monotonic clock): the real agent with its wall clock alone shifted by
//! an `LD_PRELOAD` shim, stepped under it through a file. A gateway booted at
//! 1970 with its uplink down, its clock set by NTP, stepped ten years forward
//! and back, killed and rebooted: `/health` and `/metrics` tell how long the
//! oldest unsent point really waited, never decades and never a silent 0.

mod common;
use common::*;
use std::path::Path;
use std::time::Instant;

/// Sets the agent's wall clock to `target_s` after the epoch, or the true
/// time for `None`.
fn set_wall(file: &Path, target_s: Option<i64>) {
    let offset = target_s.map_or(0, common::clock_shim::offset_to);
    std::fs::write(file, offset.to_string()).expect("offset file");
}

/// The oldest unsent point's age as `/health` and `/metrics` tell it lies
/// between what the test saw: at least since the write was acknowledged
/// (`acked`), at most since it was sent (`sent`).
fn assert_age_between(h: &Hissrv, acked: Instant, sent: Instant, when: &str) {
    let lo = acked.elapsed().as_millis() as u64;
    let age = h.health().oldest_unsent_age_ms;
    let metrics = h.get("/metrics");
    let hi = sent.elapsed().as_millis() as u64;
    assert!(
        lo <= age + 1 && age <= hi + 1,
        "{when}: /health says the oldest waited {age} ms; it waited {lo}..={hi} ms"
    );
    let gauge: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hissrv_oldest_unsent_age_seconds "))
        .and_then(|v| v.parse().ok())
        .expect("the age gauge");
    assert!(
        gauge * 1e3 <= hi as f64 + 1.0 && gauge * 1e3 + 1.0 >= lo as f64,
        "{when}: /metrics says {gauge} s; it waited {lo}..={hi} ms"
    );
}

#[test]
fn backlog_ages_follow_the_monotonic_clock_through_steps_a_boot_at_1970_and_restarts() {
    const TEN_YEARS_S: i64 = 3650 * 86_400;
    let dir = TempDir::new("clock-ages");
    let shim = common::clock_shim::build(dir.path());
    let wall = dir.path().join("wall-offset");
    set_wall(&wall, Some(30)); // booted at 1970, no RTC
    let influx = Influx::start();
    influx.create_db("plant");
    let proxy = CuttingProxy::start(influx.port);
    proxy.set_cut(true); // and the uplink down
    let env = [
        ("LD_PRELOAD", shim.display().to_string()),
        ("HISSRV_TEST_WALL_OFFSET_FILE", wall.display().to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut h = Hissrv::start_with_env(
        &proxy.url(),
        Sections::influxdb("  database: plant\n"),
        &env,
    );
    let now_ns = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64
    };
    let sent = Instant::now();
    let (s, b) = h.post("/write?db=plant", &format!("m,k=a v=1i {}\n", now_ns()));
    assert_eq!(s, 204, "{b}");
    let acked = Instant::now();
    wait_for("a second of waiting", DELIVERY_TIMEOUT, || {
        h.health().oldest_unsent_age_ms >= 1_000
    });
    assert_age_between(&h, acked, sent, "at 1970");

    set_wall(&wall, None); // NTP sets the clock: 56 years forward
    assert_age_between(&h, acked, sent, "after the clock was set");
    set_wall(&wall, Some(now_ns() / 1_000_000_000 + TEN_YEARS_S));
    assert_age_between(&h, acked, sent, "ten years forward");
    set_wall(&wall, Some(30));
    assert_age_between(&h, acked, sent, "back to 1970");

    // The next commit stores the first one's stamp in the final frame, so a
    // restart (and `inspect`) reads it right too.
    set_wall(&wall, None);
    let (s, b) = h.post("/write?db=plant", &format!("m,k=b v=2i {}\n", now_ns()));
    assert_eq!(s, 204, "{b}");
    h.kill9();
    h.spawn();
    assert_age_between(&h, acked, sent, "restarted with a good clock");

    // Rebooted at 1970 with that backlog: the stamps are ahead of this
    // run's clock; the age is at least this run's uptime and grows.
    h.kill9();
    set_wall(&wall, Some(30));
    let restarted = Instant::now();
    h.spawn();
    wait_for("an age of a second at least", DELIVERY_TIMEOUT, || {
        h.health().oldest_unsent_age_ms >= 1_000
    });
    let age = h.health().oldest_unsent_age_ms;
    assert!(
        age <= sent.elapsed().as_millis() as u64 + 1 && age >= 1_000,
        "{age}"
    );
    assert!(
        restarted.elapsed().as_millis() as u64 + 1 >= age,
        "a lower bound: {age}"
    );

    proxy.set_cut(false);
    wait_for("both points delivered", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == 2
    });
    // The upstream shows the points before the agent has read its answer
    // and deleted the batches (a CI run caught the window): poll.
    wait_for("no unsent age once delivered", DELIVERY_TIMEOUT, || {
        h.health().oldest_unsent_age_ms == 0
    });
}
