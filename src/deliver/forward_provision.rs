//! The forwarder's `manage_retention` turns: when to (re)create the buckets
//! and the lifecycle tiers' destinations upstream (`provision.rs` says how),
//! backing off on failures as deliveries do. A warm destination is
//! provisioned once a delivery finds it missing, if the commit thread named
//! it one (`WarmDestinations`, exact names): its database is the raw
//! points', which producers name. A hot destination (`route/hot.rs`) as
//! soon as a batch of it is read, before it is sent: its retention is
//! `hot_days`, and points older than it are expired (dead letters, counted
//! apart) as a bucket's are.

use super::Forwarder;
use crate::deliver::drain::BucketInfo;
use crate::deliver::provision::{ProvisionError, Want};
use crate::observe::stats::Stats;
use crate::route::dest::Destination;
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

    /// Notes the hot destination `dest` of a pack about to be delivered
    /// (`route/hot.rs`): read by the forwarder, so that backlog committed
    /// before a restart is known too, and a refused commit never is (both
    /// found in review when the commit thread noted them).
    /// A warm destination's batches are aggregates, never raw points: not
    /// hot, whatever their measurement (the warm tier notes its
    /// destinations before it emits to them, and at start for every lane
    /// it restores).
    pub(super) fn note_hot(&mut self, dest: &Destination, pack: &[crate::wal::StoredBatch]) {
        if self.warm.retention_of(dest).is_some() {
            return;
        }
        if let Some(h) = self.hot.as_mut() {
            for b in pack {
                h.note(dest, &b.payload);
            }
        }
        // A new hot destination: its policy set (and on 1.x the default
        // policy found) before this pack is judged and sent, not after.
        self.provision();
    }

    /// The retention a delivery to `dest` expires points by: its bucket's,
    /// else its hot tier's (then `true`), the longest of those naming its
    /// upstream policy. On 1.x a destination without a policy is the
    /// database's default one, as provisioning found it (found in review:
    /// taken for `autogen`, points a bucket on another default kept were
    /// expired); before that is known, no hot expiry for it.
    pub(super) fn retention_of(&self, dest: &Destination) -> Option<(BucketInfo, bool)> {
        if let Some(b) = self.plan.bucket(dest) {
            return Some((b.clone(), false));
        }
        let v1 = self.influxdb.api == crate::config::ApiVersion::V1;
        let policy = |d: &Destination| match v1 && d.rp.is_empty() {
            true => self.sink.default_policy(&d.db),
            false => Some(d.rp.clone()),
        };
        let mine = policy(dest)?;
        let named = Destination {
            db: dest.db.clone(),
            rp: mine.clone(),
        };
        if let Some(b) = self.plan.bucket(&named) {
            return Some((b.clone(), false));
        }
        let retention_s = (self.hot.as_ref()?.registry())
            .longest_where(|d| d.db == dest.db && policy(d).as_ref() == Some(&mine))??;
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

    /// The warm destinations found missing and the hot ones (`ensure`
    /// merges those naming one policy, buckets first).
    fn retention_wants(&self) -> Vec<Want> {
        let mut wants = self.warm_wants.clone();
        if let Some(h) = &self.hot {
            let hot = h.registry().all().into_iter();
            wants.extend(hot.map(|(dest, retention_s)| Want { dest, retention_s }));
        }
        wants
    }

    /// `manage_retention`: creates or adjusts the buckets upstream when due,
    /// and at once when a new hot destination is noted.
    pub(super) fn provision(&mut self) {
        let generation = (self.hot.as_ref()).map_or(0, |h| h.registry().generation());
        if generation != self.hot_seen && self.influxdb.manage_retention {
            // A new hot destination is provisioned now, whatever later try
            // a failure planned (another database's refusal must not let
            // this one's old backlog through unjudged; third review). As
            // often as destinations are new: bounded.
            self.hot_seen = generation;
            self.provision_at = Some(self.clock.now());
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
