//! The cold tier's part on the commit thread: which lines of a cut owe an
//! archive (`lifecycle.rules[].cold_storage`), so that each batch is owed
//! to one archive or none and its duty covers every line it holds
//! (`wal/archive.rs`).
//!
//! A batch whose lines all go to one archive, or none, is committed as it
//! is. One that mixes is split into one batch per archive and one of the
//! rest, each keeping its lines' order, all in the same commit: the write
//! stays atomic and its 204 still waits for that one commit. A series is
//! always whole on one side (rules match by measurement and tags), so
//! splitting never reorders two writes of one point.
//!
//! A line that several archiving rules take goes to the first one's archive
//! (config order). What is owed is decided here, at commit, once: a later
//! config never changes which of a buffered batch's lines are archived.

use crate::config::Lifecycle;
use crate::lineproto::line_ts;
use crate::route::lifecycle::{LifecycleRules, series_key};
use crate::wal::NewBatch;

pub struct ColdTier {
    rules: LifecycleRules,
    /// Reused between lines: the rules a series key matches.
    matches: Vec<usize>,
}

impl ColdTier {
    /// `None` when no rule archives.
    pub fn from_config(l: &Lifecycle) -> Option<ColdTier> {
        let rules = LifecycleRules::cold(l);
        (!rules.is_empty()).then(|| ColdTier {
            rules,
            matches: Vec::new(),
        })
    }

    /// The archive a line is owed to (its first archiving rule's).
    fn target_of(&mut self, line: &[u8]) -> Option<usize> {
        let key = series_key(line)?;
        self.rules.matching(key, &mut self.matches);
        self.matches.first().copied()
    }

    /// Splits the cut's batches where they mix archives (see the module
    /// doc); returns the batches and, per batch, the archive it owes. A
    /// batch `restored[i]` (`hissrv restore` sending back what an archive
    /// holds) owes none: it is there already. `restored` is updated to say
    /// it of each batch returned.
    pub fn split(
        &mut self,
        batches: Vec<NewBatch>,
        restored: &mut Vec<bool>,
    ) -> (Vec<NewBatch>, Vec<Option<String>>) {
        let mut out = Vec::with_capacity(batches.len());
        let mut owed = Vec::with_capacity(batches.len());
        let was = std::mem::take(restored);
        for (i, b) in batches.into_iter().enumerate() {
            if was.get(i).copied().unwrap_or(false) {
                owed.push(None);
                out.push(b);
                restored.push(true);
                continue;
            }
            let mut first: Option<Option<usize>> = None;
            let mut mixed = false;
            for line in crate::lineproto::lines(&b.payload) {
                let t = self.target_of(line);
                match first {
                    None => first = Some(t),
                    Some(f) if f != t => {
                        mixed = true;
                        break;
                    }
                    Some(_) => {}
                }
            }
            if !mixed {
                let t = first.flatten().and_then(|i| self.rules.cold_target(i));
                owed.push(t.map(str::to_string));
                out.push(b);
                restored.push(false);
                continue;
            }
            // Per archive in order of first appearance, then the rest.
            let mut parts: Vec<(Option<usize>, Vec<u8>, Stamps)> = Vec::new();
            for line in crate::lineproto::lines(&b.payload) {
                let t = self.target_of(line);
                let at = match parts.iter().position(|(pt, _, _)| *pt == t) {
                    Some(at) => at,
                    None => {
                        parts.push((t, Vec::new(), Stamps::default()));
                        parts.len() - 1
                    }
                };
                if let Some((_, payload, stamps)) = parts.get_mut(at) {
                    payload.extend_from_slice(line);
                    payload.push(b'\n');
                    stamps.add(line_ts(line));
                }
            }
            parts.sort_by_key(|(t, _, _)| t.is_none());
            for (t, payload, s) in parts {
                owed.push(
                    t.and_then(|i| self.rules.cold_target(i))
                        .map(str::to_string),
                );
                out.push(NewBatch {
                    dest: b.dest.clone(),
                    points: s.points,
                    first_ts: s.first.unwrap_or(b.first_ts),
                    last_ts: s.last.unwrap_or(b.last_ts),
                    payload,
                });
            }
        }
        (out, owed)
    }
}

