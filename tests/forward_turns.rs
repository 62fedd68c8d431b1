//! The forwarder turn by turn, in virtual time against a scripted server:
//! failure paths back off instead of spinning, and the live lane's share
//! during a backlog is exactly what `live_share_percent` says.

mod common;
use common::sim::*;
use hissrv::clock::Clock;
use hissrv::config::Config;
use hissrv::deliver::{MIN_RETRY_DELAY_MS, Step};
use hissrv::wal::NewBatch;
use std::time::Duration;

#[test]
fn a_damaged_row_backs_off_instead_of_spinning() {
    let (mut fw, mut producer, server, clock, dir) = quiet_forwarder("damaged", &Config::default());
    producer.commit(&[one_line_batch(1)]).unwrap();
    let c = rusqlite::Connection::open(dir.join("buffer.db")).unwrap();
    c.execute("UPDATE batches SET points = 'not a number'", [])
        .unwrap();
    assert_eq!(fw.step(), Step::Worked, "the failed read is a turn");
    let now = clock.get();
    match fw.step() {
        Step::Backoff(until) => assert!(
            until >= now + Duration::from_millis(MIN_RETRY_DELAY_MS),
            "backs off at least {MIN_RETRY_DELAY_MS} ms"
        ),
        other => panic!("{other:?}: the next turn must wait"),
    }
    // Repaired, it is delivered once the back-off is over.
    c.execute("UPDATE batches SET points = 1", []).unwrap();
    clock.advance(Duration::from_secs(60));
    assert_eq!(fw.step(), Step::Worked);
    assert_eq!(server.lock().unwrap().stored.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_delete_that_fails_backs_off_instead_of_resending_at_once() {
    let (mut fw, mut producer, server, clock, dir) =
        quiet_forwarder("nodelete", &Config::default());
    producer.commit(&[one_line_batch(1)]).unwrap();
    let c = rusqlite::Connection::open(dir.join("buffer.db")).unwrap();
    c.execute_batch(
        "CREATE TRIGGER no_delete BEFORE DELETE ON batches BEGIN SELECT RAISE(FAIL, 'disk I/O error'); END;",
    )
    .unwrap();
    assert_eq!(fw.step(), Step::Worked);
    assert_eq!(server.lock().unwrap().log.len(), 1, "delivered once");
    assert!(matches!(fw.step(), Step::Backoff(_)), "not re-sent at once");
    assert_eq!(server.lock().unwrap().log.len(), 1);
    c.execute_batch("DROP TRIGGER no_delete").unwrap();
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        fw.step(),
        Step::Worked,
        "re-sent (at least once), then deleted"
    );
    assert!(matches!(fw.step(), Step::Idle(_)), "nothing left");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Serves a 12-batch backlog and 3 live batches, one batch a request, and
/// returns which lane each request carried ('B' or 'L').
fn lanes_served(live_share_percent: u8) -> String {
    lanes_served_after_a_wall_step(live_share_percent, 0)
}

/// [`lanes_served`] with the wall clock stepped by `step_ns` before serving.
fn lanes_served_after_a_wall_step(live_share_percent: u8, step_ns: i64) -> String {
    let mut cfg = Config::default();
    cfg.performance.adaptive_batching.max_batch_size = 1;
    cfg.performance.backlog_replay.live_share_percent = live_share_percent;
    cfg.performance.backlog_replay.live_window_ms = 60_000;
    let tag = format!("lanes{live_share_percent}_{step_ns}");
    let (mut fw, mut producer, server, clock, dir) = quiet_forwarder(&tag, &cfg);
    let batch = |m: &str, v: u64| NewBatch {
        payload: format!("{m} v={v}i {v}\n").into_bytes(),
        ..one_line_batch(v)
    };
    for v in 0..12 {
        producer
            .commit_at(&[batch("backlog", v)], clock.record_ms())
            .unwrap();
    }
    clock.advance(Duration::from_secs(120));
    for v in 100..103 {
        producer
            .commit_at(&[batch("live", v)], clock.record_ms())
            .unwrap();
    }
    clock.step_wall(step_ns);
    while fw.step() == Step::Worked {}
    let lanes: String = server
        .lock()
        .unwrap()
        .log
        .iter()
        .map(|r| {
            if r.first.starts_with(b"live") {
                'L'
            } else {
                'B'
            }
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    lanes
}

#[test]
fn during_a_backlog_every_fourth_request_carries_live_data() {
    // 25 %: three backlog requests, then the oldest live batch; in order
    // within each lane.
    assert_eq!(lanes_served(25), "BBBLBBBLBBBLBBB");
    // 50 %: every other request.
    assert_eq!(lanes_served(50), "BLBLBLBBBBBBBBB");
}

#[test]
fn a_wall_clock_step_either_way_leaves_the_live_lane_as_it_was() {
    // The live window is on record time (the monotonic clock): a step back
    // made every batch "live" (the share went to the backlog), a step
    // forward none.
    const DAY_NS: i64 = 86_400_000_000_000;
    assert_eq!(
        lanes_served_after_a_wall_step(25, -DAY_NS),
        "BBBLBBBLBBBLBBB"
    );
    assert_eq!(
        lanes_served_after_a_wall_step(25, 3650 * DAY_NS),
        "BBBLBBBLBBBLBBB"
    );
}

#[test]
fn a_live_share_of_zero_sends_strictly_oldest_first() {
    assert_eq!(lanes_served(0), "BBBBBBBBBBBBLLL");
}

#[test]
fn a_turn_reads_the_buffer_a_bounded_number_of_times_however_many_destinations_exist() {
    let mut per_turn = Vec::new();
    for n in [20u64, 2_000] {
        let (mut fw, mut producer, server, _clock, dir) =
            quiet_forwarder(&format!("dests{n}"), &Config::default());
        let batches: Vec<NewBatch> = (0..n)
            .map(|i| NewBatch {
                dest: hissrv::route::dest::Destination {
                    db: format!("made_up_{i}"),
                    rp: String::new(),
                },
                ..one_line_batch(i)
            })
            .collect();
        producer.commit(&batches).unwrap();
        // The first turn reads every head once (and delivers one).
        assert_eq!(fw.step(), Step::Worked);
        let before = fw.buffer_reads();
        for _ in 0..10 {
            assert_eq!(fw.step(), Step::Worked);
        }
        per_turn.push((fw.buffer_reads() - before) / 10);
        assert_eq!(server.lock().unwrap().log.len(), 11, "one request a turn");
        let _ = std::fs::remove_dir_all(&dir);
    }
    // Before the heads were cached: 3 reads per destination per turn.
    assert!(per_turn[1] <= 6, "reads a turn: {per_turn:?}");
    assert_eq!(
        per_turn[0], per_turn[1],
        "independent of the number of destinations"
    );
}
