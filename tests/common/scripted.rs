//! A small scripted HTTP server, only for the answers a real influxd 1.6.7
//! never gives on demand: 429 and 503 with `Retry-After`, 422, a 500 that
//! never ends. It answers each request with the next answer of its script
//! (then with its default), and records what it was sent. Loopback only;
//! stopped on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One answer: status, extra headers, body.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: &str) -> Answer {
        self.body = body.into();
        self
    }
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub target: String,
    /// Decompressed body.
    pub body: String,
    pub status: u16,
    pub authorization: Option<String>,
}

/// Decides the answer from the request's target and body (after the script
/// ran out).
pub type Rule = Box<dyn Fn(&str, &str) -> Answer + Send + Sync>;

struct State {
    script: Vec<Answer>,
    rule: Rule,
    seen: Vec<Seen>,
}

pub struct Scripted {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Scripted {
    /// Answers with `script` in order, then by `rule`.
    pub fn start(script: Vec<Answer>, rule: Rule) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let state = Arc::new(Mutex::new(State {
            script: script.into_iter().rev().collect(),
            rule,
            seen: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let state = state.clone();
                            std::thread::spawn(move || serve(stream, &state));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Scripted { port, state, stop }
    }

    /// Always 204 after the script.
    pub fn with_script(script: Vec<Answer>) -> Scripted {
        Scripted::start(script, Box::new(|_, _| Answer::status(204)))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state
            .lock()
            .map(|s| s.seen.clone())
            .unwrap_or_default()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let target = line.split(' ').nth(1).unwrap_or("").to_string();
        let (mut length, mut gzip) = (0usize, false);
        let mut authorization = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap_or((h, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "content-encoding" => gzip = value.trim().eq_ignore_ascii_case("gzip"),
                "authorization" => authorization = Some(value.trim().to_string()),
                _ => {}
            }
        }
        let mut raw = vec![0u8; length];
        if reader.read_exact(&mut raw).is_err() {
            return;
        }
        let body = if gzip {
            let mut out = String::new();
            let _ = flate2::read::MultiGzDecoder::new(&raw[..]).read_to_string(&mut out);
            out
        } else {
            String::from_utf8_lossy(&raw).into_owned()
        };
        let answer = {
            let Ok(mut s) = state.lock() else { return };
            let a = match s.script.pop() {
                Some(a) => a,
                None => (s.rule)(&target, &body),
            };
            s.seen.push(Seen {
                at: Instant::now(),
                target,
                body,
                status: a.status,
                authorization,
            });
            a
        };
        let mut out = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
            answer.status,
            answer.body.len()
        );
        for (n, v) in &answer.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&answer.body);
        if writer.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}
