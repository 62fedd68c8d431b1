//! The command line: version, config checking, and the embedded defaults.

mod common;
use common::*;
use std::process::Command;

fn hissrv(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hissrv"))
        .args(args)
        .output()
        .expect("run hissrv")
}

#[test]
fn version_prints_the_crate_version() {
    let out = hissrv(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("hissrv {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_config_prints_the_effective_config_of_the_shipped_example() {
    let out = hissrv(&[
        "check-config",
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/hissrv.yaml"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("http_listen: 127.0.0.1:8186"), "{text}");
    assert!(text.contains("synchronous: full"), "{text}");
}

#[test]
fn check_config_exits_1_naming_the_bad_key_and_hides_secrets() {
    let dir = TempDir::new("cli");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "buffer:\n  max_size_mb: 0\n").unwrap();
    let out = hissrv(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("buffer.max_size_mb: must be positive"),
        "{err}"
    );

    let typo = dir.path().join("typo.yaml");
    std::fs::write(&typo, "influxdb:\n  urll: http://x\n").unwrap();
    let out = hissrv(&["check-config", typo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("urll"));

    let secret = dir.path().join("secret.yaml");
    std::fs::write(&secret, "influxdb:\n  api: v2\n  token: sup3rsecret\n").unwrap();
    let out = hissrv(&["check-config", secret.to_str().unwrap()]);
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(!printed.contains("sup3rsecret"), "{printed}");
    // Redacted, not dropped: the operator sees a token is set.
    assert!(printed.contains("token: <redacted>"), "{printed}");
    assert!(
        printed.contains("api: v2"),
        "the rest is printed: {printed}"
    );
}

#[test]
fn run_on_embedded_defaults_starts_and_buffers_with_no_influxdb_reachable() {
    // The embedded defaults listen on 127.0.0.1:8186 and buffer in ./hissrv-data;
    // run from a temp dir so the buffer lands there.
    let dir = TempDir::new("defaults");
    // The defaults' port is fixed by definition: make sure it is ours to
    // take, so nothing else can answer in the agent's place.
    drop(
        std::net::TcpListener::bind("127.0.0.1:8186")
            .expect("127.0.0.1:8186 (the default port) must be free for this test"),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_hissrv"))
        .arg("run")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = "http://127.0.0.1:8186";
    wait_for("the default listener", DELIVERY_TIMEOUT, || {
        agent().get(format!("{url}/ping")).call().is_ok()
    });
    let r = agent()
        .post(format!("{url}/write"))
        .send("m v=1 1")
        .unwrap();
    assert_eq!(r.status(), 204);
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(child.wait().unwrap().success());
    let c = rusqlite::Connection::open(dir.path().join("hissrv-data/buffer.db")).unwrap();
    let (db, points): (String, i64) = c
        .query_row("SELECT db, points FROM batches", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((db.as_str(), points), ("hissrv", 1));
}

#[test]
fn status_summarises_a_running_agent_and_fails_clearly_without_one() {
    let h = Hissrv::start(&format!("http://127.0.0.1:{}", free_port()), "");
    assert_eq!(h.post("/write?db=d", "m v=1 1\nm v=2 2\nm v=x 3\n").0, 400);
    let mut text = String::new();
    wait_for("the backlog in the summary", DELIVERY_TIMEOUT, || {
        let out = hissrv(&["status", "--url", &h.url()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("backlog      2 points in 1 batches")
    });
    assert!(text.contains("DOWN"), "{text}");
    assert!(
        !text.contains("downsampling"),
        "no rule, no warm tier: {text}"
    );
    assert!(
        text.contains("2 received, 2 stored, 0 delivered, 1 lines rejected"),
        "{text}"
    );
    let last_error = text
        .lines()
        .find_map(|l| l.strip_prefix("last error"))
        .map(str::trim)
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        last_error.contains("refused") || last_error.contains("connect"),
        "the last error names the unreachable upstream: {text}"
    );

    let out = hissrv(&[
        "status",
        "--url",
        &format!("http://127.0.0.1:{}", free_port()),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach hissrv"));
}

#[test]
fn status_inspect_and_export_find_the_agent_and_its_buffer_through_its_config_file() {
    let h = Hissrv::start(
        &format!("http://127.0.0.1:{}", free_port()),
        "  database: plant\n",
    );
    assert_eq!(
        h.post("/write?db=plant", "m,k=a v=1i 1\nm,k=b v=2i 2\n").0,
        204
    );
    let config = h.dir.path().join("hissrv.yaml");
    let config = config.to_str().unwrap();
    let status = hissrv(&["status", "--config", config]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("backlog      2 points in 1 batches"),
        "{text}"
    );
    let inspect = hissrv(&["inspect", "--config", config]);
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(text.contains("plant"), "the destination: {text}");
    let export = hissrv(&["export", "--config", config]);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&export.stdout),
        "m,k=a v=1i 1\nm,k=b v=2i 2\n"
    );
}

#[test]
fn export_goes_on_past_a_damaged_batch_names_it_and_exits_non_zero() {
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let mut h = Hissrv::start(&nowhere, "");
    for (i, line) in ["m v=1i 1", "m v=2i 2", "m v=3i 3"].iter().enumerate() {
        assert_eq!(h.post("/write?db=d", line).0, 204, "write {i}");
    }
    // Stopped, so its forwarder cannot quarantine the batch first.
    assert!(h.terminate().success());
    // The middle batch's payload is damaged on disk.
    let c = rusqlite::Connection::open(h.buffer_path()).unwrap();
    let ids: Vec<i64> = c
        .prepare("SELECT id FROM batches ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ids.len(), 3);
    c.execute(
        "UPDATE batches SET payload = x'ffffffff00', format = 2 WHERE id = ?1",
        [ids[1]],
    )
    .unwrap();
    let buffer = h.buffer_path().display().to_string();
    let out = hissrv(&["export", "--buffer", &buffer]);
    assert!(
        !out.status.success(),
        "damage is reported in the exit status"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "m v=1i 1\nm v=3i 3\n",
        "the batches before and after the damaged one"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("batch {} is damaged and was skipped", ids[1])),
        "{err}"
    );
}
