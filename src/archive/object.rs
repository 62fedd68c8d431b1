//! One archive object: gzip line protocol in the form `influx -import
//! -compressed` reads, its deterministic name, and its manifest.
//!
//! ```text
//! <db>/<rp>/<YYYY-MM-DD>/<db>.<rp>.<period>.<buffer>-<first seq>-<last seq>.lp.gz
//! <same>.lp.gz.json                         -- the manifest (written after it)
//!
//! # DML
//! # CONTEXT-DATABASE: <db>
//! # CONTEXT-RETENTION-POLICY: <rp>         -- absent for the default policy
//! <line protocol, nanosecond timestamps, the run's lines of this period in commit order>
//! ```
//! `<period>` is the UTC hour (`20261128T10`) or day (`20261128`) of the
//! points' own timestamps. The name comes from what the run holds (its
//! destination, the buffer's id and its commits), and so do the bytes
//! (fixed gzip settings, no time in the gzip header): a run written again
//! after a crash writes the same objects under the same names. Name parts
//! keep `[A-Za-z0-9._-]` and write every other byte as `~XX` (upper-case
//! hex); the default policy is `~default` (lower case: no escape reads so).
//! Only URL-unreserved characters, so a name is the same encoded or not
//! (S3 signs the encoded path; some stores check the decoded one).

use sha2::{Digest, Sha256};
use std::io::Write;

/// The object's suffix; a name being written never ends with it.
pub const OBJECT_SUFFIX: &str = ".lp.gz";
/// The suffix of an object's sidecar: its points whose string fields hold
/// a line break, which `influx -import` (one point a line) would split and
/// misread (a review found a forged `# CONTEXT-DATABASE:` that way). Same
/// header and gzip; read back by hissrv's own parser.
pub const MULTILINE_SUFFIX: &str = ".mlp.gz";
/// A name part's longest form: longer ones keep a prefix and a hash, so a
/// path stays under file systems' 255-byte names (a review found a
/// 200-byte database name failing every run with ENAMETOOLONG).
const NAME_PART_MAX_BYTES: usize = 64;
/// Bytes of a long name part kept before its hash.
const NAME_PART_KEPT_BYTES: usize = 40;
/// A manifest's suffix, after the object's name.
pub const MANIFEST_SUFFIX: &str = ".json";

/// A name part: the bytes a file system and S3 key take everywhere kept,
/// the rest escaped (so `/`, `..` and control bytes never reach a path);
/// the empty policy is `~default`.
pub fn name_part(s: &str) -> String {
    if s.is_empty() {
        return "~default".into();
    }
    let mut out = String::with_capacity(s.len());
    for (i, b) in s.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("~{b:02X}"));
        }
    }
    if out.len() > NAME_PART_MAX_BYTES {
        // `~h` reads as no escape (`h` is not hex): unique by the hash of
        // the whole name.
        let hash = hex(&Sha256::digest(s.as_bytes()));
        out.truncate(NAME_PART_KEPT_BYTES);
        out.push_str("~h");
        out.push_str(hash.get(..16).unwrap_or(&hash));
    }
    out
}

