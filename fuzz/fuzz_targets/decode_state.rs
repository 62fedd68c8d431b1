//! The downsampling checkpoint's decoder on arbitrary bytes: one stored
//! window set, restored. It must refuse or restore, never panic, never
//! allocate past what the bytes justify; a restored set takes a new point;
//! what it emits when it closes is line protocol the parser takes whole.
//!
//! Run: `cargo fuzz run decode_state -- -max_total_time=60`
#![no_main]

use hissrv::downsample::windows::{Lane, Rule, Windows};
use libfuzzer_sys::fuzz_target;

fn rules() -> Vec<Rule> {
    vec![Rule {
        every_ns: 10,
        grace_ns: 0,
        max_lateness_ns: 5,
        aggregates: None,
    }]
}

fuzz_target!(|data: &[u8]| {
    let lane = Lane { rule: 0, dest: 0 };
    let Ok((mut w, _)) = Windows::restore(rules(), 1 << 20, &[(lane, 12)], [(lane, 0, data)])
    else {
        return;
    };
    let held = w.len();
    // A point for every restored field takes (no overflow, no panic).
    w.add(
        lane,
        b"m",
        b"f",
        &hissrv::lineproto::split::Value::Int(1),
        11,
    );
    // The lane's event time is past the window's end (12 ≥ 10): a close
    // emits whatever the set holds as changed.
    let mut lines = Vec::new();
    w.close(|_, line| lines.extend_from_slice(line));
    for line in hissrv::lineproto::lines(&lines) {
        assert!(
            hissrv::lineproto::split::split(line).is_some(),
            "an emitted line splits: {:?}",
            String::from_utf8_lossy(line)
        );
    }
    // And the parser (InfluxDB's rules) takes every emitted line whole.
    let opts = hissrv::lineproto::ParseOptions {
        precision: hissrv::lineproto::Precision::Nanos,
        now_ns: 0,
        allow_unsigned: true,
    };
    let mut out = Vec::new();
    let parsed = hissrv::lineproto::parse_into(&lines, &opts, &mut out);
    assert_eq!(parsed.rejected, 0, "{:?}", parsed.errors);
    assert_eq!(out, lines, "emitted lines are stored as themselves");
    assert!(w.len() <= held + 1);
});
