//! The warm tier on the commit thread: the downsampling windows fed with
//! what each commit stored, checkpointed with the buffer's custody of raw
//! batches (`wal/custody.rs`), and restored after a stop or a crash from the
//! last checkpoint and the batches committed after it.
//!
//! The commit thread's part, in order (`warm.rs` says when):
//! 1. `takes(payload)`: does a rule take any line of a cut's batch? Then it
//!    is committed with a duty (`Wal::commit_with_duty`). Asked before the
//!    commit and changing nothing: a refused commit must leave the windows
//!    untouched (its producer retries; counting it now would count it twice).
//! 2. after the commit: `feed(dest, payload)`;
//! 3. every checkpoint interval and at shutdown: `checkpoint(seq)` and
//!    `Wal::checkpoint_windows`, `seq` being the last commit fed.
//!
//! At start: `rebuild` (`restore` with `Wal::saved_windows`, then `feed`
//! each batch `Wal::replay_duties` gives, in its order): the windows the
//! stop found. The same after a checkpoint whose write failed: computing it
//! marked the sets saved and took the emitted lines, so the windows in
//! memory no longer say what the next checkpoint must write (review); the
//! buffer still holds the last checkpoint and every batch after it.
//!
//! `seq` must be a commit this thread fed: it is the only writer of raw
//! batches (one committing connection), and feeds each commit before the
//! next, so `Wal::last_commit_seq` is.
//!
//! Lanes: a rule (by identity, `route::lifecycle`) × the warm destination
//! its aggregates go to: the raw points' database, retention policy
//! `warm_destination` or `<rp>_<window>` (`autogen` for the default
//! policy; the window spelled in its largest whole unit, so `5m` and `300s`
//! both give `autogen_5m`); on 2.x the bucket `<bucket>/<that>` by the DBRP
//! mapping, as every destination is named. Keyed by where they are written,
//! not where the raw points went: points for `rp ""` and `rp autogen`
//! (one policy on most servers) feed one window, where two would overwrite
//! each other's lines upstream (found in review). For the same reason a
//! line feeds each warm destination once: when several rules match it and
//! write to one destination, the first in config order takes it.

use crate::config::Lifecycle;
use crate::downsample::line_key;
use crate::downsample::recent::{RECENT_LINES, RecentLines};
use crate::downsample::windows::{Lane, Outcome, Rule, StateError, Windows};
use crate::lineproto::split_lines::SplitLines;
use crate::route::dest::Destination;
use crate::route::lifecycle::{LifecycleRules, WarmDestinations, identity, series_key};
use crate::wal::{LaneKey, NewBatch, SavedWindows, WindowsCheckpoint};
use std::collections::{BTreeMap, HashMap};

pub struct Downsampler {
    rules: LifecycleRules,
    /// Per downsampling rule (`rules`' order): its identity and the
    /// retention policy name of its aggregates, `None` to derive it.
    identities: Vec<String>,
    /// The downsampling rules, for the names of their warm destinations.
    taking: Vec<crate::config::LifecycleRule>,
    /// Saved sets of rules no longer configured: deleted at the next
    /// checkpoint.
    stale: Vec<(LaneKey, i64)>,
    /// Warm destinations by lane id (with their retention), and back.
    dests: Vec<Destination>,
    retentions: Vec<Option<u64>>,
    dest_ids: HashMap<Destination, u32>,
    windows: Windows,
    /// Aggregate lines emitted since the last checkpoint, by warm
    /// destination: (lines, points, first ts, last ts).
    emitted: BTreeMap<Destination, (Vec<u8>, usize, i64, i64)>,
    matches: Vec<usize>,
    /// Lines counted lately: a retry older than a series' horizon; the
    /// keys new since the last checkpoint, which saves them.
    recent: RecentLines,
    fresh: Vec<u64>,
    /// The buffer's secret, keying every line key (`line_key::lane_seed`;
    /// 0 until a buffer's saved windows give it).
    secret: u64,
    /// Saved windows were dropped (a rule gone or changed) or discarded
    /// (unreadable): raw batches marked whole may have had their points
    /// in them, so the marks must go before any degrade (second review).
    pub lost_windows: bool,
    /// Where the forwarder learns which destinations are warm ones.
    registry: Option<std::sync::Arc<WarmDestinations>>,
    /// Batches fed since the last checkpoint whose every value was counted
    /// (id, commit): the checkpoint marks them (`downsample_whole`).
    whole: Vec<(i64, i64)>,
}

