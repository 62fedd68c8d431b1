//! Routing: which bucket each point of a write goes to, by the rules of
//! `influxdb.sharding`. Runs on the executor, on the parser's normalised lines,
//! before the points reach the ring, so a stored batch has one destination and
//! a later reload never re-routes what is already buffered.
//!
//! # Rules
//! - **tag-based**: a field goes to the first bucket (in config order) whose
//!   `tags` all match the point's tags (each listed tag present with a value
//!   matching one of its globs) and one of whose `points` globs matches the
//!   measurement name or that field's key (no `points`: any). A line whose
//!   fields land in different buckets is split into one line per bucket, each
//!   with the same measurement, tags and timestamp.
//! - **range**: the whole line goes to the first bucket one of whose `ids`
//!   ranges holds the integer value of the tag `id_tag`.
//! - **hash**: the whole line goes to bucket `fnv1a64(series key) mod N`; the
//!   series key is the measurement and sorted tags as the parser normalised
//!   them, so a series always lands in the same bucket (stable across restarts
//!   and builds; it changes only when the bucket list does).
//! - Points no rule takes go to `default_bucket`, or where the producer sent
//!   them when none is set.
//!
//! Globs: `*` any run of bytes, `?` one byte, everything else literal; names
//! are matched unescaped.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// Justified allow: these are byte scanners. Every `buf[i]` sits behind an
// `i < len` test (a loop condition or a guard on the same line) and every
// index sum is bounded by a slice length, so neither can panic or wrap;
// spelling each access as `get` would slow the hot path and prove nothing
// the fuzz targets (`fuzz/`: ingest_roundtrip, decode_batch) and the 415
// conformance vectors do not already try on every CI run.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use crate::config::{Influxdb, Strategy, parse_id_range};
use crate::route::dest::Destination;
use std::borrow::Cow;

/// Points of one write bound for one destination.
#[derive(Debug, PartialEq)]
pub struct Routed {
    pub dest: Destination,
    pub payload: Vec<u8>,
    pub points: usize,
    pub min_ts: i64,
    pub max_ts: i64,
}

struct Rule {
    dest: Destination,
    points: Vec<Vec<u8>>,
    tags: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    ids: Vec<(i64, i64)>,
}

pub struct Router {
    strategy: Strategy,
    id_tag: Vec<u8>,
    rules: Vec<Rule>,
    default: Option<usize>,
}

/// Part of a line: its series key, some of its `k=v` fields, its timestamp.
type Piece<'a> = (&'a [u8], &'a [&'a [u8]], &'a [u8]);
/// An unescaped tag: key and value.
type Tag<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// Where a piece of a line goes: a rule's bucket, or the producer's choice.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    Bucket(usize),
    Fallback,
}

impl Router {
    /// The router for a validated config; `None` when no buckets are set.
    pub fn from_config(db: &Influxdb) -> Option<Router> {
        let s = &db.sharding;
        if s.buckets.is_empty() {
            return None;
        }
        let bytes = |v: &Vec<String>| v.iter().map(|g| g.as_bytes().to_vec()).collect();
        Some(Router {
            strategy: s.strategy,
            id_tag: s.id_tag.as_bytes().to_vec(),
            rules: s
                .buckets
                .iter()
                .map(|b| Rule {
                    dest: crate::route::dest::Destination::of_bucket(b, db),
                    points: bytes(&b.points),
                    tags: b
                        .tags
                        .iter()
                        .map(|(k, v)| (k.as_bytes().to_vec(), bytes(v)))
                        .collect(),
                    ids: b.ids.iter().filter_map(|r| parse_id_range(r)).collect(),
                })
                .collect(),
            default: s.buckets.iter().position(|b| b.name == s.default_bucket),
        })
    }

