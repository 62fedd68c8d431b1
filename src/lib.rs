//! hissrv: an edge historian agent.
#![forbid(unsafe_code)]
pub mod lineproto;
pub mod config;
pub mod dest;
pub mod wal;
