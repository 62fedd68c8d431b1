//! The `lifecycle` section (design notes §6): per rule, how long raw points
//! stay hot upstream, and the warm tier's downsampling. Shape and
//! validation here; the windows are `crate::downsample`.
//!
//! ```yaml
//! lifecycle:
//!   max_open_windows: 200000
//!   checkpoint_interval: "30s"     # window state saved (and aggregates emitted) this often
//!   rules:
//!     - measurement: "telemetry"     # glob over the measurement
//!       tags: { site: ["plant-*"] }  # optional, as in buckets
//!       hot_days: 7                  # a number of days (7, 0.5) or a duration ("36h")
//!       warm_days: 30
//!       downsample: "5m"             # ≥ 1s
//!       grace: "5m"                  # default: one window
//!       max_lateness: "1h"           # default 1h
//!       aggregates: [mean, min, max, last, count]
//! ```
//!
//! Applied: `downsample` and what shapes it (the commit thread's warm tier,
//! `batch/warm.rs`); `hot_days`, the retention of the destinations the
//! rule's raw points go to (`route/hot.rs`; it needs `manage_retention`,
//! `validate.rs`); `cold_storage`, where the rule's raw points are archived
//! (`archive.rs` for the targets and `lifecycle.archive`; the archiver is
//! `crate::archive`).

use super::sharding::MIN_RETENTION_S;
use super::{ConfigError, invalid, parse_duration_s};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// Field windows (series × field × window) held at most, by default: about
/// 150 bytes each with 10 fields a series (`benches/downsample.rs`; more with
/// fewer: a series itself is ~250 bytes), so 30 MB of a 256 MB gateway.
pub const DEFAULT_MAX_OPEN_WINDOWS: usize = 200_000;
/// The most a config may ask for: 150 MB of window state (10 fields a series).
pub const MAX_OPEN_WINDOWS_LIMIT: usize = 1_000_000;
/// How often the windows are saved and closed windows emitted, by default:
/// each save writes the changed window sets to the SD card, and raw batches
/// delivered in between are held until it (custody, `wal/custody.rs`).
pub const DEFAULT_CHECKPOINT_INTERVAL_S: u64 = 30;
/// The longest checkpoint interval: a raw batch held longer than an hour
/// after delivery would crowd the quota.
pub const MAX_CHECKPOINT_INTERVAL_S: u64 = 3600;
/// Late points are taken this long after a window closed, by default.
pub const DEFAULT_MAX_LATENESS_S: u64 = 3600;
const DAY_S: f64 = 86_400.0;
/// The longest window: a year (InfluxDB's `GROUP BY time()` takes longer,
/// but no gateway keeps a window open for it; and it keeps nanoseconds far
/// inside i64).
pub const MAX_WINDOW_S: u64 = 366 * 86_400;
/// The longest grace or lateness: ten years, in nanoseconds well inside i64.
pub const MAX_SPAN_S: u64 = 3_660 * 86_400;
/// The aggregates a rule may name (`downsample::aggregate::Aggregate`'s
/// names; the config may not depend on the engine).
pub const AGGREGATE_NAMES: [&str; 6] = ["mean", "min", "max", "last", "count", "sum"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Lifecycle {
    pub max_open_windows: usize,
    pub checkpoint_interval: String,
    /// How archive objects are cut (`archive.rs`).
    pub archive: super::archive::Archive,
    pub rules: Vec<Rule>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            max_open_windows: DEFAULT_MAX_OPEN_WINDOWS,
            checkpoint_interval: format!("{DEFAULT_CHECKPOINT_INTERVAL_S}s"),
            archive: super::archive::Archive::default(),
            rules: Vec::new(),
        }
    }
}

/// Days as a number (`7`, `0.5`) or a duration (`"36h"`, `"2w"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Days {
    Number(f64),
    Text(String),
}

