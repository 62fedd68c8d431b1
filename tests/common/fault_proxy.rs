//! A fault proxy in front of a real server: it passes bytes through until
//! told to misbehave the way real links and load balancers do. The mode
//! applies to connections opened after it is set (and a `Pass` set later
//! does not heal a connection already held silent: the agent's timeout must).
//! Stopped on drop.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(u8)]
pub enum Fault {
    /// Bytes pass both ways.
    Pass = 0,
    /// Accepts, reads the request, never answers (a dead backend behind a
    /// load balancer that keeps the connection).
    Blackhole = 1,
    /// Passes the request, then the answer at one byte a second (a 2G modem).
    Trickle = 2,
    /// Passes the first half of what the client sends, then closes both
    /// sides: the link dies in the middle of a request body.
    CutMidBody = 3,
    /// Answers every request itself with `502 Bad Gateway`, never reaching
    /// the server (a load balancer whose backends are all down).
    Storm502 = 4,
}

pub struct FaultProxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
}

impl FaultProxy {
    pub fn start(target_port: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy port");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let mode = Arc::new(AtomicU8::new(Fault::Pass as u8));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let (m, s, n) = (mode.clone(), stop.clone(), connections.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                n.fetch_add(1, Ordering::Relaxed);
                let _ = client.set_nonblocking(false);
                let mode = m.load(Ordering::SeqCst);
                let stop = s.clone();
                std::thread::spawn(move || serve(client, target_port, mode, &stop));
            }
        });
        FaultProxy {
            port,
            mode,
            stop,
            connections,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, fault: Fault) {
        self.mode.store(fault as u8, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut client: TcpStream, target_port: u16, mode: u8, stop: &AtomicBool) {
    let _ = client.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 16384];
    match mode {
        m if m == Fault::Blackhole as u8 => {
            // Read and drop everything until the client gives up.
            while !stop.load(Ordering::Relaxed) {
                match client.read(&mut buf) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => return,
                }
            }
        }
        m if m == Fault::Storm502 as u8 => {
            // One 502 per request head seen (keep-alive kept).
            let mut seen = Vec::new();
            loop {
                match client.read(&mut buf) {
                    Ok(0) => return,
                    Ok(k) => seen.extend_from_slice(&buf[..k]),
                    Err(e) if is_timeout(&e) => {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        continue;
                    }
                    Err(_) => return,
                }
                if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    seen.clear();
                    let answer = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\nConnection: close\r\n\r\nbad gateway";
                    let _ = client.write_all(answer);
                    let _ = client.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
        _ => {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                return;
            };
            let _ = server.set_read_timeout(Some(Duration::from_millis(100)));
            let trickle = mode == Fault::Trickle as u8;
            let cut_after = (mode == Fault::CutMidBody as u8).then_some(());
            let (c2, s2) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            let up = std::thread::spawn(move || copy(c2, s2, false, cut_after.is_some()));
            copy(server, client, trickle, false);
            let _ = up.join();
        }
    }
}

/// Copies until either side closes; `trickle`: one byte a second; `cut_half`:
/// close after passing half of the first read (mid-request).
fn copy(mut from: TcpStream, mut to: TcpStream, trickle: bool, cut_half: bool) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                if cut_half {
                    let _ = to.write_all(&buf[..k / 2]);
                    break;
                }
                if trickle {
                    for b in &buf[..k] {
                        if to.write_all(std::slice::from_ref(b)).is_err() {
                            return;
                        }
                        std::thread::sleep(Duration::from_secs(1));
                    }
                } else if to.write_all(&buf[..k]).is_err() {
                    break;
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
