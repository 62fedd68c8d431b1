//! Where objects go: a directory (`dir.rs`) or an S3 bucket (`s3.rs`), one
//! way to write to either (begin, lines, confirm, manifest).

use super::ArchiveError;
use super::dir::DirTarget;
use super::object::{Manifest, Written};
use super::part::PartFile;
use super::s3::{LiveS3, S3Target};
use crate::config::{ArchiveTarget, Lifecycle};
use std::path::Path;

pub enum Target {
    Dir(DirTarget),
    S3(Box<S3Target>),
}

impl Target {
    /// The target of a `cold_storage` URL; S3 part files are spooled in
    /// `spool`.
    pub fn open(
        url: &str,
        l: &Lifecycle,
        spool: &Path,
        keys: &LiveS3,
    ) -> Result<Target, ArchiveError> {
        let bad = |why: String| ArchiveError::Io {
            what: format!("use {url}"),
            source: std::io::Error::other(why),
        };
        Ok(match ArchiveTarget::parse(url).map_err(bad)? {
            ArchiveTarget::Dir(root) => Target::Dir(DirTarget::new(root)),
            ArchiveTarget::S3 { bucket, prefix } => Target::S3(Box::new(S3Target::new(
                &bucket,
                &prefix,
                &l.archive.s3,
                spool.to_path_buf(),
                keys.clone(),
            )?)),
        })
    }

    pub fn begin(&self, name: &str, db: &str, rp: &str) -> Result<PartFile, ArchiveError> {
        match self {
            Target::Dir(t) => t.begin(name, db, rp),
            Target::S3(t) => t.begin(name, db, rp),
        }
    }

    pub fn confirm(&self, o: PartFile) -> Result<Written, ArchiveError> {
        match self {
            Target::Dir(t) => t.confirm(o),
            Target::S3(t) => t.confirm(o),
        }
    }

    pub fn put_manifest(&self, m: &Manifest) -> Result<(), ArchiveError> {
        match self {
            Target::Dir(t) => t.put_manifest(m),
            Target::S3(t) => t.put_manifest(m),
        }
    }
}

impl Target {
    /// Whether a run may be written now (a directory's root and marker,
    /// `dir.rs`); S3 answers for itself.
    pub fn ready(
        &self,
        wal: &mut crate::wal::Wal,
        url: &str,
        buffer: &str,
    ) -> Result<(), ArchiveError> {
        match self {
            Target::Dir(t) => {
                if t.ready(wal.archive_marked(url)?, buffer)? {
                    wal.mark_archive(url)?;
                }
                Ok(())
            }
            Target::S3(_) => Ok(()),
        }
    }
}
