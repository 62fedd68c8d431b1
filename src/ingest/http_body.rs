//! Request bodies: `Content-Length` and chunked framing, `Expect:
//! 100-continue`, gzip (every member), each byte taken from the shared body
//! budget as it arrives. The invariants are stated in `http.rs`; this file
//! holds the code that keeps the body-side ones (checked sizes, linear work,
//! memory only as bytes arrive, the body deadline).

// `super::BodyGuard`, not `crate::…`: benches/http-framing compiles these
// files into a crate of its own.
use super::{
    BodyGuard, Conn, Framing, Head, MAX_CHUNK_LINE_BYTES, MAX_CHUNK_SIZE_DIGITS,
    MAX_DISCARD_BYTES, MAX_HEADER_BYTES, MIN_BODY_ALLOC_BYTES, READ_CHUNK_BYTES, ReadError, after,
};
use smol::io::AsyncWriteExt;
use std::io::Read;

impl<S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin> Conn<S> {
    /// Reads the body of `head` (at most `max_body` bytes before and after
    /// gzip), answering `Expect: 100-continue` first.
    pub async fn read_body(&mut self, head: &Head, max_body: usize) -> Result<Vec<u8>, ReadError> {
        let req = &head.req;
        let expects_continue = req
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        self.deadline = Some(after(self.body_timeout));
        if let Framing::Length(n) = head.framing
            && n > max_body
        {
            if !expects_continue && n <= MAX_DISCARD_BYTES {
                self.discard(n).await?;
            }
            return Err(ReadError::TooLarge);
        }
        let gzip = match req.header("content-encoding").map(str::to_ascii_lowercase) {
            None => false,
            Some(e) if e.is_empty() || e == "identity" => false,
            Some(e) if e == "gzip" => true,
            Some(e) => {
                return Err(ReadError::Bad(format!(
                    "unsupported Content-Encoding {e:?}"
                )));
            }
        };
        if expects_continue {
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
        }
        let mut guard = self.budget.as_ref().map(|b| b.guard());
        let raw = match head.framing {
            Framing::Length(n) => self.read_length(n, &mut guard).await?,
            Framing::Chunked => self.read_chunked(max_body, &mut guard).await?,
        };
        let body = if gzip {
            gunzip(&raw, raw.capacity(), max_body, &mut guard).await?
        } else {
            raw
        };
        self.held = guard;
        self.deadline = None;
        Ok(body)
    }

    /// Reads and drops `n` body bytes.
    async fn discard(&mut self, mut n: usize) -> Result<(), ReadError> {
        loop {
            let take = n.min(self.end.saturating_sub(self.start));
            self.start = self.start.saturating_add(take);
            n = n.saturating_sub(take);
            if n == 0 || self.fill().await? == 0 {
                return Ok(());
            }
        }
    }

