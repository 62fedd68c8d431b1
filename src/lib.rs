//! hissrv: an edge historian agent. Programs on a gateway write time-series
//! points to it as if it were InfluxDB; it stores them durably on local disk and
//! delivers them to the real InfluxDB upstream, in order, through outages and
//! power cuts.
//!
//! # Layout
//! The folders are the pipeline's stages (ARCHITECTURE.md has the picture and
//! the rules): points flow
//! [`ingest`] → [`batch`] → [`wal`] → [`deliver`], and every stage may use the
//! shared layers below it: [`route`], [`observe`], [`tls`], [`config`],
//! [`lineproto`], [`clock`]. Nothing below reaches up (`tests/code_map.rs` checks it).
//!
//! - [`ingest`]: HTTP and UDP listeners, the InfluxDB-compatible endpoints,
//!   credentials, the body budget, the agent's own metrics as points.
//! - [`batch`]: the rings in memory, the batcher (group commit) and the
//!   commit thread.
//! - [`wal`]: the SQLite write-ahead buffer: durability contract, schema and
//!   views, stored encodings (`codec`), the disk reserve, the commit doorbell.
//! - [`deliver`]: the forwarder thread: drain order, one delivery under the
//!   status policy, the upstream client, retention provisioning.
//! - [`archive`]: the cold archive: the archiver thread writes each raw
//!   point of a rule with `cold_storage` to gzip objects before its batch
//!   may leave the buffer.
//! - [`route`]: destinations and the bucket rules applied to each write.
//! - [`downsample`]: window aggregates by event time (the warm tier's
//!   engine; the commit thread drives it).
//! - [`observe`]: counters, gauges, histograms; `/metrics`; `/health` and
//!   `hissrv status`.
//! - [`tls`]: private CAs and client certificates, for the upstream's client
//!   and the S3 store's.
//! - [`config`]: the YAML config, embedded defaults, validation.
//! - [`lineproto`]: line protocol, InfluxDB 1.6's rules.
//! - [`clock`]: wall time and the forwarder's clock.
//! - [`cli`]: the command line, `inspect` and `export`.
//! - [`app`]: wiring, the stop sequence, signals, config hot reload.
#![forbid(unsafe_code)]

// The input-facing modules (HTTP framing and its body budget, the endpoints,
// listeners, credentials, config id ranges) deny panicking indexing,
// unchecked arithmetic and unwrap/expect outside tests: peer-given bytes and
// sizes reach them. The byte scanners (`lineproto`, `route`) deny unwrap and
// justify their indexing in their own headers. Defined before the modules,
// so their `mod.rs` files can apply it.
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

pub mod app;
pub mod archive;
pub mod batch;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deliver;
pub mod downsample;
pub mod ingest;
pub mod lineproto;
pub mod observe;
pub mod route;
#[cfg(test)]
mod sim_tests;
pub mod tls;
pub mod wal;
