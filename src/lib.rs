//! hissrv: an edge historian agent. Programs on a gateway write time-series
//! points to it as if it were InfluxDB; it stores them durably on local disk and
//! delivers them to the real InfluxDB upstream, in order, through outages and
//! power cuts.
//!
//! # Layout
//! - [`config`]: the YAML config, embedded defaults, validation.
//! - [`lineproto`]: line-protocol validation and normalisation (InfluxDB 1.6's rules).
//! - [`dest`]: destinations, and the db/rp ⇄ bucket mapping.
//! - [`route`]: bucket routing rules (tag-based, range, hash) applied to each write.
//! - [`auth`]: ingest credentials.
//! - [`http`]: the HTTP/1.1 server side (framing, limits, gzip).
//! - [`budget`]: the shared memory budget for request bodies.
//! - [`ingest`]: the InfluxDB-compatible endpoints and UDP datagrams.
//! - [`server`]: listeners and connection loops on the executor.
//! - [`ring`]: fixed-capacity memory for points awaiting commit.
//! - [`batch`]: the batcher (group commit) and the commit thread.
//! - [`adaptive`]: load measurement and the batcher's cut-or-wait decision.
//! - [`codec`]: batch payload encodings (delta/columns + lz4), decoding back to line protocol.
//! - [`wal`]: the SQLite write-ahead buffer and its durability contract.
//! - [`upstream`]: one write to InfluxDB and what its answer means.
//! - [`forward`]: the forwarder thread: packing, backlog replay, back-off
//!   (`forward_heads`: its cached heads and the backlog gauges;
//!   `forward_deliver`: one delivery turn).
//! - [`drain`]: drain order: bucket priority with a fair share, request packing.
//! - [`provision`]: `manage_retention`: databases, retention policies, buckets upstream.
//! - [`deliver`]: one upstream request's worth of batches under the status policy.
//! - [`signals`]: SIGTERM/SIGINT as the shutdown signal, SIGHUP as reload.
//! - [`reload`]: config hot reload: watch, validate, apply live or report restart-needed.
//! - [`selfmon`]: the agent's own metrics written upstream (`hissrv_internal`).
//! - [`stats`]: counters, gauges and histograms shared by all threads
//!   ([`backlog`]: the exact backlog gauges).
//! - [`metrics`]: histograms and the Prometheus exposition at `/metrics`.
//! - [`inspect`]: `hissrv inspect` / `export`, and the buffer's SQLite views.
//! - [`cli`]: the command line.
//! - [`status`]: the `/health` document and `hissrv status`.
//! - [`app`]: wiring and the stop sequence.
#![forbid(unsafe_code)]

// The input-facing modules (HTTP framing and its body budget, the endpoints,
// listeners, credentials, config id ranges) deny panicking indexing,
// unchecked arithmetic and unwrap/expect outside tests: peer-given bytes and
// sizes reach them. The byte scanners (`lineproto`, `route`) deny unwrap and
// justify their indexing in their own headers.
macro_rules! input_facing {
    ($($module:item)*) => {$(
        #[cfg_attr(
            not(test),
            deny(
                clippy::indexing_slicing,
                clippy::arithmetic_side_effects,
                clippy::unwrap_used,
                clippy::expect_used
            )
        )]
        $module
    )*};
}

pub mod adaptive;
pub mod app;
input_facing! { pub mod auth; }
pub mod backlog;
pub mod batch;
input_facing! { pub mod budget; }
pub mod cli;
pub mod codec;
pub mod config;
pub mod deliver;
pub mod dest;
pub mod drain;
pub mod forward;
mod forward_heads;
input_facing! { pub mod http; }
input_facing! { pub mod ingest; }
pub mod inspect;
pub mod lineproto;
pub mod metrics;
pub mod provision;
pub mod reload;
pub mod ring;
pub mod route;
pub mod selfmon;
input_facing! { pub mod server; }
pub mod signals;
pub mod stats;
pub mod status;
pub mod upstream;
pub mod wal;
