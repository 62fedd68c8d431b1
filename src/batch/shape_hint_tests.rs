//! The codec's line shapes as series hints (`Downsampler::feed_split` with
//! `SplitLines::shapes`): a batch fed with them counts exactly as fed
//! without (`Downsampler::feed`, line by line), whatever the lines.

use super::tests::S;
use super::*;
use crate::config::LifecycleRule;
use crate::sim_tests::{rng, seeds};
use crate::wal::codec;

/// The crash test's two rules (one taking every line, one a measurement's
/// lines of one tag value: lines in one lane or in two), with a bound; and
/// with `third`, a third rule to the second's warm destination, skipped for
/// a line the second takes (`written.contains`).
fn rules(max_open: usize, third: bool) -> Lifecycle {
    let mut l = super::tests::lifecycle();
    l.max_open_windows = max_open;
    if third {
        l.rules.push(LifecycleRule {
            measurement: "m*".into(),
            downsample: "30s".into(),
            warm_destination: "warm".into(),
            ..LifecycleRule::default()
        });
    }
    l
}

/// One batch fed to both: by line, and as the codec's split with its
/// shapes; the same answer, counts and windows. Whether it had shapes.
fn feed_both(plain: &mut Downsampler, hinted: &mut Downsampler, payload: &[u8], at: &str) -> bool {
    let dest = Destination {
        db: "db".into(),
        rp: String::new(),
    };
    let a = plain.feed(&dest, payload);
    let split = SplitLines::of(payload);
    codec::encode_split(codec::FORMAT_DELTA, &split).expect("encodes");
    let b = hinted.feed_split(&dest, &split);
    assert_eq!(a, b, "{at}: whole");
    assert_eq!(plain.counts(), hinted.counts(), "{at}");
    assert_eq!(plain.open_windows(), hinted.open_windows(), "{at}");
    split.shapes.get().is_some()
}

/// Random batches of a few series with their usual fields, now and then
/// one more, one fewer, two swapped or a type changed; timestamps mostly in
/// order, some late; a tenth of the batches a producer's retry of an
/// earlier one. Both downsamplers give the same answer for each batch, the
/// same counts, and emit the same lines; a small bound makes some series
/// refused as full.
#[test]
fn fed_with_the_codecs_line_shapes_a_batch_counts_as_fed_without_them() {
    let mut shaped_batches = 0;
    for seed in 1..=seeds(200) {
        let mut next = rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        let mut plain = Downsampler::from_config(&rules(60, false)).expect("rules");
        let mut hinted = Downsampler::from_config(&rules(60, false)).expect("rules");
        let series = ["m,site=a", "m,site=b", "mx,site=a", "mx,site=b", "other"];
        let usual: Vec<Vec<(u64, u64)>> = (0..series.len())
            .map(|_| (0..1 + next() % 4).map(|f| (f, next() % 3)).collect())
            .collect();
        let mut now = 0i64;
        let mut sent: Vec<Vec<u8>> = Vec::new();
        for step in 0..30 {
            let payload = if next().is_multiple_of(10) && !sent.is_empty() {
                sent[(next() % sent.len() as u64) as usize].clone()
            } else {
                let mut p = Vec::new();
                for _ in 0..1 + next() % 12 {
                    let s = (next() % series.len() as u64) as usize;
                    let mut fields = usual[s].clone();
                    match next() % 8 {
                        0 => fields.push((next() % 6, next() % 3)),
                        1 if fields.len() > 1 => {
                            fields.pop();
                        }
                        2 if fields.len() > 1 => fields.swap(0, 1),
                        3 => fields[0].1 = next() % 3,
                        _ => {}
                    }
                    now += (next() % 3) as i64;
                    let ts = if next().is_multiple_of(8) {
                        now - (next() % 30) as i64
                    } else {
                        now
                    };
                    let text: Vec<String> = (fields.iter())
                        .map(|&(f, kind)| match kind {
                            0 => format!("f{f}={}.5", next() % 9),
                            1 => format!("f{f}={}i", next() % 9),
                            _ => format!("f{f}=\"s{}\"", next() % 2),
                        })
                        .collect();
                    let line = format!("{} {} {}\n", series[s], text.join(","), ts * S);
                    p.extend_from_slice(line.as_bytes());
                }
                p
            };
            sent.push(payload.clone());
            let at = format!("seed {seed} step {step}");
            shaped_batches += usize::from(feed_both(&mut plain, &mut hinted, &payload, &at));
            if next().is_multiple_of(4) {
                let (mut x, mut y) = (
                    super::tests::emitted(&mut plain),
                    super::tests::emitted(&mut hinted),
                );
                x.sort();
                y.sort();
                assert_eq!(x, y, "seed {seed} step {step}: the lines emitted");
            }
        }
    }
    assert!(shaped_batches > 0, "the codec gave its shapes");
}

