//! Real servers: InfluxDB 1.6.7 (Debian's `influxd`, optionally with auth)
//! and VictoriaMetrics, on free loopback ports with temp dirs; stopped on drop.
#![allow(unused_imports)]

use super::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// InfluxDB 1.6.7 (Debian's package), loopback only, temp dirs.
pub struct Influx {
    pub port: u16,
    dir: TempDir,
    http_extra: String,
    /// HTTPS: the CA its certificate chains to (helpers trust only it).
    ca: Option<PathBuf>,
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
            ca: None,
            child: None,
        };
        s.spawn();
        s
    }

    /// Over HTTPS only (`https-enabled`), with the PKI's server certificate.
    pub fn start_https(pki: &super::tls::Pki) -> Influx {
        let extra = format!(
            "  https-enabled = true\n  https-certificate = \"{}\"\n  https-private-key = \"{}\"\n",
            pki.path_text("server.pem"),
            pki.path_text("server.key")
        );
        let mut s = Influx {
            port: free_port(),
            dir: TempDir::new("influxd"),
            http_extra: extra,
            ca: Some(pki.file("ca.pem")),
            child: None,
        };
        s.spawn();
        s
    }

    /// The client the helpers use: plain, or trusting only the CA.
    fn client(&self) -> ureq::Agent {
        match &self.ca {
            Some(ca) => super::tls::client_trusting(ca),
            None => agent(),
        }
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
        let client = self.client();
        wait_for("influxd /ping", START_TIMEOUT, || {
            client
                .get(&url)
                .call()
                .is_ok_and(|r| r.status().is_success())
        });
    }

    pub fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
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
        let body = self
            .client()
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

    /// Points of `measurement` with `field`, counted by influxd (for
    /// results too large to list).
    pub fn count_field(&self, db: &str, measurement: &str, field: &str) -> usize {
        let rows = self.rows(
            db,
            &format!("SELECT count(\"{field}\") FROM \"{measurement}\""),
        );
        rows.first().map_or(0, |row| {
            row.trim_matches(|c| c == '[' || c == ']')
                .rsplit(',')
                .next()
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("a count: {row}"))
        })
    }

    /// Runs a statement that changes the server (POST /query).
    pub fn exec(&self, q: &str) {
        let r = self
            .client()
            .post(format!("{}/query", self.url()))
            .query("q", q)
            .send_empty()
            .expect("influxd answers");
        assert!(r.status().is_success(), "{q}: {}", r.status());
    }

    /// Runs a statement that changes `db` (POST /query with `db`).
    pub fn exec_on(&self, db: &str, q: &str) {
        let r = self
            .client()
            .post(format!("{}/query", self.url()))
            .query("db", db)
            .query("q", q)
            .send_empty()
            .expect("influxd answers");
        assert!(r.status().is_success(), "{q}: {}", r.status());
    }

    /// `SHOW RETENTION POLICIES ON db` as (name, duration) pairs.
    pub fn policies(&self, db: &str) -> Vec<(String, String)> {
        self.rows(db, &format!("SHOW RETENTION POLICIES ON \"{db}\""))
            .iter()
            .map(|row| {
                let cols: Vec<String> = row
                    .trim_matches(|c| c == '[' || c == ']')
                    .split(',')
                    .map(|c| c.trim_matches('"').to_string())
                    .collect();
                (cols[0].clone(), cols[1].clone())
            })
            .collect()
    }

    /// The duration of policy `rp` on `db` as influxd spells it (`48h0m0s`).
    pub fn policy_duration(&self, db: &str, rp: &str) -> Option<String> {
        (self.policies(db).into_iter())
            .find(|(n, _)| n == rp)
            .map(|(_, d)| d)
    }

    /// The databases, as `SHOW DATABASES` lists them.
    pub fn databases(&self) -> Vec<String> {
        self.rows("", "SHOW DATABASES")
    }

    pub fn create_db(&self, db: &str) {
        let r = self
            .client()
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
