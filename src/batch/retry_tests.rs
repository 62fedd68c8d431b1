//! A producer's retry counted once across checkpoints, crashes and
//! upgrades: the keys of the lines counted lately (`downsample::recent`,
//! `downsample::line_key`) as the buffer saves them.

use super::tests::{S, emitted, one_rule, restart};
use super::*;
use crate::config::Synchronous;
use crate::wal::Wal;

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hissrv-ds-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn batch(dest: &Destination, payload: &[u8]) -> NewBatch {
    NewBatch {
        points: crate::lineproto::lines(payload).count(),
        dest: dest.clone(),
        first_ts: 0,
        last_ts: 0,
        payload: payload.to_vec(),
    }
}

fn db(name: &str) -> Destination {
    Destination {
        db: name.into(),
        rp: String::new(),
    }
}

/// Ten points of one series in one window: more than the slots hold, so
/// a retry of the first two is known by the lines counted lately only.
fn ten_points(series: &str) -> Vec<u8> {
    (1..=10)
        .map(|s| format!("{series} f={s}i {}\n", s * S))
        .collect::<String>()
        .into_bytes()
}

/// Found in review: a producer's retry committed after a checkpoint that
/// covered its first try (an answer lost on the network, or the shutdown
/// checkpoint) was recognised by the uninterrupted run only: the lines
/// counted lately were not saved, so after a crash the retry's points older
/// than the eight greatest of their window counted twice.
#[test]
fn a_retry_straddling_a_checkpoint_counts_once_after_a_crash_too() {
    let dir = temp("straddle");
    let path = dir.join("buffer.db");
    let cfg = one_rule("1m");
    let mut wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    let dest = Destination {
        db: "db".into(),
        rp: String::new(),
    };
    // Ten points of one series in one window: more than the slots hold.
    let body: Vec<u8> = (1..=10)
        .map(|s| format!("m,h=a f={s}i {}\n", s * S))
        .collect::<String>()
        .into_bytes();
    let batch = |payload: &[u8]| NewBatch {
        points: 10,
        dest: dest.clone(),
        first_ts: 0,
        last_ts: 0,
        payload: payload.to_vec(),
    };
    let mut live = restart(&cfg, &wal);
    let mut reference = Downsampler::from_config(&cfg).expect("rule");
    wal.commit_with_duty(&[batch(&body)], &[true])
        .expect("commit");
    live.feed(&dest, &body);
    reference.feed(&dest, &body);
    wal.checkpoint_windows(&live.checkpoint(wal.last_commit_seq()))
        .expect("checkpoint");
    let _ = reference.checkpoint(0);
    // The retry, after the checkpoint; then kill -9.
    wal.commit_with_duty(&[batch(&body)], &[true])
        .expect("commit");
    live.feed(&dest, &body);
    reference.feed(&dest, &body);
    drop(wal);
    let wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    let mut live = restart(&cfg, &wal);
    let far = format!("m,h=a f=0i {}\n", 10_000 * S).into_bytes();
    live.feed(&dest, &far);
    reference.feed(&dest, &far);
    let text = |d: &mut Downsampler| -> String { emitted(d).into_iter().map(|(_, l)| l).collect() };
    let got = text(&mut live);
    let want = text(&mut reference);
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(want.contains("f_count=10i"), "{want}");
    assert_eq!(
        got, want,
        "the crashed run differs from the uninterrupted one"
    );
}

/// The saved keys are bounded: the newest `RECENT_LINES` (a row a
/// checkpoint; the oldest rows go).
#[test]
fn the_saved_keys_of_lines_counted_lately_keep_only_the_newest() {
    let dir = temp("keys");
    let mut wal = Wal::open(&dir.join("buffer.db"), Synchronous::Off, 1 << 30).expect("opens");
    let n = crate::downsample::recent::RECENT_LINES as u64;
    for round in 0..5u64 {
        let c = crate::wal::WindowsCheckpoint {
            recent: (round * n / 2..(round + 1) * n / 2).collect(),
            ..Default::default()
        };
        wal.checkpoint_windows(&c).expect("checkpoint");
    }
    let saved = wal.saved_windows().expect("saved").recent;
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(saved.len() as u64, n, "two rows of n/2 kept");
    assert_eq!(
        saved.first(),
        Some(&(3 * n / 2)),
        "the oldest of the newest"
    );
    assert_eq!(saved.last(), Some(&(5 * n / 2 - 1)));
}

