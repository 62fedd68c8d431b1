//! `hissrv restore SOURCE [--since T] [--until T] [--destination DB[/RP]]
//! [--dry-run]`: the points of a cold archive sent back through a running
//! agent's durable buffer to the upstream.
//!
//! The objects whose manifests say they hold points of the destination and
//! the time asked for are read in period order and their points (and their
//! sidecars', the points holding a line break) posted to the agent's
//! `/write`, `RESTORE_LINES_MAX` lines a request, with the
//! `x-hissrv-restore` header: the agent buffers and delivers them like any
//! write (in commit order, through outages) but never archives them again.
//! Paced: at most `--max-rate` points a second, and a 503 (rings full) or
//! 507 (buffer full) waits for its Retry-After and sends again, so live data
//! keeps its place. `--dry-run` lists what would be sent.
//!
//! Objects without a manifest (being written, or cut short by a crash and
//! written again by the agent) are skipped and named.

use crate::archive::object;
use crate::archive::source::Source;
use crate::cli::inspect::ExportFilter;
use crate::config::{Auth, S3Settings};
use std::io::{BufRead, Read, Write};
use std::time::{Duration, Instant};

/// Lines a request: the agent's rings take this in one go (≈ 1 MiB).
const RESTORE_LINES_MAX: usize = 5_000;
/// Bytes a request at most, whatever the lines' length.
const RESTORE_BODY_MAX_BYTES: usize = 1 << 20;
/// A refusal's wait when the agent gives no Retry-After.
const RETRY_WAIT_MS: u64 = 1_000;
/// Tries of one request before giving up (with Retry-After waits, minutes).
const RETRY_MAX: u32 = 600;
/// A sidecar's text at most, unpacked: its points are read whole.
const SIDECAR_MAX_BYTES: u64 = 256 << 20;

pub struct Restore {
    pub source: String,
    pub filter: ExportFilter,
    pub dry_run: bool,
    /// The agent: `http://host:port`.
    pub url: String,
    /// The agent's credentials, from its config.
    pub auth: Auth,
    /// Points a second at most (0: no limit).
    pub max_rate: u64,
    /// The store and keys of an `s3://` source.
    pub s3: S3Settings,
}

/// What a restore did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub objects: u64,
    pub points: u64,
    pub skipped: Vec<String>,
}

struct Sender<'a> {
    r: &'a Restore,
    agent: ureq::Agent,
    started: Instant,
    sent: u64,
}

impl Sender<'_> {
    fn post(&mut self, db: &str, rp: &str, body: &[u8], points: u64) -> Result<(), String> {
        // Paced: no faster than `max_rate` points a second on average.
        if self.r.max_rate > 0 {
            let due = Duration::from_secs_f64(self.sent as f64 / self.r.max_rate as f64);
            if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let enc = |s: &str| crate::archive::sigv4::uri_encode(s, false);
        let mut url = format!("{}/write?precision=ns&db={}", self.r.url, enc(db));
        if !rp.is_empty() {
            url.push_str(&format!("&rp={}", enc(rp)));
        }
        for _ in 0..RETRY_MAX {
            let mut req = self
                .agent
                .post(&url)
                .header(crate::ingest::RESTORE_HEADER, "1");
            if let Some(t) = self.r.auth.tokens.first() {
                req = req.header("authorization", format!("Token {t}"));
            } else if let Some(u) = self.r.auth.users.first() {
                use base64::Engine as _;
                let basic = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", u.username, u.password));
                req = req.header("authorization", format!("Basic {basic}"));
            }
            let mut answer = req
                .send(body)
                .map_err(|e| format!("cannot reach the agent at {}: {e}", self.r.url))?;
            let status = answer.status().as_u16();
            if status == 204 {
                self.sent = self.sent.saturating_add(points);
                return Ok(());
            }
            if matches!(status, 429 | 503 | 507) {
                let wait = (answer.headers().get("retry-after"))
                    .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                    .map_or(Duration::from_millis(RETRY_WAIT_MS), Duration::from_secs);
                std::thread::sleep(wait);
                continue;
            }
            let text = answer.body_mut().read_to_string().unwrap_or_default();
            return Err(format!(
                "the agent refused points for {db}/{rp}: {status} {text}"
            ));
        }
        Err(format!("the agent kept refusing points for {db}/{rp}"))
    }
}

