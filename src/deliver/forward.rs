//! The forwarder: a worker thread that drains the write-ahead buffer upstream.
//!
//! It reads with its own connection. Each turn ([`Forwarder::step`]) it picks
//! a destination that is not backing off, packs consecutive stored batches of
//! it into one request (up to `max_batch_size` points and `max_request_mb`),
//! and hands the pack to [`crate::deliver::delivery`], which applies the status policy.
//! A delivered pack is deleted, with its dead letters, in one transaction.
//!
//! # Backlog replay
//! After an outage a destination holds a backlog (batches committed more than
//! `backlog_replay.live_window_ms` ago) and live data (committed since). The
//! backlog drains in commit order in the largest requests allowed, back to
//! back, as fast as the upstream answers; but one request in
//! `100 / live_share_percent` (default: every 4th) carries the oldest *live*
//! batches instead, so fresh points keep reaching the server during a long
//! drain. With `live_share_percent: 0` everything goes strictly oldest-first.
//!
//! # Contracts
//! - **Order:** within a destination, the backlog goes in commit order and so
//!   does live data; a failed pack is retried before anything after it in its
//!   lane. The two lanes interleave only while a backlog drains.
//! - **Delete:** a batch is deleted only after the server took every line of
//!   it, or those it refused are stored as dead letters in the same transaction.
//! - **At-least-once:** a crash between the 2xx and the delete, or a retry after
//!   half a split went through, re-sends lines; InfluxDB overwrites a point with
//!   the same series and timestamp, so the replay is harmless.
//! - **No busy loop:** every failure — an upstream answer, a buffer read or
//!   delete that fails — puts its destination in back-off (at least
//!   `MIN_RETRY_DELAY_MS`, growing to `retry.max_backoff_ms`).
//! - **Poison counting per pack head:** server errors are counted per
//!   (destination, first batch of the pack), so the live lane's requests
//!   neither reset nor share the backlog's count.
//! - **Cost per turn independent of the number of destinations:** the heads
//!   are cached and updated from what commits reached (the doorbell's list)
//!   and what a delivery removed, one index lookup each
//!   (`heads`).
//!
//! Time comes from a [`Clock`], so the simulation in `tests/forward_sim.rs`
//! runs the real forwarder against a scripted upstream in virtual time.

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Influxdb, Retry};
use crate::deliver::drain::{DrainPolicy, Plan, Scheduler};
use crate::deliver::upstream::{Sink, Upstream};
use crate::observe::stats::Stats;
use crate::route::dest::{Destination, Destinations};
use crate::wal::Wal;
use crate::wal::doorbell::Doorbell;
use crate::wal::reserve::{RESERVE_RETRY_SECS, Reserve};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often an idle forwarder looks at the buffer even unprompted (a commit
/// rings the doorbell; this only bounds a missed ring).
pub const IDLE_POLL_MS: u64 = 1_000;
/// Floor on a retry delay, so full jitter never turns into a busy loop.
pub const MIN_RETRY_DELAY_MS: u64 = 50;
/// Free pages an idle buffer keeps (1,024: 4 MiB at SQLite's 4 KiB pages,
/// one WAL checkpoint's growth); the rest go back to the file system.
pub const FREE_PAGES_KEPT: u64 = 1024;
/// How often an idle buffer is looked at for free pages to give back.
const SHRINK_EVERY_SECS: u64 = 60;

pub(crate) struct Backoff {
    pub(crate) ready_at: Instant,
    pub(crate) failures: u32,
    /// The first failure of this run (for `upstream_failing_for_ms`).
    pub(crate) since: Instant,
}

/// A new config for the forwarder, left by a reload; taken at its next turn.
pub type Mailbox = Arc<Mutex<Option<Config>>>;

/// Makes the sink for an `influxdb` section (a reload makes a new one).
pub type MakeSink = Box<dyn Fn(&Influxdb) -> Box<dyn Sink> + Send>;

/// What a turn did, and when the next is due.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// A request went out (or a pack was set aside): go on at once.
    Worked,
    /// Nothing to send: wait for a commit's ring, at most until then.
    Idle(Instant),
    /// Everything is backing off: sleep until then (a ring does not cut it
    /// short, or a commit would defeat the back-off).
    Backoff(Instant),
}

