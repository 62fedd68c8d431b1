//! Wiring and lifecycle: opens the buffer, starts the commit and forwarder
//! threads, runs the listeners and the batcher on one smol executor, and stops
//! in order when `shutdown` fires.
//!
//! Stop sequence (bounded by `service.shutdown_timeout_ms`):
//! 1. close the listeners: no new connections, no new datagrams;
//! 2. refuse new writes on open connections (503), let the batcher move all
//!    that the ring holds into the buffer, and answer the requests waiting for
//!    that commit;
//! 3. stop the forwarder after its request in flight (a batch interrupted
//!    mid-delivery stays in the buffer and is sent again next start);
//! 4. return. Anything past the deadline is abandoned, never half-stored: a
//!    point is either committed (and acknowledged) or its producer got no 204.

use crate::app::reload::Reloader;
use crate::batch::adaptive::CutPolicy;
use crate::batch::{Intake, run_batcher, spawn_committer};
use crate::config::Config;
use crate::deliver::forward::{Forwarder, Mailbox};
use crate::ingest::server::{InFlight, serve_http, serve_udp};
use crate::ingest::{Ingest, Settings};
use crate::observe::stats::Stats;
use crate::wal::doorbell::Doorbell;
use crate::wal::reserve::Reserve;
use crate::wal::{Wal, WalError};
use smol::LocalExecutor;
use smol::channel::Receiver;
use smol::net::{TcpListener, UdpSocket};
use std::error::Error;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the stop sequence looks at what is still running.
const STOP_POLL_MS: u64 = 10;

fn ring_bytes(ring_buffer_mb: u64, quota_bytes: u64) -> usize {
    let configured = ring_buffer_mb.saturating_mul(1024 * 1024);
    let limit = quota_bytes / crate::config::RING_QUOTA_SHARE;
    if configured > limit {
        log::warn!(
            "memory rings and the largest body limited to {limit} bytes (a quarter of buffer.max_size_mb) instead of performance.ring_buffer_mb / service.max_body_mb: a larger write could never be committed"
        );
    }
    configured.min(limit) as usize
}

