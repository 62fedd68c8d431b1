//! Configuration: the YAML file, its embedded defaults, and validation.
//!
//! Every key has a default, so `hissrv run` with no file is a working agent
//! (ingest on 127.0.0.1:8186, buffer in `./hissrv-data/buffer.db`, upstream
//! InfluxDB 1.x on 127.0.0.1:8086, database `hissrv`). `config/hissrv.yaml` is the
//! commented reference. Unknown keys and bad values are errors that name the
//! key; a config is validated in full before anything starts.
//!
//! Secrets may come from the environment so they stay out of the file:
//! `HISSRV_INFLUXDB_TOKEN`, `HISSRV_INFLUXDB_USERNAME`, `HISSRV_INFLUXDB_PASSWORD`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// Largest request body we will take, whatever the config says: a body is
/// held in memory while parsed, and gateways have 256 MB.
pub const MAX_BODY_LIMIT_MB: u64 = 256;
/// Largest batch a config may ask for; bounds commit-queue memory.
pub const MAX_BATCH_POINTS_LIMIT: usize = 1_000_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub service: Service,
    pub influxdb: Influxdb,
    pub performance: Performance,
    pub buffer: Buffer,
    pub retry: Retry,
    pub lifecycle: Lifecycle,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Service {
    pub name: String,
    /// error | warn | info | debug | trace
    pub log_level: String,
    /// HTTP ingest (InfluxDB 1.x and 2.x write APIs).
    pub http_listen: String,
    /// UDP line protocol; empty disables it.
    pub udp_listen: String,
    /// Timestamp precision of UDP datagrams (ns, us, ms, s, m, h).
    pub udp_precision: String,
    /// UDP carries no credentials: with `auth` set, UDP must be off unless
    /// the operator accepts unauthenticated datagrams with this.
    pub udp_allow_unauthenticated: bool,
    /// Distinct destinations (db + rp, or bucket) buffered at once; a write
    /// naming one more gets 400, so made-up names cannot exhaust the buffer
    /// or slow delivery for everyone.
    pub max_destinations: usize,
    /// Bodies over this get 413.
    pub max_body_mb: u64,
    /// Request bodies held in memory at once, all connections together.
    pub max_inflight_body_mb: u64,
    /// Connections over this wait in the listen backlog.
    pub max_connections: usize,
    /// Bound on the graceful stop after SIGTERM.
    pub shutdown_timeout_ms: u64,
    /// How often the config file is checked for changes (0: only on SIGHUP).
    pub config_poll_ms: u64,
    pub auth: Auth,
    pub self_monitoring: SelfMonitoring,
}

/// The agent's own metrics written upstream as `hissrv_internal`, through the
/// same durable path as producers' points (like Telegraf's internal plugin).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelfMonitoring {
    pub enabled: bool,
    pub interval_ms: u64,
}

impl Default for SelfMonitoring {
    fn default() -> Self {
        SelfMonitoring {
            enabled: false,
            interval_ms: 10_000,
        }
    }
}

impl Default for Service {
    fn default() -> Self {
        Service {
            name: "hissrv".into(),
            log_level: "info".into(),
            http_listen: "127.0.0.1:8186".into(),
            udp_listen: "127.0.0.1:8186".into(),
            udp_precision: "ns".into(),
            udp_allow_unauthenticated: false,
            max_destinations: 256,
            max_body_mb: 8,
            max_inflight_body_mb: 32,
            max_connections: 64,
            shutdown_timeout_ms: 10_000,
            config_poll_ms: 2_000,
            auth: Auth::default(),
            self_monitoring: SelfMonitoring::default(),
        }
    }
}

