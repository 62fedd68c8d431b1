//! Wiring and lifecycle, the top layer: `wiring` opens the buffer, starts the
//! commit and forwarder threads and runs the listeners and the batcher on one
//! smol executor, and stops them in order; `signals` turns SIGTERM/SIGINT into
//! the stop and SIGHUP into a reload; `reload` watches the config file and
//! puts a valid new config in force (live keys at once, the rest reported as
//! needing a restart).
//!
//! May use: every stage. Nothing uses it but `main.rs`.

pub mod reload;
pub mod signals;
mod wiring;

pub use wiring::run;
