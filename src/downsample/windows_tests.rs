use super::*;
use crate::downsample::aggregate::{Aggregate, Aggregates};
use crate::lineproto::split::{Value, split};
use std::collections::{BTreeMap, BTreeSet};

use crate::sim_tests::{rng, seeds};

impl Windows {
    /// Moves a lane's watermark to `ts` as a point there would.
    pub(super) fn advance_to(&mut self, lane: Lane, ts: i64) {
        let w = self.watermarks.get_or_insert_with(lane, || ts);
        *w = (*w).max(ts);
    }
}

pub(super) const EVERY: i64 = 100;

pub(super) fn rule(grace: i64, lateness: i64) -> Rule {
    Rule {
        every_ns: EVERY,
        grace_ns: grace,
        max_lateness_ns: lateness,
        aggregates: Some(Aggregates::of(&[
            Aggregate::Count,
            Aggregate::Sum,
            Aggregate::Min,
            Aggregate::Max,
            Aggregate::Last,
        ])),
    }
}

/// What an upstream holds after the emitted lines: (lane, series, field,
/// window start) → value text, the last write of each point winning.
type Point = (Lane, String, String, i64);
type Upstream = BTreeMap<Point, String>;

fn store(up: &mut Upstream, lane: Lane, line: &[u8]) {
    let text = line.strip_suffix(b"\n").expect("a line ends in a newline");
    let l = split(text).expect("an emitted line is line protocol");
    for (k, v) in &l.fields {
        let v = match v {
            Value::Int(x) => format!("{x}"),
            other => format!("{other:?}"),
        };
        up.insert(
            (
                lane,
                String::from_utf8_lossy(l.key).into_owned(),
                String::from_utf8_lossy(k).into_owned(),
                l.ts,
            ),
            v,
        );
    }
}

/// The upstream an exact aggregation of the counted points gives.
fn oracle(counted: &BTreeMap<Point, Vec<i64>>) -> Upstream {
    let mut by_window: BTreeMap<Point, Vec<(i64, i64)>> = BTreeMap::new();
    for ((lane, series, field, ts), vs) in counted {
        // Windows by division, not by the engine's formula.
        let start = ts.div_euclid(EVERY) * EVERY;
        for v in vs {
            by_window
                .entry((*lane, series.clone(), field.clone(), start))
                .or_default()
                .push((*ts, *v));
        }
    }
    let mut up = Upstream::new();
    for ((lane, series, field, start), points) in by_window {
        let vs: Vec<i64> = points.iter().map(|p| p.1).collect();
        let last = points.iter().max_by_key(|p| p.0).map(|p| p.1).unwrap_or(0);
        for (agg, v) in [
            ("min", *vs.iter().min().unwrap()),
            ("max", *vs.iter().max().unwrap()),
            ("last", last),
            ("count", vs.len() as i64),
            ("sum", vs.iter().sum()),
        ] {
            up.insert(
                (lane, series.clone(), format!("{field}_{agg}"), start),
                v.to_string(),
            );
        }
    }
    up
}

