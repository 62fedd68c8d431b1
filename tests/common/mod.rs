//! Real parts for the integration tests: an InfluxDB 1.6 server (Debian's
//! `influxd`) and VictoriaMetrics on free loopback ports with temp dirs, and the
//! hissrv binary itself. Everything started here is stopped on drop.
#![allow(dead_code)]

pub mod scripted;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first /ping.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a test waits for points to show up upstream.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// A free loopback port, never one handed out before in this process: a
/// test that stops a server and restarts it on its port later must not find
/// that port taken by a parallel test's new server meanwhile.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("hissrv-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ping_ok(url: &str) -> bool {
    agent()
        .get(url)
        .call()
        .map(|r| r.status().is_success())
        .unwrap_or(false)
}

/// InfluxDB 1.6.7 (Debian's package), loopback only, temp dirs.
pub struct Influx {
    pub port: u16,
    dir: TempDir,
    http_extra: String,
    child: Option<Child>,
}

impl Influx {
    pub fn start() -> Influx {
        Influx::start_with("")
    }

    /// With extra lines for influxd's `[http]` section (e.g. `max-body-size`).
    pub fn start_with(http_extra: &str) -> Influx {
        let dir = TempDir::new("influxd");
        let mut s = Influx {
            port: free_port(),
            dir,
            http_extra: http_extra.to_string(),
            child: None,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let conf = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [monitor]\n  store-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n{extra}\
             [continuous_queries]\n  enabled = false\n",
            rpc = free_port(),
            d = d.display(),
            port = self.port,
            extra = self.http_extra,
        );
        std::fs::write(d.join("influxd.conf"), conf).expect("influxd config");
        let log = std::fs::File::create(d.join("influxd.log")).expect("log file");
        let child = Command::new("influxd")
            .arg("-config")
            .arg(d.join("influxd.conf"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("influxd is installed (apt-get install influxdb)");
        self.child = Some(child);
        let url = format!("{}/ping", self.url());
        wait_for("influxd /ping", START_TIMEOUT, || ping_ok(&url));
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops influxd as an operator would (SIGTERM), waiting for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let start = Instant::now();
            while c.try_wait().ok().flatten().is_none() {
                if start.elapsed() > START_TIMEOUT {
                    let _ = c.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn query(&self, db: &str, q: &str) -> miniserde::json::Value {
        let body = agent()
            .get(format!("{}/query", self.url()))
            .query("db", db)
            .query("q", q)
            .query("epoch", "ns")
            .call()
            .expect("query")
            .body_mut()
            .read_to_string()
            .expect("query body");
        miniserde::json::from_str(&body).unwrap_or_else(|_| panic!("bad json: {body}"))
    }

    /// Rows of `SELECT * FROM m`, each as its JSON text (columns sorted by influx).
    /// A query influxd refuses panics (a broken query must not read as "no
    /// rows"); only a database or retention policy that does not exist yet
    /// reads as empty.
    pub fn rows(&self, db: &str, q: &str) -> Vec<String> {
        use miniserde::json::Value;
        let v = self.query(db, q);
        let mut out = Vec::new();
        let text = miniserde::json::to_string(&v);
        let Value::Object(top) = v else {
            panic!("query {q:?}: not an object: {text}")
        };
        if let Some(Value::String(e)) = top.get("error") {
            panic!("query {q:?} refused: {e}");
        }
        let Some(Value::Array(results)) = top.get("results") else {
            panic!("query {q:?}: no results: {text}");
        };
        for r in results {
            let Value::Object(r) = r else { continue };
            if let Some(Value::String(e)) = r.get("error") {
                if e.starts_with("database not found")
                    || e.starts_with("retention policy not found")
                {
                    continue;
                }
                panic!("query {q:?} refused: {e}");
            }
            let Some(Value::Array(series)) = r.get("series") else {
                continue;
            };
            for s in series {
                let Value::Object(s) = s else { continue };
                let Some(Value::Array(values)) = s.get("values") else {
                    continue;
                };
                for row in values {
                    out.push(miniserde::json::to_string(row));
                }
            }
        }
        out
    }

    pub fn count(&self, db: &str, measurement: &str) -> usize {
        self.rows(db, &format!("SELECT * FROM \"{measurement}\""))
            .len()
    }

    pub fn create_db(&self, db: &str) {
        let r = agent()
            .post(format!("{}/query", self.url()))
            .query("q", format!("CREATE DATABASE \"{db}\""))
            .send_empty()
            .expect("create database");
        assert!(r.status().is_success());
    }
}

/// A query to an influxd with auth on, as `user`.
pub fn query_as(influx: &Influx, user: &str, password: &str, q: &str) -> String {
    let mut r = agent()
        .post(format!("{}/query", influx.url()))
        .query("u", user)
        .query("p", password)
        .query("q", q)
        .send_empty()
        .expect("influxd answers");
    r.body_mut().read_to_string().unwrap()
}

/// An influxd with authentication on, an admin `admin`/`adminpw` (its first
/// user must be one) and the database `hissrv`.
pub fn influx_with_auth() -> Influx {
    let influx = Influx::start_with("  auth-enabled = true\n");
    query_as(
        &influx,
        "",
        "",
        "CREATE USER admin WITH PASSWORD 'adminpw' WITH ALL PRIVILEGES",
    );
    let answer = query_as(&influx, "admin", "adminpw", "CREATE DATABASE hissrv");
    assert!(!answer.contains("error"), "{answer}");
    influx
}

impl Drop for Influx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// VictoriaMetrics: a real server that takes `/api/v2/write`.
pub struct Victoria {
    pub port: u16,
    _dir: TempDir,
    child: Child,
}

impl Victoria {
    pub fn start() -> Victoria {
        let dir = TempDir::new("vm");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("vm.log")).expect("log");
        let child = Command::new("victoria-metrics")
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("data").display()
            ))
            .arg("-retentionPeriod=100y")
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("victoria-metrics is installed (apt-get install victoria-metrics)");
        let v = Victoria {
            port,
            _dir: dir,
            child,
        };
        wait_for("victoria-metrics /health", START_TIMEOUT, || {
            ping_ok(&format!("{}/health", v.url()))
        });
        v
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Raw samples of one series, as VictoriaMetrics exports them (JSON lines).
    pub fn export(&self, selector: &str) -> String {
        let _ = agent()
            .get(format!("{}/internal/force_flush", self.url()))
            .call();
        agent()
            .get(format!("{}/api/v1/export", self.url()))
            .query("match[]", selector)
            .call()
            .expect("export")
            .body_mut()
            .read_to_string()
            .expect("export body")
    }
}

impl Drop for Victoria {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Test-specific YAML lines per config section (each indented two spaces;
/// `other` holds whole top-level sections).
#[derive(Default)]
pub struct Sections<'a> {
    pub service: &'a str,
    pub buffer: &'a str,
    pub influxdb: &'a str,
    /// Lines for `retry:` after the tests' fast back-off (50..500 ms).
    pub retry: &'a str,
    pub other: &'a str,
}

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

impl<'a> Sections<'a> {
    /// Only `influxdb:` lines of the test's own.
    pub fn influxdb(lines: &'a str) -> Sections<'a> {
        Sections {
            influxdb: lines,
            ..Sections::default()
        }
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
        let dir = TempDir::new("hissrv");
        let port = free_port();
        let config = Hissrv::config_text(port, dir.path(), upstream, &extra);
        let mut h = Hissrv {
            port,
            dir,
            config,
            child: None,
            env: Vec::new(),
        };
        h.spawn();
        h
    }

    /// [`Hissrv::start_with`], with variables set in the agent's environment.
    pub fn start_with_env(upstream: &str, extra: Sections, env: &[(&str, &str)]) -> Hissrv {
        let dir = TempDir::new("hissrv");
        let port = free_port();
        let config = Hissrv::config_text(port, dir.path(), upstream, &extra);
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

    fn config_text(port: u16, dir: &Path, upstream: &str, extra: &Sections) -> String {
        format!(
            "service:\n  http_listen: \"127.0.0.1:{port}\"\n  udp_listen: \"{}\"\n{}{}{}\
             buffer:\n  path: \"{}\"\n{}\
             retry:\n  initial_backoff_ms: 50\n  max_backoff_ms: 500\n{}\
             influxdb:\n  url: \"{upstream}\"\n{}{}",
            // UDP carries no credentials: off when the test sets auth.
            if extra.service.contains("auth:") {
                String::new()
            } else {
                format!("127.0.0.1:{port}")
            },
            if extra.service.contains("shutdown_timeout_ms") {
                ""
            } else {
                "  shutdown_timeout_ms: 10000\n"
            },
            if extra.service.contains("log_level") {
                ""
            } else {
                "  log_level: debug\n"
            },
            extra.service,
            dir.join("buffer.db").display(),
            extra.buffer,
            extra.retry,
            extra.influxdb,
            extra.other,
        )
    }

    /// Stops this agent (SIGTERM) and starts it again on the same port and
    /// buffer with another config: an upgrade or a reconfiguration.
    pub fn restart_with(&mut self, upstream: &str, extra: Sections) {
        if self.child.is_some() {
            assert!(self.terminate().success());
        }
        self.config = Hissrv::config_text(self.port, self.dir.path(), upstream, &extra);
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
        self.config = Hissrv::config_text(self.port, self.dir.path(), upstream, &extra);
        self.rewrite_raw(&self.config.clone());
    }

    /// Writes any text as the config file (an operator's typo included).
    pub fn rewrite_raw(&self, text: &str) {
        let tmp = self.dir.path().join("hissrv.yaml.tmp");
        std::fs::write(&tmp, text).expect("config");
        std::fs::rename(&tmp, self.dir.path().join("hissrv.yaml")).expect("rename config");
    }

    /// The `/health` document.
    pub fn health(&self) -> hissrv::status::Health {
        let body = self.get("/health");
        miniserde::json::from_str(&body).unwrap_or_else(|_| panic!("bad /health: {body}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    pub fn buffer_path(&self) -> PathBuf {
        self.dir.path().join("buffer.db")
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

/// A TCP proxy in front of a real server that can be told to cut every
/// connection (accept, then close at once, and drop the ones open): the
/// upstream link going down and up under a running agent.
pub struct CuttingProxy {
    pub port: u16,
    /// Every byte clients sent through the proxy, in order (when recording).
    pub sent: Option<std::sync::Arc<std::sync::Mutex<Vec<u8>>>>,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CuttingProxy {
    pub fn start(target_port: u16) -> CuttingProxy {
        CuttingProxy::start_with(target_port, false)
    }

    /// A proxy that also keeps what clients send, to see the order of requests.
    pub fn recording(target_port: u16) -> CuttingProxy {
        CuttingProxy::start_with(target_port, true)
    }

    /// The request lines clients sent (`POST /write?db=… HTTP/1.1`), in order.
    pub fn request_lines(&self) -> Vec<String> {
        let sent = self.sent.as_ref().expect("a recording proxy");
        let bytes = sent.lock().expect("lock").clone();
        let text = String::from_utf8_lossy(&bytes);
        // Bodies (line protocol) end in a bare newline, so split on that.
        text.split('\n')
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| {
                ["GET /", "POST /", "PATCH /"]
                    .iter()
                    .any(|m| l.starts_with(m))
                    && l.ends_with(" HTTP/1.1")
            })
            .map(str::to_string)
            .collect()
    }

    fn start_with(target_port: u16, record: bool) -> CuttingProxy {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy port");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let sent = record.then(|| Arc::new(std::sync::Mutex::new(Vec::new())));
        let (c, s, n) = (cut.clone(), stop.clone(), connections.clone());
        let log = sent.clone();
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                n.fetch_add(1, Ordering::Relaxed);
                if c.load(Ordering::Relaxed) {
                    drop(client);
                    continue;
                }
                let _ = client.set_nonblocking(false);
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                for (i, (mut from, mut to)) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (server, client),
                ]
                .into_iter()
                .enumerate()
                {
                    let c = c.clone();
                    let log = if i == 0 { log.clone() } else { None };
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        use std::io::{Read, Write};
                        loop {
                            let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
                            match from.read(&mut buf) {
                                Ok(0) => break,
                                Ok(k) => {
                                    if let Some(log) = &log {
                                        log.lock().expect("lock").extend_from_slice(&buf[..k]);
                                    }
                                    if c.load(Ordering::Relaxed) || to.write_all(&buf[..k]).is_err()
                                    {
                                        break;
                                    }
                                }
                                Err(e)
                                    if e.kind() == std::io::ErrorKind::WouldBlock
                                        || e.kind() == std::io::ErrorKind::TimedOut =>
                                {
                                    if c.load(Ordering::Relaxed) {
                                        break;
                                    }
                                }
                                Err(_) => break,
                            }
                        }
                        let _ = from.shutdown(std::net::Shutdown::Both);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        CuttingProxy {
            port,
            sent,
            cut,
            stop,
            connections,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_cut(&self, on: bool) {
        self.cut.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.set_cut(true);
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
