//! Destinations: where upstream a point goes, and how the two write APIs name it.
//!
//! A destination is a 1.x database + retention policy. A 2.x bucket is mapped the
//! way InfluxDB's compatibility API maps them (DBRP mapping): bucket `db/rp` ⇄
//! database `db`, retention policy `rp`; bucket `db` ⇄ database `db` with its
//! default policy (`rp` empty). The same mapping is applied in both directions, so
//! a producer may write with either API whatever the upstream speaks.

use crate::config::{DestinationMode, Influxdb};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination {
    pub db: String,
    /// Retention policy; empty means the database's default.
    pub rp: String,
}

impl Destination {
    /// Where a bucket of `influxdb.sharding` sends its points.
    pub fn of_bucket(b: &crate::config::Bucket, cfg: &Influxdb) -> Destination {
        let (db, rp) = b.target(cfg);
        Destination { db, rp }
    }

    /// From a 1.x `/write?db=&rp=` request (an absent db uses the configured default).
    pub fn from_v1(db: Option<&str>, rp: Option<&str>, cfg: &Influxdb) -> Destination {
        match (cfg.destination, db.filter(|d| !d.is_empty())) {
            (DestinationMode::Producer, Some(db)) => Destination {
                db: db.to_string(),
                rp: rp.unwrap_or("").to_string(),
            },
            _ => Destination::configured(cfg),
        }
    }

    /// From a 2.x `/api/v2/write?bucket=` request.
    pub fn from_bucket(bucket: Option<&str>, cfg: &Influxdb) -> Destination {
        match (cfg.destination, bucket.filter(|b| !b.is_empty())) {
            (DestinationMode::Producer, Some(b)) => match b.split_once('/') {
                Some((db, rp)) => Destination {
                    db: db.to_string(),
                    rp: rp.to_string(),
                },
                None => Destination {
                    db: b.to_string(),
                    rp: String::new(),
                },
            },
            _ => Destination::configured(cfg),
        }
    }

    /// The configured default destination (UDP, `destination: fixed`).
    pub fn configured(cfg: &Influxdb) -> Destination {
        Destination {
            db: cfg.database.clone(),
            rp: cfg.retention_policy.clone(),
        }
    }

