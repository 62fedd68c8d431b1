//! Two gateways cloned from one disk image share a buffer id, and so the
//! names of their archive objects. Against moto (authentication enforced,
//! `If-None-Match` honoured as AWS S3 does): the clone's run of the same
//! lines is confirmed by the object already there, and a run of other
//! lines under a taken name is a shown conflict that keeps the clone's
//! points and never replaces the first gateway's object.

mod common;
use common::moto::Moto;
use common::*;
use std::path::Path;

const NS: i64 = 1_000_000_000;

fn sections(other: &str) -> Sections<'_> {
    Sections {
        influxdb: "  database: plant\n",
        other,
        ..Sections::default()
    }
}

/// `count` points of one hour two hours ago, values from `base`.
fn body(base: i64, count: i64) -> String {
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let hour = (now_s / 3_600 - 2) * 3_600 * NS;
    (0..count)
        .map(|i| {
            format!(
                "telemetry,id=m{} v={}i {}\n",
                i % 3,
                base + i,
                hour + i * NS
            )
        })
        .collect()
}

/// The buffer files of `from` copied over `to`'s (both agents stopped).
fn clone_buffer(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let (src, dst) = (
            format!("{}{suffix}", from.display()),
            format!("{}{suffix}", to.display()),
        );
        let _ = std::fs::remove_file(&dst);
        if Path::new(&src).exists() {
            std::fs::copy(&src, &dst).expect("copy the buffer");
        }
    }
}

/// Every `v` value in the bucket's objects, in order.
fn archived_values(moto: &Moto) -> Vec<i64> {
    let mut values: Vec<i64> = (moto.archived_lines().iter())
        .map(|l| {
            let v = l.split(" v=").nth(1).and_then(|r| r.split('i').next());
            v.and_then(|v| v.parse().ok()).expect(l)
        })
        .collect();
    values.sort();
    values
}

#[test]
fn a_gateway_cloned_from_a_disk_image_never_replaces_the_other_s_archive_objects() {
    let moto = Moto::start("plant-archive");
    let influx = Influx::start();
    influx.create_db("plant");
    let cfg = moto.lifecycle(&moto.url(), &moto.secret, "");
    let mut a = Hissrv::start_with(&influx.url(), sections(&cfg));
    assert!(a.terminate().success());
    let mut b = Hissrv::start_with(&influx.url(), sections(&cfg));
    assert!(b.terminate().success());
    // The image: gateway a's buffer (its id with it) on gateway b.
    clone_buffer(&a.buffer_path(), &b.buffer_path());
    a.spawn();
    b.spawn();

    // The same lines from both: b's run finds a's object, the same lines,
    // and is confirmed by it.
    assert_eq!(a.post("/write?db=plant", &body(0, 100)).0, 204);
    wait_for("a archived", DELIVERY_TIMEOUT, || a.buffered_points() == 0);
    assert_eq!(b.post("/write?db=plant", &body(0, 100)).0, 204);
    wait_for("b confirmed by a's object", DELIVERY_TIMEOUT, || {
        b.buffered_points() == 0
    });
    assert!(
        b.log().contains("was there with this run's lines"),
        "the names collided (the premise): {}",
        b.log()
    );

    // Other lines under the same name: a conflict, b keeps its points.
    assert_eq!(a.post("/write?db=plant", &body(1_000, 100)).0, 204);
    wait_for("a archived again", DELIVERY_TIMEOUT, || {
        a.buffered_points() == 0
    });
    assert_eq!(b.post("/write?db=plant", &body(2_000, 100)).0, 204);
    wait_for("the conflict shown", DELIVERY_TIMEOUT, || {
        b.health()
            .archive
            .is_some_and(|x| x.last_error.contains("not overwritten"))
    });
    assert_eq!(b.buffered_points(), 100, "b's points kept");
    let want: Vec<i64> = (0..100).chain(1_000..1_100).collect();
    assert_eq!(archived_values(&moto), want, "a's objects as a wrote them");
}
