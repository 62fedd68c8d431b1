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
//! that still fails is a *suspect*. If nothing of the pack got through, the
//! server is what is failing: the pack is deferred whole. Otherwise each
//! suspect must confirm, `SUSPECT_CONFIRMATIONS` times in a row: sent alone it
//! fails with a 5xx, and a *canary* (a line of the pack already written; a
//! re-send is an overwrite) sent right after is written. Only then is it a
//! dead letter (a pack of one line borrows the last line the server took,
//! from any destination, as its canary; with none yet it waits for a
//! neighbour). A suspect that is written on a re-send is simply delivered; a
//! canary that fails means the server is failing (a restart, a 502 storm from
//! a proxy): the pack is deferred whole, and no good line is ever condemned
//! for a fault of the server.

use crate::dest::Destination;
use crate::lineproto;
use crate::stats::Stats;
use crate::upstream::{Outcome, Sink};
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
/// Rounds of (suspect fails alone, canary written right after) before a
/// suspect is a dead letter: a flapping server must fool us this many times.
pub const SUSPECT_CONFIRMATIONS: u32 = 2;

pub struct Delivery<'a> {
    pub upstream: &'a dyn Sink,
    pub stats: &'a Stats,
    pub stop: &'a AtomicBool,
    /// Lowered after a 413, so we stop sending what the server cannot take.
    pub max_lines_per_request: &'a mut usize,
    /// Split on 5xx to isolate a poison line (see the module doc).
    pub probe: bool,
    /// A line the server took lately, and its destination: the canary when
    /// nothing else of the pack was written (a pack of one line).
    pub canary: &'a mut Option<(Destination, Vec<u8>)>,
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
        // Lines that failed alone with a 5xx in probe mode.
        let mut suspects: Vec<usize> = Vec::new();
        // A line the server took in this attempt: the canary for suspects.
        let mut written_line: Option<usize> = None;
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
                return Err(shutting_down());
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
            let outcome = self.attempt(dest, request);
            let split = |todo: &mut Vec<(usize, usize)>| {
                let mid = a + (b - a) / 2;
                todo.extend([(mid, b), (a, mid)]);
            };
            match outcome {
                Outcome::Written => {
                    written_line = written_line.or(Some(a));
                    if self.canary.as_ref().is_none_or(|(d, _)| d != dest)
                        && let Some(l) = lines.get(a)
                    {
                        *self.canary = Some((dest.clone(), l.to_vec()));
                    }
                }
                Outcome::ServerError { .. } if self.probe => {
                    if b - a == 1 {
                        suspects.push(a);
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
                other => return Err(self.deferral(dest, other)),
            }
        }
        if suspects.is_empty() {
            return Ok(dead);
        }
        let canary = match (
            written_line.and_then(|i| lines.get(i)),
            self.canary.as_ref(),
        ) {
            (Some(l), _) => (dest.clone(), l.to_vec()),
            (None, Some(c)) => c.clone(),
            (None, None) => {
                return Err(Deferred {
                    delay: None,
                    reason: "server errors on every part of the batch".into(),
                    server_error: true,
                });
            }
        };
        for i in suspects {
            if let Some(d) = self.confirm(dest, &lines, &owners, i, &canary)? {
                dead.push(d);
            }
        }
        Ok(dead)
    }

    /// Sends one request and records its outcome.
    fn attempt(&self, dest: &Destination, body: &[u8]) -> Outcome {
        let started = Instant::now();
        let outcome = self.upstream.write(dest, body);
        self.observe(&outcome, started);
        outcome
    }

    /// A suspect line, sent alone again: a dead letter only if it fails with
    /// a 5xx while the canary sent right after is written, every round.
    fn confirm(
        &self,
        dest: &Destination,
        lines: &[&[u8]],
        owners: &[i64],
        suspect: usize,
        canary: &(Destination, Vec<u8>),
    ) -> Result<Option<DeadLetter>, Deferred> {
        let alone = |line: &[u8]| {
            let mut body = line.to_vec();
            body.push(b'\n');
            body
        };
        let batch_id = owners.get(suspect).copied().unwrap_or_default();
        let line = lines.get(suspect).map_or_else(Vec::new, |l| l.to_vec());
        let mut last = (0, String::new());
        for _ in 0..SUSPECT_CONFIRMATIONS {
            if self.stop.load(Ordering::Relaxed) {
                return Err(shutting_down());
            }
            match self.attempt(dest, &alone(&line)) {
                Outcome::Written => return Ok(None),
                Outcome::Refused { status, message } => {
                    return Ok(Some(DeadLetter {
                        batch_id,
                        status,
                        reason: message,
                        line,
                    }));
                }
                Outcome::ServerError { status, message } => last = (status, message),
                other => return Err(self.deferral(dest, other)),
            }
            match self.attempt(&canary.0, &alone(&canary.1)) {
                Outcome::Written => {}
                Outcome::ServerError { status, message } => {
                    return Err(Deferred {
                        delay: None,
                        reason: format!(
                            "{status}: {message} (on a line already written: the server is failing)"
                        ),
                        server_error: true,
                    });
                }
                other => return Err(self.deferral(dest, other)),
            }
        }
        let (status, message) = last;
        Ok(Some(DeadLetter {
            batch_id,
            status,
            reason: format!(
                "server error on this line alone, {POISON_PROBE_AFTER_FAILURES}+ times, while its neighbours were written (one right after each of {SUSPECT_CONFIRMATIONS} re-sends): {message}"
            ),
            line,
        }))
    }

    /// Why a pack waits, for an answer that does not move it forward.
    fn deferral(&self, dest: &Destination, outcome: Outcome) -> Deferred {
        match outcome {
            Outcome::Misconfigured { status, message } => {
                log::error!(
                    "upstream refuses writes to {:?} with {status}: {message} — check influxdb credentials and that the database exists; data is kept",
                    dest.bucket()
                );
                Deferred {
                    delay: None,
                    reason: format!("{status}: {message}"),
                    server_error: false,
                }
            }
            Outcome::Throttled {
                status,
                retry_after,
            } => Deferred {
                delay: retry_after,
                reason: format!("{status}: upstream overloaded"),
                server_error: false,
            },
            Outcome::ServerError { status, message } => Deferred {
                delay: None,
                reason: format!("{status}: {message}"),
                server_error: true,
            },
            Outcome::Network(e) => {
                self.stats.upstream_up.store(false, Ordering::Relaxed);
                Deferred {
                    delay: None,
                    reason: e,
                    server_error: false,
                }
            }
            // Progress answers are handled by the caller; here they only
            // mean the request must be tried again later.
            Outcome::Written | Outcome::Refused { .. } | Outcome::TooLarge => Deferred {
                delay: None,
                reason: "unexpected answer".into(),
                server_error: false,
            },
        }
    }
}

fn shutting_down() -> Deferred {
    Deferred {
        delay: None,
        reason: "shutting down".into(),
        server_error: false,
    }
}
