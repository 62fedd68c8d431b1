//! Drain order: which destination the forwarder serves next, and how much it
//! packs into one request.
//!
//! # Priority, and why nothing starves
//! Each bucket of `influxdb.sharding` has a `priority` (other destinations:
//! 0). Among the destinations that hold batches and are not backing off, the
//! one with the highest priority goes next; ties go to the one whose oldest
//! batch is oldest. So after an outage alarms reach the server before
//! high-frequency telemetry.
//!
//! But one request in `100 / fair_share_percent` (default 10 %: every 10th)
//! goes to the destination whose oldest batch is the oldest of all, whatever
//! its priority. A waiting bucket's head never moves while the others' heads
//! move forward, so within a bounded number of requests it becomes the oldest
//! and gets its turn: a busy high-priority bucket slows the others down, it
//! never stops them. `fair_share_percent: 0` is strict priority.

use crate::config::{Influxdb, Performance};
use crate::route::dest::Destination;
use crate::wal::{DeadLetter, STATUS_EXPIRED, StoredBatch};
use std::collections::HashMap;

/// Packing and replay settings, from `performance`.
#[derive(Debug, Clone, Copy)]
pub struct DrainPolicy {
    pub max_points: usize,
    pub max_bytes: usize,
    /// Every `live_every`-th request serves live data during a backlog; 0 = never.
    pub live_every: u32,
    pub live_window_ms: i64,
}

impl DrainPolicy {
    pub fn from_config(p: &Performance) -> DrainPolicy {
        DrainPolicy {
            max_points: p.adaptive_batching.max_batch_size,
            max_bytes: (p.max_request_mb * 1024 * 1024) as usize,
            live_every: every(p.backlog_replay.live_share_percent),
            live_window_ms: p.backlog_replay.live_window_ms as i64,
        }
    }
}

/// `percent` as "one in N"; 0 % = never (0).
fn every(percent: u8) -> u32 {
    100u32.checked_div(percent as u32).map_or(0, |n| n.max(1))
}

/// What the forwarder knows about a bucket's destination.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketInfo {
    pub name: String,
    pub priority: u8,
    /// Points older than this are not sent; `None` keeps them for ever.
    pub retention_ns: Option<i64>,
}

/// The buckets, by destination, as the current config defines them.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    buckets: HashMap<Destination, BucketInfo>,
    /// Every `fair_every`-th request goes to the oldest head; 0 = never.
    fair_every: u32,
}

impl Plan {
    pub fn from_config(db: &Influxdb) -> Plan {
        let s = &db.sharding;
        Plan {
            buckets: s
                .buckets
                .iter()
                .map(|b| {
                    let info = BucketInfo {
                        name: b.name.clone(),
                        priority: b.priority,
                        retention_ns: b
                            .retention_s()
                            .map(|s| (s as i64).saturating_mul(1_000_000_000)),
                    };
                    (crate::route::dest::Destination::of_bucket(b, db), info)
                })
                .collect(),
            fair_every: every(s.fair_share_percent),
        }
    }

    pub fn bucket(&self, dest: &Destination) -> Option<&BucketInfo> {
        self.buckets.get(dest)
    }

    fn priority(&self, dest: &Destination) -> u8 {
        self.buckets.get(dest).map_or(0, |b| b.priority)
    }
}

/// Chooses the next destination by priority with a fair share (module doc).
#[derive(Debug, Default)]
pub struct Scheduler {
    since_fair: u32,
}

impl Scheduler {
    /// `heads`: each destination's oldest batch id; `ready`: not backing off.
    pub fn pick<'a>(
        &mut self,
        plan: &Plan,
        heads: &'a [(i64, Destination)],
        ready: impl Fn(&Destination) -> bool,
    ) -> Option<&'a (i64, Destination)> {
        let ready: Vec<&(i64, Destination)> = heads.iter().filter(|(_, d)| ready(d)).collect();
        let oldest = *ready.iter().min_by_key(|(id, _)| *id)?;
        let first = *ready
            .iter()
            .max_by_key(|(id, d)| (plan.priority(d), std::cmp::Reverse(*id)))?;
        if first.0 == oldest.0 || plan.fair_every == 0 {
            return Some(first);
        }
        self.since_fair += 1;
        if self.since_fair >= plan.fair_every {
            self.since_fair = 0;
            return Some(oldest);
        }
        Some(first)
    }
}

