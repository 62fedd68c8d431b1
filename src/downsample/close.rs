//! Closing windows: what event time has passed is emitted as aggregate
//! lines, and what is past `max_lateness` is forgotten (the rules are in
//! `windows`' module text).

use super::{Lane, Windows};
use crate::downsample::aggregate::Aggregates;
use crate::lineproto::numbers::push_i64;

impl Windows {
    /// Emits each closed window that changed since it was last emitted, as
    /// `emit(lane, line)` with one line per lane, window and series (the
    /// fields of every field's window, `\n`-terminated), and forgets the
    /// windows past `max_lateness`. Lines come by lane and window start
    /// (the series of one window in the order they came); fields in the order
    /// they first came.
    pub fn close(&mut self, mut emit: impl FnMut(Lane, &[u8])) {
        let mut line: Vec<u8> = Vec::new();
        let mut freed = 0;
        let counts = &mut self.counts;
        let removed = &mut self.removed;
        self.open.retain(|&(lane, start), set| {
            let (Some(rule), Some(&w)) = (
                self.rules.get(usize::from(lane.rule)),
                self.watermarks.get(&lane),
            ) else {
                return true;
            };
            if !rule.closed(start, w) {
                return true;
            }
            let window = &mut set.series;
            for (series, entry) in window.iter_mut().filter(|_| set.dirty) {
                line.clear();
                line.extend_from_slice(series);
                for field in entry.fields.iter_mut().filter(|f| f.changed) {
                    field.changed = false;
                    let aggs = rule
                        .aggregates
                        .unwrap_or_else(|| Aggregates::defaults_for(field.window.kind()));
                    let fields_at = line.len();
                    let name = entry.names.get(field.name()).unwrap_or_default();
                    field.window.push_fields(name, aggs, &mut line);
                    if line.len() == fields_at {
                        // Nothing to write (a string window asked only for a mean).
                        continue;
                    }
                    if fields_at == series.len() {
                        // The first field of the line: no comma before it.
                        line[fields_at] = b' ';
                    }
                    if field.emitted {
                        counts.re_emitted += 1;
                    } else {
                        counts.emitted += 1;
                        field.emitted = true;
                    }
                }
                if line.len() > series.len() {
                    line.push(b' ');
                    push_i64(&mut line, start);
                    line.push(b'\n');
                    emit(lane, &line);
                }
            }
            set.unsaved |= set.dirty;
            set.dirty = false;
            if rule.forgotten(start, w) {
                freed += window.values().map(|e| e.fields.len()).sum::<usize>();
                removed.push((lane, start));
                return false;
            }
            true
        });
        self.held -= freed;
    }
}