/// Thousands of random streams: several lanes, series and fields, points
/// out of order within and beyond the grace, retries of up to 12 recent
/// points, late points past `max_lateness`, small bounds, `close` at random
/// moments. Invariants, each outcome checked against the test's own
/// bookkeeping (windows by division, watermarks by max):
/// - `Repeat` exactly for a point of a field counted at its timestamp, when
///   that timestamp is among the 8 greatest counted in its series' window
///   (any field); `Counted` again only beyond that;
/// - `Late` exactly when the lane's event time has passed the window's
///   close by `max_lateness`; `Full` only with `max_open` windows held;
/// - after a final close, the upstream's aggregates (last write wins) equal
///   an exact aggregation of the counted points (a point counted twice
///   counts twice).
#[test]
fn emitted_windows_equal_an_exact_aggregation_of_the_counted_points() {
    for seed in 1..=seeds(2_000) {
        let mut next = rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let grace = (next() % 3) as i64 * EVERY / 2;
        let lateness = (next() % 4) as i64 * EVERY;
        let max_open = if next().is_multiple_of(4) {
            5 + (next() % 20) as usize
        } else {
            10_000
        };
        let rules = vec![rule(grace, lateness), rule(grace, lateness)];
        let mut w = Windows::new(rules, max_open);
        let mut up = Upstream::new();
        let mut counted: BTreeMap<Point, Vec<i64>> = BTreeMap::new();
        // Distinct counted timestamps per series × window (any field).
        let mut window_ts: BTreeMap<(Lane, String, i64), BTreeSet<i64>> = BTreeMap::new();
        let mut marks: BTreeMap<Lane, i64> = BTreeMap::new();
        let mut sent: Vec<(Lane, String, String, i64, i64)> = Vec::new();
        let mut now = 0i64;
        // Some streams dense (many timestamps a window, so the horizon of
        // 8 is passed), some sparse (many lanes and series).
        let dense = next().is_multiple_of(3);
        let (step, lanes, n_series) = if dense { (3, 1, 1) } else { (30, 2, 3) };
        for _ in 0..(50 + next() % 300) {
            let retry = next().is_multiple_of(6) && !sent.is_empty();
            let (lane, series, field, ts, v) = if retry {
                let back = 1 + (next() % 12) as usize;
                sent[sent.len().saturating_sub(back)].clone()
            } else {
                now += (next() % step) as i64;
                let jitter = match next() % 10 {
                    0 => (next() % (6 * EVERY as u64)) as i64,
                    1..=3 => (next() % EVERY as u64) as i64,
                    _ => 0,
                };
                (
                    Lane {
                        rule: (next() % lanes) as u16,
                        dest: (next() % lanes) as u32,
                    },
                    format!("m,s={}", next() % n_series),
                    format!("f{}", next() % 2),
                    now - jitter,
                    (next() % 1000) as i64 - 500,
                )
            };
            let start = ts.div_euclid(EVERY) * EVERY;
            let win = (lane, series.clone(), start);
            let mark = marks.entry(lane).or_insert(ts);
            *mark = (*mark).max(ts);
            let past_lateness = *mark > start + EVERY + grace + lateness;
            let held = w.len();
            let latest: Vec<i64> = window_ts
                .get(&win)
                .map(|t| t.iter().rev().take(8).copied().collect())
                .unwrap_or_default();
            let key = (lane, series.clone(), field.clone(), ts);
            let retry_of_counted = latest.contains(&ts) && counted.contains_key(&key);
            let outcome = w.add(
                lane,
                series.as_bytes(),
                field.as_bytes(),
                &Value::Int(v),
                ts,
            );
            assert_eq!(
                outcome == Outcome::Late,
                past_lateness,
                "seed {seed}: {key:?} {outcome:?}"
            );
            match outcome {
                Outcome::Counted => {
                    assert!(
                        !retry_of_counted,
                        "seed {seed}: a retry within the horizon counted twice: {key:?}"
                    );
                    counted.entry(key).or_default().push(v);
                    window_ts.entry(win).or_default().insert(ts);
                }
                Outcome::Repeat => {
                    assert!(
                        retry_of_counted,
                        "seed {seed}: not a recent repeat: {key:?}"
                    )
                }
                Outcome::Full => assert_eq!(held, max_open, "seed {seed}"),
                Outcome::Late => {}
                other => panic!("seed {seed}: {other:?}"),
            }
            if !retry {
                sent.push((lane, series, field, ts, v));
            }
            assert!(w.len() <= max_open, "seed {seed}");
            if next().is_multiple_of(8) {
                w.close(|lane, line| store(&mut up, lane, line));
            }
        }
        // The end of the stream: every lane's watermark far ahead, so every
        // window closes.
        for lane in w.watermarks.keys().copied().collect::<Vec<_>>() {
            w.advance_to(lane, now + 100 * EVERY);
        }
        w.close(|lane, line| store(&mut up, lane, line));
        assert_eq!(up, oracle(&counted), "seed {seed}");
        assert!(
            w.is_empty(),
            "seed {seed}: every window forgotten after its close"
        );
    }
}

