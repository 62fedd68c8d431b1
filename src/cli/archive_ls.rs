//! `hissrv archive ls SOURCE [--config PATH]`: the objects of a cold archive
//! (a directory, or an S3 bucket with the store and keys of
//! `lifecycle.archive.s3`) with what their manifests say, one a line, by
//! name (destination, then day), and a total. An object without a manifest
//! (being written, or a crash between the two: the next run writes it
//! again) is listed as such.

use crate::archive::source::Source;
use crate::config::S3Settings;
use std::fmt::Write;

/// The listing, or why not.
pub fn list(source: &str, s3: &S3Settings) -> Result<String, String> {
    let src = Source::open(source, s3, &s3.credentials.resolved())?;
    let objects = src.objects()?;
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
        src.label()
    );
    Ok(o)
}
