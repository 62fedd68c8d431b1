//! HTTP/1.1 server side, just what a write endpoint needs: requests parsed by
//! `httparse`, bodies by `Content-Length` or chunked, `Expect: 100-continue`,
//! gzip bodies, keep-alive, and hard limits on headers and bodies.
//!
//! Invariant: no request can make us hold more than `MAX_HEADER_BYTES` of
//! headers plus the configured body limit (compressed and decompressed).

use crate::budget::{BodyBudget, BodyGuard};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use std::io::Read;

/// Headers larger than this are refused (431); InfluxDB clients send < 1 kB.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Header lines parsed per request.
const MAX_HEADERS: usize = 48;
/// An oversized body sent without `Expect: 100-continue` is read and thrown
/// away up to this size, so the client reads our 413 instead of a reset.
const MAX_DISCARD_BYTES: usize = 64 * 1024 * 1024;
/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Decoded (un-chunked, gunzipped) body.
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

pub fn percent_decode(s: &str) -> String {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection between requests.
    Closed,
    Io(std::io::Error),
    /// Malformed request: 400 and close.
    Bad(String),
    /// Headers over `MAX_HEADER_BYTES`: 431 and close.
    HeadersTooLarge,
    /// Body over the limit: 413 and close.
    TooLarge,
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
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
    buf: Vec<u8>,
    budget: Option<std::rc::Rc<BodyBudget>>,
    /// The budget held for the request being handled; released when the
    /// next request starts or the connection ends.
    held: Option<BodyGuard>,
}

impl<S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin> Conn<S> {
    pub fn new(stream: S) -> Conn<S> {
        Conn {
            stream,
            buf: Vec::new(),
            budget: None,
            held: None,
        }
    }

    pub fn with_budget(stream: S, budget: std::rc::Rc<BodyBudget>) -> Conn<S> {
        Conn {
            budget: Some(budget),
            ..Conn::new(stream)
        }
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        self.fill_up_to(READ_CHUNK_BYTES).await
    }

    /// Reads at most `want` more bytes (so a body of known length is read
    /// into a buffer of exactly its size, not a doubled one).
    async fn fill_up_to(&mut self, want: usize) -> std::io::Result<usize> {
        let old = self.buf.len();
        self.buf.resize(old + want.clamp(1, READ_CHUNK_BYTES), 0);
        let n = self.stream.read(&mut self.buf[old..]).await;
        self.buf.truncate(old + *n.as_ref().unwrap_or(&0));
        n
    }

