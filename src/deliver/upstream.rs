//! The upstream InfluxDB: one blocking write request, and what its answer means.
//!
//! Speaks InfluxDB 1.x (`/write?db=&rp=&precision=ns`, Basic auth) or 2.x
//! (`/api/v2/write?org=&bucket=&precision=ns`, `Authorization: Token`), with
//! gzip bodies and a keep-alive agent. Every answer is classified into an
//! [`Outcome`]; what to do about it is the forwarder's policy.

use crate::config::{ApiVersion, Influxdb};
use crate::route::dest::Destination;
use std::io::Write;
use std::time::Duration;

/// How long asking the server for its time (`/ping`) may take: it is only
/// asked so that expiry can trust our clock, never worth a write timeout.
const PING_TIMEOUT_MS: u64 = 2_000;
/// Enough of an error body to explain it in logs and dead letters.
const MAX_ERROR_BODY_BYTES: u64 = 4096;
/// gzip level of upstream bodies (zlib-rs). Measured on 10,000 meter lines
/// (BENCHMARKS.md, "CPU per point"): level 3 compresses 11.9x at 0.60 µs a
/// line, where miniz_oxide's level 1 (before) gave 4.2x at 0.62 µs; level 1
/// here is 3.6x, level 6 13.8x at 0.76 µs. A gateway's uplink is the
/// scarcer thing, so the level where the bytes stop falling fast.
const UPSTREAM_GZIP_LEVEL: u32 = 3;
/// Answers to management requests (retention policies, bucket lists) are small;
/// this bounds a misbehaving server.
const MAX_MANAGEMENT_BODY_BYTES: u64 = 1024 * 1024;

/// What the server said about one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 2xx: every line was written.
    Written,
    /// 400/422: some or all lines refused for good (parse error, type conflict,
    /// "partial write"); the server kept whatever it could.
    Refused { status: u16, message: String },
    /// 413: the body is too large for the server.
    TooLarge,
    /// 401/403/404: credentials or a missing database; keep the data, retry.
    Misconfigured { status: u16, message: String },
    /// 429/503 with an optional `Retry-After`.
    Throttled {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// Other 5xx, or anything else unexpected: transient.
    ServerError { status: u16, message: String },
    /// Connection refused/reset, timeout, DNS.
    Network(String),
}

/// Where the forwarder sends packs: the real [`Upstream`], or in the
/// forwarder's simulation a scripted server.
pub trait Sink: Send + Sync {
    /// Sends `lines` (line protocol, ns timestamps) to `dest`.
    fn write(&self, dest: &Destination, lines: &[u8]) -> Outcome;
    /// [`Sink::write`] of lines gzip-compressed ahead of the request
    /// ([`gzip_body`], only while `influxdb.gzip` is on): the forwarder
    /// compresses its next pack while the server works on the current one.
    /// (This default, for scripted sinks, decompresses and writes.)
    fn write_zipped(&self, dest: &Destination, zipped: &[u8]) -> Outcome {
        use std::io::Read;
        let mut lines = Vec::new();
        match flate2::read::GzDecoder::new(zipped).read_to_end(&mut lines) {
            Ok(_) => self.write(dest, &lines),
            Err(e) => Outcome::Network(format!("gzip: {e}")),
        }
    }
    /// The server's clock as its last answer's `Date` told it (ns since the
    /// epoch) and when that answer came; `None` before any.
    fn server_time(&self) -> Option<(i64, std::time::Instant)> {
        None
    }
    /// Asks the server for its `Date` (a cheap request) when none is known.
    fn learn_server_time(&self) {}
    /// 1.x: database `db`'s default retention policy, once provisioning
    /// found it; `None` before.
    fn default_policy(&self, _db: &str) -> Option<String> {
        None
    }
    /// `manage_retention`: creates or adjusts the buckets upstream, and
    /// `more` (the warm tier's destinations).
    fn ensure_retention(
        &self,
        db: &Influxdb,
        more: &[crate::deliver::provision::Want],
    ) -> Result<Vec<String>, crate::deliver::provision::ProvisionError>;
}

impl Sink for Upstream {
    fn write(&self, dest: &Destination, lines: &[u8]) -> Outcome {
        Upstream::write(self, dest, Body::Lines(lines))
    }

    fn write_zipped(&self, dest: &Destination, zipped: &[u8]) -> Outcome {
        Upstream::write(self, dest, Body::Zipped(zipped))
    }

    fn server_time(&self) -> Option<(i64, std::time::Instant)> {
        self.server_date.lock().ok().and_then(|d| *d)
    }

