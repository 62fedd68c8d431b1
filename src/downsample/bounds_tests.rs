//! What bounds the windows' memory (`windows`' module text, "Bounds"): the
//! room left is given back as windows close, and a series holds room only
//! for the fields it keeps.

use super::tests::rule;
use super::*;

/// Found in review: with the bound reached and every new point in a newer
/// window, the watermark stood still, so nothing closed and no room came
/// back: the lane stayed full for good.
#[test]
fn a_lane_at_the_bound_still_closes_its_windows_and_frees_room() {
    let mut w = Windows::new(vec![rule(0, 0)], 2);
    let lane = Lane { rule: 0, dest: 0 };
    let v = Value::Int(1);
    assert_eq!(w.add(lane, b"m", b"a", &v, 0), Outcome::Counted);
    assert_eq!(w.add(lane, b"m", b"b", &v, 0), Outcome::Counted);
    assert_eq!(w.add(lane, b"m", b"a", &v, 150), Outcome::Full);
    let mut lines = 0;
    w.close(|_, _| lines += 1);
    assert_eq!((lines, w.len()), (1, 0), "emitted, then forgotten");
    assert_eq!(w.add(lane, b"m", b"a", &v, 160), Outcome::Counted);
}

/// A new series is sized for its first line's fields (one allocation, not
/// one a doubling), and gives back what the line did not keep: a name
/// repeated 64 times, or names refused, must not hold 64 fields' room for
/// the window's life, past what `max_open` bounds (found in review: 64,000
/// field slots and 64 MB of names reserved for 1,000 fields kept).
#[test]
fn a_new_series_holds_room_only_for_the_fields_it_keeps() {
    let lane = Lane { rule: 0, dest: 0 };
    let mut w = Windows::new(vec![rule(0, 1_000)], 200_000);
    let long = vec![b'a'; 1_000];
    let repeated: Vec<(&[u8], Value)> = (0..64).map(|_| (&long[..], Value::Int(1))).collect();
    // Refused names: one not a field name InfluxDB takes (a lone
    // backslash), then one counted.
    let refused: Vec<(&[u8], Value)> = vec![(&br"x\"[..], Value::Int(1)); 40]
        .into_iter()
        .chain([(&b"ok"[..], Value::Int(1))])
        .collect();
    let meter: Vec<(&[u8], Value)> = ["v1", "v2", "v3", "i1"]
        .iter()
        .map(|n| (n.as_bytes(), Value::Int(1)))
        .collect();
    for s in 0..300 {
        let key = format!("m,s={s}");
        let line = [&repeated, &refused, &meter][s % 3];
        w.add_line(lane, key.as_bytes(), line, 5, |_, _| {});
    }
    let (mut names, mut names_room, mut fields, mut fields_room) = (0, 0, 0, 0);
    for (_, set) in w.open.iter() {
        for (_, s) in set.series.iter() {
            names += s.names.len();
            names_room += s.names.capacity();
            fields += s.fields.len();
            fields_room += s.fields.capacity();
        }
    }
    assert_eq!(fields, w.held, "every field held is a series' own");
    assert_eq!(fields, 100 * (1 + 1 + 4), "one, one and four fields kept");
    assert_eq!(
        (names_room, fields_room),
        (names, fields),
        "room held beyond what was kept"
    );
}