impl Days {
    /// Whole seconds; an error that says why.
    pub fn seconds(&self) -> Result<u64, String> {
        match self {
            Days::Number(d) if d.is_finite() && *d > 0.0 && *d * DAY_S < u64::MAX as f64 => {
                Ok((*d * DAY_S).round() as u64)
            }
            Days::Number(d) => Err(format!("{d} is not a number of days above 0")),
            Days::Text(t) => match parse_duration_s(t)? {
                Some(s) => Ok(s),
                None => Err(format!("{t:?}: give a time, like 7 (days) or \"36h\"")),
            },
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rule {
    /// A glob over the measurement name (`*` any run, `?` one character).
    pub measurement: String,
    /// Every listed tag must have a value matching one of its globs.
    pub tags: BTreeMap<String, Vec<String>>,
    /// Raw points kept upstream this long (the hot tier's retention).
    pub hot_days: Option<Days>,
    /// Aggregates kept upstream this long (the warm tier's retention).
    pub warm_days: Option<Days>,
    /// The window of the warm tier, ≥ 1s; empty: no downsampling.
    pub downsample: String,
    /// How far event time goes past a window before it is emitted; default
    /// one window.
    pub grace: String,
    /// How long after its close a window still takes late points; default 1h.
    pub max_lateness: String,
    /// Default: mean, min, max, last, count (and sum for integers);
    /// booleans and strings get last and count.
    pub aggregates: Vec<String>,
    /// Where the aggregates go: 1.x retention policy (2.x bucket); default
    /// `<hot>_<downsample>`, e.g. `autogen_5m`.
    pub warm_destination: String,
    /// Where the rule's raw points are archived: `file:///dir/`
    /// (`archive.rs`); empty: not archived.
    pub cold_storage: String,
}

/// A duration where `0` means none (not "for ever", as for retention).
fn span_s(text: &str) -> Result<u64, String> {
    if text.trim() == "0" {
        return Ok(0);
    }
    parse_duration_s(text)?.ok_or_else(|| format!("{text:?}: give a time, like 5m"))
}

/// The name a 1.x server gives a database's default retention policy.
pub const DEFAULT_RP: &str = "autogen";

/// A window in its largest whole unit: `5m` for 300 s, `90s`, `1h`, `1d`.
pub fn window_name(every_s: u64) -> String {
    for (unit, n) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if let (Some(0), Some(whole)) = (every_s.checked_rem(n), every_s.checked_div(n)) {
            return format!("{whole}{unit}");
        }
    }
    format!("{every_s}s")
}

impl Lifecycle {
    /// `checkpoint_interval` in seconds, 1 s to an hour.
    pub fn checkpoint_interval_s(&self) -> Result<u64, ConfigError> {
        let key = "lifecycle.checkpoint_interval";
        match parse_duration_s(&self.checkpoint_interval) {
            Ok(Some(s)) if (1..=MAX_CHECKPOINT_INTERVAL_S).contains(&s) => Ok(s),
            Ok(_) => Err(invalid(key, "give a time from 1s to 1h, like 30s")),
            Err(e) => Err(invalid(key, e)),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_OPEN_WINDOWS_LIMIT).contains(&self.max_open_windows) {
            return Err(invalid(
                "lifecycle.max_open_windows",
                format!("must be 1..={MAX_OPEN_WINDOWS_LIMIT} (about 150 bytes of memory each)"),
            ));
        }
        self.checkpoint_interval_s()?;
        self.archive.validate()?;
        let mut seen = HashSet::new();
        let mut warm = HashSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            r.validate(&|k: &str| format!("lifecycle.rules[{i}].{k}"))?;
            // Two rules' aggregates in one place would overwrite each other
            // at every shared window start (review).
            if !r.warm_destination.is_empty() && !warm.insert(r.warm_destination.as_str()) {
                return Err(invalid(
                    format!("lifecycle.rules[{i}].warm_destination"),
                    format!("{:?} is an earlier rule's already", r.warm_destination),
                ));
            }
            // Nor where another rule's derived name could be: a line feeds
            // one rule a warm destination, so one rule would get nothing
            // (review).
            if let Some(other) = self.rules.iter().find(|o| {
                o.warm_destination.is_empty()
                    && o.warm_rp("").is_some_and(|name| {
                        name.strip_prefix(DEFAULT_RP)
                            .is_some_and(|suffix| r.warm_destination.ends_with(suffix))
                    })
            }) && !r.warm_destination.is_empty()
            {
                return Err(invalid(
                    format!("lifecycle.rules[{i}].warm_destination"),
                    format!(
                        "{:?} could be where the rule for {:?} ({}) writes (<policy>_<window>): name it otherwise",
                        r.warm_destination, other.measurement, other.downsample
                    ),
                ));
            }
            // Rules writing to one derived warm destination give it one
            // retention, whichever line comes first (second review).
            if r.warm_destination.is_empty()
                && let Some(other) = self.rules.iter().take(i).find(|o| {
                    o.warm_destination.is_empty()
                        && o.warm_rp("").is_some()
                        && o.warm_rp("") == r.warm_rp("")
                        && o.warm_days.as_ref().and_then(|d| d.seconds().ok())
                            != r.warm_days.as_ref().and_then(|d| d.seconds().ok())
                })
            {
                return Err(invalid(
                    format!("lifecycle.rules[{i}].warm_days"),
                    format!(
                        "differs from the rule for {:?}, whose aggregates go to the same {} policy: give both the same warm_days, or one a warm_destination",
                        other.measurement,
                        r.warm_rp("").unwrap_or_default()
                    ),
                ));
            }
            if !seen.insert(r.identity()) {
                return Err(invalid(
                    format!("lifecycle.rules[{i}]"),
                    "the same measurement, tags and downsample as an earlier rule",
                ));
            }
        }
        Ok(())
    }
}

impl Rule {
    fn validate(&self, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        if self.measurement.is_empty() {
            return Err(invalid(key("measurement"), "a glob, `*` for every measurement"));
        }
        for (k, globs) in &self.tags {
            if k.is_empty() || globs.is_empty() {
                return Err(invalid(key("tags"), "each tag needs a name and values"));
            }
        }
        if !self.cold_storage.is_empty() {
            super::archive::ArchiveTarget::parse(&self.cold_storage)
                .map_err(|e| invalid(key("cold_storage"), e))?;
        }
        let hot = match &self.hot_days {
            Some(d) => Some(d.seconds().map_err(|e| invalid(key("hot_days"), e))?),
            None => None,
        };
        let warm = match &self.warm_days {
            Some(d) => Some(d.seconds().map_err(|e| invalid(key("warm_days"), e))?),
            None => None,
        };
        for (name, s) in [("hot_days", hot), ("warm_days", warm)] {
            if s.is_some_and(|s| s < MIN_RETENTION_S) {
                return Err(invalid(key(name), "InfluxDB keeps data at least 1h: use 1h or more"));
            }
        }
        if let (Some(h), Some(w)) = (hot, warm)
            && w < h
        {
            return Err(invalid(
                key("warm_days"),
                "shorter than hot_days: the aggregates would go before the raw points",
            ));
        }
        if self.downsample.is_empty() {
            for (name, set) in [
                ("warm_days", self.warm_days.is_some()),
                ("grace", !self.grace.is_empty()),
                ("max_lateness", !self.max_lateness.is_empty()),
                ("aggregates", !self.aggregates.is_empty()),
                ("warm_destination", !self.warm_destination.is_empty()),
            ] {
                if set {
                    return Err(invalid(key(name), "has no meaning without downsample"));
                }
            }
            if hot.is_none() && self.cold_storage.is_empty() {
                return Err(invalid(
                    key("downsample"),
                    "the rule does nothing: give hot_days, downsample, cold_storage or some of them",
                ));
            }
            return Ok(());
        }
        let every = match parse_duration_s(&self.downsample) {
            Ok(Some(s)) if (1..=MAX_WINDOW_S).contains(&s) => s,
            Ok(_) => {
                return Err(invalid(
                    key("downsample"),
                    "a window of 1s to 366d, like 5m",
                ));
            }
            Err(e) => return Err(invalid(key("downsample"), e)),
        };
        if warm.is_some_and(|w| w < every) {
            return Err(invalid(
                key("warm_days"),
                "shorter than one window: each aggregate would be gone as it is written",
            ));
        }
        for (name, text) in [("grace", &self.grace), ("max_lateness", &self.max_lateness)] {
            if !text.is_empty() && span_s(text).map_err(|e| invalid(key(name), e))? > MAX_SPAN_S {
                return Err(invalid(key(name), "at most 3660d"));
            }
        }
        let mut aggs = HashSet::new();
        for a in &self.aggregates {
            if !AGGREGATE_NAMES.contains(&a.as_str()) {
                return Err(invalid(
                    key("aggregates"),
                    format!("{a:?} is not one of mean, min, max, last, count, sum"),
                ));
            }
            if !aggs.insert(a) {
                return Err(invalid(key("aggregates"), format!("{a:?} is listed twice")));
            }
        }
        if self
            .warm_destination
            .chars()
            .any(|c| c.is_control() || c == '/')
        {
            return Err(invalid(
                key("warm_destination"),
                "a retention policy (1.x) or bucket (2.x) name",
            ));
        }
        Ok(())
    }

