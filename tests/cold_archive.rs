//! The cold archive (`lifecycle.rules[].cold_storage`, `file://` targets)
//! against real parts: influxd 1.6.7 upstream, Debian's `influx -import
//! -compressed` reading the objects back into a fresh influxd, a real tmpfs
//! that fills up, and `kill -9` of the agent while it archives.

mod common;
use common::moto;
use common::*;
use hissrv::archive::object::Manifest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const NS: i64 = 1_000_000_000;
const HOUR_NS: i64 = 3_600 * NS;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_nanos() as i64
}

fn lifecycle(target: &Path, archive: &str) -> String {
    format!(
        "lifecycle:\n  archive:\n    flush_interval: 1s\n    max_backoff: 1s\n{archive}  rules:\n    - measurement: telemetry\n      cold_storage: \"file://{}/\"\n",
        target.display()
    )
}

/// Every object under `root` (relative name → bytes); also asserts no
/// half-written file is left and each manifest says what its object is.
fn objects(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            let name = p.strip_prefix(root).unwrap().display().to_string();
            if name.ends_with(".lp.gz") {
                out.insert(name, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn parts_left(root: &Path) -> Vec<PathBuf> {
    let mut left = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.to_string_lossy().ends_with(".part") {
                left.push(p);
            }
        }
    }
    left
}

fn manifest(root: &Path, name: &str) -> Manifest {
    let text = std::fs::read_to_string(root.join(format!("{name}.json")))
        .unwrap_or_else(|e| panic!("manifest of {name}: {e}"));
    miniserde::json::from_str(&text).unwrap_or_else(|_| panic!("bad manifest {text}"))
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(bytes), &mut text)
        .expect("a gzip object");
    text
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Each object's manifest matches its bytes and lines; returns the data
/// lines of all objects, with the object each came from.
fn archived_lines(root: &Path) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    for (name, bytes) in objects(root) {
        let m = manifest(root, &name);
        assert_eq!(m.object, name);
        assert_eq!(m.sha256, sha256_hex(&bytes), "{name}: sha256");
        assert_eq!(m.bytes, bytes.len() as u64, "{name}: bytes");
        let text = gunzip(&bytes);
        assert!(text.starts_with("# DML\n# CONTEXT-DATABASE: "), "{name}");
        let data: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(m.points, data.len() as u64, "{name}: points");
        for l in data {
            lines.push((l.to_string(), name.clone()));
        }
    }
    lines
}

#[test]
fn every_point_of_an_archiving_rule_reaches_an_object_that_influx_import_reads_back_equal() {
    let influx = Influx::start();
    influx.create_db("plant");
    let archive = TempDir::new("archive");
    let agent = Hissrv::start_with(
        &influx.url(),
        Sections {
            influxdb: "  database: plant\n",
            other: &lifecycle(archive.path(), ""),
            ..Sections::default()
        },
    );
    // Three hours of points, with another measurement in the same writes
    // (not archived: the batch is split at commit).
    let start = (now_ns() - 5 * HOUR_NS) / HOUR_NS * HOUR_NS;
    let mut sent = 0;
    for h in 0..3 {
        let body: String = (0..200)
            .map(|i| {
                let t = start + h * HOUR_NS + i * 10 * NS;
                format!(
                    "telemetry,id=m{} v={i},n={h}i {t}\nother v={i} {t}\n",
                    i % 4
                )
            })
            .collect();
        assert_eq!(agent.post("/write?db=plant", &body).0, 204);
        sent += 200;
    }
    wait_for("delivered and archived", DELIVERY_TIMEOUT, || {
        influx.count("plant", "telemetry") == sent
            && agent.metric("hissrv_archive_pending_points") == 0.0
            && agent.buffered_points() == 0
    });
    assert_eq!(
        influx.count("plant", "other"),
        sent,
        "the rest delivered too"
    );
    let lines = archived_lines(archive.path());
    assert_eq!(lines.len(), sent, "every archived point once: {lines:?}");
    assert!(lines.iter().all(|(l, _)| l.starts_with("telemetry,")));
    let hours: std::collections::BTreeSet<&str> = lines
        .iter()
        .map(|(_, o)| o.rsplit('/').next().unwrap().split('.').nth(2).unwrap())
        .collect();
    assert_eq!(hours.len(), 3, "one object an hour: {hours:?}");
    assert!(parts_left(archive.path()).is_empty());
    assert_eq!(agent.metric("hissrv_archive_points_total"), sent as f64);
    let ls = hissrv_command()
        .args(["archive", "ls"])
        .arg(format!("file://{}/", archive.path().display()))
        .output()
        .expect("hissrv archive ls");
    let listing = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.status.success(), "{listing}");
    assert!(
        listing.contains(&format!("3 objects, {sent} points")),
        "{listing}"
    );

    // Read back with the standard tool into a fresh server.
    let fresh = Influx::start();
    fresh.create_db("plant");
    import_all(archive.path(), &fresh);
    let q = "SELECT * FROM telemetry GROUP BY *";
    let want = influx.rows("plant", q);
    assert_eq!(want.len(), sent);
    assert_eq!(
        fresh.rows("plant", q),
        want,
        "the archive equals the raw points"
    );
    assert_eq!(fresh.count("plant", "other"), 0);
}

