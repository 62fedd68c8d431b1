//! The warm tier's pace through failures (found in review): a checkpoint
//! whose write fails after a start that found damaged saved windows, and a
//! start with no rule left over an earlier run's custody.

use super::*;
use crate::config::{LifecycleRule, Synchronous};
use crate::route::dest::Destination;

const S: i64 = 1_000_000_000;

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hissrv-warm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub(super) fn batch(payload: String) -> NewBatch {
    NewBatch {
        points: payload.lines().count(),
        dest: Destination {
            db: "db".into(),
            rp: String::new(),
        },
        first_ts: 0,
        last_ts: 0,
        payload: payload.into_bytes(),
    }
}

/// Measurement `m` downsampled to 10 s windows, the defaults otherwise.
pub(super) fn rule_10s() -> Lifecycle {
    Lifecycle {
        rules: vec![LifecycleRule {
            measurement: "m".into(),
            downsample: "10s".into(),
            ..LifecycleRule::default()
        }],
        ..Lifecycle::default()
    }
}

/// Commits `payload` (to `db`) with its duty and feeds it, as the commit
/// thread does.
pub(super) fn feed(w: &mut WarmTier, wal: &mut Wal, stats: &Stats, payload: String) {
    let b = batch(payload);
    let duties = w.duties(std::slice::from_ref(&b), &[]);
    let splits = WarmTier::splits(std::slice::from_ref(&b), &duties);
    let ids = wal
        .commit_with_duty_split(std::slice::from_ref(&b), &duties, &splits, &[])
        .expect("commit");
    let seq = wal.last_commit_seq();
    w.fed(std::slice::from_ref(&b), &ids, seq, &duties, &splits, stats);
}

/// The review's sequence: the start finds a damaged saved set (so every
/// rebuild fails on it until a checkpoint deletes it), then a checkpoint's
/// write fails. The windows reloaded after the failure must still emit the
/// window closed in between, and the next checkpoint delete the damage.
#[test]
fn a_failed_checkpoint_after_a_damaged_start_still_emits_every_window() {
    let dir = temp("failed");
    let path = dir.join("buffer.db");
    let rule = LifecycleRule {
        measurement: "m".into(),
        downsample: "10s".into(),
        ..LifecycleRule::default()
    };
    let cfg = Lifecycle {
        rules: vec![rule.clone()],
        ..Lifecycle::default()
    };
    let mut wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    let raw = rusqlite::Connection::open(&path).expect("raw");
    raw.execute(
        "INSERT INTO downsample_sets (rule, db, rp, start, state) VALUES (?1, 'db', 'autogen_10s', -10000000000, x'ff')",
        [crate::route::lifecycle::identity(&rule)],
    )
    .expect("a damaged set");
    let stats = Stats::default();
    let bell = Doorbell::default();
    let mut w = WarmTier::start(&cfg, &mut wal, &stats, Arc::default()).expect("warm tier");
    let b = batch(format!("m,h=a f=1i {}\nm,h=a f=2i {}\n", S, 100 * S));
    let duties = w.duties(std::slice::from_ref(&b), &[]);
    let splits = WarmTier::splits(std::slice::from_ref(&b), &duties);
    let ids = wal
        .commit_with_duty_split(std::slice::from_ref(&b), &duties, &splits, &[])
        .expect("commit");
    w.fed(
        std::slice::from_ref(&b),
        &ids,
        wal.last_commit_seq(),
        &duties,
        &splits,
        &stats,
    );
    raw.execute_batch(
        "CREATE TRIGGER fail BEFORE INSERT ON downsample_marks BEGIN SELECT RAISE(ABORT, 'simulated failure'); END;",
    )
    .expect("trigger");
    w.checkpoint(&mut wal, &stats, &bell);
    assert_eq!(Stats::get(&stats.downsampling.checkpoint_failures), 1);
    raw.execute_batch("DROP TRIGGER fail;").expect("drop");
    w.checkpoint(&mut wal, &stats, &bell);
    assert_eq!(Stats::get(&stats.downsampling.checkpoints), 1);
    let warm = Destination {
        db: "db".into(),
        rp: "autogen_10s".into(),
    };
    let mut lines = String::new();
    for b in wal.pack(&warm, 0, 1000, usize::MAX).expect("pack") {
        lines.push_str(&String::from_utf8_lossy(&b.payload));
    }
    let saved = wal.saved_windows().expect("saved");
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        lines.contains("f_count=1i"),
        "the window [0, 10s): {lines:?}"
    );
    assert!(
        saved.sets.iter().all(|(_, start, _)| *start >= 0),
        "the damaged set deleted: {:?}",
        saved.sets
    );
}

