//! CPU per line against vmagent, in the same run (issue: CPU per point).
//!
//! Both agents take the same load as local InfluxDB writers would send it
//! (`/write`, 5,000-line bodies of 10-field meter lines, keep-alive
//! connections, closed loop), in two modes (a third for hissrv), agents and
//! modes alternating within each round:
//! - **down**: the upstream is a closed port; everything is buffered
//!   (hissrv: committed to its SQLite buffer before the 204; vmagent: queued
//!   to its on-disk queue, answered before it reaches disk); the load runs
//!   `HISSRV_BENCH_SECS` and CPU is counted until it ends;
//! - **up**: hissrv delivers to a real influxd, vmagent to a real
//!   victoria-metrics, while the load runs;
//! - **outage** (only with `HISSRV_BENCH_MODES` naming it; hissrv alone):
//!   influxd stopped while the load is posted, started when it is in: a
//!   line's whole life through an outage, where **down** counts its
//!   buffering alone (its delivery is deferred, not spared); CPU is
//!   reported whole and split into buffering and delivery.
//!
//! The modes that deliver post `HISSRV_BENCH_DELIVERED_LINES` (12,000,000)
//! lines, not a time, so that the agents compared deliver the same backlog
//! (a smaller one costs less a line), and count CPU until the agent has
//! delivered all it acknowledged (hissrv's `/health` counters and backlog,
//! vmagent's pending-data gauges, asked every 250 ms on one connection), at
//! least 65 s from the load's start and its CPU then still for 2 s.
//!
//! Per agent and mode: acknowledged lines/s, CPU microseconds per
//! acknowledged line (`/proc/PID/stat` utime + stime, all threads), peak
//! RSS (`VmHWM`). Medians of rounds, with the per-round figures (an even
//! number of rounds alternates which agent goes first evenly). Timing is
//! not asserted anywhere: this is a bench.
//!
//! Then, each round, the **backlog drain**: `HISSRV_BENCH_DRAIN_LINES`
//! (500,000) lines buffered while influxd is stopped, influxd started, and
//! the time until hissrv has delivered them all, with hissrv's CPU per
//! delivered line; against one direct writer posting the same lines
//! (gzip-compressed before the clock starts, so the baseline pays nothing
//! for its gzip) to the same influxd.
//!
//! Run: `cargo bench --bench cpu` (env: HISSRV_BENCH_SECS=10,
//! HISSRV_BENCH_RUNS=3, HISSRV_BENCH_CONNS=4, HISSRV_BENCH_MODES=down,up,drain
//! (and outage);
//! HISSRV_BENCH_OWN_SERIES=1: each connection writes only its own meters, in
//! order, where by default every connection writes every meter;
//! HISSRV_BENCH_WARM=1 runs this build again with a 5m downsampling rule
//! taking every line, as agent `hissrv+5m` (with HISSRV_BENCH_FRESH=1, so
//! that lines do not repeat after the first pass over the bodies);
//! HISSRV_BENCH_BASELINE_BIN=path drains with that binary too, after this
//! build's, each round: a before/after in one run, and with
//! HISSRV_BENCH_WARM=1 that binary with the rule too; HISSRV_BENCH_PERF=prefix
//! records each agent with `perf record`). Needs `influxd`, `vmagent`
//! and `victoria-metrics` on the PATH (Debian: influxdb, victoria-metrics).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::*;
use std::io::Write;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use support::*;

const LINES_PER_BODY: usize = 5_000;
/// The load of the modes that deliver (up, outage) is a number of lines
/// (`HISSRV_BENCH_DELIVERED_LINES`), which must be taken whole within this.
const DELIVERED_LOAD_CAP: Duration = Duration::from_secs(120);
/// Distinct bodies generated up front, then cycled.
const BODIES: usize = 40;

/// The kernel's clock ticks per second for `/proc/PID/stat` (`CLK_TCK`).
fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of `pid`, in clock ticks (every thread of the process).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    let get = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(14) + get(15)
}

