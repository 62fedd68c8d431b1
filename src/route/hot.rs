//! The hot tier (`lifecycle.rules[].hot_days`): how long raw points stay
//! upstream. Raw points go where routing sends them, as without a rule; the
//! destinations a rule's points are written to get its `hot_days` as their
//! retention (1.x retention policy, the database's default one for points
//! written without a policy; 2.x bucket), set by `manage_retention`
//! (`deliver/provision.rs`), which the config requires with `hot_days`.
//!
//! Which destinations: those the rule's points are delivered to, as the
//! forwarder reads their batches (`HotTier::note`, before a pack is sent or
//! expired). Not guessed from the config: a rule's measurement glob and the
//! buckets' rules cross in ways only the points tell. Not noted at commit:
//! backlog from before a restart would go unnoted, and a refused commit
//! would make a destination of nothing stored hot (both found in review).
//!
//! A retention is an upstream policy's, not a measurement's: every point
//! there lives as long. So (`provision::ensure` merges the wants):
//! - two rules whose points share a policy (on 1.x `rp=autogen` and no
//!   `rp` are one): the longest `hot_days` wins (never a point dropped
//!   sooner than a rule asks);
//! - a bucket of `influxdb.sharding` keeps the `retention` the operator gave
//!   it, the rule's `hot_days` logged as overridden;
//! - points of no rule in that policy live as long as the rule's.
//!
//! Backlog older than the hot retention at delivery is not sent: it becomes
//! dead letters (`expired`, exportable) as a bucket's are, counted apart
//! (`hissrv_hot_points_expired_total`); with `downsample`, its aggregates are
//! in the warm tier already.

use crate::config::Lifecycle;
use crate::route::dest::Destination;
use crate::route::lifecycle::{LifecycleRules, series_key};
use portable_atomic::AtomicU64;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

/// The hot destinations and their retention (seconds; `None`: for ever),
/// noted and read by the forwarder (provisioning, expiry); shared, so that
/// others may show them.
#[derive(Debug, Default)]
pub struct HotDestinations {
    known: Mutex<HashMap<Destination, Option<u64>>>,
    /// Bumped at each change: the forwarder provisions again when it moves.
    generation: AtomicU64,
}

/// The longer of two retentions (`None`, for ever, is the longest).
fn longer(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    a.zip(b).map(|(a, b)| a.max(b))
}

