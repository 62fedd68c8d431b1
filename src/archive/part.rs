//! An object being written to a local file (`<name>.part`): in the target
//! directory for `file://`, in the spool directory beside the buffer for
//! `s3://`. Dropped unconfirmed (a failed write, a run given up), its file
//! goes with it: a full disk is not left fuller. A name ending in `.part`
//! never ends in `.gz`, so no reader takes it for an object.

use super::ArchiveError;
use super::object::{ObjectWriter, Written};
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// The suffix of an object being written.
pub const PART_SUFFIX: &str = ".part";
/// Bytes buffered before a write reaches the file.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

pub fn io(what: String) -> impl FnOnce(std::io::Error) -> ArchiveError {
    move |source| ArchiveError::Io { what, source }
}

pub struct PartFile {
    name: String,
    part: PathBuf,
    writer: Option<ObjectWriter<BufWriter<File>>>,
}

impl Drop for PartFile {
    fn drop(&mut self) {
        // Renamed away once confirmed: then there is nothing to remove.
        let _ = fs::remove_file(&self.part);
    }
}

impl PartFile {
    /// Starts object `name` of destination `db`/`rp` in the file `part`.
    pub fn create(part: PathBuf, name: &str, db: &str, rp: &str) -> Result<PartFile, ArchiveError> {
        let file = File::create(&part).map_err(io(format!("create {}", part.display())))?;
        let writer = ObjectWriter::new(BufWriter::with_capacity(WRITE_BUFFER_BYTES, file), db, rp)
            .map_err(io(format!("write {}", part.display())))?;
        Ok(PartFile {
            name: name.to_string(),
            part,
            writer: Some(writer),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.part
    }

    pub fn line(&mut self, line: &[u8], ts: i64) -> Result<(), ArchiveError> {
        let what = || format!("write {}", self.part.display());
        let w = (self.writer.as_mut()).ok_or_else(|| ArchiveError::Io {
            what: what(),
            source: std::io::Error::other("already finished"),
        })?;
        w.line(line, ts).map_err(io(what()))
    }

    /// Appends a whole payload (`ObjectWriter::payload`).
    pub fn payload(
        &mut self,
        text: &[u8],
        points: u64,
        first: i64,
        last: i64,
    ) -> Result<(), ArchiveError> {
        let what = || format!("write {}", self.part.display());
        let w = (self.writer.as_mut()).ok_or_else(|| ArchiveError::Io {
            what: what(),
            source: std::io::Error::other("already finished"),
        })?;
        w.payload(text, points, first, last).map_err(io(what()))
    }

    /// Ends the gzip stream and syncs the file; the file stays until the
    /// part is dropped (or renamed away by the caller).
    pub fn finish(&mut self) -> Result<Written, ArchiveError> {
        let what = || format!("write {}", self.part.display());
        let writer = (self.writer.take()).ok_or_else(|| ArchiveError::Io {
            what: what(),
            source: std::io::Error::other("finished twice"),
        })?;
        let (buf, written) = writer.finish().map_err(io(what()))?;
        let file = buf.into_inner().map_err(|e| ArchiveError::Io {
            what: what(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io(what()))?;
        Ok(written)
    }
}
