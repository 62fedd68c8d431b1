//! The common line's shortcut (`Series::add_in_order`) against the
//! general loop of `add_line_unless`, over random lines.

use super::tests::{EVERY, rule};
use super::*;
use crate::lineproto::split::split;
use crate::sim_tests::{rng, seeds};

/// The common line's shortcut (`add_line_unless`: a line newer than every
/// point of its series' window, naming the series' fields in order) gives
/// what the general loop gives: the same outcome for every field, the same
/// counts, the same lines emitted, the same windows held, over random
/// lines of changing field orders, repeated names, type conflicts, retries
/// and points late and out of order, in two lanes.
#[test]
fn the_fast_path_for_the_common_line_agrees_with_the_general_loop() {
    const NAMES: [&str; 4] = ["a", "b", "cc", "a2"];
    for seed in 1..=seeds(40) {
        let mut next = rng(seed * 7_919);
        let rules = vec![rule(EVERY, 3 * EVERY), rule(0, EVERY)];
        let mut fast = Windows::new(rules.clone(), 200);
        let mut slow = Windows::new(rules, 200);
        slow.fast_path = false;
        let mut ts = [0i64; 2];
        let mut sent: Vec<(Lane, String)> = Vec::new();
        for step in 0..600 {
            let lane = Lane {
                rule: (next() % 2) as u16,
                dest: (next() % 2) as u32,
            };
            let r = usize::from(lane.rule);
            let line = if next().is_multiple_of(8) && !sent.is_empty() {
                // A retry of a line sent before.
                sent[(next() % sent.len() as u64) as usize].1.clone()
            } else {
                ts[r] += (next() % 40) as i64;
                let at = ts[r] - (next().is_multiple_of(4)) as i64 * (next() % 300) as i64;
                let n = 1 + (next() % 4) as usize;
                let fields: Vec<String> = (0..n)
                    .map(|_| {
                        let name = NAMES[if next().is_multiple_of(4) {
                            (next() % 4) as usize
                        } else {
                            0
                        }];
                        let name = if next().is_multiple_of(3) {
                            name
                        } else {
                            NAMES[(next() % 2) as usize]
                        };
                        if next().is_multiple_of(20) {
                            format!("{name}=1.5")
                        } else {
                            format!("{name}={}i", next() % 100)
                        }
                    })
                    .collect();
                // Most lines name the same fields in the same order.
                let fields = if next().is_multiple_of(3) {
                    fields.join(",")
                } else {
                    format!("a={}i,b={}i", next() % 100, next() % 100)
                };
                format!("m,s={} {fields} {at}", next() % 3)
            };
            sent.push((lane, line.clone()));
            let l = split(line.as_bytes()).expect("a line");
            let (mut got_fast, mut got_slow) = (Vec::new(), Vec::new());
            let maybe_fast = fast.add_line_unless(
                lane,
                l.key,
                &l.fields,
                l.ts,
                || false,
                |i, o| got_fast.push((i, o)),
            );
            let maybe_slow = slow.add_line_unless(
                lane,
                l.key,
                &l.fields,
                l.ts,
                || false,
                |i, o| got_slow.push((i, o)),
            );
            assert_eq!(
                (maybe_fast, &got_fast),
                (maybe_slow, &got_slow),
                "seed {seed} step {step}: {line}"
            );
            assert_eq!(fast.counts, slow.counts, "seed {seed} step {step}");
            assert_eq!(fast.len(), slow.len(), "seed {seed} step {step}");
            if next().is_multiple_of(25) {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                fast.close(|lane, l| a.push((lane, l.to_vec())));
                slow.close(|lane, l| b.push((lane, l.to_vec())));
                a.sort();
                b.sort();
                assert_eq!(a, b, "seed {seed} step {step}: the lines emitted");
            }
        }
    }
}
