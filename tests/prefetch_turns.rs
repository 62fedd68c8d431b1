//! The forwarder's read-ahead (`deliver::prefetch`) turn by turn, in
//! virtual time against a recording server: it is used when it should be
//! (one or several destinations) and never when it must not be (a delete
//! that failed, lines that expired meanwhile, gzip off). Each test here
//! failed under a mutation of the guard it names (the review of the change).

use hissrv::clock::Clock;
use hissrv::config::{Config, Influxdb};
use hissrv::deliver::Step;
use hissrv::deliver::upstream::{Outcome, Sink};
use hissrv::route::dest::Destination;
use hissrv::wal::NewBatch;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;
use common::sim::*;

/// Each request: destination, the lines' timestamps, compressed ahead?
type Log = Arc<Mutex<Vec<(Destination, Vec<i64>, bool)>>>;

/// Takes every request and records it; tells the server's time (for
/// retention expiry) from the virtual clock.
#[derive(Clone)]
struct Recorder(Log, VirtualClock);

impl Recorder {
    fn answer(&self, d: &Destination, lines: &[u8], zipped: bool) -> Outcome {
        let ts = lines
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                String::from_utf8_lossy(l)
                    .rsplit(' ')
                    .next()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(-1)
            })
            .collect();
        self.0.lock().unwrap().push((d.clone(), ts, zipped));
        Outcome::Written
    }
}

impl Sink for Recorder {
    fn write(&self, d: &Destination, lines: &[u8]) -> Outcome {
        self.answer(d, lines, false)
    }

    fn write_zipped(&self, d: &Destination, z: &[u8]) -> Outcome {
        let mut lines = Vec::new();
        flate2::read::GzDecoder::new(z)
            .read_to_end(&mut lines)
            .expect("a whole gzip stream");
        self.answer(d, &lines, true)
    }

    fn server_time(&self) -> Option<(i64, std::time::Instant)> {
        Some((self.1.true_wall_ns(), self.1.get()))
    }

    fn ensure_retention(
        &self,
        _: &Influxdb,
        _: &[hissrv::deliver::provision::Want],
    ) -> Result<Vec<String>, hissrv::deliver::provision::ProvisionError> {
        Ok(Vec::new())
    }
}

fn backlog_config(max_points: usize, gzip: bool) -> Config {
    let mut cfg = Config::default();
    cfg.performance.adaptive_batching.max_batch_size = max_points;
    cfg.performance.backlog_replay.live_share_percent = 0;
    cfg.influxdb.gzip = gzip;
    cfg
}

/// A forwarder on a fresh buffer sending to a [`Recorder`]: (forwarder,
/// producer's connection, dir, the requests, the clock).
fn recorded(
    tag: &str,
    cfg: &Config,
) -> (
    hissrv::deliver::Forwarder,
    hissrv::wal::Wal,
    std::path::PathBuf,
    Log,
    VirtualClock,
) {
    let clock = VirtualClock::starting_now();
    let log: Log = Default::default();
    let (fw, producer, dir) = forwarder_on(tag, cfg, &clock, Recorder(log.clone(), clock.clone()));
    (fw, producer, dir, log, clock)
}

fn drain(fw: &mut hissrv::deliver::Forwarder) {
    for _ in 0..500 {
        if let Step::Idle(_) = fw.step() {
            return;
        }
    }
    panic!("the buffer did not drain in 500 turns");
}

/// 40 batches of 5 lines, destinations taking turns by commit; returns the
/// requests (compressed ahead, all) and checks every line went once.
fn interleaved(destinations: u64) -> (usize, usize) {
    let cfg = backlog_config(10, true);
    let (mut fw, mut producer, dir, log, clock) =
        recorded(&format!("prefetch-dests-{destinations}"), &cfg);
    let mut serial = 0i64;
    for b in 0..40u64 {
        let payload: Vec<u8> = (0..5)
            .flat_map(|_| {
                serial += 1;
                format!("m v={serial}i {serial}\n").into_bytes()
            })
            .collect();
        let batch = NewBatch {
            dest: dest(b % destinations),
            points: 5,
            first_ts: 0,
            last_ts: 0,
            payload,
        };
        producer.commit_at(&[batch], clock.record_ms()).unwrap();
    }
    drain(&mut fw);
    let _ = std::fs::remove_dir_all(&dir);
    let log = log.lock().unwrap();
    let mut sent: Vec<i64> = log.iter().flat_map(|q| q.1.clone()).collect();
    sent.sort_unstable();
    assert_eq!(sent, (1..=200).collect::<Vec<i64>>(), "every line once");
    (log.iter().filter(|q| q.2).count(), log.len())
}

