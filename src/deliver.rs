//! Delivering one pack — consecutive stored batches of one destination, one
//! upstream request's worth — under the upstream status policy:
//!
//! | answer                     | action                                                   |
//! |----------------------------|----------------------------------------------------------|
//! | 2xx                        | done: the caller deletes the pack                        |
//! | 400/422 (partial or whole) | split in halves until the refused lines are isolated; the rest is delivered, those lines become dead letters with the server's message |
//! | 413                        | split in halves, and send smaller requests from then on  |
//! | 401/403/404                | defer (keep), log an error                               |
//! | 429/503                    | defer, for `Retry-After` if given                        |
//! | other 5xx, network         | defer (the caller backs off with jitter)                 |
//!
//! A deferred pack is sent again whole later: lines that went through before
//! the failure are re-sent, which InfluxDB absorbs as an overwrite.
//!
//! **Poison lines.** A line can make the server fail every time (influxd 1.6.7
//! answers 500 to a line with exactly 100 tags): retried as is, its pack would
//! block the destination forever. After the same pack met
//! `POISON_PROBE_AFTER_FAILURES` server errors in a row the forwarder delivers it
//! in *probe* mode: a 5xx splits the request like a 400 does, and a single line
//! that still fails becomes a dead letter — but only if some other part of the
//! pack was written in the same attempt. If nothing got through, the server is
//! what is failing: the pack is deferred whole and nothing is set aside.

use crate::lineproto;
use crate::stats::Stats;
use crate::upstream::{Outcome, Upstream};
use crate::wal::{DeadLetter, StoredBatch};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Why a pack stays for a later attempt.
#[derive(Debug)]
pub struct Deferred {
    /// The server's `Retry-After`, if it gave one.
    pub delay: Option<Duration>,
    pub reason: String,
    /// A 5xx other than 503 (counts towards probe mode).
    pub server_error: bool,
}

/// Server errors in a row on the same pack before it is probed for a poison line.
pub const POISON_PROBE_AFTER_FAILURES: u32 = 5;

pub struct Delivery<'a> {
    pub upstream: &'a Upstream,
    pub stats: &'a Stats,
    pub stop: &'a AtomicBool,
    /// Lowered after a 413, so we stop sending what the server cannot take.
    pub max_lines_per_request: &'a mut usize,
    /// Split on 5xx to isolate a poison line (see the module doc).
    pub probe: bool,
}

impl Delivery<'_> {
    fn observe(&self, outcome: &Outcome, started: Instant) {
        let s = self.stats;
        s.write_duration.observe(started.elapsed().as_secs_f64());
        let class = match outcome {
            Outcome::Written | Outcome::Refused { .. } | Outcome::TooLarge => return,
            Outcome::Misconfigured { .. } => &s.upstream_failures_4xx,
            Outcome::Throttled { status, .. } if *status < 500 => &s.upstream_failures_4xx,
            Outcome::Throttled { .. } | Outcome::ServerError { .. } => &s.upstream_failures_5xx,
            Outcome::Network(_) => &s.upstream_failures_network,
        };
        Stats::add(class, 1);
    }

    /// Sends the pack, splitting where the server asks; returns the dead letters.
    pub fn send(&mut self, pack: &[StoredBatch]) -> Result<Vec<DeadLetter>, Deferred> {
        let Some(head) = pack.first() else {
            return Ok(Vec::new());
        };
        let dest = &head.dest;
        let mut lines: Vec<&[u8]> = Vec::with_capacity(pack.iter().map(|b| b.points).sum());
        let mut owners: Vec<i64> = Vec::with_capacity(lines.capacity());
        for b in pack {
            for l in lineproto::lines(&b.payload) {
                lines.push(l);
                owners.push(b.id);
            }
        }
        let mut dead = Vec::new();
        let mut suspects = Vec::new();
        let mut any_written = false;
        // Ranges still to send, the next on top: halves are pushed right first.
        let mut todo = vec![(0, lines.len())];
        let mut body = Vec::new();
        while let Some((a, b)) = todo.pop() {
            if b - a > *self.max_lines_per_request {
                let mid = a + (b - a) / 2;
                todo.extend([(mid, b), (a, mid)]);
                continue;
            }
            if self.stop.load(Ordering::Relaxed) {
                return Err(Deferred {
                    delay: None,
                    reason: "shutting down".into(),
                    server_error: false,
                });
            }
            // A whole single batch is its payload as stored: no copy.
            let request: &[u8] = if pack.len() == 1 && (a, b) == (0, lines.len()) {
                &head.payload
            } else {
                body.clear();
                for l in &lines[a..b] {
                    body.extend_from_slice(l);
                    body.push(b'\n');
                }
                &body
            };
            let started = Instant::now();
            let outcome = self.upstream.write(dest, request);
            self.observe(&outcome, started);
            let split = |todo: &mut Vec<(usize, usize)>| {
                let mid = a + (b - a) / 2;
                todo.extend([(mid, b), (a, mid)]);
            };
            match outcome {
                Outcome::Written => any_written = true,
                Outcome::ServerError { status, message } if self.probe => {
                    if b - a == 1 {
                        suspects.push(DeadLetter {
                            batch_id: owners[a],
                            status,
                            reason: format!(
                                "server error on this line alone, {POISON_PROBE_AFTER_FAILURES}+ times, while its neighbours were written: {message}"
                            ),
                            line: lines[a].to_vec(),
                        });
                    } else {
                        split(&mut todo);
                    }
                }
                Outcome::Refused { status, message } if b - a == 1 => dead.push(DeadLetter {
                    batch_id: owners[a],
                    status,
                    reason: message,
                    line: lines[a].to_vec(),
                }),
                Outcome::TooLarge if b - a == 1 => dead.push(DeadLetter {
                    batch_id: owners[a],
                    status: 413,
                    reason: "a single line is larger than the server accepts".into(),
                    line: lines[a].to_vec(),
                }),
                Outcome::Refused { .. } => split(&mut todo),
                Outcome::TooLarge => {
                    *self.max_lines_per_request = ((b - a) / 2).max(1);
                    log::info!(
                        "upstream said 413: requests are now at most {} lines",
                        self.max_lines_per_request
                    );
                    split(&mut todo);
                }
                Outcome::Misconfigured { status, message } => {
                    log::error!(
                        "upstream refuses writes to {:?} with {status}: {message} — check influxdb credentials and that the database exists; data is kept",
                        dest.bucket()
                    );
                    return Err(Deferred {
                        delay: None,
                        reason: format!("{status}: {message}"),
                        server_error: false,
                    });
                }
                Outcome::Throttled {
                    status,
                    retry_after,
                } => {
                    return Err(Deferred {
                        delay: retry_after,
                        reason: format!("{status}: upstream overloaded"),
                        server_error: false,
                    });
                }
                Outcome::ServerError { status, message } => {
                    return Err(Deferred {
                        delay: None,
                        reason: format!("{status}: {message}"),
                        server_error: true,
                    });
                }
                Outcome::Network(e) => {
                    self.stats.upstream_up.store(false, Ordering::Relaxed);
                    return Err(Deferred {
                        delay: None,
                        reason: e,
                        server_error: false,
                    });
                }
            }
        }
        if !suspects.is_empty() {
            if !any_written {
                return Err(Deferred {
                    delay: None,
                    reason: "server errors on every part of the batch".into(),
                    server_error: true,
                });
            }
            dead.extend(suspects);
        }
        Ok(dead)
    }
}
