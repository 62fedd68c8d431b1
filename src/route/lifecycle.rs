//! Which `lifecycle.rules` take a point: the rule's `measurement` glob over
//! the measurement and its `tags` globs over the tag values, as the
//! buckets' `tags` match (every listed tag present with a value matching one
//! of its globs; names unescaped). Only rules with `downsample` feed windows.
//!
//! A rule is known by its identity, not its place in the list: measurement,
//! tags and window (`downsample`), the three things that make its windows
//! what they are. Checkpointed windows are stored under it, so a reload that
//! reorders or inserts rules never moves windows from one rule to another,
//! and a rule whose window changes starts afresh. (`grace`, `max_lateness`
//! and `aggregates` change when windows are emitted and what is written,
//! not what they hold.) The config refuses two rules of one identity.

use super::rules::key_parts;
use crate::config::{Lifecycle, LifecycleRule};

struct Matcher {
    identity: String,
    /// `hot_days` in seconds.
    hot_s: Option<u64>,
    /// `cold_storage` in its canonical spelling (`ArchiveTarget::canonical`):
    /// the key its duties are stored under.
    cold: String,
    measurement: Vec<u8>,
    tags: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
}

/// The downsampling rules of a validated config, in config order.
pub struct LifecycleRules {
    rules: Vec<Matcher>,
    /// No rule filters by tags: the measurement alone decides, and the
    /// answer for the last one (as written, escapes kept) is reused. A
    /// batch is mostly one measurement; parsing every key's tags was 5 %
    /// of the commit thread's downsampling part (`benches/downsample.rs`).
    by_measurement: bool,
    last: Option<(Vec<u8>, Vec<usize>)>,
}

/// A rule's identity as checkpoints store it (`LifecycleRule::identity`).
pub fn identity(r: &LifecycleRule) -> String {
    r.identity()
}

impl LifecycleRules {
    /// The rules that downsample (the warm tier's).
    pub fn from_config(l: &Lifecycle) -> LifecycleRules {
        LifecycleRules::of(l, |r| !r.downsample.is_empty())
    }

    /// The rules that give `hot_days` (the hot tier's, `hot.rs`).
    pub fn hot(l: &Lifecycle) -> LifecycleRules {
        LifecycleRules::of(l, |r| r.hot_days.is_some())
    }

    /// The rules that archive (`cold_storage`, the cold tier's).
    pub fn cold(l: &Lifecycle) -> LifecycleRules {
        LifecycleRules::of(l, |r| !r.cold_storage.is_empty())
    }

