//! Tests of the write-ahead buffer's contract (see the module doc).

use super::*;
use crate::wal::codec;
use std::path::PathBuf;

fn dest(db: &str) -> Destination {
    Destination {
        db: db.into(),
        rp: String::new(),
    }
}

fn batch(db: &str, payload: &str) -> NewBatch {
    NewBatch {
        dest: dest(db),
        points: payload.lines().count(),
        first_ts: 1,
        last_ts: 2,
        payload: payload.as_bytes().to_vec(),
    }
}

/// Stores plain line protocol, so payloads compare byte for byte here; the
/// encodings have their own tests (and one below).
fn open(path: &Path) -> Wal {
    let mut w = Wal::open(path, Synchronous::Full, 1 << 30).unwrap();
    w.set_format(codec::FORMAT_NONE);
    w
}

fn tmp() -> (tempdir::Dir, PathBuf) {
    let d = tempdir::Dir::new();
    let p = d.path().join("buffer.db");
    (d, p)
}

/// A minimal temp dir (no extra crate for one test helper).
mod tempdir {
    use std::path::{Path, PathBuf};
    pub struct Dir(PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("hissrv-wal-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn committed_batches_survive_reopening_in_commit_order() {
    let (_d, p) = tmp();
    {
        let mut w = open(&p);
        w.commit(&[batch("a", "m v=1 1\n"), batch("b", "m v=2 2\n")])
            .unwrap();
        w.commit(&[batch("a", "m v=3 3\n")]).unwrap();
    }
    let w = open(&p);
    let heads = w.heads().unwrap();
    assert_eq!(heads.len(), 2);
    assert_eq!(heads[0].1, dest("a"));
    let first = w.pack(&dest("a"), heads[0].0, 1, usize::MAX).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].payload, b"m v=1 1\n");
    assert_eq!(w.backlog().unwrap().batches, 3);
}

#[test]
fn finish_deletes_the_batch_and_keeps_refused_lines_as_dead_letters() {
    let (_d, p) = tmp();
    let mut w = open(&p);
    w.commit(&[batch("a", "m v=1 1\nm v=x 2\n")]).unwrap();
    let (id, _) = w.heads().unwrap()[0].clone();
    let b = w.pack(&dest("a"), id, 100, usize::MAX).unwrap();
    let dead = DeadLetter {
        batch_id: id,
        status: 400,
        reason: "field type conflict".into(),
        line: b"m v=x 2".to_vec(),
    };
    w.finish(&b, &[dead]).unwrap();
    let bl = w.backlog().unwrap();
    assert_eq!((bl.batches, bl.dead_letters), (0, 1));
    assert!(w.pack(&dest("a"), id, 100, usize::MAX).unwrap().is_empty());
}

#[test]
fn a_commit_past_the_quota_is_refused_and_stored_data_is_kept() {
    let (_d, p) = tmp();
    const QUOTA_BYTES: u64 = 1_000_000;
    let mut w = Wal::open(&p, Synchronous::Full, QUOTA_BYTES).unwrap();
    w.set_format(codec::FORMAT_NONE);
    let big = "m v=1 1\n".repeat(10_000); // 80 kB
    let mut stored = 0;
    let err = loop {
        assert!(stored < 20, "1 MB never filled");
        match w.commit(&[batch("a", &big)]) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, WalError::QuotaFull { .. }), "{err}");
    assert!(stored >= 5, "only {stored} batches of 80 kB in 1 MB");
    assert_eq!(w.backlog().unwrap().batches, stored, "stored data kept");
    // The quota bounds what the file system holds: database, WAL, -shm.
    assert!(w.disk_use().total() <= QUOTA_BYTES, "{:?}", w.disk_use());
}

#[test]
fn a_foreign_sqlite_file_is_refused_and_left_untouched() {
    let (_d, p) = tmp();
    {
        let c = Connection::open(&p).unwrap();
        c.execute_batch("CREATE TABLE customers(x); INSERT INTO customers VALUES (1);")
            .unwrap();
    }
    let before = std::fs::read(&p).unwrap();
    let err = Wal::open(&p, Synchronous::Full, 1 << 30).err().unwrap();
    assert!(matches!(err, WalError::Foreign { .. }), "{err}");
    assert_eq!(std::fs::read(&p).unwrap(), before);
}

#[test]
fn a_garbage_file_is_a_clear_error_and_is_not_deleted() {
    let (_d, p) = tmp();
    std::fs::write(&p, vec![0x42u8; 8192]).unwrap();
    let err = Wal::open(&p, Synchronous::Full, 1 << 30).err().unwrap();
    assert!(
        err.to_string().contains("not a usable hissrv buffer"),
        "{err}"
    );
    assert_eq!(std::fs::read(&p).unwrap(), vec![0x42u8; 8192]);
}