#[test]
fn an_archive_that_cannot_be_written_keeps_every_point_and_delivery_goes_on() {
    let influx = Influx::start();
    influx.create_db("plant");
    let archive = TempDir::new("archive-blocked");
    // A file where the target directory should be: mkdir fails, even as root.
    let target = archive.path().join("usb");
    std::fs::write(&target, "not a directory").unwrap();
    let agent = Hissrv::start_with(
        &influx.url(),
        Sections {
            influxdb: "  database: plant\n",
            other: &lifecycle(&target, ""),
            ..Sections::default()
        },
    );
    let now = now_ns();
    let body: String = (0..100)
        .map(|i| format!("telemetry,id=m1 v={i} {}\n", now + i * NS))
        .collect();
    assert_eq!(agent.post("/write?db=plant", &body).0, 204);
    wait_for(
        "delivered while the archive fails",
        DELIVERY_TIMEOUT,
        || {
            influx.count("plant", "telemetry") == 100
                && agent.metric("hissrv_archive_failures_total") >= 2.0
        },
    );
    assert_eq!(agent.buffered_points(), 100, "nothing left the buffer");
    assert_eq!(agent.metric("hissrv_archive_pending_points"), 100.0);
    let h = agent.health();
    let a = h.archive.expect("the archive in /health");
    assert!(a.last_error.contains("usb"), "{}", a.last_error);
    assert_eq!(a.objects_written, 0);
    let inspect = hissrv_command()
        .args(["inspect", "--buffer"])
        .arg(agent.buffer_path())
        .output()
        .expect("hissrv inspect");
    let report = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        report.contains("cold archive (owed") && report.contains("plant: 100 points in"),
        "{report}"
    );
    assert!(report.contains("delivered upstream already"), "{report}");
    // The disk is mounted at last: the backlog is archived and leaves.
    std::fs::remove_file(&target).unwrap();
    std::fs::create_dir(&target).unwrap();
    wait_for("archived once writable", DELIVERY_TIMEOUT, || {
        agent.buffered_points() == 0
    });
    assert_eq!(archived_lines(&target).len(), 100);
    assert!(agent.health().archive.unwrap().last_error.is_empty());
    assert_eq!(influx.count("plant", "telemetry"), 100, "delivered once");
}

#[test]
fn a_full_archive_disk_is_a_visible_error_that_deletes_nothing_until_there_is_room() {
    let archive = TempDir::new("archive-full");
    let Some(fs) = disk::tmpfs_or_skip(&archive.path().join("usb"), 64) else {
        return;
    };
    let influx = Influx::start();
    influx.create_db("plant");
    let agent = Hissrv::start_with(
        &influx.url(),
        Sections {
            influxdb: "  database: plant\n",
            other: &lifecycle(fs.path(), ""),
            ..Sections::default()
        },
    );
    // Values that do not compress: far more than 64 KiB of gzip.
    let now = now_ns();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut sent = 0;
    for _ in 0..4 {
        let body: String = (0..5_000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                sent += 1;
                format!(
                    "telemetry,id=m{} v={}i {}\n",
                    i % 7,
                    x >> 1,
                    now + sent * 1_000
                )
            })
            .collect();
        assert_eq!(agent.post("/write?db=plant", &body).0, 204);
    }
    let sent = sent as usize;
    wait_for("delivered, the archive full", DELIVERY_TIMEOUT, || {
        influx.count("plant", "telemetry") == sent
            && agent.metric("hissrv_archive_failures_total") >= 1.0
    });
    let err = agent.health().archive.unwrap().last_error;
    assert!(err.contains("No space left"), "{err}");
    assert_eq!(agent.buffered_points() as usize, sent, "nothing deleted");
    assert!(
        parts_left(fs.path()).is_empty(),
        "no half object left behind"
    );
    // Room again (a bigger disk): everything is archived, then leaves.
    std::process::Command::new("mount")
        .args(["-o", "remount,size=16m"])
        .arg(fs.path())
        .status()
        .expect("mount");
    wait_for("archived once there is room", DELIVERY_TIMEOUT, || {
        agent.buffered_points() == 0
    });
    let lines = archived_lines(fs.path());
    assert_eq!(lines.len(), sent);
}