#[test]
fn one_destination_has_every_pack_after_the_first_read_ahead() {
    let (ahead, all) = interleaved(1);
    assert_eq!(ahead, all - 1, "{ahead} of {all} requests compressed ahead");
}

#[test]
fn destinations_taking_turns_still_have_packs_read_ahead() {
    // Ids interleave across destinations: the read-ahead's head is the next
    // batch of its own destination, not the id after the pack (before the
    // review's fix: none of 20 requests). One destination at a time is read
    // ahead, so about half the requests of two, a third of three.
    for n in [2, 3] {
        let (ahead, all) = interleaved(n);
        assert!(
            ahead as u64 * (n + 1) >= all as u64,
            "{n} destinations: {ahead} of {all} requests compressed ahead"
        );
    }
}

#[test]
fn a_failed_delete_sends_its_pack_again_before_the_pack_read_ahead() {
    let cfg = backlog_config(1, true);
    let (mut fw, mut producer, server, clock, dir) = quiet_forwarder("prefetch-nodelete", &cfg);
    for v in 1..=4 {
        producer.commit(&[one_line_batch(v)]).unwrap();
    }
    let c = rusqlite::Connection::open(dir.join("buffer.db")).unwrap();
    c.execute_batch(
        "CREATE TRIGGER no_delete BEFORE DELETE ON batches
         BEGIN SELECT RAISE(FAIL, 'disk I/O error'); END;",
    )
    .unwrap();
    assert_eq!(fw.step(), Step::Worked);
    c.execute_batch("DROP TRIGGER no_delete").unwrap();
    clock.advance(Duration::from_secs(60));
    drain(&mut fw);
    let firsts: Vec<String> = server
        .lock()
        .unwrap()
        .log
        .iter()
        .map(|s| String::from_utf8_lossy(&s.first).to_string())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    let values: Vec<&str> = firsts
        .iter()
        .map(|f| f.rsplit(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(values, ["1", "1", "2", "3", "4"], "{firsts:?}");
}

#[test]
fn gzip_off_never_sends_a_body_compressed_ahead() {
    let cfg = backlog_config(10, false);
    let (mut fw, mut producer, dir, log, _) = recorded("prefetch-gzip-off", &cfg);
    for v in 1..=50 {
        producer.commit(&[one_line_batch(v)]).unwrap();
    }
    drain(&mut fw);
    let _ = std::fs::remove_dir_all(&dir);
    let log = log.lock().unwrap();
    assert_eq!(log.iter().map(|q| q.1.len()).sum::<usize>(), 50);
    assert_eq!(
        log.iter().filter(|q| q.2).count(),
        0,
        "gzip bodies with gzip off"
    );
}

#[test]
fn lines_that_expired_while_their_pack_waited_are_not_sent_from_its_body() {
    let mut cfg = Config::from_yaml(
        "influxdb:\n  sharding:\n    buckets:\n      - {name: short, retention: 1h, points: [m]}\n",
    )
    .unwrap();
    cfg.performance.adaptive_batching.max_batch_size = 8;
    cfg.performance.backlog_replay.live_share_percent = 0;
    cfg.influxdb.gzip = true;
    let d = Destination::of_bucket(&cfg.influxdb.sharding.buckets[0], &cfg.influxdb);
    let (mut fw, mut producer, dir, log, clock) = recorded("prefetch-expiry", &cfg);
    let now = clock.true_wall_ns();
    let minute = 60_000_000_000i64;
    let mut commit = |a: i64, b: i64| {
        let batch = NewBatch {
            dest: d.clone(),
            points: 2,
            first_ts: a.min(b),
            last_ts: a.max(b),
            payload: format!("m v=1i {a}\nm v=1i {b}\n").into_bytes(),
        };
        producer.commit(&[batch]).unwrap();
    };
    // The first pack: fresh lines. The second: in each batch one line 50
    // minutes old (past the 1 h retention 11 minutes later) and one fresh.
    for i in 0..4 {
        commit(now + i, now + 100 + i);
    }
    for i in 0..4 {
        commit(now - 50 * minute + i, now + 1000 + i);
    }
    // The first pack goes; the second is read and compressed ahead.
    assert_eq!(fw.step(), Step::Worked);
    clock.advance(Duration::from_secs(11 * 60));
    drain(&mut fw);
    let _ = std::fs::remove_dir_all(&dir);
    let log = log.lock().unwrap();
    let sent: Vec<i64> = log.iter().flat_map(|q| q.1.clone()).collect();
    assert_eq!(sent.len(), 12, "expired lines went out: {sent:?}");
    assert!(
        sent.iter().all(|&t| t >= now),
        "expired lines went out: {sent:?}"
    );
}
