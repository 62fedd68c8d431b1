//! The forwarder's test harness: a seeded RNG, a virtual clock, a scripted
//! upstream with outages and poison lines (`Server`, `SimSink`), and a
//! forwarder wired to them on a fresh buffer. Used by the random simulation
//! (tests/forward_sim.rs) and the turn-by-turn tests (tests/forward_turns.rs).

use hissrv::clock::Clock;
use hissrv::config::{Config, Influxdb, Synchronous};
use hissrv::deliver::Forwarder;
use hissrv::deliver::provision::ProvisionError;
use hissrv::deliver::upstream::{Outcome, Sink};
use hissrv::observe::stats::Stats;
use hissrv::route::dest::Destination;
use hissrv::wal::doorbell::Doorbell;
use hissrv::wal::{NewBatch, Wal};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Outages last at least this (a restart, a proxy's 502 storm).
pub const MIN_OUTAGE_MS: u64 = 50;
/// A timed-out request takes this much virtual time.
pub const TIMEOUT_MS: u64 = 2_000;

/// xorshift64*: small, seeded, reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone)]
pub struct VirtualClock {
    pub now: Arc<Mutex<Instant>>,
    pub wall_start_ns: i64,
    pub start: Instant,
    /// Steps of the wall clock alone (an NTP step, a wrong RTC), shared by
    /// every clone.
    pub wall_step_ns: Arc<std::sync::atomic::AtomicI64>,
}

impl VirtualClock {
    /// Virtual time starting at the real now (wall clock included).
    pub fn starting_now() -> VirtualClock {
        let start = Instant::now();
        VirtualClock {
            now: Arc::new(Mutex::new(start)),
            wall_start_ns: hissrv::clock::now_ns(),
            start,
            wall_step_ns: Arc::default(),
        }
    }

    /// The true time (the wall clock without its steps): what a server with
    /// a good clock says in its `Date`.
    pub fn true_wall_ns(&self) -> i64 {
        self.wall_start_ns + (self.get() - self.start).as_nanos() as i64
    }

    /// Steps the wall clock alone by `ns` (the monotonic clock goes on).
    pub fn step_wall(&self, ns: i64) {
        self.wall_step_ns
            .fetch_add(ns, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn get(&self) -> Instant {
        *self.now.lock().unwrap()
    }
    pub fn advance_to(&self, t: Instant) {
        let mut now = self.now.lock().unwrap();
        if t > *now {
            *now = t;
        }
    }
    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().unwrap();
        *now += d;
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        self.get()
    }
    fn wall_ns(&self) -> i64 {
        self.wall_start_ns
            + (self.get() - self.start).as_nanos() as i64
            + self.wall_step_ns.load(std::sync::atomic::Ordering::SeqCst)
    }
    /// Record time goes on with the monotonic clock, steps or not.
    fn record_ms(&self) -> i64 {
        self.true_wall_ns() / 1_000_000
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Good,
    /// The server refuses it for good (400 partial write, the rest written).
    Refused,
    /// The server fails any request holding it with a 500 (nothing written).
    Poison500,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub dest: Destination,
    pub retry_after: Option<Duration>,
    /// The request's first line.
    pub first: Vec<u8>,
}

pub struct Server {
    pub rng: Rng,
    pub clock: VirtualClock,
    pub kinds: HashMap<Vec<u8>, Kind>,
    pub stored: HashSet<Vec<u8>>,
    /// Requests with more lines get 413.
    pub max_lines: usize,
    pub faults_on: bool,
    /// The current outage: until when, and how it answers.
    pub outage: Option<(Instant, u16)>,
    /// No new outage before this (outages are separated like restarts).
    pub calm_until: Instant,
    pub log: Vec<Seen>,
}

impl Server {
    pub fn answer(&mut self, dest: &Destination, body: &[u8]) -> Outcome {
        let now = self.clock.get();
        if self.outage.is_some_and(|(until, _)| until <= now) {
            self.outage = None;
            self.calm_until = now + Duration::from_millis(MIN_OUTAGE_MS);
        }
        if self.faults_on && self.outage.is_none() && now >= self.calm_until && self.rng.chance(4) {
            let len = MIN_OUTAGE_MS + self.rng.below(3_000);
            let status = [500, 502, 503, 0][self.rng.below(4) as usize];
            self.outage = Some((now + Duration::from_millis(len), status));
        }
        let lines: Vec<&[u8]> = body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        if let Some((_, status)) = self.outage {
            return match status {
                0 => Outcome::Network("connection reset by peer".into()),
                503 => Outcome::Throttled {
                    status,
                    retry_after: None,
                },
                s => Outcome::ServerError {
                    status: s,
                    message: "bad gateway".into(),
                },
            };
        }
        if self.faults_on && self.rng.chance(3) {
            self.clock.advance(Duration::from_millis(TIMEOUT_MS));
            return Outcome::Network("timed out".into());
        }
        if self.faults_on && self.rng.chance(3) {
            return Outcome::Throttled {
                status: 429,
                retry_after: Some(Duration::from_secs(self.rng.below(4))),
            };
        }
        if lines.len() > self.max_lines {
            return Outcome::TooLarge;
        }
        let kind = |l: &[u8]| self.kinds.get(l).copied().unwrap_or(Kind::Good);
        if lines.iter().any(|l| kind(l) == Kind::Poison500) {
            return Outcome::ServerError {
                status: 500,
                message: "timeout".into(),
            };
        }
        let refused = lines.iter().filter(|l| kind(l) == Kind::Refused).count();
        for l in &lines {
            if kind(l) == Kind::Good {
                self.stored.insert(l.to_vec());
            }
        }
        let _ = dest;
        if refused > 0 {
            return Outcome::Refused {
                status: 400,
                message: format!("partial write: field type conflict dropped={refused}"),
            };
        }
        Outcome::Written
    }
}

#[derive(Clone)]
pub struct SimSink(pub Arc<Mutex<Server>>);

impl Sink for SimSink {
    fn server_time(&self) -> Option<(i64, Instant)> {
        let s = self.0.lock().unwrap();
        Some((s.clock.true_wall_ns(), s.clock.get()))
    }

    fn write(&self, dest: &Destination, lines: &[u8]) -> Outcome {
        let mut s = self.0.lock().unwrap();
        // Every request takes a millisecond of virtual time.
        s.clock.advance(Duration::from_millis(1));
        let at = s.clock.get();
        let outcome = s.answer(dest, lines);
        if std::env::var_os("HISSRV_SIM_TRACE").is_some() {
            let first = lines.split(|&b| b == b' ').nth(1).unwrap_or_default();
            eprintln!(
                "{:>9} ms {:?} {} lines from {} -> {:?}",
                (at - s.clock.start).as_millis(),
                dest.db,
                lines.iter().filter(|&&b| b == b'\n').count(),
                String::from_utf8_lossy(first),
                outcome
            );
        }
        let retry_after = match &outcome {
            Outcome::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        };
        s.log.push(Seen {
            at,
            dest: dest.clone(),
            retry_after,
            first: lines
                .split(|&b| b == b'\n')
                .next()
                .unwrap_or_default()
                .to_vec(),
        });
        outcome
    }

    fn ensure_retention(
        &self,
        _: &Influxdb,
        _: &[hissrv::deliver::provision::Want],
    ) -> Result<Vec<String>, ProvisionError> {
        Ok(Vec::new())
    }
}

pub fn dest(i: u64) -> Destination {
    Destination {
        db: format!("db{i}"),
        rp: String::new(),
    }
}

/// A forwarder on a fresh buffer, in virtual time, against a fault-free
/// scripted server: (forwarder, producer's connection, server, clock, dir).
pub fn quiet_forwarder(
    tag: &str,
    cfg: &Config,
) -> (
    Forwarder,
    Wal,
    Arc<Mutex<Server>>,
    VirtualClock,
    std::path::PathBuf,
) {
    let clock = VirtualClock::starting_now();
    let server = Arc::new(Mutex::new(Server {
        rng: Rng(7),
        clock: clock.clone(),
        kinds: HashMap::new(),
        stored: HashSet::new(),
        max_lines: 1_000,
        faults_on: false,
        outage: None,
        calm_until: clock.start,
        log: Vec::new(),
    }));
    let (fw, producer, dir) = forwarder_on(tag, cfg, &clock, SimSink(server.clone()));
    (fw, producer, server, clock, dir)
}

/// A forwarder on a fresh buffer in a temp dir, in `clock`'s time, sending
/// to `sink`: (forwarder, the producer's connection, the dir).
pub fn forwarder_on<K: Sink + Clone + 'static>(
    tag: &str,
    cfg: &Config,
    clock: &VirtualClock,
    sink: K,
) -> (Forwarder, Wal, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("hissrv-sim-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("buffer.db");
    let producer = Wal::open(&path, Synchronous::Off, 1 << 30).unwrap();
    let reader = Wal::open(&path, Synchronous::Off, 1 << 30).unwrap();
    let fw = Forwarder::with_parts(
        reader,
        cfg,
        Arc::new(Stats::default()),
        Arc::new(AtomicBool::new(false)),
        Arc::new(Doorbell::default()),
        Default::default(),
        Box::new(move |_: &Influxdb| Box::new(sink.clone()) as Box<dyn Sink>),
        Box::new(clock.clone()),
        1,
    );
    (fw, producer, dir)
}

pub fn one_line_batch(v: u64) -> NewBatch {
    NewBatch {
        dest: dest(0),
        points: 1,
        first_ts: 0,
        last_ts: 0,
        payload: format!("m v={v}i {v}\n").into_bytes(),
    }
}
