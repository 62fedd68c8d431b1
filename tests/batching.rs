//! How points are cut into committed batches.

mod common;
use common::*;

fn batches(h: &Hissrv) -> Vec<i64> {
    let c = rusqlite::Connection::open(h.buffer_path()).unwrap();
    let mut s = c.prepare("SELECT points FROM batches ORDER BY id").unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn lines(first: i64, n: i64) -> String {
    (first..first + n)
        .map(|t| format!("m v={t}i {t}\n"))
        .collect()
}

#[test]
fn a_fixed_batcher_holds_points_until_min_batch_size_is_reached() {
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let h = std::sync::Arc::new(Hissrv::start_with(
        &nowhere,
        Sections {
            other: "performance:\n  adaptive_batching:\n    enabled: false\n    min_batch_size: 600\n    max_wait_ms: 600000\n",
            ..Sections::default()
        },
    ));
    let first = {
        let h = h.clone();
        std::thread::spawn(move || h.post("/write?db=d", &lines(0, 300)).0)
    };
    wait_for(
        "the first write to wait in memory",
        DELIVERY_TIMEOUT,
        || {
            agent()
                .get(format!("{}/health", h.url()))
                .call()
                .is_ok_and(|mut r| {
                    r.body_mut()
                        .read_to_string()
                        .unwrap_or_default()
                        .contains("\"ring_points\":300")
                })
        },
    );
    assert!(
        batches(&h).is_empty(),
        "nothing is committed below min_batch_size"
    );
    assert_eq!(h.post("/write?db=d", &lines(300, 300)).0, 204);
    assert_eq!(first.join().unwrap(), 204);
    assert_eq!(batches(&h), vec![600]);
}

#[test]
fn group_commit_commits_a_lone_write_at_once() {
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let h = Hissrv::start(&nowhere, "");
    assert_eq!(h.post("/write?db=d", &lines(0, 3)).0, 204);
    assert_eq!(batches(&h), vec![3]);
}
