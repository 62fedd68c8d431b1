//! A batch's hints of where its lines' series are (`SeriesHint`), and the
//! window sets' ids the hints name (`next_set_id`). Why: a batch of a
//! meter's lines holds each series several times, and the codec numbers
//! its line shapes anyway; a hint turns the later lines' lookups into an
//! index (BENCHMARKS.md, "Fewer reads a line, then series by number").
//!
//! Invariant: a hint is used with the one `Windows` and batch it was made
//! for, and holds only while the set it names has the id it names.

/// Where a batch's lines of one shape (the codec's: series key, field
/// names and types, in order) found their series: a later line of the
/// shape, in the same lane and window, takes the series by its number
/// without hashing and comparing the key, and knows whether its fields are
/// the series' own in order without comparing names (a lookup and the
/// names' check were ~30 ns of a line's cost in the agent's profile; a
/// batch of a meter's lines holds each series several times). Valid for
/// one batch's shapes only: the caller makes new hints for each batch.
/// 16 bytes: a batch of 10,000 shapes keeps its hints in cache.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeriesHint {
    /// The `WindowSet::id` of the set `series` is numbered in; 0: none.
    pub(super) set: u64,
    pub(super) series: u32,
    /// The series' field count when the shape's fields were found to be its
    /// own in order (`Series::holds_in_order`), or `u32::MAX` when they
    /// were not. Fields are only ever added, never renamed or removed, so
    /// while the count is the same the answer is.
    pub(super) in_order_at: u32,
}

/// The next window set's `id`: unique in the process (every `Windows`
/// alike), so a hint names one set of one `Windows` only. 64 bits, never
/// wrapping: a set lives until `max_lateness` (days, for a long rule) and
/// ids go at up to a line's rate (a series removed again renews its set's),
/// so 32 bits wrapped in hours and a hint found another series (review).
/// `portable_atomic`: not every target has 64-bit atomics.
static SET_IDS: portable_atomic::AtomicU64 = portable_atomic::AtomicU64::new(1);

/// A new window set's (or a changed one's) `id`, never 0 (no set's: a
/// hint not yet set).
pub(super) fn next_set_id() -> u64 {
    SET_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
