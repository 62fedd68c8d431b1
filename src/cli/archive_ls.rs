//! `hissrv archive ls SOURCE`: the objects of a cold archive with what their
//! manifests say, one a line, by name (destination, then day), and a total. An object
//! without a manifest (being written, or a crash between the two renames:
//! the next run writes it again) is listed as such.

use crate::archive::dir;
use crate::config::ArchiveTarget;
use std::fmt::Write;

/// The listing, or why not.
pub fn list(source: &str) -> Result<String, String> {
    let root = match ArchiveTarget::parse(source)? {
        ArchiveTarget::Dir(root) => root,
        ArchiveTarget::S3 { .. } => {
            return Err(format!(
                "{source}: listing an S3 archive is not built yet (aws s3 ls {source} lists it)"
            ));
        }
    };
    let objects = dir::list(&root).map_err(|e| e.to_string())?;
    let mut o = String::new();
    let (mut points, mut bytes) = (0u64, 0u64);
    for (name, m) in &objects {
        match m {
            Some(m) => {
                points += m.points;
                bytes += m.bytes;
                let _ = writeln!(
                    o,
                    "{name}  {} points  {}..{}  {} bytes  sha256 {}",
                    m.points, m.first, m.last, m.bytes, m.sha256
                );
            }
            None => {
                let _ = writeln!(o, "{name}  (no manifest)");
            }
        }
    }
    let _ = writeln!(
        o,
        "{} objects, {points} points, {bytes} bytes in {}",
        objects.len(),
        root.display()
    );
    Ok(o)
}
