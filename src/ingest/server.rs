//! Listeners: the HTTP accept loop, each connection's request loop, and the
//! UDP socket. All run as tasks on the single-threaded executor.
//!
//! Bounds: at most `service.max_connections` connections are served at once
//! (the rest wait in the kernel's backlog); an idle keep-alive connection is
//! closed after `IDLE_TIMEOUT_SECS`; every request is read under the body
//! limit and deadlines (see `http`), its credentials checked before its body.

use crate::ingest::budget::BodyBudget;
use crate::ingest::http::{Conn, ReadError, Request};
use crate::ingest::Ingest;
use crate::ingest::json_error;
use smol::net::{TcpListener, UdpSocket};
use smol::{LocalExecutor, Timer};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// An idle keep-alive connection (or a stalled request) is closed after this.
const IDLE_TIMEOUT_SECS: u64 = 60;
/// An answer not taken by its peer in this long closes the connection: a
/// peer that pipelines requests and never reads must not hold a slot.
const WRITE_TIMEOUT_SECS: u64 = 10;
/// Largest UDP datagram (the IPv4 maximum payload).
const MAX_DATAGRAM_BYTES: usize = 65_507;

/// Requests being handled right now; shutdown waits for them.
#[derive(Default)]
pub struct InFlight(Cell<usize>);

impl InFlight {
    pub fn count(&self) -> usize {
        self.0.get()
    }
}

struct Guard<'a>(&'a InFlight);

impl<'a> Guard<'a> {
    fn new(f: &'a InFlight) -> Self {
        f.0.set(f.0.get().saturating_add(1));
        Guard(f)
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.0.set(self.0.0.get().saturating_sub(1));
    }
}

/// Accepts until `stop` fires; each connection becomes a task on `ex`.
pub async fn serve_http(
    ex: Rc<LocalExecutor<'static>>,
    listener: TcpListener,
    ingest: Rc<Ingest>,
    in_flight: Rc<InFlight>,
    stop: smol::channel::Receiver<()>,
) {
    // Read once: these take effect at the next start (reload reports that).
    let config = &ingest.settings().config;
    let max = config.service.max_connections;
    let permits = std::sync::Arc::new(smol::lock::Semaphore::new(max));
    // Validated: at most MAX_BODY_LIMIT_MB; the budget saturates, never wraps.
    let mib = |mb: u64| usize::try_from(mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
    // No larger than the memory rings, which a quarter of the buffer's quota
    // bounds (`app::wiring`): a larger body could never be committed.
    let max_body = mib(config.service.max_body_mb)
        .min(
            mib(config.buffer.max_size_mb)
                .checked_div(crate::config::RING_QUOTA_SHARE as usize)
                .unwrap_or(usize::MAX),
        );
    let budget = BodyBudget::new(mib(config.service.max_inflight_body_mb));
    loop {
        let accept = async {
            let permit = permits.acquire_arc().await;
            Some((listener.accept().await, permit))
        };
        let stopped = async {
            let _ = stop.recv().await;
            None
        };
        let Some((accepted, permit)) = smol::future::or(stopped, accept).await else {
            break;
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                log::warn!("accept failed: {e}");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ingest = ingest.clone();
        let in_flight = in_flight.clone();
        let budget = budget.clone();
        ex.spawn(async move {
            serve_conn(
                Conn::with_budget(stream, budget),
                &ingest,
                &in_flight,
                max_body,
            )
            .await;
            log::trace!("connection from {peer} closed");
            drop(permit);
        })
        .detach();
    }
    log::info!("http listener closed");
}

async fn serve_conn(
    mut conn: Conn<smol::net::TcpStream>,
    ingest: &Ingest,
    in_flight: &InFlight,
    max_body: usize,
) {
    loop {
        let head = match conn.read_head(Duration::from_secs(IDLE_TIMEOUT_SECS)).await {
            Ok(h) => h,
            Err(ReadError::Closed) | Err(ReadError::Io(_)) => return,
            Err(e) => return refuse(&mut conn, e, max_body).await,
        };
        // Credentials are checked before a byte of the body is read: an
        // unauthenticated peer never gets body memory or parser time.
        if let Some(denied) = ingest.before_body(&head) {
            let _ = respond_in_time(&mut conn, &denied, false).await;
            return;
        }
        let body = match conn.read_body(&head, max_body).await {
            Ok(b) => b,
            Err(ReadError::Closed) | Err(ReadError::Io(_)) => return,
            Err(e) => return refuse(&mut conn, e, max_body).await,
        };
        let req = Request { body, ..head.req };
        let guard = Guard::new(in_flight);
        let resp = ingest.route(&req).await;
        let keep = req.keep_alive && !ingest.intake.is_stopping();
        // The body is handled: its memory goes back before the answer is
        // written, and the answer has a deadline, so a peer that never reads
        // holds neither budget nor its connection slot for long.
        drop(req);
        conn.release_body_budget();
        let sent = respond_in_time(&mut conn, &resp, keep).await;
        // Counted until the answer is written: shutdown waits for it.
        drop(guard);
        if sent.is_err() || !keep {
            return;
        }
    }
}

/// Writes an answer within `WRITE_TIMEOUT_SECS`; an error or a peer that
/// does not read in time is an `Err` (the caller closes the connection).
async fn respond_in_time(
    conn: &mut Conn<smol::net::TcpStream>,
    resp: &crate::ingest::http::Response,
    keep_alive: bool,
) -> std::io::Result<()> {
    let write = conn.respond(resp, keep_alive);
    let late = async {
        Timer::after(Duration::from_secs(WRITE_TIMEOUT_SECS)).await;
        Err(std::io::Error::from(std::io::ErrorKind::TimedOut))
    };
    smol::future::or(write, late).await
}

/// Answers a request that could not be read, and closes.
async fn refuse(conn: &mut Conn<smol::net::TcpStream>, e: ReadError, max_body: usize) {
    let (status, msg) = match e {
        ReadError::TooLarge => (
            413,
            format!(
                "request body exceeds service.max_body_mb ({max_body} bytes; at most a quarter of buffer.max_size_mb)"
            ),
        ),
        ReadError::HeadersTooLarge => (431, "request headers too large".to_string()),
        ReadError::Timeout => (408, "request not received in time".to_string()),
        ReadError::Busy => (
            503,
            "hissrv is busy: request body memory (service.max_inflight_body_mb) is in use; retry"
                .to_string(),
        ),
        ReadError::Bad(m) => (400, m),
        ReadError::Closed | ReadError::Io(_) => return,
    };
    let mut resp = json_error(status, msg);
    if status == 503 {
        resp = resp.header("Retry-After", "1");
    }
    let _ = respond_in_time(conn, &resp, false).await;
}

/// Receives datagrams until `stop` fires.
pub async fn serve_udp(socket: UdpSocket, ingest: Rc<Ingest>, stop: smol::channel::Receiver<()>) {
    let mut buf = vec![0u8; MAX_DATAGRAM_BYTES];
    loop {
        let recv = async { Some(socket.recv_from(&mut buf).await) };
        let stopped = async {
            let _ = stop.recv().await;
            None
        };
        match smol::future::or(stopped, recv).await {
            None => break,
            Some(Ok((n, _))) => ingest.datagram(buf.get(..n).unwrap_or_default()),
            Some(Err(e)) => log::warn!("udp receive failed: {e}"),
        }
    }
    log::info!("udp listener closed");
}
