//! The cold archive's custody of raw batches beside the windows' and the
//! forwarder's, against a model of what each row should be, over random
//! sequences of commits (with and without each duty), deliveries,
//! quarantines, checkpoints, archive runs started and finished, degrades
//! and crashes (the connection dropped and the file reopened).

use super::*;
use crate::config::Synchronous;
use crate::wal::{NewBatch, WindowsCheckpoint};
use std::collections::BTreeMap;

use crate::sim_tests::{rng, seeds};

const TARGETS: [&str; 2] = ["file:///a/", "file:///b/"];

fn dest(n: u64) -> Destination {
    Destination {
        db: format!("db{n}"),
        rp: String::new(),
    }
}

#[derive(Debug, Clone)]
struct Row {
    dest: Destination,
    delivered: bool,
    /// The windows' duty: the commit it was counted in.
    windows: Option<i64>,
    /// The archive's duty: target, commit, the run that took it.
    archive: Option<(&'static str, i64, Option<i64>)>,
    whole: bool,
}

#[derive(Default)]
struct Model {
    rows: BTreeMap<i64, Row>,
}

impl Model {
    fn queue(&self, d: &Destination) -> Vec<i64> {
        (self.rows.iter())
            .filter(|(_, r)| r.dest == *d && !r.delivered)
            .map(|(&id, _)| id)
            .collect()
    }

