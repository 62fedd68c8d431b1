//! The `file://` target: objects in a directory (a mounted USB disk, NFS).
//!
//! The directory must exist: it is never created (an unplugged USB disk
//! leaves its mount point, an empty directory on the gateway's own flash;
//! objects written there would be hidden once the disk is back and would
//! fill the buffer's file system). The first run writes a marker file,
//! `.hissrv-archive`, and the buffer notes it; a target whose marker is gone
//! afterwards is an error, not written under (review).
//!
//! An object appears whole: it is written under `<name>.part` (which never
//! ends in `.gz`), synced, renamed to its name, and the directory synced;
//! only then is it confirmed, and only a confirmed object lets its batches
//! leave the buffer. Its manifest follows the same way. A name that exists
//! already is kept when it holds the same lines (a run written again after
//! a crash) and is never overwritten when it holds others: that is an error
//! (`Conflict`), retried and shown until an operator looks.

use super::ArchiveError;
use super::object::{MANIFEST_SUFFIX, Manifest, Written, content_sha256};
use super::part::{PART_SUFFIX, PartFile, io};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct DirTarget {
    root: PathBuf,
}

/// Syncs a directory, so a rename or a new entry in it survives power loss.
fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("sync directory {}", dir.display())))
}

/// The marker file at a directory target's root.
pub const MARKER: &str = ".hissrv-archive";

impl DirTarget {
    pub fn new(root: PathBuf) -> DirTarget {
        DirTarget { root }
    }

    /// Whether objects may be written now: the root is there and, once
    /// written to (`marked`), still holds its marker. Writes the marker the
    /// first time; returns true when it did (the caller notes it).
    pub fn ready(&self, marked: bool, buffer: &str) -> Result<bool, ArchiveError> {
        let missing = |why: &str| ArchiveError::Io {
            what: format!("use {}", self.root.display()),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, why.to_string()),
        };
        if !self.root.is_dir() {
            return Err(missing(
                "no such directory (is the disk mounted?); hissrv never creates an archive's root",
            ));
        }
        let marker = self.root.join(MARKER);
        if marker.exists() {
            return Ok(false);
        }
        if marked {
            return Err(missing(
                "its .hissrv-archive marker is gone: is the disk unmounted? (put the disk back, or remove the archive from lifecycle)",
            ));
        }
        let text = format!("hissrv cold archive; buffer {buffer}\n");
        let part = self.root.join(format!("{MARKER}{PART_SUFFIX}"));
        (File::create(&part).and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        }))
        .map_err(io(format!("write {}", part.display())))?;
        fs::rename(&part, &marker).map_err(io(format!("write {}", marker.display())))?;
        sync_dir(&self.root)?;
        Ok(true)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Starts object `name` (relative, `/`-separated) of destination `db`/`rp`.
    pub fn begin(&self, name: &str, db: &str, rp: &str) -> Result<PartFile, ArchiveError> {
        let path = self.root.join(name);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        if !self.root.is_dir() {
            return Err(ArchiveError::Io {
                what: format!("use {}", self.root.display()),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
            });
        }
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
            // Each new directory's entry in its parent, up to the root.
            let mut d = dir.as_path();
            while let Some(parent) = d.parent() {
                sync_dir(parent)?;
                if parent == self.root || !parent.starts_with(&self.root) {
                    break;
                }
                d = parent;
            }
        }
        let part = PathBuf::from(format!("{}{PART_SUFFIX}", path.display()));
        PartFile::create(part, name, db, rp)
    }

    /// Ends `o`: synced, renamed into place, directory synced. Returns what
    /// it holds (as already there, for a rewrite of the same lines).
    pub fn confirm(&self, mut o: PartFile) -> Result<Written, ArchiveError> {
        let written = o.finish()?;
        let path = self.root.join(o.name());
        if path.exists() {
            let read = |p: &Path| {
                File::open(p)
                    .and_then(content_sha256)
                    .map_err(io(format!("read {}", p.display())))
            };
            if read(&path)? != read(o.path())? {
                return Err(ArchiveError::Conflict {
                    object: path.display().to_string(),
                });
            }
            // The same lines, written before a crash: keep that object (the
            // part goes as `o` drops).
            let bytes = fs::metadata(&path)
                .map(|m| m.len())
                .unwrap_or(written.bytes);
            let sha256 = File::open(&path)
                .and_then(sha256_of)
                .map_err(io(format!("read {}", path.display())))?;
            return Ok(Written {
                bytes,
                sha256,
                existed: true,
                ..written
            });
        }
        fs::rename(o.path(), &path).map_err(io(format!("rename to {}", path.display())))?;
        sync_dir(path.parent().unwrap_or(&self.root))?;
        Ok(written)
    }

    /// Writes `m` as `<object>.json`, whole (part, sync, rename, sync).
    pub fn put_manifest(&self, m: &Manifest) -> Result<(), ArchiveError> {
        let path = self.root.join(format!("{}{MANIFEST_SUFFIX}", m.object));
        let part = PathBuf::from(format!("{}{PART_SUFFIX}", path.display()));
        let what = || format!("write {}", part.display());
        let result = File::create(&part)
            .and_then(|mut f| {
                f.write_all(miniserde::json::to_string(m).as_bytes())?;
                f.write_all(b"\n")?;
                f.sync_all()
            })
            .map_err(io(what()))
            .and_then(|()| {
                fs::rename(&part, &path).map_err(io(format!("rename to {}", path.display())))
            })
            .and_then(|()| sync_dir(path.parent().unwrap_or(&self.root)));
        if result.is_err() {
            let _ = fs::remove_file(&part);
        }
        result
    }
}

fn sha256_of(mut f: File) -> std::io::Result<String> {
    use sha2::Digest;
    let mut sha = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            return Ok(super::object::hex(&sha.finalize()));
        }
        sha.update(buf.get(..n).unwrap_or(&buf));
    }
}

/// Every object under `root` with its manifest (`None`: none yet, or
/// unreadable), sorted by name: `hissrv archive ls`.
pub fn list(root: &Path) -> Result<Vec<(String, Option<Manifest>)>, ArchiveError> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let entries = fs::read_dir(&d).map_err(io(format!("read {}", d.display())))?;
        for e in entries.flatten() {
            let p = e.path();
            // Not through links: a link loop would never end (review).
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(p);
                continue;
            }
            let Some(rel) = p.strip_prefix(root).ok().and_then(|r| r.to_str()) else {
                continue;
            };
            if !rel.ends_with(super::object::OBJECT_SUFFIX) {
                continue;
            }
            let manifest =
                manifest_text(&PathBuf::from(format!("{}{MANIFEST_SUFFIX}", p.display())))
                    .and_then(|t| miniserde::json::from_str::<Manifest>(&t).ok());
            out.push((rel.to_string(), manifest));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// A manifest's text: a regular file of at most
/// `source::MANIFEST_MAX_BYTES` (links, FIFOs and devices are not read, nor
/// a hostile gigabyte: third review).
fn manifest_text(path: &Path) -> Option<String> {
    use std::io::Read;
    let meta = fs::symlink_metadata(path).ok()?;
    let max = super::source::MANIFEST_MAX_BYTES;
    if !meta.is_file() || meta.len() > max {
        return None;
    }
    let mut text = String::new();
    File::open(path)
        .ok()?
        .take(max)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}
