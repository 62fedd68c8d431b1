//! One rule's windowing (`lifecycle.rules[]` with `downsample`), in
//! nanoseconds: what `windows` needs of a rule.

use crate::downsample::aggregate::{Aggregate, Aggregates};

/// One rule's windowing, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// Window length (`downsample`), > 0.
    pub every_ns: i64,
    /// How far past a window's end the watermark goes before it closes.
    pub grace_ns: i64,
    /// How long past its close a window is kept for late points.
    pub max_lateness_ns: i64,
    /// `None`: the defaults for each field's type.
    pub aggregates: Option<Aggregates>,
}

impl Rule {
    /// A `lifecycle.rules` entry's windowing, in nanoseconds; `None` for a
    /// rule without `downsample` (or one the config would refuse).
    pub fn from_config(r: &crate::config::LifecycleRule) -> Option<Rule> {
        const NS: i64 = 1_000_000_000;
        let (every, grace, late) = r.windowing_s()?;
        let ns = |s: u64| i64::try_from(s).ok()?.checked_mul(NS);
        let aggregates = if r.aggregates.is_empty() {
            None
        } else {
            let list: Option<Vec<Aggregate>> = r
                .aggregates
                .iter()
                .map(|a| Aggregate::from_name(a))
                .collect();
            Some(Aggregates::of(&list?))
        };
        Some(Rule {
            every_ns: ns(every).filter(|&e| e > 0)?,
            grace_ns: ns(grace)?,
            max_lateness_ns: ns(late)?,
            aggregates,
        })
    }
}

impl Rule {
    /// The watermark has passed the window's end by its grace.
    pub(super) fn closed(&self, start: i64, watermark: i64) -> bool {
        let close_at = start
            .saturating_add(self.every_ns)
            .saturating_add(self.grace_ns);
        watermark >= close_at
    }

    /// The watermark has passed the window's close by `max_lateness`.
    pub(super) fn forgotten(&self, start: i64, watermark: i64) -> bool {
        let forget_at = start
            .saturating_add(self.every_ns)
            .saturating_add(self.grace_ns)
            .saturating_add(self.max_lateness_ns);
        watermark > forget_at
    }
}
