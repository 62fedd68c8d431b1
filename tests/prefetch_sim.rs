//! The forwarder's read-ahead (`deliver::prefetch`: the next pack read and
//! gzip-compressed while the server works on the current one) as a seeded
//! simulation: the real [`Forwarder`] and buffer in virtual time, a backlog
//! over one to three destinations, live writes during the drain (the live
//! lane), connection resets at random, reloads that switch gzip, and pack
//! limits of a few points (so nearly every pack is full and read ahead).
//!
//! Invariants checked after every run:
//! - every line reaches the server exactly once: a reset fails a request
//!   whole, so a line the server took is never sent again (a pack read ahead
//!   that kept a batch the live lane or a delivery had removed would send it
//!   twice), and none is skipped;
//! - a request carries its destination's lines in commit order, and with no
//!   live lane the server takes each destination's lines in commit order;
//! - a body compressed ahead of time is a whole gzip stream, of the lines
//!   the invariants above hold for.
//!
//! That the read-ahead is used at all, and the guards one by one (a failed
//! delete, expiry, gzip off): tests/prefetch_turns.rs.
//!
//! `HISSRV_SIM_SEEDS=N` runs N seeds (default 300); a failure prints its seed,
//! and `HISSRV_SIM_SEED=S` replays that one.

use hissrv::clock::Clock;
use hissrv::config::{Config, Influxdb, Synchronous};
use hissrv::deliver::upstream::{Outcome, Sink};
use hissrv::deliver::{Forwarder, Mailbox, Step};
use hissrv::observe::stats::Stats;
use hissrv::route::dest::Destination;
use hissrv::wal::doorbell::Doorbell;
use hissrv::wal::{NewBatch, Wal};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;
use common::sim::*;

/// One request as the server saw it.
struct Request {
    dest: Destination,
    serials: Vec<u64>,
    zipped: bool,
    written: bool,
}

struct Recorder {
    rng: Rng,
    /// Percent of requests answered with a connection reset.
    reset_percent: u64,
    log: Vec<Request>,
    /// A compressed body that was not its request's lines.
    mismatch: Option<String>,
}

#[derive(Clone)]
struct RecordingSink(Arc<Mutex<Recorder>>);

impl RecordingSink {
    fn answer(&self, dest: &Destination, lines: &[u8], zipped: bool) -> Outcome {
        let mut r = self.0.lock().unwrap();
        let serials = lines
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let text = String::from_utf8_lossy(l);
                text.rsplit(' ')
                    .next()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0)
            })
            .collect();
        let reset_percent = r.reset_percent;
        let written = !r.rng.chance(reset_percent);
        r.log.push(Request {
            dest: dest.clone(),
            serials,
            zipped,
            written,
        });
        if written {
            Outcome::Written
        } else {
            Outcome::Network("connection reset by peer".into())
        }
    }
}

impl Sink for RecordingSink {
    fn write(&self, dest: &Destination, lines: &[u8]) -> Outcome {
        self.answer(dest, lines, false)
    }

    /// The body must be a whole gzip stream of the pack's lines: the
    /// invariants on the lines it carries check which.
    fn write_zipped(&self, dest: &Destination, zipped: &[u8]) -> Outcome {
        let mut lines = Vec::new();
        if let Err(e) = flate2::read::GzDecoder::new(zipped).read_to_end(&mut lines) {
            self.0.lock().unwrap().mismatch = Some(format!("a body compressed ahead: {e}"));
        }
        self.answer(dest, &lines, true)
    }

    fn ensure_retention(
        &self,
        _: &Influxdb,
        _: &[hissrv::deliver::provision::Want],
    ) -> Result<Vec<String>, hissrv::deliver::provision::ProvisionError> {
        Ok(Vec::new())
    }
}

/// Turns at most, so a bug that loops shows as a failure, not a hang.
const MAX_STEPS: u64 = 100_000;