/// vmagent with its on-disk queue in a temp dir, remote-writing to `remote`.
struct Vmagent {
    port: u16,
    child: Child,
    _dir: TempDir,
}

impl Vmagent {
    fn start(remote: &str) -> Vmagent {
        let dir = TempDir::new("vmagent");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("vmagent.log")).expect("log");
        let child = Command::new("vmagent")
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-remoteWrite.url={remote}"))
            .arg(format!(
                "-remoteWrite.tmpDataPath={}",
                dir.path().join("queue").display()
            ))
            .arg("-loggerLevel=ERROR")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("vmagent is installed (apt-get install victoria-metrics)");
        let v = Vmagent {
            port,
            child,
            _dir: dir,
        };
        wait_for("vmagent /health", Duration::from_secs(30), || {
            agent()
                .get(format!("http://127.0.0.1:{port}/health"))
                .call()
                .is_ok_and(|r| r.status() == 200)
        });
        v
    }
}

impl Drop for Vmagent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// vmagent holds nothing for its upstream: no bytes in its queue, no block
/// in memory.
fn vmagent_settled(metrics_url: &str) -> bool {
    let Ok(mut r) = agent().get(metrics_url).call() else {
        return false;
    };
    let text = r.body_mut().read_to_string().unwrap_or_default();
    let pending = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    text.contains("vmagent_remotewrite_pending_data_bytes")
        && pending("vmagent_remotewrite_pending_data_bytes") == 0.0
        && pending("vmagent_remotewrite_pending_inmemory_blocks") == 0.0
}

/// hissrv has delivered all it committed and holds nothing more: with a
/// rule, `points_written` counts the aggregates delivered too, so it reaches
/// the raw points committed a little before the last raw batch is sent; the
/// backlog says when that is. One reading of `/health`: a failed one is
/// "not yet", never zeros that compare equal.
fn hissrv_settled(asking: &ureq::Agent, url: &str) -> bool {
    let Ok(mut r) = asking.get(format!("{url}/health")).call() else {
        return false;
    };
    let body = r.body_mut().read_to_string().unwrap_or_default();
    let counter = |key: &str| counter_in(&body, key);
    match (
        counter("points_written"),
        counter("points_committed"),
        counter("backlog_points"),
    ) {
        (Some(written), Some(committed), Some(backlog)) => written >= committed && backlog == 0,
        _ => false,
    }
}

/// The 5m rule's warm retention policy in the bench database, as an
/// operator (or `manage_retention`) makes it.
fn create_warm_rp(influx: &Influx) {
    let r = agent()
        .post(format!("{}/query", influx.url()))
        .query(
            "q",
            "CREATE RETENTION POLICY \"autogen_5m\" ON \"bench\" DURATION INF REPLICATION 1",
        )
        .send_empty()
        .expect("influxd takes the query");
    assert!(
        r.status().is_success(),
        "influxd refused the retention policy"
    );
}

/// One agent's figures in one mode and round.
#[derive(Clone, Copy)]
struct Row {
    lines_s: f64,
    cpu_us_line: f64,
    /// The part of `cpu_us_line` spent until the load ended (the outage:
    /// buffering; its delivery is the rest).
    cpu_load_us_line: f64,
    rss_mib: f64,
}

/// How often the bench asks an agent whether it has delivered all (each
/// asking is a request the agent serves, on its CPU).
const SETTLE_POLL: Duration = Duration::from_millis(250);
/// After a backlog is delivered (up, outage), the agent's CPU is counted
/// until `AFTER_START_AT_LEAST` past the load's start, then until it rises
/// by at most `QUIET_TICKS` in `QUIET_FOR`: the work a drain leaves behind
/// is the drain's. hissrv gives an empty buffer's free pages back at most
/// once a minute from its start (`deliver/forward.rs`, SHRINK_EVERY_SECS,
/// 60 s), so by then the vacuum is done, for every agent alike (review: it
/// fell inside the count or outside, by the drain's length).
const AFTER_START_AT_LEAST: Duration = Duration::from_secs(65);
const QUIET_FOR: Duration = Duration::from_secs(2);
const QUIET_TICKS: u64 = 2;

