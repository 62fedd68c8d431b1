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
//! server (or this destination on it) is what is failing: the pack is
//! deferred whole. Otherwise each suspect must confirm,
//! `SUSPECT_CONFIRMATIONS` times in a row: sent alone it fails with a 5xx
//! between two sends of a *canary* that are both written. The canary is the
//! latest line of this pack the server took in this attempt, or else the last
//! line of the newest request this destination's server took (either way a
//! re-send writes the value the server already holds; an older line could
//! overwrite a newer value, another destination's proves nothing about this
//! one). Only then is the suspect a dead letter. A suspect written on a
//! re-send is simply delivered; a canary that fails means the server is
//! failing (a restart, a 502 storm, a backend in a round-robin): the pack is
//! deferred whole, and no good line is condemned for a fault of the server.
//! A probe cut short (429, reset, timeout) resumes: the lines it got written
//! and the suspects it found are kept per pack, by (batch, text). After
//! 2·log2(n)+2 failures in a row a probe sends the canary: written (a long
//! run of poison lines), it goes on; not (a failing server), it stops.

use crate::deliver::prefetch::{Zipped, whole_body};
use crate::deliver::upstream::{Outcome, Sink};
use crate::lineproto;
use crate::observe::stats::Stats;
use crate::route::dest::Destination;
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
    /// In probe mode: what earlier probes of this pack found (skipped and
    /// resumed); this probe adds to it.
    pub probed: &'a mut ProbeState,
    /// The last line of the latest request this destination's server took:
    /// the canary when this attempt wrote nothing. Always the newest
    /// delivery, so re-sending it writes what the server already holds.
    pub latest: &'a mut Option<Vec<u8>>,
    /// The pack's whole body, gzip-compressed ahead of time
    /// (`prefetch::Zipped::of`): sent as is when the pack goes in one request.
    pub(crate) zipped: Option<&'a Zipped>,
}

/// A line of a pack: its batch and its text. Not its place: retention
/// expiry removes lines from a batch between attempts, which would shift
/// every later line's index (and a mark would name another line). Two equal
/// lines of a batch are one point to the server, so one mark serves both.
pub type LineId = (i64, Vec<u8>);

