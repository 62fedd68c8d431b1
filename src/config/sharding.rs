//! The `influxdb.sharding` section: buckets, the rules that route points into
//! them, their retention and drain priority. What the rules mean is in
//! [`crate::route`]; this file holds their shape and their validation.
//!
//! A bucket is one place upstream: on 1.x the database `database` (default:
//! `influxdb.database`) with the retention policy `retention_policy` (default:
//! the bucket's name); on 2.x the bucket called `name`.

use super::{ApiVersion, ConfigError, Influxdb, invalid};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// InfluxDB (1.x and 2.x) refuses retention shorter than an hour.
pub const MIN_RETENTION_S: u64 = 3600;
/// Above this share lower-priority buckets would no longer be "lower".
pub const MAX_FAIR_SHARE_PERCENT: u8 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    /// By measurement, field key and tag values (`points`, `tags`).
    #[serde(rename = "tag-based")]
    TagBased,
    /// By a numeric point id read from the tag `id_tag` (`ids`).
    #[serde(rename = "range")]
    Range,
    /// Series spread over all buckets by a stable hash of the series key.
    #[serde(rename = "hash")]
    Hash,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sharding {
    pub strategy: Strategy,
    /// `range`: the tag that carries the point id.
    pub id_tag: String,
    /// Where points no rule matches go; empty: where the producer sent them.
    pub default_bucket: String,
    /// During a backlog, this share of requests goes to the bucket with the
    /// oldest data whatever its priority, so no bucket waits forever.
    pub fair_share_percent: u8,
    pub buckets: Vec<Bucket>,
}