/// Rules removed after a crash: nothing would discharge the duties left,
/// so a delivered batch would be held (hidden, in the quota) for good.
#[test]
fn what_rules_left_in_the_buffer_is_cleared_at_a_start_without_rules() {
    let dir = temp("norules");
    let path = dir.join("buffer.db");
    let mut wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    let b = batch(format!("m,h=a f=1i {S}\n"));
    wal.commit_with_duty(std::slice::from_ref(&b), &[true])
        .expect("commit");
    let b2 = batch(format!("m,h=a f=2i {}\n", 2 * S));
    wal.commit_with_duty(std::slice::from_ref(&b2), &[true])
        .expect("commit");
    // The first delivered (held for a checkpoint), the second not.
    let (head, d) = wal.heads().expect("heads")[0].clone();
    let pack = wal.pack(&d, head, 1, usize::MAX).expect("pack");
    wal.finish(&pack, &[]).expect("finish");
    drop(wal);
    let mut wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    let stats = Stats::default();
    assert!(WarmTier::start(&Lifecycle::default(), &mut wal, &stats, Arc::default()).is_none());
    let mut owed = 0;
    wal.replay_duties(|_, _, _| owed += 1).expect("reads");
    let left = wal.backlog().expect("backlog").batches;
    let rows: i64 = rusqlite::Connection::open(&path)
        .expect("raw")
        .query_row("SELECT count(*) FROM batches", [], |r| r.get(0))
        .expect("count");
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(owed, 0, "no duty left");
    assert_eq!(
        (left, rows),
        (1, 1),
        "the undelivered batch stays, the held one goes"
    );
}

/// The splits a cut shares with the codec are bounded by fields, not by
/// the body (found in review: one 8 MiB body of short fields took 99 MiB):
/// a batch past what is left of `SHARED_SPLIT_MAX_FIELDS` is split line
/// by line by the codec and the feed instead, and a batch without a duty
/// is never split here.
#[test]
fn a_cut_s_shared_splits_hold_at_most_the_field_budget() {
    let line = |i: usize| {
        let fields: Vec<String> = (0..100).map(|f| format!("f{f}={}", f % 10)).collect();
        format!("m,id={} {} {}\n", i % 100, fields.join(","), 1_000 + i)
    };
    let big: String = (0..SHARED_SPLIT_MAX_FIELDS / 100 + 1).map(line).collect();
    let small: String = (0..10).map(line).collect();
    let batches = [batch(big), batch(small.clone()), batch(small)];
    let splits = WarmTier::splits(&batches, &[true, true, false]);
    let fields: Vec<Option<usize>> = splits
        .iter()
        .map(|s| s.as_ref().map(|s| s.fields.len()))
        .collect();
    assert_eq!(fields, [None, Some(1_000), None]);
    let entry = std::mem::size_of::<(&[u8], crate::lineproto::split::Value)>();
    let held: usize = (splits.iter().flatten())
        .map(|s| s.fields.capacity() * entry)
        .sum();
    assert!(held <= SHARED_SPLIT_MAX_FIELDS * entry, "{held} bytes");
    // Within the budget, each batch in turn until it is spent.
    let halves: String = (0..SHARED_SPLIT_MAX_FIELDS / 200).map(line).collect();
    let batches = [batch(halves.clone()), batch(halves.clone()), batch(halves)];
    let splits = WarmTier::splits(&batches, &[true, true, true]);
    assert_eq!(
        splits.iter().map(Option::is_some).collect::<Vec<_>>(),
        [true, true, false]
    );
}