#[test]
fn record_failure_counts_attempts_without_reordering() {
    let (_d, p) = tmp();
    let mut w = open(&p);
    w.commit(&[batch("a", "m v=1 1\n")]).unwrap();
    w.commit(&[batch("a", "m v=2 2\n")]).unwrap();
    let (id, _) = w.heads().unwrap()[0].clone();
    w.record_failure(id, "503").unwrap();
    assert_eq!(w.heads().unwrap()[0].0, id);
    assert_eq!(
        w.pack(&dest("a"), id, 1, usize::MAX).unwrap()[0].attempts,
        1
    );
}

#[test]
fn a_pack_takes_consecutive_batches_of_one_destination_within_the_limits() {
    let (_d, p) = tmp();
    let mut w = open(&p);
    for i in 0..5 {
        w.commit(&[
            batch("a", &format!("m v={i} {i}\n")),
            batch("b", "m v=9 9\n"),
        ])
        .unwrap();
    }
    let (head, _) = w.heads().unwrap()[0].clone();
    let pack = w.pack(&dest("a"), head, 3, usize::MAX).unwrap();
    assert_eq!(pack.len(), 3);
    assert!(pack.iter().all(|b| b.dest == dest("a")));
    assert!(pack.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(
        w.pack(&dest("a"), head, 100, 20).unwrap().len(),
        2,
        "byte limit"
    );
    assert_eq!(
        w.pack(&dest("a"), head, 0, 0).unwrap().len(),
        1,
        "always one"
    );
    w.finish(&pack, &[]).unwrap();
    assert_eq!(w.backlog().unwrap().batches, 7);
}

#[test]
fn first_since_finds_where_live_data_starts() {
    let (_d, p) = tmp();
    let mut w = open(&p);
    w.commit(&[batch("a", "m v=1 1\n")]).unwrap();
    let ids = w.commit(&[batch("a", "m v=2 2\n")]).unwrap();
    assert_eq!(w.first_since(&dest("a"), 0).unwrap(), Some(ids[0] - 1));
    assert_eq!(w.first_since(&dest("a"), i64::MAX).unwrap(), None);
}

#[test]
fn delta_encoded_batches_and_older_plain_ones_both_read_back() {
    let (_d, p) = tmp();
    let mut w = open(&p);
    w.commit(&[batch("a", "m v=1.5 1\n")]).unwrap(); // format 1, as older agents stored
    w.set_format(codec::FORMAT_DELTA);
    let lp: String = (0..1000)
        .map(|t| format!("m,s=x v={}.25,n={t}i {t}\n", t % 7))
        .collect();
    w.commit(&[batch("a", &lp)]).unwrap();
    let (head, _) = w.heads().unwrap()[0].clone();
    let pack = w.pack(&dest("a"), head, usize::MAX, usize::MAX).unwrap();
    assert_eq!(
        (pack[0].format, pack[1].format),
        (codec::FORMAT_NONE, codec::FORMAT_DELTA)
    );
    assert_eq!(pack[0].payload, b"m v=1.5 1\n");
    assert_eq!(String::from_utf8(pack[1].payload.clone()).unwrap(), lp);
    let stored: i64 = w
        .conn
        .query_row(
            "SELECT bytes FROM batches WHERE id = ?1",
            [pack[1].id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        (stored as usize) * 10 < lp.len(),
        "{stored} bytes stored for {}",
        lp.len()
    );
}

#[test]
fn an_undecodable_batch_is_set_aside_as_a_dead_letter_not_deleted() {
    let (_d, p) = tmp();
    let mut w = open(&p);
    w.commit(&[batch("a", "m v=1 1\n")]).unwrap();
    let (id, _) = w.heads().unwrap()[0].clone();
    w.conn
        .execute(
            "UPDATE batches SET format = 2, payload = x'00010203' WHERE id = ?1",
            [id],
        )
        .unwrap();
    let err = w.pack(&dest("a"), id, 10, usize::MAX).unwrap_err();
    assert!(matches!(err, WalError::Undecodable { .. }), "{err}");
    w.quarantine(id, "test").unwrap();
    let bl = w.backlog().unwrap();
    assert_eq!((bl.batches, bl.dead_letters), (0, 1));
}

#[test]
fn dead_letters_past_their_share_of_the_quota_are_pruned_oldest_first_and_counted() {
    let (_d, p) = tmp();
    // 1 MB quota, 1 %: 10 kB of dead letters at most.
    let mut w = Wal::open(&p, Synchronous::Full, 1_000_000).unwrap();
    w.set_format(codec::FORMAT_NONE);
    w.set_dead_letter_share(1);
    let mut pruned_total = 0;
    for i in 0..40 {
        w.commit(&[batch("a", &format!("m v={i} {i}\n"))]).unwrap();
        let (id, _) = w.heads().unwrap()[0].clone();
        let b = w.pack(&dest("a"), id, 100, usize::MAX).unwrap();
        let dead = DeadLetter {
            batch_id: id,
            status: 400,
            reason: "refused".into(),
            line: format!("m v={i} {i} {}", "x".repeat(1_000)).into_bytes(),
        };
        pruned_total += w.finish(&b, &[dead]).unwrap();
    }
    let c = rusqlite::Connection::open(&p).unwrap();
    let (rows, bytes, oldest): (i64, i64, String) = c
        .query_row(
            "SELECT count(*), sum(length(line) + length(reason)),
                    (SELECT CAST(line AS TEXT) FROM dead_letters ORDER BY id LIMIT 1)
             FROM dead_letters",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert!(bytes <= 10_000, "{bytes} bytes of dead letters kept");
    assert_eq!(rows + pruned_total as i64, 40, "every pruned one counted");
    assert!(rows >= 8, "as many as fit are kept ({rows})");
    assert!(
        oldest.starts_with(&format!("m v={} ", 40 - rows)),
        "the newest are kept: {}",
        &oldest[..12]
    );
    // Commits still fit: dead letters never take the live data's room.
    w.commit(&[batch("a", "m v=1 1\n")]).unwrap();
}

#[test]
fn a_drained_buffer_gives_its_free_pages_back_to_the_file_system() {
    let (_d, path) = tmp();
    let mut w = Wal::open(&path, Synchronous::Off, 1 << 30).unwrap();
    let dest = Destination {
        db: "d".into(),
        rp: String::new(),
    };
    let big: Vec<NewBatch> = (0..50)
        .map(|i| NewBatch {
            dest: dest.clone(),
            points: 1,
            first_ts: i,
            last_ts: i,
            payload: format!("m v=\"{}\" {i}\n", "x".repeat(20_000)).into_bytes(),
        })
        .collect();
    w.set_format(crate::wal::codec::FORMAT_NONE);
    w.commit(&big).unwrap();
    let stored = w.pack(&dest, 0, usize::MAX, usize::MAX).unwrap();
    assert_eq!(stored.len(), 50);
    w.finish(&stored, &[]).unwrap();
    w.truncate_wal().unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    let given = w.give_back_free_pages(0).unwrap();
    w.truncate_wal().unwrap();
    let after = std::fs::metadata(&path).unwrap().len();
    assert!(given > 200, "{given} pages");
    assert!(after < before / 4, "{before} -> {after} bytes");
}

#[test]
fn a_refused_commit_writes_nothing_while_a_reader_holds_the_wal() {
    // Found by review: the quota's remedies (a vacuum) wrote into a WAL that
    // a reader kept from starting over, so every refused commit took more disk.
    let (_d, p) = tmp();
    let mut w = Wal::open(&p, Synchronous::Full, 2_000_000).unwrap();
    w.set_format(codec::FORMAT_NONE);
    let big = "m v=1 1\n".repeat(10_000); // 80 kB
    while w.commit(&[batch("a", &big)]).is_ok() {}
    let reader = Connection::open(&p).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT count(*) FROM batches", [], |r| r.get(0))
        .unwrap();
    // Half delivered: free pages a vacuum would give back.
    let (id, _) = w.heads().unwrap()[0].clone();
    let pack = w.pack(&dest("a"), id, usize::MAX, usize::MAX).unwrap();
    assert!(pack.len() >= 4, "{} batches", pack.len());
    let half = &pack[..pack.len() / 2];
    w.finish(half, &[]).unwrap();
    // Commits reuse those pages through the held WAL until it is full.
    while w.commit(&[batch("a", &big)]).is_ok() {}
    let before = w.disk_use();
    assert!(before.total() <= 2_000_000, "{before:?}");
    for _ in 0..20 {
        let err = w.commit(&[batch("a", &big)]).unwrap_err();
        assert!(matches!(err, WalError::QuotaFull { .. }), "{err}");
    }
    assert_eq!(w.disk_use(), before, "refused commits wrote to the disk");
    // The reader gone, the same commit finds room: the WAL is cut and the
    // free pages in the way given back.
    drop(reader);
    w.commit(&[batch("a", &big)]).unwrap();
    assert!(w.disk_use().total() <= 2_000_000, "{:?}", w.disk_use());
}