/// What probes of one pack have found so far.
#[derive(Debug, Default)]
pub struct ProbeState {
    /// Lines the server took.
    pub written: std::collections::BTreeSet<LineId>,
    /// Lines that failed alone with a 5xx, awaiting confirmation.
    pub suspects: std::collections::BTreeSet<LineId>,
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
        // Every line of the pack with its batch: the probe state names lines
        // by (batch, text), which stays true while other batches of the
        // pack come and go (the live lane) and lines expire out of it.
        let mut all: Vec<(&[u8], i64)> = Vec::with_capacity(pack.iter().map(|b| b.points).sum());
        for b in pack {
            all.extend(lineproto::lines(&b.payload).map(|l| (l, b.id)));
        }
        // (Allocates: used in probe mode only, which is rare.)
        let id = |i: usize| -> LineId {
            all.get(i)
                .map_or((0, Vec::new()), |(l, b)| (*b, l.to_vec()))
        };
        // The lines this attempt sends: a probe skips what earlier probes of
        // this pack got written and the suspects they found, so a probe cut
        // short by a 429, a reset or a timeout resumes instead of starting
        // over (and sends the good remainder at once).
        let index: Vec<usize> = (0..all.len())
            .filter(|&i| {
                !(self.probe
                    && (self.probed.written.contains(&id(i))
                        || self.probed.suspects.contains(&id(i))))
            })
            .collect();
        let line = |i: usize| all.get(i).map_or(&b""[..], |(l, _)| *l);
        let owner = |i: usize| all.get(i).map_or(0, |(_, b)| *b);
        let whole = index.len() == all.len();
        let mut dead = Vec::new();
        // The latest line of the pack the server took in this attempt (by
        // pack index): the canary for suspects. A line of this very pack,
        // and its latest taken one: re-sending it cannot overwrite a newer
        // value of its point (a later line of the pack was not written, or
        // is a suspect re-sent before it).
        let mut written_line: Option<usize> = None;
        // Ranges (of positions in `index`) still to send, the next on top:
        // halves are pushed right first.
        // A probe of a failing server must not split the pack down to every
        // line in one burst: isolating one poison line takes at most about
        // log2(n) failures in a row, so more than twice that (plus two)
        // without a line written means the server is failing: stop.
        let bits = usize::BITS - index.len().leading_zeros();
        let give_up_after = 2 * bits as usize + 2;
        let mut failures_in_a_row = 0usize;
        // A failing server makes every suspicion void: the suspects are
        // probed again next time, from scratch.
        // The server's last error answer, for the operator.
        let mut last_error = String::new();
        let server_failing = |probed: &mut ProbeState, last: &str| {
            probed.suspects.clear();
            Deferred {
                delay: None,
                reason: format!("server errors on every part of the batch (last: {last})"),
                server_error: true,
            }
        };
        let mut todo = if index.is_empty() {
            Vec::new()
        } else {
            vec![(0, index.len())]
        };
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
            let range = index.get(a..b).unwrap_or_default();
            let all_of_it = whole && (a, b) == (0, index.len());
            let zipped = self.zipped.filter(|z| all_of_it && z.made_from(pack));
            let outcome = match zipped {
                Some(z) => self.attempt_zipped(dest, z),
                None => {
                    let whole_request;
                    let request: &[u8] = if all_of_it {
                        whole_request = whole_body(pack);
                        &whole_request
                    } else {
                        body.clear();
                        for &i in range {
                            body.extend_from_slice(line(i));
                            body.push(b'\n');
                        }
                        &body
                    };
                    self.attempt(dest, request)
                }
            };
            let split = |todo: &mut Vec<(usize, usize)>| {
                let mid = a + (b - a) / 2;
                todo.extend([(mid, b), (a, mid)]);
            };
            let single = (b - a == 1).then(|| range.first().copied()).flatten();
            match (outcome, single) {
                (Outcome::Written, _) => {
                    failures_in_a_row = 0;
                    // Ranges go left to right: the last is the latest line.
                    written_line = range.last().copied();
                    if let Some(&last) = range.last() {
                        // Reuses the buffer: this runs for every request.
                        let latest = self.latest.get_or_insert_with(Vec::new);
                        latest.clear();
                        latest.extend_from_slice(line(last));
                    }
                    if self.probe {
                        self.probed.written.extend(range.iter().map(|&i| id(i)));
                    }
                }
                (Outcome::ServerError { status, message }, single) if self.probe => {
                    last_error = format!("{status}: {message}");
                    failures_in_a_row = failures_in_a_row.saturating_add(1);
                    if failures_in_a_row > give_up_after {
                        // Many failures in a row: a failing server, or a long
                        // run of poison lines. The canary tells them apart:
                        // written, go on probing; not, stop.
                        let canary = written_line.map(line).or(self.latest.as_deref());
                        let alive = canary.is_some_and(|c| {
                            let mut body = c.to_vec();
                            body.push(b'\n');
                            matches!(self.attempt(dest, &body), Outcome::Written)
                        });
                        if !alive {
                            return Err(server_failing(self.probed, &last_error));
                        }
                        failures_in_a_row = 0;
                    }
                    match single {
                        Some(i) => {
                            self.probed.suspects.insert(id(i));
                        }
                        None => split(&mut todo),
                    }
                }
                (Outcome::Refused { status, message }, Some(i)) => dead.push(DeadLetter {
                    batch_id: owner(i),
                    status,
                    reason: message,
                    line: line(i).to_vec(),
                }),
                (Outcome::TooLarge, Some(i)) => dead.push(DeadLetter {
                    batch_id: owner(i),
                    status: 413,
                    reason: "a single line is larger than the server accepts".into(),
                    line: line(i).to_vec(),
                }),
                (Outcome::Refused { .. }, None) => split(&mut todo),
                (Outcome::TooLarge, None) => {
                    *self.max_lines_per_request = ((b - a) / 2).max(1);
                    log::info!(
                        "upstream said 413: requests are now at most {} lines",
                        self.max_lines_per_request
                    );
                    split(&mut todo);
                }
                (other, _) => return Err(self.deferral(dest, other)),
            }
        }
        if !self.probe || self.probed.suspects.is_empty() {
            return Ok(dead);
        }
        // A canary from this attempt; else the last line of the newest
        // request this destination's server took (a resumed probe may have
        // only its suspects left; a poison line may be alone in its pack).
        let position = |want: &LineId| {
            (0..all.len()).rev().find(|&i| {
                all.get(i)
                    .is_some_and(|(l, b)| *b == want.0 && *l == want.1.as_slice())
            })
        };
        let latest = self.latest.clone();
        let canary = written_line.map(line).or(latest.as_deref());
        let Some(canary) = canary else {
            // Nothing of the pack got through: the server (or this
            // destination on it) is failing, not a line.
            return Err(server_failing(self.probed, &last_error));
        };
        let suspects: Vec<LineId> = self.probed.suspects.iter().cloned().collect();
        for s in suspects {
            // A suspect whose batch left the pack is no longer ours to judge.
            if let Some(i) = position(&s) {
                match self.confirm(dest, line(i), owner(i), canary)? {
                    Some(d) => dead.push(d),
                    None => {
                        self.probed.written.insert(s.clone());
                    }
                }
            }
            self.probed.suspects.remove(&s);
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

    /// [`Delivery::attempt`] with the whole pack's body compressed ahead.
    fn attempt_zipped(&self, dest: &Destination, z: &Zipped) -> Outcome {
        let started = Instant::now();
        let outcome = self.upstream.write_zipped(dest, &z.bytes);
        self.observe(&outcome, started);
        outcome
    }

    /// A suspect line, sent alone again: a dead letter only if, every round,
    /// it fails with a 5xx between two sends of the canary that are both
    /// written (canary, suspect, canary: a server failing every other
    /// request, or restarting, cannot line up with that twice).
    fn confirm(
        &self,
        dest: &Destination,
        suspect: &[u8],
        batch_id: i64,
        canary: &[u8],
    ) -> Result<Option<DeadLetter>, Deferred> {
        let alone = |line: &[u8]| {
            let mut body = line.to_vec();
            body.push(b'\n');
            body
        };
        let line = suspect.to_vec();
        let canary_written = |this: &Self| -> Result<(), Deferred> {
            match this.attempt(dest, &alone(canary)) {
                Outcome::Written => Ok(()),
                Outcome::ServerError { status, message } => Err(Deferred {
                    delay: None,
                    reason: format!(
                        "{status}: {message} (on a line already written: the server is failing)"
                    ),
                    server_error: true,
                }),
                other => Err(this.deferral(dest, other)),
            }
        };
        let mut last = (0, String::new());
        for _ in 0..SUSPECT_CONFIRMATIONS {
            if self.stop.load(Ordering::Relaxed) {
                return Err(shutting_down());
            }
            canary_written(self)?;
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
            canary_written(self)?;
        }
        let (status, message) = last;
        Ok(Some(DeadLetter {
            batch_id,
            status,
            reason: format!(
                "server error on this line alone, {POISON_PROBE_AFTER_FAILURES}+ times, while its neighbours were written (one before and after each of {SUSPECT_CONFIRMATIONS} re-sends): {message}"
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
