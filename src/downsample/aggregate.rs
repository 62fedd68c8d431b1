//! One window's aggregate state for one series and field: what InfluxDB
//! 1.6's `mean`, `min`, `max`, `last`, `count` and `sum` give over the
//! points of a `GROUP BY time()` window, kept as the points arrive.
//!
//! InfluxDB's reducers (`influxql/functions.go`) are the reference:
//!
//! | aggregate | float | integer | unsigned | boolean | string |
//! |---|---|---|---|---|---|
//! | mean  | Σv / n (f64) | f64(Σv) / n, Σ in wrapping i64 | f64(Σv) / n, Σ wrapping u64 | – | – |
//! | min, max | the value | the value | the value | – | – |
//! | sum   | Σv (f64) | Σv (wrapping i64) | Σv (wrapping u64) | – | – |
//! | last  | the value at the greatest timestamp (all kinds) |||||
//! | count | the number of points, an integer (all kinds) |||||
//!
//! Decisions:
//! - Points of a window reach us in arrival order, InfluxDB sums them in
//!   time order: a float mean may differ in its last bits (the differential
//!   test allows 1e-9 relative).
//! - A later point at the very timestamp of `last` replaces it (InfluxDB
//!   keeps a point's last write); `windows` takes such a point for a retry
//!   within its horizon, so this applies beyond it.
//! - A point whose type differs from the window's first (a field type
//!   conflict, which InfluxDB refuses upstream) is not aggregated: `add`
//!   says so and the caller counts it.
//! - A float sum that overflows to infinity has no line-protocol spelling:
//!   its `sum` and `mean` are left out of the emitted fields.
//!
//! Invariant: `count` ≥ 1 (a window is made by its first point).

use crate::lineproto::numbers::push_i64;
use crate::lineproto::split::Value;

/// Which aggregates a rule emits: a set of `Aggregate`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Aggregates(u8);

/// One aggregate, by the suffix of the field it emits (`<field>_mean`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Mean = 1,
    Min = 2,
    Max = 4,
    Last = 8,
    Count = 16,
    Sum = 32,
}

impl Aggregate {
    pub const ALL: [Aggregate; 6] = [
        Aggregate::Mean,
        Aggregate::Min,
        Aggregate::Max,
        Aggregate::Last,
        Aggregate::Count,
        Aggregate::Sum,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Aggregate::Mean => "mean",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::Last => "last",
            Aggregate::Count => "count",
            Aggregate::Sum => "sum",
        }
    }

    /// `mean`, `min`, … as the config spells them.
    pub fn from_name(name: &str) -> Option<Aggregate> {
        Aggregate::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl Aggregates {
    pub fn of(list: &[Aggregate]) -> Aggregates {
        Aggregates(list.iter().fold(0, |m, a| m | *a as u8))
    }

    pub fn has(self, a: Aggregate) -> bool {
        self.0 & a as u8 != 0
    }

    /// The defaults: mean, min, max, last, count for numbers, with
    /// sum for integers; booleans and strings have only last and count.
    pub fn defaults_for(kind: u8) -> Aggregates {
        use Aggregate::*;
        match kind {
            KIND_FLOAT => Aggregates::of(&[Mean, Min, Max, Last, Count]),
            KIND_INT | KIND_UINT => Aggregates::of(&[Mean, Min, Max, Last, Count, Sum]),
            _ => Aggregates::of(&[Last, Count]),
        }
    }

    /// The configured aggregates a field of `kind` can have (a string has
    /// no mean).
    pub fn applicable(self, kind: u8) -> Aggregates {
        let numeric = matches!(kind, KIND_FLOAT | KIND_INT | KIND_UINT);
        let mask = if numeric {
            u8::MAX
        } else {
            Aggregate::Last as u8 | Aggregate::Count as u8
        };
        Aggregates(self.0 & mask)
    }
}

/// `Value::kind` of each type.
pub const KIND_FLOAT: u8 = 0;
pub const KIND_INT: u8 = 1;
pub const KIND_UINT: u8 = 2;
pub const KIND_BOOL: u8 = 3;
pub const KIND_STR: u8 = 4;

/// The state of one window of one series and field.
#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    Float(Numbers<f64>),
    Int(Numbers<i64>),
    Uint(Numbers<u64>),
    Bool {
        count: u64,
        last_ts: i64,
        last: bool,
    },
    /// The string as written between its quotes, escapes kept.
    Str {
        count: u64,
        last_ts: i64,
        last: Box<[u8]>,
    },
}