/// Ingest authentication: when any token or user is set, writes must carry one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    pub tokens: Vec<String>,
    pub users: Vec<User>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    V1,
    V2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationMode {
    /// Each point goes where its producer named (db/rp or bucket).
    Producer,
    /// Every point goes to `influxdb.database` / `retention_policy`.
    Fixed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Influxdb {
    pub url: String,
    pub api: ApiVersion,
    /// Default database (1.x) or bucket (2.x): used by UDP, by requests that
    /// name none, and by every point when `destination: fixed`.
    pub database: String,
    pub retention_policy: String,
    pub destination: DestinationMode,
    /// 2.x only.
    pub org: String,
    /// 2.x token (or `HISSRV_INFLUXDB_TOKEN`).
    pub token: String,
    /// 1.x credentials (or `HISSRV_INFLUXDB_USERNAME` / `_PASSWORD`).
    pub username: String,
    pub password: String,
    pub timeout_ms: u64,
    /// gzip request bodies upstream.
    pub gzip: bool,
    /// Create the buckets' databases and retention policies (1.x) or buckets
    /// (2.x) upstream, with their retention, at start and after each reload.
    pub manage_retention: bool,
    /// Routing of points into buckets (none when `buckets` is empty).
    pub sharding: Sharding,
    /// TLS towards an `https://` upstream: private CAs, client certificates.
    pub tls: Tls,
}

/// `influxdb.tls`. Empty paths: the built-in Mozilla roots, no client
/// certificate. Files are read when the upstream client is made (at start
/// and on each reload), so renewed certificates need a reload, not a restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tls {
    /// PEM bundle of the CAs to trust instead of the built-in roots.
    pub ca_file: String,
    /// PEM certificate (chain) presented to the server (mutual TLS).
    pub client_cert: String,
    /// The client certificate's PEM private key.
    pub client_key: String,
    /// Lab use only: accept any server certificate. Logged as an error at
    /// start and on each reload while it is on.
    pub insecure_skip_verify: bool,
}

impl Default for Influxdb {
    fn default() -> Self {
        Influxdb {
            url: "http://127.0.0.1:8086".into(),
            api: ApiVersion::V1,
            database: "hissrv".into(),
            retention_policy: String::new(),
            destination: DestinationMode::Producer,
            org: String::new(),
            token: String::new(),
            username: String::new(),
            password: String::new(),
            timeout_ms: 10_000,
            gzip: true,
            manage_retention: false,
            sharding: Sharding::default(),
            tls: Tls::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Performance {
    pub adaptive_batching: AdaptiveBatching,
    /// Memory for points accepted but not yet committed. Full → 503 / UDP drop.
    pub ring_buffer_mb: u64,
    /// Largest upstream request payload (before gzip); stored batches are
    /// packed into requests up to this and `max_batch_size` points.
    pub max_request_mb: u64,
    pub backlog_replay: BacklogReplay,
    pub compression: Compression,
}

/// How batches are stored in the buffer (see `codec`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Compression {
    pub enabled: bool,
    /// delta | lz4 | none
    pub algorithm: String,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            enabled: true,
            algorithm: "delta".into(),
        }
    }
}

impl Default for Performance {
    fn default() -> Self {
        Performance {
            adaptive_batching: AdaptiveBatching::default(),
            ring_buffer_mb: 16,
            max_request_mb: 8,
            backlog_replay: BacklogReplay::default(),
            compression: Compression::default(),
        }
    }
}

/// How a backlog drains while fresh points keep arriving.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BacklogReplay {
    /// Share of upstream requests given to live data while a backlog drains.
    pub live_share_percent: u8,
    /// Batches committed within this window count as live.
    pub live_window_ms: u64,
}

