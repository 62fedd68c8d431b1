//! The command line: `hissrv run | check-config | status | inspect | export`
//! (`commands`: parsing the arguments), and `inspect`/`export`, which read a
//! buffer file without disturbing the agent that writes it (`inspect_warm`:
//! inspect's downsampling part).
//!
//! Invariant: inspection is read-only: it opens the buffer read-only, never
//! blocks a commit, and streams (export holds one batch at a time).
//!
//! May use: any stage (it is a top layer, like `app`).

mod commands;
pub mod inspect;
mod inspect_warm;

pub use commands::*;
