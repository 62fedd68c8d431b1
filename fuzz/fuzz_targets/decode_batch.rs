//! The stored-batch decoder on arbitrary bytes, in every format: it must
//! return an error or line protocol, never panic, and never allocate beyond
//! the size cap (libFuzzer's -rss_limit_mb and -malloc_limit_mb catch that).
//!
//! Run: `cargo fuzz run decode_batch -- -max_total_time=60 -malloc_limit_mb=1024`
#![no_main]

use hissrv::lineproto::split::split;
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
            let (a, b): (Vec<_>, Vec<_>) = (
                hissrv::lineproto::lines(&lp).collect(),
                hissrv::lineproto::lines(&back).collect(),
            );
            assert_eq!(a.len(), b.len());
            // Line by line the same key, fields, types and values (floats
            // bit for bit): only spelling may differ.
            for (x, y) in a.iter().zip(&b) {
                let (x, y) = (split(x).expect("encoded"), split(y).expect("decoded"));
                assert_eq!((x.key, x.ts), (y.key, y.ts));
                assert_eq!(x.fields.len(), y.fields.len());
                for ((kx, vx), (ky, vy)) in x.fields.iter().zip(&y.fields) {
                    assert_eq!(kx, ky);
                    assert_eq!(vx.kind(), vy.kind());
                    match (vx.as_f64(), vy.as_f64()) {
                        (Some(p), Some(q)) => assert_eq!(p.to_bits(), q.to_bits()),
                        _ => assert_eq!(vx, vy),
                    }
                }
            }
            // And the decoded text is what the parser stores for itself.
            let mut again = Vec::new();
            hissrv::lineproto::parse_into(&back, &opts, &mut again);
            assert_eq!(again, back);
        }
        let _ = decode(FORMAT_NONE, &lp);
    }
});
