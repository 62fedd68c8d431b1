//! The InfluxDB-compatible endpoints: `POST /write` (1.x), `POST /api/v2/write`
//! (2.x), `GET /ping`, `GET /health`, and UDP datagrams.
//!
//! A write is parsed on the executor, its good lines go into the ring, and the
//! request waits for the commit that holds them: 204 means *stored durably*.
//! Bad lines get InfluxDB's answer (400, `partial write: unable to parse …`,
//! with the line number) while the good lines of the same body are stored.
//!
//! | situation                          | answer                                  |
//! |------------------------------------|-----------------------------------------|
//! | all lines stored                   | 204                                     |
//! | some lines bad, the rest stored    | 400 `partial write: …`                  |
//! | no credentials we know             | 401                                     |
//! | rings full (commits behind)        | 503 + `Retry-After: 1`                  |
//! | buffer quota or disk full          | 507 + `Retry-After: 30`, nothing stored |
//! | shutting down                      | 503 + `Retry-After: 5`                  |

use crate::batch::Intake;
use crate::clock::now_ns;
use crate::config::{ApiVersion, Config};
use crate::route::dest::Destination;
use crate::ingest::http::{Request, Response};
use crate::lineproto::{self, ParseOptions, Parsed, Precision};
use crate::batch::ring::{Entry, Refusal};
use crate::route::Router;
use crate::observe::stats::Stats;
use crate::observe::status::Health;
use crate::wal::WalError;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// What `/ping` reports as the InfluxDB version: the 1.x API we serve.
/// The header `hissrv restore` sends with points from an archive: they are
/// not archived again.
pub const RESTORE_HEADER: &str = "x-hissrv-restore";

pub const COMPAT_VERSION: &str = concat!("1.8-compatible hissrv/", env!("CARGO_PKG_VERSION"));

#[derive(Clone, Copy, PartialEq)]
enum Api {
    V1,
    V2,
}

/// The settings in force on the executor; a reload swaps them whole, and a
/// request uses the ones it started with from its first line to its ack.
pub struct Settings {
    pub config: Config,
    pub router: Option<Router>,
}

impl Settings {
    pub fn new(config: Config) -> Settings {
        Settings {
            router: Router::from_config(&config.influxdb),
            config,
        }
    }
}

pub struct Ingest {
    pub intake: Rc<Intake>,
    settings: RefCell<Rc<Settings>>,
    pub stats: Arc<Stats>,
    /// The destinations buffered now, shared with the forwarder.
    destinations: Arc<crate::route::dest::Destinations>,
}

#[derive(miniserde::Serialize)]
struct ErrorBody {
    error: String,
}

#[derive(miniserde::Serialize)]
struct ErrorBodyV2 {
    code: String,
    message: String,
    error: String,
}

/// A 1.x-style JSON error answer.
pub fn json_error(status: u16, message: String) -> Response {
    error(Api::V1, status, message)
}

fn error(api: Api, status: u16, message: String) -> Response {
    let body = match api {
        Api::V1 => miniserde::json::to_string(&ErrorBody { error: message }),
        Api::V2 => miniserde::json::to_string(&ErrorBodyV2 {
            code: if status == 400 {
                "invalid"
            } else {
                "internal error"
            }
            .into(),
            message: message.clone(),
            error: message,
        }),
    };
    Response::json(status, body).header("X-Influxdb-Error", "see body")
}

impl Ingest {
    pub fn new(intake: Rc<Intake>, settings: Settings, stats: Arc<Stats>) -> Ingest {
        Ingest {
            intake,
            settings: RefCell::new(Rc::new(settings)),
            stats,
            destinations: Arc::default(),
        }
    }

    /// Shares the set of buffered destinations with the forwarder.
    pub fn with_destinations(mut self, d: Arc<crate::route::dest::Destinations>) -> Ingest {
        self.destinations = d;
        self
    }

    /// The settings in force now.
    pub fn settings(&self) -> Rc<Settings> {
        self.settings.borrow().clone()
    }

    /// Puts new settings in force for the requests that start from now on.
    pub fn apply(&self, settings: Settings) {
        *self.settings.borrow_mut() = Rc::new(settings);
    }

