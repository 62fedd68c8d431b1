//! Config hot reload: the file is watched (its mtime and size polled every
//! `service.config_poll_ms`) and `SIGHUP` reloads it at once.
//!
//! A new file is read and validated in full (the same [`Config::load`] as at
//! start). An invalid one is refused whole: the running config stays, the
//! error is logged and shown in `/health` (`config_error`), `hissrv status`
//! and `hissrv_config_reloads_total{result="refused"}`.
//!
//! A valid one is put in force at once, for everything that can change live:
//! - on the executor: routing rules, auth, UDP precision, batching knobs,
//!   the log level (one [`Settings`] swap: a request in progress finishes
//!   with the settings it started with, the next one uses the new);
//! - on the forwarder (through its mailbox, at its next request): upstream
//!   URL, API and credentials, packing, backlog replay, retry, drain
//!   priorities, retention (and `manage_retention` runs again);
//! - on the archiver (at its next request): the S3 keys and TLS files of
//!   `lifecycle.archive.s3` (a corrected secret or a renewed certificate
//!   uploads the backlog).
//!
//! Settings read only at start — listen addresses, connection and body
//! limits, self-monitoring, the ring size, the buffer file and its
//! durability, storage compression, the shutdown bound — keep their running
//! values; a changed one is logged and listed in `/health`
//! (`restart_needed`) until the agent restarts.
//!
//! Invariant: a reload never touches what is already buffered. Stored batches
//! keep the destination they were routed to when they arrived.

use crate::batch::Intake;
use crate::batch::adaptive::CutPolicy;
use crate::config::Config;
use crate::deliver::forward::Mailbox;
use crate::ingest::{Ingest, Settings};
use crate::observe::stats::Stats;
use crate::wal::doorbell::Doorbell;
use smol::channel::Receiver;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

/// What the reloader needs from the rest of the agent.
pub struct Reloader {
    pub path: PathBuf,
    /// The config the agent started with: restart-only settings stay as here.
    pub started: Config,
    pub ingest: Rc<Ingest>,
    pub intake: Rc<Intake>,
    pub mailbox: Mailbox,
    pub bell: Arc<Doorbell>,
    pub stats: Arc<Stats>,
    /// The archiver's S3 keys and TLS settings (live).
    pub archive_live: crate::archive::s3::LiveS3,
}

/// Copies the restart-only settings of `started` into `new`; returns the keys
/// that differed (they need a restart).
pub fn keep_restart_only(started: &Config, new: &mut Config) -> Vec<String> {
    let mut changed = Vec::new();
    // The S3 keys and TLS files are live; the rest of `lifecycle` is
    // compared without them.
    let keys = new.lifecycle.archive.s3.credentials.clone();
    let tls = new.lifecycle.archive.s3.tls.clone();
    new.lifecycle.archive.s3.credentials = started.lifecycle.archive.s3.credentials.clone();
    new.lifecycle.archive.s3.tls = started.lifecycle.archive.s3.tls.clone();
    macro_rules! keep {
        ($($key:literal => $($f:ident).+;)*) => {$(
            if new.$($f).+ != started.$($f).+ {
                changed.push($key.to_string());
                new.$($f).+ = started.$($f).+.clone();
            }
        )*};
    }
    keep! {
        "service.http_listen" => service.http_listen;
        "service.udp_listen" => service.udp_listen;
        "service.max_connections" => service.max_connections;
        "service.max_body_mb" => service.max_body_mb;
        "service.max_inflight_body_mb" => service.max_inflight_body_mb;
        "service.shutdown_timeout_ms" => service.shutdown_timeout_ms;
        "service.config_poll_ms" => service.config_poll_ms;
        "service.self_monitoring.enabled" => service.self_monitoring.enabled;
        "service.self_monitoring.interval_ms" => service.self_monitoring.interval_ms;
        "performance.ring_buffer_mb" => performance.ring_buffer_mb;
        "performance.compression.enabled" => performance.compression.enabled;
        "performance.compression.algorithm" => performance.compression.algorithm;
        "buffer.path" => buffer.path;
        "buffer.synchronous" => buffer.synchronous;
        "buffer.max_size_mb" => buffer.max_size_mb;
        "buffer.max_dead_letters_percent" => buffer.max_dead_letters_percent;
        "buffer.when_full" => buffer.when_full;
        // The commit thread's windows are built from the rules at start
        // (lanes by rule identity, restored from the buffer): a changed rule
        // set is applied by the restore of the next start.
        "lifecycle" => lifecycle;
    }
    new.lifecycle.archive.s3.credentials = keys;
    new.lifecycle.archive.s3.tls = tls;
    changed
}

