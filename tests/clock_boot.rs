//! A gateway without a real-time clock boots at 1970 and sets its clock
//! later. The real agent with its wall clock alone set to 1970 (an
//! `LD_PRELOAD` shim): lines without a timestamp are refused with 503 (the
//! producer keeps them and retries) instead of being stored at 1970; lines
//! with a timestamp are taken; `/health` says the clock is not trusted.

mod common;
use common::*;

#[test]
fn lines_without_a_timestamp_are_refused_while_the_clock_is_at_1970_and_timestamped_ones_taken() {
    let dir = TempDir::new("clock-shim");
    let shim = common::clock_shim::build(dir.path());
    let offset = common::clock_shim::offset_to(30).to_string(); // 1970-01-01T00:00:30Z
    let influx = Influx::start();
    influx.create_db("plant");
    let shim_path = shim.display().to_string();
    let h = Hissrv::start_with_env(
        &influx.url(),
        Sections::influxdb("  database: plant\n"),
        &[
            ("LD_PRELOAD", shim_path.as_str()),
            ("HISSRV_TEST_WALL_OFFSET_S", offset.as_str()),
        ],
    );
    let (status, body) = h.post(
        "/write?db=plant",
        "m,k=a v=1i\nm,k=b v=2i 1764000000000000000\n",
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("clock is not set"), "{body}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    assert_eq!(
        h.post("/write?db=plant", &format!("m,k=c v=3i {now}\n")).0,
        204,
        "a line with its own timestamp needs no clock"
    );
    let health = h.health();
    assert!(
        health.clock_untrusted,
        "/health says the clock is not trusted"
    );
    wait_for("the timestamped point delivered", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == 1
    });
    let metrics = h.get("/metrics");
    assert!(
        metrics.contains("hissrv_write_requests_refused_total{reason=\"clock_unset\"} 1"),
        "{metrics}"
    );
    let stored = influx.rows("plant", "SELECT * FROM m");
    assert!(
        stored.iter().all(|r| !r.starts_with("[30")),
        "nothing stored at 1970: {stored:?}"
    );
}
