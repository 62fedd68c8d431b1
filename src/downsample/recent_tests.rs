//! `RecentLines` against models of its horizon and its generations.

use super::*;

/// The horizon against a model: the newest `cap` keys are always
/// found, nothing older than the newest `2 × cap` is, and no key never
/// remembered is (keys random, some remembered twice).
#[test]
fn the_newest_keys_are_found_and_the_oldest_forgotten_in_order() {
    // 1,000: more than `PENDING_KEYS`, so keys wait in the buffer.
    for cap in [1usize, 3, 16, 100, 1_000] {
        let mut r = RecentLines::with_capacity(cap);
        let mut order: Vec<u64> = Vec::new();
        let mut x = 7u64 + cap as u64;
        for step in 0..5_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Small keys, so some come again (not 0: kept as 1).
            let k = 1 + x % (4 * cap as u64 + 3);
            let was = r.contains(k);
            let newest: std::collections::HashSet<u64> = (order.iter().rev())
                .scan(std::collections::HashSet::new(), |seen, &k| {
                    seen.insert(k);
                    Some((seen.len(), k))
                })
                .take_while(|&(n, _)| n <= cap)
                .map(|(_, k)| k)
                .collect();
            if newest.contains(&k) {
                assert!(was, "cap {cap} step {step}: {k} among the newest {cap}");
            }
            if !order.contains(&k) {
                assert!(!was, "cap {cap} step {step}: {k} never remembered");
            }
            let inserted_since = |k: u64| order.iter().rev().position(|&o| o == k);
            if inserted_since(k).is_some_and(|p| p >= 2 * cap) && !newest.contains(&k) {
                // Remembered only by an insert older than 2 × cap
                // inserts (its last), so forgotten.
                assert!(!was, "cap {cap} step {step}: {k} older than the horizon");
            }
            if step % 3 == 0 {
                assert_eq!(r.seen(k), was);
                if !was {
                    order.push(k);
                }
            } else if !was {
                r.remember(k);
                order.push(k);
            }
            assert!(r.len() <= 2 * cap, "bounded");
        }
    }
}

#[test]
fn a_line_is_a_repeat_until_it_is_forgotten() {
    let mut r = RecentLines::with_capacity(2);
    assert!(!r.seen(10));
    assert!(r.seen(10), "the same key again");
    assert!(!r.seen(11));
    assert!(!r.seen(12), "a new generation");
    assert!(
        r.seen(10) && r.seen(11),
        "the older generation still looked in"
    );
    assert!(!r.seen(13));
    assert!(!r.seen(14), "the generation of 10 and 11 dropped");
    assert!(!r.contains(10) && !r.contains(11));
    assert!(r.contains(12) && r.contains(13) && r.contains(14));
}

#[test]
fn legacy_keys_are_found_until_the_horizon_has_passed_them() {
    let mut r = RecentLines::with_capacity(4);
    r.remember_legacy(&[5, 6]);
    assert!(r.has_legacy() && r.legacy_contains(5) && !r.legacy_contains(7));
    for k in 100..107 {
        r.remember(k);
    }
    assert!(r.legacy_contains(6), "7 lines counted: still looked for");
    r.remember(107);
    assert!(
        !r.has_legacy() && !r.legacy_contains(6),
        "8 = 2 x cap: gone"
    );
}