impl Downsampler {
    /// `None` when no rule downsamples.
    pub fn from_config(l: &Lifecycle) -> Option<Downsampler> {
        let rules = LifecycleRules::from_config(l);
        if rules.is_empty() {
            return None;
        }
        let taking: Vec<_> = l
            .rules
            .iter()
            .filter(|r| !r.downsample.is_empty())
            .collect();
        let windowing: Vec<Rule> = taking.iter().filter_map(|r| Rule::from_config(r)).collect();
        if windowing.len() != taking.len() {
            // A config that passed validation always converts.
            return None;
        }
        Some(Downsampler {
            rules,
            identities: taking.iter().map(|r| identity(r)).collect(),
            taking: taking.into_iter().cloned().collect(),
            stale: Vec::new(),
            dests: Vec::new(),
            retentions: Vec::new(),
            dest_ids: HashMap::new(),
            windows: Windows::new(windowing, l.max_open_windows),
            emitted: BTreeMap::new(),
            matches: Vec::new(),
            recent: RecentLines::default(),
            fresh: Vec::new(),
            secret: 0,
            registry: None,
            lost_windows: false,
            whole: Vec::new(),
        })
    }

    /// As `from_config`, with the windows the last checkpoint saved. Lanes
    /// of rules no longer configured are dropped (returned, to log).
    pub fn restore(
        l: &Lifecycle,
        saved: &SavedWindows,
    ) -> Result<(Option<Downsampler>, usize), StateError> {
        let Some(mut d) = Downsampler::from_config(l) else {
            return Ok((None, saved.sets.len()));
        };
        d.secret = saved.secret;
        let lane_of = |d: &mut Downsampler, k: &LaneKey| -> Option<Lane> {
            let rule = d.identities.iter().position(|i| *i == k.rule)?;
            Some(Lane {
                rule: u16::try_from(rule).ok()?,
                dest: d.dest_id(&k.dest, rule),
            })
        };
        let mut dropped = 0;
        let mut marks = Vec::new();
        for (k, w) in &saved.watermarks {
            match lane_of(&mut d, k) {
                Some(lane) => marks.push((lane, *w)),
                None => dropped += 1,
            }
        }
        let mut sets = Vec::new();
        for (k, start, blob) in &saved.sets {
            match lane_of(&mut d, k) {
                Some(lane) => sets.push((lane, *start, blob.as_slice())),
                None => {
                    // A rule gone: its rows go at the next checkpoint, not
                    // back again if the rule returns (found in review).
                    dropped += 1;
                    d.stale.push((k.clone(), *start));
                }
            }
        }
        let windowing: Vec<Rule> = l
            .rules
            .iter()
            .filter(|r| !r.downsample.is_empty())
            .filter_map(Rule::from_config)
            .collect();
        let (windows, _) = Windows::restore(windowing, l.max_open_windows, &marks, sets)?;
        for &k in &saved.recent {
            d.recent.remember(k);
        }
        d.recent.remember_legacy(&saved.legacy_recent);
        let stale = std::mem::take(&mut d.stale);
        d.windows = windows;
        d.stale = stale;
        d.lost_windows = dropped > 0;
        Ok((Some(d), dropped))
    }

