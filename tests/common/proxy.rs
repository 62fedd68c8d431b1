//! A TCP proxy in front of a real server, to cut the link under a running
//! agent (and record what crosses it).
#![allow(unused_imports)]

use super::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