/// From review: against an unbuffered exact model of the same generations
/// (two sets; the newer dropped into the older when full, before an
/// insert), keys 0 and 1 alike, keys sharing low bits (the pending
/// filter), keys and their `partly` twins (one walk for both), every
/// operation.
#[test]
fn recent_lines_agree_with_an_unbuffered_model_of_the_generations() {
    use std::collections::HashSet as Set;
    struct Model {
        newer: Set<u64>,
        older: Set<u64>,
        cap: usize,
    }
    impl Model {
        fn contains(&self, k: u64) -> bool {
            let k = k.max(1);
            self.newer.contains(&k) || self.older.contains(&k)
        }
        fn remember(&mut self, k: u64) {
            let k = k.max(1);
            if self.newer.len() >= self.cap {
                self.older = std::mem::take(&mut self.newer);
            }
            self.newer.insert(k);
        }
    }
    for seed in 1..=200u64 {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let cap = [1usize, 2, 5, 100, 511, 512, 513, 1_000][(next() % 8) as usize];
        let mut r = RecentLines::with_capacity(cap);
        let mut m = Model {
            newer: Set::new(),
            older: Set::new(),
            cap,
        };
        let span = 1 + next() % (4 * cap as u64 + 10);
        for step in 0..4_000 {
            let k = match next() % 5 {
                0 => next() % 3,
                // Same low 12 bits, different top: the pending filter
                // says "maybe" for a key not pending.
                1 => (next() % span) << 12 | 7,
                // A partly-counted twin: it shares its key's slots.
                2 => partly(next() % span),
                _ => next() % span,
            };
            match next() % 5 {
                4 => assert_eq!(
                    r.contains_pair(k),
                    (m.contains(k), m.contains(partly(k))),
                    "seed {seed} step {step} contains_pair {k}"
                ),
                0 => assert_eq!(
                    r.contains(k),
                    m.contains(k),
                    "seed {seed} step {step} contains {k}"
                ),
                1 => {
                    let was = m.contains(k);
                    assert_eq!(r.seen(k), was, "seed {seed} step {step} seen {k}");
                    if !was {
                        m.remember(k);
                    }
                }
                2 => {
                    let was = m.contains(k);
                    r.insert(k);
                    if !was {
                        m.remember(k);
                    }
                }
                _ => {
                    r.remember(k);
                    m.remember(k);
                }
            }
        }
    }
}

/// Found in review: `len` counted a pending key already held (or
/// pending twice) as one more; the flush does not.
#[test]
fn len_counts_a_key_once() {
    let mut r = RecentLines::with_capacity(4);
    r.remember(5);
    r.remember(5);
    assert_eq!(r.len(), 1, "pending: 5 twice");
    let _ = r.contains(9);
    assert_eq!(r.len(), 1, "flushed");
}

/// From review: `contains_pair` answers as `contains` of the key and of
/// its twin, at every capacity's turnover, with twins remembered and the
/// edge keys (0 and 1 stored alike, `PARTLY`, `u64::MAX`) among them.
#[test]
fn contains_pair_answers_as_contains_of_the_key_and_of_its_twin() {
    for cap in [1usize, 2, 3, 7, 600] {
        let mut next = crate::sim_tests::rng(99 + cap as u64);
        let mut r = RecentLines::with_capacity(cap);
        let mut pool: Vec<u64> = vec![0, 1, PARTLY, PARTLY ^ 1, u64::MAX, u64::MAX ^ PARTLY];
        for step in 0..20_000 {
            let k = if step % 3 == 0 {
                let k = next();
                pool.push(k);
                k
            } else {
                let k = pool[(next() % pool.len() as u64) as usize];
                if next().is_multiple_of(2) {
                    partly(k)
                } else {
                    k
                }
            };
            if next().is_multiple_of(3) {
                let want = (r.contains(k), r.contains(partly(k)));
                assert_eq!(r.contains_pair(k), want, "cap {cap} step {step} key {k:#x}");
            } else {
                r.remember(k);
            }
        }
    }
}

/// The filter (two bits a key in one word) never turns away a key
/// remembered, and lets few keys never remembered go on to the slots: a
/// filter that let most through would cost every lookup a cache miss
/// (nothing else would notice).
#[test]
fn the_filter_holds_every_key_remembered_and_few_others() {
    let mut next = crate::sim_tests::rng(0x_f117);
    let mut r = RecentLines::with_capacity(RECENT_LINES);
    let keys: Vec<u64> = (0..RECENT_LINES).map(|_| next()).collect();
    for &k in &keys {
        r.remember(k);
    }
    assert_eq!(r.len(), RECENT_LINES, "one generation, full");
    for &k in &keys {
        assert!(r.newer.may_hold(stored(k)), "{k:#x} remembered");
    }
    let tries = 100_000;
    let passed = (0..tries).filter(|_| r.newer.may_hold(next())).count();
    // Two bits of 8 a key in 64-bit words: about 5.5 %.
    assert!(
        passed * 100 < tries * 8,
        "{passed} of {tries} keys never remembered passed the filter"
    );
}
