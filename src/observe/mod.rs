//! Observability, shared by the stages: the counters, gauges and histograms
//! every thread updates (`stats`, plain atomics; `backlog`: the exact backlog
//! gauges; `downsampling`: the warm tier's), their Prometheus exposition at `/metrics` (`metrics`,
//! `histogram`), and the `/health` document with `hissrv status` (`status`).
//!
//! Invariant: updating a statistic never blocks a stage (atomics, or a mutex
//! held for a copy); reading them never changes them.
//!
//! May use: config, clock. Nothing here calls into a stage.

pub mod archiving;
pub mod backlog;
pub mod downsampling;
pub mod histogram;
pub mod metrics;
pub mod stats;
pub mod status;

pub use stats::Stats;
