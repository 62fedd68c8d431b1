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
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

/// Lines a request: the agent's rings take this in one go (≈ 1 MiB).
const RESTORE_LINES_MAX: usize = 5_000;
/// Bytes a request at most, whatever the lines' length.
const RESTORE_BODY_MAX_BYTES: usize = 1 << 20;
/// A refusal's wait when the agent gives no Retry-After.
const RETRY_WAIT_MS: u64 = 1_000;
/// Tries of one request before giving up (with Retry-After waits, minutes).
const RETRY_MAX: u32 = 600;

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
        let enc = |s: &str| -> String {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect()
        };
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
        let mut files = vec![(name.clone(), false)];
        if m.multiline_points > 0 {
            let stem = name.strip_suffix(object::OBJECT_SUFFIX).unwrap_or(&name);
            files.push((format!("{stem}{}", object::MULTILINE_SUFFIX), true));
        }
        let mut points = 0u64;
        for (path, multiline) in files {
            let file = src.read(&path)?;
            let mut gz = std::io::BufReader::new(flate2::read::GzDecoder::new(file));
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
            // Whether `line` goes in, and whether the body must be sent
            // first to stay within `RESTORE_BODY_MAX_BYTES`.
            let wanted = |line: &[u8], body: &[u8]| -> (bool, bool) {
                let header = line.is_empty() || line.first() == Some(&b'#');
                let keep = !header && r.filter.time_matches(line);
                let full = !body.is_empty()
                    && body.len().saturating_add(line.len()).saturating_add(1)
                        > RESTORE_BODY_MAX_BYTES;
                (keep, keep && full)
            };
            if multiline {
                // Small, and its lines hold line breaks: read whole, split
                // as the parser does (quotes respected).
                let mut text = Vec::new();
                std::io::Read::read_to_end(&mut gz, &mut text)
                    .map_err(|e| format!("cannot read {path}: {e}"))?;
                for line in crate::lineproto::lines(&text) {
                    let (keep, send_first) = wanted(line, &body);
                    if send_first {
                        flush(&mut body, &mut lines)?;
                    }
                    if keep {
                        body.extend_from_slice(line);
                        body.push(b'\n');
                        lines += 1;
                    }
                    if lines as usize >= RESTORE_LINES_MAX {
                        flush(&mut body, &mut lines)?;
                    }
                }
            } else {
                let mut line = Vec::new();
                loop {
                    line.clear();
                    let n = gz
                        .read_until(b'\n', &mut line)
                        .map_err(|e| format!("cannot read {path}: {e}"))?;
                    if n == 0 {
                        break;
                    }
                    let l = line.strip_suffix(b"\n").unwrap_or(&line);
                    let (keep, send_first) = wanted(l, &body);
                    if send_first {
                        flush(&mut body, &mut lines)?;
                    }
                    if keep {
                        body.extend_from_slice(l);
                        body.push(b'\n');
                        lines += 1;
                    }
                    if lines as usize >= RESTORE_LINES_MAX {
                        flush(&mut body, &mut lines)?;
                    }
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

/// Objects `(period start, name, manifest)` by period, then in commit
/// order (the names' numbers are not padded: by name, commit 10 came before
/// commit 2, and a corrected point was restored with its old value last:
/// second review).
fn in_commit_order(chosen: &mut [(String, String, object::Manifest)]) {
    chosen.sort_by(|a, b| {
        (&a.0, &a.2.buffer, a.2.first_seq, &a.1).cmp(&(&b.0, &b.2.buffer, b.2.first_seq, &b.1))
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
        assert_eq!(order, [30, 2, 10]);
    }
}
