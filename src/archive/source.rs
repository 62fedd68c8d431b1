//! An archive read back (`hissrv archive ls`, `hissrv restore`): a
//! directory or an S3 bucket, listed as objects with their manifests and
//! read object by object, streamed.

use super::object::{MANIFEST_SUFFIX, Manifest, OBJECT_SUFFIX};
use super::s3::{LiveSettings, S3Target};
use crate::config::{ArchiveTarget, S3Credentials, S3Settings};
use portable_atomic::AtomicU64;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// A manifest's bytes at most: hissrv writes a few hundred; a hostile one
/// (a sparse gigabyte, a link to `/dev/zero`) is not read whole (third
/// review).
pub const MANIFEST_MAX_BYTES: u64 = 64 * 1024;
/// An object fetched to a local file at most (its gzip bytes).
const FETCH_MAX_BYTES: u64 = 4 << 30;

/// Temp files of this process, numbered.
static FETCHED: AtomicU64 = AtomicU64::new(0);

/// An object as a local file: the archive's own (a directory) or a copy
/// fetched whole (S3), removed when dropped. Fetched first, so a slow
/// restore never holds a download open, and checked before any point is
/// sent (third review).
pub struct Local {
    path: PathBuf,
    temp: bool,
}

impl Drop for Local {
    fn drop(&mut self) {
        if self.temp {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Local {
    /// Its bytes are `bytes` long with SHA-256 `sha` (the manifest's), or
    /// an error naming the object.
    pub fn verify(&self, bytes: u64, sha: &str, name: &str) -> Result<(), String> {
        use sha2::Digest;
        let mut f = self.reader(name)?;
        let mut h = sha2::Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut n = 0u64;
        loop {
            let k = f
                .read(&mut buf)
                .map_err(|e| format!("cannot read {name}: {e}"))?;
            if k == 0 {
                break;
            }
            n = n.saturating_add(k as u64);
            h.update(buf.get(..k).unwrap_or(&buf));
        }
        let got = super::object::hex(&h.finalize());
        if n != bytes || got != sha {
            return Err(format!(
                "{name} is damaged ({n} bytes, sha256 {got}; its manifest says {bytes} bytes, {sha}): not sent"
            ));
        }
        Ok(())
    }

    /// Reads it from the start.
    pub fn reader(&self, name: &str) -> Result<std::fs::File, String> {
        std::fs::File::open(&self.path).map_err(|e| format!("cannot read {name}: {e}"))
    }
}

pub enum Source {
    Dir(PathBuf),
    S3(Box<S3Target>),
}

impl Source {
    /// The archive at `url`; an S3 one with the store and keys given.
    pub fn open(url: &str, s3: &S3Settings, keys: &S3Credentials) -> Result<Source, String> {
        Ok(match ArchiveTarget::parse(url)? {
            ArchiveTarget::Dir(root) => Source::Dir(root),
            ArchiveTarget::S3 { bucket, prefix } => {
                // Nothing is spooled when reading; the temp dir is there.
                let t = S3Target::new(
                    &bucket,
                    &prefix,
                    s3,
                    std::env::temp_dir(),
                    Arc::new(Mutex::new(LiveSettings::of(keys.clone(), &s3.tls))),
                )
                .map_err(|e| e.to_string())?;
                Source::S3(Box::new(t))
            }
        })
    }

    /// Every object (its name under the archive) with its manifest, by
    /// name; `None`: no manifest (not whole yet) or an unreadable one.
    pub fn objects(&self) -> Result<Vec<(String, Option<Manifest>)>, String> {
        match self {
            Source::Dir(root) => super::dir::list(root).map_err(|e| e.to_string()),
            Source::S3(t) => {
                let keys = t.list().map_err(|e| e.to_string())?;
                let all: std::collections::HashSet<&str> =
                    keys.iter().map(String::as_str).collect();
                let mut out = Vec::new();
                for k in keys.iter().filter(|k| k.ends_with(OBJECT_SUFFIX)) {
                    let manifest = format!("{k}{MANIFEST_SUFFIX}");
                    // One unreadable manifest is that object's "none", not
                    // the whole listing's failure (third review).
                    let m = all
                        .contains(manifest.as_str())
                        .then(|| {
                            let mut text = String::new();
                            let r = t.open(&manifest).ok()?;
                            r.take(MANIFEST_MAX_BYTES).read_to_string(&mut text).ok()?;
                            miniserde::json::from_str::<Manifest>(&text).ok()
                        })
                        .flatten();
                    out.push((k.clone(), m));
                }
                out.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(out)
            }
        }
    }

    /// Object `name` as a local file (see `Local`).
    pub fn local(&self, name: &str) -> Result<Local, String> {
        match self {
            Source::Dir(root) => {
                let path = root.join(name);
                let meta = std::fs::symlink_metadata(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                if !meta.is_file() {
                    return Err(format!("{}: not a regular file", path.display()));
                }
                Ok(Local { path, temp: false })
            }
            Source::S3(t) => {
                let n = FETCHED.fetch_add(1, Ordering::Relaxed);
                let path = std::env::temp_dir()
                    .join(format!("hissrv-restore-{}-{n}.gz", std::process::id()));
                let local = Local { path, temp: true };
                let mut file = std::fs::File::create(&local.path)
                    .map_err(|e| format!("cannot write {}: {e}", local.path.display()))?;
                let body = t.open(name).map_err(|e| e.to_string())?;
                let copied = std::io::copy(&mut body.take(FETCH_MAX_BYTES + 1), &mut file)
                    .map_err(|e| format!("cannot fetch {name}: {e}"))?;
                if copied > FETCH_MAX_BYTES {
                    return Err(format!(
                        "{name}: larger than {FETCH_MAX_BYTES} bytes; not fetched"
                    ));
                }
                Ok(local)
            }
        }
    }

    /// Where it is, for messages.
    pub fn label(&self) -> String {
        match self {
            Source::Dir(root) => root.display().to_string(),
            Source::S3(t) => t.label().to_string(),
        }
    }
}