/// The file's identity for the watch: a change of either means "reload".
fn stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Puts the log level in force (the logger itself passes everything).
pub fn set_log_level(level: &str) {
    log::set_max_level(level.parse().unwrap_or(log::LevelFilter::Info));
}

impl Reloader {
    /// Watches until `stop` closes.
    pub async fn run(self, hup: Receiver<()>, stop: Receiver<()>) {
        let poll = Duration::from_millis(self.started.service.config_poll_ms);
        let mut seen = stamp(&self.path);
        // The YAML of what is in force, to tell a real change from a touch.
        let mut in_force = in_force_text(&self.started);
        loop {
            enum Wake {
                Poll,
                Hup,
                Stop,
            }
            let tick = async {
                if poll.is_zero() {
                    std::future::pending::<()>().await;
                }
                smol::Timer::after(poll).await;
                Wake::Poll
            };
            let hup = async {
                match hup.recv().await {
                    Ok(()) => Wake::Hup,
                    Err(_) => std::future::pending().await,
                }
            };
            let stopped = async {
                let _ = stop.recv().await;
                Wake::Stop
            };
            match smol::future::or(stopped, smol::future::or(hup, tick)).await {
                Wake::Stop => return,
                Wake::Hup => log::info!("SIGHUP: reloading {}", self.path.display()),
                Wake::Poll => {
                    let now = stamp(&self.path);
                    if now.is_none() || now == seen {
                        continue;
                    }
                    log::info!("{} changed: reloading", self.path.display());
                }
            }
            seen = stamp(&self.path);
            self.reload(&mut in_force);
        }
    }

    /// Reads, validates and applies the file (module doc).
    pub fn reload(&self, in_force: &mut String) {
        let loaded = Config::load(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|c| crate::tls::check_files(&c).map(|_| c));
        let mut new = match loaded {
            Ok(c) => c,
            Err(e) => {
                Stats::add(&self.stats.config_reload_failures, 1);
                log::error!("config reload refused, the running config stays: {e}");
                if let Ok(mut slot) = self.stats.config_error.lock() {
                    *slot = e.to_string();
                }
                return;
            }
        };
        let restart = keep_restart_only(&self.started, &mut new);
        if let Ok(mut slot) = self.stats.config_error.lock() {
            slot.clear();
        }
        if !restart.is_empty() {
            log::warn!(
                "config: {} changed; in force after a restart",
                restart.join(", ")
            );
        }
        if let Ok(mut slot) = self.stats.restart_needed.lock() {
            *slot = restart;
        }
        let yaml = in_force_text(&new);
        if yaml == *in_force {
            log::info!("config reloaded: nothing to change");
            return;
        }
        *in_force = yaml;
        set_log_level(&new.service.log_level);
        self.intake
            .set_policy(CutPolicy::from_config(&new.performance.adaptive_batching));
        if let Ok(mut m) = self.mailbox.lock() {
            *m = Some(new.clone());
        }
        if let Ok(mut live) = self.archive_live.lock() {
            let s3 = &new.lifecycle.archive.s3;
            if live.keys != s3.credentials {
                log::info!("archive: S3 keys reloaded; in force at the next upload");
            }
            live.keys = s3.credentials.clone();
            // The files read now, just checked (`check_files`): a new client
            // at the next upload, as renewed files under the same names
            // change the in-force text too.
            live.tls = crate::archive::s3::ClientTls::of(&s3.tls);
            live.generation = live.generation.wrapping_add(1);
        }
        self.bell.ring();
        self.ingest.apply(Settings::new(new));
        self.stats.config_reloads.fetch_add(1, Relaxed);
        log::info!(
            "config reloaded from {}: new settings in force",
            self.path.display()
        );
    }
}

