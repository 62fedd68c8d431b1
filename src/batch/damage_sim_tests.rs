//! The warm tier's starts over damaged saved state, as a seeded simulation:
//! random meter points (no retries) fed in random batches with random
//! checkpoints, then one saved row of a random table damaged (a value of
//! the wrong type, text that is not UTF-8, a set that does not decode) and
//! the tier started again, as after a crash. Invariants, for every seed:
//!
//! - the start runs (never suspended: damage is not a transient error), the
//!   saved windows read again afterwards, and the start after it is clean;
//! - windows lost leave no raw batch marked whole (`degrade` must not take
//!   points no window holds);
//! - no point is counted twice: the last emission of each series and window
//!   (what InfluxDB keeps) counts at most the points fed to it, and exactly
//!   those when the damage took no window and no owed batch (keys, secret).

use super::tests::{feed, rule_10s};
use super::*;
use crate::config::Synchronous;
use crate::route::dest::Destination;
use crate::sim_tests::{rng, seeds};
use std::collections::BTreeMap;

const S: i64 = 1_000_000_000;
/// The window of `rule_10s`, in seconds.
const EVERY_S: i64 = 10;

/// What one seed damages, and whether points may be lost by it.
const DAMAGES: [(&str, &str, bool); 8] = [
    (
        "keys",
        "INSERT INTO downsample_keys (keys) VALUES (42)",
        false,
    ),
    (
        "legacy keys",
        "INSERT INTO downsample_recent (keys) VALUES ('k')",
        false,
    ),
    (
        "secret",
        "UPDATE downsample_meta SET secret = 'none'",
        false,
    ),
    (
        "watermark",
        "UPDATE downsample_marks SET watermark = 'late'",
        true,
    ),
    (
        "set name",
        "UPDATE downsample_sets SET rule = CAST(x'ff' AS TEXT) WHERE start = (SELECT max(start) FROM downsample_sets)",
        true,
    ),
    (
        "set state",
        "UPDATE downsample_sets SET state = x'ff' WHERE start = (SELECT min(start) FROM downsample_sets)",
        true,
    ),
    (
        "duty",
        "UPDATE downsample_duty SET seq = 'x' WHERE batch_id = (SELECT min(batch_id) FROM downsample_duty)",
        false,
    ),
    (
        "owed batch",
        "UPDATE batches SET db = CAST(x'ff' AS TEXT) WHERE id = (SELECT min(batch_id) FROM downsample_duty)",
        true,
    ),
];

fn temp(seed: u64) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hissrv-damage-{seed}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The last `f_count` emitted for each (series, window start), in commit
/// order: what the upstream keeps.
fn last_counts(wal: &Wal) -> BTreeMap<(String, i64), u64> {
    let warm = Destination {
        db: "db".into(),
        rp: format!("autogen_{EVERY_S}s"),
    };
    let mut out = BTreeMap::new();
    for b in wal.pack(&warm, 0, 100_000, usize::MAX).expect("pack") {
        for line in String::from_utf8_lossy(&b.payload).lines() {
            let (Some(series), Some(ts)) = (line.split(' ').next(), line.rsplit(' ').next()) else {
                continue;
            };
            let count = line
                .split("f_count=")
                .nth(1)
                .and_then(|c| c.split('i').next())
                .and_then(|c| c.parse().ok());
            if let (Some(count), Ok(ts)) = (count, ts.parse()) {
                out.insert((series.to_string(), ts), count);
            }
        }
    }
    out
}

#[test]
fn damaged_saved_state_never_stops_the_tier_or_counts_a_point_twice() {
    let runs = seeds(120);
    let mut applied = 0;
    for seed in 0..runs {
        let mut next = rng(seed.wrapping_mul(0x9e37_79b9) ^ 0xda_4a6e);
        let (name, damage, may_lose) = DAMAGES[(next() % DAMAGES.len() as u64) as usize];
        let dir = temp(seed);
        let path = dir.join("buffer.db");
        let mut wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
        let raw = rusqlite::Connection::open(&path).expect("raw");
        let stats = Stats::default();
        let bell = Doorbell::default();
        let mut w = WarmTier::start(&rule_10s(), &mut wal, &stats, Arc::default()).expect("warm");
        // Unique points of three meters over 4 windows, shuffled a little
        // (out of order within the 1 h lateness), in batches of 1-6.
        let mut points: Vec<(u64, i64)> = (0..3u64)
            .flat_map(|m| (0..4 * EVERY_S).map(move |t| (m, t * S + 1)))
            .filter(|_| !next().is_multiple_of(3))
            .collect();
        for i in 0..points.len() {
            let j = (i + (next() % 4) as usize).min(points.len() - 1);
            points.swap(i, j);
        }
        let mut fed: BTreeMap<(String, i64), u64> = BTreeMap::new();
        let mut at = 0;
        while at < points.len() {
            let n = (1 + next() % 6) as usize;
            let batch: String = (points[at..(at + n).min(points.len())].iter())
                .map(|(m, ts)| {
                    let series = format!("m,h=h{m}");
                    *fed.entry((series.clone(), ts - ts.rem_euclid(EVERY_S * S)))
                        .or_default() += 1;
                    format!("{series} f=1i {ts}\n")
                })
                .collect();
            feed(&mut w, &mut wal, &stats, batch);
            at += n;
            if next().is_multiple_of(4) {
                w.checkpoint(&mut wal, &stats, &bell);
            }
        }
        // A crash (nothing saved at the stop), the damage, a start.
        drop(w);
        // A statement that matched no row (no duty owed at the crash) leaves
        // the seed undamaged; most must not (checked below).
        applied += usize::from(raw.execute(damage, []).expect("damage") > 0);
        let stats = Stats::default();
        let mut w = WarmTier::start(&rule_10s(), &mut wal, &stats, Arc::default()).expect("warm");
        let first = (w.suspended, w.ds.lost_windows);
        let whole: i64 = raw
            .query_row("SELECT count(*) FROM downsample_whole", [], |r| r.get(0))
            .expect("count");
        let readable = wal.saved_windows().map(|_| ());
        // Event time far ahead closes every window; a checkpoint emits them.
        feed(
            &mut w,
            &mut wal,
            &stats,
            format!("m,h=z f=1i {}\n", 1_000_000 * S),
        );
        w.checkpoint(&mut wal, &stats, &bell);
        let again = WarmTier::start(&rule_10s(), &mut wal, &Stats::default(), Arc::default())
            .map(|w| (w.suspended, w.ds.lost_windows));
        let emitted = last_counts(&wal);
        drop((w, wal, raw));
        let _ = std::fs::remove_dir_all(&dir);
        let what = format!("seed {seed}, damage: {name}");
        assert!(!first.0, "{what}: the start runs");
        assert!(readable.is_ok(), "{what}: readable after: {readable:?}");
        if first.1 {
            assert_eq!(whole, 0, "{what}: windows lost, a batch still marked whole");
        }
        assert_eq!(
            again,
            Some((false, false)),
            "{what}: the next start is clean"
        );
        for (key, &count) in &fed {
            let got = emitted.get(key).copied().unwrap_or(0);
            assert!(
                got <= count,
                "{what}: {key:?} counted {got} of {count} points"
            );
            if !may_lose {
                assert_eq!(got, count, "{what}: {key:?}: nothing may be lost");
            }
        }
    }
    assert!(
        applied * 3 >= runs as usize * 2,
        "damage applied in {applied} of {runs} seeds"
    );
}
