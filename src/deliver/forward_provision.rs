//! The forwarder's `manage_retention` turns: when to (re)create the buckets
//! and the warm tier's destinations upstream (`provision.rs` says how),
//! backing off on failures as deliveries do. A warm destination is
//! provisioned once a delivery finds it missing, if the commit thread named
//! it one (`WarmDestinations`, exact names): its database is the raw
//! points', which producers name.

use super::Forwarder;
use crate::deliver::provision::ProvisionError;
use crate::observe::stats::Stats;
use crate::route::dest::Destination;
use std::time::Duration;

impl Forwarder {
    /// A delivery found `dest` missing upstream: provision now (unless a
    /// retry is already planned), `dest` too when it is a warm tier's.
    pub(crate) fn missing(&mut self, dest: &Destination) {
        if let Some(retention_s) = self.warm.retention_of(dest) {
            let want = crate::deliver::provision::Want {
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

    /// `manage_retention`: creates or adjusts the buckets upstream when due.
    pub(super) fn provision(&mut self) {
        if self.provision_at.is_none_or(|t| t > self.clock.now()) {
            return;
        }
        match self.sink.ensure_retention(&self.influxdb, &self.warm_wants) {
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
