//! Checkpoints of the windows: what changed since the last one (the sets
//! to write, those to delete, the watermarks), and windows restored from
//! the rows checkpoints wrote. The bytes of a set are `state`'s.

use super::state::{StateError, decode, encode};
use super::{Lane, Rule, Windows};

/// What changed since the last checkpoint, to write in one transaction.
#[derive(Debug, Default)]
pub struct Checkpoint {
    /// Each set changed since: (lane, window start, blob) to write over
    /// its row.
    pub sets: Vec<(Lane, i64, Vec<u8>)>,
    /// Sets forgotten since (past `max_lateness`): rows to delete.
    pub removed: Vec<(Lane, i64)>,
    /// Every lane's watermark.
    pub watermarks: Vec<(Lane, i64)>,
}

impl Windows {
    /// The sets changed since the last checkpoint, and the ones forgotten:
    /// a checkpoint writes these rows, not every window held (150 bytes a
    /// field window, tens of MB for 10,000 series on an SD card).
    pub fn checkpoint(&mut self) -> Checkpoint {
        let sets = self
            .open
            .iter_mut()
            .filter(|(_, set)| set.unsaved)
            .map(|(&(lane, start), set)| {
                set.unsaved = false;
                (lane, start, encode(set))
            })
            .collect();
        Checkpoint {
            sets,
            removed: std::mem::take(&mut self.removed),
            watermarks: self.watermarks.iter().map(|(&l, &w)| (l, w)).collect(),
        }
    }

    /// Windows as a checkpoint left them. Sets of a lane whose rule is
    /// gone are dropped (the count is returned, for the log); a damaged set
    /// is an error, never a guess.
    pub fn restore<'a>(
        rules: Vec<Rule>,
        max_open: usize,
        watermarks: &[(Lane, i64)],
        sets: impl IntoIterator<Item = (Lane, i64, &'a [u8])>,
    ) -> Result<(Windows, usize), StateError> {
        let mut w = Windows::new(rules, max_open);
        let mut dropped = 0;
        for &(lane, mark) in watermarks {
            if usize::from(lane.rule) < w.rules.len() {
                w.watermarks.insert(lane, mark);
            }
        }
        for (lane, start, blob) in sets {
            if usize::from(lane.rule) >= w.rules.len() {
                dropped += 1;
                continue;
            }
            let (set, held) = decode(blob)?;
            if w.open.insert((lane, start), set).is_some() {
                return Err(StateError("a set twice".into()));
            }
            w.held += held;
        }
        Ok((w, dropped))
    }
}
