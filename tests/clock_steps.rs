//! The wall clock is not the monotonic clock: a gateway's clock steps (NTP
//! after a boot without an RTC, an operator's typo), and retention expiry
//! is for good. The real forwarder and buffer in virtual time, with the
//! wall clock stepped alone: expiry happens on a trusted clock and never on
//! a step forward the monotonic clock contradicts.

mod common;
use common::sim::*;
use hissrv::clock::Clock;
use hissrv::config::Config;
use hissrv::config::Influxdb;
use hissrv::deliver::Step;
use hissrv::deliver::provision::ProvisionError;
use hissrv::deliver::upstream::{Outcome, Sink};
use hissrv::route::dest::Destination;
use hissrv::wal::NewBatch;

const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// Three points `age_ns` old in a 7-day bucket; the wall clock then steps by
/// `step_ns`; the forwarder runs until the buffer is empty. Returns (lines
/// delivered, lines expired as dead letters).
fn run(tag: &str, age_ns: i64, step_ns: i64) -> (usize, usize) {
    simulate(tag, age_ns, step_ns, false, true)
}

/// As `run`, with the forwarder made after the clock stepped.
fn run_made_after_the_step(tag: &str, age_ns: i64, step_ns: i64) -> (usize, usize) {
    simulate(tag, age_ns, step_ns, true, true)
}

/// A server whose answers carry no `Date` (a relay, a bare proxy).
#[derive(Clone)]
struct NoDate(SimSink);

impl Sink for NoDate {
    fn write(&self, d: &Destination, lines: &[u8]) -> Outcome {
        self.0.write(d, lines)
    }
    fn ensure_retention(
        &self,
        db: &Influxdb,
        more: &[hissrv::deliver::provision::Want],
    ) -> Result<Vec<String>, ProvisionError> {
        self.0.ensure_retention(db, more)
    }
}

fn simulate(
    tag: &str,
    age_ns: i64,
    step_ns: i64,
    made_after: bool,
    server_has_date: bool,
) -> (usize, usize) {
    let cfg = Config::from_yaml(
        "influxdb:\n  sharding:\n    buckets:\n      - {name: week, retention: 7d, points: [m]}\n",
    )
    .unwrap();
    let (fw, mut producer, server, clock, dir) = quiet_forwarder(tag, &cfg);
    let (mut fw, dir) = if server_has_date {
        (fw, dir)
    } else {
        drop(fw);
        let _ = std::fs::remove_dir_all(&dir);
        let (fw, p, dir) = forwarder_on(
            &format!("{tag}-nodate"),
            &cfg,
            &clock,
            NoDate(SimSink(server.clone())),
        );
        producer = p;
        (fw, dir)
    };
    if made_after {
        // The step happened before this forwarder's first turn.
        clock.step_wall(step_ns);
    }
    let dest = Destination::of_bucket(&cfg.influxdb.sharding.buckets[0], &cfg.influxdb);
    let ts = clock.wall_ns() - age_ns;
    let payload: String = (0..3).map(|i| format!("m v={i}i {}\n", ts + i)).collect();
    producer
        .commit(&[NewBatch {
            dest,
            points: 3,
            first_ts: ts,
            last_ts: ts + 2,
            payload: payload.into_bytes(),
        }])
        .unwrap();
    if !made_after {
        // The step happens under a running forwarder.
        clock.step_wall(step_ns);
    }
    let db = rusqlite::Connection::open(dir.join("buffer.db")).unwrap();
    let count = |table: &str| -> usize {
        db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as usize
    };
    for _ in 0..1_000 {
        if count("batches") == 0 {
            break;
        }
        match fw.step() {
            Step::Worked => {}
            Step::Idle(t) | Step::Backoff(t) => clock.advance_to(t),
        }
    }
    assert_eq!(count("batches"), 0, "the buffer drained");
    let delivered = server.lock().unwrap().stored.len();
    let expired = count("dead_letters");
    let _ = std::fs::remove_dir_all(&dir);
    (delivered, expired)
}

#[test]
fn points_past_their_retention_expire_on_a_trusted_clock() {
    assert_eq!(run("trusted", 30 * DAY_NS, 0), (0, 3));
}

#[test]
fn a_wall_clock_stepped_ten_years_forward_expires_nothing_and_everything_is_delivered() {
    // Found by review: the whole buffer went to dead letters for good.
    assert_eq!(run("ten-years", 0, 3_650 * DAY_NS), (3, 0));
}

#[test]
fn a_restart_after_a_ten_year_step_expires_nothing_either() {
    // Found by review: a reference of the agent's own (its clock at start)
    // is lost with a restart; the server's Date is not. The forwarder here
    // is made after the step, as after a restart.
    assert_eq!(
        run_made_after_the_step("restart", 0, 3_650 * DAY_NS),
        (3, 0)
    );
}

#[test]
fn without_the_servers_time_nothing_expires_and_the_server_judges() {
    assert_eq!(simulate("nodate", 30 * DAY_NS, 0, false, false), (3, 0));
}

#[test]
fn an_ntp_correction_of_hours_still_expires_what_is_old() {
    assert_eq!(run("ntp", 30 * DAY_NS, 6 * 3_600 * 1_000_000_000), (0, 3));
}