pub struct Forwarder {
    pub(crate) wal: Wal,
    sink: Box<dyn Sink>,
    make_sink: MakeSink,
    pub(crate) clock: Box<dyn Clock>,
    influxdb: Influxdb,
    retry: Retry,
    policy: DrainPolicy,
    plan: Plan,
    scheduler: Scheduler,
    mailbox: Mailbox,
    /// When to (re)check the buckets upstream (`manage_retention`); failures
    /// in a row so far.
    provision_at: Option<Instant>,
    provision_failures: u32,
    /// The warm destinations the windows write to (the commit thread notes
    /// them), and those found missing upstream: provisioned with the buckets.
    warm: Arc<crate::route::lifecycle::WarmDestinations>,
    warm_wants: Vec<crate::deliver::provision::Want>,
    /// The raw destinations of rules with `hot_days` (noted as their
    /// batches are read, backlog from before a restart too), and their
    /// generation last provisioned.
    hot: Option<crate::route::hot::HotTier>,
    hot_seen: u64,
    /// `buffer.when_full: degrade`: the room kept free by deleting raw
    /// batches the warm tier holds (bytes; 0: off), next look.
    degrade_headroom: u64,
    degrade_at: Instant,
    /// `storage_full_refusals` at the last look: a new refusal degrades
    /// even while deliveries succeed.
    degrade_refusals_seen: u64,
    pub(crate) stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    pub(crate) bell: Arc<Doorbell>,
    pub(crate) destinations: Arc<Destinations>,
    backoff: HashMap<Destination, Backoff>,
    max_lines_per_request: usize,
    /// Requests since the live lane last had its turn.
    since_live: u32,
    /// Server errors in a row per (destination, pack head).
    server_errors: HashMap<(Destination, i64), u32>,
    /// Per destination: the last line of the newest request its server took
    /// (a probe's canary when its pack has none).
    latest_written: HashMap<Destination, Option<Vec<u8>>>,
    /// Per (destination, pack head) being probed: its lines already written.
    probed: HashMap<(Destination, i64), crate::deliver::delivery::ProbeState>,
    /// Each destination's oldest batch id (see `forward_heads`).
    pub(crate) heads: BTreeMap<Destination, i64>,
    pub(crate) heads_loaded: bool,
    pub(crate) heads_reload_at: Instant,
    pub(crate) next_gauges: Instant,
    rng: u64,
    /// The buffer's disk reserve (`wal::reserve`), and when to make it
    /// again while it is spent.
    pub(crate) reserve: Option<Reserve>,
    pub(crate) reserve_retry_at: Instant,
    /// When the forwarder next asks whether the buffer is writable.
    pub(crate) read_only_probe_at: Instant,
    /// Deliveries paused: over the quota with a reader holding the WAL.
    pub(crate) paused_for_reader: bool,
    /// When the forwarder next looks whether it is over the quota.
    pub(crate) over_quota_check_at: Instant,
    /// When an empty buffer is next looked at for free pages to give back.
    shrink_at: Instant,
    /// When the server was last asked for its time (`forward_turn`).
    pub(crate) time_asked_at: Option<Instant>,
    /// The next pack, read during the last request (`prefetch`).
    pub(crate) prefetched: Option<crate::deliver::prefetch::Prefetched>,
}

impl Forwarder {
    pub fn new(
        wal: Wal,
        cfg: &Config,
        stats: Arc<Stats>,
        stop: Arc<AtomicBool>,
        bell: Arc<Doorbell>,
        mailbox: Mailbox,
    ) -> Forwarder {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Forwarder::with_parts(
            wal,
            cfg,
            stats,
            stop,
            bell,
            mailbox,
            Box::new(|db: &Influxdb| Box::new(Upstream::new(db)) as Box<dyn Sink>),
            Box::new(SystemClock),
            seed,
        )
    }

