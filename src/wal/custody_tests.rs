//! The custody of raw batches for the downsampling windows, against a model
//! of what each row should be, over random sequences of commits (with and
//! without a duty), deliveries, quarantines, checkpoints and crashes (the
//! connection dropped and the file reopened).

use super::*;
use crate::config::Synchronous;
use crate::lineproto::split_lines::SplitLines;
use std::collections::BTreeMap;

use crate::sim_tests::{rng, seeds};

fn dest(n: u64) -> Destination {
    Destination {
        db: format!("db{n}"),
        rp: String::new(),
    }
}

#[derive(Debug, Clone)]
struct Row {
    dest: Destination,
    payload: Vec<u8>,
    /// (commit seq, delivered) while a duty is owed.
    duty: Option<(i64, bool)>,
    /// Marked whole by a checkpoint: degradable once no duty is left.
    whole: bool,
}

#[derive(Default)]
struct Model {
    rows: BTreeMap<i64, Row>,
    sets: BTreeMap<(LaneKey, i64), Vec<u8>>,
    marks: Vec<(LaneKey, i64)>,
}

impl Model {
    /// Rows the forwarder may still be given, of one destination, in order.
    fn queue(&self, d: &Destination) -> Vec<i64> {
        (self.rows.iter())
            .filter(|(_, r)| r.dest == *d && !matches!(r.duty, Some((_, true))))
            .map(|(&id, _)| id)
            .collect()
    }
}

fn check(w: &Wal, m: &Model, what: &str) {
    let mut stmt = w
        .conn
        .prepare("SELECT id FROM batches ORDER BY id")
        .unwrap();
    let ids: Vec<i64> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let want: Vec<i64> = m.rows.keys().copied().collect();
    assert_eq!(ids, want, "{what}: the rows kept");
    let visible = m
        .rows
        .values()
        .filter(|r| !matches!(r.duty, Some((_, true))))
        .count();
    assert_eq!(
        w.backlog().unwrap().batches,
        visible as u64,
        "{what}: backlog"
    );
    for (head, d) in w.heads().unwrap() {
        assert_eq!(Some(&head), m.queue(&d).first(), "{what}: head of {d:?}");
    }
}

fn lane(n: u64) -> LaneKey {
    LaneKey {
        rule: format!("1:m every 2:{n}m"),
        dest: dest(n % 2),
    }
}

