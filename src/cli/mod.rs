//! The command line: `hissrv run | check-config | status | inspect | export
//! | archive ls | restore` (`archive_ls`: the cold archive's objects;
//! `restore`: its points sent back through the agent)
//! (`commands`: parsing the arguments), and `inspect`/`export`, which read a
//! buffer file without disturbing the agent that writes it (`inspect_warm`:
//! inspect's downsampling part).
//!
//! Invariant: inspection is read-only: it opens the buffer read-only, never
//! blocks a commit, and streams (export holds one batch at a time).
//!
//! May use: any stage (it is a top layer, like `app`).

pub mod archive_ls;
mod commands;
pub mod inspect;
mod inspect_archive;
mod inspect_warm;
pub mod restore;

pub use commands::*;
