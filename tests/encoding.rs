//! Stored encodings end to end: batches of the older plain format still
//! deliver after an upgrade, and operators can inspect and export a live
//! agent's buffer.

mod common;
use common::*;
use std::process::Command;

fn hissrv(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hissrv"))
        .args(args)
        .output()
        .expect("run hissrv");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plain_batches_from_before_an_upgrade_are_delivered_beside_delta_ones() {
    let mut influx = Influx::start();
    influx.create_db("plant");
    influx.stop();
    let mut h = Hissrv::start_with(
        &influx.url(),
        Sections {
            influxdb: "  database: plant\n",
            other: "performance:\n  compression:\n    enabled: false\n",
            ..Sections::default()
        },
    );
    assert_eq!(
        h.post(
            "/write?db=plant",
            "m,v=old f=1.25,n=-3i,s=\"a b\" 1\nm,v=old f=-0.0,n=4i,s=\"c\" 2"
        )
        .0,
        204
    );
    h.restart_with(
        &influx.url(),
        Sections {
            influxdb: "  database: plant\n",
            ..Sections::default()
        },
    );
    assert_eq!(
        h.post("/write?db=plant", "m,v=new f=2.5,n=5i,s=\"d\" 3").0,
        204
    );
    let c = rusqlite::Connection::open(h.buffer_path()).unwrap();
    let formats: Vec<i64> = c
        .prepare("SELECT format FROM batches ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        formats,
        vec![1, 2],
        "one plain batch from before, one delta batch"
    );
    influx.restart();
    wait_for("all three points", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == 3
    });
    assert_eq!(
        influx.rows("plant", "SELECT f, n, s, v FROM m"),
        vec![
            r#"[1,1.25,-3,"a b","old"]"#,
            r#"[2,0,4,"c","old"]"#,
            r#"[3,2.5,5,"d","new"]"#,
        ]
    );
}

#[test]
fn inspect_export_and_the_sqlite_views_read_a_live_agents_buffer() {
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let h = Hissrv::start(&nowhere, "");
    let t0 = 1_700_000_000_000_000_000i64;
    let body: String = (0..10)
        .map(|i| format!("meter,id=7 v={}.5 {}\n", i, t0 + i * 1_000_000_000))
        .collect();
    assert_eq!(h.post("/write?db=plant&rp=week", &body).0, 204);
    assert_eq!(h.post("/write?db=other", "x v=1i 5").0, 204);
    let buffer = h.buffer_path();
    let buffer = buffer.to_str().unwrap();

    let (ok, out, err) = hissrv(&["inspect", "--buffer", buffer]);
    assert!(ok, "{err}");
    assert!(out.contains("plant/week: 10 points in 1 batches"), "{out}");
    assert!(
        out.contains("from 2023-11-14T22:13:20Z to 2023-11-14T22:13:29Z"),
        "{out}"
    );
    assert!(out.contains("other: 1 points in 1 batches"), "{out}");

    let (ok, out, err) = hissrv(&[
        "export",
        "--buffer",
        buffer,
        "--destination",
        "plant/week",
        "--since",
        "2023-11-14T22:13:25Z",
        "--until",
        "2023-11-14T22:13:27Z",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        format!(
            "meter,id=7 v=5.5 {}\nmeter,id=7 v=6.5 {}\n",
            t0 + 5_000_000_000,
            t0 + 6_000_000_000
        )
    );

    let c = rusqlite::Connection::open_with_flags(
        h.buffer_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let (db, rp, points): (String, String, i64) = c
        .query_row(
            "SELECT db, rp, points FROM backlog_summary ORDER BY points DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((db.as_str(), rp.as_str(), points), ("plant", "week", 10));

    let (ok, _, err) = hissrv(&["export", "--buffer", "/nonexistent/buffer.db"]);
    assert!(!ok && err.contains("cannot open"), "{err}");
}
