//! The forwarder's `manage_retention` turns: when to (re)create the buckets
//! and the lifecycle tiers' destinations upstream (`provision.rs` says how),
//! backing off on failures as deliveries do. A warm destination is
//! provisioned once a delivery finds it missing, if the commit thread named
//! it one (`WarmDestinations`, exact names): its database is the raw
//! points', which producers name. A hot destination (`route/hot.rs`) as
//! soon as the commit thread names it, before any batch of it is read: its
//! retention is `hot_days`, and points older than it are expired (dead
//! letters, counted apart) as a bucket's are.

use super::Forwarder;
use crate::deliver::drain::BucketInfo;
use crate::deliver::provision::{ProvisionError, Want};
use crate::observe::stats::Stats;
use crate::route::dest::Destination;
use crate::route::hot::HotDestinations;
use std::sync::Arc;
use std::time::Duration;

const NS: i64 = 1_000_000_000;

impl Forwarder {
    /// A delivery found `dest` missing upstream: provision now (unless a
    /// retry is already planned), `dest` too when it is a warm tier's.
    pub(crate) fn missing(&mut self, dest: &Destination) {
        if let Some(retention_s) = self.warm.retention_of(dest) {
            let want = Want {
                dest: dest.clone(),
                retention_s,
            };
            if !self.warm_wants.contains(&want) {
                log::info!(
                    "manage_retention: warm destination {}.{} missing upstream: creating it",
                    dest.db,
                    dest.rp
                );
                self.warm_wants.push(want);
            }
        }
        if self.provision_at.is_none() {
            self.provision_at = Some(self.clock.now());
        }
    }

    /// Where the commit thread notes the hot tier's destinations.
    pub fn with_hot_destinations(mut self, h: Arc<HotDestinations>) -> Forwarder {
        self.hot = h;
        self
    }

    /// The retention a delivery to `dest` expires points by: its bucket's,
    /// else its hot tier's (then `true`).
    pub(super) fn retention_of(&self, dest: &Destination) -> Option<(BucketInfo, bool)> {
        if let Some(b) = self.plan.bucket(dest) {
            return Some((b.clone(), false));
        }
        let retention_s = self.hot.retention_of(dest)??;
        let info = BucketInfo {
            name: format!("{} (lifecycle hot_days)", dest.bucket()),
            priority: 0,
            retention_ns: Some(
                i64::try_from(retention_s)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(NS),
            ),
        };
        Some((info, true))
    }

    /// The warm destinations found missing and the hot ones, each with the
    /// longer retention when it is both; a bucket keeps its own (`ensure`).
    fn retention_wants(&self) -> Vec<Want> {
        let mut wants = self.warm_wants.clone();
        for (dest, retention_s) in self.hot.all() {
            if let Some(b) = self.plan.bucket(&dest) {
                let hot_ns =
                    retention_s.map(|s| i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(NS));
                if b.retention_ns != hot_ns {
                    log::warn!(
                        "manage_retention: bucket {:?} keeps its own retention; lifecycle hot_days of the rules writing there is overridden",
                        b.name
                    );
                }
                continue;
            }
            match wants.iter_mut().find(|w| w.dest == dest) {
                Some(w) => w.retention_s = w.retention_s.zip(retention_s).map(|(a, b)| a.max(b)),
                None => wants.push(Want { dest, retention_s }),
            }
        }
        wants
    }

    /// `manage_retention`: creates or adjusts the buckets upstream when due,
    /// and at once when the commit thread names a new hot destination.
    pub(super) fn provision(&mut self) {
        let generation = self.hot.generation();
        if generation != self.hot_seen && self.influxdb.manage_retention {
            self.hot_seen = generation;
            self.provision_at.get_or_insert(self.clock.now());
        }
        if self.provision_at.is_none_or(|t| t > self.clock.now()) {
            return;
        }
        match self
            .sink
            .ensure_retention(&self.influxdb, &self.retention_wants())
        {
            Ok(changes) => {
                for c in &changes {
                    log::info!("upstream: {c}");
                }
                self.provision_at = None;
                self.provision_failures = 0;
            }
            Err(e) => {
                Stats::add(&self.stats.provision_failures, 1);
                self.stats.set_error(format!("manage_retention: {e}"));
                self.provision_failures = self.provision_failures.saturating_add(1);
                let delay = match e {
                    // The operator must grant rights: ask again at the slowest pace.
                    ProvisionError::Forbidden(_) | ProvisionError::Failed(_) => {
                        log::error!(
                            "manage_retention: {e}; delivering to what exists, retrying later"
                        );
                        Duration::from_millis(self.retry.max_backoff_ms)
                    }
                    ProvisionError::Unreachable(_) => {
                        log::warn!("manage_retention: {e}");
                        self.jittered_backoff(self.provision_failures)
                    }
                };
                self.provision_at = Some(self.clock.now() + delay);
            }
        }
    }
}
