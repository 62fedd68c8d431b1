//! The archiver against a real buffer and a real directory: the review's
//! holes, each kept shut by a test.

use super::*;
use crate::config::{LifecycleRule, Synchronous};
use crate::wal::NewBatch;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

const HOUR_NS: i64 = 3_600 * 1_000_000_000;

struct Dirs {
    base: PathBuf,
}

impl Dirs {
    fn new(tag: &str) -> Dirs {
        let base =
            std::env::temp_dir().join(format!("hissrv-archiver-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("archive")).unwrap();
        Dirs { base }
    }
    fn root(&self) -> PathBuf {
        self.base.join("archive")
    }
    fn url(&self) -> String {
        format!("file://{}/", self.root().display())
    }
    fn wal(&self) -> Wal {
        Wal::open(&self.base.join("buffer.db"), Synchronous::Off, 1 << 30).unwrap()
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn lifecycle(url: &str, period: &str) -> Lifecycle {
    let mut l = Lifecycle {
        rules: vec![LifecycleRule {
            measurement: "m".into(),
            cold_storage: url.into(),
            ..LifecycleRule::default()
        }],
        ..Lifecycle::default()
    };
    l.archive.period = period.into();
    l.archive.flush_interval = "1s".into();
    l
}

/// An archiver for which everything owed is due at once.
fn archiver(d: &Dirs, l: &Lifecycle) -> Archiver {
    let keys = Default::default();
    let mut a = Archiver::new(
        d.wal(),
        l,
        Arc::new(Stats::default()),
        &d.base.join("spool"),
        &keys,
    )
    .unwrap()
    .unwrap();
    a.cutting.flush_ms = 0;
    a
}

fn batch(db: &str, text: &str, ts: i64) -> NewBatch {
    NewBatch {
        dest: Destination {
            db: db.into(),
            rp: String::new(),
        },
        points: text.lines().count(),
        first_ts: ts,
        last_ts: ts,
        payload: text.as_bytes().to_vec(),
    }
}

fn owe(w: &mut Wal, b: NewBatch, url: &str) {
    w.commit_with_duty_split(&[b], &[], &[], &[Some(url.to_string())])
        .unwrap();
}

/// Object name → its text, for every object and sidecar under `root`.
fn texts(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.to_string_lossy().ends_with(".gz") {
                let mut text = String::new();
                let f = std::fs::File::open(&p).unwrap();
                std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(f), &mut text)
                    .unwrap();
                out.insert(p.strip_prefix(root).unwrap().display().to_string(), text);
            }
        }
    }
    out
}

fn past_hour() -> i64 {
    crate::clock::now_ms().saturating_mul(1_000_000) / HOUR_NS * HOUR_NS - HOUR_NS
}

#[test]
fn a_destination_whose_objects_cannot_be_written_never_stops_the_others() {
    let d = Dirs::new("stall");
    let l = lifecycle(&d.url(), "hour");
    let mut w = d.wal();
    let ts = past_hour();
    // A legal, very long database name (it failed with ENAMETOOLONG), and
    // one whose directory cannot be made (a file in its way).
    owe(
        &mut w,
        batch(&"d".repeat(200), &format!("m v=1 {ts}\n"), ts),
        &d.url(),
    );
    owe(
        &mut w,
        batch("blocked", &format!("m v=1 {ts}\n"), ts),
        &d.url(),
    );
    owe(
        &mut w,
        batch("plant", &format!("m v=2 {ts}\n"), ts),
        &d.url(),
    );
    std::fs::write(d.root().join("blocked"), "in the way").unwrap();
    let mut a = archiver(&d, &l);
    let stop = AtomicBool::new(false);
    for _ in 0..3 {
        a.turn(&stop);
        a.backoff.clear();
    }
    let left: Vec<String> = (a.wal.archive_queues().unwrap().iter())
        .map(|q| q.dest.db.clone())
        .collect();
    assert_eq!(left, ["blocked"], "only the blocked destination waits");
    let t = texts(&d.root());
    assert_eq!(t.len(), 2, "{:?}", t.keys());
    assert!(t.keys().all(|n| n.split('/').all(|part| part.len() < 255)));
}

#[test]
fn a_line_break_in_a_string_goes_to_the_sidecar_and_cannot_forge_a_header() {
    let d = Dirs::new("multiline");
    let l = lifecycle(&d.url(), "hour");
    let mut w = d.wal();
    let ts = past_hour();
    let text = format!(
        "m s=\"p\n# CONTEXT-DATABASE: victim\nq\" {ts}\nm v=7i {}\n",
        ts + 1
    );
    owe(&mut w, batch("plant", &text, ts), &d.url());
    let mut a = archiver(&d, &l);
    let run = a
        .wal
        .start_run(&d.url(), &batch("plant", "", 0).dest, u64::MAX, 3_600);
    let run = run.unwrap().unwrap();
    a.write_run(&run).unwrap();
    let t = texts(&d.root());
    let (main, side): (Vec<_>, Vec<_>) = t.iter().partition(|(n, _)| n.ends_with(".lp.gz"));
    assert_eq!((main.len(), side.len()), (1, 1), "{:?}", t.keys());
    let main_text = main[0].1;
    assert_eq!(
        main_text
            .lines()
            .filter(|l| l.starts_with("# CONTEXT-DATABASE:"))
            .count(),
        1
    );
    assert!(
        main_text.ends_with(&format!("m v=7i {}\n", ts + 1)),
        "{main_text}"
    );
    assert!(
        side[0].1.contains("# CONTEXT-DATABASE: victim\nq\""),
        "kept whole in the sidecar"
    );
    let m: super::super::object::Manifest = miniserde::json::from_str(
        &std::fs::read_to_string(d.root().join(format!("{}.json", main[0].0))).unwrap(),
    )
    .unwrap();
    assert_eq!((m.points, m.multiline_points), (1, 1));
    assert_eq!(
        (m.first_ts, m.last_ts),
        (ts, ts + 1),
        "the range covers the sidecar's point too (a restore by time finds it)"
    );
}

#[test]
fn an_unmounted_disk_is_not_written_under_and_its_root_is_never_created() {
    let d = Dirs::new("unmounted");
    let l = lifecycle(&d.url(), "hour");
    let mut w = d.wal();
    let ts = past_hour();
    owe(
        &mut w,
        batch("plant", &format!("m v=1 {ts}\n"), ts),
        &d.url(),
    );
    let mut a = archiver(&d, &l);
    let stop = AtomicBool::new(false);
    a.turn(&stop);
    assert!(d.root().join(super::super::dir::MARKER).exists());
    assert!(a.wal.archive_queues().unwrap().is_empty());
    // Unplugged: the mount point is an empty directory again.
    std::fs::remove_dir_all(d.root()).unwrap();
    std::fs::create_dir(d.root()).unwrap();
    owe(
        &mut a.wal,
        batch("plant", &format!("m v=2 {}\n", ts + 1), ts + 1),
        &d.url(),
    );
    a.backoff.clear();
    a.turn(&stop);
    assert_eq!(a.wal.archive_queues().unwrap().len(), 1, "kept");
    assert!(
        texts(&d.root()).is_empty(),
        "nothing written under the mount point"
    );
    let err = a.stats.archiving.last_error.lock().unwrap().clone();
    assert!(err.contains("marker is gone"), "{err}");
    // No root at all: not created either.
    std::fs::remove_dir_all(d.root()).unwrap();
    a.backoff.clear();
    a.turn(&stop);
    assert!(!d.root().exists());
}

#[test]
fn another_spelling_of_the_same_directory_is_the_same_archive() {
    let d = Dirs::new("spelling");
    let mut w = d.wal();
    let ts = past_hour();
    let bare = format!("file://{}", d.root().display());
    // Owed under one spelling (an earlier config), delivered already.
    owe(&mut w, batch("plant", &format!("m v=1 {ts}\n"), ts), &bare);
    let dest = batch("plant", "", 0).dest;
    let pack = w.pack(&dest, 0, 10, usize::MAX).unwrap();
    w.finish(&pack, &[]).unwrap();
    drop(w);
    let mut a = archiver(&d, &lifecycle(&format!("{bare}//./"), "hour"));
    a.turn(&AtomicBool::new(false));
    assert_eq!(texts(&d.root()).len(), 1, "archived, not dropped");
    assert!(a.wal.archive_queues().unwrap().is_empty());
}

#[test]
fn a_run_written_again_after_a_period_change_keeps_the_period_it_started_with() {
    let d = Dirs::new("period");
    let mut w = d.wal();
    let ts = past_hour();
    owe(
        &mut w,
        batch("plant", &format!("m v=1 {ts}\n"), ts),
        &d.url(),
    );
    let mut a = archiver(&d, &lifecycle(&d.url(), "hour"));
    let run = (a
        .wal
        .start_run(&d.url(), &batch("plant", "", 0).dest, u64::MAX, 3_600))
    .unwrap()
    .unwrap();
    // Its objects confirmed, then a crash before `finish_run`.
    a.write_run(&run).unwrap();
    drop(a);
    let mut a = archiver(&d, &lifecycle(&d.url(), "day"));
    a.turn(&AtomicBool::new(false));
    let t = texts(&d.root());
    assert_eq!(
        t.len(),
        1,
        "one object, not an hour's and a day's: {:?}",
        t.keys()
    );
    assert!(a.wal.archive_queues().unwrap().is_empty());
}