#[test]
fn kill_minus_nine_while_archiving_loses_no_point_and_repeats_only_whole_identical_objects() {
    let influx = Influx::start();
    influx.create_db("plant");
    let archive = TempDir::new("archive-kill");
    let sections = |archive_lines: &'static str| Sections {
        influxdb: "  database: plant\n",
        other: Box::leak(lifecycle(archive.path(), archive_lines).into_boxed_str()),
        ..Sections::default()
    };
    // Small objects: many runs, so kills land inside them.
    let mut agent = Hissrv::start_with(&influx.url(), sections("    max_object_mb: 1\n"));
    let acked = write_and_kill(&mut agent);
    wait_for(
        "everything archived and delivered",
        Duration::from_secs(120),
        || agent.buffered_points() == 0,
    );
    assert!(parts_left(archive.path()).is_empty());
    each_once(&archived_lines(archive.path()), &acked);
    assert!(agent.log().contains("archive"), "the archiver ran");
}

fn s3_lifecycle(moto: &moto::Moto, secret: &str, extra: &str) -> String {
    moto.lifecycle(&moto.url(), secret, extra)
}

/// Imports every object under `root` into `db` of `into` with Debian's
/// `influx -import -compressed`.
fn import_all(root: &Path, into: &Influx) {
    let port = into.url().rsplit(':').next().unwrap().to_string();
    for name in objects(root).keys() {
        let out = std::process::Command::new("influx")
            .args([
                "-host",
                "127.0.0.1",
                "-port",
                &port,
                "-compressed",
                "-precision",
                "ns",
            ])
            .arg(format!("-path={}", root.join(name).display()))
            .arg("-import")
            .output()
            .expect("influx (Debian's influxdb-client)");
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && said.contains("Failed 0 inserts"),
            "{name}: {said}"
        );
    }
}

#[test]
fn a_wrong_s3_secret_gets_403_and_keeps_every_point_until_a_reloaded_secret_uploads_the_backlog() {
    let moto = moto::Moto::start("plant-archive");
    let influx = Influx::start();
    influx.create_db("plant");
    let lines = s3_lifecycle(&moto, "not-the-secret", "");
    let mut agent = Hissrv::start_with(
        &influx.url(),
        Sections {
            influxdb: "  database: plant\n",
            other: &lines,
            ..Sections::default()
        },
    );
    let start = (now_ns() - 3 * HOUR_NS) / HOUR_NS * HOUR_NS;
    let body: String = (0..300)
        .map(|i| format!("telemetry,id=m{} v={i} {}\n", i % 3, start + i * 30 * NS))
        .collect();
    assert_eq!(agent.post("/write?db=plant", &body).0, 204);
    wait_for("delivered while S3 refuses", DELIVERY_TIMEOUT, || {
        influx.count("plant", "telemetry") == 300
            && agent.metric("hissrv_archive_failures_total") >= 2.0
    });
    let err = agent
        .health()
        .archive
        .expect("archive in /health")
        .last_error;
    assert!(
        err.contains("403") && err.contains("SignatureDoesNotMatch"),
        "{err}"
    );
    assert_eq!(agent.buffered_points(), 300, "nothing deleted on a 403");
    assert!(objects(moto.snapshot().path()).is_empty());
    // The operator fixes the secret: a reload, no restart.
    let fixed = s3_lifecycle(&moto, &moto.secret, "");
    agent.rewrite_config(
        &influx.url(),
        Sections {
            influxdb: "  database: plant\n",
            other: &fixed,
            ..Sections::default()
        },
    );
    wait_for(
        "the backlog uploaded once the keys are right",
        DELIVERY_TIMEOUT,
        || agent.buffered_points() == 0,
    );
    assert!(agent.health().archive.unwrap().last_error.is_empty());
    let got = moto.snapshot();
    let root = got.path().join("gw7");
    assert_eq!(archived_lines(&root).len(), 300);
    let fresh = Influx::start();
    fresh.create_db("plant");
    import_all(&root, &fresh);
    let q = "SELECT * FROM telemetry GROUP BY *";
    let want = influx.rows("plant", q);
    assert_eq!(fresh.rows("plant", q), want);
    // Listed and restored from the bucket itself, with the agent's config
    // (its store, keys and listen address). The whole bucket: moto checks a
    // listing's signature against its decoded query, so a prefix with a
    // `/` (sent `%2F`, as AWS and boto3 sign it) is refused there, boto3's
    // own listing too.
    let cfg = agent.dir.path().join("hissrv.yaml");
    let url = format!("s3://{}/", moto.bucket);
    let ls = hissrv_command()
        .args(["archive", "ls", &url, "--config"])
        .arg(&cfg)
        .output()
        .expect("hissrv archive ls");
    let listing =
        String::from_utf8_lossy(&ls.stdout).into_owned() + &String::from_utf8_lossy(&ls.stderr);
    assert!(
        ls.status.success() && listing.contains(" 300 points, "),
        "{listing}"
    );
    influx.exec_on("plant", "DROP MEASUREMENT telemetry");
    let out = hissrv_command()
        .args(["restore", &url, "--config"])
        .arg(&cfg)
        .output()
        .expect("hissrv restore");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.contains("restored 300 points"),
        "{said}"
    );
    wait_for("restored from S3", DELIVERY_TIMEOUT, || {
        influx.count("plant", "telemetry") == 300 && agent.buffered_points() == 0
    });
    assert_eq!(influx.rows("plant", q), want);
}

