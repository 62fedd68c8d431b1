//! hissrv's HTTP reader (the real files, not a copy) for the comparison with
//! hyper in BENCHMARKS.md ("HTTP framing").
#[path = "../../../src/ingest/budget.rs"]
pub mod budget;
#[path = "../../../src/ingest/http.rs"]
pub mod http;