/// A numeric window: count, sum, min, max and the last value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Numbers<T> {
    pub count: u64,
    pub sum: T,
    pub min: T,
    pub max: T,
    pub last_ts: i64,
    pub last: T,
}

/// The point's type differs from the window's (a field type conflict).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeConflict;

/// What a numeric window needs of its values: InfluxDB's addition.
pub trait Number: Copy + PartialOrd {
    fn plus(self, other: Self) -> Self;
}

impl Number for f64 {
    fn plus(self, other: f64) -> f64 {
        self + other
    }
}

impl Number for i64 {
    fn plus(self, other: i64) -> i64 {
        // Go's int64 addition, which InfluxDB's reducers use, wraps.
        self.wrapping_add(other)
    }
}

impl Number for u64 {
    fn plus(self, other: u64) -> u64 {
        self.wrapping_add(other)
    }
}

impl<T: Number> Numbers<T> {
    fn first(v: T, ts: i64) -> Numbers<T> {
        Numbers {
            count: 1,
            sum: v,
            min: v,
            max: v,
            last_ts: ts,
            last: v,
        }
    }

    #[inline]
    fn add(&mut self, v: T, ts: i64) {
        self.count = self.count.saturating_add(1);
        self.sum = self.sum.plus(v);
        if v < self.min {
            self.min = v;
        }
        if v > self.max {
            self.max = v;
        }
        if ts >= self.last_ts {
            (self.last_ts, self.last) = (ts, v);
        }
    }
}

impl Window {
    /// A window made by its first point.
    pub fn first(v: &Value, ts: i64) -> Window {
        match *v {
            Value::Int(x) => Window::Int(Numbers::first(x, ts)),
            Value::Uint(x) => Window::Uint(Numbers::first(x, ts)),
            Value::Bool(x) => Window::Bool {
                count: 1,
                last_ts: ts,
                last: x,
            },
            Value::Str(s) => Window::Str {
                count: 1,
                last_ts: ts,
                last: s.into(),
            },
            Value::Decimal(_) | Value::Float(_) => {
                Window::Float(Numbers::first(v.as_f64().unwrap_or(0.0), ts))
            }
        }
    }

    /// Counts a point into the window.
    /// Inlined into the windows' loop: called for every field of every
    /// line (a call and its copies were a third of its cost,
    /// `benches/downsample.rs`).
    #[inline]
    pub fn add(&mut self, v: &Value, ts: i64) -> Result<(), TypeConflict> {
        match (self, v) {
            (Window::Float(n), Value::Decimal(d)) => n.add(d.to_f64(), ts),
            (Window::Float(n), Value::Float(x)) => n.add(*x, ts),
            (Window::Int(n), Value::Int(x)) => n.add(*x, ts),
            (Window::Uint(n), Value::Uint(x)) => n.add(*x, ts),
            (
                Window::Bool {
                    count,
                    last_ts,
                    last,
                },
                Value::Bool(x),
            ) => {
                *count = count.saturating_add(1);
                if ts >= *last_ts {
                    (*last_ts, *last) = (ts, *x);
                }
            }
            (
                Window::Str {
                    count,
                    last_ts,
                    last,
                },
                Value::Str(s),
            ) => {
                *count = count.saturating_add(1);
                if ts >= *last_ts {
                    *last_ts = ts;
                    *last = (*s).into();
                }
            }
            _ => return Err(TypeConflict),
        }
        Ok(())
    }

    /// `add`, given the value's `line_key::typed` bits too: a decimal is
    /// converted once a field for the key and the window, not twice (a
    /// division each: BENCHMARKS.md).
    #[inline(always)]
    pub fn add_typed(&mut self, v: &Value, bits: u64, ts: i64) -> Result<(), TypeConflict> {
        match (self, v) {
            (Window::Float(n), Value::Decimal(_) | Value::Float(_)) => {
                n.add(f64::from_bits(bits), ts);
                Ok(())
            }
            // Integers here too: through `add` they were a call a field
            // (`Window::add` out of line, 2 ns a line of three, profiled).
            (Window::Int(n), Value::Int(x)) => {
                n.add(*x, ts);
                Ok(())
            }
            (w, v) => w.add(v, ts),
        }
    }