#[test]
fn a_missing_bucket_is_a_visible_error_and_is_created_only_when_the_config_says_so() {
    let moto = moto::Moto::start("plant-archive");
    let influx = Influx::start();
    influx.create_db("plant");
    let with = |create: bool| {
        s3_lifecycle(
            &moto,
            &moto.secret,
            &format!("      create_bucket: {create}\n"),
        )
        .replace("s3://plant-archive/", "s3://new-archive/")
    };
    let off = with(false);
    let mut agent = Hissrv::start_with(
        &influx.url(),
        Sections {
            influxdb: "  database: plant\n",
            other: &off,
            ..Sections::default()
        },
    );
    let now = now_ns();
    let body: String = (0..50)
        .map(|i| format!("telemetry v={i} {}\n", now + i))
        .collect();
    assert_eq!(agent.post("/write?db=plant", &body).0, 204);
    wait_for("the missing bucket shown", DELIVERY_TIMEOUT, || {
        agent
            .health()
            .archive
            .is_some_and(|a| a.last_error.contains("NoSuchBucket"))
    });
    assert_eq!(agent.buffered_points(), 50);
    let on = with(true);
    agent.restart_with(
        &influx.url(),
        Sections {
            influxdb: "  database: plant\n",
            other: &on,
            ..Sections::default()
        },
    );
    wait_for("archived into the bucket it made", DELIVERY_TIMEOUT, || {
        agent.buffered_points() == 0
    });
    assert!(agent.log().contains("created the bucket"));
}

