use super::*;
use crate::lineproto::numbers::Decimal;
use crate::lineproto::split::{Value, split};

fn rng(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// The aggregates by brute force over the points (in arrival order), as
/// InfluxDB's reducers define them: the oracle.
fn oracle(points: &[(i64, Value)], aggs: Aggregates) -> Vec<(String, String)> {
    let kind = points[0].1.kind();
    let aggs = aggs.applicable(kind);
    // last: the greatest timestamp; at a tie, the later write.
    let last = points
        .iter()
        .enumerate()
        .max_by_key(|(i, (ts, _))| (*ts, *i))
        .map(|(_, (_, v))| *v)
        .unwrap();
    let mut fields = Vec::new();
    for a in Aggregate::ALL {
        if !aggs.has(a) {
            continue;
        }
        let text = match (a, kind) {
            (Aggregate::Count, _) => format!("{}i", points.len()),
            (Aggregate::Last, _) => render(&last),
            (_, KIND_FLOAT) => {
                let vs: Vec<f64> = points.iter().map(|(_, v)| v.as_f64().unwrap()).collect();
                let sum = vs.iter().fold(0.0, |s, v| s + v);
                let v = match a {
                    Aggregate::Mean => sum / vs.len() as f64,
                    Aggregate::Min => vs.iter().copied().fold(f64::INFINITY, f64::min),
                    Aggregate::Max => vs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    _ => sum,
                };
                if !v.is_finite() {
                    continue;
                }
                format!("{v:?}")
            }
            (_, KIND_INT) => {
                let vs: Vec<i64> = points
                    .iter()
                    .map(|(_, v)| match v {
                        Value::Int(x) => *x,
                        _ => unreachable!(),
                    })
                    .collect();
                let sum = vs.iter().fold(0i64, |s, v| s.wrapping_add(*v));
                match a {
                    Aggregate::Mean => format!("{:?}", sum as f64 / vs.len() as f64),
                    Aggregate::Min => format!("{}i", vs.iter().min().unwrap()),
                    Aggregate::Max => format!("{}i", vs.iter().max().unwrap()),
                    _ => format!("{sum}i"),
                }
            }
            _ => unreachable!("the test makes floats, integers, booleans, strings"),
        };
        fields.push((format!("f_{}", a.name()), text));
    }
    fields
}

fn render(v: &Value) -> String {
    match v {
        Value::Decimal(_) | Value::Float(_) => format!("{:?}", v.as_f64().unwrap()),
        Value::Int(x) => format!("{x}i"),
        Value::Uint(x) => format!("{x}u"),
        Value::Bool(b) => b.to_string(),
        Value::Str(s) => format!("\"{}\"", String::from_utf8_lossy(s)),
    }
}

/// The emitted fields as (key, value text), read back with the splitter.
fn emitted(w: &Window, aggs: Aggregates) -> Vec<(String, String)> {
    let mut out = Vec::new();
    w.push_fields(b"f", aggs, &mut out);
    if out.is_empty() {
        return Vec::new();
    }
    out.remove(0);
    out.splice(0..0, b"m ".iter().copied());
    out.extend_from_slice(b" 0");
    let line = split(&out).expect("the emitted fields are line protocol");
    line.fields
        .iter()
        .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), render(v)))
        .collect()
}

fn random_value(kind: u64, next: &mut impl FnMut() -> u64) -> Value<'static> {
    const WORDS: [&[u8]; 4] = [b"on", b"off", b"a \\\"q\\\"", b""];
    match kind {
        0 => Value::Decimal(Decimal {
            negative: next() & 1 == 1,
            n: next() % 100_000,
            frac: (next() % 4) as u32,
        }),
        1 => Value::Float(f64::from_bits(next() >> 2) * if next() & 1 == 1 { -1.0 } else { 1.0 }),
        2 => Value::Int((next() as i64) >> (next() % 64)),
        3 => Value::Bool(next() & 1 == 1),
        _ => Value::Str(WORDS[(next() % 4) as usize]),
    }
}

