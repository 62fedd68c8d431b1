//! What a 412 means: an object (or manifest) is already under the name a
//! run writes (`If-None-Match: *`, `s3.rs`). It is read back and compared:
//!
//! - the same lines (decompressed, as a directory target compares: a build
//!   that gzips differently still matches) are this run written before a
//!   crash: the run is confirmed with the object that is there;
//! - anything else is another buffer's object under the same name (a
//!   gateway cloned from this one's disk image shares its buffer id): never
//!   replaced, a conflict for the operator.
//!
//! What is read back is bounded by what this run wrote: a larger object is
//! not ours, and is not read on (a store's answer is input).

use super::S3Target;
use crate::archive::ArchiveError;
use crate::archive::object::{Written, hex};
use crate::archive::part::io;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Bytes of an existing manifest read back: ours are a few hundred.
const MANIFEST_READ_MAX_BYTES: u64 = 64 * 1024;

/// A reader that hashes and counts the raw bytes it passes, and ends (an
/// error) past `limit`.
struct Tee<R> {
    inner: R,
    sha: Sha256,
    bytes: u64,
    limit: u64,
    /// The store's stream itself failed (not what it held).
    broken: bool,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|_| self.broken = true)?;
        self.bytes += n as u64;
        if self.bytes > self.limit {
            return Err(std::io::Error::other("larger than this run's object"));
        }
        self.sha.update(buf.get(..n).unwrap_or(buf));
        Ok(n)
    }
}

/// The sha256 and length of a gzip stream's decompressed content, reading
/// at most `limit` decompressed bytes (`None` past it).
fn content(r: impl Read, limit: u64) -> std::io::Result<Option<(String, u64)>> {
    let mut gz = flate2::read::GzDecoder::new(r).take(limit.saturating_add(1));
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = gz.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        sha.update(buf.get(..n).unwrap_or(&buf));
    }
    Ok((total <= limit).then(|| (hex(&sha.finalize()), total)))
}

impl S3Target {
    /// The object at `key` when it holds the lines of `part` (this run's
    /// spooled object, `written` its figures): the run's figures with the
    /// stored object's bytes and hash. `None`: other lines.
    pub(super) fn existing_object(
        &self,
        key: &str,
        part: &Path,
        written: &Written,
    ) -> Result<Option<Written>, ArchiveError> {
        let what = || format!("read {}", part.display());
        let file = std::fs::File::open(part).map_err(io(what()))?;
        let Some((ours, our_len)) = content(file, u64::MAX).map_err(io(what()))? else {
            return Ok(None);
        };
        let answer = self.get_signed(key, &[]).map_err(read_back_hint)?;
        let mut raw = Tee {
            inner: answer.into_body().into_reader(),
            sha: Sha256::new(),
            bytes: 0,
            // Another gzip of the same lines may be somewhat larger.
            limit: written.bytes.saturating_mul(2).saturating_add(64 * 1024),
            broken: false,
        };
        let cut = |raw: &Tee<_>, e: &std::io::Error| {
            raw.broken || e.kind() == std::io::ErrorKind::UnexpectedEof
        };
        let theirs = match content(&mut raw, our_len) {
            Ok(t) => t,
            // The way to the store failed, or the stream ended early: an
            // error, retried; it says nothing about the lines.
            Err(e) if cut(&raw, &e) => {
                return Err(ArchiveError::Io {
                    what: format!("read back {key}"),
                    source: std::io::Error::other("the read-back was cut short"),
                });
            }
            // Not gzip, or larger than ours: not this run's object.
            Err(_) => return Ok(None),
        };
        if theirs.as_ref() != Some(&(ours, our_len)) {
            return Ok(None);
        }
        // The rest of the raw stream (gzip's trailer), for its hash.
        if let Err(e) = std::io::copy(&mut raw, &mut std::io::sink()) {
            if raw.broken {
                return Err(ArchiveError::Io {
                    what: format!("read back {key}"),
                    source: e,
                });
            }
            return Ok(None);
        }
        log::info!(
            "archive: {key} in {} was there with this run's lines (written before a restart): kept",
            self.label
        );
        Ok(Some(Written {
            bytes: raw.bytes,
            sha256: hex(&raw.sha.finalize()),
            existed: true,
            ..written.clone()
        }))
    }

    /// The manifest at `key` as stored (at most `MANIFEST_READ_MAX_BYTES`
    /// and one: a larger one is not ours, and compares unequal).
    pub(super) fn existing_manifest(&self, key: &str) -> Result<Vec<u8>, ArchiveError> {
        let answer = self.get_signed(key, &[]).map_err(read_back_hint)?;
        let mut out = Vec::new();
        answer
            .into_body()
            .into_reader()
            .take(MANIFEST_READ_MAX_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| ArchiveError::Io {
                what: format!("read back {key}"),
                source: e,
            })?;
        Ok(out)
    }
}

/// A read-back the store refused, with what the keys need: a run written
/// again after a restart reads its object back (review: keys allowed only
/// `s3:PutObject` then fail for ever, the run's batches held).
fn read_back_hint(e: ArchiveError) -> ArchiveError {
    match e {
        ArchiveError::Store {
            target,
            status: 403,
            code,
            message,
        } => ArchiveError::Store {
            target,
            status: 403,
            code,
            message: format!(
                "{message} (reading back an object already there: the keys need s3:GetObject as well as s3:PutObject)"
            ),
        },
        other => other,
    }
}
