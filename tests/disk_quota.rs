//! Disk use within `buffer.max_size_mb`, as the file system sees it (the
//! database, its WAL and `-shm`), while readers get in the way of the WAL
//! starting over: an `export` piped into a reader that stopped reading, and
//! a reader holding a snapshot (an open `sqlite3` session). The real agent,
//! a real influxd, ingest at full speed, disk use sampled all along.

mod common;
use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const QUOTA_MB: u64 = 20;
const QUOTA_BYTES: u64 = QUOTA_MB << 20;
/// README's stated margin over the quota (measured: under 100 KiB): the
/// deletes of a pack while a reader holds the WAL, `du`'s rounding.
const MARGIN_BYTES: u64 = 512 << 10;
const LINES: i64 = 2_000; // ~66 kB a body

fn body(first: i64, n: i64) -> String {
    (first..first + n)
        .map(|t| format!("m,src=t v={t}i {t}\n"))
        .collect()
}

/// What `du` counts for the buffer: its three files' allocated blocks.
fn du(buffer: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .map(|s| {
            let mut p = buffer.as_os_str().to_owned();
            p.push(s);
            std::fs::metadata(PathBuf::from(p)).map_or(0, |m| m.blocks() * 512)
        })
        .sum()
}

/// Samples `du` every few ms until dropped; the largest seen.
struct Sampler {
    max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(buffer: PathBuf) -> Sampler {
        let max = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (max.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                m.fetch_max(du(&buffer), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        Sampler {
            max,
            stop,
            thread: Some(thread),
        }
    }

    fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Posts `bodies` bodies from `first` on, from 4 producers at once; returns
/// the line numbers acknowledged (204) and how many were refused (507).
fn ingest(h: &Hissrv, first: i64, bodies: i64) -> (Vec<i64>, usize) {
    let url = h.url();
    let threads: Vec<_> = (0..4)
        .map(|k| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut refused = 0;
                for i in (k..bodies).step_by(4) {
                    let start = (first + i) * LINES;
                    let mut r = agent()
                        .post(format!("{url}/write?db=plant"))
                        .send(&body(start, LINES))
                        .expect("hissrv answers");
                    match r.status().as_u16() {
                        204 => acked.push(start),
                        507 => refused += 1,
                        s => panic!(
                            "unexpected {s}: {}",
                            r.body_mut().read_to_string().unwrap_or_default()
                        ),
                    }
                }
                (acked, refused)
            })
        })
        .collect();
    let mut acked = Vec::new();
    let mut refused = 0;
    for t in threads {
        let (a, r) = t.join().expect("producer");
        acked.extend(a);
        refused += r;
    }
    (acked, refused)
}

/// The export's process is blocked writing into its full pipe.
fn blocked_on_its_pipe(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/wchan")).is_ok_and(|w| w.contains("pipe"))
}

#[test]
fn disk_use_stays_within_the_quota_with_a_stalled_export_and_a_reader_holding_a_snapshot() {
    let influx = Influx::start();
    influx.create_db("plant");
    let proxy = CuttingProxy::start(influx.port);
    proxy.set_cut(true);
    let h = Hissrv::start_with(
        &proxy.url(),
        Sections {
            influxdb: "  database: plant\n",
            buffer: &format!("  max_size_mb: {QUOTA_MB}\n"),
            other: "performance:\n  compression:\n    enabled: false\n",
            ..Sections::default()
        },
    );
    let buffer = h.buffer_path();
    let sampler = Sampler::start(buffer.clone());
    let mut acked = Vec::new();

    // A backlog for `export` to print, then an export nobody reads.
    let (a, _) = ingest(&h, 0, 40);
    acked.extend(a);
    let mut export = hissrv_command()
        .args(["export", "--buffer"])
        .arg(&buffer)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("hissrv export");
    wait_for("the export to block on its pipe", DELIVERY_TIMEOUT, || {
        blocked_on_its_pipe(export.id())
    });
    // Full speed, the upstream up: commits and deletes go on while the
    // export waits; it must not keep the WAL from starting over.
    proxy.set_cut(false);
    let (a, refused_beside_export) = ingest(&h, 1_000, 600);
    acked.extend(a);
    let beside_export = sampler.max();
    let _ = export.kill();
    let _ = export.wait();
    assert!(
        beside_export <= QUOTA_BYTES + MARGIN_BYTES,
        "beside a stalled export the buffer took {beside_export} bytes on disk (quota {QUOTA_BYTES})"
    );

    // A reader holding a snapshot: the WAL cannot start over, so it grows;
    // the quota counts it, and writes are refused (507) before the card
    // fills.
    let reader =
        rusqlite::Connection::open_with_flags(&buffer, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open");
    reader.execute_batch("BEGIN").expect("begin");
    let _: i64 = reader
        .query_row("SELECT count(*) FROM batches", [], |r| r.get(0))
        .expect("a snapshot");
    let mut refused = 0;
    let mut next = 10_000;
    while refused == 0 && sampler.max() <= QUOTA_BYTES + MARGIN_BYTES {
        assert!(
            next < 30_000,
            "the quota never filled with a reader in the way"
        );
        let (a, r) = ingest(&h, next, 40);
        acked.extend(a);
        refused += r;
        next += 40;
    }
    // Go on writing while the upstream drains, the reader still there: a
    // refused commit must write nothing, and deletes must not pile up in
    // the held WAL (a review found both taking the disk 70 % past the quota).
    for _ in 0..30 {
        let (a, _) = ingest(&h, next, 40);
        acked.extend(a);
        next += 40;
    }
    let with_reader = sampler.max();
    assert!(
        with_reader <= QUOTA_BYTES + MARGIN_BYTES,
        "with a reader holding a snapshot the buffer took {with_reader} bytes on disk (quota {QUOTA_BYTES})"
    );
    let health = h.health();
    assert!(
        health.buffer_disk_bytes > 0 && health.buffer_disk_bytes <= QUOTA_BYTES + MARGIN_BYTES,
        "/health buffer_disk_bytes {}",
        health.buffer_disk_bytes
    );
    // The reader goes: writes are taken again (the WAL is cut back).
    drop(reader);
    wait_for("writes taken again", DELIVERY_TIMEOUT, || {
        let (a, _) = ingest(&h, next, 4);
        next += 4;
        let ok = !a.is_empty();
        acked.extend(a);
        ok
    });
    wait_for(
        "every acknowledged point upstream",
        DELIVERY_TIMEOUT,
        || influx.count_field("plant", "m", "v") == acked.len() * LINES as usize,
    );
    eprintln!(
        "quota {QUOTA_BYTES}: at most {beside_export} bytes on disk beside a stalled export \
         ({refused_beside_export} bodies refused), {with_reader} with a reader holding a snapshot"
    );
    assert!(sampler.max() <= QUOTA_BYTES + MARGIN_BYTES);
}
