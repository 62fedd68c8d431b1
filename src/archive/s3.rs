//! The `s3://bucket/prefix/` target: AWS S3 or any S3-compatible store
//! (`lifecycle.archive.s3`). Requests are signed with SigV4 in the
//! `Authorization` header (`sigv4.rs`, the payload's SHA-256 signed too) and
//! sent by our ureq client.
//!
//! An object is written to a part file in the spool directory beside the
//! buffer (`<buffer>-archive/`), synced, then sent in one PUT whose body is
//! streamed from that file (memory: ureq's buffers, never the object). It is
//! confirmed by the store's 200; only then may its batches leave the buffer.
//! S3 shows an object whole or not at all, so no temporary name is needed
//! there. Every object and manifest is PUT with `If-None-Match: *`, so an
//! object already there is never replaced: the store answers 412, and the
//! object is read back (`s3_exists.rs`). The same lines (a run written again
//! after a crash) confirm the run; other lines (another buffer with this
//! buffer's id: a gateway cloned from this one's disk image writes the same
//! names) are a conflict, kept and shown, as on a directory. A store that
//! answers 501 to conditional writes gets unconditional PUTs from then on
//! (logged): there the buffer's random id is all that keeps buffers apart.
//!
//! | the store answers | meaning | hissrv |
//! |---|---|---|
//! | 200 | stored | the object is confirmed |
//! | 412 `PreconditionFailed` | the name is taken | read back: the same lines confirm, other lines are a conflict (kept, shown) |
//! | 403 (`SignatureDoesNotMatch`, `InvalidAccessKeyId`, `RequestTimeTooSkewed`, `AccessDenied`) | keys, rights or clock | kept, back off, shown; a reload with corrected keys applies at the next try |
//! | 404 `NoSuchBucket` | the bucket is missing | kept, back off, shown; created only with `create_bucket: true` |
//! | 5xx, 429, network | the store or the way to it | kept, back off |
//! | other 4xx | a request the store will not take | kept, back off, shown |
//! | TLS refused (certificate, CA, client certificate) | `lifecycle.archive.s3.tls` | kept, back off, shown; a reload with the right files applies at the next try |
//!
//! TLS is the upstream's (`crate::tls`): an `https://` endpoint is verified
//! against `lifecycle.archive.s3.tls.ca_file` (else the built-in roots), and
//! a client certificate is presented when one is given. The client is made
//! again after each applied reload (renewed files under the same names
//! too): the keys and the TLS files are live.

use super::ArchiveError;
use super::object::{Manifest, Written};
use super::part::{PART_SUFFIX, PartFile, io};
use super::sigv4::{Keys, encode_path, sign};
use crate::config::{S3Credentials, S3Settings, Tls};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Connecting to the store gives up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One request gives up after this: an object of `max_object_mb` over a
/// slow uplink (64 MiB of line protocol gzips to a few MiB).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(900);
/// Bytes of an error answer kept for the message.
const ERROR_BODY_MAX_BYTES: u64 = 4_096;

/// Where the TLS settings sit in the config, for messages.
const TLS_KEY: &str = "lifecycle.archive.s3.tls";

/// What a reload changes under running S3 targets (`app/reload.rs`): the
/// keys, and the client TLS made from `lifecycle.archive.s3.tls` when the
/// config was taken (at start, at each applied reload: the files read once,
/// by the same check that accepted them), with a generation bumped each
/// time so that the targets make their client again.
#[derive(Clone, Default)]
pub struct LiveSettings {
    pub keys: S3Credentials,
    pub tls: ClientTls,
    pub generation: u64,
}

/// A client's TLS, made from the files, or why they cannot be used.
#[derive(Clone, Default)]
pub struct ClientTls {
    config: ureq::tls::TlsConfig,
    error: Option<String>,
}

impl ClientTls {
    /// Reads and parses `tls`'s files now (logged when insecure or
    /// unusable).
    pub fn of(tls: &Tls) -> ClientTls {
        let (config, error) = crate::tls::for_client(TLS_KEY, tls, "the S3 store");
        ClientTls { config, error }
    }
}

/// The settings in force, shared with the reloader (live).
pub type LiveS3 = Arc<Mutex<LiveSettings>>;