/// A name as the import header can say it: `influx -import` reads one
/// line a header and splits it at `:`, so control characters and `:` are
/// written as `~XX` (InfluxDB refuses such names anyway, so no point of one
/// was delivered); the manifest holds the real name.
pub fn header_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || c == ':' || c == '~' {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("~{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The period a timestamp (ns) falls in: its index (`ts` / period, floored).
pub fn period_of(ts_ns: i64, period_s: u64) -> i64 {
    let p = (period_s as i64).saturating_mul(1_000_000_000).max(1);
    ts_ns.div_euclid(p)
}

/// The object's name under the target (see the module doc).
pub fn object_name(
    db: &str,
    rp: &str,
    period: i64,
    period_s: u64,
    buffer: &str,
    seqs: (i64, i64),
) -> String {
    let start_s = period.saturating_mul(period_s as i64);
    let (y, m, d) = crate::clock::civil(start_s.div_euclid(86_400));
    let h = start_s.rem_euclid(86_400) / 3_600;
    let stamp = if period_s >= 86_400 {
        format!("{y:04}{m:02}{d:02}")
    } else {
        format!("{y:04}{m:02}{d:02}T{h:02}")
    };
    let (db, rp) = (name_part(db), name_part(rp));
    format!(
        "{db}/{rp}/{y:04}-{m:02}-{d:02}/{db}.{rp}.{stamp}.{buffer}-{}-{}{OBJECT_SUFFIX}",
        seqs.0, seqs.1
    )
}

/// The header `influx -import` reads: the lines that follow go to `db`
/// (and `rp`, unless the default).
pub fn header(db: &str, rp: &str) -> String {
    let mut h = format!("# DML\n# CONTEXT-DATABASE: {}\n", header_name(db));
    if !rp.is_empty() {
        h.push_str(&format!(
            "# CONTEXT-RETENTION-POLICY: {}\n",
            header_name(rp)
        ));
    }
    h
}

/// Writes an object's gzip stream to `out`, hashing what it writes
/// (`sha256`) and counting the points. (Its text is not hashed as well: that
/// was a third of the archiver's CPU, `benches/archive.rs`; the rare check
/// of a rewrite against an object already there reads both back.)
pub struct ObjectWriter<W: Write> {
    gz: flate2::write::GzEncoder<Hashing<W>>,
    pub points: u64,
    pub first_ts: i64,
    pub last_ts: i64,
}

/// A writer that hashes and counts what passes through.
pub struct Hashing<W: Write> {
    inner: W,
    sha: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(buf.get(..n).unwrap_or(buf));
        self.bytes = self.bytes.saturating_add(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// What a finished object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub points: u64,
    pub first_ts: i64,
    pub last_ts: i64,
    pub bytes: u64,
    /// Of the object's bytes, hex.
    pub sha256: String,
    /// It was there already, the same lines (a run written again after a
    /// crash): not counted again.
    pub existed: bool,
}

pub fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl<W: Write> ObjectWriter<W> {
    pub fn new(out: W, db: &str, rp: &str) -> std::io::Result<ObjectWriter<W>> {
        // No file name and mtime 0 in the header: the same lines make the
        // same bytes.
        let gz = flate2::GzBuilder::new().mtime(0).write(
            Hashing {
                inner: out,
                sha: Sha256::new(),
                bytes: 0,
            },
            flate2::Compression::default(),
        );
        let mut w = ObjectWriter {
            gz,
            points: 0,
            first_ts: i64::MAX,
            last_ts: i64::MIN,
        };
        w.text(header(db, rp).as_bytes())?;
        Ok(w)
    }

    fn text(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.gz.write_all(b)
    }

    /// Appends one line (without its newline) stamped `ts`.
    pub fn line(&mut self, line: &[u8], ts: i64) -> std::io::Result<()> {
        self.text(line)?;
        self.text(b"\n")?;
        self.points = self.points.saturating_add(1);
        self.first_ts = self.first_ts.min(ts);
        self.last_ts = self.last_ts.max(ts);
        Ok(())
    }

    /// Appends a whole payload of `points` lines (each ending in a
    /// newline, none holding one) stamped `first_ts..=last_ts`: a batch of
    /// one period in one write (line by line was a third of the archiver's
    /// time, `benches/archive.rs`).
    pub fn payload(
        &mut self,
        text: &[u8],
        points: u64,
        first_ts: i64,
        last_ts: i64,
    ) -> std::io::Result<()> {
        self.text(text)?;
        self.points = self.points.saturating_add(points);
        self.first_ts = self.first_ts.min(first_ts);
        self.last_ts = self.last_ts.max(last_ts);
        Ok(())
    }

    /// Ends the gzip stream; returns the writer and what was written.
    pub fn finish(self) -> std::io::Result<(W, Written)> {
        let h = self.gz.finish()?;
        let written = Written {
            points: self.points,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            bytes: h.bytes,
            sha256: hex(&h.sha.finalize()),
            existed: false,
        };
        Ok((h.inner, written))
    }
}

/// The manifest beside an object (`<object>.json`).
#[derive(Debug, Clone, PartialEq, miniserde::Serialize, miniserde::Deserialize)]
pub struct Manifest {
    pub object: String,
    pub database: String,
    pub retention_policy: String,
    pub points: u64,
    /// The points' range, ns since the epoch and RFC 3339.
    pub first_ts: i64,
    pub last_ts: i64,
    pub first: String,
    pub last: String,
    /// The period's start (RFC 3339) and length (seconds).
    pub period_start: String,
    pub period_s: u64,
    pub bytes: u64,
    pub sha256: String,
    /// Points whose string fields hold a line break, in the sidecar
    /// `<object without .lp.gz>.mlp.gz` (0: no sidecar).
    pub multiline_points: u64,
    /// Where in the buffer's commits it came from.
    pub buffer: String,
    pub first_seq: i64,
    pub last_seq: i64,
    /// What reads it: `influx -import -compressed -precision ns`.
    pub format: String,
}

/// The content's digest of an existing gzip object (to tell a rewrite of
/// the same lines from another object under the name).
pub fn content_sha256(r: impl std::io::Read) -> std::io::Result<String> {
    let mut gz = flate2::read::GzDecoder::new(r);
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = std::io::Read::read(&mut gz, &mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(buf.get(..n).unwrap_or(&buf));
    }
    Ok(hex(&sha.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_say_destination_day_and_period_and_never_escape_the_target() {
        let p = period_of(1_764_324_000_000_000_000, 3_600); // 2025-11-28T10:00Z
        assert_eq!(
            object_name("plant", "", p, 3_600, "ab12", (7, 9)),
            "plant/~default/2025-11-28/plant.~default.20251128T10.ab12-7-9.lp.gz"
        );
        let d = period_of(1_764_324_000_000_000_000, 86_400);
        assert_eq!(
            object_name("a/../b", "x y", d, 86_400, "ab12", (1, 1)),
            "a~2F..~2Fb/x~20y/2025-11-28/a~2F..~2Fb.x~20y.20251128.ab12-1-1.lp.gz"
        );
        assert_eq!(name_part(".."), "~2E.");
        assert_eq!(name_part("ü"), "~C3~BC");
        assert_eq!(
            name_part("~default"),
            "~7Edefault",
            "no name reads as the default's"
        );
        let long = name_part(&"d".repeat(200));
        assert!(
            long.len() <= NAME_PART_MAX_BYTES && long.contains("~h"),
            "{long}"
        );
        assert_ne!(
            long,
            name_part(&format!("{}e", "d".repeat(199))),
            "the hash tells them apart"
        );
        let long = object_name(&"d".repeat(300), &"r".repeat(300), 1, 3_600, "b", (1, 2));
        assert!(long.split('/').all(|part| part.len() < 255), "{long}");
        let all = object_name("a b/ü~", "r%p@", 7, 3_600, "ab12", (1, 2));
        assert!(
            all.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b)),
            "URL-unreserved only: {all}"
        );
        // Before 1970: floored, not truncated toward zero.
        assert_eq!(period_of(-1, 3_600), -1);
        assert!(object_name("d", "r", -1, 3_600, "b", (1, 1)).contains("19691231T23"));
    }

    #[test]
    fn a_header_cannot_be_forged_by_a_name() {
        let h = header("plant\n# CONTEXT-DATABASE: victim", "a:b");
        assert_eq!(h.lines().count(), 3, "{h}");
        assert!(h.contains("plant~0A# CONTEXT-DATABASE~3A victim"), "{h}");
        assert!(h.ends_with("# CONTEXT-RETENTION-POLICY: a~3Ab\n"), "{h}");
        assert_eq!(header_name("plant"), "plant");
    }

    #[test]
    fn the_same_lines_make_the_same_bytes_and_the_digests_say_so() {
        let make = || {
            let mut w = ObjectWriter::new(Vec::new(), "db", "rp").unwrap();
            w.line(b"m v=1 5", 5).unwrap();
            w.line(b"m v=2 3", 3).unwrap();
            w.finish().unwrap()
        };
        let (a, wa) = make();
        let (b, wb) = make();
        assert_eq!(a, b);
        assert_eq!(wa, wb);
        assert_eq!((wa.points, wa.first_ts, wa.last_ts), (2, 3, 5));
        assert_eq!(wa.bytes, a.len() as u64);
        assert_eq!(wa.sha256, hex(&Sha256::digest(&a)));
        assert_eq!(
            content_sha256(&a[..]).unwrap(),
            content_sha256(&b[..]).unwrap()
        );
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&a[..]), &mut text)
            .unwrap();
        assert_eq!(
            text,
            "# DML\n# CONTEXT-DATABASE: db\n# CONTEXT-RETENTION-POLICY: rp\nm v=1 5\nm v=2 3\n"
        );
    }
}