/// Second review: points `hissrv restore` sends back from an archive were
/// counted by the windows once already; they owe them nothing again.
#[test]
fn restored_batches_owe_the_windows_nothing() {
    let dir = temp("restored");
    let cfg = Lifecycle {
        rules: vec![LifecycleRule {
            measurement: "m".into(),
            downsample: "10s".into(),
            ..LifecycleRule::default()
        }],
        ..Lifecycle::default()
    };
    let mut wal = Wal::open(&dir.join("buffer.db"), Synchronous::Off, 1 << 30).expect("opens");
    let stats = Stats::default();
    let mut w = WarmTier::start(&cfg, &mut wal, &stats, Arc::default()).expect("warm tier");
    let live = batch(format!("m f=1i {S}\n"));
    let restored = batch(format!("m f=1i {S}\n"));
    let batches = [live, restored];
    assert_eq!(w.duties(&batches, &[false, true]), [true, false]);
    assert_eq!(
        w.duties(&batches, &[]),
        [true, true],
        "no flags: none restored"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A saved row no read can take (a value of the wrong type) fails every
/// read of the saved windows, and cannot be named to be deleted alone: the
/// start deletes the part it is in and restores the rest. Damaged keys go
/// and the windows stay; a damaged watermark takes the windows with it,
/// and the marks of batches whole (their windows are lost: `degrade` must
/// not take their raw points); a damaged secret is made anew and the keys
/// it keyed go. The start after it is clean (found in review: the secret
/// was 0, the marks stayed, every start failed alike and started empty).
#[test]
fn a_saved_row_no_read_can_take_costs_only_its_part_of_the_saved_windows() {
    // (name, damage, windows lost, secret made anew)
    let cases = [
        (
            "keys",
            "INSERT INTO downsample_keys (keys) VALUES (42)",
            false,
            false,
        ),
        (
            "marks",
            "INSERT INTO downsample_marks (rule, db, rp, watermark) VALUES ('r', 'db', 'x', 'late')",
            true,
            false,
        ),
        (
            "secret",
            "UPDATE downsample_meta SET secret = 'none'",
            false,
            true,
        ),
    ];
    for (name, damage, lost, anew) in cases {
        let dir = temp(&format!("unreadable-{name}"));
        let path = dir.join("buffer.db");
        let cfg = rule_10s();
        let mut wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
        let raw = rusqlite::Connection::open(&path).expect("raw");
        let secret = |raw: &rusqlite::Connection| {
            raw.query_row("SELECT secret FROM downsample_meta", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|s| s as u64)
        };
        let before = secret(&raw).expect("a secret made at open");
        // A window saved by a checkpoint, and a batch marked whole.
        let stats = Stats::default();
        let bell = Doorbell::default();
        let mut w = WarmTier::start(&cfg, &mut wal, &stats, Arc::default()).expect("warm tier");
        feed(&mut w, &mut wal, &stats, format!("m,h=a f=1i {S}\n"));
        w.checkpoint(&mut wal, &stats, &bell);
        let whole = |raw: &rusqlite::Connection| -> i64 {
            raw.query_row("SELECT count(*) FROM downsample_whole", [], |r| r.get(0))
                .expect("count")
        };
        assert_eq!(whole(&raw), 1, "{name}: the batch marked whole");
        raw.execute_batch(damage).expect("damage");
        assert!(wal.saved_windows().is_err(), "{name}: unreadable");
        let stats = Stats::default();
        let w = WarmTier::start(&cfg, &mut wal, &stats, Arc::default()).expect("warm tier");
        let readable = wal.saved_windows().map(|s| s.sets.len());
        let (whole_after, after) = (whole(&raw), secret(&raw));
        let error = stats.last_error();
        let again = WarmTier::start(&cfg, &mut wal, &Stats::default(), Arc::default())
            .map(|w| (w.suspended, w.ds.lost_windows, w.ds.open_windows()));
        drop((wal, raw));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(!w.suspended, "{name}: the tier runs");
        assert_eq!(w.ds.lost_windows, lost, "{name}: windows lost");
        assert_eq!(
            w.ds.open_windows(),
            if lost { 0 } else { 1 },
            "{name}: windows restored"
        );
        assert!(readable.is_ok(), "{name}: readable after: {readable:?}");
        assert_eq!(
            whole_after,
            if lost { 0 } else { 1 },
            "{name}: marks of whole batches"
        );
        let after = after.expect("a readable secret");
        assert_eq!(
            w.ds.secret(),
            after,
            "{name}: the keys keyed by the buffer's secret"
        );
        assert_eq!(after != before, anew, "{name}: the secret made anew");
        assert!(
            error.contains("cannot be read"),
            "{name}: reported: {error}"
        );
        assert_eq!(
            again,
            Some((false, false, if lost { 0 } else { 1 })),
            "{name}: the next start is clean"
        );
    }
}

/// A duty whose commit number cannot be read failed the replay at every
/// start, so the tier was suspended for good and the duty never
/// discharged (found in review): it replays once, with the last commit's batches, and the next
/// checkpoint discharges it.
#[test]
fn a_duty_whose_commit_number_cannot_be_read_is_replayed_once_and_discharged() {
    let dir = temp("duty");
    let path = dir.join("buffer.db");
    let cfg = rule_10s();
    let mut wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    wal.commit_with_duty(&[batch(format!("m f=1i {S}\n"))], &[true])
        .expect("commit");
    wal.commit_with_duty(&[batch(format!("m f=2i {}\n", 2 * S))], &[true])
        .expect("commit");
    let raw = rusqlite::Connection::open(&path).expect("raw");
    raw.execute_batch("UPDATE downsample_duty SET seq = 'x' WHERE seq = 1")
        .expect("damage");
    let stats = Stats::default();
    let mut w = WarmTier::start(&cfg, &mut wal, &stats, Arc::default()).expect("warm");
    let first = (w.suspended, w.ds.counts().counted);
    w.checkpoint(&mut wal, &stats, &Doorbell::default());
    let owed: i64 = raw
        .query_row("SELECT count(*) FROM downsample_duty", [], |r| r.get(0))
        .expect("count");
    let again = WarmTier::start(&cfg, &mut wal, &Stats::default(), Arc::default())
        .map(|w| (w.suspended, w.ds.open_windows()));
    drop((wal, raw));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(first, (false, 2), "not suspended; both points counted once");
    assert_eq!(owed, 0, "both duties discharged");
    assert_eq!(
        again,
        Some((false, 1)),
        "the next start restores the window"
    );
}

/// Text that is not UTF-8 in a saved row (a bit flipped in a rule name)
/// fails every read as the wrong type does: it costs its part, and the tier
/// runs (found in review: suspended at every start).
#[test]
fn a_saved_name_that_is_not_utf8_costs_only_its_part() {
    let dir = temp("utf8");
    let path = dir.join("buffer.db");
    let cfg = rule_10s();
    let mut wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    let raw = rusqlite::Connection::open(&path).expect("raw");
    raw.execute_batch(
        "INSERT INTO downsample_marks (rule, db, rp, watermark) VALUES (CAST(x'ff' AS TEXT), 'db', 'x', 0)",
    )
    .expect("damage");
    assert!(wal.saved_windows().is_err(), "unreadable");
    let mut runs = Vec::new();
    for _ in 0..2 {
        let w = WarmTier::start(&cfg, &mut wal, &Stats::default(), Arc::default()).expect("warm");
        runs.push((w.suspended, w.ds.lost_windows));
    }
    let readable = wal.saved_windows().is_ok();
    drop((wal, raw));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        runs,
        [(false, true), (false, false)],
        "runs, then starts clean"
    );
    assert!(readable);
}

/// A duty damaged while the process runs (its batch fed) is covered by the
/// next checkpoint like any other: kept, the start's repair replayed it
/// into windows that held it already (found in review: a point counted
/// twice once the saved keys no longer held it).
#[test]
fn a_duty_damaged_after_its_batch_was_fed_is_discharged_by_the_next_checkpoint() {
    let dir = temp("duty-fed");
    let path = dir.join("buffer.db");
    let cfg = rule_10s();
    let mut wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    let raw = rusqlite::Connection::open(&path).expect("raw");
    let stats = Stats::default();
    let bell = Doorbell::default();
    let mut w = WarmTier::start(&cfg, &mut wal, &stats, Arc::default()).expect("warm");
    feed(&mut w, &mut wal, &stats, format!("m,h=a f=1i {S}\n"));
    raw.execute_batch("UPDATE downsample_duty SET seq = 'x'")
        .expect("damage");
    feed(&mut w, &mut wal, &stats, format!("m,h=a f=2i {}\n", 2 * S));
    w.checkpoint(&mut wal, &stats, &bell);
    let owed: i64 = raw
        .query_row("SELECT count(*) FROM downsample_duty", [], |r| r.get(0))
        .expect("count");
    // No saved keys to tell a replay: the replay would be counted.
    raw.execute_batch("DELETE FROM downsample_keys")
        .expect("keys gone");
    let w = WarmTier::start(&cfg, &mut wal, &Stats::default(), Arc::default()).expect("warm");
    let restart = (w.suspended, w.ds.counts().counted);
    drop((wal, raw));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(owed, 0, "both duties discharged");
    assert_eq!(restart, (false, 0), "nothing replayed at the restart");
}
