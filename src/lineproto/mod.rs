//! Line protocol, shared by the stages: the parser that judges and
//! normalises request bodies exactly as InfluxDB 1.6 does (`parse`, with its
//! `errors`, `values` and `lines` scanners; `numbers`, the digits-to-number fast paths
//! both use), and `split`, which takes a normalised
//! line apart again (routing and the buffer's column codec use it;
//! `split_lines`: a whole payload at once, for the codec and the windows).
//!
//! Invariant: a line accepted here is stored and delivered in a form that
//! parses back to the same point; anything else is rejected with its line,
//! column and text.
//!
//! May use: nothing (a leaf).

pub mod numbers;
mod parse;
pub mod split;
pub mod split_lines;

pub use parse::*;
