//! The forwarder's status policy as a deterministic simulation: the real
//! [`Forwarder`] and the real write-ahead buffer, in virtual time, against a
//! scripted upstream driven by a seeded random sequence of faults (outages
//! answering 500/502/503 or resets, 429 with Retry-After, timeouts, a 413
//! size limit), poison lines (400-refused, and 500-on-sight like influxd
//! 1.6.7's 100-tag line) and live writes while it drains.
//!
//! Invariants checked after every run:
//! - every good line reached the server (at least once), none is a dead letter;
//! - every poison line is a dead letter, and the buffer ends empty;
//! - once faults stop, everything drains within a bounded number of requests;
//! - no busy loop: a destination whose turn failed is not asked again before
//!   its back-off (`MIN_RETRY_DELAY_MS`, or the server's Retry-After up to
//!   `retry.max_retry_after_s`), and one turn sends a bounded number of requests;
//! - no over-long wait: with one destination (nothing else to take turns), a
//!   destination whose turn failed is asked again within `retry.max_backoff_ms`
//!   (or the capped Retry-After) of the failure.
//!
//! `HISSRV_SIM_SEEDS=N` runs N seeds (default 2,000); a failure prints its seed,
//! and `HISSRV_SIM_SEED=S` replays that one.
//!
//! The fault model is the one a poison line must be told apart from: outages
//! are periods (a restart, a proxy's 502 storm) of at least `MIN_OUTAGE_MS`.
//! A server that failed a good line alone twice, each time between two
//! requests it took, would be indistinguishable from a poison line.

use hissrv::clock::Clock;
use hissrv::config::{Config, Influxdb, Synchronous};
use hissrv::deliver::upstream::Sink;
use hissrv::deliver::{Forwarder, MIN_RETRY_DELAY_MS, Step};
use hissrv::observe::stats::Stats;
use hissrv::route::dest::Destination;
use hissrv::wal::doorbell::Doorbell;
use hissrv::wal::{NewBatch, Wal};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::sim::*;
const MAX_RETRY_AFTER_S: u64 = 2;
/// Live writes go on this long after the faults end: the backlog must drain
/// and poison lines be isolated meanwhile (back-off caps at 5 s in the runs).
const RECOVERY_WITH_WRITES_MS: u64 = 30_000;
const MAX_TURNS: u64 = 200_000;

