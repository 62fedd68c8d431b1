//! Poison-line probing against upstreams that fail in ways a poison line
//! must not be confused with (found by review): one database failing every
//! write, a corrected value that an old line must not overwrite, a rate limit
//! that cuts every probe short, a round-robin with one broken backend.

mod common;
use common::sim::{VirtualClock, dest, forwarder_on};
use hissrv::clock::Clock;
use hissrv::config::{Config, Influxdb};
use hissrv::deliver::provision::ProvisionError;
use hissrv::deliver::upstream::{Outcome, Sink};
use hissrv::deliver::{Forwarder, Step};
use hissrv::route::dest::Destination;
use hissrv::wal::{NewBatch, Wal};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Upstream {
    /// (db, series+ts) -> the stored line
    points: BTreeMap<(String, String), String>,
    /// databases whose writes fail with 500 (a broken shard, say)
    broken: HashSet<String>,
    /// lines that fail any request (poison)
    poison: HashSet<Vec<u8>>,
    requests: Vec<(String, String)>,
}

#[derive(Clone)]
struct S(Arc<Mutex<Upstream>>);

impl Sink for S {
    fn write(&self, d: &Destination, body: &[u8]) -> Outcome {
        let mut u = self.0.lock().unwrap();
        u.requests
            .push((d.db.clone(), String::from_utf8_lossy(body).into()));
        let lines: Vec<&[u8]> = body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        if u.broken.contains(&d.db) || lines.iter().any(|l| u.poison.contains(*l)) {
            return Outcome::ServerError {
                status: 500,
                message: "timeout".into(),
            };
        }
        for l in lines {
            let s = String::from_utf8_lossy(l).to_string();
            let mut parts = s.splitn(3, ' ');
            let (k, _f, ts) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            u.points
                .insert((d.db.clone(), format!("{k} {ts}")), s.clone());
        }
        Outcome::Written
    }
    fn ensure_retention(
        &self,
        _: &Influxdb,
        _: &[hissrv::deliver::provision::Want],
    ) -> Result<Vec<String>, ProvisionError> {
        Ok(Vec::new())
    }
}

type Setup = (
    Forwarder,
    Wal,
    Arc<Mutex<Upstream>>,
    VirtualClock,
    std::path::PathBuf,
);

fn setup(tag: &str) -> Setup {
    setup_with(tag, &Config::default(), |s, _| s)
}

/// A forwarder in virtual time whose upstream is the scripted `S`, wrapped
/// by `wrap` (a rate limit, a flapping backend).
fn setup_with<K: Sink + Clone + 'static>(
    tag: &str,
    cfg: &Config,
    wrap: impl FnOnce(S, VirtualClock) -> K,
) -> Setup {
    let clock = VirtualClock::starting_now();
    let up = Arc::new(Mutex::new(Upstream::default()));
    let sink = wrap(S(up.clone()), clock.clone());
    let (fw, producer, dir) = forwarder_on(&format!("canary-{tag}"), cfg, &clock, sink);
    (fw, producer, up, clock, dir)
}

/// At most `per_minute` requests a minute, then 429 with a Retry-After.
#[derive(Clone)]
struct Limited {
    inner: S,
    clock: VirtualClock,
    window: Arc<Mutex<Vec<Instant>>>,
    per_minute: usize,
    retry_after: Duration,
}

impl Limited {
    fn wrap(per_minute: usize, retry_after_s: u64) -> impl FnOnce(S, VirtualClock) -> Limited {
        move |inner, clock| Limited {
            inner,
            clock,
            window: Arc::default(),
            per_minute,
            retry_after: Duration::from_secs(retry_after_s),
        }
    }
}

impl Sink for Limited {
    fn server_time(&self) -> Option<(i64, Instant)> {
        Some((self.clock.true_wall_ns(), self.clock.get()))
    }

    fn write(&self, d: &Destination, body: &[u8]) -> Outcome {
        let now = self.clock.get();
        self.clock.advance(Duration::from_millis(5));
        let mut w = self.window.lock().unwrap();
        w.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
        if w.len() >= self.per_minute {
            return Outcome::Throttled {
                status: 429,
                retry_after: Some(self.retry_after),
            };
        }
        w.push(now);
        drop(w);
        self.inner.write(d, body)
    }
    fn ensure_retention(
        &self,
        _: &Influxdb,
        _: &[hissrv::deliver::provision::Want],
    ) -> Result<Vec<String>, ProvisionError> {
        Ok(Vec::new())
    }
}

fn batch(d: u64, payload: &str) -> NewBatch {
    NewBatch {
        dest: dest(d),
        points: payload.lines().count(),
        first_ts: 0,
        last_ts: 0,
        payload: payload.as_bytes().to_vec(),
    }
}