/// Found in review of the keys' new shape: a key held the lane as the
/// process numbered it (warm destinations by first appearance), while a
/// restart numbers them from the saved watermarks (sorted). With two warm
/// destinations the numbers swap, and a retry after a crash of a line the
/// crashed run counted was counted again. The lane's part of a key is now
/// its rule identity and destination.
#[test]
fn a_retry_after_a_crash_counts_once_whatever_order_the_destinations_came_in() {
    let dir = temp("lanes");
    let path = dir.join("buffer.db");
    let cfg = one_rule("1m");
    let mut wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    let (first, second) = (db("zz"), db("aa"));
    let (a, b) = (ten_points("m,h=z"), ten_points("m,h=a"));
    let mut live = restart(&cfg, &wal);
    let mut reference = Downsampler::from_config(&cfg).expect("rule");
    // "zz" first: its lane is 0 in this run, 1 after a restart ("aa" < "zz").
    for (dest, body) in [(&first, &a), (&second, &b)] {
        wal.commit_with_duty(&[batch(dest, body)], &[true])
            .expect("commit");
        live.feed(dest, body);
        reference.feed(dest, body);
    }
    wal.checkpoint_windows(&live.checkpoint(wal.last_commit_seq()))
        .expect("checkpoint");
    let _ = reference.checkpoint(0);
    drop(wal);
    let wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    let mut live = restart(&cfg, &wal);
    // The producers retry both bodies after the restart.
    for (dest, body) in [(&first, &a), (&second, &b)] {
        live.feed(dest, body);
        reference.feed(dest, body);
    }
    let far = |d: &mut Downsampler| {
        for dest in [&first, &second] {
            d.feed(dest, format!("m,h=x f=0i {}\n", 10_000 * S).as_bytes());
        }
    };
    far(&mut live);
    far(&mut reference);
    let text = |d: &mut Downsampler| -> Vec<(Destination, String)> {
        let mut e = emitted(d);
        e.sort();
        e
    };
    let (got, want) = (text(&mut live), text(&mut reference));
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        want.iter()
            .filter(|(_, l)| l.contains("f_count=10i"))
            .count(),
        2,
        "{want:?}"
    );
    assert_eq!(
        got, want,
        "the crashed run differs from the uninterrupted one"
    );
}