/// What is in force: the settings, and the identity (size, modification
/// time) of the TLS files they name, so that renewed certificates under the
/// same names are a change (and an unchanged reload is not: a reload resets
/// the forwarder's back-off).
fn in_force_text(cfg: &Config) -> String {
    let mut text = serde_norway::to_string(cfg).unwrap_or_default();
    let (t, s) = (&cfg.influxdb.tls, &cfg.lifecycle.archive.s3.tls);
    for f in [&t.ca_file, &t.client_cert, &t.client_key]
        .into_iter()
        .chain([&s.ca_file, &s.client_cert, &s.client_key])
    {
        if f.is_empty() {
            continue;
        }
        let stamp = std::fs::metadata(f).ok().map(|m| {
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            (m.len(), modified)
        });
        text.push_str(&format!("\n# {f}: {stamp:?}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_only_settings_keep_their_running_values_and_are_reported() {
        let started = Config::default();
        let mut new = Config::from_yaml(
            "service: {http_listen: '127.0.0.1:9999', log_level: debug}\nbuffer: {path: /elsewhere.db}\n",
        )
        .unwrap();
        let changed = keep_restart_only(&started, &mut new);
        assert_eq!(changed, vec!["service.http_listen", "buffer.path"]);
        assert_eq!(new.service.http_listen, started.service.http_listen);
        assert_eq!(new.buffer.path, started.buffer.path);
        assert_eq!(new.service.log_level, "debug", "live settings change");
    }

    #[test]
    fn the_destination_cap_is_live_and_the_dead_letter_share_and_lifecycle_need_a_restart() {
        let started = Config::default();
        let mut new = Config::from_yaml(
            "service: {max_destinations: 9, udp_allow_unauthenticated: true}
buffer: {max_dead_letters_percent: 20}
lifecycle: {rules: [{measurement: m, downsample: 5m}]}
",
        )
        .unwrap();
        let changed = keep_restart_only(&started, &mut new);
        assert_eq!(
            changed,
            vec!["buffer.max_dead_letters_percent", "lifecycle"]
        );
        assert!(
            new.lifecycle.rules.is_empty(),
            "the rules of the start stay"
        );
        assert_eq!(new.service.max_destinations, 9);
        assert!(new.service.udp_allow_unauthenticated);
        assert_eq!(new.buffer.max_dead_letters_percent, 10);
    }

    #[test]
    fn s3_keys_and_tls_are_live_and_the_rest_of_the_archive_needs_a_restart() {
        let started = Config::default();
        let mut new = Config::from_yaml(
            "lifecycle: {archive: {s3: {access_key_id: AK, secret_access_key: fixed, tls: {insecure_skip_verify: true}}}}",
        )
        .unwrap();
        assert!(keep_restart_only(&started, &mut new).is_empty());
        assert_eq!(
            new.lifecycle.archive.s3.credentials.secret_access_key,
            "fixed"
        );
        assert!(new.lifecycle.archive.s3.tls.insecure_skip_verify, "live");
        let mut new = Config::from_yaml(
            "lifecycle: {archive: {s3: {region: eu-west-1, secret_access_key: fixed}}}",
        )
        .unwrap();
        assert_eq!(keep_restart_only(&started, &mut new), vec!["lifecycle"]);
        assert_eq!(new.lifecycle.archive.s3.region, "us-east-1", "kept");
        assert_eq!(
            new.lifecycle.archive.s3.credentials.secret_access_key, "fixed",
            "the keys still live"
        );
    }
}