/// A part's point count and time range.
#[derive(Default)]
struct Stamps {
    points: usize,
    first: Option<i64>,
    last: Option<i64>,
}

impl Stamps {
    fn add(&mut self, ts: Option<i64>) {
        self.points += 1;
        if let Some(ts) = ts {
            self.first = Some(self.first.map_or(ts, |f| f.min(ts)));
            self.last = Some(self.last.map_or(ts, |l| l.max(ts)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Lifecycle, LifecycleRule};
    use crate::route::dest::Destination;

    fn tier(rules: &[(&str, &str)]) -> ColdTier {
        let l = Lifecycle {
            rules: rules
                .iter()
                .map(|(m, c)| LifecycleRule {
                    measurement: m.to_string(),
                    cold_storage: c.to_string(),
                    ..LifecycleRule::default()
                })
                .collect(),
            ..Lifecycle::default()
        };
        ColdTier::from_config(&l).expect("a rule archives")
    }

    fn batch(payload: &str) -> NewBatch {
        NewBatch {
            dest: Destination {
                db: "db".into(),
                rp: String::new(),
            },
            points: payload.lines().count(),
            first_ts: 1,
            last_ts: 9,
            payload: payload.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_batch_mixing_archives_is_split_per_archive_keeping_each_lines_order() {
        let mut t = tier(&[("a", "file:///x/"), ("b*", "file:///y/")]);
        let mixed = "a v=1 5\nc v=2 3\nb1 v=3 7\na v=4 2\nc v=5 8\n";
        let (out, owed) = t.split(
            vec![batch(mixed), batch("a v=1 1\n"), batch("c v=1 1\n")],
            &mut vec![false, false, false],
        );
        let texts: Vec<&str> = out
            .iter()
            .map(|b| std::str::from_utf8(&b.payload).unwrap())
            .collect();
        assert_eq!(
            texts,
            [
                "a v=1 5\na v=4 2\n",
                "b1 v=3 7\n",
                "c v=2 3\nc v=5 8\n",
                "a v=1 1\n",
                "c v=1 1\n"
            ]
        );
        assert_eq!(
            owed,
            [
                Some("file:///x/".to_string()),
                Some("file:///y/".into()),
                None,
                Some("file:///x/".into()),
                None
            ]
        );
        assert_eq!(
            (out[0].points, out[0].first_ts, out[0].last_ts),
            (2, 2, 5),
            "a part's points and range are its own"
        );
        assert_eq!((out[2].points, out[2].first_ts, out[2].last_ts), (2, 3, 8));
        let total: usize = out[..3].iter().map(|b| b.points).sum();
        assert_eq!(total, 5, "no line lost or doubled by the split");
    }

    #[test]
    fn a_line_two_archiving_rules_take_goes_to_the_first_ones_archive() {
        let mut t = tier(&[("a*", "file:///first/"), ("ab", "file:///second/")]);
        let (out, owed) = t.split(vec![batch("ab v=1 1\n")], &mut Vec::new());
        assert_eq!(out.len(), 1);
        assert_eq!(owed, [Some("file:///first/".to_string())]);
    }

    #[test]
    fn a_quoted_newline_in_a_string_field_stays_inside_its_line() {
        let mut t = tier(&[("a", "file:///x/")]);
        let mixed = "a s=\"x\ny\" 1\nc v=2 2\n";
        let (out, _) = t.split(vec![batch(mixed)], &mut Vec::new());
        assert_eq!(out[0].payload, b"a s=\"x\ny\" 1\n");
        assert_eq!(out[1].payload, b"c v=2 2\n");
    }
}
