//! One line of a committed batch fed to the windows (`Downsampler::feed`):
//! the lanes its rules write, its key (`downsample::line_key`) asked about
//! and remembered as a line counted lately (`downsample::recent`), and
//! whether its batch stays whole.

use super::*;
use crate::downsample::recent::partly;
use crate::downsample::windows::SeriesHint;

impl Downsampler {
    /// One line of a batch fed (`feed`): into each lane a rule matching it
    /// writes, once a warm destination. A line the splitter will not read
    /// is not aggregated (the codec keeps it as text; `lineproto::split`):
    /// the callers count it as not whole.
    pub(super) fn feed_line(
        &mut self,
        st: &mut FeedState,
        dest: &Destination,
        key: &[u8],
        fields: &[(&[u8], crate::lineproto::split::Value)],
        ts: i64,
        mut hints: Option<(&mut ShapeHints, usize)>,
    ) {
        self.rules.matching(key, &mut st.matches);
        if st.matches.is_empty() {
            st.whole = false;
            return;
        }
        // The warm destinations this line went to (reused: no allocation a
        // line).
        let mut written = std::mem::take(&mut st.written);
        written.clear();
        for &rule in &st.matches {
            let (warm, seed) = match st.lanes.get(rule).copied().flatten() {
                Some(lane) => lane,
                None => {
                    let to = self.warm_dest(rule, dest);
                    let id = self.dest_id(&to, rule);
                    let identity = self.identities.get(rule).map_or("", |i| i.as_str());
                    let lane = (
                        id,
                        line_key::lane_seed(self.secret, identity, &to.db, &to.rp),
                    );
                    if let Some(slot) = st.lanes.get_mut(rule) {
                        *slot = Some(lane);
                    }
                    lane
                }
            };
            if written.contains(&warm) {
                continue;
            }
            written.push(warm);
            let lane = Lane {
                rule: rule as u16,
                dest: warm,
            };
            // Whole only when every value was counted: a repeat by the
            // slots may be a corrected value the windows do not keep
            // (InfluxDB keeps the last write), so its raw point must
            // stay (second review). A repeat by the set is one counted.
            let (mut any_counted, mut all_counted, mut repeat) = (false, true, false);
            let mut partial_repeat = false;
            let dests = self.dests.len() as u32;
            let recent = &mut self.recent;
            let scratch = &mut st.scratch;
            let added = self.windows.add_line_unless(
                lane,
                key,
                fields,
                ts,
                seed,
                // The hint of this line's shape in this lane: the n-th
                // lane a line of the shape writes is the same lane each
                // time (rules in their order, `matching`).
                (hints.as_mut()).and_then(|(h, shape)| h.get(written.len() - 1, *shape)),
                |k| {
                    // The first release numbered warm destinations as
                    // they came; this process may number them otherwise:
                    // each number is tried (found in review), only while
                    // its keys are looked for, only for a line that may
                    // be a retry. The line's key and its partly-counted
                    // twin are looked for in one walk (`contains_pair`).
                    let (whole_seen, partly_seen) = recent.contains_pair(k);
                    repeat = whole_seen
                        || (recent.has_legacy()
                            && (0..dests).any(|id| {
                                recent.legacy_contains(line_key::legacy(
                                    scratch,
                                    key,
                                    fields,
                                    ts,
                                    (lane.rule, id),
                                ))
                            }));
                    if !repeat && partly_seen {
                        (repeat, partial_repeat) = (true, true);
                    }
                    repeat
                },
                |_, o| {
                    any_counted |= o == Outcome::Counted;
                    all_counted &= o == Outcome::Counted;
                    st.whole &= o == Outcome::Counted;
                },
            );
            if repeat {
                // A retry of a line partly counted: the windows do not
                // hold all it says, so its batch is not whole.
                st.whole &= !partial_repeat;
                continue;
            }
            // Remembered once a value of it counted: a retry of a line
            // refused whole (full, late, a type conflict) is not taken for a
            // repeat, and no key is remembered twice (second review). A
            // line partly counted is remembered as such (`partly`): its
            // retry must not count its counted values again (found in
            // review: a field named twice, the second a repeat, left the
            // line unremembered), and is not whole either; the value
            // refused stays so (kept raw, its batch not whole).
            let k = if all_counted {
                added.key
            } else {
                partly(added.key)
            };
            if any_counted {
                // Not there: a line that may have been counted was looked
                // for, with its twin, just now (`repeat` above: it is asked
                // for every such line), and one that may not never was
                // counted. (A second lookup here was 10 ns a line with
                // several producers, profiled.)
                self.recent.remember(k);
                if self.fresh.len() >= 2 * RECENT_LINES {
                    // The newest RECENT_LINES are what a checkpoint
                    // saves (found in review: cut to half of them).
                    self.fresh.drain(..RECENT_LINES);
                }
                self.fresh.push(k);
            }
        }
        st.written = written;
    }
}

/// Lanes a line's shape keeps a series hint for (`feed_split`): a line
/// two rules take (say 5m and 1h of one measurement) writes two lanes, each
/// with its own series; past these few, the series is looked up.
const HINTED_LANES: usize = 4;

/// One batch's series hints (`SeriesHint`): by the n-th lane a line
/// writes, then by the line's shape (the codec's number). A lane's are made
/// when a line first writes it: one rule's batch of 10,000 shapes keeps
/// 160 KB of them, not four times as many (hints out of the cache cost more
/// than the lookups they saved, `benches/downsample.rs`).
pub(super) struct ShapeHints {
    shapes: usize,
    by_lane: [Vec<SeriesHint>; HINTED_LANES],
}

impl ShapeHints {
    pub(super) fn new(shapes: usize) -> ShapeHints {
        ShapeHints {
            shapes,
            by_lane: Default::default(),
        }
    }

    /// Shape `shape`'s hint in its `lane`-th lane (from 0); `None` past
    /// `HINTED_LANES` or the shapes.
    fn get(&mut self, lane: usize, shape: usize) -> Option<&mut SeriesHint> {
        let hints = self.by_lane.get_mut(lane)?;
        if hints.is_empty() {
            hints.resize(self.shapes, SeriesHint::default());
        }
        hints.get_mut(shape)
    }
}

/// One batch's feed: its answer and what its lines reuse.
pub(super) struct FeedState {
    pub(super) whole: bool,
    pub(super) matches: Vec<usize>,
    /// Per matching rule (by index), its lane's warm destination id and
    /// key seed (`line_key::lane_seed`).
    lanes: Vec<Option<(u32, u64)>>,
    scratch: Vec<u8>,
    written: Vec<u32>,
}

impl FeedState {
    pub(super) fn new(d: &mut Downsampler) -> FeedState {
        FeedState {
            whole: true,
            matches: std::mem::take(&mut d.matches),
            lanes: vec![None; d.identities.len()],
            scratch: Vec::with_capacity(256),
            written: Vec::with_capacity(4),
        }
    }
}
