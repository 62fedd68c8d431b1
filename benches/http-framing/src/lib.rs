//! hissrv's HTTP reader (the real files, not a copy) for the comparison with
//! hyper in BENCHMARKS.md ("HTTP framing").
#[path = "../../../src/budget.rs"]
pub mod budget;
#[path = "../../../src/http.rs"]
pub mod http;