    fn learn_server_time(&self) {
        if self.tls_error.is_some() {
            return;
        }
        // Briefly: a silent upstream must not stall the forwarder for a
        // whole write timeout on top of the write's own.
        let url = format!("{}/ping", self.cfg.url.trim_end_matches('/'));
        let answer = self
            .agent
            .get(&url)
            .config()
            .timeout_global(Some(Duration::from_millis(
                PING_TIMEOUT_MS.min(self.cfg.timeout_ms),
            )))
            .build()
            .call();
        if let Ok(resp) = answer {
            self.note_date(resp.headers());
        }
    }

    fn ensure_retention(
        &self,
        db: &Influxdb,
        more: &[crate::deliver::provision::Want],
    ) -> Result<Vec<String>, crate::deliver::provision::ProvisionError> {
        crate::deliver::provision::ensure(self, db, more)
    }

    fn default_policy(&self, db: &str) -> Option<String> {
        self.default_policies.lock().ok()?.get(db).cloned()
    }
}

impl Upstream {
    /// Provisioning found `rp` to be database `db`'s default policy.
    pub fn note_default_policy(&self, db: &str, rp: &str) {
        if let Ok(mut d) = self.default_policies.lock() {
            d.insert(db.to_string(), rp.to_string());
        }
    }
}

pub struct Upstream {
    agent: ureq::Agent,
    cfg: Influxdb,
    /// The server's clock from its last answer's `Date` header, and when.
    server_date: std::sync::Mutex<Option<(i64, std::time::Instant)>>,
    /// Each 1.x database's default retention policy, as provisioning found
    /// it (`provision::ensure`): where points without `rp` go.
    default_policies: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Why `influxdb.tls` cannot be used: every request fails with it (the
    /// data waits) until a reload brings usable files.
    tls_error: Option<String>,
}

impl Upstream {
    pub fn new(cfg: &Influxdb) -> Upstream {
        let (tls, tls_error) = crate::tls::for_client("influxdb.tls", &cfg.tls, "the upstream");
        // No redirects: ureq follows a 301/302/303 to a POST as a GET, and
        // that GET's 200 (a captive portal, a proxy's login page) would read
        // as "written": the batch deleted, delivered nowhere (found by the
        // archive's second review). A 3xx is retried like a 5xx.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_millis(cfg.timeout_ms)))
            .max_idle_connections_per_host(2)
            .user_agent(concat!("hissrv/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build()
            .new_agent();
        Upstream {
            agent,
            cfg: cfg.clone(),
            server_date: std::sync::Mutex::new(None),
            default_policies: std::sync::Mutex::default(),
            tls_error,
        }
    }

    /// Keeps the server's clock from an answer's `Date` header.
    fn note_date(&self, headers: &ureq::http::HeaderMap) {
        let date = headers
            .get("Date")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::clock::parse_http_date);
        if let (Some(ns), Ok(mut slot)) = (date, self.server_date.lock()) {
            *slot = Some((ns, std::time::Instant::now()));
        }
    }

    /// A failed request's error in the operator's terms.
    fn explain(&self, e: ureq::Error) -> String {
        match e {
            ureq::Error::Timeout(_) => format!(
                "no complete answer within influxdb.timeout_ms ({} ms): the upstream or the link is silent or too slow ({e})",
                self.cfg.timeout_ms
            ),
            other => crate::tls::explain(
                other.to_string(),
                self.cfg.url.starts_with("https://"),
                "the upstream",
                "influxdb.tls",
            ),
        }
    }

    /// The `Authorization` header our credentials give, if any.
    fn authorization(&self) -> Option<String> {
        match self.cfg.api {
            ApiVersion::V1 if !self.cfg.username.is_empty() => {
                Some(basic_header(&self.cfg.username, &self.cfg.password))
            }
            ApiVersion::V2 if !self.cfg.token.is_empty() => {
                Some(format!("Token {}", self.cfg.token))
            }
            _ => None,
        }
    }

    /// A management request (1.x `/query`, 2.x `/api/v2/buckets`): the status
    /// and body of the answer, or why there was none.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        json: Option<&str>,
    ) -> Result<(u16, String), String> {
        if let Some(e) = &self.tls_error {
            return Err(e.clone());
        }
        let url = format!("{}{path}", self.cfg.url.trim_end_matches('/'));
        let auth = self.authorization();
        let result = match method {
            "GET" => {
                let mut r = self.agent.get(&url).query_pairs(query.iter().copied());
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            _ => {
                let mut r = match method {
                    "PATCH" => self.agent.patch(&url),
                    _ => self.agent.post(&url),
                }
                .query_pairs(query.iter().copied());
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                match json {
                    Some(body) => r
                        .header("Content-Type", "application/json")
                        .send(body.as_bytes()),
                    None => r.send_empty(),
                }
            }
        };
        let mut resp = result.map_err(|e| self.explain(e))?;
        self.note_date(resp.headers());
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_MANAGEMENT_BODY_BYTES)
            .read_to_string()
            .map_err(|e| e.to_string())?;
        Ok((status, body))
    }