    /// A row that owes nothing more leaves.
    fn settle(&mut self, id: i64) {
        if self
            .rows
            .get(&id)
            .is_some_and(|r| r.delivered && r.windows.is_none() && r.archive.is_none())
        {
            self.rows.remove(&id);
        }
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
    let visible = m.rows.values().filter(|r| !r.delivered).count();
    assert_eq!(
        w.backlog().unwrap().batches,
        visible as u64,
        "{what}: backlog"
    );
    for (head, d) in w.heads().unwrap() {
        assert_eq!(Some(&head), m.queue(&d).first(), "{what}: head of {d:?}");
    }
    let owed: u64 = (w.archive_queues().unwrap().iter())
        .map(|q| q.batches)
        .sum();
    let want = m.rows.values().filter(|r| r.archive.is_some()).count();
    assert_eq!(owed, want as u64, "{what}: owed to archives");
}

/// Invariants, each step:
/// - a batch leaves only once delivered (or quarantined), counted by the
///   windows when it owes them, and archived when it owes an archive;
/// - the forwarder never sees a delivered batch;
/// - a run takes the oldest duties of its target and destination, whole
///   commits, and after a crash the open runs are the same runs with the
///   same batches;
/// - `degrade` never takes a batch its archive has not confirmed.
#[test]
fn a_batch_leaves_only_once_delivered_counted_and_archived_whatever_the_order() {
    for seed in 1..=seeds(60) {
        let mut next = rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let dir =
            std::env::temp_dir().join(format!("hissrv-archive-{}-{seed}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("buffer.db");
        let open = || Wal::open(&path, Synchronous::Off, 1 << 30).unwrap();
        let mut w = open();
        let mut m = Model::default();
        let mut runs: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        let mut n = 0u64;
        for step in 0..200 {
            let what = format!("seed {seed} step {step}");
            match next() % 12 {
                0..=3 => {
                    let k = 1 + next() % 3;
                    let (mut batches, mut duty, mut cold) = (Vec::new(), Vec::new(), Vec::new());
                    for _ in 0..k {
                        n += 1;
                        batches.push(NewBatch {
                            dest: dest(next() % 2),
                            points: 1,
                            first_ts: n as i64,
                            last_ts: n as i64,
                            payload: format!("m,b={n} v={n}i {n}\n").into_bytes(),
                        });
                        duty.push(next().is_multiple_of(2));
                        cold.push(match next() % 3 {
                            0 => None,
                            t => Some(TARGETS[t as usize - 1]),
                        });
                    }
                    let owed: Vec<Option<String>> =
                        cold.iter().map(|t| t.map(str::to_string)).collect();
                    let ids = w
                        .commit_with_duty_split(&batches, &duty, &[], &owed)
                        .unwrap();
                    let seq = w.last_commit_seq();
                    for (i, id) in ids.iter().enumerate() {
                        let row = Row {
                            dest: batches[i].dest.clone(),
                            delivered: false,
                            windows: duty[i].then_some(seq),
                            archive: cold[i].map(|t| (t, seq, None)),
                            whole: false,
                        };
                        assert!(m.rows.insert(*id, row).is_none(), "{what}: id reused");
                    }
                }
                4..=5 => {
                    let d = dest(next() % 2);
                    let Some(head) = w.head_of(&d).unwrap() else {
                        assert!(m.queue(&d).is_empty(), "{what}");
                        continue;
                    };
                    let pack = w
                        .pack(&d, head, 1 + (next() % 4) as usize, usize::MAX)
                        .unwrap();
                    let got: Vec<i64> = pack.iter().map(|b| b.id).collect();
                    let queue = m.queue(&d);
                    assert_eq!(got, queue[..got.len()], "{what}: the pack");
                    let take = 1 + (next() as usize % pack.len());
                    w.finish(&pack[..take], &[]).unwrap();
                    for b in &pack[..take] {
                        m.rows.get_mut(&b.id).unwrap().delivered = true;
                        m.settle(b.id);
                    }
                }
                6 => {
                    let ids: Vec<i64> = (m.rows.iter())
                        .filter(|(_, r)| !r.delivered)
                        .map(|(&id, _)| id)
                        .collect();
                    if let Some(&id) = ids.get(next() as usize % ids.len().max(1)) {
                        w.quarantine(id, "test").unwrap();
                        m.rows.remove(&id);
                        for r in runs.values_mut() {
                            r.retain(|b| *b != id);
                        }
                    }
                }
                7 => {
                    let covers = w.last_commit_seq();
                    let mut c = WindowsCheckpoint {
                        covers_seq: covers,
                        ..WindowsCheckpoint::default()
                    };
                    for (&id, r) in &m.rows {
                        if let Some(s) = r.windows {
                            c.whole.push((id, s));
                        }
                    }
                    w.checkpoint_windows(&c).unwrap();
                    let ids: Vec<i64> = m.rows.keys().copied().collect();
                    for id in ids {
                        let r = m.rows.get_mut(&id).unwrap();
                        if r.windows.is_some() {
                            r.whole = !r.delivered;
                            r.windows = None;
                        }
                        m.settle(id);
                    }
                }
                8 => {
                    let t = TARGETS[(next() % 2) as usize];
                    let d = dest(next() % 2);
                    // One commit at least; everything when the cap is huge.
                    let cap = if next().is_multiple_of(2) {
                        1
                    } else {
                        u64::MAX
                    };
                    let run = w.start_run(t, &d, cap, 3_600).unwrap();
                    let mut waiting: Vec<(i64, i64)> = (m.rows.iter())
                        .filter_map(|(&id, r)| match r.archive {
                            Some((rt, s, None)) if rt == t && r.dest == d => Some((s, id)),
                            _ => None,
                        })
                        .collect();
                    waiting.sort();
                    if let Some(first) = waiting.first().map(|(s, _)| *s)
                        && cap == 1
                    {
                        waiting.retain(|(s, _)| *s == first);
                    }
                    let want: Vec<i64> = waiting.iter().map(|(_, id)| *id).collect();
                    match run {
                        None => assert!(want.is_empty(), "{what}: a run was due"),
                        Some(run) => {
                            let got: Vec<i64> = run.batches.iter().map(|b| b.id).collect();
                            assert_eq!(got, want, "{what}: the run's batches");
                            assert_eq!(run.first_seq, waiting[0].0, "{what}");
                            for id in &got {
                                let r = m.rows.get_mut(id).unwrap();
                                if let Some((_, _, slot)) = r.archive.as_mut() {
                                    *slot = Some(run.id);
                                }
                            }
                            runs.insert(run.id, got);
                        }
                    }
                }
                9 => {
                    let Some((&run, _)) = runs.iter().nth(next() as usize % runs.len().max(1))
                    else {
                        continue;
                    };
                    w.finish_run(run).unwrap();
                    for id in runs.remove(&run).unwrap() {
                        if let Some(r) = m.rows.get_mut(&id) {
                            r.archive = None;
                            m.settle(id);
                        }
                    }
                }
                10 => {
                    let gone = w.degrade(u64::MAX).unwrap();
                    let can: Vec<i64> = (m.rows.iter())
                        .filter(|(_, r)| r.whole && r.windows.is_none() && r.archive.is_none())
                        .map(|(&id, _)| id)
                        .collect();
                    let count: u64 = gone.iter().map(|d| d.batches).sum();
                    assert_eq!(count, can.len() as u64, "{what}: degraded");
                    for id in can {
                        m.rows.remove(&id);
                    }
                }
                _ => {
                    drop(w);
                    w = open();
                    let open_runs = w.open_runs().unwrap();
                    let got: BTreeMap<i64, Vec<i64>> = (open_runs.iter())
                        .map(|r| (r.id, r.batches.iter().map(|b| b.id).collect()))
                        .collect();
                    assert_eq!(got, runs, "{what}: the open runs after a crash");
                }
            }
            check(&w, &m, &what);
        }
        drop(w);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn archives_no_rule_names_any_more_release_their_batches() {
    let dir = std::env::temp_dir().join(format!("hissrv-archive-forget-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut w = Wal::open(&dir.join("b.db"), Synchronous::Off, 1 << 30).unwrap();
    let b = |n: i64| NewBatch {
        dest: dest(0),
        points: 1,
        first_ts: n,
        last_ts: n,
        payload: format!("m v={n} {n}\n").into_bytes(),
    };
    let owed = [Some(TARGETS[0].to_string()), Some(TARGETS[1].to_string())];
    w.commit_with_duty_split(&[b(1), b(2)], &[], &[], &owed)
        .unwrap();
    let pack = w.pack(&dest(0), 0, 10, usize::MAX).unwrap();
    w.finish(&pack, &[]).unwrap();
    assert_eq!(w.archive_queues().unwrap().len(), 2, "both held");
    assert_eq!(
        w.forget_archives_except(&[TARGETS[1].to_string()], |t| Some(t.to_string()))
            .unwrap(),
        1
    );
    let q = w.archive_queues().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].target, TARGETS[1]);
    let left: i64 = w
        .conn
        .query_row("SELECT count(*) FROM batches", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        left, 1,
        "the batch of the forgotten archive left, delivered"
    );
    let id1 = w.buffer_id().unwrap();
    assert_eq!(id1.len(), 16);
    assert_eq!(w.buffer_id().unwrap(), id1, "made once");
    drop(w);
    let _ = std::fs::remove_dir_all(&dir);
}
