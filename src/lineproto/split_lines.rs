//! A payload's lines taken apart once for every reader of one commit: the
//! buffer's column codec and the downsampling windows each split every line
//! of a batch a rule takes, and splitting was a third of the windows' cost
//! (`benches/downsample.rs`). One arena of fields for the whole payload,
//! not a vector a line.
//!
//! Invariant: `lines` has one entry per line of the payload, in order (as
//! `lineproto::lines` cuts it); a line `split_into` refuses is kept as
//! its text, so a reader that needs every line (the codec) can refuse the
//! payload as it would have, and name the line, without cutting the
//! payload into lines again (a second cut was 26 ns a line, the codec's
//! part of a commit with a rule: BENCHMARKS.md).

use super::split::{Value, split_onto};

/// One line of a payload: its series key, its fields' range in
/// `SplitLines::fields`, its timestamp; its text when it does not split.
pub type SplitLine<'a> = Result<(&'a [u8], std::ops::Range<usize>, i64), &'a [u8]>;

/// A line's series key, fields and timestamp.
pub type Parts<'a, 'f> = (&'a [u8], &'f [(&'a [u8], Value<'a>)], i64);

#[derive(Default)]
pub struct SplitLines<'a> {
    /// What was split.
    pub payload: &'a [u8],
    pub lines: Vec<SplitLine<'a>>,
    pub fields: Vec<(&'a [u8], Value<'a>)>,
    /// Each line's shape, when the column codec encoded the split (its
    /// `Columns`: lines of one shape have the same series key and the same
    /// field names and types, in order), numbered 0.. in this payload only.
    /// The downsampling windows find a shape's series once a batch with
    /// them (`downsample::windows::SeriesHint`).
    pub shapes: std::cell::OnceCell<Vec<u32>>,
}

impl<'a> SplitLines<'a> {
    pub fn of(payload: &'a [u8]) -> SplitLines<'a> {
        SplitLines::of_at_most(payload, usize::MAX).unwrap_or_default()
    }

    /// `of`, or `None` once more than `max_fields` fields were split (the
    /// arena bounded: its memory is the caller's limit, not the payload's).
    pub fn of_at_most(payload: &'a [u8], max_fields: usize) -> Option<SplitLines<'a>> {
        // About a field per 10 bytes and a line per 100 (a meter's line of
        // 10 fields), within the bound: one allocation each, mostly.
        let mut out = SplitLines {
            payload,
            lines: Vec::with_capacity(payload.len() / 100),
            fields: Vec::with_capacity((payload.len() / 10).min(max_fields)),
            shapes: std::cell::OnceCell::new(),
        };
        for line in super::lines(payload) {
            let at = out.fields.len();
            let split = split_onto(line, &mut out.fields);
            if out.fields.len() > max_fields {
                return None;
            }
            out.lines.push(
                split
                    .map(|(key, ts)| (key, at..out.fields.len(), ts))
                    .ok_or(line),
            );
        }
        Some(out)
    }

    /// Each line: series key, fields, timestamp (`None`: it does not split).
    pub fn iter(&self) -> impl Iterator<Item = Option<Parts<'a, '_>>> {
        self.parts().map(Result::ok)
    }

    /// Each line: series key, fields, timestamp, or its text when it does
    /// not split.
    pub fn parts(&self) -> impl Iterator<Item = Result<Parts<'a, '_>, &'a [u8]>> {
        self.lines.iter().map(|l| {
            let (key, range, ts) = l.as_ref().map_err(|line| *line)?;
            // The range is the arena's own (`of_at_most`).
            let fields = self.fields.get(range.clone()).unwrap_or_default();
            Ok((*key, fields, *ts))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineproto::split::split_into;

    #[test]
    fn every_line_splits_as_alone_and_a_refused_one_keeps_its_place() {
        let payload = b"m,t=a f=1.5,i=-3i 9\nm v=x 1\nn s=\"a b\" -1\n";
        let s = SplitLines::of(payload);
        let got: Vec<_> = s.iter().collect();
        assert_eq!(got.len(), 3);
        let mut fields = Vec::new();
        for (line, got) in crate::lineproto::lines(payload).zip(&got) {
            match split_into(line, &mut fields) {
                Some((key, ts)) => assert_eq!(*got, Some((key, &fields[..], ts))),
                None => assert!(got.is_none()),
            }
        }
        // A refused line leaves nothing in the arena: a line failing after
        // its first field (`v=x`) too.
        let n: usize = got.iter().flatten().map(|(_, f, _)| f.len()).sum();
        assert_eq!(s.fields.len(), n);
        let s = SplitLines::of(b"m a=1,v=x 1\nm b=2 2\n");
        assert_eq!(s.fields.len(), 1);
        assert_eq!(
            s.parts().next().map(|p| p.err()),
            Some(Some(&b"m a=1,v=x 1"[..])),
            "a refused line kept as its text"
        );
        assert!(SplitLines::of(b"").iter().next().is_none());
        // Bounded: past the bound, nothing (the caller splits line by line).
        assert_eq!(
            SplitLines::of_at_most(payload, 3).map(|s| s.fields.len()),
            Some(3)
        );
        assert!(SplitLines::of_at_most(payload, 2).is_none());
    }
}