    pub fn kind(&self) -> u8 {
        match self {
            Window::Float(_) => KIND_FLOAT,
            Window::Int(_) => KIND_INT,
            Window::Uint(_) => KIND_UINT,
            Window::Bool { .. } => KIND_BOOL,
            Window::Str { .. } => KIND_STR,
        }
    }

    pub fn count(&self) -> u64 {
        match self {
            Window::Float(n) => n.count,
            Window::Int(n) => n.count,
            Window::Uint(n) => n.count,
            Window::Bool { count, .. } | Window::Str { count, .. } => *count,
        }
    }

    /// Appends the window's aggregate fields, `<field>_<aggregate>=<value>`,
    /// each preceded by `,` (the caller drops the first), in the order of
    /// `Aggregate::ALL`. `field` is the field key as written (escapes kept:
    /// a suffix of letters and `_` needs none).
    pub fn push_fields(&self, field: &[u8], aggs: Aggregates, out: &mut Vec<u8>) {
        let aggs = aggs.applicable(self.kind());
        for a in Aggregate::ALL {
            if !aggs.has(a) {
                continue;
            }
            let mark = out.len();
            out.push(b',');
            out.extend_from_slice(field);
            out.push(b'_');
            out.extend_from_slice(a.name().as_bytes());
            out.push(b'=');
            if !self.push_value(a, out) {
                out.truncate(mark);
            }
        }
    }

    /// Writes aggregate `a`'s value; `false` if it has none to write.
    fn push_value(&self, a: Aggregate, out: &mut Vec<u8>) -> bool {
        if a == Aggregate::Count {
            push_i64(out, i64::try_from(self.count()).unwrap_or(i64::MAX));
            out.push(b'i');
            return true;
        }
        match self {
            Window::Float(n) => {
                let v = match a {
                    Aggregate::Mean => n.sum / n.count as f64,
                    Aggregate::Min => n.min,
                    Aggregate::Max => n.max,
                    Aggregate::Last => n.last,
                    _ => n.sum,
                };
                push_float(v, out)
            }
            Window::Int(n) => {
                if a == Aggregate::Mean {
                    return push_float(n.sum as f64 / n.count as f64, out);
                }
                push_i64(out, pick(n, a));
                out.push(b'i');
                true
            }
            Window::Uint(n) => {
                if a == Aggregate::Mean {
                    return push_float(n.sum as f64 / n.count as f64, out);
                }
                crate::lineproto::numbers::push_u64(out, pick(n, a));
                out.push(b'u');
                true
            }
            Window::Bool { last, .. } => {
                out.extend_from_slice(if *last { b"true" } else { b"false" });
                true
            }
            Window::Str { last, .. } => {
                out.push(b'"');
                out.extend_from_slice(last);
                out.push(b'"');
                true
            }
        }
    }
}

fn pick<T: Copy>(n: &Numbers<T>, a: Aggregate) -> T {
    match a {
        Aggregate::Min => n.min,
        Aggregate::Max => n.max,
        Aggregate::Last => n.last,
        _ => n.sum,
    }
}

/// A float as line protocol (`{:?}`: the shortest spelling that reads back
/// to the same bits); `false` for infinity, which line protocol cannot say.
fn push_float(v: f64, out: &mut Vec<u8>) -> bool {
    use std::io::Write;
    v.is_finite() && write!(out, "{v:?}").is_ok()
}

/// The start of the window of `every_ns` holding `ts`: windows are aligned
/// to the epoch, as InfluxDB's `GROUP BY time(every)` without an offset
/// labels them (before 1970 too). `None` when that start is before the
/// earliest i64 nanosecond (a point within one window of it).
pub fn window_start(ts: i64, every_ns: i64) -> Option<i64> {
    ts.checked_sub(ts.rem_euclid(every_ns.max(1)))
}

#[cfg(test)]
#[path = "aggregate_tests.rs"]
mod tests;