/// Takes out of `pack` the lines older than the bucket's retention (the
/// server would drop them: "points beyond retention policy") and returns them
/// as dead letters ([`STATUS_EXPIRED`]: never sent), for `hissrv export --dead-letters`.
/// A batch may end up empty; it is deleted with the rest of the pack.
pub fn expire(pack: &mut [StoredBatch], bucket: &BucketInfo, now_ns: i64) -> Vec<DeadLetter> {
    let Some(keep_ns) = bucket.retention_ns else {
        return Vec::new();
    };
    let cutoff = now_ns.saturating_sub(keep_ns);
    let mut dead = Vec::new();
    for b in pack.iter_mut().filter(|b| b.first_ts < cutoff) {
        let mut kept = Vec::with_capacity(b.payload.len());
        let mut points = 0;
        for line in crate::lineproto::lines(&b.payload) {
            let ts = line
                .rsplit(|&c| c == b' ')
                .next()
                .and_then(|t| std::str::from_utf8(t).ok()?.parse::<i64>().ok());
            if ts.is_some_and(|t| t < cutoff) {
                dead.push(DeadLetter {
                    batch_id: b.id,
                    status: STATUS_EXPIRED,
                    reason: format!(
                        "older than the retention of bucket {:?}: not sent",
                        bucket.name
                    ),
                    line: line.to_vec(),
                });
            } else {
                kept.extend_from_slice(line);
                kept.push(b'\n');
                points += 1;
            }
        }
        b.payload = kept;
        b.points = points;
    }
    dead
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn plan() -> (Plan, Destination, Destination, Destination) {
        let cfg = Config::from_yaml(
            r#"
influxdb:
  sharding:
    fair_share_percent: 25
    buckets:
      - {name: high_frequency, priority: 1, points: [voltage]}
      - {name: events, priority: 9, retention: 365d, points: [alarms]}
"#,
        )
        .unwrap();
        let p = Plan::from_config(&cfg.influxdb);
        let d = |rp: &str| Destination {
            db: "hissrv".into(),
            rp: rp.into(),
        };
        (p, d("high_frequency"), d("events"), d(""))
    }

    #[test]
    fn the_highest_priority_ready_bucket_goes_first() {
        let (plan, hf, ev, other) = plan();
        let heads = vec![(1, other.clone()), (2, hf.clone()), (3, ev.clone())];
        let mut s = Scheduler::default();
        assert_eq!(s.pick(&plan, &heads, |_| true).unwrap().1, ev);
        // Backing off: the next priority goes.
        assert_eq!(s.pick(&plan, &heads, |d| *d != ev).unwrap().1, hf);
        assert_eq!(
            plan.bucket(&ev).unwrap().retention_ns,
            Some(365 * 86_400 * 1_000_000_000)
        );
    }

    #[test]
    fn one_request_in_n_goes_to_the_oldest_so_low_priority_never_starves() {
        let (plan, _, ev, other) = plan();
        let heads = vec![(1, other.clone()), (3, ev.clone())];
        let mut s = Scheduler::default();
        let picks: Vec<Destination> = (0..8)
            .map(|_| s.pick(&plan, &heads, |_| true).unwrap().1.clone())
            .collect();
        assert_eq!(
            picks.iter().filter(|d| **d == other).count(),
            2,
            "{picks:?}"
        );
        assert_eq!(picks[3], other);
    }

    #[test]
    fn lines_older_than_the_retention_become_dead_letters_and_the_rest_stays() {
        let (plan, _, ev, _) = plan();
        let info = plan.bucket(&ev).unwrap();
        let day = 86_400 * 1_000_000_000i64;
        let now = 1_000 * day;
        let old = now - 400 * day;
        let young = now - day;
        let mut pack = vec![StoredBatch {
            id: 7,
            dest: ev.clone(),
            points: 2,
            format: 1,
            attempts: 0,
            first_ts: old,
            stored_bytes: 0,
            payload: format!("alarms v=1 {old}\nalarms v=2 {young}\n").into_bytes(),
        }];
        let dead = expire(&mut pack, info, now);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].line, format!("alarms v=1 {old}").into_bytes());
        assert_eq!((dead[0].batch_id, dead[0].status), (7, STATUS_EXPIRED));
        assert_eq!(pack[0].points, 1);
        assert_eq!(
            pack[0].payload,
            format!("alarms v=2 {young}\n").into_bytes()
        );
    }

    #[test]
    fn with_no_fair_share_priority_is_strict() {
        let (mut plan, _, ev, other) = plan();
        plan.fair_every = 0;
        let heads = vec![(1, other), (3, ev.clone())];
        let mut s = Scheduler::default();
        assert!((0..100).all(|_| s.pick(&plan, &heads, |_| true).unwrap().1 == ev));
    }
}
