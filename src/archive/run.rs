//! One run written: its batches read in commit order and cut by the
//! points' period (hour or day of their own timestamps) into objects, at
//! most `OPEN_OBJECTS_MAX` open at once (a gzip stream each); a run
//! spanning more periods is read again for each group of them. A batch of
//! one period whose lines hold no line break is written whole (the common
//! case: line by line was a third of the time, `benches/archive.rs`); a
//! point whose string holds a line break goes to the object's sidecar.
//! Memory: the batch being read and the open streams, never an object.

use super::ArchiveError;
use super::archiver::{Archiver, OPEN_OBJECTS_MAX};
use super::object::{MULTILINE_SUFFIX, Manifest, OBJECT_SUFFIX, object_name, period_of};
use super::part::PartFile;
use crate::observe::archiving::Archiving;
use crate::wal::ArchiveRun;
use std::collections::{BTreeMap, BTreeSet};

impl Archiver {
    /// Writes a run's objects, one per period its points fall in; returns
    /// how many.
    pub fn write_run(&mut self, run: &ArchiveRun) -> Result<usize, ArchiveError> {
        let target = self
            .targets
            .get(&run.target)
            .ok_or_else(|| ArchiveError::Io {
                what: format!("find target {}", run.target),
                source: std::io::Error::other("no rule names it"),
            })?;
        let p = run.period_s;
        // The periods the batches' ranges span, when few; else those their
        // points are really in (one more read).
        let mut spans = BTreeSet::new();
        let mut few = true;
        for b in &run.batches {
            let (lo, hi) = (period_of(b.first_ts, p), period_of(b.last_ts, p));
            if hi.saturating_sub(lo) >= OPEN_OBJECTS_MAX as i64
                || spans.len() > 4 * OPEN_OBJECTS_MAX
            {
                few = false;
                break;
            }
            spans.extend(lo..=hi);
        }
        let periods: Vec<i64> = if few {
            spans.into_iter().collect()
        } else {
            let mut seen = BTreeSet::new();
            for b in &run.batches {
                if let Some(lines) = self.wal.run_batch_lines(b.id)? {
                    for line in crate::lineproto::lines(&lines) {
                        seen.insert(period_of(
                            crate::lineproto::line_ts(line).unwrap_or(b.first_ts),
                            p,
                        ));
                    }
                }
            }
            seen.into_iter().collect()
        };
        let mut objects = 0;
        let mut undecodable = BTreeSet::new();
        for group in periods.chunks(OPEN_OBJECTS_MAX) {
            let (lo, hi) = match (group.first(), group.last()) {
                (Some(lo), Some(hi)) => (*lo, *hi),
                _ => continue,
            };
            // Per period: the object and, for points holding a line break,
            // its sidecar.
            let mut open: BTreeMap<i64, (PartFile, Option<PartFile>)> = BTreeMap::new();
            for b in &run.batches {
                if period_of(b.last_ts, p) < lo || period_of(b.first_ts, p) > hi {
                    continue;
                }
                let Some(lines) = self.wal.run_batch_lines(b.id)? else {
                    undecodable.insert(b.id);
                    continue;
                };
                // The common case: one period, no line break inside a line
                // (as many newlines as lines the parser's scan finds): the
                // whole payload at once.
                let one = period_of(b.first_ts, p);
                let in_one = one == period_of(b.last_ts, p) && group.contains(&one);
                let n = if in_one {
                    crate::lineproto::lines(&lines).count()
                } else {
                    0
                };
                let whole = in_one
                    && lines.ends_with(b"\n")
                    && lines.iter().filter(|&&c| c == b'\n').count() == n;
                if whole {
                    let name = object_name(
                        &run.dest.db,
                        &run.dest.rp,
                        one,
                        p,
                        &self.buffer_id,
                        (run.first_seq, run.last_seq),
                    );
                    let (main, _) = match open.entry(one) {
                        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::btree_map::Entry::Vacant(v) => {
                            v.insert((target.begin(&name, &run.dest.db, &run.dest.rp)?, None))
                        }
                    };
                    main.payload(&lines, n as u64, b.first_ts, b.last_ts)?;
                    continue;
                }
                for line in crate::lineproto::lines(&lines) {
                    let ts = crate::lineproto::line_ts(line).unwrap_or(b.first_ts);
                    let period = period_of(ts, p);
                    if !group.contains(&period) {
                        continue;
                    }
                    let name = || {
                        object_name(
                            &run.dest.db,
                            &run.dest.rp,
                            period,
                            p,
                            &self.buffer_id,
                            (run.first_seq, run.last_seq),
                        )
                    };
                    let (main, side) = match open.entry(period) {
                        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::btree_map::Entry::Vacant(v) => {
                            let o = target.begin(&name(), &run.dest.db, &run.dest.rp)?;
                            v.insert((o, None))
                        }
                    };
                    if !line.contains(&b'\n') {
                        main.line(line, ts)?;
                        continue;
                    }
                    if side.is_none() {
                        let n = name();
                        let stem = n.strip_suffix(OBJECT_SUFFIX).unwrap_or(&n);
                        let side_name = format!("{stem}{MULTILINE_SUFFIX}");
                        *side = Some(target.begin(&side_name, &run.dest.db, &run.dest.rp)?);
                    }
                    if let Some(side) = side.as_mut() {
                        side.line(line, ts)?;
                    }
                }
            }
            for (period, (o, side)) in open {
                let name = o.name().to_string();
                // The sidecar first: the manifest, last, says both are there.
                let side = side.map(|s| target.confirm(s)).transpose()?;
                let multiline = side.as_ref().map_or(0, |s| s.points);
                let mut w = target.confirm(o)?;
                // The manifest's range covers the sidecar's points too: a
                // restore by time finds them (second review).
                if let Some(s) = &side {
                    w.first_ts = w.first_ts.min(s.first_ts);
                    w.last_ts = w.last_ts.max(s.last_ts);
                }
                let start_ns = period
                    .saturating_mul(p as i64)
                    .saturating_mul(1_000_000_000);
                target.put_manifest(&Manifest {
                    object: name,
                    database: run.dest.db.clone(),
                    retention_policy: run.dest.rp.clone(),
                    points: w.points,
                    first_ts: w.first_ts,
                    last_ts: w.last_ts,
                    first: crate::clock::rfc3339(w.first_ts),
                    last: crate::clock::rfc3339(w.last_ts),
                    period_start: crate::clock::rfc3339(start_ns),
                    period_s: p,
                    bytes: w.bytes,
                    sha256: w.sha256,
                    multiline_points: multiline,
                    buffer: self.buffer_id.clone(),
                    first_seq: run.first_seq,
                    last_seq: run.last_seq,
                    format: "influx -import -compressed -precision ns".into(),
                })?;
                if w.existed {
                    // Written before a crash, counted then.
                    continue;
                }
                let a = &self.stats.archiving;
                Archiving::add(&a.objects, 1);
                Archiving::add(&a.points, w.points);
                Archiving::add(&a.bytes, w.bytes);
                objects += 1;
            }
        }
        if !undecodable.is_empty() {
            Archiving::add(&self.stats.archiving.undecodable, undecodable.len() as u64);
            log::error!(
                "archive: {} batches of {}/{} no longer decode; not archived (the forwarder keeps them raw as dead letters)",
                undecodable.len(),
                run.dest.db,
                run.dest.rp
            );
        }
        Ok(objects)
    }
}