impl LiveSettings {
    /// `s3`'s live part, its TLS files read now, to share.
    pub fn shared(s3: &S3Settings) -> LiveS3 {
        Arc::new(Mutex::new(LiveSettings::of(
            s3.credentials.clone(),
            &s3.tls,
        )))
    }

    pub fn of(keys: S3Credentials, tls: &Tls) -> LiveSettings {
        LiveSettings {
            keys,
            tls: ClientTls::of(tls),
            generation: 0,
        }
    }
}

/// The client made with a generation of the TLS settings.
struct Client {
    generation: Option<u64>,
    agent: ureq::Agent,
    /// Why the TLS files cannot be used: every request fails with it.
    tls_error: Option<String>,
}

/// Sends a built request with its body.
type SendWith<'a> = dyn Fn(
        ureq::RequestBuilder<ureq::typestate::WithBody>,
    ) -> Result<ureq::http::Response<ureq::Body>, ArchiveError>
    + 'a;

pub struct S3Target {
    /// `http://host:port/base` with no trailing slash, the bucket in it
    /// (virtual host) or not (path style).
    base: String,
    /// The `Host` header (signed).
    host: String,
    /// The path before a key: `/base/bucket` (path style) or `/base`.
    root: String,
    region: String,
    prefix: String,
    label: String,
    spool: PathBuf,
    client: Mutex<Client>,
    live: LiveS3,
    create_bucket: bool,
    /// PUTs carry `If-None-Match: *`; off once the store answered 501.
    conditional: AtomicBool,
}

impl S3Target {
    pub fn new(
        bucket: &str,
        prefix: &str,
        s3: &S3Settings,
        spool: PathBuf,
        live: LiveS3,
    ) -> Result<S3Target, ArchiveError> {
        let endpoint = if s3.endpoint.is_empty() {
            format!("https://s3.{}.amazonaws.com", s3.region)
        } else {
            s3.endpoint.trim_end_matches('/').to_string()
        };
        let (scheme, rest) = endpoint.split_once("://").ok_or_else(|| ArchiveError::Io {
            what: format!("use the S3 endpoint {endpoint}"),
            source: std::io::Error::other("not a URL"),
        })?;
        let (authority, base) = match rest.find('/') {
            Some(i) => (rest.get(..i).unwrap_or(rest), rest.get(i..).unwrap_or("")),
            None => (rest, ""),
        };
        // The Host header ureq sends leaves out the scheme's default port:
        // the signed one must too (second review: `http://store:80` was
        // refused every time).
        let authority = default_port_dropped(scheme, authority);
        let (host, root) = if s3.path_style {
            (authority.to_string(), format!("{base}/{bucket}"))
        } else {
            (format!("{bucket}.{authority}"), base.to_string())
        };
        std::fs::create_dir_all(&spool).map_err(io(format!("create {}", spool.display())))?;
        Ok(S3Target {
            base: format!("{scheme}://{host}"),
            host,
            root,
            region: s3.region.clone(),
            label: format!("s3://{bucket}/{prefix}"),
            prefix: prefix.to_string(),
            spool,
            client: Mutex::new(Client {
                generation: None,
                agent: ureq::Agent::new_with_defaults(),
                tls_error: None,
            }),
            live,
            create_bucket: s3.create_bucket,
            conditional: AtomicBool::new(true),
        })
    }

    /// The client for the TLS settings in force, made again when a reload
    /// changed them; an error while the files cannot be used.
    fn agent(&self) -> Result<ureq::Agent, ArchiveError> {
        let (generation, tls) = match self.live.lock() {
            Ok(l) => (l.generation, l.tls.clone()),
            Err(_) => (0, ClientTls::default()),
        };
        let mut c = self
            .client
            .lock()
            .map_err(|_| io(format!("reach {}", self.label))(std::io::Error::other("poisoned")))?;
        if c.generation != Some(generation) {
            // No redirects: ureq would follow one to a PUT as a GET, and
            // that GET's 200 (a captive portal) would be taken for "stored"
            // (second review). A 3xx is an error like any other but 2xx.
            c.agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_connect(Some(CONNECT_TIMEOUT))
                .timeout_global(Some(REQUEST_TIMEOUT))
                .user_agent(concat!("hissrv/", env!("CARGO_PKG_VERSION")))
                .tls_config(tls.config)
                .build()
                .new_agent();
            c.tls_error = tls.error;
            c.generation = Some(generation);
        }
        match &c.tls_error {
            Some(e) => Err(ArchiveError::Io {
                what: format!("reach {}", self.label),
                source: std::io::Error::other(e.clone()),
            }),
            None => Ok(c.agent.clone()),
        }
    }