    /// Reads the next request. `max_body` bounds the body before and after gzip.
    pub async fn read_request(&mut self, max_body: usize) -> Result<Request, ReadError> {
        self.held = None;
        let (head_len, mut req, content_length, chunked) = loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let (req, cl, chunked) = head(&parsed)?;
                    break (n, req, cl, chunked);
                }
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => return Err(ReadError::HeadersTooLarge),
                Err(e) => return Err(ReadError::Bad(format!("malformed request: {e}"))),
            }
            if self.buf.len() > MAX_HEADER_BYTES {
                return Err(ReadError::HeadersTooLarge);
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Err(ReadError::Closed)
                } else {
                    Err(ReadError::Bad("connection closed mid-request".into()))
                };
            }
        };
        self.buf.drain(..head_len);
        let expects_continue = req
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        if let Some(n) = content_length.filter(|&n| n > max_body) {
            if !expects_continue && n <= MAX_DISCARD_BYTES {
                self.discard(n).await?;
            }
            return Err(ReadError::TooLarge);
        }
        if let Some(budget) = &self.budget {
            let gzip = req
                .header("content-encoding")
                .is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
            let raw = content_length.unwrap_or(max_body);
            let need = raw + if gzip { max_body } else { 0 };
            self.held = Some(budget.reserve(need).await);
        }
        if expects_continue {
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
        }
        let raw = if chunked {
            self.read_chunked(max_body).await?
        } else {
            let n = content_length.unwrap_or(0);
            self.buf.reserve_exact(n.saturating_sub(self.buf.len()));
            while self.buf.len() < n {
                if self.fill_up_to(n - self.buf.len()).await? == 0 {
                    return Err(ReadError::Bad("connection closed mid-body".into()));
                }
            }
            let rest = self.buf.split_off(n);
            std::mem::replace(&mut self.buf, rest)
        };
        req.body = match req.header("content-encoding").map(str::to_ascii_lowercase) {
            None => raw,
            Some(e) if e == "identity" => raw,
            Some(e) if e == "gzip" => gunzip(&raw, max_body)?,
            Some(e) => {
                return Err(ReadError::Bad(format!(
                    "unsupported Content-Encoding {e:?}"
                )));
            }
        };
        Ok(req)
    }

    /// Reads and drops `n` body bytes.
    async fn discard(&mut self, mut n: usize) -> std::io::Result<()> {
        loop {
            let take = n.min(self.buf.len());
            self.buf.drain(..take);
            n -= take;
            if n == 0 || self.fill().await? == 0 {
                return Ok(());
            }
        }
    }

    async fn read_line(&mut self) -> Result<Vec<u8>, ReadError> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let rest = self.buf.split_off(i + 2);
                let mut line = std::mem::replace(&mut self.buf, rest);
                line.truncate(i);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEADER_BYTES {
                return Err(ReadError::Bad("chunk header too long".into()));
            }
            if self.fill().await? == 0 {
                return Err(ReadError::Bad("connection closed mid-body".into()));
            }
        }
    }

    async fn read_chunked(&mut self, max_body: usize) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size_text = String::from_utf8_lossy(&line);
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| ReadError::Bad(format!("bad chunk size {size_text:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.read_line().await?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > max_body {
                return Err(ReadError::TooLarge);
            }
            while self.buf.len() < size + 2 {
                if self.fill().await? == 0 {
                    return Err(ReadError::Bad("connection closed mid-chunk".into()));
                }
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
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

/// Method, target, headers; and Content-Length / chunked framing.
fn head(p: &httparse::Request) -> Result<(Request, Option<usize>, bool), ReadError> {
    let target = p.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::with_capacity(p.headers.len());
    let mut content_length = None;
    let mut chunked = false;
    for h in p.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(h.value).trim().to_string();
        if name == "content-length" {
            content_length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| ReadError::Bad(format!("bad Content-Length {value:?}")))?,
            );
        }
        if name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked") {
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
    Ok((
        Request {
            method: p.method.unwrap_or("").to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers,
            body: Vec::new(),
            keep_alive,
        },
        content_length,
        chunked,
    ))
}

fn gunzip(raw: &[u8], max_body: usize) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(max_body));
    flate2::read::GzDecoder::new(raw)
        .take(max_body as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ReadError::Bad(format!("bad gzip body: {e}")))?;
    if out.len() > max_body {
        return Err(ReadError::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &[u8], max: usize) -> Result<Request, ReadError> {
        let mut c = Conn::new(smol::io::Cursor::new(raw.to_vec()));
        smol::block_on(c.read_request(max))
    }

    #[test]
    fn a_content_length_body_and_query_are_read() {
        let r = read(
            b"POST /write?db=my%20db&precision=s HTTP/1.1\r\nContent-Length: 5\r\n\r\nm v=1",
            100,
        )
        .unwrap();
        assert_eq!(
            (r.path.as_str(), r.body.as_slice()),
            ("/write", &b"m v=1"[..])
        );
        assert_eq!(r.param("db").as_deref(), Some("my db"));
        assert_eq!(r.param("precision").as_deref(), Some("s"));
        assert!(r.keep_alive);
    }

    #[test]
    fn a_chunked_body_is_reassembled() {
        let r = read(b"POST /write HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nm v\r\n2\r\n=1\r\n0\r\n\r\n", 100).unwrap();
        assert_eq!(r.body, b"m v=1");
    }

    #[test]
    fn a_gzip_body_is_decompressed_and_bounded() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&vec![b'a'; 1000]).unwrap();
        let gz = e.finish().unwrap();
        let mut raw = format!(
            "POST /write HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            gz.len()
        )
        .into_bytes();
        raw.extend_from_slice(&gz);
        assert_eq!(read(&raw, 1000).unwrap().body.len(), 1000);
        assert!(matches!(read(&raw, 999), Err(ReadError::TooLarge)));
    }

    #[test]
    fn an_oversized_body_is_refused_before_it_is_read() {
        let r = read(b"POST /write HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 100);
        assert!(matches!(r, Err(ReadError::TooLarge)));
    }

    #[test]
    fn a_closed_connection_between_requests_is_not_an_error() {
        assert!(matches!(read(b"", 100), Err(ReadError::Closed)));
    }
}