    /// A forwarder with its sink, clock and jitter seed given (the simulation).
    #[allow(clippy::too_many_arguments)]
    pub fn with_parts(
        wal: Wal,
        cfg: &Config,
        stats: Arc<Stats>,
        stop: Arc<AtomicBool>,
        bell: Arc<Doorbell>,
        mailbox: Mailbox,
        make_sink: MakeSink,
        clock: Box<dyn Clock>,
        seed: u64,
    ) -> Forwarder {
        let now = clock.now();
        Forwarder {
            wal,
            sink: make_sink(&cfg.influxdb),
            make_sink,
            influxdb: cfg.influxdb.clone(),
            retry: cfg.retry.clone(),
            policy: DrainPolicy::from_config(&cfg.performance),
            plan: Plan::from_config(&cfg.influxdb),
            scheduler: Scheduler::default(),
            mailbox,
            provision_at: cfg.influxdb.manage_retention.then_some(now),
            provision_failures: 0,
            warm: Arc::default(),
            warm_wants: Vec::new(),
            hot: crate::route::hot::HotTier::from_config(&cfg.lifecycle, Arc::default()),
            hot_seen: 0,
            degrade_headroom: degrading::degrade_headroom(&cfg.buffer),
            degrade_at: now,
            degrade_refusals_seen: 0,
            stats,
            stop,
            bell,
            destinations: Arc::new(Destinations::default()),
            backoff: HashMap::new(),
            max_lines_per_request: usize::MAX,
            since_live: 0,
            server_errors: HashMap::new(),
            probed: HashMap::new(),
            latest_written: HashMap::new(),
            heads: BTreeMap::new(),
            heads_loaded: false,
            heads_reload_at: now,
            next_gauges: now,
            clock,
            rng: seed | 1,
            reserve: None,
            reserve_retry_at: now,
            read_only_probe_at: now,
            paused_for_reader: false,
            over_quota_check_at: now,
            shrink_at: now,
            time_asked_at: None,
            prefetched: None,
        }
    }

    /// Read statements the forwarder has run on the buffer: its per-turn
    /// cost, which must not grow with the number of destinations.
    pub fn buffer_reads(&self) -> u64 {
        self.wal.reads()
    }

    /// Gives the forwarder the buffer's disk reserve: spent when a delete
    /// meets a full disk, made again here.
    pub fn with_reserve(mut self, r: Reserve) -> Forwarder {
        self.reserve = Some(r);
        self
    }

    /// While the reserve is spent: every `RESERVE_RETRY_SECS`, give the
    /// WAL's room back and make the reserve again (writes resume then).
    fn remake_reserve(&mut self) {
        let now = self.clock.now();
        let Some(r) = self.reserve.as_ref().filter(|r| r.is_missing()) else {
            return;
        };
        if now < self.reserve_retry_at {
            return;
        }
        self.reserve_retry_at = now + Duration::from_secs(RESERVE_RETRY_SECS);
        // Room for the reserve *and* for the WAL to grow again: the free
        // pages the drain left go back to the file system first (the vacuum
        // writes into the WAL's existing room: cutting the WAL first would
        // leave a full disk none, and the deletes wedged; CI's full-disk test
        // caught that), then the WAL is checkpointed and cut.
        if let Err(e) = self.wal.give_back_free_pages(0) {
            log::debug!("disk reserve: {e}");
        }
        if let Err(e) = self.wal.truncate_wal() {
            log::debug!("disk reserve: {e}");
        }
        match r.make() {
            Ok(()) => log::info!(
                "disk reserve made again ({} bytes at {}); writes are accepted again",
                r.bytes(),
                r.path().display()
            ),
            Err(e) => log::warn!(
                "disk reserve: cannot make it yet ({e}); writes stay refused, retrying in {RESERVE_RETRY_SECS} s"
            ),
        }
    }

    /// Shares the set of buffered destinations with ingest.
    pub fn with_destinations(mut self, d: Arc<Destinations>) -> Forwarder {
        self.destinations = d;
        self
    }

    /// Where the commit thread notes the warm tier's destinations.
    pub fn with_warm_destinations(
        mut self,
        w: Arc<crate::route::lifecycle::WarmDestinations>,
    ) -> Forwarder {
        self.warm = w;
        self
    }

    pub fn spawn(self) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("hissrv-forward".into())
            .spawn(move || self.run())
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Takes a config a reload left: upstream, credentials, packing, drain
    /// order and retention apply from the next request on.
    fn reconfigure(&mut self) {
        let Some(cfg) = self.mailbox.lock().ok().and_then(|mut m| m.take()) else {
            return;
        };
        self.sink = (self.make_sink)(&cfg.influxdb);
        self.prefetched = None;
        self.retry = cfg.retry.clone();
        self.policy = DrainPolicy::from_config(&cfg.performance);
        self.plan = Plan::from_config(&cfg.influxdb);
        self.provision_at = cfg.influxdb.manage_retention.then(|| self.clock.now());
        self.provision_failures = 0;
        self.influxdb = cfg.influxdb;
        // New address or credentials deserve a try now, not after the old
        // ones' back-off.
        self.backoff.clear();
        self.publish_failing();
        self.max_lines_per_request = usize::MAX;
        log::info!(
            "forwarder: new upstream settings in force ({})",
            self.influxdb.url
        );
    }