/// Runs a restore; lists (dry run) or progress to `out`.
pub fn restore(r: &Restore, out: &mut dyn Write) -> Result<Restored, String> {
    let src = Source::open(&r.source, &r.s3, &r.s3.credentials.resolved())?;
    let mut done = Restored::default();
    let mut chosen = Vec::new();
    for (name, m) in src.objects()? {
        let Some(m) = m else {
            done.skipped.push(name);
            continue;
        };
        let overlaps = r.filter.since_ns.is_none_or(|s| m.last_ts >= s)
            && r.filter.until_ns.is_none_or(|u| m.first_ts < u);
        if r.filter.dest_matches(&m.database, &m.retention_policy) && overlaps {
            chosen.push((m.period_start.clone(), name, m));
        }
    }
    in_commit_order(&mut chosen);
    let mut sender = Sender {
        r,
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .new_agent(),
        started: Instant::now(),
        sent: 0,
    };
    for (_, name, m) in chosen {
        // The sidecar first: its points came from the same run, and a
        // correction of one of them is likelier written later as a plain
        // line (third review; order between the two files is not kept).
        let mut files = Vec::new();
        if m.multiline_points > 0 {
            let stem = name.strip_suffix(object::OBJECT_SUFFIX).unwrap_or(&name);
            files.push((format!("{stem}{}", object::MULTILINE_SUFFIX), true));
        }
        files.push((name.clone(), false));
        let mut points = 0u64;
        for (path, multiline) in files {
            // Fetched whole to a local file and checked against the
            // manifest before a point is sent: a damaged object sends
            // nothing (third review: a flipped byte sent altered points
            // before gzip's CRC at the end said so).
            let local = src.local(&path)?;
            if !multiline {
                local.verify(m.bytes, &m.sha256, &path)?;
            }
            let gz = flate2::read::GzDecoder::new(local.reader(&path)?);
            let mut gz = std::io::BufReader::new(gz);
            let mut body = Vec::new();
            let mut lines = 0u64;
            let mut flush = |body: &mut Vec<u8>, lines: &mut u64| -> Result<(), String> {
                if *lines > 0 && !r.dry_run {
                    sender.post(&m.database, &m.retention_policy, body, *lines)?;
                }
                points += *lines;
                body.clear();
                *lines = 0;
                Ok(())
            };
            let mut add = |line: &[u8],
                           body: &mut Vec<u8>,
                           lines: &mut u64|
             -> Result<(), String> {
                if line.is_empty() || line.first() == Some(&b'#') || !r.filter.time_matches(line) {
                    return Ok(());
                }
                // Within RESTORE_BODY_MAX_BYTES: the body goes first.
                if !body.is_empty()
                    && body.len().saturating_add(line.len()).saturating_add(1)
                        > RESTORE_BODY_MAX_BYTES
                {
                    flush(body, lines)?;
                }
                body.extend_from_slice(line);
                body.push(b'\n');
                *lines += 1;
                if *lines as usize >= RESTORE_LINES_MAX {
                    flush(body, lines)?;
                }
                Ok(())
            };
            if multiline {
                // Its lines hold line breaks: read it (bounded), drop the
                // header as written (a name with a quote must not open a
                // string: third review), split as the parser does.
                let mut text = Vec::new();
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(&mut gz, SIDECAR_MAX_BYTES + 1),
                    &mut text,
                )
                .map_err(|e| format!("cannot read {path}: {e}"))?;
                if text.len() as u64 > SIDECAR_MAX_BYTES {
                    return Err(format!(
                        "{path}: longer than {SIDECAR_MAX_BYTES} bytes unpacked; not sent"
                    ));
                }
                let header = object::header(&m.database, &m.retention_policy);
                let data = text.strip_prefix(header.as_bytes()).unwrap_or(&text);
                for line in crate::lineproto::lines(data) {
                    add(line, &mut body, &mut lines)?;
                }
            } else {
                let mut line = Vec::new();
                loop {
                    line.clear();
                    // A line no request could carry is damage, not a
                    // reason to hold gigabytes (third review: a gzip bomb).
                    let n = (&mut gz)
                        .take(RESTORE_BODY_MAX_BYTES as u64 + 1)
                        .read_until(b'\n', &mut line)
                        .map_err(|e| format!("cannot read {path}: {e}"))?;
                    if n == 0 {
                        break;
                    }
                    if !line.ends_with(b"\n") && n > RESTORE_BODY_MAX_BYTES {
                        return Err(format!(
                            "{path}: a line longer than {RESTORE_BODY_MAX_BYTES} bytes; the object is damaged, not sent further"
                        ));
                    }
                    let l = line.strip_suffix(b"\n").unwrap_or(&line);
                    add(l, &mut body, &mut lines)?;
                }
            }
            flush(&mut body, &mut lines)?;
        }
        done.objects += 1;
        done.points += points;
        let _ = writeln!(
            out,
            "{}{name}  {points} points  {}..{}",
            if r.dry_run { "would send " } else { "sent " },
            m.first,
            m.last
        );
    }
    for s in &done.skipped {
        let _ = writeln!(out, "skipped {s} (no manifest: not whole yet)");
    }
    Ok(done)
}

/// Objects `(period start, name, manifest)` in commit order (the names'
/// numbers are not padded: by name, commit 10 came before commit 2, and a
/// corrected point was restored with its old value last: second review).
/// Objects of different buffers (a replaced SD card) by buffer id.
fn in_commit_order(chosen: &mut [(String, String, object::Manifest)]) {
    // Commits first, the period within a run (third review: after a change
    // from hour to day objects, a day object holding a later correction
    // sorted before the hour it corrects).
    chosen.sort_by(|a, b| {
        (&a.2.buffer, a.2.first_seq, &a.0, &a.1).cmp(&(&b.2.buffer, b.2.first_seq, &b.0, &b.1))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_s_objects_are_restored_in_commit_order_not_name_order() {
        let m = |first_seq: i64| object::Manifest {
            object: String::new(),
            database: "d".into(),
            retention_policy: String::new(),
            points: 1,
            first_ts: 0,
            last_ts: 0,
            first: String::new(),
            last: String::new(),
            period_start: "p".into(),
            period_s: 3_600,
            bytes: 0,
            sha256: String::new(),
            multiline_points: 0,
            buffer: "b".into(),
            first_seq,
            last_seq: first_seq,
            format: String::new(),
        };
        let mut chosen = vec![
            ("p".to_string(), "x.b-10-10.lp.gz".to_string(), m(10)),
            ("p".to_string(), "x.b-2-9.lp.gz".to_string(), m(2)),
            ("o".to_string(), "x.b-30-30.lp.gz".to_string(), m(30)),
        ];
        in_commit_order(&mut chosen);
        let order: Vec<i64> = chosen.iter().map(|c| c.2.first_seq).collect();
        assert_eq!(order, [2, 10, 30], "by commit, whatever the period");
    }
}