/// Found in review: a retried body of more points than the horizon counted
/// all of them twice (each re-counted old point pushed out the next).
/// Now only those older than the eight latest count twice.
#[test]
fn a_retry_longer_than_the_horizon_counts_only_its_oldest_points_twice() {
    let mut w = Windows::new(vec![rule(0, 0)], 10);
    let lane = Lane { rule: 0, dest: 0 };
    for ts in 0..10 {
        assert_eq!(
            w.add(lane, b"m", b"a", &Value::Int(1), ts),
            Outcome::Counted
        );
    }
    let outcomes: Vec<Outcome> = (0..10)
        .map(|ts| w.add(lane, b"m", b"a", &Value::Int(1), ts))
        .collect();
    assert_eq!(&outcomes[..2], [Outcome::Counted, Outcome::Counted]);
    assert!(
        outcomes[2..].iter().all(|o| *o == Outcome::Repeat),
        "{outcomes:?}"
    );
    w.advance_to(lane, 1_000);
    let mut line = String::new();
    w.close(|_, l| line = String::from_utf8_lossy(l).into_owned());
    assert!(line.contains("a_count=12i"), "{line}");
}

#[test]
fn a_late_point_re_emits_its_window_and_one_past_max_lateness_is_late() {
    let mut w = Windows::new(vec![rule(0, 2 * EVERY)], 100);
    let lane = Lane { rule: 0, dest: 0 };
    let mut lines = Vec::new();
    let add = |w: &mut Windows, v: i64, ts: i64| w.add(lane, b"m", b"f", &Value::Int(v), ts);
    assert_eq!(add(&mut w, 1, 10), Outcome::Counted);
    assert_eq!(add(&mut w, 2, 150), Outcome::Counted);
    w.close(|_, l| lines.push(String::from_utf8_lossy(l).into_owned()));
    // The window [100, 200) is open: the watermark (150) has not reached 200.
    assert_eq!(
        lines,
        ["m f_min=1i,f_max=1i,f_last=1i,f_count=1i,f_sum=1i 0\n"]
    );
    assert_eq!(
        add(&mut w, 5, 20),
        Outcome::Counted,
        "late, within max_lateness"
    );
    assert_eq!(add(&mut w, 5, 20), Outcome::Repeat);
    lines.clear();
    w.close(|_, l| lines.push(String::from_utf8_lossy(l).into_owned()));
    assert_eq!(
        lines,
        ["m f_min=1i,f_max=5i,f_last=5i,f_count=2i,f_sum=6i 0\n"],
        "the corrected window, emitted again"
    );
    assert_eq!((w.counts.emitted, w.counts.re_emitted), (1, 1));
    // The watermark passes the first window's close (100) by more than
    // max_lateness (200): it is forgotten, and a point for it is late.
    assert_eq!(add(&mut w, 3, 301), Outcome::Counted);
    w.close(|_, _| {});
    assert_eq!(add(&mut w, 9, 30), Outcome::Late);
    assert_eq!(w.counts.late, 1);
}

#[test]
fn a_window_past_the_bound_is_refused_and_counted_never_grown() {
    let mut w = Windows::new(vec![rule(0, 0)], 2);
    let lane = Lane { rule: 0, dest: 0 };
    let v = Value::Int(1);
    assert_eq!(w.add(lane, b"m", b"a", &v, 0), Outcome::Counted);
    assert_eq!(w.add(lane, b"m", b"b", &v, 0), Outcome::Counted);
    assert_eq!(w.add(lane, b"m", b"c", &v, 0), Outcome::Full);
    assert_eq!(
        w.add(lane, b"m", b"a", &v, 1),
        Outcome::Counted,
        "an open window takes more"
    );
    assert_eq!((w.len(), w.counts.full), (2, 1));
    let unknown = Lane { rule: 7, dest: 0 };
    assert_eq!(w.add(unknown, b"m", b"a", &v, 0), Outcome::OutOfRange);
}

