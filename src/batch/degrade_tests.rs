//! `buffer.when_full: degrade`, the retry set and the buffer's schema
//! through the second review's cases: each test failed before its fix.

use super::*;
use crate::config::{Days, LifecycleRule, Synchronous};
use crate::wal::Wal;

const S: i64 = 1_000_000_000;

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hissrv-r2-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn dest() -> Destination {
    Destination {
        db: "db".into(),
        rp: String::new(),
    }
}

fn nb(payload: String) -> NewBatch {
    NewBatch {
        points: payload.lines().count(),
        dest: dest(),
        first_ts: 0,
        last_ts: 0,
        payload: payload.into_bytes(),
    }
}

fn rule(measurement: &str, every: &str) -> LifecycleRule {
    LifecycleRule {
        measurement: measurement.into(),
        downsample: every.into(),
        ..LifecycleRule::default()
    }
}

fn cfg(rules: Vec<LifecycleRule>) -> Lifecycle {
    Lifecycle {
        max_open_windows: 1_000,
        rules,
        ..Lifecycle::default()
    }
}

/// Commits `b` with a duty and feeds it, as the commit thread does.
fn commit_and_feed(wal: &mut Wal, d: &mut Downsampler, b: &NewBatch) -> i64 {
    let ids = wal
        .commit_with_duty(std::slice::from_ref(b), &[true])
        .expect("commit");
    d.feed_batch((ids[0], wal.last_commit_seq()), &b.dest, &b.payload, None);
    ids[0]
}

/// Degrade may take nothing: `m f=1` stays in the buffer (then `dir` goes).
fn assert_nothing_degraded(mut wal: Wal, dir: &std::path::Path, why: &str) {
    let gone = wal.degrade(u64::MAX).expect("degrade");
    let left = buffered(&wal);
    drop(wal);
    let _ = std::fs::remove_dir_all(dir);
    assert!(
        gone.is_empty() && left.contains("f=1"),
        "m f=1 deleted undelivered though {why}: {gone:?}, buffer {left:?}"
    );
}

/// Every line still in the buffer for `dest()` (undelivered).
fn buffered(wal: &Wal) -> String {
    let pack = wal.pack(&dest(), 0, usize::MAX, usize::MAX).expect("pack");
    pack.iter()
        .map(|b| String::from_utf8_lossy(&b.payload).into_owned())
        .collect()
}

/// a corrected value at a counted timestamp is an `Outcome::Repeat`
/// (the windows keep the first value), yet `feed` calls its batch whole:
/// degrade deletes it undelivered, and the value InfluxDB would have kept
/// (last write wins) is nowhere any more.
#[test]
fn a_corrected_value_keeps_its_raw_batch_from_degrade() {
    let dir = tmp("corrected");
    let mut wal = Wal::open(&dir.join("buffer.db"), Synchronous::Off, 1 << 30).expect("opens");
    let l = cfg(vec![rule("m", "1m")]);
    let mut d = Downsampler::from_config(&l).expect("a rule");
    commit_and_feed(&mut wal, &mut d, &nb(format!("m,h=a f=1 {S}\n")));
    commit_and_feed(&mut wal, &mut d, &nb(format!("m,h=a f=2 {S}\n")));
    wal.checkpoint_windows(&d.checkpoint(wal.last_commit_seq()))
        .expect("checkpoint");
    wal.degrade(u64::MAX).expect("degrade");
    let left = buffered(&wal);
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        left.contains("f=2"),
        "the corrected value f=2 was degraded though the windows hold f=1: buffer {left:?}"
    );
}

