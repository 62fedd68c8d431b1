//! Ingest → store → re-parse on arbitrary bodies: what the parser accepts is
//! what the buffer keeps and what the upstream gets.
//!
//! Invariants, for every body:
//! - the stored payload splits into exactly as many lines as points accepted
//!   (a line never re-splits into two, nor two into one);
//! - every stored line, re-parsed as a body of its own, is accepted and
//!   normalises to itself (the stored form is a fixed point);
//! - the delta and lz4 encodings decode to the same points: same series key,
//!   same fields with the same types and bit-identical values, same
//!   timestamp, same order (a line the column splitter refuses comes back
//!   byte for byte);
//! - hash routing puts a line in the same bucket whatever its tag order.
//!
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run ingest_roundtrip -- -max_total_time=60`
#![no_main]

use hissrv::lineproto::split::{Value, split};
use hissrv::lineproto::{ParseOptions, Precision, lines, parse_into};
use hissrv::wal::codec::{FORMAT_DELTA, FORMAT_LZ4, decode, encode};
use libfuzzer_sys::fuzz_target;

fn same_value(a: &Value, b: &Value) -> bool {
    // A float may come back in another spelling (`1e3` as `1000.0`): the
    // same f64, bit for bit, is what counts.
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

fuzz_target!(|body: &[u8]| {
    let opts = ParseOptions {
        precision: Precision::Nanos,
        now_ns: 1_700_000_000_000_000_000,
        allow_unsigned: body.first().is_some_and(|b| b % 2 == 0),
    };
    let mut stored = Vec::new();
    let parsed = parse_into(body, &opts, &mut stored);
    let stored_lines: Vec<&[u8]> = lines(&stored).collect();
    assert_eq!(
        stored_lines.len(),
        parsed.points,
        "accepted points and stored lines differ: {:?}",
        String::from_utf8_lossy(&stored)
    );
    for line in &stored_lines {
        let mut again = Vec::new();
        let mut body = line.to_vec();
        body.push(b'\n');
        let p = parse_into(&body, &opts, &mut again);
        assert_eq!(
            (p.points, p.rejected),
            (1, 0),
            "a stored line does not re-parse: {:?} {:?}",
            String::from_utf8_lossy(line),
            p.errors
        );
        assert_eq!(again, body, "the stored form is not a fixed point");
    }
    for format in [FORMAT_DELTA, FORMAT_LZ4] {
        let Ok(blob) = encode(format, &stored) else {
            continue;
        };
        let back = decode(format, &blob).expect("our own encoding decodes");
        let back_lines: Vec<&[u8]> = lines(&back).collect();
        assert_eq!(back_lines.len(), stored_lines.len(), "format {format}");
        for (a, b) in stored_lines.iter().zip(&back_lines) {
            // A line the column splitter refuses is kept as text, whole.
            let Some(x) = split(a) else {
                assert_eq!(a, b, "format {format}: an unsplittable line changed");
                continue;
            };
            let Some(y) = split(b) else {
                panic!(
                    "format {format}: decoded line unsplittable: {:?}",
                    String::from_utf8_lossy(b)
                );
            };
            assert_eq!(x.key, y.key, "format {format}: series key");
            assert_eq!(x.ts, y.ts, "format {format}: timestamp");
            assert_eq!(x.fields.len(), y.fields.len(), "format {format}: fields");
            for ((ka, va), (kb, vb)) in x.fields.iter().zip(&y.fields) {
                assert_eq!(ka, kb, "format {format}: field key");
                assert!(same_value(va, vb), "format {format}: {va:?} != {vb:?}");
            }
        }
    }
    // Hash routing: the series key with its tags reversed hashes the same.
    for line in &stored_lines {
        let Some(parts) = hissrv::lineproto::split::parts(line) else {
            continue;
        };
        let key = parts.key;
        let mut pieces: Vec<&[u8]> = Vec::new();
        let mut start = 0;
        for i in 0..key.len() {
            if key[i] == b',' && (i == 0 || key[i - 1] != b'\\') {
                pieces.push(&key[start..i]);
                start = i + 1;
            }
        }
        pieces.push(&key[start..]);
        if pieces.len() > 2 {
            let mut reversed = pieces[0].to_vec();
            for p in pieces[1..].iter().rev() {
                reversed.push(b',');
                reversed.extend_from_slice(p);
            }
            assert_eq!(
                hissrv::route::series_hash(key),
                hissrv::route::series_hash(&reversed),
                "{:?}",
                String::from_utf8_lossy(key)
            );
        }
    }
});
