//! The cold archive's settings (design notes §6): where a rule's raw points
//! are archived (`lifecycle.rules[].cold_storage`, a target URL) and how
//! objects are cut (`lifecycle.archive`). Shape and validation here; the
//! archiver is `crate::archive`.
//!
//! ```yaml
//! lifecycle:
//!   archive:
//!     period: hour           # objects by UTC hour of the points (or day)
//!     max_object_mb: 64      # an object is cut at about this many raw bytes
//!     flush_interval: "10m"  # an open period is written as a part this often
//!     max_backoff: "5m"      # an unwritable target is retried at most this far apart
//!     s3:                    # for s3:// targets
//!       endpoint: ""         # default https://s3.<region>.amazonaws.com; any S3-compatible store
//!       region: "us-east-1"
//!       path_style: false    # bucket in the path (most self-hosted stores), not the host name
//!       access_key_id: ""    # else $AWS_ACCESS_KEY_ID (and the secret, the token likewise)
//!       secret_access_key: ""
//!       session_token: ""
//!       create_bucket: false # a missing bucket is an error unless this
//!       tls:                 # for an https:// endpoint, as influxdb.tls
//!         ca_file: ""        # a private CA's PEM bundle (else the built-in roots)
//!         client_cert: ""    # mutual TLS: PEM certificate and its key
//!         client_key: ""
//!         insecure_skip_verify: false
//!   rules:
//!     - measurement: "telemetry"
//!       cold_storage: "file:///mnt/usb/archive/"   # or "s3://bucket/prefix/"
//! ```
//!
//! Targets: `file:///absolute/dir/` (a mounted USB disk, NFS) and
//! `s3://bucket/prefix/`. The S3 credentials and TLS files are live (a
//! reload with a corrected secret or a renewed certificate uploads the
//! backlog); the rest of `lifecycle` needs a restart.

use super::{ConfigError, invalid, parse_duration_s};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Default raw bytes per object: an hour of a busy gateway (≈ 50 k points a
/// minute at 20 bytes a point stored) is about 60 MB; gzip makes it a few.
pub const DEFAULT_MAX_OBJECT_MB: u64 = 64;
/// The largest object: what one run reads and writes before its batches
/// leave the buffer; more holds the quota longer.
pub const MAX_OBJECT_MB_LIMIT: u64 = 1024;
/// How often an open period is written as a part object, by default (the
/// issue's 10 min): the custody of archived points stays this short.
pub const DEFAULT_FLUSH_INTERVAL_S: u64 = 600;
/// Flush intervals allowed: a second (tests, busy boxes) to a day.
pub const MAX_FLUSH_INTERVAL_S: u64 = 86_400;
/// An unwritable target is retried at most this far apart, by default.
pub const DEFAULT_ARCHIVE_MAX_BACKOFF_S: u64 = 300;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Archive {
    /// `hour` or `day`: the UTC span of point time one object holds.
    pub period: String,
    pub max_object_mb: u64,
    pub flush_interval: String,
    pub max_backoff: String,
    pub s3: S3,
}

/// The S3 store of `s3://` targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3 {
    pub endpoint: String,
    pub region: String,
    pub path_style: bool,
    pub create_bucket: bool,
    /// TLS towards an `https://` endpoint, the keys of `influxdb.tls`.
    pub tls: super::Tls,
    #[serde(flatten)]
    pub credentials: S3Credentials,
}

impl Default for S3 {
    fn default() -> Self {
        S3 {
            endpoint: String::new(),
            region: "us-east-1".into(),
            path_style: false,
            create_bucket: false,
            tls: super::Tls::default(),
            credentials: S3Credentials::default(),
        }
    }
}

/// Keys for S3, as a set: from the config when it names a key id, else all
/// three from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`). Never mixed: a stale token left in the environment
/// signed with long-term keys of the config is refused by AWS every time
/// (second review).
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