#[test]
fn one_line_per_series_and_window_holds_every_field() {
    let mut w = Windows::new(vec![rule(0, 0)], 100);
    let lane = Lane { rule: 0, dest: 3 };
    for (series, field, v, ts) in [
        (&b"m,s=b"[..], &b"y"[..], 1, 0),
        (b"m,s=a", b"x", 2, 1),
        (b"m,s=a", b"y", 3, 2),
        (b"m,s=a", b"x", 4, 150),
    ] {
        assert_eq!(
            w.add(lane, series, field, &Value::Int(v), ts),
            Outcome::Counted
        );
    }
    let mut lines = BTreeSet::new();
    w.close(|l, line| {
        assert_eq!(l, lane);
        lines.insert(String::from_utf8_lossy(line).into_owned());
    });
    let keys: BTreeSet<String> = lines
        .iter()
        .map(|l| l.split(' ').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(keys, BTreeSet::from(["m,s=a".into(), "m,s=b".into()]));
    assert!(lines.contains("m,s=a x_min=2i,x_max=2i,x_last=2i,x_count=1i,x_sum=2i,y_min=3i,y_max=3i,y_last=3i,y_count=1i,y_sum=3i 0\n"), "{lines:?}");
}

/// A line naming a field twice is one point to InfluxDB: counted once.
/// A series of more fields than a byte has bits still tells its retries.
#[test]
fn a_field_named_twice_in_a_line_and_a_wide_retried_line_count_once() {
    let mut w = Windows::new(vec![rule(0, 0)], 1_000);
    let lane = Lane { rule: 0, dest: 0 };
    let twice = [(&b"f"[..], Value::Int(1)), (&b"f"[..], Value::Int(2))];
    let mut got = Vec::new();
    w.add_line(lane, b"m", &twice, 5, |i, o| got.push((i, o)));
    assert_eq!(got, [(0, Outcome::Counted), (1, Outcome::Repeat)]);
    // Also for a line older than the 8 greatest timestamps, which has no
    // slot to tell it (found in review).
    for ts in 10..18 {
        w.add_line(lane, b"m", &twice[..1], ts, |_, _| {});
    }
    let mut got = Vec::new();
    w.add_line(lane, b"m", &twice, 6, |i, o| got.push((i, o)));
    assert_eq!(got, [(0, Outcome::Counted), (1, Outcome::Repeat)]);
    // A first value of the wrong type does not hide a valid second one.
    let mixed = [(&b"f"[..], Value::Bool(true)), (&b"f"[..], Value::Int(7))];
    let mut got = Vec::new();
    w.add_line(lane, b"m", &mixed, 4, |i, o| got.push((i, o)));
    assert_eq!(got, [(0, Outcome::TypeConflict), (1, Outcome::Counted)]);
    let names: Vec<String> = (0..70).map(|i| format!("f{i}")).collect();
    let wide: Vec<(&[u8], Value)> = names
        .iter()
        .map(|n| (n.as_bytes(), Value::Int(1)))
        .collect();
    for round in 0..2 {
        let mut outcomes = Vec::new();
        w.add_line(lane, b"m,wide=1", &wide, 7, |_, o| outcomes.push(o));
        let want = if round == 0 {
            Outcome::Counted
        } else {
            Outcome::Repeat
        };
        assert!(outcomes.iter().all(|&o| o == want), "{round}: {outcomes:?}");
        assert_eq!(outcomes.len(), 70);
    }
    assert_eq!(w.len(), 71);
    assert_eq!(w.counts.counted, 81);
}

#[test]
fn a_config_rule_becomes_its_windowing_in_nanoseconds() {
    use crate::config::LifecycleRule;
    let r = LifecycleRule {
        measurement: "m".into(),
        downsample: "5m".into(),
        ..LifecycleRule::default()
    };
    let s = 1_000_000_000;
    let got = Rule::from_config(&r).expect("a window");
    assert_eq!(
        (
            got.every_ns,
            got.grace_ns,
            got.max_lateness_ns,
            got.aggregates
        ),
        (300 * s, 300 * s, 3600 * s, None)
    );
    let r = LifecycleRule {
        grace: "0".into(),
        aggregates: vec!["max".into(), "count".into()],
        ..r
    };
    let got = Rule::from_config(&r).expect("a window");
    assert_eq!(got.grace_ns, 0);
    assert_eq!(
        got.aggregates,
        Some(Aggregates::of(&[Aggregate::Max, Aggregate::Count]))
    );
    let hot_only = LifecycleRule {
        downsample: String::new(),
        ..r.clone()
    };
    assert_eq!(Rule::from_config(&hot_only), None);
    let unknown = LifecycleRule {
        aggregates: vec!["median".into()],
        ..r
    };
    assert_eq!(Rule::from_config(&unknown), None);
}

#[test]
fn the_config_knows_every_aggregate_by_the_engine_s_name() {
    let engine: Vec<&str> = Aggregate::ALL.iter().map(|a| a.name()).collect();
    assert_eq!(engine, crate::config::AGGREGATE_NAMES);
}

/// `add_line_unless` asks its repeat check only for a point its series'
/// window may have counted (at a slot, or older than a full ring's), never
/// for one newer than the least slot and not at one, in order or not; a
/// repeat it confirms changes nothing but the repeats count.
#[test]
fn the_repeat_check_is_asked_only_when_the_window_may_have_counted_the_point() {
    let mut w = Windows::new(vec![rule(0, 0)], 1_000);
    let lane = Lane { rule: 0, dest: 0 };
    let line = [(&b"f"[..], Value::Int(1))];
    let mut asked = 0;
    let mut add = |w: &mut Windows, ts: i64, says: bool| {
        let mut outcomes = Vec::new();
        let want = crate::downsample::line_key::key(3, b"m", &line, ts);
        let added = w.add_line_unless(
            lane,
            b"m",
            &line,
            ts,
            3,
            None,
            |k| {
                assert_eq!(k, want, "the key asked about is the line's");
                asked += 1;
                says
            },
            |_, o| outcomes.push(o),
        );
        assert_eq!(added.key, want, "the key returned is the line's");
        (added.maybe_counted, outcomes)
    };
    for ts in 1..=8 {
        assert_eq!(add(&mut w, ts, true), (false, vec![Outcome::Counted]));
    }
    let before = (w.counts, w.len());
    // At a slot, or older than every slot of the full ring: asked; a
    // confirmed repeat is skipped.
    assert_eq!(add(&mut w, 8, true), (true, vec![]));
    assert_eq!(add(&mut w, 9, true), (false, vec![Outcome::Counted]));
    assert_eq!(add(&mut w, 1, true), (true, vec![]), "older than the ring");
    assert_eq!(w.counts.repeats, before.0.repeats + 2);
    assert_eq!(
        (w.counts.counted, w.len()),
        (before.0.counted + 1, before.1)
    );
    // Not confirmed: a repeat by the slots, or counted.
    assert_eq!(add(&mut w, 5, false), (true, vec![Outcome::Repeat]));
    assert_eq!(add(&mut w, 1, false), (true, vec![Outcome::Counted]));
    // Not at a slot and newer than the least (the ring holds 2..=9): never
    // counted, so not asked, however out of order.
    assert_eq!(add(&mut w, 20, true), (false, vec![Outcome::Counted]));
    assert_eq!(add(&mut w, 15, true), (false, vec![Outcome::Counted]));
    assert_eq!(asked, 4);
}