    /// The answer for a request that must not have its body read: a write
    /// without credentials we know (401), or a body sent where none is
    /// expected (every other endpoint: 400, so no unauthenticated peer gets
    /// body memory). `None`: read the body and route.
    pub fn before_body(&self, head: &crate::ingest::http::Head) -> Option<Response> {
        let req = &head.req;
        let api = match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/write") => Api::V1,
            ("POST", "/api/v2/write") => Api::V2,
            _ if head.framing == crate::ingest::http::Framing::Length(0) => return None,
            _ => {
                Stats::add(&self.stats.http_requests, 1);
                return Some(error(
                    Api::V1,
                    400,
                    format!("{} {} takes no request body", req.method, req.path),
                ));
            }
        };
        if self.settings().config.service.auth.allows(req) {
            return None;
        }
        Stats::add(&self.stats.http_requests, 1);
        Some(error(api, 401, "authorization failed".into()))
    }

    pub async fn route(&self, req: &Request) -> Response {
        Stats::add(&self.stats.http_requests, 1);
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/write") => self.write(req, Api::V1).await,
            ("POST", "/api/v2/write") => self.write(req, Api::V2).await,
            ("GET" | "HEAD", "/ping") => Response::new(204)
                .header("X-Influxdb-Version", COMPAT_VERSION)
                .header("X-Influxdb-Build", "OSS"),
            ("GET", "/health") => self.health(),
            ("GET", "/metrics") => self.metrics(),
            (_, "/write" | "/api/v2/write" | "/ping" | "/health" | "/metrics") => {
                error(Api::V1, 405, format!("method {} not allowed", req.method))
            }
            _ => error(Api::V1, 404, format!("no endpoint {}", req.path)),
        }
    }

    fn options(live: &Settings, precision: Precision) -> ParseOptions {
        ParseOptions {
            precision,
            now_ns: now_ns(),
            // 1.x upstreams refuse unsigned fields; refuse them at the door too.
            allow_unsigned: live.config.influxdb.api == ApiVersion::V2,
        }
    }

    async fn write(&self, req: &Request, api: Api) -> Response {
        let live = self.settings();
        if !live.config.service.auth.allows(req) {
            return error(api, 401, "authorization failed".into());
        }
        if self.intake.is_stopping() {
            Stats::add(&self.stats.shutdown_refusals, 1);
            return refused(api, &Refusal::ShuttingDown);
        }
        let arrived = std::time::Instant::now();
        let precision_param = req.param("precision").unwrap_or_default();
        let Some(precision) = Precision::from_param(&precision_param) else {
            return error(
                api,
                400,
                format!("invalid precision {precision_param:?}: use ns, us, ms, s, m or h"),
            );
        };
        let cfg = &live.config.influxdb;
        let dest = match api {
            Api::V1 => {
                Destination::from_v1(req.param("db").as_deref(), req.param("rp").as_deref(), cfg)
            }
            Api::V2 => Destination::from_bucket(req.param("bucket").as_deref(), cfg),
        };
        // The normalised form can be longer (timestamps added).
        let mut out = Vec::with_capacity(req.body.len().saturating_add(req.body.len() / 8));
        let opts = Self::options(&live, precision);
        let parsed = lineproto::parse_into(&req.body, &opts, &mut out);
        Stats::add(&self.stats.lines_rejected, parsed.rejected);
        // A gateway without an RTC boots at 1970: stamping would store the
        // points at 1970 (and retention would expire them once the clock
        // is set). The producer keeps them and retries instead.
        if parsed.stamped > 0 && opts.now_ns < crate::clock::WALL_CLOCK_FLOOR_NS {
            Stats::add(&self.stats.clock_unset_refusals, 1);
            return refused(
                api,
                &Refusal::ClockUnset {
                    lines: parsed.stamped,
                },
            );
        }
        if parsed.points > 0 {
            let (ack, acked) = smol::channel::unbounded();
            let max_destinations = live.config.service.max_destinations;
            // `hissrv restore` sends back what an archive holds: it is
            // not owed to the archive again.
            let restored = req.header(RESTORE_HEADER) == Some("1");
            let stored = self.store(
                live.router.as_ref(),
                dest,
                &parsed,
                (out, restored),
                Some(ack),
                Some(max_destinations),
            );
            let parts = match stored {
                Ok(n) => n,
                Err(refusal) => {
                    let counter = match refusal {
                        Refusal::TooManyDestinations { .. } => {
                            Some(&self.stats.destination_refusals)
                        }
                        Refusal::LargerThanRing { .. } => None,
                        _ => Some(&self.stats.ring_full_refusals),
                    };
                    if let Some(c) = counter {
                        Stats::add(c, 1);
                    }
                    return refused(api, &refusal);
                }
            };
            // One ack per bucket the write was routed to; all must commit.
            for _ in 0..parts {
                match acked.recv().await {
                    Ok(Ok(())) => {}
                    Ok(Err(refusal)) => return refused(api, &refusal),
                    Err(_) => {
                        Stats::add(&self.stats.shutdown_refusals, 1);
                        return refused(api, &Refusal::ShuttingDown);
                    }
                }
            }
            self.stats
                .ack_latency
                .observe(arrived.elapsed().as_secs_f64());
            // Counted once stored (a refused try is sent again).
            if restored {
                Stats::add(&self.stats.points_restored, parsed.points);
            }
        }
        if parsed.rejected > 0 {
            return error(api, 400, parse_failure(&parsed));
        }
        Response::new(204)
    }

    /// Routes parsed points to their buckets and offers them to the ring, all
    /// or none; returns how many entries (acks to wait for) that made.
    fn store(
        &self,
        router: Option<&Router>,
        dest: Destination,
        parsed: &Parsed,
        (payload, restored): (Vec<u8>, bool),
        ack: Option<crate::batch::ring::AckSender>,
        max_destinations: Option<usize>,
    ) -> Result<usize, Refusal> {
        Stats::add(&self.stats.points_received, parsed.points);
        let arrived = std::time::Instant::now();
        let entries: Vec<Entry> = match router {
            None => vec![Entry {
                dest,
                points: parsed.points,
                min_ts: parsed.min_ts.unwrap_or(0),
                max_ts: parsed.max_ts.unwrap_or(0),
                payload,
                ack,
                arrived,
                restored,
            }],
            Some(router) => router
                .route(&dest, &payload)
                .into_iter()
                .map(|r| Entry {
                    dest: r.dest,
                    points: r.points,
                    min_ts: r.min_ts,
                    max_ts: r.max_ts,
                    payload: r.payload,
                    ack: ack.clone(),
                    arrived,
                    restored,
                })
                .collect(),
        };
        // A new destination only while under the cap (producers' writes);
        // the agent's own points and UDP go where the config says.
        // A write whose stored form (timestamps added) exceeds the whole
        // ring could never be taken: refuse it for good, not with a 503.
        let bytes: usize = entries.iter().map(|e| e.payload.len()).sum();
        let capacity = self.intake.ring.borrow().capacity_bytes();
        if bytes > capacity {
            return Err(Refusal::LargerThanRing { bytes, capacity });
        }
        let mut added = Vec::new();
        let give_back = |added: &[Destination]| {
            for d in added {
                self.destinations.release(d);
            }
        };
        for e in &entries {
            match max_destinations.map(|max| (max, self.destinations.admit(&e.dest, max))) {
                Some((max, crate::route::dest::Admission::Refused)) => {
                    give_back(&added);
                    return Err(Refusal::TooManyDestinations { max });
                }
                Some((_, crate::route::dest::Admission::Added)) => added.push(e.dest.clone()),
                Some((_, crate::route::dest::Admission::Known)) => {}
                None => self.destinations.insert(&e.dest),
            }
        }
        let n = entries.len();
        if self.intake.push(entries).is_err() {
            // Refused whole: what this write added is not buffered.
            give_back(&added);
            return Err(Refusal::RingFull);
        }
        Ok(n)
    }

    /// Stores the agent's own line (self-monitoring) with no ack; false if
    /// the ring had no room.
    pub fn store_internal(&self, data: &[u8]) -> bool {
        let live = self.settings();
        let mut out = Vec::with_capacity(data.len().saturating_add(1));
        let parsed = lineproto::parse_into(data, &Self::options(&live, Precision::Nanos), &mut out);
        if parsed.points == 0 {
            return true;
        }
        // The agent's own points go to the configured database, unrouted.
        let dest = Destination::configured(&live.config.influxdb);
        self.store(None, dest, &parsed, (out, false), None, None).is_ok()
    }

    /// One UDP datagram: parse, store, never answer. Drops are counted.
    pub fn datagram(&self, data: &[u8]) {
        if self.intake.is_stopping() {
            return;
        }
        let live = self.settings();
        // A reload can add auth while the UDP listener (restart-only) stays
        // open: datagrams carry no credentials, so they are refused then.
        let service = &live.config.service;
        if !service.auth.is_open() && !service.udp_allow_unauthenticated {
            Stats::add(&self.stats.udp_datagrams_unauthenticated, 1);
            return;
        }
        let mut out = Vec::with_capacity(data.len().saturating_add(data.len() / 8));
        let precision =
            Precision::from_param(&live.config.service.udp_precision).unwrap_or(Precision::Nanos);
        let opts = Self::options(&live, precision);
        let parsed = lineproto::parse_into(data, &opts, &mut out);
        Stats::add(&self.stats.lines_rejected, parsed.rejected);
        Stats::add(&self.stats.udp_points_dropped, parsed.rejected);
        if parsed.stamped > 0 && opts.now_ns < crate::clock::WALL_CLOCK_FLOOR_NS {
            // No one to tell to retry: dropped, counted.
            Stats::add(&self.stats.clock_unset_refusals, 1);
            Stats::add(&self.stats.udp_points_dropped, parsed.points);
            return;
        }
        Stats::add(&self.stats.udp_lines_unparseable, parsed.rejected);
        if let Some(e) = parsed.errors.first() {
            log::debug!("udp: {e}");
        }
        if parsed.points == 0 {
            return;
        }
        let dest = Destination::configured(&live.config.influxdb);
        if self
            .store(live.router.as_ref(), dest, &parsed, (out, false), None, None)
            .is_err()
        {
            Stats::add(&self.stats.udp_points_dropped, parsed.points);
            Stats::add(&self.stats.udp_dropped_ring_full, parsed.points);
        }
    }
}

