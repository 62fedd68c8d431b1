//! HTTP/1.1 server side, just what a write endpoint needs: requests parsed by
//! `httparse`, bodies by `Content-Length` or chunked, `Expect: 100-continue`,
//! gzip bodies (every member, as InfluxDB reads them), keep-alive, and hard
//! limits on time, headers and bodies.
//!
//! A request is read in two steps so that nothing of a body is read before the
//! caller has looked at the head (authentication, size): [`Conn::read_head`],
//! then [`Conn::read_body`].
//!
//! # Invariants (each has a test in `http_tests.rs` and a fuzz target)
//! - Memory: a connection's read buffer holds at most `MAX_HEADER_BYTES` plus
//!   one `READ_CHUNK_BYTES` read; a body, compressed and decompressed, is at
//!   most the body limit, and grows only as its bytes arrive, each growth
//!   taken from the shared [`BodyBudget`] first.
//! - Time: a head must be complete `HEAD_TIMEOUT_SECS` after its first byte,
//!   a body `BODY_TIMEOUT_SECS` after its head; no peer holds a connection
//!   (or budget) longer by sending slowly.
//! - Work: every byte received is looked at a bounded number of times (no
//!   re-parse of a head per byte, no shift of the buffer per chunk), so 1-byte
//!   chunks or 1-byte segments cost linear time.
//! - Arithmetic on peer-given sizes is checked: a size that does not fit is
//!   413 or 400, never a wrap.

use super::budget::{BodyBudget, BodyGuard};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use std::time::{Duration, Instant};

/// Headers larger than this are refused (431); InfluxDB clients send < 1 kB.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Header lines parsed per request.
const MAX_HEADERS: usize = 48;
/// An oversized body sent without `Expect: 100-continue` is read and thrown
/// away up to this size, so the client reads our 413 instead of a reset.
const MAX_DISCARD_BYTES: usize = 64 * 1024 * 1024;
/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// A chunk-size line (hex size plus extensions); clients send under 20 bytes.
const MAX_CHUNK_LINE_BYTES: usize = 1024;
/// Hex digits of a chunk size: 16 already exceed any body limit.
const MAX_CHUNK_SIZE_DIGITS: usize = 16;
/// Decimal digits of a Content-Length: 20 hold u64::MAX.
const MAX_CONTENT_LENGTH_DIGITS: usize = 20;
/// First allocation for a body whose length is not known (chunked, gzip).
const MIN_BODY_ALLOC_BYTES: usize = 16 * 1024;
/// Once a request's first byte arrived its head must be whole within this
/// (slowloris): a real client sends its head in one segment.
pub const HEAD_TIMEOUT_SECS: u64 = 10;
/// A body must arrive whole within this after its head: the default 8 MiB
/// limit at ~140 kB/s, far below any producer on the gateway or its LAN.
pub const BODY_TIMEOUT_SECS: u64 = 60;

#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Decoded (un-chunked, gunzipped) body; empty until [`Conn::read_body`].
    pub body: Vec<u8>,
    pub keep_alive: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter, percent-decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }
}

/// A query component, decoded as HTML forms and InfluxDB's clients encode
/// it: `+` is a space, `%XX` a byte (`percent-encoding`, already in the tree
/// through ureq); a malformed escape stays as sent.
pub fn percent_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection, or stayed idle, between requests.
    Closed,
    Io(std::io::Error),
    /// Malformed request: 400 and close.
    Bad(String),
    /// Headers over `MAX_HEADER_BYTES`: 431 and close.
    HeadersTooLarge,
    /// Body over the limit: 413 and close.
    TooLarge,
    /// Head or body not complete in time: 408 and close.
    Timeout,
    /// No body budget came free in time: 503 and close.
    Busy,
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// How the body of a request is framed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Framing {
    Length(usize),
    Chunked,
}

/// A request whose head is read and whose body is not.
#[derive(Debug)]
pub struct Head {
    pub req: Request,
    pub framing: Framing,
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn json(status: u16, body: String) -> Response {
        let mut r = Response::new(status);
        r.headers
            .push(("Content-Type", "application/json".to_string()));
        r.body = body.into_bytes();
        r
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "",
    }
}