/// a rule whose identity changes (here its window; a measurement or tag
/// glob edit does the same) or is removed while other rules stay: its lanes
/// are dropped at the restore and its saved sets deleted, but the raw
/// batches a checkpoint marked whole stay in `downsample_whole`, and degrade
/// deletes them: their points are then neither raw nor in any window.
#[test]
fn raw_batches_of_a_changed_rule_s_windows_are_not_degradable() {
    let dir = tmp("dropped");
    let path = dir.join("buffer.db");
    let mut wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    let before = cfg(vec![rule("m", "10m"), rule("n", "10m")]);
    let mut d = Downsampler::from_config(&before).expect("rules");
    commit_and_feed(&mut wal, &mut d, &nb(format!("m,h=a f=1i {S}\n")));
    wal.checkpoint_windows(&d.checkpoint(wal.last_commit_seq()))
        .expect("checkpoint: the batch is marked whole, its window open");
    drop(d);
    drop(wal);
    // Restart with rule "m" changed to 1h (rule "n" keeps the tier on).
    let mut wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    let after = cfg(vec![rule("m", "1h"), rule("n", "10m")]);
    let stats = crate::observe::stats::Stats::default();
    let bell = crate::wal::doorbell::Doorbell::default();
    let mut w = crate::batch::warm::WarmTier::start(&after, &mut wal, &stats, Default::default())
        .expect("rules");
    w.checkpoint(&mut wal, &stats, &bell);
    assert!(
        wal.saved_windows().expect("saved").sets.is_empty(),
        "its window is gone"
    );
    assert_nothing_degraded(wal, &dir, "no window holds it");
}

/// `short_of_room` counts the database file's length, which deletes do
/// not shrink (their pages go to the free list; the forwarder gives them
/// back only once the buffer is empty). A buffer whose file grew near the
/// quota once (an earlier outage, a slow drain) and was partly drained is
/// "short" at every look however little it holds: each look (every 250 ms
/// while deliveries fail) deletes `short` more bytes of whole batches, until
/// none is left, though commits have all the room they need in the free pages.
#[test]
fn degrade_stops_once_free_pages_give_the_headroom() {
    let dir = tmp("loop");
    let quota: u64 = 8 << 20;
    let headroom = quota / 10;
    let mut wal = Wal::open(&dir.join("buffer.db"), Synchronous::Off, quota).expect("opens");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut body = |i: i64| {
        // Poorly compressible lines, about 16 KB a batch.
        let mut body = String::new();
        for j in 0..200i64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            body.push_str(&format!("m,h=a f={}i {}\n", x >> 1, (i * 200 + j + 1) * S));
        }
        nb(body)
    };
    // An earlier outage filled the buffer (data of no rule), then the
    // upstream took it all but the last batch.
    let mut i = 0;
    while wal.commit(&[body(i)]).is_ok() {
        i += 1;
    }
    let pack = wal.pack(&dest(), 0, usize::MAX, usize::MAX).expect("pack");
    wal.finish(&pack[..pack.len() - 1], &[]).expect("delivered");
    // Now a new outage: 40 batches (640 KB, under the 800 KB headroom)
    // counted whole by the warm tier.
    let mut whole = Vec::new();
    for _ in 0..40 {
        i += 1;
        let ids = wal.commit_with_duty(&[body(i)], &[true]).expect("commit");
        whole.push((ids[0], wal.last_commit_seq()));
    }
    let c = crate::wal::WindowsCheckpoint {
        covers_seq: wal.last_commit_seq(),
        whole: whole.clone(),
        ..Default::default()
    };
    wal.checkpoint_windows(&c).expect("checkpoint");
    let live = wal.used_bytes().expect("used");
    // The forwarder's looks during the outage.
    let mut deleted = Vec::new();
    for _ in 0..20 {
        let Some(short) = wal.short_of_room(headroom).expect("room") else {
            break;
        };
        let gone = wal.degrade(short).expect("degrade");
        deleted.push((short, gone.iter().map(|g| g.batches).sum::<u64>()));
    }
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        deleted.iter().map(|d| d.1).sum::<u64>() == 0,
        "{live} bytes live of an {quota}-byte quota, yet (short, batches deleted) at each look: {deleted:?} (of 40)"
    );
}

