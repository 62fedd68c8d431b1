//! One agent per buffer: a second agent on a buffer in use exits at once,
//! naming the first one's PID, before it delivers anything; `inspect` and
//! `export` still read beside the running agent.

mod common;
use common::scripted::{Answer, Scripted};
use common::*;
use std::time::{Duration, Instant};

/// Runs a second agent with `config` and waits for it to end: its exit
/// status and log.
fn second_agent(dir: &TempDir, config: &str) -> (std::process::ExitStatus, String) {
    let path = dir.path().join("second.yaml");
    std::fs::write(&path, config).unwrap();
    let mut child = hissrv_command()
        .args(["run", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > DELIVERY_TIMEOUT {
            let _ = child.kill();
            panic!("the second agent kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status, err)
}

#[test]
fn a_second_agent_on_a_buffer_in_use_exits_at_once_naming_the_first_and_sends_nothing() {
    // The first agent buffers (its upstream is down).
    let first = Hissrv::start(&format!("http://127.0.0.1:{}", free_port()), "");
    assert_eq!(first.post("/write?db=d", "m v=1i 1\nm v=2i 2").0, 204);
    let buffer = format!("  path: \"{}\"\n", first.buffer_path().display());
    let seen_by_second = Scripted::with_script(Vec::<Answer>::new());
    let dir = TempDir::new("second");

    // On another port: refused by the lock, naming the first agent.
    let other_port = config_text(
        free_port(),
        dir.path(),
        &seen_by_second.url(),
        &Sections {
            buffer: &buffer,
            ..Sections::default()
        },
    );
    let (status, err) = second_agent(&dir, &other_port);
    assert!(!status.success());
    assert!(
        err.contains(&format!(
            "is in use by another hissrv (pid {})",
            first.pid()
        )),
        "{err}"
    );

    // The same port too (the same config started twice): still the lock,
    // and nothing was delivered by the second one meanwhile.
    let same_port = config_text(
        first.port,
        dir.path(),
        &seen_by_second.url(),
        &Sections {
            buffer: &buffer,
            ..Sections::default()
        },
    );
    let (status, err) = second_agent(&dir, &same_port);
    assert!(!status.success());
    assert!(err.contains("in use by another hissrv"), "{err}");
    assert!(
        seen_by_second.seen().is_empty(),
        "the second agent sent nothing"
    );

    // The first goes on, and the read-only commands work beside it.
    assert_eq!(first.post("/write?db=d", "m v=3i 3").0, 204);
    assert_eq!(first.buffered_points(), 3);
    let export = hissrv_command()
        .args(["export", "--buffer"])
        .arg(first.buffer_path())
        .output()
        .unwrap();
    assert!(export.status.success());
    assert_eq!(
        String::from_utf8_lossy(&export.stdout).lines().count(),
        3,
        "export reads beside the running agent"
    );
}

#[test]
fn the_lock_of_an_agent_killed_with_minus_nine_does_not_block_its_restart() {
    let mut h = Hissrv::start(&format!("http://127.0.0.1:{}", free_port()), "");
    assert_eq!(h.post("/write?db=d", "m v=1i 1").0, 204);
    h.kill9();
    h.spawn(); // waits for /ping
    assert_eq!(h.buffered_points(), 1);
}
