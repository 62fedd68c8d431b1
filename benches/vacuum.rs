//! The cost of giving free pages back (issue: gateway realities). A buffer
//! that can shrink needs `auto_vacuum = INCREMENTAL`: SQLite then keeps
//! pointer-map pages, which every commit and delete may touch. This measures,
//! in one run with alternating rounds, the same workload on two buffers that
//! differ only in `auto_vacuum` (NONE, the old buffers; INCREMENTAL, ours):
//! commit 2,000 batches of 8 KiB (a 16 MiB backlog), delete them all as the
//! forwarder does, one transaction each, then (INCREMENTAL only) give the
//! free pages back with `PRAGMA incremental_vacuum` in the steps the agent
//! uses (its checkpoint size). `synchronous = NORMAL`, so the fsyncs of a
//! `FULL` buffer (the same on both) do not drown the difference.
//!
//! Run: `cargo bench --bench vacuum` (HISSRV_BENCH_RUNS rounds, default 5).

use rusqlite::{Connection, params};
use std::time::{Duration, Instant};

const BATCHES: usize = 2_000;
const BATCH_BYTES: usize = 8 * 1024;
/// The agent's checkpoint size for a 256 MiB quota (1/16, at most 1000 pages).
const STEP_PAGES: u64 = 1_000;

fn open(path: &std::path::Path, mode: &str) -> Connection {
    let _ = std::fs::remove_file(path);
    let c = Connection::open(path).expect("open");
    c.execute_batch(&format!(
        "PRAGMA auto_vacuum = {mode};
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         CREATE TABLE batches (id INTEGER PRIMARY KEY, db TEXT NOT NULL, rp TEXT NOT NULL,
           points INTEGER NOT NULL, created_ms INTEGER NOT NULL, payload BLOB NOT NULL);
         CREATE INDEX batches_by_destination ON batches(db, rp, id);"
    ))
    .expect("schema");
    c
}

/// (commit time, delete time, give-back time, file bytes after).
fn round(path: &std::path::Path, mode: &str) -> (Duration, Duration, Duration, u64) {
    let c = open(path, mode);
    let payload: Vec<u8> = (0..BATCH_BYTES).map(|i| (i * 7919 % 251) as u8).collect();
    let t = Instant::now();
    for i in 0..BATCHES {
        c.execute(
            "INSERT INTO batches (db, rp, points, created_ms, payload) VALUES ('plant', '', 100, ?1, ?2)",
            params![i as i64, payload],
        )
        .expect("insert");
    }
    let commit = t.elapsed();
    let t = Instant::now();
    for id in 1..=BATCHES as i64 {
        c.execute("DELETE FROM batches WHERE id = ?1", [id])
            .expect("delete");
    }
    let delete = t.elapsed();
    let t = Instant::now();
    if mode == "INCREMENTAL" {
        loop {
            let free: i64 = c
                .query_row("PRAGMA freelist_count", [], |r| r.get(0))
                .expect("freelist");
            if free <= 0 {
                break;
            }
            let mut stmt = c
                .prepare(&format!("PRAGMA incremental_vacuum({STEP_PAGES})"))
                .expect("vacuum");
            let mut rows = stmt.query([]).expect("vacuum");
            while rows.next().expect("vacuum").is_some() {}
        }
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        })
        .expect("checkpoint");
    }
    let give_back = t.elapsed();
    drop(c);
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    (commit, delete, give_back, size)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("HISSRV_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = std::env::temp_dir().join(format!("hissrv-vacuum-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("buffer.db");
    let mut none = (Vec::new(), Vec::new(), 0);
    let mut inc = (Vec::new(), Vec::new(), Vec::new(), 0);
    for _ in 0..runs {
        let (c, d, _, size) = round(&path, "NONE");
        none.0.push(c);
        none.1.push(d);
        none.2 = size;
        let (c, d, g, size) = round(&path, "INCREMENTAL");
        inc.0.push(c);
        inc.1.push(d);
        inc.2.push(g);
        inc.3 = size;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (cn, dn) = (median(none.0), median(none.1));
    let (ci, di, gi) = (median(inc.0), median(inc.1), median(inc.2));
    println!("{BATCHES} batches of {BATCH_BYTES} B, median of {runs} alternating rounds (ms):");
    println!("| auto_vacuum | commit all | delete all | give back | file after |");
    println!("|---|---|---|---|---|");
    println!(
        "| NONE | {:.0} | {:.0} | — | {:.1} MiB |",
        ms(cn),
        ms(dn),
        none.2 as f64 / 1048576.0
    );
    println!(
        "| INCREMENTAL | {:.0} ({:.2}×) | {:.0} ({:.2}×) | {:.0} | {:.1} MiB |",
        ms(ci),
        ms(ci) / ms(cn),
        ms(di),
        ms(di) / ms(dn),
        ms(gi),
        inc.3 as f64 / 1048576.0
    );
}