#[test]
fn a_window_emits_what_brute_force_over_its_points_gives() {
    let mut next = rng(0x0dd_b1a5_e5ca_1ab1);
    let all = Aggregates::of(&Aggregate::ALL);
    for round in 0..5_000 {
        let kind = next() % 5;
        let n = 1 + (next() % 40) as usize;
        // Timestamps from a small range: ties and out-of-order points.
        let points: Vec<(i64, Value)> = (0..n)
            .map(|_| ((next() % 20) as i64 - 10, random_value(kind, &mut next)))
            .collect();
        let mut w = Window::first(&points[0].1, points[0].0);
        for (ts, v) in &points[1..] {
            w.add(v, *ts).expect("one type");
        }
        assert_eq!(w.count(), n as u64);
        for aggs in [all, Aggregates::defaults_for(w.kind())] {
            assert_eq!(
                emitted(&w, aggs),
                oracle(&points, aggs),
                "round {round}: {points:?}"
            );
        }
    }
}

#[test]
fn a_point_of_another_type_is_refused_and_not_counted() {
    let mut w = Window::first(&Value::Int(5), 0);
    assert_eq!(w.add(&Value::Float(1.5), 1), Err(TypeConflict));
    assert_eq!(w.add(&Value::Str(b"x"), 1), Err(TypeConflict));
    assert_eq!(w.count(), 1);
    // A decimal and a float of another spelling are one type.
    let mut f = Window::first(&Value::Float(1e3), 0);
    let half = Value::Decimal(Decimal {
        negative: false,
        n: 5,
        frac: 1,
    });
    assert_eq!(f.add(&half, 1), Ok(()));
    assert_eq!(f.count(), 2);
}

#[test]
fn defaults_follow_the_type_and_a_string_has_no_mean() {
    let all = Aggregates::of(&Aggregate::ALL);
    let keys = |w: &Window, aggs| -> Vec<String> {
        emitted(w, aggs).into_iter().map(|(k, _)| k).collect()
    };
    let f = Window::first(&Value::Float(1.0), 0);
    let i = Window::first(&Value::Int(1), 0);
    let s = Window::first(&Value::Str(b"x"), 0);
    let b = Window::first(&Value::Bool(true), 0);
    assert_eq!(
        keys(&f, Aggregates::defaults_for(KIND_FLOAT)),
        ["f_mean", "f_min", "f_max", "f_last", "f_count"]
    );
    assert_eq!(
        keys(&i, Aggregates::defaults_for(KIND_INT)),
        ["f_mean", "f_min", "f_max", "f_last", "f_count", "f_sum"]
    );
    assert_eq!(keys(&s, all), ["f_last", "f_count"]);
    assert_eq!(keys(&b, all), ["f_last", "f_count"]);
    assert_eq!(Aggregate::from_name("mean"), Some(Aggregate::Mean));
    assert_eq!(Aggregate::from_name("median"), None);
}

#[test]
fn a_float_sum_past_the_largest_f64_leaves_sum_and_mean_out() {
    let mut w = Window::first(&Value::Float(f64::MAX), 0);
    w.add(&Value::Float(f64::MAX), 1).unwrap();
    let keys: Vec<String> = emitted(&w, Aggregates::of(&Aggregate::ALL))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["f_min", "f_max", "f_last", "f_count"]);
}

#[test]
fn windows_align_to_the_epoch_before_1970_too() {
    const FIVE_MIN: i64 = 300_000_000_000;
    assert_eq!(window_start(0, FIVE_MIN), Some(0));
    assert_eq!(window_start(FIVE_MIN - 1, FIVE_MIN), Some(0));
    assert_eq!(window_start(FIVE_MIN, FIVE_MIN), Some(FIVE_MIN));
    assert_eq!(window_start(-1, FIVE_MIN), Some(-FIVE_MIN));
    assert_eq!(window_start(-FIVE_MIN, FIVE_MIN), Some(-FIVE_MIN));
    assert_eq!(
        window_start(i64::MAX, FIVE_MIN),
        Some(i64::MAX - i64::MAX % FIVE_MIN)
    );
    // The earliest window would start before i64's range.
    assert_eq!(window_start(i64::MIN + 2, FIVE_MIN), None);
    assert_eq!(window_start(i64::MIN, 1), Some(i64::MIN));
    let mut next = rng(7);
    for _ in 0..100_000 {
        let ts = next() as i64 >> 1;
        let every = 1 + (next() % 1_000_000_000_000) as i64;
        let start = window_start(ts, every).unwrap();
        assert!(start <= ts && ts - start < every && start % every == 0);
    }
}