/// An upgrade from the first release: the keys its checkpoints saved
/// (`downsample_recent`, keyed by `line_key::legacy`) still recognise a
/// retry after the restart; without them the same retry counts again (the
/// control), so the test sees the difference.
#[test]
fn a_retry_of_a_line_the_first_release_counted_is_known_after_the_upgrade() {
    let mut got = Vec::new();
    for saved in [true, false] {
        let dir = temp(&format!("legacy-{saved}"));
        let path = dir.join("buffer.db");
        let cfg = one_rule("1m");
        let wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
        let retry = format!("m,h=a f=1i {S}\n");
        if saved {
            let l = crate::lineproto::split::split(retry.trim_end().as_bytes()).expect("a line");
            let k = line_key::legacy(&mut Vec::new(), l.key, &l.fields, l.ts, (0, 0));
            let raw = rusqlite::Connection::open(&path).expect("raw");
            raw.execute(
                "INSERT INTO downsample_recent (keys) VALUES (?1)",
                [k.to_le_bytes().to_vec()],
            )
            .expect("as the first release saved it");
        }
        let mut d = restart(&cfg, &wal);
        // Nine newer points of the series, as the first release's saved
        // windows would hold them: the retry is then older than the full
        // ring of slots, one the windows may have counted, and the lines
        // counted lately are asked.
        let newer: String = (2..=10)
            .map(|s| format!("m,h=a f={s}i {}\n", s * S))
            .collect();
        assert!(d.feed(&db("db"), newer.as_bytes()));
        let before = d.windows.counts;
        assert!(d.feed(&db("db"), retry.as_bytes()));
        let after = d.windows.counts;
        got.push((
            after.repeats - before.repeats,
            after.counted - before.counted,
        ));
        // The next checkpoint that saves keys empties the old table.
        let mut wal = wal;
        wal.checkpoint_windows(&d.checkpoint(0))
            .expect("checkpoint");
        // Kept while they are looked for: a crash before the horizon has
        // passed them still finds them (from review).
        assert_eq!(
            wal.saved_windows().expect("saved").legacy_recent.len(),
            usize::from(saved)
        );
        drop(wal);
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert_eq!(
        got,
        [(1, 0), (0, 1)],
        "(repeats, counted): with the saved key, without"
    );
}

/// Found in review: a new point of another series taken for a repeat.
/// With public seeds, series keys whose first 8 bytes were the hash's
/// starting state (`alvrssih` for 15 bytes) hashed alike, so the line keys
/// of two series' points with the same fields and time were one key: B's
/// point, older than B's full ring of slots, was asked about and found
/// (A's). Keys are now keyed by the buffer's secret.
#[test]
fn a_crafted_series_key_does_not_make_another_series_point_a_repeat() {
    let mut cfg = one_rule("1m");
    cfg.rules[0].measurement = "alvrssih".into();
    let mut d = started("crafted", &cfg);
    let dest = db("db");
    assert!(d.feed(&dest, format!("alvrssih,t=aaaa f=1i {S}\n").as_bytes()));
    let newer: String = (2..=9)
        .map(|s| format!("alvrssih,t=bbbb f={s}i {}\n", s * S))
        .collect();
    assert!(d.feed(&dest, newer.as_bytes()));
    let before = d.windows.counts;
    d.feed(&dest, format!("alvrssih,t=bbbb f=1i {S}\n").as_bytes());
    let after = d.windows.counts;
    assert_eq!(
        (
            after.counted - before.counted,
            after.repeats - before.repeats
        ),
        (1, 0),
        "B's first point at 1 s: counted, not a repeat"
    );
}

/// Found in review: a line with a field named twice counts once (one
/// point to InfluxDB) but its key was not remembered (the second field's
/// outcome is `Repeat`), so once its time was older than the ring of
/// slots its retry counted again.
#[test]
fn a_retry_of_a_line_naming_a_field_twice_counts_once() {
    let mut d = Downsampler::from_config(&one_rule("1m")).expect("rule");
    let dest = db("db");
    let line = format!("m,h=a f=1i,f=1i {S}\n");
    d.feed(&dest, line.as_bytes());
    let newer: String = (2..=9)
        .map(|s| format!("m,h=a f={s}i {}\n", s * S))
        .collect();
    d.feed(&dest, newer.as_bytes());
    let before = d.windows.counts;
    d.feed(&dest, line.as_bytes());
    let after = d.windows.counts;
    assert_eq!(after.counted - before.counted, 0, "the retry counted again");
}

/// Found in review: legacy keys were looked for with the lane as *this*
/// process numbers it, while the first release numbered warm destinations by
/// first appearance (the very bug `lane_seed` fixes for new keys, see
/// `a_retry_after_a_crash_counts_once_whatever_order_the_destinations_came_in`).
/// "zz" came first in the old run (dest 0), after the upgrade's restore
/// it is dest 1 (saved watermarks sorted): its legacy keys never match.
#[test]
fn legacy_keys_match_whatever_order_the_destinations_came_in() {
    let dir = temp("legacy-lanes");
    let path = dir.join("buffer.db");
    let cfg = one_rule("1m");
    let mut wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    let (first, second) = (db("zz"), db("aa"));
    let (a, b) = (ten_points("m,h=z"), ten_points("m,h=a"));
    let mut old = Downsampler::from_config(&cfg).expect("rule");
    let mut legacy = Vec::new();
    for (id, (dest, body)) in [(&first, &a), (&second, &b)].into_iter().enumerate() {
        wal.commit_with_duty(&[batch(dest, body)], &[true])
            .expect("commit");
        old.feed(dest, body);
        for line in crate::lineproto::lines(body) {
            let l = crate::lineproto::split::split(line).expect("a line");
            // As the first release keyed it: dest by first appearance.
            legacy.push(line_key::legacy(
                &mut Vec::new(),
                l.key,
                &l.fields,
                l.ts,
                (0, id as u32),
            ));
        }
    }
    wal.checkpoint_windows(&old.checkpoint(wal.last_commit_seq()))
        .expect("checkpoint");
    drop(wal);
    {
        // The first release's tables: its keys in downsample_recent only.
        let raw = rusqlite::Connection::open(&path).expect("raw");
        raw.execute("DELETE FROM downsample_keys", [])
            .expect("no new keys");
        let blob: Vec<u8> = legacy.iter().flat_map(|k| k.to_le_bytes()).collect();
        raw.execute("INSERT INTO downsample_recent (keys) VALUES (?1)", [blob])
            .expect("legacy keys");
    }
    let wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    let mut d = restart(&cfg, &wal);
    let before = d.windows.counts;
    d.feed(&first, &a);
    d.feed(&second, &b);
    let after = d.windows.counts;
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        after.counted - before.counted,
        0,
        "the retries of both bodies counted again"
    );
}