/// One client connection: a stream and the bytes read past the last request.
pub struct Conn<S> {
    pub stream: S,
    /// `buf[start..end]` is read and not yet consumed; `buf.len()` is its
    /// allocated (zeroed once) size.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    budget: Option<std::rc::Rc<BodyBudget>>,
    /// The budget held for the request being handled; released when the
    /// next request starts or the connection ends.
    held: Option<BodyGuard>,
    /// Reads fail with `Timeout` past this.
    deadline: Option<Instant>,
    head_timeout: Duration,
    body_timeout: Duration,
    /// Bytes moved to the front of the buffer so far (the work bound's witness).
    moved_bytes: usize,
}

impl<S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin> Conn<S> {
    pub fn new(stream: S) -> Conn<S> {
        Conn {
            stream,
            buf: Vec::new(),
            start: 0,
            end: 0,
            budget: None,
            held: None,
            deadline: None,
            head_timeout: Duration::from_secs(HEAD_TIMEOUT_SECS),
            body_timeout: Duration::from_secs(BODY_TIMEOUT_SECS),
            moved_bytes: 0,
        }
    }

    /// Other head and body deadlines than `HEAD_TIMEOUT_SECS` and
    /// `BODY_TIMEOUT_SECS` (tests).
    pub fn with_timeouts(mut self, head: Duration, body: Duration) -> Conn<S> {
        self.head_timeout = head;
        self.body_timeout = body;
        self
    }

    /// Gives back the body budget of the request being answered: once its
    /// body has been handled, its answer must not hold memory (a peer that
    /// never reads answers would keep it).
    pub fn release_body_budget(&mut self) {
        self.held = None;
    }

    /// Bytes moved inside the read buffer so far: at most a small multiple
    /// of the bytes received, whatever the peer's segment sizes.
    pub fn moved_bytes(&self) -> usize {
        self.moved_bytes
    }

    pub fn with_budget(stream: S, budget: std::rc::Rc<BodyBudget>) -> Conn<S> {
        Conn {
            budget: Some(budget),
            ..Conn::new(stream)
        }
    }

