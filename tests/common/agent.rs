//! The hissrv binary under test: a config of the test's making (per-section
//! lines), started on a free port with its buffer in a temp dir, driven by
//! HTTP, signals and its buffer file; killed on drop (its log printed if the
//! test failed).
#![allow(unused_imports)]

use super::config::*;
use super::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A binary and runner chosen by the program itself (the edge benchmark
/// compares builds in one run); takes precedence over the environment.
pub static BINARY: std::sync::Mutex<Option<(String, String)>> = std::sync::Mutex::new(None);

/// The agent binary the tests run: this build's, or another build given as
/// `HISSRV_TEST_BIN` and started through `HISSRV_TEST_RUNNER` (an emulator
/// such as `qemu-aarch64`): how CI runs the ARM builds end to end against the
/// host's real influxd (cross/test-arm.sh).
pub fn hissrv_command() -> Command {
    let chosen = BINARY.lock().ok().and_then(|b| b.clone());
    let (bin, runner) = match chosen {
        Some((bin, runner)) => (Ok(bin), Ok(runner)),
        None => (
            std::env::var("HISSRV_TEST_BIN"),
            std::env::var("HISSRV_TEST_RUNNER"),
        ),
    };
    match (bin, runner) {
        (Ok(bin), Ok(runner)) if !runner.is_empty() => {
            let mut words = runner.split_whitespace();
            let mut c = Command::new(words.next().expect("a runner"));
            c.args(words).arg(bin);
            c
        }
        (Ok(bin), _) => Command::new(bin),
        _ => Command::new(env!("CARGO_BIN_EXE_hissrv")),
    }
}

/// The hissrv binary under test, with a config of the test's making.
pub struct Hissrv {
    pub port: u16,
    pub dir: TempDir,
    config: String,
    child: Option<Child>,
    /// Extra environment for the agent process.
    env: Vec<(String, String)>,
}

impl Hissrv {
    /// `extra` is YAML for the `influxdb:` section (indented two spaces).
    pub fn start(upstream: &str, extra: &str) -> Hissrv {
        Hissrv::start_with(
            upstream,
            Sections {
                influxdb: extra,
                ..Sections::default()
            },
        )
    }

    /// A config that sets the listen port, the buffer path (in a temp dir) and
    /// the upstream URL, plus the test's own lines in each section.
    pub fn start_with(upstream: &str, extra: Sections) -> Hissrv {
        Hissrv::start_with_env(upstream, extra, &[])
    }

    /// [`Hissrv::start_with`], with variables set in the agent's environment.
    pub fn start_with_env(upstream: &str, extra: Sections, env: &[(&str, &str)]) -> Hissrv {
        let dir = TempDir::new("hissrv");
        let port = free_port();
        let config = config_text(port, dir.path(), upstream, &extra);
        let mut h = Hissrv {
            port,
            dir,
            config,
            child: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        h.spawn();
        h
    }

    /// Stops this agent (SIGTERM) and starts it again on the same port and
    /// buffer with another config: an upgrade or a reconfiguration.
    pub fn restart_with(&mut self, upstream: &str, extra: Sections) {
        if self.child.is_some() {
            assert!(self.terminate().success());
        }
        self.config = config_text(self.port, self.dir.path(), upstream, &extra);
        self.spawn();
    }

    pub fn spawn(&mut self) {
        let path = self.dir.path().join("hissrv.yaml");
        std::fs::write(&path, &self.config).expect("config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("hissrv.log"))
            .expect("log");
        let child = hissrv_command()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(["run", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("hissrv binary");
        self.child = Some(child);
        let url = format!("{}/ping", self.url());
        wait_for("hissrv /ping", START_TIMEOUT, || ping_ok(&url));
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Rewrites the config file in place (write + rename, as editors and
    /// config managers do) without restarting: the agent's watch sees it.
    pub fn rewrite_config(&mut self, upstream: &str, extra: Sections) {
        self.config = config_text(self.port, self.dir.path(), upstream, &extra);
        self.rewrite_raw(&self.config.clone());
    }

    /// Writes any text as the config file (an operator's typo included).
    pub fn rewrite_raw(&self, text: &str) {
        let tmp = self.dir.path().join("hissrv.yaml.tmp");
        std::fs::write(&tmp, text).expect("config");
        std::fs::rename(&tmp, self.dir.path().join("hissrv.yaml")).expect("rename config");
    }

    /// The `/health` document.
    pub fn health(&self) -> hissrv::observe::status::Health {
        let body = self.get("/health");
        miniserde::json::from_str(&body).unwrap_or_else(|_| panic!("bad /health: {body}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// The buffer file: the config's `buffer.path`.
    pub fn buffer_path(&self) -> PathBuf {
        let buffer = &self.config[self.config.find("\nbuffer:\n").expect("a buffer section")..];
        let path = buffer
            .lines()
            .find_map(|l| l.trim().strip_prefix("path: "))
            .expect("buffer.path");
        PathBuf::from(path.trim_matches('"'))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hissrv.log")).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    /// Sends `signal` (`TERM`, `INT`, `HUP`) to the agent.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(ok.success(), "kill -{signal}");
    }

    /// Waits for the agent to exit; its status.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        c.wait().expect("exit status")
    }

    /// SIGTERM, and the exit status once it stopped.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        c.wait().expect("exit status")
    }

    /// GETs `path` (e.g. `/health`, `/metrics`); the body text, "" if unreachable.
    pub fn get(&self, path: &str) -> String {
        agent()
            .get(format!("{}{path}", self.url()))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default()
    }

    /// POSTs a body to `path` (with query), returning status and body text.
    pub fn post(&self, path_and_query: &str, body: &str) -> (u16, String) {
        let mut r = agent()
            .post(format!("{}{}", self.url(), path_and_query))
            .send(body)
            .expect("hissrv answers");
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().unwrap_or_default())
    }

    /// A metric without labels from `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        self.get("/metrics")
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics"))
    }

    /// Points still in the buffer file (read-only look, as an operator would).
    pub fn buffered_points(&self) -> i64 {
        let c = rusqlite::Connection::open_with_flags(
            self.buffer_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open buffer");
        c.query_row("SELECT coalesce(sum(points), 0) FROM batches", [], |r| {
            r.get(0)
        })
        .expect("count")
    }
}

impl Drop for Hissrv {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- hissrv log (last lines) ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}
