//! What became of each value given to the windows (`Outcome`), and the
//! counters of them the metrics show (`Counts`).

/// What became of a point given to `add`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Counted,
    /// A retry of a point already counted.
    Repeat,
    /// For a window already forgotten (past `max_lateness`).
    Late,
    /// `max_open` windows exist already.
    Full,
    /// The field's type differs from its window's.
    TypeConflict,
    /// A timestamp whose window starts before the earliest i64 nanosecond,
    /// or a lane whose rule does not exist.
    OutOfRange,
}

/// Counters of what the windows did, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub counted: u64,
    pub repeats: u64,
    pub late: u64,
    pub full: u64,
    pub type_conflicts: u64,
    /// Windows emitted for the first time, and again after late points.
    pub emitted: u64,
    pub re_emitted: u64,
}

impl Counts {
    pub(super) fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Counted => self.counted += 1,
            Outcome::Repeat => self.repeats += 1,
            Outcome::Late => self.late += 1,
            Outcome::Full => self.full += 1,
            Outcome::TypeConflict => self.type_conflicts += 1,
            Outcome::OutOfRange => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_counts_once_in_its_own_counter_and_out_of_range_in_none() {
        let mut c = Counts::default();
        for o in [
            Outcome::Counted,
            Outcome::Repeat,
            Outcome::Repeat,
            Outcome::Late,
            Outcome::Full,
            Outcome::TypeConflict,
            Outcome::OutOfRange,
        ] {
            c.add(o);
        }
        let want = Counts {
            counted: 1,
            repeats: 2,
            late: 1,
            full: 1,
            type_conflicts: 1,
            ..Counts::default()
        };
        assert_eq!(c, want);
    }
}

/// What `add_line_unless` found of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Added {
    /// The point may have been counted before (`false` is sure).
    pub maybe_counted: bool,
    /// Its key (`line_key`) when a field counted or a repeat was asked
    /// about it; otherwise 0.
    pub key: u64,
}

impl Added {
    pub(super) const NOT: Added = Added {
        maybe_counted: false,
        key: 0,
    };
}