    async fn read_length(
        &mut self,
        n: usize,
        guard: &mut Option<BodyGuard>,
    ) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        while body.len() < n {
            if self.start == self.end && self.fill().await? == 0 {
                return Err(ReadError::Bad("connection closed mid-body".into()));
            }
            let take = n
                .saturating_sub(body.len())
                .min(self.end.saturating_sub(self.start));
            let data = self
                .buf
                .get(self.start..self.start.saturating_add(take))
                .unwrap_or_default();
            append(&mut body, data, n, guard, 0).await?;
            self.start = self.start.saturating_add(take);
        }
        Ok(body)
    }

    /// One line of the chunked framing, without its CRLF (or bare LF).
    async fn read_line(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut searched = 0;
        loop {
            let pending = self.pending();
            if let Some(i) = pending
                .get(searched..)
                .and_then(|p| p.iter().position(|&b| b == b'\n'))
            {
                let i = searched.saturating_add(i);
                let line = pending.get(..i).unwrap_or_default();
                let line = line.strip_suffix(b"\r").unwrap_or(line).to_vec();
                self.start = self.start.saturating_add(i).saturating_add(1);
                return Ok(line);
            }
            searched = pending.len();
            if searched > MAX_CHUNK_LINE_BYTES {
                return Err(ReadError::Bad("chunk header too long".into()));
            }
            if self.fill().await? == 0 {
                return Err(ReadError::Bad("connection closed mid-body".into()));
            }
        }
    }

    async fn read_chunked(
        &mut self,
        max_body: usize,
        guard: &mut Option<BodyGuard>,
    ) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size = chunk_size(&line)?;
            if size == 0 {
                // Trailers, up to the empty line, within a head's size.
                let mut trailers = 0usize;
                loop {
                    let t = self.read_line().await?;
                    if t.is_empty() {
                        return Ok(body);
                    }
                    trailers = trailers.saturating_add(t.len());
                    if trailers > MAX_HEADER_BYTES {
                        return Err(ReadError::HeadersTooLarge);
                    }
                }
            }
            if size > max_body.saturating_sub(body.len()) {
                return Err(ReadError::TooLarge);
            }
            let mut left = size;
            while left > 0 {
                if self.start == self.end && self.fill().await? == 0 {
                    return Err(ReadError::Bad("connection closed mid-chunk".into()));
                }
                let take = left.min(self.end.saturating_sub(self.start));
                let data = self
                    .buf
                    .get(self.start..self.start.saturating_add(take))
                    .unwrap_or_default();
                append(&mut body, data, max_body, guard, 0).await?;
                self.start = self.start.saturating_add(take);
                left = left.saturating_sub(take);
            }
            if !self.read_line().await?.is_empty() {
                return Err(ReadError::Bad("chunk data longer than its size".into()));
            }
        }
    }
}

/// Appends `data` to `body` (at most `limit` bytes), growing its allocation
/// geometrically and taking each growth from the budget first; `other` is
/// what this request already holds in other buffers.
async fn append(
    body: &mut Vec<u8>,
    data: &[u8],
    limit: usize,
    guard: &mut Option<BodyGuard>,
    other: usize,
) -> Result<(), ReadError> {
    let need = body
        .len()
        .checked_add(data.len())
        .ok_or(ReadError::TooLarge)?;
    if need > limit {
        return Err(ReadError::TooLarge);
    }
    if need > body.capacity() {
        let cap = need
            .max(body.capacity().saturating_mul(2))
            .max(MIN_BODY_ALLOC_BYTES)
            .min(limit);
        if let Some(g) = guard
            && !g.grow_to(cap.saturating_add(other)).await
        {
            return Err(ReadError::Busy);
        }
        body.reserve_exact(cap.saturating_sub(body.len()));
    }
    body.extend_from_slice(data);
    Ok(())
}

/// The size of a chunk from its line (`1a;ext=x`): hex digits only, checked.
fn chunk_size(line: &[u8]) -> Result<usize, ReadError> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii();
    let bad = || {
        ReadError::Bad(format!(
            "bad chunk size {:?}",
            String::from_utf8_lossy(line)
        ))
    };
    if digits.is_empty() || digits.len() > MAX_CHUNK_SIZE_DIGITS {
        return Err(bad());
    }
    let mut size: u64 = 0;
    for &d in digits {
        let v = (d as char).to_digit(16).ok_or_else(bad)?;
        size = size.checked_mul(16).ok_or_else(bad)? | u64::from(v);
    }
    // A size past the address space is past any body limit.
    usize::try_from(size).map_err(|_| ReadError::TooLarge)
}

/// Every gzip member of `raw`, as InfluxDB reads them, at most `max_body`
/// bytes out; the output grows from the budget like a body does.
async fn gunzip(
    raw: &[u8],
    raw_capacity: usize,
    max_body: usize,
    guard: &mut Option<BodyGuard>,
) -> Result<Vec<u8>, ReadError> {
    let mut decoder = flate2::read::MultiGzDecoder::new(raw);
    let mut out = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        let n = decoder
            .read(&mut chunk)
            .map_err(|e| ReadError::Bad(format!("bad gzip body: {e}")))?;
        if n == 0 {
            return Ok(out);
        }
        let data = chunk.get(..n).unwrap_or_default();
        append(&mut out, data, max_body, guard, raw_capacity).await?;
    }
}