impl HotDestinations {
    /// `dest` holds points of a rule keeping them `retention_s`.
    pub fn note(&self, dest: &Destination, retention_s: Option<u64>) {
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        let before = known.get(dest).copied();
        let after = before.map_or(retention_s, |b| longer(b, retention_s));
        if before != Some(after) {
            known.insert(dest.clone(), after);
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// `Some(retention)` when `dest` is a hot destination.
    pub fn retention_of(&self, dest: &Destination) -> Option<Option<u64>> {
        self.known.lock().ok()?.get(dest).copied()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The longest retention of the hot destinations `which` takes;
    /// `None`: none.
    pub fn longest_where(&self, which: impl Fn(&Destination) -> bool) -> Option<Option<u64>> {
        let known = self.known.lock().ok()?;
        (known.iter())
            .filter(|(d, _)| which(d))
            .map(|(_, r)| *r)
            .reduce(longer)
    }

    /// Every hot destination with its retention, in no order.
    pub fn all(&self) -> Vec<(Destination, Option<u64>)> {
        (self.known.lock().ok())
            .map(|k| k.iter().map(|(d, r)| (d.clone(), *r)).collect())
            .unwrap_or_default()
    }
}

/// Which rules' points each batch read holds.
pub struct HotTier {
    rules: LifecycleRules,
    /// Per destination, the rules already noted for it: once all are, its
    /// batches are not read again.
    noted: HashMap<Destination, Vec<bool>>,
    registry: std::sync::Arc<HotDestinations>,
    matches: Vec<usize>,
}

impl HotTier {
    /// `None` when no rule gives `hot_days`.
    pub fn from_config(
        l: &Lifecycle,
        registry: std::sync::Arc<HotDestinations>,
    ) -> Option<HotTier> {
        let rules = LifecycleRules::hot(l);
        (!rules.is_empty()).then(|| HotTier {
            rules,
            noted: HashMap::new(),
            registry,
            matches: Vec::new(),
        })
    }

    pub fn registry(&self) -> &HotDestinations {
        &self.registry
    }

    /// Notes `dest` for every rule a line of `payload` (normalised lines)
    /// matches.
    pub fn note(&mut self, dest: &Destination, payload: &[u8]) {
        let n = self.rules.len();
        let noted = self
            .noted
            .entry(dest.clone())
            .or_insert_with(|| vec![false; n]);
        if noted.iter().all(|&b| b) {
            return;
        }
        for line in crate::lineproto::lines(payload) {
            let Some(key) = series_key(line) else {
                continue;
            };
            self.rules.matching(key, &mut self.matches);
            for &i in &self.matches {
                if let Some(seen) = noted.get_mut(i)
                    && !*seen
                {
                    *seen = true;
                    self.registry.note(dest, self.rules.hot_s(i));
                }
            }
            if noted.iter().all(|&b| b) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Days, LifecycleRule};
    use std::sync::Arc;

    fn dest(db: &str, rp: &str) -> Destination {
        Destination {
            db: db.into(),
            rp: rp.into(),
        }
    }

    fn tier(rules: &[(&str, f64, &str)]) -> (HotTier, Arc<HotDestinations>) {
        let l = Lifecycle {
            rules: rules
                .iter()
                .map(|(m, days, down)| LifecycleRule {
                    measurement: m.to_string(),
                    hot_days: (*days > 0.0).then_some(Days::Number(*days)),
                    downsample: down.to_string(),
                    ..LifecycleRule::default()
                })
                .collect(),
            ..Lifecycle::default()
        };
        let registry = Arc::new(HotDestinations::default());
        let t = HotTier::from_config(&l, registry.clone()).expect("a hot rule");
        (t, registry)
    }

    const DAY: u64 = 86_400;

    #[test]
    fn a_destination_gets_the_longest_hot_days_of_the_rules_whose_points_it_holds() {
        let (mut t, reg) = tier(&[
            ("telemetry", 2.0, ""),
            ("power*", 3.0, ""),
            ("x", 0.0, "5m"),
        ]);
        t.note(&dest("plant", ""), b"telemetry,id=1 v=1 1\n");
        assert_eq!(reg.retention_of(&dest("plant", "")), Some(Some(2 * DAY)));
        let g = reg.generation();
        t.note(&dest("plant", ""), b"telemetry,id=2 v=1 1\nx v=1 1\n");
        assert_eq!(reg.generation(), g, "nothing new: no change");
        t.note(&dest("plant", ""), b"other v=1 1\npowermeter v=2 2\n");
        assert_eq!(reg.retention_of(&dest("plant", "")), Some(Some(3 * DAY)));
        assert!(reg.generation() > g);
        // A shorter rule later never shortens it.
        let (mut t2, _) = tier(&[("telemetry", 2.0, "")]);
        t2.registry = reg.clone();
        t2.note(&dest("plant", ""), b"telemetry v=1 1\n");
        assert_eq!(reg.retention_of(&dest("plant", "")), Some(Some(3 * DAY)));
        // Points of no hot rule make no hot destination; each is its own.
        t.note(&dest("lab", ""), b"x v=1 1\nother,a=b v=1 1\n");
        t.note(&dest("plant", "fast"), b"power v=1 1\n");
        assert_eq!(reg.retention_of(&dest("lab", "")), None);
        assert_eq!(
            reg.retention_of(&dest("plant", "fast")),
            Some(Some(3 * DAY))
        );
        let mut all = reg.all();
        all.sort_by(|a, b| a.0.rp.cmp(&b.0.rp));
        assert_eq!(
            all,
            [
                (dest("plant", ""), Some(3 * DAY)),
                (dest("plant", "fast"), Some(3 * DAY))
            ]
        );
    }

    #[test]
    fn for_ever_is_the_longest_retention() {
        let reg = HotDestinations::default();
        reg.note(&dest("a", ""), Some(DAY));
        reg.note(&dest("a", ""), None);
        reg.note(&dest("a", ""), Some(2 * DAY));
        assert_eq!(reg.retention_of(&dest("a", "")), Some(None));
    }

    #[test]
    fn a_destination_every_rule_has_noted_is_not_read_again() {
        let (mut t, reg) = tier(&[("m", 1.0, "")]);
        t.note(&dest("a", ""), b"m v=1 1\n");
        let g = reg.generation();
        // A batch it would misread if it read it: not read at all.
        t.note(&dest("a", ""), b"\\ \n,,, \n");
        assert_eq!((reg.generation(), t.noted.len()), (g, 1));
        assert!(HotTier::from_config(&Lifecycle::default(), reg).is_none());
    }
}
