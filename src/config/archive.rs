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
//!   rules:
//!     - measurement: "telemetry"
//!       cold_storage: "file:///mnt/usb/archive/"
//! ```
//!
//! Targets: `file:///absolute/dir/` (a mounted USB disk, NFS). `s3://` is
//! refused by name until the S3 target is built, rather than accepted and
//! silently not archived.

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
}

impl Default for Archive {
    fn default() -> Self {
        Archive {
            period: "hour".into(),
            max_object_mb: DEFAULT_MAX_OBJECT_MB,
            flush_interval: format!("{}m", DEFAULT_FLUSH_INTERVAL_S / 60),
            max_backoff: format!("{}m", DEFAULT_ARCHIVE_MAX_BACKOFF_S / 60),
        }
    }
}

/// Where archived objects go, parsed from `cold_storage`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArchiveTarget {
    /// A directory (created if missing, with its parents).
    Dir(PathBuf),
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
            return Ok(ArchiveTarget::Dir(PathBuf::from(path)));
        }
        if url.starts_with("s3://") {
            return Err(format!(
                "{url:?}: the S3 target is not built yet (issue \"Data lifecycle, part 2\"); use file:///dir/"
            ));
        }
        Err(format!("{url:?}: give file:///absolute/dir/"))
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
            Ok(ArchiveTarget::Dir("/mnt/usb/a/".into()))
        );
        let rel = ArchiveTarget::parse("file://mnt/usb").unwrap_err();
        assert!(rel.contains("absolute"), "{rel}");
        let s3 = ArchiveTarget::parse("s3://bucket/archive/").unwrap_err();
        assert!(s3.contains("S3 target is not built"), "{s3}");
        assert!(ArchiveTarget::parse("/mnt/usb").is_err());
        assert!(ArchiveTarget::parse("file:///a\nb").is_err());
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