impl Default for BacklogReplay {
    fn default() -> Self {
        BacklogReplay {
            live_share_percent: 25,
            live_window_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveBatching {
    pub enabled: bool,
    pub min_batch_size: usize,
    pub max_batch_size: usize,
    pub max_wait_ms: u64,
}

impl Default for AdaptiveBatching {
    fn default() -> Self {
        AdaptiveBatching {
            enabled: true,
            min_batch_size: 100,
            max_batch_size: 10_000,
            max_wait_ms: 1_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    Full,
    Normal,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Refuse new writes (507) and keep everything stored.
    Reject,
    /// First delete the oldest raw batches whose points the warm tier
    /// holds (`wal/degrade.rs`), counted; refuse (507) only when none is
    /// left. Needs a `lifecycle` rule with `downsample`.
    Degrade,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Buffer {
    pub path: PathBuf,
    pub synchronous: Synchronous,
    /// Quota for the buffer file (stored batches + dead letters).
    pub max_size_mb: u64,
    /// Dead letters may use at most this share of `max_size_mb`; past it the
    /// oldest are removed (counted), so refused lines never fill the buffer.
    pub max_dead_letters_percent: u8,
    pub when_full: WhenFull,
}

impl Default for Buffer {
    fn default() -> Self {
        Buffer {
            path: PathBuf::from("./hissrv-data/buffer.db"),
            synchronous: Synchronous::Full,
            max_size_mb: 1024,
            max_dead_letters_percent: 10,
            when_full: WhenFull::Reject,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retry {
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Cap on a server's `Retry-After`.
    pub max_retry_after_s: u64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            initial_backoff_ms: 500,
            max_backoff_ms: 60_000,
            max_retry_after_s: 300,
        }
    }
}

/// A config that could not be used, with the key and the reason.
#[derive(Debug)]
pub enum ConfigError {
    Read(PathBuf, std::io::Error),
    Syntax(String),
    Invalid { key: String, why: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            ConfigError::Syntax(e) => write!(f, "{e}"),
            ConfigError::Invalid { key, why } => write!(f, "{key}: {why}"),
        }
    }
}

impl std::error::Error for ConfigError {}

fn invalid(key: impl Into<String>, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        why: why.into(),
    }
}

impl Config {
    /// Reads, parses, applies the environment and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
        Config::from_yaml(&text)
    }

    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        let mut cfg: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_norway::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?
        };
        cfg.apply_env(|k| std::env::var(k).ok());
        cfg.validate()?;
        Ok(cfg)
    }

    /// The embedded defaults, with the environment's secrets.
    pub fn embedded() -> Result<Config, ConfigError> {
        Config::from_yaml("")
    }

    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        let db = &mut self.influxdb;
        for (var, slot) in [
            ("HISSRV_INFLUXDB_TOKEN", &mut db.token),
            ("HISSRV_INFLUXDB_USERNAME", &mut db.username),
            ("HISSRV_INFLUXDB_PASSWORD", &mut db.password),
        ] {
            if let Some(v) = get(var) {
                *slot = v;
            }
        }
    }

    /// The effective config as YAML, secrets redacted.
    /// The effective value of one setting by its dotted key
    /// (`buffer.path`), as text: what an init script needs without parsing
    /// YAML itself. Secrets come redacted; sections and unknown keys are
    /// errors.
    pub fn setting(&self, key: &str) -> Result<String, String> {
        let doc: serde_norway::Value =
            serde_norway::from_str(&self.to_redacted_yaml()).map_err(|e| e.to_string())?;
        let mut v = &doc;
        for part in key.split('.') {
            v = v
                .get(part)
                .ok_or_else(|| format!("no setting {key} (at {part})"))?;
        }
        match v {
            serde_norway::Value::String(s) => Ok(s.clone()),
            serde_norway::Value::Number(n) => Ok(n.to_string()),
            serde_norway::Value::Bool(b) => Ok(b.to_string()),
            serde_norway::Value::Null => Ok(String::new()),
            _ => Err(format!("{key} is a section, not a setting")),
        }
    }

    pub fn to_redacted_yaml(&self) -> String {
        let mut c = self.clone();
        let s3 = &mut c.lifecycle.archive.s3.credentials;
        for secret in [
            &mut c.influxdb.token,
            &mut c.influxdb.password,
            &mut s3.secret_access_key,
            &mut s3.session_token,
        ] {
            if !secret.is_empty() {
                *secret = "<redacted>".into();
            }
        }
        c.service
            .auth
            .tokens
            .iter_mut()
            .for_each(|t| *t = "<redacted>".into());
        for u in &mut c.service.auth.users {
            u.password = "<redacted>".into();
        }
        serde_norway::to_string(&c).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

input_facing! {
    #[path = "sharding.rs"]
    mod sharding;
}
pub use sharding::{Bucket, Sharding, Strategy, parse_duration_s, parse_id_range};

input_facing! {
    #[path = "archive.rs"]
    mod archive;
}
pub use archive::{Archive, ArchiveTarget, S3 as S3Settings, S3Credentials};

input_facing! {
    #[path = "lifecycle.rs"]
    mod lifecycle;
}
pub use lifecycle::{
    AGGREGATE_NAMES, DEFAULT_CHECKPOINT_INTERVAL_S, DEFAULT_RP, Days, Lifecycle,
    Rule as LifecycleRule,
};

#[path = "validate.rs"]
mod validate;

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