/// Runs turns, skipping back-offs and reloading heads (61 s virtual per idle).
fn run(fw: &mut Forwarder, clock: &VirtualClock, turns: usize) {
    for _ in 0..turns {
        match fw.step() {
            Step::Worked => {}
            Step::Idle(_) => clock.advance(Duration::from_secs(61)),
            Step::Backoff(t) => clock.advance_to(t),
        }
    }
}

fn dead_letters(dir: &std::path::Path) -> Vec<(String, String)> {
    let c = rusqlite::Connection::open(dir.join("buffer.db")).unwrap();
    let mut st = c
        .prepare("SELECT db, CAST(line AS TEXT) FROM dead_letters")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// One database's writes fail with 500 (say a shard that will not open),
/// the others' succeed: nothing of the pack gets through, so it waits whole.
#[test]
fn a_destination_failing_every_write_has_no_line_condemned() {
    let (mut fw, mut p, up, clock, dir) = setup("perdest");
    p.commit(&[batch(1, "m v=1i 1\n")]).unwrap();
    run(&mut fw, &clock, 3); // db1 works
    up.lock().unwrap().broken.insert("db0".into());
    p.commit(&[batch(0, "m v=1i 10\nm v=2i 20\n"), batch(0, "m v=3i 30\n")])
        .unwrap();
    run(&mut fw, &clock, 40);
    let dl = dead_letters(&dir);
    assert!(
        dl.is_empty(),
        "good lines condemned for a per-database server fault: {dl:?}"
    );
    assert!(up.lock().unwrap().requests.len() > 10, "it kept trying");
}

/// A poison line alone in its pack borrows its destination's canary: the
/// last line of the newest request the server took, never an older line, so
/// a value the producer corrected is not overwritten.
#[test]
fn a_probe_never_overwrites_a_corrected_value_with_an_older_line() {
    let (mut fw, mut p, up, clock, dir) = setup("stale");
    p.commit(&[batch(0, "m v=1i 1000\n")]).unwrap();
    run(&mut fw, &clock, 3);
    // The producer corrects the point (same series and timestamp).
    p.commit(&[batch(0, "m v=2i 1000\n")]).unwrap();
    run(&mut fw, &clock, 3);
    let value = |up: &Arc<Mutex<Upstream>>| {
        up.lock()
            .unwrap()
            .points
            .get(&("db0".into(), "m 1000".into()))
            .cloned()
            .unwrap()
    };
    assert_eq!(value(&up), "m v=2i 1000");
    up.lock().unwrap().poison.insert(b"m v=666i 2000".to_vec());
    p.commit(&[batch(0, "m v=666i 2000\n")]).unwrap();
    run(&mut fw, &clock, 40);
    assert_eq!(
        dead_letters(&dir),
        vec![("db0".to_string(), "m v=666i 2000".to_string())]
    );
    assert_eq!(value(&up), "m v=2i 1000", "the corrected value stays");
    let resent_old = up
        .lock()
        .unwrap()
        .requests
        .iter()
        .skip(2)
        .any(|(_, body)| body.contains("v=1i 1000"));
    assert!(!resent_old, "the old value was never re-sent");
}

/// An upstream with a tight rate limit (8 requests a minute, then 429) and
/// one poison line in a 65-line pack: every probe is cut short, and each
/// resumes where the last one stopped (the count is not reset by a 429, the
/// lines written and the suspects found are kept).
#[test]
fn a_probe_cut_short_by_a_rate_limit_resumes_and_isolates_the_poison_line() {
    let (mut fw, mut p, up, clock, dir) =
        setup_with("rl", &Config::default(), Limited::wrap(8, 10));
    let path = dir.join("buffer.db");
    let mut payload = String::new();
    for i in 0..64 {
        payload.push_str(&format!("m v={i}i {}\n", 1000 + i));
    }
    up.lock().unwrap().poison.insert(b"m v=40i 1040".to_vec());
    p.commit(&[batch(0, &payload), batch(0, "m v=100i 5000\n")])
        .unwrap();
    run(&mut fw, &clock, 30000);
    let dl = dead_letters(&dir);
    assert_eq!(dl, vec![("db0".to_string(), "m v=40i 1040".to_string())]);
    let buffered: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT coalesce(sum(points), 0) FROM batches", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(buffered, 0, "the destination moved on");
    assert_eq!(
        up.lock().unwrap().points.len(),
        64,
        "every good line delivered"
    );
}

/// A load balancer round-robins to two influxd, one of which answers 500 to
/// every write (a failing disk). No line is poison: none is condemned.
#[test]
fn a_backend_failing_every_other_request_condemns_no_good_line() {
    #[derive(Clone)]
    struct RR(S, Arc<Mutex<u64>>);
    impl Sink for RR {
        fn write(&self, d: &Destination, body: &[u8]) -> Outcome {
            let mut n = self.1.lock().unwrap();
            *n += 1;
            if *n <= 15 || *n % 2 == 1 {
                return Outcome::ServerError {
                    status: 500,
                    message: "engine: error writing WAL entry: input/output error".into(),
                };
            }
            drop(n);
            self.0.write(d, body)
        }
        fn ensure_retention(
            &self,
            _: &Influxdb,
            _: &[hissrv::deliver::provision::Want],
        ) -> Result<Vec<String>, ProvisionError> {
            Ok(Vec::new())
        }
    }
    let clock = VirtualClock::starting_now();
    let up = Arc::new(Mutex::new(Upstream::default()));
    let sink = RR(S(up.clone()), Arc::default());
    let (mut fw, mut p, dir) = forwarder_on("canary-rr", &Config::default(), &clock, sink);
    let mut ts = 0;
    for _round in 0..1 {
        for d in 0..1u64 {
            let mut payload = String::new();
            for _ in 0..4 {
                ts += 1;
                payload.push_str(&format!("m,d={d} v={ts}i {ts}\n"));
            }
            p.commit(&[batch(d, &payload)]).unwrap();
        }
    }
    run(&mut fw, &clock, 3000);
    let dl = dead_letters(&dir);
    assert!(dl.is_empty(), "{dl:?}");
}

/// Retention expiry removes lines from a batch between two probes of it:
/// the marks of the first probe must still name the same lines (they are
/// kept by text, not by place), or a line would be skipped as written.
#[test]
fn lines_expiring_between_probes_do_not_shift_what_was_marked_written() {
    let cfg = Config::from_yaml(
        "influxdb:\n  sharding:\n    buckets:\n      - name: b\n        retention: 1h\n        points: [\"*\"]\n",
    )
    .unwrap();
    let (mut fw, mut p, up, clock, dir) = setup_with("exp", &cfg, Limited::wrap(6, 30));
    let now = clock.wall_ns();
    let minute = 60_000_000_000i64;
    // Ten lines that expire one minute apart over the probes, then fresh ones.
    let mut payload = String::new();
    for i in 0..10 {
        payload.push_str(&format!(
            "m v={i}i {}\n",
            now - 60 * minute + (i + 1) * minute
        ));
    }
    for i in 10..40 {
        payload.push_str(&format!("m v={i}i {}\n", now + i));
    }
    let poison = format!("m v=25i {}", now + 25);
    up.lock()
        .unwrap()
        .poison
        .insert(poison.clone().into_bytes());
    let dest = Destination {
        db: "hissrv".into(),
        rp: "b".into(),
    };
    p.commit(&[
        NewBatch {
            dest: dest.clone(),
            points: 40,
            first_ts: now - 60 * minute,
            last_ts: now + 40,
            payload: payload.into_bytes(),
        },
        NewBatch {
            dest,
            points: 1,
            first_ts: now + 100,
            last_ts: now + 100,
            payload: format!("m v=100i {}\n", now + 100).into_bytes(),
        },
    ])
    .unwrap();
    run(&mut fw, &clock, 20_000);
    let u = up.lock().unwrap();
    for i in (10..40).filter(|&i| i != 25) {
        assert!(
            u.points
                .contains_key(&("hissrv".into(), format!("m {}", now + i))),
            "fresh line v={i} never delivered"
        );
    }
    let dl = dead_letters(&dir);
    assert!(dl.iter().any(|(_, l)| *l == poison), "{dl:?}");
}

/// A run of adjacent poison lines takes more failures in a row than a probe
/// of a failing server is allowed; the canary tells the two apart, and every
/// poison line is isolated (found by a second review).
#[test]
fn a_run_of_adjacent_poison_lines_is_isolated_whole() {
    let (mut fw, mut p, up, clock, dir) = setup("adjpoison");
    let mut a = String::new();
    for i in 0..4 {
        a.push_str(&format!("g v={i}i {}\n", 100 + i));
    }
    for i in 0..8 {
        let l = format!("p v={i}i {}", 200 + i);
        up.lock().unwrap().poison.insert(l.clone().into_bytes());
        a.push_str(&l);
        a.push('\n');
    }
    for i in 0..4 {
        a.push_str(&format!("h v={i}i {}\n", 300 + i));
    }
    p.commit(&[batch(0, &a), batch(0, "z v=1i 400\n")]).unwrap();
    run(&mut fw, &clock, 300);
    assert_eq!(
        dead_letters(&dir).len(),
        8,
        "every poison line dead-lettered"
    );
    assert_eq!(
        up.lock().unwrap().points.len(),
        9,
        "every good line written"
    );
}
