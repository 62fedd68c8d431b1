//! The stored-batch decoder on arbitrary bytes, in every format: it must
//! return an error or line protocol, never panic, and never allocate beyond
//! the size cap (libFuzzer's -rss_limit_mb and -malloc_limit_mb catch that).
//!
//! Run: `cargo fuzz run decode_batch -- -max_total_time=60 -malloc_limit_mb=1024`
#![no_main]

use hissrv::wal::codec::{FORMAT_DELTA, FORMAT_LZ4, FORMAT_NONE, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for format in [FORMAT_DELTA, FORMAT_LZ4] {
        let _ = decode(format, data);
    }
    // And when the bytes happen to be line protocol: what is encoded
    // decodes to the same number of lines.
    if let Ok(text) = std::str::from_utf8(data) {
        let opts = hissrv::lineproto::ParseOptions {
            precision: hissrv::lineproto::Precision::Nanos,
            now_ns: 0,
            allow_unsigned: true,
        };
        let mut lp = Vec::new();
        hissrv::lineproto::parse_into(text.as_bytes(), &opts, &mut lp);
        if let Ok(blob) = encode(FORMAT_DELTA, &lp) {
            let back = decode(FORMAT_DELTA, &blob).expect("own encoding decodes");
            assert_eq!(
                hissrv::lineproto::lines(&back).count(),
                hissrv::lineproto::lines(&lp).count()
            );
        }
        let _ = decode(FORMAT_NONE, &lp);
    }
});