/// Runs one seed; `Err` says which invariant broke.
fn run(seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let dir = std::env::temp_dir().join(format!("hissrv-sim-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("buffer.db");
    let result = simulate(&mut rng, &path);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn simulate(rng: &mut Rng, path: &std::path::Path) -> Result<(), String> {
    let quota = 1 << 30;
    let mut producer = Wal::open(path, Synchronous::Off, quota).map_err(|e| e.to_string())?;
    let reader = Wal::open(path, Synchronous::Off, quota).map_err(|e| e.to_string())?;
    let mut cfg = Config::default();
    cfg.retry.initial_backoff_ms = 100;
    cfg.retry.max_backoff_ms = 5_000;
    cfg.retry.max_retry_after_s = MAX_RETRY_AFTER_S;
    cfg.performance.adaptive_batching.max_batch_size = 1 + rng.below(60) as usize;
    cfg.performance.backlog_replay.live_share_percent = [0, 25, 50][rng.below(3) as usize];
    cfg.performance.backlog_replay.live_window_ms = 2_000;
    let clock = VirtualClock::starting_now();
    let start = clock.start;
    let server = Arc::new(Mutex::new(Server {
        rng: Rng(rng.next() | 1),
        clock: clock.clone(),
        kinds: HashMap::new(),
        stored: HashSet::new(),
        max_lines: 3 + rng.below(80) as usize,
        faults_on: true,
        outage: None,
        calm_until: start,
        log: Vec::new(),
    }));
    let sink = SimSink(server.clone());
    let bell = Arc::new(Doorbell::default());
    let stats = Arc::new(Stats::default());
    let mut fw = Forwarder::with_parts(
        reader,
        &cfg,
        stats.clone(),
        Arc::new(AtomicBool::new(false)),
        bell.clone(),
        Default::default(),
        Box::new(move |_: &Influxdb| Box::new(sink.clone()) as Box<dyn Sink>),
        Box::new(clock.clone()),
        rng.next(),
    );
    let dests = 1 + rng.below(3);
    let poison_percent = rng.below(4);
    let mut expected: HashMap<Vec<u8>, (Kind, Phase)> = HashMap::new();
    let mut serial = 0u64;
    // Phases in virtual time: faults and writes; writes without faults (the
    // backlog must drain and poison be isolated *while* live data arrives);
    // then no writes until the buffer is empty.
    let faults_end = start + Duration::from_millis(5_000 + rng.below(20_000));
    let writes_end = faults_end + Duration::from_millis(RECOVERY_WITH_WRITES_MS);
    let mut next_write = start;
    let mut steps = 0u64;
    let mut recovery_from: Option<usize> = None;
    // Destinations whose last turn failed: when, and the back-off owed.
    let mut deferred: HashMap<Destination, (Instant, Duration)> = HashMap::new();
    loop {
        steps += 1;
        let now = clock.get();
        let phase = if now < faults_end {
            Phase::Faults
        } else if now < writes_end {
            Phase::Recovery
        } else {
            Phase::Drain
        };
        if phase != Phase::Faults && recovery_from.is_none() {
            let mut s = server.lock().unwrap();
            s.faults_on = false;
            s.outage = None;
            recovery_from = Some(s.log.len());
        }
        if phase == Phase::Drain && recovery_from.is_some() {
            // Everything from the fault phase is settled by now.
            settled(&expected, &server.lock().unwrap().stored, path, Phase::Faults)
                .map_err(|e| format!("{e}, {RECOVERY_WITH_WRITES_MS} ms after the faults ended, with live writes going on"))?;
        }
        if steps > MAX_TURNS {
            let s = server.lock().unwrap();
            let tail: Vec<String> = s
                .log
                .iter()
                .rev()
                .take(8)
                .map(|r| format!("{r:?}"))
                .collect();
            return Err(format!(
                "no end after {MAX_TURNS} turns; last requests: {}",
                tail.join("; ")
            ));
        }
        // Producers write at their own pace, while the forwarder works.
        if phase != Phase::Drain && now >= next_write {
            next_write = now + Duration::from_millis(200 + rng.below(1_800));
            let d = dest(rng.below(dests));
            let n = 1 + rng.below(10);
            let mut payload = Vec::new();
            for _ in 0..n {
                serial += 1;
                let line = format!("m,s=x v={serial}i {serial}").into_bytes();
                let kind = match rng.below(100) {
                    p if p < poison_percent => Kind::Refused,
                    p if p < 2 * poison_percent => Kind::Poison500,
                    _ => Kind::Good,
                };
                expected.insert(line.clone(), (kind, phase));
                server.lock().unwrap().kinds.insert(line.clone(), kind);
                payload.extend_from_slice(&line);
                payload.push(b'\n');
            }
            producer
                .commit_at(
                    &[NewBatch {
                        dest: d.clone(),
                        points: n as usize,
                        first_ts: 0,
                        last_ts: 0,
                        payload,
                    }],
                    clock.record_ms(),
                )
                .map_err(|e| e.to_string())?;
            bell.ring_for(std::iter::once(&d));
        }
        let before = server.lock().unwrap().log.len();
        let failures = Stats::get(&stats.upstream_failures);
        let step = fw.step();
        let turn_deferred = Stats::get(&stats.upstream_failures) > failures;
        {
            let s = server.lock().unwrap();
            let turn = &s.log[before..];
            // One turn: one pack, split at most into a binary tree of
            // requests, plus two re-sends and two canaries per suspect line.
            let max_pack = cfg.performance.adaptive_batching.max_batch_size.max(40);
            if turn.len() > 6 * max_pack + 8 {
                return Err(format!("one turn sent {} requests", turn.len()));
            }
            let ceiling = (dests == 1).then(|| {
                Duration::from_millis(cfg.retry.max_backoff_ms)
                    .max(Duration::from_secs(MAX_RETRY_AFTER_S))
            });
            check_backoff(turn, turn_deferred, ceiling, &mut deferred)?;
        }
        match step {
            Step::Worked => {}
            Step::Idle(t) | Step::Backoff(t) => {
                if phase == Phase::Drain && matches!(step, Step::Idle(_)) && fw_empty(path)? {
                    break;
                }
                let mut wake = t.max(clock.get() + Duration::from_millis(1));
                if phase != Phase::Drain {
                    wake = wake.min(next_write.max(clock.get()));
                }
                clock.advance_to(wake);
            }
        }
    }
    let s = server.lock().unwrap();
    let recovery = s.log.len() - recovery_from.unwrap_or(s.log.len());
    let lines = expected.len();
    let bound = 8 * lines + 64;
    if recovery > bound {
        return Err(format!(
            "{recovery} requests to drain after the faults stopped ({lines} lines; bound {bound})"
        ));
    }
    settled(&expected, &s.stored, path, Phase::Drain)
}

/// When, in the run, a line was written.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum Phase {
    Faults,
    Recovery,
    Drain,
}

/// The lines written up to `upto`: good ones delivered and not dead letters,
/// the others dead letters.
fn settled(
    expected: &HashMap<Vec<u8>, (Kind, Phase)>,
    stored: &HashSet<Vec<u8>>,
    path: &std::path::Path,
    upto: Phase,
) -> Result<(), String> {
    let dead = dead_letters(path)?;
    for (line, (kind, phase)) in expected {
        if *phase > upto {
            continue;
        }
        let text = String::from_utf8_lossy(line);
        match kind {
            Kind::Good if !stored.contains(line) => {
                return Err(format!("good line never delivered: {text}"));
            }
            Kind::Good if dead.contains(line) => {
                return Err(format!("good line dead-lettered: {text}"));
            }
            Kind::Refused | Kind::Poison500 if !dead.contains(line) => {
                return Err(format!(
                    "{kind:?} line not isolated as a dead letter: {text}"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn fw_empty(path: &std::path::Path) -> Result<bool, String> {
    let c = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
    let n: i64 = c
        .query_row("SELECT count(*) FROM batches", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    Ok(n == 0)
}

fn dead_letters(path: &std::path::Path) -> Result<HashSet<Vec<u8>>, String> {
    let c = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
    let mut stmt = c
        .prepare("SELECT line FROM dead_letters")
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .map_err(|e| e.to_string())?;
    rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
}

/// A destination whose turn ended in a failure is not asked again before its
/// back-off: `MIN_RETRY_DELAY_MS`, or the server's Retry-After (capped); and,
/// given a `ceiling`, not after it either.
fn check_backoff(
    turn: &[Seen],
    turn_deferred: bool,
    ceiling: Option<Duration>,
    deferred: &mut HashMap<Destination, (Instant, Duration)>,
) -> Result<(), String> {
    let (Some(first), Some(last)) = (turn.first(), turn.last()) else {
        return Ok(());
    };
    if let Some((at, owed)) = deferred.get(&first.dest) {
        let waited = first.at - *at;
        if waited < *owed {
            return Err(format!(
                "{:?} asked again {waited:?} after a failed turn (back-off owed {owed:?})",
                first.dest
            ));
        }
        // The failed request may have timed out after it was logged, and
        // the next one is logged 1 ms into its own turn.
        let slack = Duration::from_millis(TIMEOUT_MS + 1);
        if ceiling.is_some_and(|c| waited > c + slack) {
            return Err(format!(
                "{:?} waited {waited:?} after a failed turn, past the ceiling {ceiling:?}",
                first.dest
            ));
        }
    }
    // The turn was for its first request's destination (a canary may go
    // to another).
    if !turn_deferred {
        deferred.remove(&first.dest);
    } else {
        let floor = Duration::from_millis(MIN_RETRY_DELAY_MS);
        let owed = last.retry_after.map_or(floor, |ra| {
            ra.min(Duration::from_secs(MAX_RETRY_AFTER_S)).max(floor)
        });
        deferred.insert(first.dest.clone(), (last.at, owed));
    }
    Ok(())
}

#[test]
fn the_forwarder_keeps_its_status_policy_over_thousands_of_random_fault_sequences() {
    if let Ok(seed) = std::env::var("HISSRV_SIM_SEED") {
        let seed: u64 = seed.parse().expect("HISSRV_SIM_SEED is a number");
        if let Err(e) = run(seed) {
            panic!("seed {seed}: {e}");
        }
        return;
    }
    let seeds: u64 = std::env::var("HISSRV_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    let mut failures = Vec::new();
    for seed in 0..seeds {
        if let Err(e) = run(seed) {
            failures.push(format!(
                "seed {seed}: {e}  (replay: HISSRV_SIM_SEED={seed})"
            ));
            if failures.len() >= 5 {
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