    /// The windows as the buffer has them: the last checkpoint, then every
    /// batch committed after it. `None` without downsampling rules. A batch
    /// that no longer decodes is skipped (logged): its points were counted
    /// before the crash and cannot be again.
    pub fn rebuild(l: &Lifecycle, wal: &crate::wal::Wal) -> Result<Option<Downsampler>, String> {
        let saved = wal.saved_windows().map_err(|e| e.to_string())?;
        let (d, dropped) = Downsampler::restore(l, &saved).map_err(|e| e.to_string())?;
        if dropped > 0 {
            log::warn!(
                "downsampling: {dropped} saved windows or marks of rules no longer configured dropped"
            );
        }
        let Some(mut d) = d else {
            return Ok(None);
        };
        let bad = wal
            .replay_duties(|owed, dest, lines| d.feed_batch(owed, dest, lines, None))
            .map_err(|e| e.to_string())?;
        if !bad.is_empty() {
            log::warn!(
                "downsampling: {} owed batches no longer decode: skipped",
                bad.len()
            );
        }
        Ok(Some(d))
    }

    /// Deletes every saved set at the next checkpoint: they could not be
    /// read, and must not fail every start after this one.
    pub fn discard_saved(&mut self, saved: &SavedWindows) {
        (self.stale).extend(saved.sets.iter().map(|(k, start, _)| (k.clone(), *start)));
        self.lost_windows = true;
        // The keys saved and to come are still the buffer's.
        self.secret = saved.secret;
    }

    /// The secret keying this process's line keys.
    #[cfg(test)]
    pub(crate) fn secret(&self) -> u64 {
        self.secret
    }

    /// Notes every warm destination, now and as they come, in `registry`.
    pub fn set_registry(&mut self, registry: std::sync::Arc<WarmDestinations>) {
        for (dest, retention) in self.dests.iter().zip(&self.retentions) {
            registry.note(dest, *retention);
        }
        self.registry = Some(registry);
    }

    /// The id of warm destination `dest`, which rule `rule` writes to.
    fn dest_id(&mut self, dest: &Destination, rule: usize) -> u32 {
        if let Some(&id) = self.dest_ids.get(dest) {
            return id;
        }
        // The first rule writing there gives the retention, as it takes
        // the lines.
        let retention = (self.taking.get(rule)).and_then(|r| r.warm_days.as_ref()?.seconds().ok());
        if let Some(r) = &self.registry {
            r.note(dest, retention);
        }
        self.retentions.push(retention);
        let id = self.dests.len() as u32;
        self.dests.push(dest.clone());
        self.dest_ids.insert(dest.clone(), id);
        id
    }

    /// Does a rule take any line of this payload (normalised lines)?
    pub fn takes(&mut self, payload: &[u8]) -> bool {
        let mut matches = std::mem::take(&mut self.matches);
        let any = crate::lineproto::lines(payload).any(|line| {
            let Some(key) = series_key(line) else {
                return false;
            };
            self.rules.matching(key, &mut matches);
            !matches.is_empty()
        });
        self.matches = matches;
        any
    }

    /// Where rule `rule`'s aggregates of points bound for `raw` go.
    fn warm_dest(&self, rule: usize, raw: &Destination) -> Destination {
        Destination {
            db: raw.db.clone(),
            rp: (self.taking.get(rule))
                .and_then(|r| r.warm_rp(&raw.rp))
                .unwrap_or_default(),
        }
    }

    /// [`Downsampler::feed`] of batch `id` of commit `seq`, remembered for
    /// the next checkpoint when every value of it was counted; from `lines`
    /// when the commit thread split it already (`SplitLines` of `payload`).
    pub fn feed_batch(
        &mut self,
        (id, seq): (i64, i64),
        dest: &Destination,
        payload: &[u8],
        lines: Option<&SplitLines>,
    ) {
        let whole = match lines {
            Some(lines) => self.feed_split(dest, lines),
            None => self.feed(dest, payload),
        };
        if whole {
            self.whole.push((id, seq));
        }
    }

    /// Counts a committed batch's lines into their windows. True when a
    /// rule took every line and every value was counted (or was a repeat
    /// of one counted): the windows then hold all the batch says. Split
    /// line by line: no arena (a batch too large to share its split).
    pub fn feed(&mut self, dest: &Destination, payload: &[u8]) -> bool {
        let mut st = FeedState::new(self);
        let mut fields = Vec::with_capacity(16);
        for line in crate::lineproto::lines(payload) {
            match crate::lineproto::split::split_into(line, &mut fields) {
                Some((key, ts)) => self.feed_line(&mut st, dest, key, &fields, ts, None),
                None => st.whole = false,
            }
        }
        self.matches = st.matches;
        st.whole
    }