/// Found in review: more than `RECENT_LINES` lines counted between two checkpoints:
/// `fresh` is cut to its newest half (`drain(..RECENT_LINES / 2)`), so
/// the checkpoint saves fewer than the newest `RECENT_LINES` keys the
/// module promises (and the live run holds). A retry of a line 40,000
/// lines back is known live, counted again after a restart.
#[test]
fn a_checkpoint_saves_the_newest_recent_lines_keys() {
    let dir = temp("fresh-cut");
    let path = dir.join("buffer.db");
    let cfg = one_rule("1m");
    let mut wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    let dest = db("db");
    let n = crate::downsample::recent::RECENT_LINES as i64 * 3 / 2 + 1;
    let body: String = (1..=n).map(|t| format!("m,h=a f={t}i {t}\n")).collect();
    let mut live = restart(&cfg, &wal);
    live.feed(&dest, body.as_bytes());
    wal.checkpoint_windows(&live.checkpoint(wal.last_commit_seq()))
        .expect("checkpoint");
    drop(wal);
    let wal = Wal::open(&path, Synchronous::Off, 1 << 30).expect("opens");
    let mut restarted = restart(&cfg, &wal);
    let t = n - 40_000;
    let retry = format!("m,h=a f={t}i {t}\n");
    let mut got = Vec::new();
    for d in [&mut live, &mut restarted] {
        let before = d.windows.counts.repeats;
        d.feed(&dest, retry.as_bytes());
        got.push(d.windows.counts.repeats - before);
    }
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(got, [1, 1], "a repeat live and after the restart");
}

/// Found in the second review: `bytes_hash` folded each 16-byte block as
/// `fold(w0 ^ state, w1 ^ K[0])`; a block whose second word was the public
/// constant `K[0]` multiplied by 0 and zeroed the state whatever the
/// secret, so two series keys differing only in that block's first word
/// hashed alike under every buffer's secret: B's new point, older than B's
/// full ring of slots, was taken for A's counted point and dropped.
#[test]
fn a_series_key_crafted_against_a_public_constant_does_not_collide() {
    let mut d = started("crafted-k0", &cfg_m());
    assert_ne!(d.secret, 0, "a real, random secret");
    let k0 = 0x243f_6a88_85a3_08d3u64.to_le_bytes();
    // "m,t=AAAA" + K[0]: the first 16-byte block; same for B.
    let series = |tag: &[u8; 4]| {
        let mut s = b"m,t=".to_vec();
        s.extend_from_slice(tag);
        s.extend_from_slice(&k0);
        s
    };
    let line = |s: &[u8], v: i64, t: i64| {
        let mut l = s.to_vec();
        l.extend_from_slice(format!(" f={v}i {t}\n").as_bytes());
        l
    };
    let (a, b) = (series(b"AAAA"), series(b"BBBB"));
    let dest = db("db");
    assert!(d.feed(&dest, &line(&a, 1, S)));
    for s in 2..=9 {
        assert!(d.feed(&dest, &line(&b, s, s * S)));
    }
    let before = d.windows.counts;
    d.feed(&dest, &line(&b, 1, S));
    let after = d.windows.counts;
    assert_eq!(
        (
            after.counted - before.counted,
            after.repeats - before.repeats
        ),
        (1, 0),
        "B's first point at 1 s: counted, not a repeat"
    );
}

/// A downsampler started on a new buffer (its secret the buffer's), the
/// buffer then removed: what the crafted-key tests feed.
fn started(name: &str, cfg: &crate::config::Lifecycle) -> Downsampler {
    let dir = temp(name);
    let wal = Wal::open(&dir.join("buffer.db"), Synchronous::Off, 1 << 30).expect("opens");
    let d = restart(cfg, &wal);
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
    d
}

fn cfg_m() -> crate::config::Lifecycle {
    one_rule("1m")
}

/// The same block against a string value: a corrected string at the same
/// time (a repeat by the slots: not whole, its raw point kept) was taken
/// for a repeat by the set, so its batch was marked whole and could be
/// degraded while the windows' `s_last` held the first string.
#[test]
fn a_corrected_string_crafted_against_a_public_constant_keeps_its_batch() {
    let mut d = started("crafted-k0-str", &cfg_m());
    let k0 = 0x243f_6a88_85a3_08d3u64.to_le_bytes();
    let line = |first: &[u8; 8]| {
        let mut l = b"m,h=a s=\"".to_vec();
        l.extend_from_slice(first);
        l.extend_from_slice(&k0);
        l.extend_from_slice(format!("\" {S}\n").as_bytes());
        l
    };
    let dest = db("db");
    assert!(d.feed(&dest, &line(b"AAAAAAAA")));
    assert!(
        !d.feed(&dest, &line(b"BBBBBBBB")),
        "a corrected value the windows do not hold: not whole"
    );
}
