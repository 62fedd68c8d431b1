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