    /// `feed`, of a payload split already (the split the codec took). With
    /// the codec's line shapes (`SplitLines::shapes`), hints a shape
    /// (`ShapeHints`): a series found once a batch, lane and window.
    pub fn feed_split(&mut self, dest: &Destination, lines: &SplitLines) -> bool {
        let mut st = FeedState::new(self);
        let shapes = (lines.shapes.get()).filter(|s| s.len() == lines.lines.len());
        let n_shapes = shapes
            .and_then(|s| s.iter().max())
            .map_or(0, |&m| m as usize + 1);
        let mut hints = ShapeHints::new(n_shapes);
        for (i, line) in lines.iter().enumerate() {
            let shape = shapes.and_then(|s| s.get(i)).map(|&s| s as usize);
            let hint = shape.map(|s| (&mut hints, s));
            match line {
                Some((key, fields, ts)) => self.feed_line(&mut st, dest, key, fields, ts, hint),
                None => st.whole = false,
            }
        }
        self.matches = st.matches;
        st.whole
    }

    /// Closes what event time has passed and returns the checkpoint's rows,
    /// with the lines emitted since the last one as batches of their warm
    /// destinations. `covers_seq`: the last commit fed.
    pub fn checkpoint(&mut self, covers_seq: i64) -> WindowsCheckpoint {
        let mut emitted = std::mem::take(&mut self.emitted);
        let dests = &self.dests;
        self.windows.close(|lane, line| {
            let Some(dest) = dests.get(lane.dest as usize).cloned() else {
                return;
            };
            let ts = line_ts(line);
            let e = emitted.entry(dest).or_insert((Vec::new(), 0, ts, ts));
            e.0.extend_from_slice(line);
            e.1 += 1;
            e.2 = e.2.min(ts);
            e.3 = e.3.max(ts);
        });
        let c = self.windows.checkpoint();
        let lane_key = |lane: Lane| LaneKey {
            rule: self.identities[usize::from(lane.rule)].clone(),
            dest: self.dests[lane.dest as usize].clone(),
        };
        WindowsCheckpoint {
            covers_seq,
            sets: c
                .sets
                .into_iter()
                .map(|(l, s, b)| (lane_key(l), s, b))
                .collect(),
            removed: (c.removed.into_iter())
                .map(|(l, s)| (lane_key(l), s))
                .chain(std::mem::take(&mut self.stale))
                .collect(),
            watermarks: c
                .watermarks
                .into_iter()
                .map(|(l, w)| (lane_key(l), w))
                .collect(),
            emitted: emitted
                .into_iter()
                .map(|(dest, (payload, points, first_ts, last_ts))| NewBatch {
                    dest,
                    points,
                    first_ts,
                    last_ts,
                    payload,
                })
                .collect(),
            whole: std::mem::take(&mut self.whole),
            recent: {
                let mut fresh = std::mem::take(&mut self.fresh);
                fresh.drain(..fresh.len().saturating_sub(RECENT_LINES));
                fresh
            },
            forget_legacy: !self.recent.has_legacy(),
            warm: (self.dests.iter().cloned())
                .zip(self.retentions.iter().copied())
                .collect(),
        }
    }

    /// Field windows held.
    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }

    pub fn counts(&self) -> crate::downsample::windows::Counts {
        self.windows.counts
    }
}

/// An emitted line's timestamp (its last field, before the newline).
fn line_ts(line: &[u8]) -> i64 {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let at = line.iter().rposition(|&b| b == b' ').map_or(0, |i| i + 1);
    std::str::from_utf8(&line[at..])
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

#[path = "feed_line.rs"]
mod feed_line;
use feed_line::{FeedState, ShapeHints};

#[cfg(test)]
#[path = "downsampler_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "degrade_tests.rs"]
mod degrade_tests;

#[cfg(test)]
#[path = "retry_tests.rs"]
mod retry_tests;

#[cfg(test)]
#[path = "shape_hint_tests.rs"]
mod shape_hint_tests;