/// InfluxDB's 400 text, each line with its number (and column).
fn parse_failure(parsed: &Parsed) -> String {
    let mut msg = String::new();
    if parsed.points > 0 {
        msg.push_str("partial write: ");
    }
    for (i, e) in parsed.errors.iter().enumerate() {
        if i > 0 {
            msg.push('\n');
        }
        msg.push_str(&format!(
            "unable to parse '{}': {} at column {} (line {})",
            e.text, e.kind, e.column, e.line
        ));
    }
    let more = parsed.rejected.saturating_sub(parsed.errors.len());
    if more > 0 {
        msg.push_str(&format!("\n… and {more} more bad lines"));
    }
    msg.push_str(&format!(" dropped={}", parsed.rejected));
    msg
}

fn refused(api: Api, refusal: &Refusal) -> Response {
    let (status, retry_s, msg) = match refusal {
        Refusal::RingFull => (
            503,
            1,
            "hissrv is busy: its memory rings are full; retry".to_string(),
        ),
        Refusal::ShuttingDown => (503, 5, "hissrv is shutting down; retry".to_string()),
        Refusal::ClockUnset { lines } => (
            503,
            30,
            format!(
                "this gateway's clock is not set yet: {lines} lines without a timestamp cannot be stamped; \
                 retry once the clock is synchronised, or send timestamps"
            ),
        ),
        Refusal::LargerThanRing { bytes, capacity } => {
            return error(
                api,
                413,
                format!(
                    "this write takes {bytes} bytes once normalised, more than the memory rings hold ({capacity} bytes: performance.ring_buffer_mb, at most a quarter of buffer.max_size_mb); send smaller bodies"
                ),
            );
        }
        Refusal::TooManyDestinations { max } => {
            return error(
                api,
                400,
                format!(
                    "too many destinations buffered: service.max_destinations is {max}; \
                     this write names a database/retention policy (or bucket) beyond them"
                ),
            );
        }
        Refusal::Storage(
            e @ (WalError::QuotaFull { .. } | WalError::DiskFull | WalError::ReserveMissing),
        ) => {
            (507, 30, e.to_string())
        }
        Refusal::Storage(e @ WalError::ReadOnly { .. }) => (503, 30, e.to_string()),
        Refusal::Storage(e) => (500, 5, e.to_string()),
    };
    error(api, status, msg).header("Retry-After", retry_s.to_string())
}

#[path = "health.rs"]
mod health;