/// Runs the agent until `shutdown` yields (or its sender is dropped). With a
/// config file, `path` is watched and `hup` (SIGHUP) reloads it.
pub fn run(
    cfg: Config,
    path: Option<PathBuf>,
    shutdown: Receiver<()>,
    hup: Receiver<()>,
) -> Result<(), Box<dyn Error>> {
    // Record time starts with the agent (ages count from here at least).
    let _ = crate::clock::record_ms();
    // Nothing touches the buffer before this agent owns it.
    let _lock = crate::wal::lock::BufferLock::acquire(&cfg.buffer.path)?;
    // The listeners are bound before any delivery starts: an agent that
    // cannot listen must not have sent anything.
    let s = &cfg.service;
    let std_listener = std::net::TcpListener::bind(s.http_listen.as_str())
        .map_err(|e| format!("cannot listen on {}: {e}", s.http_listen))?;
    let std_udp = if s.udp_listen.is_empty() {
        None
    } else {
        Some(
            std::net::UdpSocket::bind(s.udp_listen.as_str())
                .map_err(|e| format!("cannot listen on udp {}: {e}", s.udp_listen))?,
        )
    };
    let quota = cfg.buffer.max_size_mb * 1024 * 1024;
    let stats = Arc::new(Stats::default());
    let reserve = Reserve::for_buffer(&cfg.buffer.path, quota, stats.disk_reserve_missing.clone());
    // Both connections commit, and each checkpoints by its own setting.
    let open = || -> Result<Wal, WalError> {
        let wal = Wal::open(&cfg.buffer.path, cfg.buffer.synchronous, quota)?;
        wal.size_checkpoints_to_reserve(reserve.bytes())?;
        Ok(wal)
    };
    let mut writer = match open() {
        // A disk so full that SQLite cannot even open the buffer (its -shm,
        // a WAL replay): the reserve is for exactly this.
        Err(e @ (WalError::DiskFull | WalError::Sqlite(_))) if reserve.path().exists() => {
            log::warn!("cannot open the buffer ({e}): releasing the disk reserve and trying again");
            let _ = reserve.release();
            open()?
        }
        other => other?,
    };
    writer.set_format(crate::wal::codec::format_for(&cfg.performance.compression));
    writer.refuse_writes_while(stats.disk_reserve_missing.clone());
    // The windows the last run left (its checkpoint and the batches after
    // it), before any new commit, and before the forwarder may degrade what
    // they hold (a start that drops windows unmarks their batches first).
    let warm_destinations = Arc::new(crate::route::lifecycle::WarmDestinations::default());
    let warm = crate::batch::warm::WarmTier::start(
        &cfg.lifecycle,
        &mut writer,
        &stats,
        warm_destinations.clone(),
    );
    // Warm destinations of earlier runs too: aggregates still buffered for
    // a rule since removed are never taken for a hot tier's raw points.
    match writer.warm_destinations() {
        Ok(known) => (known.iter()).for_each(|(d, r)| warm_destinations.note(d, *r)),
        Err(e) => log::warn!("cannot read the warm destinations of earlier runs: {e}"),
    }
    let mut reader = open()?;
    reader.set_dead_letter_share(cfg.buffer.max_dead_letters_percent);
    match reader.backlog() {
        Ok(b) if b.batches > 0 => log::info!(
            "buffer {} holds {} points in {} batches from before; delivering them first",
            cfg.buffer.path.display(),
            b.points,
            b.batches
        ),
        Ok(_) => {}
        Err(e) => log::warn!("cannot read the backlog: {e}"),
    }
    if let Err(e) = reserve.make() {
        log::error!(
            "cannot make the {}-byte disk reserve {} ({e}): writes are refused until there is room",
            reserve.bytes(),
            reserve.path().display()
        );
    }
    log::info!(
        "disk reserve {} bytes; WAL checkpoints every {} pages",
        reserve.bytes(),
        reader.checkpoint_pages().unwrap_or(0)
    );
    // The cold archive: its own connection and thread, beside the forwarder.
    let stop_archiver = Arc::new(AtomicBool::new(false));
    let archive_live = crate::archive::s3::LiveSettings::shared(&cfg.lifecycle.archive.s3);
    let spool = PathBuf::from(format!("{}-archive", cfg.buffer.path.display()));
    let archiver = match crate::archive::archiver::Archiver::new(
        open()?,
        &cfg.lifecycle,
        stats.clone(),
        &spool,
        &archive_live,
    )? {
        Some(a) => Some(a.spawn(stop_archiver.clone())?),
        None => None,
    };
    let destinations = Arc::new(crate::route::dest::Destinations::default());
    let bell = Arc::new(Doorbell::default());
    let stop_forwarder = Arc::new(AtomicBool::new(false));
    let mailbox = Mailbox::default();
    let forwarder = Forwarder::new(
        reader,
        &cfg,
        stats.clone(),
        stop_forwarder.clone(),
        bell.clone(),
        mailbox.clone(),
    )
    .with_destinations(destinations.clone())
    .with_warm_destinations(warm_destinations.clone())
    .with_reserve(reserve)
    .spawn()?;
    let ring_bytes = ring_bytes(cfg.performance.ring_buffer_mb, quota);
    let policy = CutPolicy::from_config(&cfg.performance.adaptive_batching);
    let intake = Rc::new(Intake::new(ring_bytes, policy, stats.clone()));
    let (to_commit, cuts) = smol::channel::bounded(1);

    let committer = spawn_committer(
        writer,
        cuts,
        stats.clone(),
        bell.clone(),
        intake.waker(),
        warm,
        crate::batch::cold::ColdTier::from_config(&cfg.lifecycle),
    )?;
    let deadline = Rc::new(std::cell::Cell::new(None));

    let ex = Rc::new(LocalExecutor::new());
    let cfg = Rc::new(cfg);
    let result: Result<(), Box<dyn Error>> = smol::block_on(ex.run({
        let ex = ex.clone();
        let deadline = deadline.clone();
        let stats = stats.clone();
        let bell = bell.clone();
        async move {
            let s = &cfg.service;
            let listener = TcpListener::try_from(std_listener)?;
            let udp = std_udp.map(UdpSocket::try_from).transpose()?;
            log::info!(
                "hissrv {} listening on http://{} (udp: {}), buffer {}, upstream {} ({:?})",
                env!("CARGO_PKG_VERSION"),
                listener.local_addr()?,
                if s.udp_listen.is_empty() { "off" } else { &s.udp_listen },
                cfg.buffer.path.display(),
                cfg.influxdb.url,
                cfg.influxdb.api
            );
            let ingest = Rc::new(Ingest::new(
                intake.clone(),
                Settings::new((*cfg).clone()),
                stats.clone(),
            )
            .with_destinations(destinations.clone()));
            let in_flight = Rc::new(InFlight::default());
            let (close_listeners, listeners_closed) = smol::channel::bounded::<()>(1);
            let http = ex.spawn(serve_http(
                ex.clone(),
                listener,
                ingest.clone(),
                in_flight.clone(),
                listeners_closed.clone(),
            ));
            let selfmon = &cfg.service.self_monitoring;
            let selfmon = selfmon.enabled.then(|| {
                ex.spawn(crate::ingest::selfmon::run(
                    ingest.clone(),
                    Duration::from_millis(selfmon.interval_ms),
                    listeners_closed.clone(),
                ))
            });
            let reloader = path.map(|path| {
                let r = Reloader {
                    path,
                    started: (*cfg).clone(),
                    ingest: ingest.clone(),
                    intake: intake.clone(),
                    mailbox,
                    bell: bell.clone(),
                    stats: stats.clone(),
                    archive_live: archive_live.clone(),
                };
                ex.spawn(r.run(hup, listeners_closed.clone()))
            });
            let udp = udp.map(|u| ex.spawn(serve_udp(u, ingest.clone(), listeners_closed)));
            let batcher = ex.spawn({
                let intake = intake.clone();
                async move { run_batcher(&intake, to_commit).await }
            });

            let _ = shutdown.recv().await;
            let until = Instant::now() + Duration::from_millis(s.shutdown_timeout_ms);
            deadline.set(Some(until));
            log::info!("stopping: listeners closed, committing what is in memory");
            drop(close_listeners);
            http.await;
            if let Some(u) = udp {
                u.await;
            }
            if let Some(m) = selfmon {
                m.await;
            }
            if let Some(r) = reloader {
                r.await;
            }
            intake.stop();
            let timeout = async {
                smol::Timer::at(until).await;
            };
            smol::future::or(batcher, timeout).await;
            while in_flight.count() > 0 && Instant::now() < until {
                smol::Timer::after(Duration::from_millis(STOP_POLL_MS)).await;
            }
            if !intake.ring.borrow().is_empty() || in_flight.count() > 0 {
                log::warn!(
                    "shutdown deadline passed: {} write requests get no answer ({} points still in the rings, the rest in a commit that did not finish); their producers got no 204 and will retry",
                    in_flight.count(),
                    intake.ring.borrow().points()
                );
            }
            Ok(())
        }
    }));
    // The executor and its tasks are gone: the commit channel is closed, so
    // the commit thread ends after the cut it may be committing.
    drop(ex);
    stop_forwarder.store(true, Ordering::Relaxed);
    stop_archiver.store(true, Ordering::Relaxed);
    bell.ring();
    let until = deadline
        .get()
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
    let threads = [
        ("commit", Some(committer)),
        ("forwarder", Some(forwarder)),
        ("archive", archiver),
    ];
    for (name, handle) in threads.into_iter().filter_map(|(n, h)| Some((n, h?))) {
        while !handle.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(STOP_POLL_MS));
        }
        if handle.is_finished() {
            if handle.join().is_err() {
                log::error!("{name} thread panicked");
            }
        } else {
            log::warn!("{name} thread still busy at the shutdown deadline; abandoning it");
        }
    }
    log::info!(
        "stopped: {} points committed, {} written upstream this run",
        Stats::get(&stats.points_committed),
        Stats::get(&stats.points_written)
    );
    result
}