/// Invariants, each step:
/// - a batch leaves only when delivered (or quarantined) and, when it has a
///   duty, once a checkpoint covers it;
/// - the forwarder is never given a delivered batch again, and sees every
///   other one in order;
/// - after a crash, the replay gives exactly the batches with a duty, in
///   commit order, with their lines; the saved sets and marks are the last
///   checkpoint's;
/// - `degrade` deletes only batches a checkpoint marked whole (with the
///   commit they were counted in) and that owe no duty, oldest first.
#[test]
fn a_batch_leaves_only_when_delivered_and_checkpointed_and_replays_until_then() {
    for seed in 1..=seeds(60) {
        let mut next = rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let dir =
            std::env::temp_dir().join(format!("hissrv-custody-{}-{seed}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("buffer.db");
        let open = || {
            let mut w = Wal::open(&path, Synchronous::Off, 1 << 30).unwrap();
            w.set_format(if seed % 2 == 0 {
                codec::FORMAT_DELTA
            } else {
                codec::FORMAT_NONE
            });
            w
        };
        let mut w = open();
        let mut m = Model::default();
        let mut n = 0u64;
        for step in 0..150 {
            let what = format!("seed {seed} step {step}");
            match next() % 11 {
                0..=3 => {
                    let k = 1 + next() % 3;
                    let mut batches = Vec::new();
                    let mut duty = Vec::new();
                    for _ in 0..k {
                        n += 1;
                        let payload = format!("m,b={n} v={n}i {n}\n").into_bytes();
                        batches.push(NewBatch {
                            dest: dest(next() % 2),
                            points: 1,
                            first_ts: n as i64,
                            last_ts: n as i64,
                            payload,
                        });
                        duty.push(!next().is_multiple_of(3));
                    }
                    // Half the commits with the batches split once (the
                    // commit thread's), now and then the splits of other
                    // batches (which must be ignored, never stored).
                    let ids = match next() % 4 {
                        0 | 1 => w.commit_with_duty(&batches, &duty).unwrap(),
                        way => {
                            let mut splits: Vec<_> = (batches.iter())
                                .map(|b| Some(SplitLines::of(&b.payload)))
                                .collect();
                            if way == 3 {
                                splits.rotate_left(1);
                            }
                            w.commit_with_duty_split(&batches, &duty, &splits, &[])
                                .unwrap()
                        }
                    };
                    let seq = w.last_commit_seq();
                    for ((id, b), d) in ids.iter().zip(batches).zip(duty) {
                        let row = Row {
                            dest: b.dest,
                            payload: b.payload,
                            duty: d.then_some((seq, false)),
                            whole: false,
                        };
                        assert!(m.rows.insert(*id, row).is_none(), "{what}: id reused");
                    }
                }
                4..=6 => {
                    let d = dest(next() % 2);
                    let Some(head) = w.head_of(&d).unwrap() else {
                        assert!(m.queue(&d).is_empty(), "{what}");
                        continue;
                    };
                    // From the head, or (as the forwarder does for live
                    // data during a backlog) from further on: delivered
                    // batches then lie between the two.
                    let queue = m.queue(&d);
                    let from = if next().is_multiple_of(3) {
                        queue[next() as usize % queue.len()]
                    } else {
                        head
                    };
                    let pack = w
                        .pack(&d, from, 1 + (next() % 4) as usize, usize::MAX)
                        .unwrap();
                    let got: Vec<i64> = pack.iter().map(|b| b.id).collect();
                    let rest: Vec<i64> = queue.iter().copied().filter(|&id| id >= from).collect();
                    assert_eq!(got, rest[..got.len()], "{what}: the pack");
                    let take = 1 + (next() as usize % pack.len());
                    w.finish(&pack[..take], &[]).unwrap();
                    for b in &pack[..take] {
                        let row = m.rows.get_mut(&b.id).unwrap();
                        match row.duty {
                            Some((seq, _)) => row.duty = Some((seq, true)),
                            None => {
                                m.rows.remove(&b.id);
                            }
                        }
                    }
                }
                7 => {
                    let ids: Vec<i64> = (m.rows.iter())
                        .filter(|(_, r)| !matches!(r.duty, Some((_, true))))
                        .map(|(&id, _)| id)
                        .collect();
                    if let Some(&id) = ids.get(next() as usize % ids.len().max(1)) {
                        w.quarantine(id, "test").unwrap();
                        m.rows.remove(&id);
                    }
                }
                8 => {
                    // The windows may have counted every commit, or (fed
                    // late) fewer.
                    let last = w.last_commit_seq();
                    let covers = last - (next() % 3) as i64;
                    let mut c = WindowsCheckpoint {
                        covers_seq: covers,
                        ..WindowsCheckpoint::default()
                    };
                    for _ in 0..next() % 3 {
                        let l = lane(next() % 3);
                        c.sets.push((l, (next() % 4) as i64, vec![next() as u8; 3]));
                    }
                    if next().is_multiple_of(2) {
                        c.removed.push((lane(next() % 3), (next() % 4) as i64));
                    }
                    c.watermarks = vec![(lane(next() % 3), next() as i64 % 1000)];
                    if next().is_multiple_of(2) {
                        n += 1;
                        c.emitted.push(NewBatch {
                            dest: dest(7),
                            points: 1,
                            first_ts: 0,
                            last_ts: 0,
                            payload: format!("m v_mean={n} 0\n").into_bytes(),
                        });
                    }
                    // Batches the windows counted whole: some with the
                    // right commit, some stale (a wrong commit: the id
                    // handed out again), some past what it covers.
                    for (&id, r) in &m.rows {
                        if let Some((s, _)) = r.duty
                            && next().is_multiple_of(2)
                        {
                            let seq = if next().is_multiple_of(5) { s + 1 } else { s };
                            c.whole.push((id, seq));
                        }
                    }
                    let ids = w.checkpoint_windows(&c).unwrap();
                    for (id, seq) in &c.whole {
                        if let Some(r) = m.rows.get_mut(id)
                            && r.duty == Some((*seq, false))
                            && *seq <= covers
                        {
                            r.whole = true;
                        }
                    }
                    m.rows
                        .retain(|_, r| !matches!(r.duty, Some((s, true)) if s <= covers));
                    for r in m.rows.values_mut() {
                        if r.duty.is_some_and(|(s, _)| s <= covers) {
                            r.duty = None;
                        }
                    }
                    for (id, b) in ids.iter().zip(c.emitted) {
                        let row = Row {
                            dest: b.dest,
                            payload: b.payload,
                            duty: None,
                            whole: false,
                        };
                        m.rows.insert(*id, row);
                    }
                    // Removals first: a set both removed and written ends
                    // written (a damaged saved set replaced).
                    for (l, s) in c.removed {
                        m.sets.remove(&(l, s));
                    }
                    for (l, s, blob) in c.sets {
                        m.sets.insert((l, s), blob);
                    }
                    m.marks = c.watermarks;
                }
                9 => {
                    // `when_full: degrade`: the oldest whole batch without
                    // a duty, or all of them.
                    let all = next().is_multiple_of(2);
                    let gone = w.degrade(if all { u64::MAX } else { 1 }).unwrap();
                    let can: Vec<i64> = (m.rows.iter())
                        .filter(|(_, r)| r.whole && r.duty.is_none())
                        .map(|(&id, _)| id)
                        .collect();
                    let want = if all {
                        &can[..]
                    } else {
                        &can[..can.len().min(1)]
                    };
                    let count: u64 = gone.iter().map(|d| d.batches).sum();
                    assert_eq!(count, want.len() as u64, "{what}: degraded");
                    for id in want {
                        m.rows.remove(id);
                    }
                }
                _ => {
                    drop(w);
                    w = open();
                    let mut replayed = Vec::new();
                    let bad = w
                        .replay_duties(|(id, _), d, lines| {
                            replayed.push((id, d.clone(), lines.to_vec()))
                        })
                        .unwrap();
                    assert!(bad.is_empty(), "{what}");
                    let mut owed: Vec<(i64, i64)> = (m.rows.iter())
                        .filter_map(|(&id, r)| r.duty.map(|(s, _)| (s, id)))
                        .collect();
                    owed.sort();
                    let want: Vec<_> = owed
                        .iter()
                        .map(|(_, id)| (*id, m.rows[id].dest.clone(), m.rows[id].payload.clone()))
                        .collect();
                    assert_eq!(replayed, want, "{what}: the replay");
                    let saved = w.saved_windows().unwrap();
                    let sets: Vec<_> = (m.sets.iter())
                        .map(|((l, s), b)| (l.clone(), *s, b.clone()))
                        .collect();
                    assert_eq!(saved.sets, sets, "{what}: the sets");
                    let mut marks = m.marks.clone();
                    marks.sort();
                    assert_eq!(saved.watermarks, marks, "{what}: the marks");
                }
            }
            check(&w, &m, &what);
        }
        drop(w);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A new buffer in its own directory (removed by the caller).
fn fresh(name: &str) -> (std::path::PathBuf, Wal) {
    let dir = std::env::temp_dir().join(format!("hissrv-custody-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let w = Wal::open(&dir.join("buffer.db"), Synchronous::Off, 1 << 30).expect("opens");
    (dir, w)
}

/// A batch of one point at `ts` for `dest(1)`.
fn point(ts: i64) -> NewBatch {
    NewBatch {
        dest: dest(1),
        points: 1,
        first_ts: ts,
        last_ts: ts,
        payload: format!("m f=1i {ts}\n").into_bytes(),
    }
}

/// An owed batch whose row holds a value of the wrong type or text that is
/// not UTF-8 is skipped by the replay as one that no longer decodes, and
/// the others replay: the replay no longer fails at every start (review).
#[test]
fn an_owed_batch_whose_row_cannot_be_read_is_skipped_by_the_replay() {
    let (dir, mut w) = fresh("damaged");
    let path = dir.join("buffer.db");
    let ids = w
        .commit_with_duty(&[point(1), point(2), point(3)], &[true, true, true])
        .expect("commit");
    let raw = rusqlite::Connection::open(&path).expect("raw");
    raw.execute(
        "UPDATE batches SET db = CAST(x'ff' AS TEXT) WHERE id = ?1",
        [ids[0]],
    )
    .expect("damage");
    raw.execute("UPDATE batches SET format = 'lz4' WHERE id = ?1", [ids[2]])
        .expect("damage");
    let mut replayed = Vec::new();
    let skipped = w
        .replay_duties(|(id, _), _, _| replayed.push(id))
        .expect("the replay goes on");
    drop((w, raw));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(replayed, [ids[1]]);
    assert_eq!(skipped, [ids[0], ids[2]]);
}

/// A duty whose commit number cannot be read fails the replay, never
/// skipped: skipped, a checkpoint would discharge it unfed when the
/// start's repair could not run (third review). The repair then lets the
/// replay read it, with the last commit's batches.
#[test]
fn an_owed_batch_whose_commit_number_cannot_be_read_fails_the_replay_until_repaired() {
    let (dir, mut w) = fresh("seq");
    let path = dir.join("buffer.db");
    let mut ids = w.commit_with_duty(&[point(1)], &[true]).expect("commit");
    ids.extend(w.commit_with_duty(&[point(2)], &[true]).expect("commit"));
    ids.extend(w.commit_with_duty(&[point(3)], &[true]).expect("commit"));
    let raw = rusqlite::Connection::open(&path).expect("raw");
    raw.execute(
        "UPDATE downsample_duty SET seq = 'x' WHERE batch_id = ?1",
        [ids[0]],
    )
    .expect("damage");
    let before = w.replay_duties(|_, _, _| {}).map(|_| ());
    let repaired = w.repair_damaged_duties().expect("repairs");
    let mut order = Vec::new();
    let after = w.replay_duties(|(id, _), _, _| order.push(id));
    drop((w, raw));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(before.is_err(), "the replay fails on it");
    assert_eq!(repaired, 1);
    assert!(after.is_ok_and(|skipped| skipped.is_empty()));
    assert_eq!(
        order,
        [ids[1], ids[0], ids[2]],
        "replayed with the last commit's"
    );
}

/// A buffer whose secret row is gone (deleted by hand, say) gets a new
/// secret at open, and the keys the old one keyed go with it: kept, they
/// would never match a key of the new secret, yet fill the horizon, and
/// the next checkpoint would save them beside keys of another secret
/// (reviewer's note, a session before). The keys of the first release are
/// not keyed by the secret and stay.
#[test]
fn a_secret_made_anew_at_open_takes_the_keys_it_did_not_make() {
    let (dir, w) = fresh("secret-gone");
    let path = dir.join("buffer.db");
    let raw = rusqlite::Connection::open(&path).expect("raw");
    let old = w.saved_windows().expect("reads").secret;
    raw.execute_batch(
        "INSERT INTO downsample_keys (keys) VALUES (x'0102030405060708');
         INSERT INTO downsample_recent (keys) VALUES (x'0807060504030201');",
    )
    .expect("keys");
    let kept = Wal::open(&path, Synchronous::Off, 1 << 30)
        .and_then(|w| w.saved_windows())
        .map(|s| (s.secret, s.recent.len(), s.legacy_recent.len()));
    raw.execute("DELETE FROM downsample_meta", [])
        .expect("gone");
    let anew = Wal::open(&path, Synchronous::Off, 1 << 30)
        .and_then(|w| w.saved_windows())
        .map(|s| (s.secret, s.recent.len(), s.legacy_recent.len()));
    drop((w, raw));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(kept.ok(), Some((old, 1, 1)), "a reopen keeps them");
    let (secret, keys, legacy) = anew.expect("opens");
    assert_ne!(secret, old, "a new secret");
    assert_eq!((keys, legacy), (0, 1), "only the keys of the old secret go");
}
