//! The warm tier through crashes: windows fed after each commit,
//! checkpointed with the buffer's custody, restored and replayed after a
//! crash, give the upstream exactly what one uninterrupted run gives.

use super::*;
use crate::config::{LifecycleRule, Synchronous};
use crate::wal::{Wal, codec};

use crate::sim_tests::{rng, seeds};

pub(super) fn lifecycle() -> Lifecycle {
    let mut site = std::collections::BTreeMap::new();
    site.insert("site".to_string(), vec!["a".to_string()]);
    Lifecycle {
        max_open_windows: 100_000,
        rules: vec![
            LifecycleRule {
                measurement: "m*".into(),
                downsample: "10s".into(),
                grace: "0".into(),
                max_lateness: "20s".into(),
                ..LifecycleRule::default()
            },
            LifecycleRule {
                measurement: "mx".into(),
                tags: site,
                downsample: "1m".into(),
                aggregates: vec!["max".into(), "count".into(), "last".into()],
                warm_destination: "warm".into(),
                ..LifecycleRule::default()
            },
        ],
        ..Lifecycle::default()
    }
}

/// What the upstream holds: (destination, series, field, time) → value, the
/// last write of a point winning.
type Upstream = BTreeMap<(Destination, String, String, i64), String>;

fn deliver(up: &mut Upstream, batches: &[NewBatch]) {
    for b in batches {
        for line in crate::lineproto::lines(&b.payload) {
            let l = crate::lineproto::split::split(line).expect("an emitted line");
            for (k, v) in &l.fields {
                let key = (
                    b.dest.clone(),
                    String::from_utf8_lossy(l.key).into_owned(),
                    String::from_utf8_lossy(k).into_owned(),
                    l.ts,
                );
                up.insert(key, format!("{v:?}"));
            }
        }
    }
}

pub(super) const S: i64 = 1_000_000_000;

