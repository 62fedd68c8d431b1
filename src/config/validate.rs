//! Validation of a whole config: every bad value is an error that names its
//! key and says why, before anything starts.

use super::{Config, ConfigError, MAX_BATCH_POINTS_LIMIT, MAX_BODY_LIMIT_MB, invalid};
use std::net::SocketAddr;

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.service;
        if !matches!(
            s.log_level.as_str(),
            "error" | "warn" | "info" | "debug" | "trace"
        ) {
            return Err(invalid(
                "service.log_level",
                format!(
                    "{:?} is not one of error, warn, info, debug, trace",
                    s.log_level
                ),
            ));
        }
        s.http_listen
            .parse::<SocketAddr>()
            .map_err(|e| invalid("service.http_listen", format!("{:?}: {e}", s.http_listen)))?;
        if !s.udp_listen.is_empty() {
            s.udp_listen
                .parse::<SocketAddr>()
                .map_err(|e| invalid("service.udp_listen", format!("{:?}: {e}", s.udp_listen)))?;
        }
        if s.auth.tokens.iter().any(|t| t.is_empty()) {
            return Err(invalid(
                "service.auth.tokens",
                "an empty token would let a request with no credentials in",
            ));
        }
        if let Some(u) = s
            .auth
            .users
            .iter()
            .find(|u| u.username.is_empty() || u.password.is_empty())
        {
            return Err(invalid(
                "service.auth.users",
                format!(
                    "user {:?}: an empty user name or password would let a request with no credentials in",
                    u.username
                ),
            ));
        }
        if !s.udp_listen.is_empty() && !s.auth.is_open() && !s.udp_allow_unauthenticated {
            return Err(invalid(
                "service.udp_listen",
                "UDP datagrams carry no credentials: with service.auth set, turn UDP off \
                 (udp_listen: \"\") or accept unauthenticated datagrams with \
                 service.udp_allow_unauthenticated: true",
            ));
        }
        if !(1..=50).contains(&self.buffer.max_dead_letters_percent) {
            return Err(invalid("buffer.max_dead_letters_percent", "must be 1..=50"));
        }
        if s.max_destinations == 0 {
            return Err(invalid("service.max_destinations", "must be at least 1"));
        }
        if crate::lineproto::Precision::from_param(&s.udp_precision).is_none() {
            return Err(invalid(
                "service.udp_precision",
                format!("{:?} is not one of ns, us, ms, s, m, h", s.udp_precision),
            ));
        }
        if s.max_body_mb == 0 || s.max_body_mb > MAX_BODY_LIMIT_MB {
            return Err(invalid(
                "service.max_body_mb",
                format!("must be 1..={MAX_BODY_LIMIT_MB}"),
            ));
        }
        if s.self_monitoring.enabled && s.self_monitoring.interval_ms < 100 {
            return Err(invalid(
                "service.self_monitoring.interval_ms",
                "must be at least 100",
            ));
        }
        if s.max_inflight_body_mb < s.max_body_mb {
            return Err(invalid(
                "service.max_inflight_body_mb",
                format!("must be at least service.max_body_mb ({})", s.max_body_mb),
            ));
        }
        if s.max_connections == 0 {
            return Err(invalid("service.max_connections", "must be at least 1"));
        }
        let db = &self.influxdb;
        if !(db.url.starts_with("http://") || db.url.starts_with("https://")) {
            return Err(invalid(
                "influxdb.url",
                format!("{:?} must start with http:// or https://", db.url),
            ));
        }
        if db.database.is_empty() {
            return Err(invalid("influxdb.database", "must not be empty"));
        }
        if db.timeout_ms == 0 {
            return Err(invalid("influxdb.timeout_ms", "must be positive"));
        }
        if db.manage_retention && db.api == super::ApiVersion::V2 && db.org.is_empty() {
            return Err(invalid(
                "influxdb.org",
                "manage_retention on 2.x creates buckets in an organization: name it",
            ));
        }
        db.sharding.validate(db)?;
        self.lifecycle.validate()?;
        // hot_days is the upstream retention of the rule's destinations:
        // without manage_retention nothing would set it (accepted and not
        // acted on, which the config never does).
        if let Some(i) = (self.lifecycle.rules.iter()).position(|r| r.hot_days.is_some())
            && !db.manage_retention
        {
            return Err(invalid(
                format!("lifecycle.rules[{i}].hot_days"),
                "sets the retention of the destinations the rule's raw points go to: \
                 needs influxdb.manage_retention: true",
            ));
        }
        if self.buffer.when_full == super::WhenFull::Degrade
            && self.lifecycle.rules.iter().all(|r| r.downsample.is_empty())
        {
            return Err(invalid(
                "buffer.when_full",
                "degrade deletes only raw points the warm tier holds: give a lifecycle rule with downsample",
            ));
        }
        validate_tls("influxdb.tls", &db.tls)?;
        let b = &self.performance.adaptive_batching;
        if b.min_batch_size == 0 {
            return Err(invalid(
                "performance.adaptive_batching.min_batch_size",
                "must be at least 1",
            ));
        }
        if b.max_batch_size < b.min_batch_size || b.max_batch_size > MAX_BATCH_POINTS_LIMIT {
            return Err(invalid(
                "performance.adaptive_batching.max_batch_size",
                format!(
                    "must be between min_batch_size ({}) and {MAX_BATCH_POINTS_LIMIT}",
                    b.min_batch_size
                ),
            ));
        }
        if self.performance.ring_buffer_mb == 0 || self.performance.ring_buffer_mb > 1024 {
            return Err(invalid("performance.ring_buffer_mb", "must be 1..=1024"));
        }
        if self.performance.ring_buffer_mb < s.max_body_mb {
            return Err(invalid(
                "performance.ring_buffer_mb",
                format!(
                    "must be at least service.max_body_mb ({}) so the largest body fits",
                    s.max_body_mb
                ),
            ));
        }
        if self.performance.max_request_mb == 0 || self.performance.max_request_mb > 256 {
            return Err(invalid("performance.max_request_mb", "must be 1..=256"));
        }
        if self.performance.backlog_replay.live_share_percent > 50 {
            return Err(invalid(
                "performance.backlog_replay.live_share_percent",
                "must be 0..=50: live data may not starve the backlog",
            ));
        }
        match self.performance.compression.algorithm.as_str() {
            "delta" | "lz4" | "none" => {}
            a @ ("zstd" | "snappy") => {
                return Err(invalid(
                    "performance.compression.algorithm",
                    format!(
                        "{a:?} is not supported: \"delta\" (columns + lz4) stores telemetry several times smaller than a general-purpose compressor, and \"lz4\" covers the general case without another C library in the agent; use delta, lz4 or none"
                    ),
                ));
            }
            a => {
                return Err(invalid(
                    "performance.compression.algorithm",
                    format!("{a:?} is not one of delta, lz4, none"),
                ));
            }
        }
        if self.buffer.path.as_os_str().is_empty() {
            return Err(invalid("buffer.path", "must not be empty"));
        }
        if self.buffer.max_size_mb == 0 {
            return Err(invalid("buffer.max_size_mb", "must be positive"));
        }
        let r = &self.retry;
        if r.initial_backoff_ms == 0 || r.max_backoff_ms < r.initial_backoff_ms {
            return Err(invalid(
                "retry.max_backoff_ms",
                "need 0 < initial_backoff_ms <= max_backoff_ms",
            ));
        }
        Ok(())
    }
}
/// Largest TLS file accepted (as `tls::MAX_TLS_FILE_BYTES`).
const MAX_TLS_FILE_BYTES: u64 = 1024 * 1024;