    /// Sends line protocol (ns timestamps) to `dest`: lines (gzip-compressed
    /// here when `influxdb.gzip` is on), or lines compressed ahead.
    pub fn write(&self, dest: &Destination, body: Body<'_>) -> Outcome {
        if let Some(e) = &self.tls_error {
            return Outcome::Network(e.clone());
        }
        let base = self.cfg.url.trim_end_matches('/');
        let mut req = match self.cfg.api {
            ApiVersion::V1 => {
                let mut r = self
                    .agent
                    .post(format!("{base}/write"))
                    .query("db", &dest.db)
                    .query("precision", "ns");
                if !dest.rp.is_empty() {
                    r = r.query("rp", &dest.rp);
                }
                if let Some(a) = self.authorization() {
                    r = r.header("Authorization", a);
                }
                r
            }
            ApiVersion::V2 => {
                let mut r = self
                    .agent
                    .post(format!("{base}/api/v2/write"))
                    .query("org", &self.cfg.org)
                    .query("bucket", dest.bucket())
                    .query("precision", "ns");
                if let Some(a) = self.authorization() {
                    r = r.header("Authorization", a);
                }
                r
            }
        };
        req = req.header("Content-Type", "text/plain; charset=utf-8");
        let result = match body {
            Body::Zipped(z) => req.header("Content-Encoding", "gzip").send(z),
            Body::Lines(lines) if self.cfg.gzip => {
                let zipped = match gzip_body(lines) {
                    Ok(b) => b,
                    Err(e) => return Outcome::Network(format!("gzip: {e}")),
                };
                req.header("Content-Encoding", "gzip").send(&zipped[..])
            }
            Body::Lines(lines) => req.send(lines),
        };
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => return Outcome::Network(self.explain(e)),
        };
        self.note_date(resp.headers());
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let message = resp
            .body_mut()
            .with_config()
            .limit(MAX_ERROR_BODY_BYTES)
            .read_to_string()
            .unwrap_or_default();
        classify(status, message, retry_after)
    }
}

/// A write request's body.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    /// Line protocol, sent as `influxdb.gzip` says.
    Lines(&'a [u8]),
    /// Line protocol compressed by [`gzip_body`] ahead of the request.
    Zipped(&'a [u8]),
}

/// `lines` as the upstream gets them with `influxdb.gzip` on.
pub fn gzip_body(lines: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = gzip_writer(lines.len());
    enc.write_all(lines)?;
    enc.finish()
}

/// A writer that makes a body as [`gzip_body`] does, from pieces (`size`:
/// the lines' bytes, for the output's first allocation).
pub fn gzip_writer(size: usize) -> flate2::write::GzEncoder<Vec<u8>> {
    flate2::write::GzEncoder::new(
        Vec::with_capacity(size / 4),
        flate2::Compression::new(UPSTREAM_GZIP_LEVEL),
    )
}

/// The status policy's first half: what an answer means (see DESIGN's table).
pub fn classify(status: u16, message: String, retry_after: Option<Duration>) -> Outcome {
    let message = message.trim().to_string();
    match status {
        200..=299 => Outcome::Written,
        400 | 422 => Outcome::Refused { status, message },
        413 => Outcome::TooLarge,
        401 | 403 | 404 => Outcome::Misconfigured { status, message },
        // InfluxDB 1.x answers a write to a missing retention policy with 500;
        // it is a missing place, like a missing database, not a server fault.
        500 if message.contains("retention policy not found") => {
            Outcome::Misconfigured { status, message }
        }
        429 | 503 => Outcome::Throttled {
            status,
            retry_after,
        },
        _ => Outcome::ServerError { status, message },
    }
}

/// The `Authorization: Basic` value for a user and password.
pub fn basic_header(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_the_status_policy() {
        assert_eq!(classify(204, String::new(), None), Outcome::Written);
        assert!(matches!(
            classify(400, "partial write".into(), None),
            Outcome::Refused { .. }
        ));
        assert_eq!(classify(413, String::new(), None), Outcome::TooLarge);
        assert!(matches!(
            classify(404, "database not found".into(), None),
            Outcome::Misconfigured { status: 404, .. }
        ));
        assert_eq!(
            classify(503, String::new(), Some(Duration::from_secs(7))),
            Outcome::Throttled {
                status: 503,
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(matches!(
            classify(500, String::new(), None),
            Outcome::ServerError { .. }
        ));
        assert!(matches!(
            classify(
                500,
                "{\"error\":\"retention policy not found: events\"}".into(),
                None
            ),
            Outcome::Misconfigured { status: 500, .. }
        ));
    }
}