/// Random streams of committed batches (two destinations, series of two
/// rules, points out of order and late), deliveries of the raw batches,
/// checkpoints, and crashes at random moments: between a commit and its
/// feed cannot happen (the feed is in memory, lost with it), so a crash is
/// everything in memory lost, sometimes with a checkpoint computed and not
/// yet written. After each crash: restore the last checkpoint, replay the
/// owed batches. At the end both runs see a point far ahead, close and
/// checkpoint: the upstreams are equal (nothing lost, nothing counted twice).
#[test]
fn crashes_at_random_moments_change_nothing_the_upstream_gets() {
    let cfg = lifecycle();
    for seed in 1..=seeds(40) {
        let mut next = rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let dir = std::env::temp_dir().join(format!("hissrv-ds-{}-{seed}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("buffer.db");
        let open = || {
            let mut w = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
            w.set_format(codec::FORMAT_DELTA);
            w
        };
        let mut wal = open();
        let mut live = Downsampler::from_config(&cfg).expect("rules");
        let mut reference = Downsampler::from_config(&cfg).expect("rules");
        let (mut up_live, mut up_ref) = (Upstream::new(), Upstream::new());
        let mut now = 1_000 * S;
        let mut crashes = 0;
        for _ in 0..120 {
            match next() % 10 {
                0..=5 => {
                    let mut payload = Vec::new();
                    let dest = Destination {
                        db: format!("db{}", next() % 2),
                        rp: String::new(),
                    };
                    for _ in 0..1 + next() % 6 {
                        now += (next() % (3 * S as u64)) as i64;
                        let late = if next().is_multiple_of(5) {
                            (next() % (40 * S as u64)) as i64
                        } else {
                            0
                        };
                        let m = if next().is_multiple_of(2) { "m" } else { "mx" };
                        let site = if next().is_multiple_of(2) { "a" } else { "b" };
                        let line = format!(
                            "{m},site={site} f={}.5,i={}i {}\n",
                            next() % 100,
                            next() % 1000,
                            now - late
                        );
                        payload.extend_from_slice(line.as_bytes());
                    }
                    let batch = NewBatch {
                        points: crate::lineproto::lines(&payload).count(),
                        dest: dest.clone(),
                        first_ts: 0,
                        last_ts: 0,
                        payload,
                    };
                    let duty = live.takes(&batch.payload);
                    assert_eq!(duty, reference.takes(&batch.payload));
                    wal.commit_with_duty(std::slice::from_ref(&batch), &[duty])
                        .expect("commits");
                    if duty {
                        live.feed(&dest, &batch.payload);
                        reference.feed(&dest, &batch.payload);
                    }
                }
                6 => {
                    // The forwarder takes the raw batches of a destination.
                    for (head, d) in wal.heads().expect("heads") {
                        let pack = wal.pack(&d, head, 5, usize::MAX).expect("pack");
                        wal.finish(&pack, &[]).expect("finish");
                    }
                }
                7 | 8 => {
                    let c = live.checkpoint(wal.last_commit_seq());
                    if next().is_multiple_of(4) {
                        // Computed, then the power went: never written.
                        crashes += 1;
                        drop(wal);
                        wal = open();
                        live = restart(&cfg, &wal);
                        continue;
                    }
                    wal.checkpoint_windows(&c).expect("checkpoint");
                    deliver(&mut up_live, &c.emitted);
                    let r = reference.checkpoint(0);
                    deliver(&mut up_ref, &r.emitted);
                }
                _ => {
                    crashes += 1;
                    drop(wal);
                    wal = open();
                    live = restart(&cfg, &wal);
                }
            }
        }
        // The end: a point far ahead in every lane closes every window.
        now += 10_000 * S;
        for db in ["db0", "db1"] {
            let dest = Destination {
                db: db.into(),
                rp: String::new(),
            };
            let payload = format!("mx,site=a f=0.5,i=0i {now}\n").into_bytes();
            let batch = NewBatch {
                points: 1,
                dest: dest.clone(),
                first_ts: now,
                last_ts: now,
                payload: payload.clone(),
            };
            wal.commit_with_duty(&[batch], &[true]).expect("commits");
            live.feed(&dest, &payload);
            reference.feed(&dest, &payload);
        }
        let c = live.checkpoint(wal.last_commit_seq());
        wal.checkpoint_windows(&c).expect("checkpoint");
        deliver(&mut up_live, &c.emitted);
        deliver(&mut up_ref, &reference.checkpoint(0).emitted);
        assert!(!up_ref.is_empty(), "seed {seed}: something emitted");
        let differ: Vec<_> = (up_live.iter().map(|(k, v)| (k, Some(v), up_ref.get(k))))
            .chain(up_ref.iter().map(|(k, v)| (k, up_live.get(k), Some(v))))
            .filter(|(_, a, b)| a != b)
            .take(6)
            .collect();
        assert!(
            differ.is_empty(),
            "seed {seed} ({crashes} crashes): {differ:?}"
        );
        assert!(
            up_ref.keys().any(|(d, ..)| d.rp == "warm")
                && up_ref.keys().any(|(d, ..)| d.rp == "autogen_10s"),
            "seed {seed}: both warm destinations"
        );
        drop(wal);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

pub(super) fn restart(cfg: &Lifecycle, wal: &Wal) -> Downsampler {
    Downsampler::rebuild(cfg, wal)
        .expect("rebuilds")
        .expect("rules")
}

pub(super) fn one_rule(downsample: &str) -> Lifecycle {
    Lifecycle {
        max_open_windows: 1_000,
        rules: vec![LifecycleRule {
            measurement: "m".into(),
            downsample: downsample.into(),
            ..LifecycleRule::default()
        }],
        ..Lifecycle::default()
    }
}

pub(super) fn emitted(d: &mut Downsampler) -> Vec<(Destination, String)> {
    let c = d.checkpoint(0);
    let mut out = Vec::new();
    for b in c.emitted {
        for line in crate::lineproto::lines(&b.payload) {
            out.push((b.dest.clone(), String::from_utf8_lossy(line).into_owned()));
        }
    }
    out
}

/// Found in review: points for the default policy (`rp ""`) and for
/// `autogen` were two lanes writing to one warm destination, so upstream
/// one line overwrote the other. Lanes are by warm destination: one window.
/// And the window is named in its largest unit however it is spelled.
#[test]
fn points_for_one_warm_destination_feed_one_window() {
    let mut d = Downsampler::from_config(&one_rule("300s")).expect("a rule");
    for (rp, v, ts) in [("", 1, 1), ("", 3, 2), ("autogen", 100, 3)] {
        let dest = Destination {
            db: "db".into(),
            rp: rp.into(),
        };
        d.feed(&dest, format!("m,h=a f={v}i {}\n", ts * S).as_bytes());
    }
    let far = Destination {
        db: "db".into(),
        rp: String::new(),
    };
    d.feed(&far, format!("m,h=a f=0i {}\n", 10_000 * S).as_bytes());
    let lines = emitted(&mut d);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].0.rp, "autogen_5m");
    assert!(lines[0].1.contains("f_count=3i"), "{lines:?}");
}

/// Found in review: the saved windows of a rule no longer configured stayed
/// in the buffer for good (and came back if the rule did).
#[test]
fn the_saved_windows_of_a_removed_rule_are_deleted_at_the_next_checkpoint() {
    let dir = std::env::temp_dir().join(format!("hissrv-ds-gone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("buffer.db");
    let mut wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    let mut both = one_rule("10s");
    both.rules.push(LifecycleRule {
        measurement: "n".into(),
        downsample: "10s".into(),
        ..LifecycleRule::default()
    });
    let mut d = Downsampler::from_config(&both).expect("rules");
    let dest = Destination {
        db: "db".into(),
        rp: String::new(),
    };
    d.feed(&dest, b"m f=1i 1\nn f=1i 1\n");
    wal.checkpoint_windows(&d.checkpoint(0))
        .expect("checkpoint");
    assert_eq!(wal.saved_windows().expect("saved").sets.len(), 2);
    let mut d = Downsampler::rebuild(&one_rule("10s"), &wal)
        .expect("rebuilds")
        .expect("a rule");
    wal.checkpoint_windows(&d.checkpoint(0))
        .expect("checkpoint");
    let saved = wal.saved_windows().expect("saved");
    assert_eq!(saved.sets.len(), 1, "{:?}", saved.sets);
    assert!(saved.sets[0].0.rule.starts_with("1:m"));
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `buffer.when_full: degrade` may delete only batches whose every value the
/// windows hold: a line of no rule, a late value, a type conflict or a
/// line the splitter cannot read keeps its batch.
#[test]
fn a_batch_is_whole_only_when_every_value_of_it_was_counted() {
    let mut l = one_rule("10s");
    l.rules[0].max_lateness = "10s".into();
    let mut d = Downsampler::from_config(&l).expect("a rule");
    let dest = Destination {
        db: "db".into(),
        rp: String::new(),
    };
    let mut feed = |body: String| d.feed(&dest, body.as_bytes());
    assert!(feed(format!(
        "m,h=a f=1i {}\nm,h=b f=2i,g=\"x\" {}\n",
        S,
        2 * S
    )));
    assert!(
        feed(format!("m,h=a f=1i {}\n", S)),
        "a retry is held already"
    );
    assert!(
        !feed(format!("m,h=a f=1i {}\nn f=1i {}\n", 3 * S, 3 * S)),
        "n: no rule"
    );
    assert!(!feed(format!("m,h=a f=1.5 {}\n", 4 * S)), "a type conflict");
    assert!(feed(format!("m,h=a f=1i {}\n", 100 * S)));
    assert!(
        !feed(format!("m,h=a f=7i {}\n", 5 * S)),
        "late: past max_lateness"
    );
}

/// Found in review: any policy named like `<rp>_<window>` was taken for a
/// warm one and provisioned with `warm_days`. Only the destinations the
/// windows write to are noted, each with its rule's retention.
#[test]
fn the_forwarder_learns_exactly_the_warm_destinations_with_their_retention() {
    let mut l = one_rule("5m");
    l.rules[0].warm_days = Some(crate::config::Days::Number(30.0));
    let registry = std::sync::Arc::new(WarmDestinations::default());
    let mut d = Downsampler::from_config(&l).expect("a rule");
    d.set_registry(registry.clone());
    let raw = |rp: &str| Destination {
        db: "db".into(),
        rp: rp.into(),
    };
    d.feed(&raw(""), format!("m,h=a f=1i {S}\n").as_bytes());
    d.feed(&raw("sensor_5m"), format!("n,h=a f=1i {S}\n").as_bytes());
    assert_eq!(
        registry.retention_of(&raw("autogen_5m")),
        Some(Some(30 * 86_400))
    );
    for not_warm in ["sensor_5m", "sensor_5m_5m", "", "autogen"] {
        assert_eq!(registry.retention_of(&raw(not_warm)), None, "{not_warm}");
    }
    // A raw policy the rule does take: its own warm one.
    d.feed(&raw("sensor_5m"), format!("m,h=a f=1i {S}\n").as_bytes());
    assert_eq!(
        registry.retention_of(&raw("sensor_5m_5m")),
        Some(Some(30 * 86_400))
    );
}

/// Found in review: a producer's retry of a counted line, its window past
/// max_lateness by event time but not yet forgotten (no checkpoint since),
/// is a repeat, as before one lookup served both; `add_line_unless` asked
/// `place` first and counted it late, so its batch was never whole (never
/// degradable).
#[test]
fn a_retry_into_a_window_past_lateness_not_yet_forgotten_is_a_repeat_not_late() {
    let mut d = Downsampler::from_config(&lifecycle()).expect("a rule");
    let dest = Destination {
        db: "db".into(),
        rp: String::new(),
    };
    let line = format!("m,h=a f=1i {}\n", S);
    assert!(d.feed(&dest, line.as_bytes()));
    // Event time moves past the first window's close + max_lateness (20s).
    assert!(d.feed(&dest, format!("m,h=a f=2i {}\n", 40 * S).as_bytes()));
    let (late, repeats) = (d.windows.counts.late, d.windows.counts.repeats);
    // The retry of the first line, before any checkpoint.
    let whole = d.feed(&dest, line.as_bytes());
    assert_eq!(
        (
            d.windows.counts.late - late,
            d.windows.counts.repeats - repeats,
            whole
        ),
        (0, 1, true),
        "a retry of a counted line taken for a late value"
    );
}