/// Never the secret in a log or a printed config.
impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl S3Credentials {
    /// The keys in force: these when they name a key id, else the
    /// environment's.
    pub fn resolved(&self) -> S3Credentials {
        if !self.access_key_id.is_empty() {
            return self.clone();
        }
        self.or_from(|name| std::env::var(name).ok())
    }

    /// The keys of `env` (a variable's value by name), all three.
    fn or_from(&self, env: impl Fn(&str) -> Option<String>) -> S3Credentials {
        S3Credentials {
            access_key_id: env("AWS_ACCESS_KEY_ID").unwrap_or_default(),
            secret_access_key: env("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
            session_token: env("AWS_SESSION_TOKEN").unwrap_or_default(),
        }
    }
}

impl Default for Archive {
    fn default() -> Self {
        Archive {
            period: "hour".into(),
            max_object_mb: DEFAULT_MAX_OBJECT_MB,
            flush_interval: format!("{}m", DEFAULT_FLUSH_INTERVAL_S / 60),
            max_backoff: format!("{}m", DEFAULT_ARCHIVE_MAX_BACKOFF_S / 60),
            s3: S3::default(),
        }
    }
}

/// Where archived objects go, parsed from `cold_storage`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArchiveTarget {
    /// A directory (created if missing, with its parents).
    Dir(PathBuf),
    /// A bucket, and a key prefix ending in `/` (or empty).
    S3 { bucket: String, prefix: String },
}

impl ArchiveTarget {
    /// Parses a `cold_storage` value; the error says what is accepted.
    pub fn parse(url: &str) -> Result<ArchiveTarget, String> {
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "{url:?}: a file:// target needs an absolute path, like file:///mnt/usb/archive/"
                ));
            }
            if path.chars().any(char::is_control) {
                return Err(format!("{url:?}: control characters in the path"));
            }
            if path.split('/').any(|s| s == "..") {
                return Err(format!("{url:?}: give the path without .."));
            }
            // One spelling a directory: `file:///x`, `file:///x/` and
            // `file:////x/./` are one archive (review: two spellings were two
            // targets whose object names collided).
            let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
            return Ok(ArchiveTarget::Dir(PathBuf::from(format!("/{}", segments.join("/")))));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            // S3's bucket naming rules: 3..63 of a-z 0-9 . -
            let ok = (3..=63).contains(&bucket.len())
                && bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
            if !ok {
                return Err(format!(
                    "{url:?}: a bucket name is 3 to 63 of a-z, 0-9, '.' and '-', like s3://plant-archive/hissrv/"
                ));
            }
            if prefix.chars().any(char::is_control) || prefix.starts_with('/') {
                return Err(format!("{url:?}: a key prefix like hissrv/gateway-7/"));
            }
            let prefix = if prefix.is_empty() || prefix.ends_with('/') {
                prefix.to_string()
            } else {
                format!("{prefix}/")
            };
            return Ok(ArchiveTarget::S3 {
                bucket: bucket.to_string(),
                prefix,
            });
        }
        Err(format!("{url:?}: give file:///absolute/dir/ or s3://bucket/prefix/"))
    }
}

impl ArchiveTarget {
    /// The one spelling of a target: the key its duties are stored under.
    pub fn canonical(url: &str) -> Result<String, String> {
        Ok(match ArchiveTarget::parse(url)? {
            ArchiveTarget::Dir(root) => {
                let p = root.display().to_string();
                format!("file://{}/", p.trim_end_matches('/'))
            }
            ArchiveTarget::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        })
    }
}

impl Archive {
    /// Seconds of point time one object spans.
    pub fn period_s(&self) -> Result<u64, ConfigError> {
        match self.period.as_str() {
            "hour" => Ok(3_600),
            "day" => Ok(86_400),
            _ => Err(invalid("lifecycle.archive.period", "hour or day")),
        }
    }

    pub fn max_object_bytes(&self) -> Result<u64, ConfigError> {
        if !(1..=MAX_OBJECT_MB_LIMIT).contains(&self.max_object_mb) {
            return Err(invalid(
                "lifecycle.archive.max_object_mb",
                format!("1..={MAX_OBJECT_MB_LIMIT}"),
            ));
        }
        Ok(self.max_object_mb.saturating_mul(1024 * 1024))
    }

    pub fn flush_interval_s(&self) -> Result<u64, ConfigError> {
        span("lifecycle.archive.flush_interval", &self.flush_interval)
    }