    fn run(mut self) {
        while !self.stopping() {
            match self.step() {
                Step::Worked => {}
                Step::Idle(until) => {
                    let now = Instant::now();
                    if until > now {
                        self.bell.wait(until - now);
                    }
                }
                Step::Backoff(until) => self.sleep_until(until),
            }
        }
        log::debug!("forwarder done");
    }

    /// One turn: reconfigure, provision, refresh gauges, then at most one
    /// pack delivered.
    pub fn step(&mut self) -> Step {
        self.reconfigure();
        self.provision();
        self.degrade_for_room();
        self.remake_reserve();
        let now = self.clock.now();
        if now >= self.next_gauges {
            self.refresh_gauges();
        }
        // (Gauges first: they matter most while something is wrong.)
        if let Some(until) = self.paused_read_only().or_else(|| self.paused_over_quota()) {
            return Step::Backoff(until);
        }
        if let Err(e) = self.update_heads() {
            log::error!("forwarder cannot read the buffer: {e}");
            self.stats.set_error(format!("cannot read the buffer: {e}"));
            return Step::Backoff(now + Duration::from_millis(IDLE_POLL_MS));
        }
        if self.heads.is_empty() {
            self.refresh_gauges();
            if now >= self.shrink_at {
                self.shrink_at = now + Duration::from_secs(SHRINK_EVERY_SECS);
                match self.wal.shrink(FREE_PAGES_KEPT) {
                    Ok(0) => {}
                    Ok(n) => {
                        log::info!("buffer drained: {n} free pages given back to the file system")
                    }
                    Err(e) => log::debug!("cannot give free pages back: {e}"),
                }
            }
            return Step::Idle(now + Duration::from_millis(IDLE_POLL_MS));
        }
        let heads: Vec<(i64, Destination)> = self.sorted_heads();
        let ready_at = |d: &Destination| self.backoff.get(d).map_or(now, |b| b.ready_at);
        let pick = self
            .scheduler
            .pick(&self.plan, &heads, |d| ready_at(d) <= now)
            .cloned();
        match pick {
            Some((head, dest)) => {
                let from = self.choose_lane(&dest, head);
                self.deliver(&dest, from);
                Step::Worked
            }
            None => {
                let mut next = heads.iter().map(|(_, d)| ready_at(d)).min().unwrap_or(now);
                // A spent reserve is made again on time, back-off or not.
                if self.reserve.as_ref().is_some_and(|r| r.is_missing()) {
                    next = next.min(self.reserve_retry_at);
                }
                // Wake for the gauges too, during a long back-off.
                Step::Backoff(
                    next.min(
                        self.next_gauges
                            .max(now + Duration::from_millis(MIN_RETRY_DELAY_MS)),
                    ),
                )
            }
        }
    }

    /// Where this request starts: the backlog's head, or on the live lane's
    /// turn the first live batch (when there is a backlog before it).
    fn choose_lane(&mut self, dest: &Destination, head: i64) -> i64 {
        if self.policy.live_every == 0 {
            return head;
        }
        self.since_live += 1;
        if self.since_live < self.policy.live_every {
            return head;
        }
        let since_ms = self.clock.record_ms() - self.policy.live_window_ms;
        match self.wal.first_since(dest, since_ms) {
            Ok(Some(live)) if live > head => {
                self.since_live = 0;
                live
            }
            _ => head,
        }
    }

    /// Whether the next turn of `dest` may be the live lane's: its turn is
    /// due and live data waits beyond `next` (what `choose_lane` will ask).
    /// A backlog pack read ahead would then wait a turn for nothing.
    pub(crate) fn live_lane_next(&self, dest: &Destination, next: i64) -> bool {
        if self.policy.live_every == 0 || self.since_live.saturating_add(1) < self.policy.live_every
        {
            return false;
        }
        let since_ms = self.clock.record_ms() - self.policy.live_window_ms;
        // In doubt, no prefetch: it only saves time.
        self.wal
            .first_since(dest, since_ms)
            .map_or(true, |live| live.is_some_and(|l| l > next))
    }

    /// Sleeps until `deadline`, waking early only to stop.
    fn sleep_until(&self, deadline: Instant) {
        loop {
            let now = Instant::now();
            if now >= deadline || self.stopping() {
                return;
            }
            self.bell.wait(deadline - now);
        }
    }
}

#[path = "forward_turn.rs"]
mod deliver_turn;

#[path = "forward_disk.rs"]
mod disk;

#[path = "forward_provision.rs"]
mod provisioning;

#[path = "forward_degrade.rs"]
mod degrading;