    /// The 2.x bucket name for this destination.
    pub fn bucket(&self) -> String {
        if self.rp.is_empty() {
            self.db.clone()
        } else {
            format!("{}/{}", self.db, self.rp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_db_rp_map_both_ways_like_the_compatibility_api() {
        let cfg = Influxdb::default();
        let d = Destination::from_bucket(Some("plant/one_week"), &cfg);
        assert_eq!((d.db.as_str(), d.rp.as_str()), ("plant", "one_week"));
        assert_eq!(d.bucket(), "plant/one_week");
        let d = Destination::from_v1(Some("plant"), None, &cfg);
        assert_eq!(d.bucket(), "plant");
        assert_eq!(Destination::from_v1(None, None, &cfg).db, "hissrv");
    }

    #[test]
    fn a_fixed_destination_overrides_what_the_producer_names() {
        let cfg = Influxdb {
            destination: DestinationMode::Fixed,
            database: "pinned".into(),
            ..Influxdb::default()
        };
        assert_eq!(
            Destination::from_v1(Some("other"), Some("rp"), &cfg).db,
            "pinned"
        );
        assert_eq!(Destination::from_bucket(Some("x/y"), &cfg).db, "pinned");
    }
}

/// The destinations buffered now (in the rings, the commit pipeline or the
/// write-ahead buffer), shared by the executor and the forwarder, so that
/// `service.max_destinations` bounds how many exist at once: made-up
/// database names cannot multiply the forwarder's per-destination work or the
/// buffer's queues.
///
/// Ingest admits a destination (new ones only while under the cap) and takes
/// a new one back when its write is refused; the forwarder adds every
/// destination a commit reached, releases one when its queue is empty, and at
/// each full re-read of the buffer's heads drops what was admitted before the
/// re-read began and is not in the buffer (a write refused later, at commit).
/// So the set converges to what is buffered: nothing admitted leaks for good.
#[derive(Debug, Default)]
pub struct Destinations {
    /// Each destination with the generation it was last admitted or seen in.
    set: std::sync::Mutex<(std::collections::HashMap<Destination, u64>, u64)>,
}

/// What [`Destinations::admit`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    Known,
    /// New, counted from now: give it back if the write is refused.
    Added,
    /// New, and the cap is reached.
    Refused,
}

impl Destinations {
    /// Known, or new and under `max`.
    pub fn admit(&self, dest: &Destination, max: usize) -> Admission {
        let Ok(mut guard) = self.set.lock() else {
            return Admission::Known;
        };
        let (set, generation) = &mut *guard;
        if let Some(g) = set.get_mut(dest) {
            *g = *generation;
            return Admission::Known;
        }
        if set.len() >= max {
            return Admission::Refused;
        }
        set.insert(dest.clone(), *generation);
        Admission::Added
    }

    /// Known whatever the cap (it holds data already).
    pub fn insert(&self, dest: &Destination) {
        if let Ok(mut guard) = self.set.lock() {
            let (set, generation) = &mut *guard;
            match set.get_mut(dest) {
                Some(g) => *g = *generation,
                None => {
                    set.insert(dest.clone(), *generation);
                }
            }
        }
    }

    pub fn release(&self, dest: &Destination) {
        if let Ok(mut guard) = self.set.lock() {
            guard.0.remove(dest);
        }
    }

    /// Starts a full re-read of the buffer: what is admitted from now on is
    /// kept by the [`Destinations::reconcile`] that ends it.
    pub fn mark(&self) -> u64 {
        self.set.lock().map_or(0, |mut guard| {
            guard.1 = guard.1.saturating_add(1);
            guard.1
        })
    }

    /// Ends a re-read begun at `mark`: the set becomes what the buffer
    /// holds plus what was admitted since.
    pub fn reconcile<'a>(&self, buffered: impl Iterator<Item = &'a Destination>, mark: u64) {
        if let Ok(mut guard) = self.set.lock() {
            let (set, _) = &mut *guard;
            for d in buffered {
                match set.get_mut(d) {
                    Some(g) => *g = (*g).max(mark),
                    None => {
                        set.insert(d.clone(), mark);
                    }
                }
            }
            set.retain(|_, g| *g >= mark);
        }
    }

    pub fn len(&self) -> usize {
        self.set.lock().map_or(0, |s| s.0.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod destinations_tests {
    use super::*;

    fn d(db: &str) -> Destination {
        Destination {
            db: db.into(),
            rp: String::new(),
        }
    }

    #[test]
    fn no_new_destination_is_admitted_past_the_cap_but_known_ones_are() {
        let set = Destinations::default();
        assert_eq!(set.admit(&d("a"), 2), Admission::Added);
        assert_eq!(set.admit(&d("b"), 2), Admission::Added);
        assert_eq!(
            set.admit(&d("c"), 2),
            Admission::Refused,
            "a third is refused"
        );
        assert_eq!(
            set.admit(&d("a"), 2),
            Admission::Known,
            "a known one still writes"
        );
        set.release(&d("a"));
        assert_eq!(
            set.admit(&d("c"), 2),
            Admission::Added,
            "room again once one drained"
        );
        set.insert(&d("z"));
        assert_eq!(
            set.len(),
            3,
            "data already buffered is counted whatever the cap"
        );
    }

    #[test]
    fn a_full_reread_drops_what_was_admitted_before_it_and_is_not_buffered() {
        let set = Destinations::default();
        set.admit(&d("refused_at_commit"), 10);
        set.admit(&d("buffered"), 10);
        let mark = set.mark();
        // Admitted while the buffer is read: its write may be in the pipeline.
        set.admit(&d("in_flight"), 10);
        set.reconcile([d("buffered"), d("only_on_disk")].iter(), mark);
        let mut left: Vec<String> = ["buffered", "in_flight", "only_on_disk", "refused_at_commit"]
            .into_iter()
            .filter(|n| set.admit(&d(n), 0) == Admission::Known)
            .map(String::from)
            .collect();
        left.sort();
        assert_eq!(left, vec!["buffered", "in_flight", "only_on_disk"]);
    }
}