/// `influxdb.tls` or `lifecycle.archive.s3.tls` (`at`): the files exist, are
/// readable and hold what their key says (a PEM section of the right kind);
/// the certificates themselves are parsed when the client is made.
pub(super) fn validate_tls(at: &str, t: &super::Tls) -> Result<(), ConfigError> {
    let check = |key: &str, path: &str, marker: &str, what: &str| -> Result<(), ConfigError> {
        if path.is_empty() {
            return Ok(());
        }
        // A regular file of PEM size: a FIFO or a device would block or
        // never end (the full parse is the upstream client's, at load).
        let meta = std::fs::metadata(path)
            .map_err(|e| invalid(key, format!("cannot read {path:?}: {e}")))?;
        if !meta.is_file() || meta.len() > MAX_TLS_FILE_BYTES {
            return Err(invalid(
                key,
                format!("{path:?} is not a regular file of at most {MAX_TLS_FILE_BYTES} bytes"),
            ));
        }
        let text =
            std::fs::read(path).map_err(|e| invalid(key, format!("cannot read {path:?}: {e}")))?;
        if text.windows(10).any(|w| w == b"ENCRYPTED ") {
            return Err(invalid(
                key,
                format!("{path:?} is encrypted: not supported (decrypt it with openssl pkey)"),
            ));
        }
        if !text.windows(marker.len()).any(|w| w == marker.as_bytes()) {
            return Err(invalid(key, format!("{path:?} holds no PEM {what}")));
        }
        Ok(())
    };
    check(
        &format!("{at}.ca_file"),
        &t.ca_file,
        "-----BEGIN CERTIFICATE-----",
        "certificate",
    )?;
    check(
        &format!("{at}.client_cert"),
        &t.client_cert,
        "-----BEGIN CERTIFICATE-----",
        "certificate",
    )?;
    check(
        &format!("{at}.client_key"),
        &t.client_key,
        "PRIVATE KEY-----",
        "private key",
    )?;
    if t.client_cert.is_empty() != t.client_key.is_empty() {
        return Err(invalid(
            format!("{at}.client_key"),
            "client_cert and client_key go together: give both or neither",
        ));
    }
    if t.insecure_skip_verify && !t.ca_file.is_empty() {
        return Err(invalid(
            format!("{at}.insecure_skip_verify"),
            "a ca_file is pointless when nothing is verified: choose one",
        ));
    }
    Ok(())
}
