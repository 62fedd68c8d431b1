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
    /// Notes ids just committed with a provisional stamp. The ranges stay a
    /// sorted union: a drained buffer hands out its ids again (no
    /// AUTOINCREMENT), and an id already noted must neither grow the list
    /// (a gateway whose clock is never set commits for ever) nor be
    /// restamped twice.
    pub fn committed(&mut self, ids: &[i64]) {
        for &id in ids {
            self.insert(id);
        }
    }

    fn insert(&mut self, id: i64) {
        // The first range ending at or after id - 1.
        let i = self
            .ranges
            .partition_point(|&(_, hi)| hi < id.saturating_sub(1));
        match self.ranges.get(i).copied() {
            Some((lo, hi)) if lo <= id && id <= hi => {}
            Some((lo, hi)) if hi.saturating_add(1) == id => {
                self.ranges[i] = (lo, id);
                // Joined the next range?
                if let Some(&(next_lo, next_hi)) = self.ranges.get(i + 1)
                    && next_lo == id.saturating_add(1)
                {
                    self.ranges[i] = (lo, next_hi);
                    self.ranges.remove(i + 1);
                }
            }
            Some((lo, hi)) if lo == id.saturating_add(1) => self.ranges[i] = (id, hi),
            _ => self.ranges.insert(i, (id, id)),
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
        assert_eq!(p.ranges, vec![(1, 2), (5, 8)]);
        p.committed(&[4, 3]);
        assert_eq!(p.ranges, vec![(1, 8)], "joined");
    }

    #[test]
    fn ids_handed_out_again_do_not_grow_the_ranges() {
        // Found by review: a drained buffer gives id 1 to every commit; one
        // range each leaked memory on a gateway whose clock is never set.
        let mut p = Provisional::default();
        for _ in 0..100_000 {
            p.committed(&[1]);
        }
        assert_eq!(p.ranges, vec![(1, 1)]);
    }

    #[test]
    fn the_ranges_are_the_union_of_the_ids_whatever_their_order() {
        // A seeded sweep against a set: same coverage, sorted, disjoint,
        // never adjacent.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..200 {
            let mut p = Provisional::default();
            let mut set = std::collections::BTreeSet::new();
            for _ in 0..300 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let id = (seed % 64) as i64 + 1;
                p.committed(&[id]);
                set.insert(id);
            }
            let covered: std::collections::BTreeSet<i64> =
                p.ranges.iter().flat_map(|&(lo, hi)| lo..=hi).collect();
            assert_eq!(covered, set);
            for w in p.ranges.windows(2) {
                assert!(w[0].1 + 1 < w[1].0, "{:?}", p.ranges);
            }
        }
    }
}