    fn of(l: &Lifecycle, keep: impl Fn(&LifecycleRule) -> bool) -> LifecycleRules {
        let rules = l
            .rules
            .iter()
            .filter(|r| keep(r))
            .map(|r| Matcher {
                identity: identity(r),
                hot_s: r.hot_days.as_ref().and_then(|d| d.seconds().ok()),
                cold: crate::config::ArchiveTarget::canonical(&r.cold_storage)
                    .unwrap_or_else(|_| r.cold_storage.clone()),
                measurement: r.measurement.as_bytes().to_vec(),
                tags: r
                    .tags
                    .iter()
                    .map(|(k, gs)| {
                        let gs = gs.iter().map(|g| g.as_bytes().to_vec()).collect();
                        (k.as_bytes().to_vec(), gs)
                    })
                    .collect(),
            })
            .collect::<Vec<Matcher>>();
        LifecycleRules {
            by_measurement: rules.iter().all(|m| m.tags.is_empty()),
            rules,
            last: None,
        }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The `i`th rule's `hot_days`, in seconds.
    pub fn hot_s(&self, i: usize) -> Option<u64> {
        self.rules.get(i).and_then(|m| m.hot_s)
    }

    /// The `i`th rule's `cold_storage`.
    pub fn cold_target(&self, i: usize) -> Option<&str> {
        self.rules.get(i).map(|m| m.cold.as_str())
    }

    /// The identity of the `i`th downsampling rule.
    pub fn identity(&self, i: usize) -> Option<&str> {
        self.rules.get(i).map(|m| m.identity.as_str())
    }

    /// The downsampling rules (by index among them) whose measurement and
    /// tags match a series key (measurement and tags, escapes kept), into
    /// `out` (cleared first).
    pub fn matching(&mut self, key: &[u8], out: &mut Vec<usize>) {
        out.clear();
        if self.rules.is_empty() {
            return;
        }
        if self.by_measurement {
            // Up to the first comma not escaped (`key_parts`' split).
            let end = (0..key.len())
                .find(|&i| key[i] == b',' && (i == 0 || key[i - 1] != b'\\'))
                .unwrap_or(key.len());
            let raw = key.get(..end).unwrap_or(key);
            if let Some((m, found)) = &self.last
                && m.as_slice() == raw
            {
                out.extend_from_slice(found);
                return;
            }
            self.match_key(key, out);
            self.last = Some((raw.to_vec(), out.clone()));
            return;
        }
        self.match_key(key, out);
    }

    fn match_key(&self, key: &[u8], out: &mut Vec<usize>) {
        let (measurement, tags) = key_parts(key);
        for (i, m) in self.rules.iter().enumerate() {
            let tags_match = m.tags.iter().all(|(k, globs)| {
                tags.iter()
                    .find(|(tk, _)| **tk == **k)
                    .is_some_and(|(_, v)| globs.iter().any(|g| super::glob(g, v)))
            });
            if tags_match && super::glob(&m.measurement, &measurement) {
                out.push(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Days;
    use std::collections::BTreeMap;

    fn rule(measurement: &str, tags: &[(&str, &[&str])], downsample: &str) -> LifecycleRule {
        LifecycleRule {
            measurement: measurement.into(),
            tags: tags
                .iter()
                .map(|(k, gs)| (k.to_string(), gs.iter().map(|g| g.to_string()).collect()))
                .collect::<BTreeMap<_, _>>(),
            downsample: downsample.into(),
            hot_days: Some(Days::Number(7.0)),
            ..LifecycleRule::default()
        }
    }

    fn rules(list: Vec<LifecycleRule>) -> LifecycleRules {
        LifecycleRules::from_config(&Lifecycle {
            rules: list,
            ..Lifecycle::default()
        })
    }

    fn matching(r: &mut LifecycleRules, key: &str) -> Vec<usize> {
        let mut out = vec![99];
        r.matching(key.as_bytes(), &mut out);
        out
    }

    #[test]
    fn a_point_feeds_every_downsampling_rule_its_measurement_and_tags_match() {
        let mut r = rules(vec![
            rule("telemetry", &[], "5m"),
            rule("tele*", &[("site", &["plant-*", "lab"])], "1h"),
            rule("telemetry", &[], ""),
            rule("power meter", &[("site", &["a,b"])], "1m"),
        ]);
        assert_eq!(r.len(), 3, "the hot-only rule feeds no windows");
        assert_eq!(matching(&mut r, "telemetry,site=plant-7,x=1"), [0, 1]);
        assert_eq!(matching(&mut r, "telemetry,site=lab"), [0, 1]);
        assert_eq!(matching(&mut r, "telemetry,site=office"), [0]);
        assert_eq!(
            matching(&mut r, "telemetry"),
            [0],
            "a listed tag must be there"
        );
        assert_eq!(matching(&mut r, "telemetryx,site=lab"), [1]);
        assert_eq!(matching(&mut r, "other,site=lab"), Vec::<usize>::new());
        // Names match unescaped, as buckets' do.
        assert_eq!(matching(&mut r, "power\\ meter,site=a\\,b"), [2]);
    }

    #[test]
    fn rules_without_tags_answer_by_measurement_as_a_full_match_would() {
        let mut r = rules(vec![
            rule("tele*", &[], "5m"),
            rule("a,b", &[], "1m"),
            rule("a", &[], "1h"),
        ]);
        let keys = [
            "telemetry,site=x",
            "telemetry",
            "a\\,b,site=y",
            "a,b=c",
            "a",
            ",x=1",
            "tele\\,x",
            "a\\ b,c=d",
            "other",
        ];
        let mut rng = crate::sim_tests::rng(7);
        for _ in 0..2_000 {
            let key = keys[(rng() % keys.len() as u64) as usize];
            let mut full = Vec::new();
            r.match_key(key.as_bytes(), &mut full);
            assert_eq!(matching(&mut r, key), full, "{key}");
        }
        assert_eq!(matching(&mut r, "a\\,b,site=y"), [1]);
        assert_eq!(matching(&mut r, "a,b=c"), [2]);
    }

    #[test]
    fn a_rule_keeps_its_identity_wherever_it_stands_in_the_list() {
        let a = rule("m*", &[("site", &["x", "y"])], "5m");
        let b = rule("n", &[], "5m");
        let one = rules(vec![a.clone(), b.clone()]);
        let two = rules(vec![b.clone(), a.clone()]);
        assert_eq!(one.identity(0), two.identity(1));
        assert_ne!(one.identity(0), one.identity(1));
        // The window is part of it; when and what is emitted are not.
        let wider = rule("m*", &[("site", &["x", "y"])], "1h");
        assert_ne!(identity(&a), identity(&wider));
        let later = LifecycleRule {
            grace: "10m".into(),
            aggregates: vec!["max".into()],
            ..a.clone()
        };
        assert_eq!(identity(&a), identity(&later));
        // Tags and globs cannot run into each other, whatever they hold.
        let t1 = rule("m", &[("a", &["b"]), ("c", &["d"])], "5m");
        let t2 = rule("m", &[("a", &["b tag 1:c 1:d"])], "5m");
        assert_ne!(identity(&t1), identity(&t2));
        assert_eq!(identity(&t1), "1:m tag 1:a 1:b tag 1:c 1:d every 300s");
        // One window however it is spelled (found in review: `5m` and
        // `5m ` shared one, `5m` and `300s` did not).
        for spelling in ["300s", "5m ", " 5m"] {
            assert_eq!(
                identity(&rule("n", &[], spelling)),
                identity(&b),
                "{spelling:?}"
            );
        }
    }
}

/// The series key of a normalised line: up to the first space not escaped.
pub fn series_key(line: &[u8]) -> Option<&[u8]> {
    let end = (1..line.len()).find(|&i| line[i] == b' ' && line[i - 1] != b'\\')?;
    line.get(..end)
}

/// The warm destinations the windows write to, with the retention each is
/// given (`warm_days` in seconds; `None`: for ever): noted by the commit
/// thread as it first names one, asked by the forwarder when a delivery
/// finds one missing (`manage_retention`). Exact names only: a raw policy
/// that merely looks like `<rp>_<window>` is never taken for one (review).
#[derive(Debug, Default)]
pub struct WarmDestinations {
    known:
        std::sync::Mutex<std::collections::HashMap<crate::route::dest::Destination, Option<u64>>>,
}

impl WarmDestinations {
    pub fn note(&self, dest: &crate::route::dest::Destination, retention_s: Option<u64>) {
        if let Ok(mut k) = self.known.lock() {
            k.entry(dest.clone()).or_insert(retention_s);
        }
    }

    /// `Some(retention)` when `dest` is a warm destination.
    pub fn retention_of(&self, dest: &crate::route::dest::Destination) -> Option<Option<u64>> {
        self.known.lock().ok()?.get(dest).copied()
    }
}