/// `hissrv inspect` on a buffer an agent from before `degrade` wrote
/// (custody tables, no `downsample_whole`/`downsample_recent`/`downsample_keys`) fails as a
/// whole: `has_custody` looks for `downsample_duty` only.
#[test]
fn inspect_reads_a_buffer_without_the_newer_custody_tables() {
    let dir = tmp("inspect");
    let path = dir.join("buffer.db");
    drop(Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens"));
    let raw = rusqlite::Connection::open(&path).expect("raw");
    raw.execute_batch(
        "DROP TRIGGER downsample_whole_gone; DROP TABLE downsample_whole; DROP TABLE downsample_recent; DROP TABLE downsample_keys;",
    )
    .expect("as an older agent left it");
    drop(raw);
    let got = crate::cli::inspect::inspect(&path, 0);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(got.is_ok(), "{got:?}");
}

/// every open now writes the schema (DROP VIEW + CREATE VIEW, outside a
/// transaction), where an open of an existing buffer used to write nothing:
/// on a full disk without the reserve file (spent: the case it exists for)
/// the agent cannot open its buffer to drain it.
#[test]
fn opening_a_buffer_whose_views_are_current_writes_nothing() {
    let dir = tmp("views");
    let path = dir.join("buffer.db");
    drop(Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens"));
    let cookie = || -> i64 {
        let c = rusqlite::Connection::open(&path).expect("raw");
        c.query_row("PRAGMA schema_version", [], |r| r.get(0))
            .expect("cookie")
    };
    let before = cookie();
    drop(Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens"));
    let after = cookie();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(before, after, "the open rewrote the schema");
}

/// The damaged-windows path: the start finds a saved set it cannot
/// read and discards every saved set (`load`), but the batches they held
/// stay marked whole and degradable.
#[test]
fn raw_batches_of_discarded_windows_are_not_degradable() {
    use crate::observe::stats::Stats;
    let dir = tmp("discarded");
    let path = dir.join("buffer.db");
    let mut wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    let l = cfg(vec![rule("m", "10m")]);
    let mut d = Downsampler::from_config(&l).expect("rule");
    commit_and_feed(&mut wal, &mut d, &nb(format!("m,h=a f=1i {S}\n")));
    wal.checkpoint_windows(&d.checkpoint(wal.last_commit_seq()))
        .expect("checkpoint: the batch is marked whole, its window open");
    drop(d);
    drop(wal);
    // The saved set is damaged (a bad sector, a bug).
    let raw = rusqlite::Connection::open(&path).expect("raw");
    raw.execute("UPDATE downsample_sets SET state = x'ff'", [])
        .expect("damage");
    drop(raw);
    let mut wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    let stats = Stats::default();
    let _w = crate::batch::warm::WarmTier::start(&l, &mut wal, &stats, std::sync::Arc::default())
        .expect("warm tier, windows started empty");
    assert_nothing_degraded(wal, &dir, "its window was discarded");
}

/// Two rules sharing a derived warm destination must give it one
/// retention: whichever line came first decided it (second review).
#[test]
fn rules_sharing_a_warm_destination_must_agree_on_its_retention() {
    let mut a = rule("a", "5m");
    a.warm_days = Some(Days::Number(30.0));
    let mut b = rule("b", "5m");
    b.warm_days = Some(Days::Number(365.0));
    let e = cfg(vec![a.clone(), b.clone()])
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("lifecycle.rules[1].warm_days"), "{e}");
    b.warm_days = Some(Days::Text("30d".into()));
    cfg(vec![a.clone(), b.clone()])
        .validate()
        .expect("the same retention");
    b.warm_days = Some(Days::Number(365.0));
    b.warm_destination = "yearly".into();
    cfg(vec![a, b]).validate().expect("its own destination");
}

/// A line refused a window (a type conflict) is not remembered: its retry,
/// once it fits, is counted, not taken for a repeat (second review: a key
/// remembered twice could also be forgotten while among the newest).
#[test]
fn a_retry_of_a_refused_line_is_counted_once_it_fits() {
    let l = cfg(vec![rule("m", "1m")]);
    let mut d = Downsampler::from_config(&l).expect("a rule");
    assert!(d.feed(&dest(), format!("m,h=a f=1i {S}\n").as_bytes()));
    // f as a float: a type conflict in this window; not whole.
    assert!(!d.feed(&dest(), format!("m,h=a f=2.5,g=1i {}\n", 2 * S).as_bytes()));
    let before = d.counts();
    // The same line again: g was counted, f refused; g repeats by its slot.
    assert!(!d.feed(&dest(), format!("m,h=a f=2.5,g=1i {}\n", 2 * S).as_bytes()));
    assert_eq!(d.counts().counted, before.counted, "nothing counted twice");
}