    /// What the rule's checkpointed windows are stored under: measurement,
    /// tags and the window in seconds (`5m` and `300s` are one window), each
    /// piece prefixed by its length in bytes, so no two different rules
    /// share one whatever their strings hold. `grace`, `max_lateness` and
    /// `aggregates` change when windows are emitted and what is written,
    /// not what they hold, so they are not part of it.
    pub fn identity(&self) -> String {
        fn piece(id: &mut String, s: &str) {
            id.push_str(&s.len().to_string());
            id.push(':');
            id.push_str(s);
        }
        let mut id = String::new();
        piece(&mut id, &self.measurement);
        for (k, globs) in &self.tags {
            id.push_str(" tag ");
            piece(&mut id, k);
            for g in globs {
                id.push(' ');
                piece(&mut id, g);
            }
        }
        id.push_str(" every ");
        match parse_duration_s(&self.downsample) {
            Ok(Some(s)) => id.push_str(&format!("{s}s")),
            _ => piece(&mut id, self.downsample.trim()),
        }
        id
    }

    /// The retention policy (2.x: the bucket's second half) its aggregates
    /// of points bound for policy `raw_rp` go to: `warm_destination`, else
    /// `<raw_rp or autogen>_<window in its largest whole unit>` (`autogen_5m`
    /// for 5m and 300s alike). `None` without `downsample`.
    pub fn warm_rp(&self, raw_rp: &str) -> Option<String> {
        let every = parse_duration_s(&self.downsample).ok().flatten()?;
        if !self.warm_destination.is_empty() {
            return Some(self.warm_destination.clone());
        }
        let hot = if raw_rp.is_empty() { DEFAULT_RP } else { raw_rp };
        Some(format!("{hot}_{}", window_name(every)))
    }

    /// The window, grace and lateness in seconds (valid rules only).
    pub fn windowing_s(&self) -> Option<(u64, u64, u64)> {
        let every = parse_duration_s(&self.downsample).ok().flatten()?;
        let grace = if self.grace.is_empty() {
            every
        } else {
            span_s(&self.grace).ok()?
        };
        let late = if self.max_lateness.is_empty() {
            DEFAULT_MAX_LATENESS_S
        } else {
            span_s(&self.max_lateness).ok()?
        };
        Some((every, grace, late))
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