/// From review: many series, series removed again (every field refused:
/// a name past `MAX_FIELD_NAME_BYTES`), a full bound, three rules, several
/// windows and late lines in one batch; the emitted lines in their order
/// and the checkpoints' bytes compared exactly (arrival order is the same
/// in every process).
#[test]
fn hints_change_neither_the_order_emitted_nor_the_bytes_saved() {
    let long = "x".repeat(65_536);
    let mut shaped = 0;
    for seed in 1..=seeds(150) {
        let mut next = rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let max_open = [8usize, 40, 400][(next() % 3) as usize];
        let (Some(mut plain), Some(mut hinted)) = (
            Downsampler::from_config(&rules(max_open, true)),
            Downsampler::from_config(&rules(max_open, true)),
        ) else {
            panic!("rules")
        };
        let keys: Vec<String> = (0..30)
            .map(|i| {
                let m = ["m", "mx", "my"][i % 3];
                let site = ["a", "b", "cc"][(i / 3) % 3];
                format!("{m},site={site},n={}", i / 9)
            })
            .collect();
        let mut now = 100i64;
        let mut sent: Vec<Vec<u8>> = Vec::new();
        for step in 0..40 {
            let payload = if next().is_multiple_of(10) && !sent.is_empty() {
                sent[(next() % sent.len() as u64) as usize].clone()
            } else {
                let mut p = Vec::new();
                for _ in 0..1 + next() % 25 {
                    let k = &keys[(next() % keys.len() as u64) as usize];
                    let nf = 1 + next() % 3;
                    let mut text: Vec<String> = (0..nf)
                        .map(|f| format!("f{}={}i", (f + next() % 2) % 4, next() % 9))
                        .collect();
                    if next().is_multiple_of(9) {
                        // Refused by the windows (a name too long): the
                        // series is pushed, then removed again.
                        text = vec![format!("{long}=1i")];
                    }
                    now += (next() % 4) as i64;
                    let ts = if next().is_multiple_of(6) {
                        now - (next() % 70) as i64
                    } else {
                        now
                    };
                    p.extend_from_slice(format!("{k} {} {}\n", text.join(","), ts * S).as_bytes());
                }
                p
            };
            sent.push(payload.clone());
            let at = format!("seed {seed} step {step}");
            shaped += usize::from(feed_both(&mut plain, &mut hinted, &payload, &at));
            if next().is_multiple_of(3) {
                let x = plain.checkpoint(0);
                let y = hinted.checkpoint(0);
                let lines = |c: &crate::wal::WindowsCheckpoint| {
                    c.emitted
                        .iter()
                        .map(|b| {
                            (
                                b.dest.clone(),
                                String::from_utf8_lossy(&b.payload).into_owned(),
                            )
                        })
                        .collect::<Vec<_>>()
                };
                assert_eq!(
                    lines(&x),
                    lines(&y),
                    "seed {seed} step {step}: emitted, in order"
                );
                let sets = |c: &crate::wal::WindowsCheckpoint| {
                    c.sets
                        .iter()
                        .map(|(_, s, b)| (*s, b.clone()))
                        .collect::<Vec<_>>()
                };
                assert_eq!(
                    sets(&x),
                    sets(&y),
                    "seed {seed} step {step}: checkpoint bytes"
                );
            }
        }
    }
    assert!(shaped > 0, "the codec gave its shapes");
}
