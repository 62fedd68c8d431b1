//! An archive read back (`hissrv archive ls`, `hissrv restore`): a
//! directory or an S3 bucket, listed as objects with their manifests and
//! read object by object, streamed.

use super::object::{MANIFEST_SUFFIX, Manifest, OBJECT_SUFFIX};
use super::s3::S3Target;
use crate::config::{ArchiveTarget, S3Credentials, S3Settings};
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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
                    Arc::new(Mutex::new(keys.clone())),
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
                    let m = if all.contains(manifest.as_str()) {
                        let mut text = String::new();
                        let mut r = t.open(&manifest).map_err(|e| e.to_string())?;
                        r.read_to_string(&mut text).map_err(|e| e.to_string())?;
                        miniserde::json::from_str::<Manifest>(&text).ok()
                    } else {
                        None
                    };
                    out.push((k.clone(), m));
                }
                out.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(out)
            }
        }
    }

    /// Object `name`'s bytes (gzip), streamed.
    pub fn read(&self, name: &str) -> Result<Box<dyn Read + Send>, String> {
        match self {
            Source::Dir(root) => {
                let path = root.join(name);
                let f = std::fs::File::open(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Ok(Box::new(f))
            }
            Source::S3(t) => t.open(name).map_err(|e| e.to_string()),
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
