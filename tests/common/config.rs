//! The config file of the agent under test: the lines every test shares
//! (loopback listeners on its port, its buffer in its temp dir, fast retries,
//! debug logs) and each section's lines of the test's own.

use std::path::Path;

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

impl<'a> Sections<'a> {
    /// Only `influxdb:` lines of the test's own.
    pub fn influxdb(lines: &'a str) -> Sections<'a> {
        Sections {
            influxdb: lines,
            ..Sections::default()
        }
    }
}

/// The config text for an agent on `port` with its files in `dir`.
pub fn config_text(port: u16, dir: &Path, upstream: &str, extra: &Sections) -> String {
    format!(
        "service:\n  http_listen: \"127.0.0.1:{port}\"\n  udp_listen: \"{}\"\n{}{}{}\
         buffer:\n{}{}\
         retry:\n{}{}\
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
        // The temp dir unless the test puts the buffer elsewhere.
        if extra.buffer.contains("path:") {
            String::new()
        } else {
            format!("  path: \"{}\"\n", dir.join("buffer.db").display())
        },
        extra.buffer,
        // Fast retries unless the test sets its own.
        if extra.retry.contains("backoff_ms") {
            ""
        } else {
            "  initial_backoff_ms: 50\n  max_backoff_ms: 500\n"
        },
        extra.retry,
        extra.influxdb,
        extra.other,
    )
}