    /// Splits a normalised payload (`lineproto::parse_into`'s output) by
    /// destination, in first-seen order; lines keep their order within each.
    pub fn route(&self, fallback: &Destination, payload: &[u8]) -> Vec<Routed> {
        let mut out: Vec<(Target, Routed)> = Vec::new();
        for line in crate::lineproto::lines(payload) {
            let Some(parts) = crate::lineproto::split::parts(line) else {
                // A line the splitter will not read (a field key with a bare
                // comma, see `split::next_field`): keep it with the
                // producer's choice rather than lose it.
                self.emit(&mut out, Target::Fallback, fallback, line, None, 0);
                continue;
            };
            let (measurement, tags) = key_parts(parts.key);
            match self.strategy {
                Strategy::Hash => {
                    let i = (series_hash(parts.key) % self.rules.len() as u64) as usize;
                    self.emit(&mut out, Target::Bucket(i), fallback, line, None, parts.ts);
                }
                Strategy::Range => {
                    let id = tags
                        .iter()
                        .find(|(k, _)| **k == *self.id_tag)
                        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse::<i64>().ok());
                    let t = id
                        .and_then(|id| {
                            self.rules
                                .iter()
                                .position(|r| r.ids.iter().any(|&(lo, hi)| lo <= id && id <= hi))
                        })
                        .map_or(self.unmatched(), Target::Bucket);
                    self.emit(&mut out, t, fallback, line, None, parts.ts);
                }
                Strategy::TagBased => {
                    // Per rule: do its tags match, and does it take the whole line?
                    let eligible: Vec<(usize, bool)> = (self.rules.iter().enumerate())
                        .filter(|(_, r)| {
                            r.tags.iter().all(|(k, globs)| {
                                tags.iter().any(|(tk, tv)| {
                                    **tk == **k && globs.iter().any(|g| glob(g, tv))
                                })
                            })
                        })
                        .map(|(i, r)| {
                            let whole = r.points.is_empty()
                                || r.points.iter().any(|g| glob(g, &measurement));
                            (i, whole)
                        })
                        .collect();
                    let target_of = |field: &[u8]| {
                        eligible
                            .iter()
                            .find(|&&(i, whole)| {
                                whole
                                    || (self.rules[i].points.iter())
                                        .any(|g| glob(g, &unescape(field)))
                            })
                            .map_or(self.unmatched(), |&(i, _)| Target::Bucket(i))
                    };
                    let targets: Vec<Target> =
                        parts.fields.iter().map(|(k, _)| target_of(k)).collect();
                    if targets.iter().all(|t| *t == targets[0]) {
                        self.emit(&mut out, targets[0], fallback, line, None, parts.ts);
                        continue;
                    }
                    let mut done: Vec<Target> = Vec::new();
                    for t in &targets {
                        if done.contains(t) {
                            continue;
                        }
                        done.push(*t);
                        let fields: Vec<&[u8]> = (parts.fields.iter().zip(&targets))
                            .filter(|(_, tt)| *tt == t)
                            .map(|((_, raw), _)| *raw)
                            .collect();
                        let piece = (parts.key, fields.as_slice(), parts.ts_text);
                        self.emit(&mut out, *t, fallback, line, Some(piece), parts.ts);
                    }
                }
            }
        }
        out.into_iter().map(|(_, r)| r).collect()
    }

    fn unmatched(&self) -> Target {
        self.default.map_or(Target::Fallback, Target::Bucket)
    }

    /// Appends a line (or a piece of one: key, some `k=v` fields, timestamp)
    /// to its target's payload.
    fn emit(
        &self,
        out: &mut Vec<(Target, Routed)>,
        target: Target,
        fallback: &Destination,
        line: &[u8],
        piece: Option<Piece<'_>>,
        ts: i64,
    ) {
        let slot = match out.iter().position(|(t, _)| *t == target) {
            Some(i) => i,
            None => {
                let dest = match target {
                    Target::Bucket(i) => self.rules[i].dest.clone(),
                    Target::Fallback => fallback.clone(),
                };
                // Two targets may name the same place (a bucket and the
                // producer's own choice): they share one payload.
                match out.iter().position(|(_, r)| r.dest == dest) {
                    Some(i) => i,
                    None => {
                        out.push((
                            target,
                            Routed {
                                dest,
                                payload: Vec::with_capacity(line.len() * 16),
                                points: 0,
                                min_ts: ts,
                                max_ts: ts,
                            },
                        ));
                        out.len() - 1
                    }
                }
            }
        };
        let r = &mut out[slot].1;
        match piece {
            None => r.payload.extend_from_slice(line),
            Some((key, fields, ts_text)) => {
                r.payload.extend_from_slice(key);
                for (i, f) in fields.iter().enumerate() {
                    r.payload.push(if i == 0 { b' ' } else { b',' });
                    r.payload.extend_from_slice(f);
                }
                r.payload.push(b' ');
                r.payload.extend_from_slice(ts_text);
            }
        }
        r.payload.push(b'\n');
        r.points += 1;
        r.min_ts = r.min_ts.min(ts);
        r.max_ts = r.max_ts.max(ts);
    }
}

/// Measurement and tag pairs of a series key, unescaped.
pub(super) fn key_parts(key: &[u8]) -> (Cow<'_, [u8]>, Vec<Tag<'_>>) {
    let mut parts = split_unescaped(key, b',');
    let measurement = unescape(parts.next().unwrap_or_default());
    let tags = parts
        .filter_map(|kv| {
            let mut it = split_unescaped(kv, b'=');
            Some((unescape(it.next()?), unescape(it.next()?)))
        })
        .collect();
    (measurement, tags)
}

/// Splits at each `sep` not preceded by a backslash (InfluxDB's rule).
fn split_unescaped(s: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let end = (start..s.len())
            .find(|&i| s[i] == sep && (i == 0 || s[i - 1] != b'\\'))
            .unwrap_or(s.len());
        let item = &s[start..end];
        done = end == s.len();
        start = end + 1;
        Some(item)
    })
}

/// Drops the backslash of `\,` `\=` `\ ` (the escapes names may carry).
fn unescape(s: &[u8]) -> Cow<'_, [u8]> {
    if !s.contains(&b'\\') {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && matches!(s.get(i + 1), Some(b',' | b'=' | b' ')) {
            i += 1;
        }
        out.push(s[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// `*` and `?` globs over bytes, linear with one backtrack point.
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// FNV-1a, 64 bit: stable across builds and platforms, unlike std's hasher.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_more(FNV_OFFSET, bytes)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a64_more(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The hash of a series key with its tags in InfluxDB's order (sorted by
/// key), whatever order the producer sent them in: one
/// series, one bucket. For a key already sorted (what most clients send)
/// this is `fnv1a64(key)`, so buckets chosen before this rule stay put.
pub fn series_hash(key: &[u8]) -> u64 {
    let mut parts = split_unescaped(key, b',');
    let measurement = parts.next().unwrap_or_default();
    let mut tags: Vec<&[u8]> = parts.collect();
    // InfluxDB's order: by tag key (`host` before `host-id`, though `-`
    // sorts before `=` as text), then value.
    let key = |t: &&[u8]| -> (Vec<u8>, Vec<u8>) {
        let mut kv = split_unescaped(t, b'=');
        let k = kv.next().unwrap_or_default().to_vec();
        let v = kv.next().unwrap_or_default().to_vec();
        (k, v)
    };
    tags.sort_by_cached_key(key);
    tags.iter().fold(fnv1a64(measurement), |h, tag| {
        fnv1a64_more(fnv1a64_more(h, b","), tag)
    })
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