/// What `measure` posts: `bodies` on `conns` connections for `dur`, or
/// until `max_bodies` were posted.
struct LoadSpec<'a> {
    bodies: &'a [std::sync::Arc<Vec<u8>>],
    conns: usize,
    dur: Duration,
    max_bodies: usize,
}

/// The load, then (with an upstream) the wait until the agent has delivered
/// everything it acknowledged (`settled`), so that CPU per line counts each
/// line's delivery too (a review found the up mode leaving ~90 % of it out:
/// both agents acknowledge faster than their upstream takes).
fn measure(
    pid: u32,
    url: &str,
    load: LoadSpec,
    settled: &dyn Fn() -> bool,
    after_load: &mut dyn FnMut(),
) -> Row {
    let LoadSpec {
        bodies,
        conns,
        dur,
        max_bodies,
    } = load;
    let tck = clock_ticks_per_sec();
    let before = cpu_ticks(pid);
    // HISSRV_BENCH_PERF=prefix: a `perf record` of the agent while it
    // takes the load (prefix-PID.data), to see where its CPU goes.
    let perf = std::env::var("HISSRV_BENCH_PERF").ok().and_then(|prefix| {
        Command::new("perf")
            .args(["record", "-F", "1000", "-p", &pid.to_string()])
            // HISSRV_BENCH_PERF_ARGS: more (`--call-graph dwarf`; a later
            // `-F` wins).
            .args(
                std::env::var("HISSRV_BENCH_PERF_ARGS")
                    .unwrap_or_default()
                    .split_whitespace(),
            )
            .arg("-o")
            .arg(format!("{prefix}-{pid}.data"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()
    });
    let load_start = Instant::now();
    let load = drive_at_most(url, bodies, LINES_PER_BODY as u64, conns, dur, max_bodies);
    if max_bodies != usize::MAX {
        // A load of so many lines: every one taken, or the agents compared
        // did not take the same work.
        assert_eq!(
            (load.points, load.refused),
            (max_bodies as u64 * LINES_PER_BODY as u64, 0),
            "the agent took every line of the load before its time cap"
        );
    }
    let at_load_end = cpu_ticks(pid);
    after_load();
    let start = Instant::now();
    while !settled() {
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "timed out waiting for the agent's backlog delivered"
        );
        std::thread::sleep(SETTLE_POLL);
    }
    if max_bodies != usize::MAX {
        while load_start.elapsed() < AFTER_START_AT_LEAST {
            std::thread::sleep(SETTLE_POLL);
        }
        let mut last = cpu_ticks(pid);
        loop {
            std::thread::sleep(QUIET_FOR);
            let now = cpu_ticks(pid);
            if now.saturating_sub(last) <= QUIET_TICKS {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(900),
                "the agent's CPU never settled after its delivery"
            );
            last = now;
        }
    }
    let cpu_s = (cpu_ticks(pid) - before) as f64 / tck;
    if let Some(mut p) = perf {
        let _ = Command::new("kill")
            .args(["-INT", &p.id().to_string()])
            .status();
        let _ = p.wait();
    }
    Row {
        lines_s: load.points as f64 / load.elapsed.as_secs_f64(),
        cpu_us_line: cpu_s * 1e6 / load.points.max(1) as f64,
        cpu_load_us_line: (at_load_end - before) as f64 / tck * 1e6 / load.points.max(1) as f64,
        rss_mib: vm_hwm_kib(pid) as f64 / 1024.0,
    }
}

/// One drain's figures: hissrv's and the direct writer's lines/s, and
/// hissrv's CPU per delivered line.
#[derive(Clone, Copy)]
struct Drain {
    /// Buffered lines over the time from influxd's restart to the last
    /// delivery (hissrv's back-off until it tries again included).
    hissrv_s: f64,
    /// The same lines after the first delivered request, over the time from
    /// then to the last: the drain's own pace, without the wait to notice
    /// that the upstream is back.
    paced_s: f64,
    /// From influxd's restart to hissrv's first delivered request.
    resume_s: f64,
    direct_s: f64,
    cpu_us_line: f64,
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(body).expect("gzip in memory");
    e.finish().expect("gzip in memory")
}

/// `lines` lines buffered by hissrv with influxd stopped, then delivered.
/// `baseline`: another hissrv binary drained right after this build's
/// (`HISSRV_BENCH_BASELINE_BIN`: a before/after in one run).
fn drain(
    influx: &mut Influx,
    bodies: &[std::sync::Arc<Vec<u8>>],
    lines: usize,
    baseline: Option<&str>,
) -> (Drain, Option<Drain>) {
    let n_bodies = lines.div_ceil(LINES_PER_BODY);
    let posting = agent();
    // The baseline first: one writer, gzip bodies, straight into influxd.
    influx.create_db("direct");
    let zipped: Vec<Vec<u8>> = (0..n_bodies)
        .map(|i| gzip(&bodies[i % bodies.len()]))
        .collect();
    let url = format!("{}/write?db=direct&precision=ns", influx.url());
    let start = Instant::now();
    for z in &zipped {
        let r = posting
            .post(&url)
            .header("Content-Encoding", "gzip")
            .send(&z[..])
            .expect("influxd takes the direct write");
        assert_eq!(r.status(), 204, "influxd refused the direct write");
    }
    let direct_s = (n_bodies * LINES_PER_BODY) as f64 / start.elapsed().as_secs_f64();
    let _ = influx.query("direct", "DROP DATABASE direct");
    let ours = drain_hissrv(influx, bodies, n_bodies, direct_s);
    let base = baseline.map(|bin| {
        if let Ok(mut b) = BINARY.lock() {
            *b = Some((bin.to_string(), String::new()));
        }
        let d = drain_hissrv(influx, bodies, n_bodies, direct_s);
        if let Ok(mut b) = BINARY.lock() {
            *b = None;
        }
        d
    });
    (ours, base)
}

fn drain_hissrv(
    influx: &mut Influx,
    bodies: &[std::sync::Arc<Vec<u8>>],
    n_bodies: usize,
    direct_s: f64,
) -> Drain {
    let posting = agent();

    influx.create_db("bench");
    influx.stop();
    let h = Hissrv::start_with(
        &influx.url(),
        Sections {
            service: "  log_level: warn\n",
            influxdb: "  database: bench\n",
            ..Sections::default()
        },
    );
    let url = format!("{}/write?db=bench", h.url());
    for i in 0..n_bodies {
        let r = posting
            .post(&url)
            .send(&bodies[i % bodies.len()][..])
            .expect("hissrv takes the write");
        assert_eq!(r.status(), 204, "hissrv refused a write");
    }
    let committed = health_counter(&h.url(), "points_committed");
    let tck = clock_ticks_per_sec();
    influx.restart();
    let before = cpu_ticks(h.pid());
    let start = Instant::now();
    // Polled tightly (not `wait_for`'s 20 ms): this instant splits the
    // resume wait from the drain's pace.
    let first_written = loop {
        let n = health_counter(&h.url(), "points_written");
        if n > 0 {
            break n;
        }
        assert!(start.elapsed() < Duration::from_secs(600), "no delivery");
        std::thread::sleep(Duration::from_millis(2));
    };
    let resumed = Instant::now();
    wait_for("the backlog delivered", Duration::from_secs(600), || {
        health_counter(&h.url(), "points_written") >= committed
    });
    let secs = start.elapsed().as_secs_f64();
    let paced_s = committed.saturating_sub(first_written) as f64 / resumed.elapsed().as_secs_f64();
    let cpu_s = (cpu_ticks(h.pid()) - before) as f64 / tck;
    drop(h);
    let _ = influx.query("bench", "DROP DATABASE bench");
    Drain {
        hissrv_s: committed as f64 / secs,
        paced_s,
        resume_s: resumed.duration_since(start).as_secs_f64(),
        direct_s,
        cpu_us_line: cpu_s * 1e6 / committed.max(1) as f64,
    }
}

fn main() {
    let secs = env_or("HISSRV_BENCH_SECS", 10);
    let runs = env_or("HISSRV_BENCH_RUNS", 3) as usize;
    let conns = env_or("HISSRV_BENCH_CONNS", 4) as usize;
    let dur = Duration::from_secs(secs);
    // HISSRV_BENCH_OWN_SERIES=1: each connection writes only its own
    // meters, in order (one poller a meter); by default every connection
    // writes every meter, so a meter's points come out of order, the
    // harder case for a downsampling rule's retry horizon.
    let owned = std::env::var("HISSRV_BENCH_OWN_SERIES").is_ok_and(|v| v == "1")
        && BODIES.is_multiple_of(conns.max(1));
    let bodies = if owned {
        telemetry_owned(BODIES, LINES_PER_BODY, conns)
    } else {
        telemetry(0, BODIES, LINES_PER_BODY)
    };
    let producers = if owned {
        "each its own meters, in order"
    } else {
        "every one writing every meter"
    };
    println!(
        "workload: {SERIES} series x {FIELDS} fields, {LINES_PER_BODY}-line bodies, {conns} connections ({producers}), {secs} s per agent and mode, {runs} rounds"
    );
    let drain_lines = env_or("HISSRV_BENCH_DRAIN_LINES", 500_000) as usize;
    // The load of the modes that deliver (up, outage) is a number of lines,
    // not a time: each agent then delivers the same backlog (a larger one
    // costs more to drain a line, and an agent with a rule takes fewer
    // lines in 10 s).
    let delivered_bodies =
        (env_or("HISSRV_BENCH_DELIVERED_LINES", 12_000_000) as usize).div_ceil(LINES_PER_BODY);
    // Which parts run (HISSRV_BENCH_MODES=drain: the drain alone).
    let modes = std::env::var("HISSRV_BENCH_MODES").unwrap_or_else(|_| "down,up,drain".into());
    let baseline = std::env::var("HISSRV_BENCH_BASELINE_BIN").ok();
    let mut base_drains: Vec<(Drain, Drain)> = Vec::new();
    let mut influx = Influx::start();
    let victoria = Victoria::start();
    let mut drains = Vec::new();
    // (mode, agent) → rows
    let mut rows: Vec<((&str, &str), Vec<Row>)> = Vec::new();
    let mut record = |key: (&'static str, &'static str), row: Row| {
        println!(
            "  {:>4} {:<7} {:>9.0} lines/s  {:>5.2} us CPU/line  peak RSS {:>5.1} MiB{}",
            key.0,
            key.1,
            row.lines_s,
            row.cpu_us_line,
            row.rss_mib,
            if key.0 == "outage" {
                format!(
                    " (buffering {:.2}, delivery {:.2})",
                    row.cpu_load_us_line,
                    row.cpu_us_line - row.cpu_load_us_line
                )
            } else {
                String::new()
            }
        );
        match rows.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(row),
            None => rows.push((key, vec![row])),
        }
    };
    for round in 1..=runs {
        println!("round {round}:");
        // Alternate which agent goes first, so drift favours neither.
        let mut order: Vec<&str> = if round % 2 == 1 {
            vec!["hissrv", "vmagent"]
        } else {
            vec!["vmagent", "hissrv"]
        };
        // The baseline binary (if given) runs the load too, right after
        // this build's.
        if baseline.is_some() {
            let at = order
                .iter()
                .position(|w| *w == "hissrv")
                .map_or(0, |i| i + 1);
            order.insert(at, "baseline");
        }
        // HISSRV_BENCH_WARM=1: this build again with a downsampling rule
        // taking every line (issue: data lifecycle, part 1), right after it.
        if std::env::var("HISSRV_BENCH_WARM").is_ok_and(|v| v == "1") {
            // Without it the load repeats its lines after one pass over the
            // bodies, and a rule takes repeats for retries: a cheaper path.
            assert!(
                std::env::var("HISSRV_BENCH_FRESH").is_ok_and(|v| v == "1"),
                "HISSRV_BENCH_WARM=1 needs HISSRV_BENCH_FRESH=1"
            );
            let at = order
                .iter()
                .position(|w| *w == "hissrv")
                .map_or(0, |i| i + 1);
            order.insert(at, "hissrv+5m");
            // And the baseline binary with the same rule, right after: a
            // rule's cost before and after, in one run.
            if baseline.is_some() {
                order.insert(at + 1, "baseline+5m");
            }
            // Which of the two comes first alternates too (review: the
            // rule's agent always ran right after a drain's disk work).
            if round % 2 == 0
                && let (Some(a), Some(b)) = (
                    order.iter().position(|w| *w == "hissrv"),
                    order.iter().position(|w| *w == "hissrv+5m"),
                )
            {
                order.swap(a, b);
            }
        }
        // Down: a time; the modes that deliver: a number of lines.
        let load_of = |mode: &str| LoadSpec {
            bodies: &bodies,
            conns,
            dur: if mode == "down" {
                dur
            } else {
                DELIVERED_LOAD_CAP
            },
            max_bodies: if mode == "down" {
                usize::MAX
            } else {
                delivered_bodies
            },
        };
        for mode in ["down", "up", "outage"] {
            if !modes.contains(mode) {
                continue;
            }
            for &who in &order {
                // The outage is hissrv's alone (vmagent's upstream is not
                // stopped and started here).
                if mode == "outage" && who == "vmagent" {
                    continue;
                }
                let row = match (who, mode) {
                    ("hissrv" | "baseline" | "hissrv+5m" | "baseline+5m", _) => {
                        if who.starts_with("baseline")
                            && let (Ok(mut b), Some(bin)) = (BINARY.lock(), &baseline)
                        {
                            *b = Some((bin.clone(), String::new()));
                        }
                        influx.create_db("bench");
                        if who.ends_with("+5m") {
                            // The rule's warm destination (`<rp>_<downsample>`):
                            // without it influxd refuses the aggregates
                            // ("retention policy not found") and hissrv
                            // retries them, so they were never delivered
                            // in the up mode's figures before 2026-11-28.
                            create_warm_rp(&influx);
                        }
                        let upstream = match mode {
                            "up" | "outage" => influx.url(),
                            _ => format!("http://127.0.0.1:{}", free_port()),
                        };
                        // The outage: influxd stopped while the load runs
                        // (everything buffered), started when it ends;
                        // CPU counted until the backlog is delivered, so a
                        // line's whole life through an outage.
                        if mode == "outage" {
                            influx.stop();
                        }
                        let h = Hissrv::start_with(
                            &upstream,
                            Sections {
                                service: "  log_level: warn\n",
                                influxdb: "  database: bench\n",
                                // The shipped back-off, not the tests' fast
                                // one: a down upstream is retried as in the
                                // field, not every 50-500 ms.
                                retry: "  initial_backoff_ms: 500\n  max_backoff_ms: 60000\n",
                                other: if who.ends_with("+5m") {
                                    // Event time runs ~2,000x faster than
                                    // the clock here (2 M lines/s of 1,000
                                    // series at 1 s): checkpoints each second
                                    // and room for the windows the 1 h
                                    // lateness keeps, or most values are
                                    // refused as full and the bench times
                                    // refusals (it did, to 2026-11-28).
                                    "lifecycle:\n  checkpoint_interval: 1s\n  max_open_windows: 1000000\n  rules:\n    - measurement: meter\n      downsample: 5m\n"
                                } else {
                                    ""
                                },
                                ..Sections::default()
                            },
                        );
                        let url = h.url();
                        let asking = agent();
                        let delivered = || mode == "down" || hissrv_settled(&asking, &url);
                        let row = measure(
                            h.pid(),
                            &format!("{}/write?db=bench", h.url()),
                            load_of(mode),
                            &delivered,
                            &mut || {
                                if mode == "outage" {
                                    influx.restart();
                                }
                            },
                        );
                        if who.ends_with("+5m") {
                            // What the rule did: every value counted, none
                            // refused (a bench of refusals measures nothing).
                            let m = ureq::get(&format!("{url}/metrics"))
                                .call()
                                .ok()
                                .and_then(|r| r.into_body().read_to_string().ok())
                                .unwrap_or_default();
                            let metric = |name: &str| {
                                m.lines()
                                    .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
                                    .unwrap_or(0.0)
                            };
                            println!(
                                "    5m rule: {:.0} values counted, {:.0} refused (full), {:.0} late, {:.0} repeats, {:.0} checkpoints",
                                metric("hissrv_downsample_values_counted_total "),
                                metric("hissrv_downsample_values_refused_full_total "),
                                metric("hissrv_downsample_values_late_total "),
                                metric("hissrv_downsample_values_repeated_total "),
                                metric("hissrv_downsample_checkpoints_total "),
                            );
                        }
                        drop(h);
                        if let Ok(mut b) = BINARY.lock() {
                            *b = None;
                        }
                        let _ = influx.query("bench", "DROP DATABASE bench");
                        row
                    }
                    _ => {
                        let remote = if mode == "up" {
                            format!("{}/api/v1/write", victoria.url())
                        } else {
                            format!("http://127.0.0.1:{}/api/v1/write", free_port())
                        };
                        let v = Vmagent::start(&remote);
                        let url = format!("http://127.0.0.1:{}/write?db=bench", v.port);
                        let metrics = format!("http://127.0.0.1:{}/metrics", v.port);
                        let delivered = || mode == "down" || vmagent_settled(&metrics);
                        measure(v.child.id(), &url, load_of(mode), &delivered, &mut || {})
                    }
                };
                record(
                    (
                        mode,
                        match who {
                            "hissrv" => "hissrv",
                            "baseline" => "baseline",
                            "hissrv+5m" => "hissrv+5m",
                            "baseline+5m" => "baseline+5m",
                            _ => "vmagent",
                        },
                    ),
                    row,
                );
            }
        }
        if !modes.contains("drain") {
            continue;
        }
        let (d, base) = drain(&mut influx, &bodies, drain_lines, baseline.as_deref());
        if let Some(b) = base {
            println!(
                "  drain   baseline {:>7.0} lines/s  {:>5.2} us CPU/line | after the first delivery {:>9.0} lines/s | this build / baseline: lines/s {:.2}x, CPU per line {:.2}x",
                b.hissrv_s,
                b.cpu_us_line,
                b.paced_s,
                d.hissrv_s / b.hissrv_s,
                d.cpu_us_line / b.cpu_us_line
            );
            base_drains.push((d, b));
        }
        println!(
            "  drain   hissrv {:>9.0} lines/s  {:>5.2} us CPU/line | direct gzip writer {:>9.0} lines/s ({:.2}x) | after the first delivery {:>9.0} lines/s ({:.2}x), first delivery {:.2} s after the restart",
            d.hissrv_s,
            d.cpu_us_line,
            d.direct_s,
            d.hissrv_s / d.direct_s,
            d.paced_s,
            d.paced_s / d.direct_s,
            d.resume_s
        );
        drains.push(d);
    }
    println!("\nmedians of {runs} rounds:");
    println!("| mode | agent | lines/s | CPU us/line | peak RSS MiB |");
    println!("|---|---|---|---|---|");
    for ((mode, who), v) in &rows {
        let col = |f: fn(&Row) -> f64| median(v.iter().map(f).collect());
        println!(
            "| {mode} | {who} | {:.0} | {:.2} | {:.1} |",
            col(|r| r.lines_s),
            col(|r| r.cpu_us_line),
            col(|r| r.rss_mib)
        );
    }
    if !drains.is_empty() {
        let dcol = |f: fn(&Drain) -> f64| median(drains.iter().map(f).collect());
        println!(
            "drain of {drain_lines} buffered lines: hissrv {:.0} lines/s, {:.2} us CPU/line; direct gzip writer {:.0} lines/s; ratio (median of rounds) {:.2}x",
            dcol(|d| d.hissrv_s),
            dcol(|d| d.cpu_us_line),
            dcol(|d| d.direct_s),
            dcol(|d| d.hissrv_s / d.direct_s)
        );
        println!(
            "drain after the first delivery: {:.0} lines/s, ratio {:.2}x; first delivery {:.2} s after influxd's restart",
            dcol(|d| d.paced_s),
            dcol(|d| d.paced_s / d.direct_s),
            dcol(|d| d.resume_s)
        );
    }
    if !base_drains.is_empty() {
        let m = |f: fn(&(Drain, Drain)) -> f64| median(base_drains.iter().map(f).collect());
        println!(
            "drain, this build / baseline (medians of rounds): lines/s {:.2}x, after the first delivery {:.2}x, CPU per line {:.2}x",
            m(|(d, b)| d.hissrv_s / b.hissrv_s),
            m(|(d, b)| d.paced_s / b.paced_s),
            m(|(d, b)| d.cpu_us_line / b.cpu_us_line)
        );
    }
    for mode in ["down", "up", "outage"] {
        if !modes.contains(mode) {
            continue;
        }
        let med = |who: &str, f: fn(&Row) -> f64| {
            rows.iter()
                .find(|((m, w), _)| *m == mode && *w == who)
                .map_or(f64::NAN, |(_, v)| median(v.iter().map(f).collect()))
        };
        if mode != "outage" {
            println!(
                "{mode}: hissrv / vmagent lines/s {:.2}x, CPU per line {:.2}x",
                med("hissrv", |r| r.lines_s) / med("vmagent", |r| r.lines_s),
                med("hissrv", |r| r.cpu_us_line) / med("vmagent", |r| r.cpu_us_line)
            );
        }
        let warm = med("hissrv+5m", |r| r.cpu_us_line);
        if warm.is_finite() {
            println!(
                "{mode}: with a 5m rule / without: CPU per line {:.2}x (+{:.2} us), lines/s {:.2}x",
                warm / med("hissrv", |r| r.cpu_us_line),
                warm - med("hissrv", |r| r.cpu_us_line),
                med("hissrv+5m", |r| r.lines_s) / med("hissrv", |r| r.lines_s)
            );
            if mode == "outage" {
                let buffering = |who: &str| med(who, |r| r.cpu_load_us_line);
                let delivery = |who: &str| med(who, |r| r.cpu_us_line - r.cpu_load_us_line);
                println!(
                    "outage, with a 5m rule less without: buffering {:+.2} us a line, delivery {:+.2} us",
                    buffering("hissrv+5m") - buffering("hissrv"),
                    delivery("hissrv+5m") - delivery("hissrv")
                );
            }
        }
        let old_warm = med("baseline+5m", |r| r.cpu_us_line);
        if old_warm.is_finite() {
            println!(
                "{mode}: baseline with a 5m rule / baseline without: CPU per line {:.2}x (+{:.2} us); with a rule, this build / baseline: {:.2}x",
                old_warm / med("baseline", |r| r.cpu_us_line),
                old_warm - med("baseline", |r| r.cpu_us_line),
                warm / old_warm
            );
        }
    }
}