    /// Starts object `name` in the spool, under the hash of its key (a
    /// flat name of it can pass 255 bytes: second review).
    pub fn begin(&self, name: &str, db: &str, rp: &str) -> Result<PartFile, ArchiveError> {
        let hash = super::object::hex(&Sha256::digest(name.as_bytes()));
        let part = self
            .spool
            .join(format!("{}{PART_SUFFIX}", hash.get(..32).unwrap_or(&hash)));
        PartFile::create(part, name, db, rp)
    }

    /// Sends the object and, on the store's 200, confirms it.
    pub fn confirm(&self, mut o: PartFile) -> Result<Written, ArchiveError> {
        let written = o.finish()?;
        let path = o.path().to_path_buf();
        let key = format!("{}{}", self.prefix, o.name());
        let put = self.put(&key, "application/gzip", &written.sha256, &|req| {
            let file =
                std::fs::File::open(&path).map_err(io(format!("read {}", path.display())))?;
            req.send(&file).map_err(|e| self.unreachable(e))
        });
        match put {
            Ok(()) => Ok(written),
            Err(ArchiveError::Store { status: 412, .. }) => self
                .existing_object(&key, &path, &written)?
                .ok_or_else(|| ArchiveError::Conflict {
                    object: format!(
                        "{}{} (with its manifest {}{})",
                        self.label,
                        o.name(),
                        o.name(),
                        super::object::MANIFEST_SUFFIX
                    ),
                }),
            Err(e) => Err(e),
        }
    }

    /// PUTs the manifest (`<object>.json`).
    pub fn put_manifest(&self, m: &Manifest) -> Result<(), ArchiveError> {
        let key = format!(
            "{}{}{}",
            self.prefix,
            m.object,
            super::object::MANIFEST_SUFFIX
        );
        let body = miniserde::json::to_string(m) + "\n";
        let sha = super::object::hex(&Sha256::digest(body.as_bytes()));
        let put = self.put(&key, "application/json", &sha, &|req| {
            req.send(body.as_bytes()).map_err(|e| self.unreachable(e))
        });
        match put {
            Err(ArchiveError::Store { status: 412, .. }) => {
                if self.existing_manifest(&key)? == body.as_bytes() {
                    Ok(())
                } else {
                    Err(ArchiveError::Conflict {
                        object: format!(
                            "{}{}{}",
                            self.label,
                            m.object,
                            super::object::MANIFEST_SUFFIX
                        ),
                    })
                }
            }
            other => other,
        }
    }

    /// The request path of `path` under the bucket's root (`""`: the
    /// bucket itself), encoded as sent and signed.
    fn path_of(&self, path: &str) -> String {
        let full = if path.is_empty() {
            self.root.clone()
        } else {
            format!("{}/{path}", self.root)
        };
        let encoded = encode_path(&full);
        if encoded.is_empty() {
            "/".to_string()
        } else {
            encoded
        }
    }

    /// The SigV4 headers of a request (none without a key id: an open
    /// store), with the keys in force now.
    fn signed(&self, method: &str, path: &str, query: &str, sha: &str) -> Vec<(String, String)> {
        let k = (self.live.lock().map(|l| l.keys.resolved())).unwrap_or_default();
        if k.access_key_id.is_empty() {
            return Vec::new();
        }
        let keys = Keys {
            access_key_id: &k.access_key_id,
            secret_access_key: &k.secret_access_key,
            session_token: (!k.session_token.is_empty()).then_some(k.session_token.as_str()),
            region: &self.region,
        };
        let now_s = crate::clock::now_ms().div_euclid(1_000);
        sign(
            &keys,
            method,
            path,
            query,
            &[("host", &self.host)],
            sha,
            now_s,
        )
    }