    fn pending(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// Reads once from the socket (at most `READ_CHUNK_BYTES`) behind the
    /// pending bytes; 0 at end of stream. Moves the pending bytes to the front
    /// only when the free tail is too short, so each byte moves at most a
    /// bounded number of times.
    async fn fill(&mut self) -> Result<usize, ReadError> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        if self.buf.len().saturating_sub(self.end) < READ_CHUNK_BYTES {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.moved_bytes = self
                    .moved_bytes
                    .saturating_add(self.end.saturating_sub(self.start));
                self.end = self.end.saturating_sub(self.start);
                self.start = 0;
            }
            if self.buf.len().saturating_sub(self.end) < READ_CHUNK_BYTES {
                self.buf
                    .resize(self.end.saturating_add(READ_CHUNK_BYTES), 0);
            }
        }
        let end = self.end;
        let Some(space) = self.buf.get_mut(end..end.saturating_add(READ_CHUNK_BYTES)) else {
            return Err(ReadError::Bad("read buffer".into()));
        };
        let read = self.stream.read(space);
        let n = match self.deadline {
            None => read.await?,
            Some(at) => {
                let late = async {
                    smol::Timer::at(at).await;
                    Err(std::io::Error::from(std::io::ErrorKind::TimedOut))
                };
                match smol::future::or(read, late).await {
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                        return Err(ReadError::Timeout);
                    }
                    r => r?,
                }
            }
        };
        self.end = self.end.saturating_add(n);
        Ok(n)
    }

    /// Reads the next request's head. Waits at most `idle` for its first byte
    /// (then `Closed`), and `HEAD_TIMEOUT_SECS` from there for the rest.
    pub async fn read_head(&mut self, idle: Duration) -> Result<Head, ReadError> {
        self.held = None;
        self.deadline = Some(after(idle));
        let mut first_byte = self.start < self.end;
        if first_byte {
            self.deadline = Some(after(self.head_timeout));
        }
        // Parse when the bytes may hold the blank line that ends a head:
        // at first, and after a read that brought a newline.
        let mut may_be_whole = first_byte;
        loop {
            if may_be_whole {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut parsed = httparse::Request::new(&mut headers);
                match parsed.parse(self.pending()) {
                    Ok(httparse::Status::Complete(n)) => {
                        let head = head(&parsed)?;
                        self.start = self.start.saturating_add(n);
                        self.deadline = None;
                        return Ok(head);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(httparse::Error::TooManyHeaders) => return Err(ReadError::HeadersTooLarge),
                    Err(e) => return Err(ReadError::Bad(format!("malformed request: {e}"))),
                }
            }
            if self.end.saturating_sub(self.start) > MAX_HEADER_BYTES {
                return Err(ReadError::HeadersTooLarge);
            }
            let n = match self.fill().await {
                Err(ReadError::Timeout) if !first_byte => return Err(ReadError::Closed),
                r => r?,
            };
            if n == 0 {
                return if first_byte {
                    Err(ReadError::Bad("connection closed mid-request".into()))
                } else {
                    Err(ReadError::Closed)
                };
            }
            if !first_byte {
                first_byte = true;
                self.deadline = Some(after(self.head_timeout));
            }
            may_be_whole = self
                .buf
                .get(self.end.saturating_sub(n)..self.end)
                .is_some_and(|new| new.contains(&b'\n'));
        }
    }

    pub async fn respond(&mut self, resp: &Response, keep_alive: bool) -> std::io::Result<()> {
        use std::fmt::Write;
        let mut head = String::with_capacity(256);
        let _ = write!(
            head,
            "HTTP/1.1 {} {}\r\nContent-Length: {}\r\n",
            resp.status,
            reason(resp.status),
            resp.body.len()
        );
        for (n, v) in &resp.headers {
            let _ = write!(head, "{n}: {v}\r\n");
        }
        if !keep_alive {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&resp.body);
        self.stream.write_all(&out).await?;
        self.stream.flush().await
    }
}

/// `d` from now (now itself if that is past what an `Instant` holds).
fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d).unwrap_or(now)
}

/// Method, target, headers; and the body's framing.
fn head(p: &httparse::Request) -> Result<Head, ReadError> {
    let target = p.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::with_capacity(p.headers.len());
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for h in p.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(h.value).trim().to_string();
        if name == "content-length" {
            let bad = || ReadError::Bad(format!("bad Content-Length {value:?}"));
            if value.is_empty()
                || value.len() > MAX_CONTENT_LENGTH_DIGITS
                || !value.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad());
            }
            // Past the address space is past any body limit: 413, not a wrap.
            let n = value.parse::<usize>().unwrap_or(usize::MAX);
            if content_length.is_some_and(|c| c != n) {
                return Err(ReadError::Bad("conflicting Content-Length headers".into()));
            }
            content_length = Some(n);
        }
        if name == "transfer-encoding" {
            // Only plain chunked framing; anything else cannot be framed safely.
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(ReadError::Bad(format!(
                    "unsupported Transfer-Encoding {value:?}"
                )));
            }
            chunked = true;
        }
        headers.push((name, value));
    }
    let version = p.version.unwrap_or(1);
    let conn = headers
        .iter()
        .find(|(n, _)| n == "connection")
        .map(|(_, v)| v.to_ascii_lowercase());
    let keep_alive = match conn.as_deref() {
        Some(v) if v.contains("close") => false,
        Some(v) if v.contains("keep-alive") => true,
        _ => version == 1,
    };
    // RFC 9112 §6.3: chunked framing wins over a Content-Length.
    let framing = if chunked {
        Framing::Chunked
    } else {
        Framing::Length(content_length.unwrap_or(0))
    };
    Ok(Head {
        req: Request {
            method: p.method.unwrap_or("").to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers,
            body: Vec::new(),
            keep_alive,
        },
        framing,
    })
}

#[path = "http_body.rs"]
mod body;

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
