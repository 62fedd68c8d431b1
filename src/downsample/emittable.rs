//! What `windows` may hold because `close` can write it back: series keys,
//! field names and string values that make line protocol the parser takes
//! whole. Checked when a series or field first comes (`windows`) and when a
//! checkpoint is read back (`state`), so neither a producer's odd bytes nor
//! a damaged file can make the warm tier emit a line InfluxDB refuses.

/// A series key `windows` takes and emits: measurement and tags, as the
/// parser stores them: no leading whitespace, NUL or `#` (a reader takes
/// the line for a comment or strips them), no backslash last (the space
/// after the key would read as escaped: found by fuzzing `decode_state`),
/// and a line made with it parses (found in review: restored keys `m,a`,
/// `m,time=1` or `m,b=1,b=2` made lines InfluxDB refuses).
pub(super) fn is_series_key(key: &[u8]) -> bool {
    let ends_well = !matches!(key.first(), Some(b'\t' | 0 | b'#')) && key.last() != Some(&b'\\');
    ends_well && plain_text(key, b" \n") && emits_cleanly(key, b"f")
}

/// A field name `windows` takes and emits (`<name>_mean=…`). The parser
/// lets a bare comma into a field key (InfluxDB's scan counts it), which
/// would make the emitted line another line: such a field is not
/// aggregated (`OutOfRange`), as the codec does not take it either.
pub(super) fn is_field_name(name: &[u8]) -> bool {
    plain_text(name, b" ,=\n") && emits_cleanly(b"m", name)
}

/// The line `<key> <field>_last=1i 0`, as `close` would write it, parses as
/// one point, is stored as itself, and splits back into that key and field.
fn emits_cleanly(key: &[u8], field: &[u8]) -> bool {
    use crate::lineproto::{ParseOptions, Precision, parse_into, split::split};
    const SUFFIX: &[u8] = b"_last";
    let mut line = Vec::with_capacity(key.len() + field.len() + 16);
    line.extend_from_slice(key);
    line.push(b' ');
    line.extend_from_slice(field);
    line.extend_from_slice(SUFFIX);
    line.extend_from_slice(b"=1i 0\n");
    let opts = ParseOptions {
        precision: Precision::Nanos,
        now_ns: 0,
        allow_unsigned: true,
    };
    let mut out = Vec::with_capacity(line.len());
    let parsed = parse_into(&line, &opts, &mut out);
    if parsed.points != 1 || parsed.rejected != 0 || out != line {
        return false;
    }
    let Some(l) = out.strip_suffix(b"\n").and_then(split) else {
        return false;
    };
    let name = l.fields.first().map(|f| f.0);
    l.key == key && l.fields.len() == 1 && name.and_then(|n| n.strip_suffix(SUFFIX)) == Some(field)
}

/// Key or field text (escapes kept) as the parser let it through: not
/// empty, none of `bare` unescaped, no lone `\` at its end. Emitted
/// lines are made of it: damage must not make them unreadable upstream.
fn plain_text(s: &[u8], bare: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' if i + 1 == s.len() => return false,
            b'\\' => i += 2,
            b if bare.contains(&b) => return false,
            _ => i += 1,
        }
    }
    !s.is_empty()
}

/// A string field's text (escapes kept) that, written between quotes,
/// ends at the closing quote: no bare `"` inside, no lone `\` at its end.
pub(super) fn closes_only_at_its_end(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' if i + 1 == s.len() => return false,
            b'\\' => i += 2,
            b'"' => return false,
            _ => i += 1,
        }
    }
    true
}