    /// A signed PUT of `path` under the bucket's root (`""`: the bucket
    /// itself), its body of SHA-256 `sha` sent by `send`; `if_none` asks
    /// the store not to replace an object there (while it takes that).
    fn request(
        &self,
        path: &str,
        content_type: &str,
        sha: &str,
        send: &SendWith,
        if_none: bool,
    ) -> Result<(), ArchiveError> {
        let path = self.path_of(path);
        let mut req = (self.agent()?.put(format!("{}{path}", self.base)))
            .header("content-type", content_type);
        if if_none && self.conditional.load(Relaxed) {
            req = req.header("if-none-match", "*");
        }
        for (name, value) in self.signed("PUT", &path, "", sha) {
            req = req.header(name, value);
        }
        self.judge(send(req)?)
    }

    /// PUTs `key` unless an object is there (412); a missing bucket is
    /// created first when allowed.
    fn put(
        &self,
        key: &str,
        content_type: &str,
        sha: &str,
        send: &SendWith,
    ) -> Result<(), ArchiveError> {
        let first = match self.request(key, content_type, sha, send, true) {
            Err(ArchiveError::Store { status: 501, .. })
                if self.conditional.swap(false, Relaxed) =>
            {
                log::warn!(
                    "archive: {} does not take conditional writes (If-None-Match): objects are \
                     PUT unconditionally from now on, kept apart only by the buffer's id",
                    self.label
                );
                self.request(key, content_type, sha, send, true)
            }
            other => other,
        };
        match first {
            Err(ArchiveError::Store {
                status: 404, code, ..
            }) if code == "NoSuchBucket" && self.create_bucket => {
                self.make_bucket()?;
                self.request(key, content_type, sha, send, true)
            }
            other => other,
        }
    }

    fn make_bucket(&self) -> Result<(), ArchiveError> {
        // us-east-1 takes no location; every other region needs its own.
        let body = if self.region == "us-east-1" {
            String::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.region
            )
        };
        let sha = super::object::hex(&Sha256::digest(body.as_bytes()));
        let result = self.request(
            "",
            "application/xml",
            &sha,
            &|req| req.send(body.as_bytes()).map_err(|e| self.unreachable(e)),
            false,
        );
        match result {
            Ok(()) => {
                log::info!("archive: created the bucket of {}", self.label);
                Ok(())
            }
            // Someone made it meanwhile: as good.
            Err(ArchiveError::Store { code, .. }) if code.starts_with("BucketAlready") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `s3://bucket/prefix/`, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn unreachable(&self, e: ureq::Error) -> ArchiveError {
        let why = crate::tls::explain(
            e.to_string(),
            self.base.starts_with("https://"),
            "the S3 store",
            TLS_KEY,
        );
        ArchiveError::Io {
            what: format!("reach {}", self.label),
            source: std::io::Error::other(why),
        }
    }

    /// 2xx is stored; anything else an error with S3's code and message.
    fn judge(&self, mut answer: ureq::http::Response<ureq::Body>) -> Result<(), ArchiveError> {
        let status = answer.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let text = answer
            .body_mut()
            .with_config()
            .limit(ERROR_BODY_MAX_BYTES)
            .read_to_string()
            .unwrap_or_default();
        let tag = |t: &str| {
            let open = format!("<{t}>");
            let start = text.find(&open)? + open.len();
            let end = text.get(start..)?.find('<')? + start;
            text.get(start..end).map(str::to_string)
        };
        Err(ArchiveError::Store {
            target: self.label.clone(),
            status,
            code: tag("Code").unwrap_or_default(),
            message: tag("Message").unwrap_or_default(),
        })
    }
}

/// `authority` without the port `scheme` has by default (`:80`, `:443`).
fn default_port_dropped<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return authority,
    };
    authority.strip_suffix(default).unwrap_or(authority)
}

#[path = "s3_read.rs"]
pub mod read;

#[path = "s3_exists.rs"]
mod exists;

#[cfg(test)]
#[path = "s3_tests.rs"]
mod tests;
