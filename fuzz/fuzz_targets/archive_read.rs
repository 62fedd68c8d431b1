//! What the cold archive reads back from outside (a store's listing) and
//! the names and headers it writes from database and policy names, on
//! arbitrary bytes. Reading must never panic; a name part must be
//! URL-unreserved, at most 64 bytes, never `.` or `..`; a header must be
//! exactly its lines, whatever the names hold (no forged context line).
//!
//! Run: `cargo fuzz run archive_read -- -max_total_time=60`
#![no_main]

use hissrv::archive::object::{header, name_part};
use hissrv::archive::s3::read::parse_listing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (keys, _, token) = parse_listing(&text);
    // Decoding only shortens: every key and the token come from the text.
    for k in keys.iter().chain(token.iter()) {
        assert!(k.len() <= text.len(), "{k:?}");
    }
    // Names: split the input in two, as a database and a policy.
    let cut = text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i);
    let (db, rp) = text.split_at(cut);
    for part in [name_part(db), name_part(rp)] {
        assert!(part.len() <= 64, "{part}");
        assert!(part != "." && part != ".." && !part.starts_with('.'), "{part}");
        assert!(
            part.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)),
            "{part}"
        );
    }
    let h = header(db, rp);
    let want = if rp.is_empty() { 2 } else { 3 };
    assert_eq!(h.lines().count(), want, "{h:?}");
    assert!(h.lines().all(|l| l.starts_with("# ")), "{h:?}");
});