    pub fn max_backoff_s(&self) -> Result<u64, ConfigError> {
        span("lifecycle.archive.max_backoff", &self.max_backoff)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let e = &self.s3.endpoint;
        if !(e.is_empty() || e.starts_with("http://") || e.starts_with("https://")) {
            return Err(invalid(
                "lifecycle.archive.s3.endpoint",
                "an http:// or https:// URL, like https://s3.eu-west-1.amazonaws.com",
            ));
        }
        if self.s3.region.is_empty() || self.s3.region.chars().any(|c| c.is_control() || c == '/') {
            return Err(invalid("lifecycle.archive.s3.region", "a region name, like eu-west-1"));
        }
        super::validate::validate_tls("lifecycle.archive.s3.tls", &self.s3.tls)?;
        self.period_s()?;
        self.max_object_bytes()?;
        self.flush_interval_s()?;
        self.max_backoff_s()?;
        Ok(())
    }
}

fn span(key: &str, text: &str) -> Result<u64, ConfigError> {
    match parse_duration_s(text) {
        Ok(Some(s)) if (1..=MAX_FLUSH_INTERVAL_S).contains(&s) => Ok(s),
        Ok(_) => Err(invalid(key, "give a time from 1s to 1d, like 10m")),
        Err(e) => Err(invalid(key, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_target_needs_an_absolute_path_and_s3_is_refused_by_name() {
        assert_eq!(
            ArchiveTarget::parse("file:///mnt/usb/a/"),
            Ok(ArchiveTarget::Dir("/mnt/usb/a".into()))
        );
        for spelling in ["file:///mnt/usb/a", "file:///mnt//usb/./a/", "file:///mnt/usb/a//"] {
            assert_eq!(
                ArchiveTarget::canonical(spelling).as_deref(),
                Ok("file:///mnt/usb/a/"),
                "{spelling}"
            );
        }
        assert_eq!(ArchiveTarget::canonical("file:///").as_deref(), Ok("file:///"));
        assert_eq!(
            ArchiveTarget::canonical("s3://bucket/x").as_deref(),
            Ok("s3://bucket/x/")
        );
        assert!(ArchiveTarget::parse("file:///mnt/../etc").is_err());
        let rel = ArchiveTarget::parse("file://mnt/usb").unwrap_err();
        assert!(rel.contains("absolute"), "{rel}");
        assert_eq!(
            ArchiveTarget::parse("s3://bucket/archive"),
            Ok(ArchiveTarget::S3 {
                bucket: "bucket".into(),
                prefix: "archive/".into()
            })
        );
        assert_eq!(
            ArchiveTarget::parse("s3://bucket"),
            Ok(ArchiveTarget::S3 {
                bucket: "bucket".into(),
                prefix: String::new()
            })
        );
        for bad in ["s3://B/x/", "s3://ab/", "s3://bucket//x/", "s3://bücket/"] {
            assert!(ArchiveTarget::parse(bad).is_err(), "{bad}");
        }
        assert!(ArchiveTarget::parse("/mnt/usb").is_err());
        assert!(ArchiveTarget::parse("file:///a\nb").is_err());
    }

    #[test]
    fn s3_keys_come_from_the_environment_when_the_config_has_none_and_never_print() {
        let c = S3Credentials {
            access_key_id: "AKIA".into(),
            secret_access_key: "s3cr3t".into(),
            session_token: String::new(),
        };
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert_eq!(c.resolved(), c, "the config's keys, whole");
        let env = |name: &str| Some(format!("env-{name}"));
        let from_env = S3Credentials::default().or_from(env);
        assert_eq!(from_env.access_key_id, "env-AWS_ACCESS_KEY_ID");
        assert_eq!(from_env.session_token, "env-AWS_SESSION_TOKEN");
    }

    #[test]
    fn archive_settings_name_the_bad_key() {
        let bad = |a: Archive| a.validate().unwrap_err().to_string();
        let e = bad(Archive {
            period: "week".into(),
            ..Archive::default()
        });
        assert!(e.contains("lifecycle.archive.period"), "{e}");
        let e = bad(Archive {
            max_object_mb: 0,
            ..Archive::default()
        });
        assert!(e.contains("lifecycle.archive.max_object_mb"), "{e}");
        let e = bad(Archive {
            flush_interval: "0s".into(),
            ..Archive::default()
        });
        assert!(e.contains("lifecycle.archive.flush_interval"), "{e}");
        assert!(Archive::default().validate().is_ok());
        assert_eq!(Archive::default().flush_interval_s().unwrap(), 600);
    }
}
