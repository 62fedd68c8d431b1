//! Restamping what was committed before the wall clock was set (record time,
//! `clock::RecordClock`): the commit thread notes the ids it committed while
//! record time was provisional, and once the clock is set moves their stamps
//! to the final frame, a bounded chunk per cut.
//!
//! Why ids and not only the stamp's range: a range of values also catches
//! another run's stamps (an earlier provisional run's, or a real one from a
//! run months before); only this run's own commits are moved, and within
//! them only stamps in the provisional range. Why chunks behind the quota
//! check: the update writes pages through the WAL, and after a long outage
//! the backlog is large and the disk near its quota.

use crate::clock::Restamp;
use crate::wal::Wal;

/// Rows restamped per cut at most: a few pages of WAL, never the backlog's.
const RESTAMP_ROWS_PER_CUT: i64 = 256;

/// Ids committed while record time was provisional, as inclusive ranges in
/// commit order (ids mostly follow each other: few ranges).
#[derive(Debug, Default)]
pub struct Provisional {
    ranges: Vec<(i64, i64)>,
}

impl Provisional {
    /// Notes ids just committed with a provisional stamp.
    pub fn committed(&mut self, ids: &[i64]) {
        for &id in ids {
            match self.ranges.last_mut() {
                Some((_, hi)) if *hi + 1 == id => *hi = id,
                _ => self.ranges.push((id, id)),
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Restamps the next chunk under `r`; false when the buffer refused
    /// (quota, disk): tried again at the next cut.
    pub fn restamp_some(&mut self, wal: &mut Wal, r: Restamp) -> bool {
        let Some(&(lo, hi)) = self.ranges.first() else {
            return true;
        };
        let end = hi.min(lo.saturating_add(RESTAMP_ROWS_PER_CUT - 1));
        match wal.restamp(r, lo, end) {
            Ok(_) => {
                if end >= hi {
                    self.ranges.remove(0);
                } else if let Some(first) = self.ranges.first_mut() {
                    first.0 = end + 1;
                }
                if self.ranges.is_empty() {
                    log::info!(
                        "the wall clock was set: what was committed before it is restamped by {} s",
                        r.shift_ms / 1000
                    );
                }
                true
            }
            Err(e) => {
                log::warn!("cannot restamp what was committed before the clock was set yet: {e}");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ids_make_one_range_and_gaps_start_another() {
        let mut p = Provisional::default();
        p.committed(&[5, 6, 7]);
        p.committed(&[8]);
        p.committed(&[1, 2]); // ids restart after the buffer emptied
        assert_eq!(p.ranges, vec![(5, 8), (1, 2)]);
    }
}