fn run(seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut cfg = Config::default();
    cfg.retry.initial_backoff_ms = 100;
    cfg.retry.max_backoff_ms = 2_000;
    cfg.performance.adaptive_batching.max_batch_size = 2 + rng.below(30) as usize;
    let live_share = [0, 25, 50][rng.below(3) as usize];
    cfg.performance.backlog_replay.live_share_percent = live_share;
    cfg.performance.backlog_replay.live_window_ms = 2_000;
    cfg.influxdb.gzip = rng.chance(80);
    let clock = VirtualClock::starting_now();
    let recorder = Arc::new(Mutex::new(Recorder {
        rng: Rng(rng.next() | 1),
        reset_percent: rng.below(30),
        log: Vec::new(),
        mismatch: None,
    }));
    let mailbox: Mailbox = Default::default();
    let dir = std::env::temp_dir().join(format!("hissrv-prefetch-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("buffer.db");
    let mut producer = Wal::open(&path, Synchronous::Off, 1 << 30).map_err(|e| e.to_string())?;
    let reader = Wal::open(&path, Synchronous::Off, 1 << 30).map_err(|e| e.to_string())?;
    let sink = RecordingSink(recorder.clone());
    let mut fw = Forwarder::with_parts(
        reader,
        &cfg,
        Arc::new(Stats::default()),
        Arc::new(AtomicBool::new(false)),
        Arc::new(Doorbell::default()),
        mailbox.clone(),
        Box::new(move |_: &Influxdb| Box::new(sink.clone()) as Box<dyn Sink>),
        Box::new(clock.clone()),
        rng.next(),
    );
    let dests = 1 + rng.below(3);
    let mut serial = 0u64;
    let mut committed: HashMap<u64, Destination> = HashMap::new();
    let mut commit = |rng: &mut Rng, producer: &mut Wal, at_ms: i64| {
        let d = dest(rng.below(dests));
        let n = 1 + rng.below(8);
        let mut payload = Vec::new();
        for _ in 0..n {
            serial += 1;
            payload.extend_from_slice(format!("m,s=x v={serial}i {serial}\n").as_bytes());
            committed.insert(serial, d.clone());
        }
        producer
            .commit_at(
                &[NewBatch {
                    dest: d,
                    points: n as usize,
                    first_ts: 0,
                    last_ts: 0,
                    payload,
                }],
                at_ms,
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    // A backlog, committed well before the live window.
    let backlog = 5 + rng.below(80);
    let old_ms = clock.record_ms() - 60_000;
    for _ in 0..backlog {
        commit(&mut rng, &mut producer, old_ms)?;
    }
    let writes_end = clock.get() + Duration::from_millis(5_000 + rng.below(10_000));
    let mut steps = 0u64;
    loop {
        steps += 1;
        if steps > MAX_STEPS {
            return Err(format!("no end after {MAX_STEPS} turns"));
        }
        let now = clock.get();
        let writing = now < writes_end;
        if writing && rng.chance(30) {
            commit(&mut rng, &mut producer, clock.record_ms())?;
        }
        if !writing {
            recorder.lock().unwrap().reset_percent = 0;
        }
        if rng.chance(2) {
            // A reload: the next turns must not use a body compressed
            // under the other setting.
            let mut next = cfg.clone();
            next.influxdb.gzip = !cfg.influxdb.gzip;
            cfg = next.clone();
            *mailbox.lock().unwrap() = Some(next);
        }
        match fw.step() {
            Step::Worked => clock.advance(Duration::from_millis(1 + rng.below(20))),
            Step::Idle(t) | Step::Backoff(t) => {
                if !writing && producer.backlog().map_err(|e| e.to_string())?.batches == 0 {
                    break;
                }
                clock.advance_to(t.max(clock.get() + Duration::from_millis(1)));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let r = recorder.lock().unwrap();
    if let Some(m) = &r.mismatch {
        return Err(m.clone());
    }
    let mut written: HashSet<u64> = HashSet::new();
    let mut last_taken: HashMap<Destination, u64> = HashMap::new();
    for (i, req) in r.log.iter().enumerate() {
        if req.serials.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!(
                "request {i} is out of commit order: {:?}",
                req.serials
            ));
        }
        for s in &req.serials {
            if committed.get(s) != Some(&req.dest) {
                return Err(format!(
                    "request {i} carried line {s} to the wrong destination"
                ));
            }
            if written.contains(s) {
                return Err(format!(
                    "request {i} sent line {s} again after the server took it"
                ));
            }
        }
        if req.written {
            written.extend(req.serials.iter().copied());
            if live_share == 0 {
                let last = last_taken.entry(req.dest.clone()).or_insert(0);
                if req.serials.first().is_some_and(|f| f <= last) {
                    return Err(format!(
                        "request {i} went before older lines of {:?}",
                        req.dest
                    ));
                }
                *last = req.serials.last().copied().unwrap_or(*last);
            }
        }
    }
    if let Some(s) = (1..=serial).find(|s| !written.contains(s)) {
        return Err(format!("line {s} never reached the server"));
    }
    Ok(())
}

#[test]
fn packs_read_ahead_deliver_every_line_once_and_in_order_over_random_runs() {
    let seeds: Vec<u64> = match std::env::var("HISSRV_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("HISSRV_SIM_SEED is a number")],
        Err(_) => {
            let n = std::env::var("HISSRV_SIM_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(300u64);
            (1..=n).collect()
        }
    };
    for seed in seeds {
        if let Err(e) = run(seed) {
            panic!("seed {seed}: {e} (replay: HISSRV_SIM_SEED={seed})");
        }
    }
}

#[test]
fn a_backlog_goes_out_in_bodies_compressed_while_the_server_worked() {
    let mut cfg = Config::default();
    cfg.performance.adaptive_batching.max_batch_size = 10;
    cfg.performance.backlog_replay.live_share_percent = 0;
    cfg.influxdb.gzip = true;
    let clock = VirtualClock::starting_now();
    let recorder = Arc::new(Mutex::new(Recorder {
        rng: Rng(1),
        reset_percent: 0,
        log: Vec::new(),
        mismatch: None,
    }));
    let (mut fw, mut producer, dir) = forwarder_on(
        "prefetch-used",
        &cfg,
        &clock,
        RecordingSink(recorder.clone()),
    );
    // Ten packs of ten lines.
    for b in 0..20u64 {
        let payload: Vec<u8> = (1..=5)
            .flat_map(|i| format!("m v={0}i {0}\n", b * 5 + i).into_bytes())
            .collect();
        producer
            .commit_at(
                &[NewBatch {
                    dest: dest(0),
                    points: 5,
                    first_ts: 0,
                    last_ts: 0,
                    payload,
                }],
                clock.record_ms(),
            )
            .unwrap();
    }
    for _ in 0..50 {
        if let Step::Idle(_) = fw.step() {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let r = recorder.lock().unwrap();
    assert!(r.mismatch.is_none(), "{:?}", r.mismatch);
    let sent: Vec<u64> = r.log.iter().flat_map(|q| q.serials.clone()).collect();
    assert_eq!(
        sent,
        (1..=100).collect::<Vec<u64>>(),
        "every line once, in order"
    );
    let ahead = r.log.iter().filter(|q| q.zipped).count();
    // The first pack is read at its turn; each later one during the request
    // before it.
    assert_eq!(ahead, r.log.len() - 1, "requests compressed ahead of time");
}
