//! Stage 1, ingest: where points come in. The HTTP/1.1 server side (framing,
//! deadlines, gzip, the shared body budget), the listeners on the executor,
//! the InfluxDB-compatible endpoints (`/write`, `/api/v2/write`, `/ping`,
//! `/health`, `/metrics`), UDP datagrams, ingest credentials, and the agent's
//! own metrics written as points (`selfmon`).
//!
//! Owns: sockets and connections, request bodies in memory (within
//! `service.max_inflight_body_mb`), the live settings a reload swaps in.
//!
//! Invariants:
//! - nothing here touches SQLite: a write is parsed, routed and handed to the
//!   batch stage, and its 204 waits for the batch stage to report the commit;
//! - bad input never takes good points down with it: a body's good lines are
//!   kept and the bad ones named (line, column, text) in the 400;
//! - every peer-given length and byte is checked before use (the modules
//!   marked `input_facing!` deny panicking indexing and unchecked arithmetic).
//!
//! May use: batch, wal (its error and its clock-free types), route, observe,
//! config, lineproto, clock. Runs on the single-threaded executor only.

input_facing! { pub mod auth; }
input_facing! { pub mod budget; }
input_facing! { pub mod endpoints; }
input_facing! { pub mod http; }
pub mod selfmon;
input_facing! { pub mod server; }

pub use endpoints::*;
