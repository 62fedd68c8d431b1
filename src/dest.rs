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
/// Ingest admits a destination (new ones only while under the cap); the
/// forwarder adds every destination a commit reached and releases one when
/// its queue is empty. A release racing a new write can at worst drop a
/// destination the next commit puts back: the count converges, never leaks.
#[derive(Debug, Default)]
pub struct Destinations {
    set: std::sync::Mutex<std::collections::HashSet<Destination>>,
}

impl Destinations {
    /// True if `dest` is known, or new and there is room for it under `max`.
    pub fn admit(&self, dest: &Destination, max: usize) -> bool {
        let Ok(mut set) = self.set.lock() else {
            return true;
        };
        if set.contains(dest) {
            return true;
        }
        if set.len() >= max {
            return false;
        }
        set.insert(dest.clone());
        true
    }

    /// Known whatever the cap (it holds data already).
    pub fn insert(&self, dest: &Destination) {
        if let Ok(mut set) = self.set.lock()
            && !set.contains(dest)
        {
            set.insert(dest.clone());
        }
    }

    pub fn release(&self, dest: &Destination) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(dest);
        }
    }

    pub fn len(&self) -> usize {
        self.set.lock().map_or(0, |s| s.len())
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
        assert!(set.admit(&d("a"), 2));
        assert!(set.admit(&d("b"), 2));
        assert!(!set.admit(&d("c"), 2), "a third is refused");
        assert!(set.admit(&d("a"), 2), "a known one still writes");
        set.release(&d("a"));
        assert!(set.admit(&d("c"), 2), "room again once one drained");
        set.insert(&d("z"));
        assert_eq!(
            set.len(),
            3,
            "data already buffered is counted whatever the cap"
        );
    }
}