#[test]
fn restore_sends_an_archived_span_back_through_the_agent_once_and_never_archives_it_again() {
    let influx = Influx::start();
    influx.create_db("plant");
    let archive = TempDir::new("archive-restore");
    let agent = Hissrv::start_with(
        &influx.url(),
        Sections {
            influxdb: "  database: plant\n",
            other: &lifecycle(archive.path(), ""),
            ..Sections::default()
        },
    );
    let start = (now_ns() - 6 * HOUR_NS) / HOUR_NS * HOUR_NS;
    let body: String = (0..3 * 120)
        .map(|i| format!("telemetry,id=m{} v={i}i {}\n", i % 3, start + i * 30 * NS))
        .collect();
    assert_eq!(agent.post("/write?db=plant", &body).0, 204);
    wait_for("delivered and archived", DELIVERY_TIMEOUT, || {
        influx.count("plant", "telemetry") == 360 && agent.buffered_points() == 0
    });
    let objects_before = objects(archive.path());
    let archived = agent.metric("hissrv_archive_points_total");
    // The middle hour, as the upstream had it; then the upstream loses it all.
    let (since, until) = (start + HOUR_NS, start + 2 * HOUR_NS);
    let q = format!("SELECT * FROM telemetry WHERE time >= {since} AND time < {until} GROUP BY *");
    let want = influx.rows("plant", &q);
    assert_eq!(want.len(), 120);
    influx.exec_on("plant", "DROP MEASUREMENT telemetry");
    wait_for("dropped", DELIVERY_TIMEOUT, || {
        influx.count("plant", "telemetry") == 0
    });
    let restore = |extra: &[&str]| {
        let out = hissrv_command()
            .args(["restore"])
            .arg(format!("file://{}/", archive.path().display()))
            .args([
                "--url",
                &agent.url(),
                "--since",
                &since.to_string(),
                "--until",
            ])
            .arg(until.to_string())
            .args(extra)
            .output()
            .expect("hissrv restore");
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{said}");
        said
    };
    let said = restore(&["--dry-run"]);
    assert!(
        said.contains("would restore 120 points from 1 objects"),
        "{said}"
    );
    assert_eq!(
        agent.metric("hissrv_points_accepted_total"),
        360.0,
        "a dry run sends nothing"
    );
    let said = restore(&[]);
    assert!(
        said.contains("restored 120 points from 1 objects"),
        "{said}"
    );
    wait_for("the span back upstream", DELIVERY_TIMEOUT, || {
        influx.count("plant", "telemetry") == 120 && agent.buffered_points() == 0
    });
    assert_eq!(influx.rows("plant", &q), want, "the span as it was");
    assert_eq!(
        agent.metric("hissrv_archive_points_total"),
        archived,
        "restored points are not archived again"
    );
    assert_eq!(objects(archive.path()).len(), objects_before.len());
    assert_eq!(agent.metric("hissrv_points_restored_total"), 120.0);
}

/// Six cycles of writes (points over 30 hours: runs of many objects) each
/// ended by a kill -9 at a random moment and a restart; the lines the
/// agent acknowledged.
fn write_and_kill(agent: &mut Hissrv) -> Vec<String> {
    let mut next = {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    };
    let base = (now_ns() - 30 * HOUR_NS) / HOUR_NS * HOUR_NS;
    let mut acked: Vec<String> = Vec::new();
    let mut n = 0i64;
    for _cycle in 0..6 {
        for _ in 0..(2 + next() % 4) {
            let lines: Vec<String> = (0..3_000)
                .map(|_| {
                    n += 1;
                    let t = base + (n % 30) * HOUR_NS + n;
                    format!("telemetry,id=m{} v={n}i {t}", n % 5)
                })
                .collect();
            let (status, _) = agent.post("/write?db=plant", &(lines.join("\n") + "\n"));
            if status == 204 {
                acked.extend(lines);
            }
        }
        std::thread::sleep(Duration::from_millis(next() % 1_500));
        agent.kill9();
        agent.spawn();
    }
    acked
}

/// Every acknowledged line in exactly one object (a run written again
/// after a kill rewrites the same object under the same name).
fn each_once(lines: &[(String, String)], acked: &[String]) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (l, object) in lines {
        if let Some(first) = seen.insert(l, object) {
            panic!("{l} in two objects: {first} and {object}");
        }
    }
    for l in acked {
        assert!(
            seen.contains_key(l.as_str()),
            "acknowledged {l} not archived"
        );
    }
}

#[test]
fn kill_minus_nine_while_uploading_to_s3_loses_no_point_and_repeats_only_whole_objects() {
    let moto = moto::Moto::start("plant-archive");
    let influx = Influx::start();
    influx.create_db("plant");
    let lines = s3_lifecycle(&moto, &moto.secret, "    max_object_mb: 1\n");
    let mut agent = Hissrv::start_with(
        &influx.url(),
        Sections {
            influxdb: "  database: plant\n",
            other: &lines,
            ..Sections::default()
        },
    );
    let acked = write_and_kill(&mut agent);
    wait_for(
        "everything uploaded and delivered",
        Duration::from_secs(120),
        || agent.buffered_points() == 0,
    );
    let got = moto.snapshot();
    each_once(&archived_lines(&got.path().join("gw7")), &acked);
    let spool = PathBuf::from(format!("{}-archive", agent.buffer_path().display()));
    assert!(parts_left(&spool).is_empty(), "no spool file left behind");
}
