//! Real parts for the integration tests, one file each: real servers
//! (`influx`: influxd 1.6.7 and VictoriaMetrics), the agent under test
//! (`agent`; its config file: `config`), a link-cutting proxy (`proxy`), a
//! scripted server for answers influxd never gives (`scripted`), small real
//! file systems for disk faults (`disk`), a shifted wall clock for one
//! agent (`clock_shim`), a test PKI and an mTLS front
//! (`tls`), moto's S3 server with authentication (`moto`), and the forwarder's virtual-time
//! harness (`sim`); here the small shared helpers. Everything started is
//! stopped on drop. Each test binary uses a part of it.
#![allow(dead_code, unused_imports)]

mod agent;
pub mod clock_shim;
mod config;
pub mod disk;
pub mod fault_proxy;
mod influx;
pub mod moto;
mod proxy;
pub mod scripted;
pub mod sim;
pub mod tls;
pub use agent::*;
pub use config::{Sections, config_text};
pub use influx::*;
pub use proxy::*;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
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

/// An HTTP client for the tests. Its timeout is a hang detector, not a
/// speed limit: a write that slips into the rings while commits are stalled
/// waits for up to three 10 s busy timeouts (two cuts in the pipeline ahead
/// of its own), longer on a loaded 2-core CI machine.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(90)))
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
