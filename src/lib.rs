//! hissrv: an edge historian agent.
#![forbid(unsafe_code)]
pub mod lineproto;