impl Default for Sharding {
    fn default() -> Self {
        Sharding {
            strategy: Strategy::TagBased,
            id_tag: "point_id".into(),
            default_bucket: String::new(),
            fair_share_percent: 10,
            buckets: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bucket {
    pub name: String,
    /// How long the server keeps the data: `7d`, `36h`, `2w`; empty or `inf`
    /// for ever. Points older than this are not sent (dead letters instead).
    pub retention: String,
    /// Higher drains first during a backlog.
    pub priority: u8,
    /// `tag-based`: globs over the measurement name or a field key.
    pub points: Vec<String>,
    /// `tag-based`: every listed tag must have a value matching one of its globs.
    pub tags: BTreeMap<String, Vec<String>>,
    /// `range`: point ids, `10001-10099` or `10100`.
    pub ids: Vec<String>,
    /// 1.x database; default `influxdb.database`.
    pub database: String,
    /// 1.x retention policy; default the bucket's name.
    pub retention_policy: String,
}

impl Bucket {
    /// Where this bucket's points go upstream: (database, retention policy)
    /// as `route::dest::Destination::of_bucket` names it.
    pub fn target(&self, db: &Influxdb) -> (String, String) {
        match db.api {
            ApiVersion::V2 => (self.name.clone(), String::new()),
            ApiVersion::V1 => (
                if self.database.is_empty() {
                    db.database.clone()
                } else {
                    self.database.clone()
                },
                if self.retention_policy.is_empty() {
                    self.name.clone()
                } else {
                    self.retention_policy.clone()
                },
            ),
        }
    }

    /// Retention in seconds; `None` for ever. Valid after validation.
    pub fn retention_s(&self) -> Option<u64> {
        parse_duration_s(&self.retention).ok().flatten()
    }
}

/// `7d`, `36h`, `90m`, `2w`, `3600s` → seconds; empty, `inf` or `0` → `None`
/// (for ever).
pub fn parse_duration_s(text: &str) -> Result<Option<u64>, String> {
    let t = text.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("inf") || t == "0" {
        return Ok(None);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 7d, 36h or 2w"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("{text:?}: the unit must be one of s, m, h, d, w")),
    };
    n.checked_mul(scale)
        .map(Some)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// `10001-10099`, `10100` or `-5--1` → inclusive range. The separator is the
/// first `-` after the first character (which may be a minus sign); anything
/// that is not two integers, Unicode included, is `None`, never a panic.
pub fn parse_id_range(text: &str) -> Option<(i64, i64)> {
    let t = text.trim();
    let first = t.chars().next()?.len_utf8();
    let (lo, hi) = match t.get(first..)?.find('-') {
        Some(i) => {
            let sep = first.checked_add(i)?;
            (t.get(..sep)?, t.get(sep.checked_add(1)?..)?)
        }
        None => (t, t),
    };
    let (lo, hi) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
    (lo <= hi).then_some((lo, hi))
}

impl Sharding {
    pub fn validate(&self, db: &Influxdb) -> Result<(), ConfigError> {
        if self.fair_share_percent > MAX_FAIR_SHARE_PERCENT {
            return Err(invalid(
                "influxdb.sharding.fair_share_percent",
                format!("must be 0..={MAX_FAIR_SHARE_PERCENT}"),
            ));
        }
        if self.strategy == Strategy::Range && self.id_tag.is_empty() {
            return Err(invalid(
                "influxdb.sharding.id_tag",
                "the range strategy needs the tag that carries point ids",
            ));
        }
        let mut names = HashSet::new();
        let mut dests = HashSet::new();
        for (i, b) in self.buckets.iter().enumerate() {
            let key = |k: &str| format!("influxdb.sharding.buckets[{i}].{k}");
            if b.name.is_empty() {
                return Err(invalid(key("name"), "must not be empty"));
            }
            if !names.insert(b.name.as_str()) {
                return Err(invalid(key("name"), format!("{:?} is used twice", b.name)));
            }
            if !dests.insert(b.target(db)) {
                return Err(invalid(
                    key("retention_policy"),
                    format!("{:?} goes to the same place as an earlier bucket", b.name),
                ));
            }
            match parse_duration_s(&b.retention) {
                Err(e) => return Err(invalid(key("retention"), e)),
                Ok(Some(s)) if s < MIN_RETENTION_S => {
                    return Err(invalid(
                        key("retention"),
                        "InfluxDB keeps data at least 1h: use 1h or more",
                    ));
                }
                Ok(_) => {}
            }
            if db.api == ApiVersion::V2 && !(b.database.is_empty() && b.retention_policy.is_empty())
            {
                return Err(invalid(
                    key("database"),
                    "database and retention_policy are 1.x settings; on 2.x the bucket is `name`",
                ));
            }
            for (k, globs) in &b.tags {
                if k.is_empty() || globs.is_empty() {
                    return Err(invalid(key("tags"), "each tag needs a name and values"));
                }
            }
            if let Some(bad) = b.ids.iter().find(|r| parse_id_range(r).is_none()) {
                return Err(invalid(
                    key("ids"),
                    format!("{bad:?} is not an id range like 10001-10099"),
                ));
            }
            let has = (!b.points.is_empty(), !b.tags.is_empty(), !b.ids.is_empty());
            let why = match (self.strategy, has) {
                (Strategy::TagBased, (false, false, _)) => {
                    Some("a tag-based bucket needs `points` or `tags`")
                }
                (Strategy::TagBased, (_, _, true)) => Some("`ids` apply to the range strategy"),
                (Strategy::Range, (_, _, false)) => Some("a range bucket needs `ids`"),
                (Strategy::Range, (true, _, _) | (_, true, _)) => {
                    Some("a range bucket routes by `ids` only")
                }
                (Strategy::Hash, (false, false, false)) => None,
                (Strategy::Hash, _) => {
                    Some("hash spreads every series over the buckets: no points, tags or ids")
                }
                _ => None,
            };
            if let Some(why) = why {
                return Err(invalid(key("points"), why));
            }
        }
        if !self.default_bucket.is_empty() && !names.contains(self.default_bucket.as_str()) {
            return Err(invalid(
                "influxdb.sharding.default_bucket",
                format!("{:?} is not one of the buckets", self.default_bucket),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_influxql_and_inf_means_for_ever() {
        assert_eq!(parse_duration_s("7d"), Ok(Some(7 * 86_400)));
        assert_eq!(parse_duration_s("36h"), Ok(Some(36 * 3600)));
        assert_eq!(parse_duration_s("2w"), Ok(Some(14 * 86_400)));
        assert_eq!(parse_duration_s("inf"), Ok(None));
        assert_eq!(parse_duration_s(""), Ok(None));
        assert!(parse_duration_s("7 days").is_err());
        assert!(parse_duration_s("d").is_err());
    }

    #[test]
    fn id_ranges_are_inclusive_and_ordered() {
        assert_eq!(parse_id_range("10001-10099"), Some((10001, 10099)));
        assert_eq!(parse_id_range("7"), Some((7, 7)));
        assert_eq!(parse_id_range("-5--1"), Some((-5, -1)));
        assert_eq!(parse_id_range("9-1"), None);
        assert_eq!(parse_id_range("a-b"), None);
    }

    #[test]
    fn id_ranges_with_unicode_where_ascii_was_assumed_are_refused_not_a_panic() {
        for text in [
            "\u{2212}5-10",
            "é",
            "5-\u{2212}1",
            "\u{2212}",
            "-",
            "",
            "--",
            "5-",
            "\u{1F600}-9",
        ] {
            assert_eq!(parse_id_range(text), None, "{text:?}");
        }
        assert_eq!(parse_id_range(" 3 - 4 "), Some((3, 4)));
    }
}
