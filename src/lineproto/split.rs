//! Taking a normalised line (as `lineproto::parse_into` writes it) apart:
//! series key, fields with their types, timestamp. The parser has already
//! judged the line, so this scanner only needs InfluxDB's escaping rules, and
//! still refuses rather than guesses when something is off.

use super::numbers::{Decimal, decimal_digits, int, uint};

/// A field value, as its text says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// A float written as a plain decimal: its digits, so that a reader
    /// who wants digits (the codec's decimal columns) need not get them
    /// back from the f64.
    Decimal(Decimal),
    /// Any other float (exponents, more than 15 digits).
    Float(f64),
    Int(i64),
    Uint(u64),
    Bool(bool),
    /// The text between the quotes, escapes kept.
    Str(&'a [u8]),
}

impl Value<'_> {
    /// A float's value (`None` for the other kinds).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Decimal(d) => Some(d.to_f64()),
            Value::Float(x) => Some(x),
            _ => None,
        }
    }

    pub fn kind(&self) -> u8 {
        match self {
            Value::Decimal(_) | Value::Float(_) => 0,
            Value::Int(_) => 1,
            Value::Uint(_) => 2,
            Value::Bool(_) => 3,
            Value::Str(_) => 4,
        }
    }
}

pub struct Line<'a> {
    /// Measurement and tags, escapes kept.
    pub key: &'a [u8],
    pub fields: Vec<(&'a [u8], Value<'a>)>,
    pub ts: i64,
}

fn number<T: std::str::FromStr>(b: &[u8]) -> Option<T> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// The boolean spellings InfluxDB 1.6 accepts (`scan_boolean`'s).
const BOOL_TRUE: [&[u8]; 5] = [b"t", b"T", b"true", b"True", b"TRUE"];
const BOOL_FALSE: [&[u8]; 5] = [b"f", b"F", b"false", b"False", b"FALSE"];

fn value(v: &[u8]) -> Option<Value<'_>> {
    match v.first()? {
        b'"' if v.len() >= 2 && v.last() == Some(&b'"') => Some(Value::Str(&v[1..v.len() - 1])),
        b'"' => None,
        // Only the spellings the parser accepts: `t"` read as `true` lost
        // the quote that closed a string on the stored line.
        b't' | b'T' => BOOL_TRUE.contains(&v).then_some(Value::Bool(true)),
        b'f' | b'F' => BOOL_FALSE.contains(&v).then_some(Value::Bool(false)),
        _ => match v.last()? {
            b'i' => int(&v[..v.len() - 1]).map(Value::Int),
            b'u' => uint(&v[..v.len() - 1]).map(Value::Uint),
            _ => decimal_digits(v)
                .map(Value::Decimal)
                .or_else(|| number(v).map(Value::Float)),
        },
    }
}

/// A line's pieces as text: what routing needs to cut a line by field.
pub struct Parts<'a> {
    /// Measurement and tags, escapes kept.
    pub key: &'a [u8],
    /// Each field's key and its whole `key=value` text.
    pub fields: Vec<(&'a [u8], &'a [u8])>,
    pub ts: i64,
    pub ts_text: &'a [u8],
}

/// A normalised line's frame: series key, timestamp, its text, and the
/// field set between them. The key ends at the first space not escaped
/// (InfluxDB's rule: the byte before it is not a backslash).
struct Frame<'a> {
    key: &'a [u8],
    ts: i64,
    ts_text: &'a [u8],
    body: &'a [u8],
}

fn frame(line: &[u8]) -> Option<Frame<'_>> {
    let key_end = (1..line.len()).find(|&i| line[i] == b' ' && line[i - 1] != b'\\')?;
    let ts_start = line.iter().rposition(|&b| b == b' ')? + 1;
    let ts_text = &line[ts_start..];
    let ts = int(ts_text)?;
    // The parser (as InfluxDB) skips spaces, tabs and NULs before the field
    // set, and stores them: the first field's name starts after them (found
    // in review: `m  x=1` read as a field ` x`, `m \tx=2` as `\tx`).
    let mut body_start = key_end + 1;
    while matches!(line.get(body_start), Some(b' ' | b'\t' | 0)) {
        body_start += 1;
    }
    let body = line.get(body_start..ts_start.checked_sub(1)?)?;
    Some(Frame {
        key: &line[..key_end],
        ts,
        ts_text,
        body,
    })
}

/// The field at `*i` of a field set: its key and its whole `key=value`
/// text; `*i` moves past it and its comma. `None` if it is malformed.
fn next_field<'a>(body: &'a [u8], i: &mut usize) -> Option<(&'a [u8], &'a [u8])> {
    let k_start = *i;
    // As the parser scans a field set: a backslash takes the next byte
    // with it, and an `=` not taken so ends the key. (A look-behind as
    // well read `I\\=` as an escaped `=`: found by fuzzing, the key and
    // value came back as another field.)
    while *i < body.len() && body[*i] != b'=' {
        // A bare comma in a key: InfluxDB's scan counts it as a field
        // separator when it decides which quotes open strings (`equals >
        // commas`), so its reading and ours could part (found by fuzzing:
        // `,\ \<newline>="\\=",=t"` read as one line, re-rendered as two
        // fields of another line). Refused: the batch is stored as text.
        if body[*i] == b',' {
            return None;
        }
        *i += if body[*i] == b'\\' { 2 } else { 1 };
    }
    let key = body.get(k_start..*i)?;
    *i += 1;
    if body.get(*i) == Some(&b'"') {
        *i += 1;
        while *i < body.len() && body[*i] != b'"' {
            *i += if body[*i] == b'\\' { 2 } else { 1 };
        }
        *i += 1;
    } else {
        while *i < body.len() && body[*i] != b',' {
            *i += 1;
        }
    }
    let text = body.get(k_start..*i)?;
    if *i < body.len() && body[*i] != b',' {
        return None;
    }
    *i += 1;
    Some((key, text))
}

/// Cuts one line (without its newline) into text pieces. `None` if it is not
/// a normalised line.
pub fn parts(line: &[u8]) -> Option<Parts<'_>> {
    let Frame {
        key,
        ts,
        ts_text,
        body,
    } = frame(line)?;
    let mut fields = Vec::with_capacity(8);
    let mut i = 0;
    while i < body.len() {
        fields.push(next_field(body, &mut i)?);
    }
    (!fields.is_empty()).then_some(Parts {
        key,
        fields,
        ts,
        ts_text,
    })
}

/// Splits one line (without its newline). `None` if it is not a normalised line.
pub fn split(line: &[u8]) -> Option<Line<'_>> {
    let mut fields = Vec::with_capacity(8);
    let (key, ts) = split_into(line, &mut fields)?;
    Some(Line { key, fields, ts })
}

/// As `split`, into `fields` (cleared first; its allocation is reused from
/// line to line): returns the series key and the timestamp. The scan is
/// `parts`'s (`frame`, `next_field`), without its per-line vector.
pub fn split_into<'a>(
    line: &'a [u8],
    fields: &mut Vec<(&'a [u8], Value<'a>)>,
) -> Option<(&'a [u8], i64)> {
    fields.clear();
    split_onto(line, fields)
}

/// As `split_into`, appending the fields to `fields` (a whole payload's
/// arena, `split_lines`); a line refused leaves `fields` as it was.
pub fn split_onto<'a>(
    line: &'a [u8],
    fields: &mut Vec<(&'a [u8], Value<'a>)>,
) -> Option<(&'a [u8], i64)> {
    let at = fields.len();
    let split = (|| {
        let Frame { key, ts, body, .. } = frame(line)?;
        let mut i = 0;
        while i < body.len() {
            let (k, text) = next_field(body, &mut i)?;
            fields.push((k, value(text.get(k.len() + 1..)?)?));
        }
        (fields.len() > at).then_some((key, ts))
    })();
    if split.is_none() {
        fields.truncate(at);
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(negative: bool, n: u64, frac: u32) -> Value<'static> {
        Value::Decimal(Decimal { negative, n, frac })
    }

    #[test]
    fn a_line_comes_apart_into_key_typed_fields_and_timestamp() {
        let l =
            split(br#"m\ x,t=a\ b f=1.50,i=-3i,u=4u,b=T,s="a \"q\", b",k\=y=2,e=-1e3 -7"#).unwrap();
        assert_eq!(l.key, br"m\ x,t=a\ b");
        assert_eq!(l.ts, -7);
        let f: Vec<_> = l.fields.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(
            f,
            vec![
                (&b"f"[..], dec(false, 15, 1)),
                (b"i", Value::Int(-3)),
                (b"u", Value::Uint(4)),
                (b"b", Value::Bool(true)),
                (b"s", Value::Str(br#"a \"q\", b"#)),
                (br"k\=y", dec(false, 2, 0)),
                (b"e", Value::Float(-1000.0)),
            ]
        );
    }

    #[test]
    fn a_field_key_ending_in_an_escaped_backslash_ends_at_the_equals_sign() {
        let l = split(br#"m I\\="a=t b" 0"#).unwrap();
        assert_eq!(l.fields, vec![(&br"I\\"[..], Value::Str(b"a=t b"))]);
        let l = split(br"m k\=y=2,z=1i 0").unwrap();
        assert_eq!(l.fields[0], (&br"k\=y"[..], dec(false, 2, 0)));
    }

    #[test]
    fn split_into_reuses_its_vector_and_agrees_with_parts() {
        let mut fields = Vec::new();
        for line in [
            &br#"m,t=a f=1.5,i=-3i,s="x,y" 9"#[..],
            br"m\ x k\=y=2,z=1u -1",
        ] {
            let (key, ts) = split_into(line, &mut fields).unwrap();
            let p = parts(line).unwrap();
            assert_eq!((key, ts), (p.key, p.ts));
            let keys: Vec<_> = fields.iter().map(|f| f.0).collect();
            let pkeys: Vec<_> = p.fields.iter().map(|f| f.0).collect();
            assert_eq!(keys, pkeys);
        }
        assert!(split_into(b"m v=x 1", &mut fields).is_none());
    }

    #[test]
    fn text_that_is_not_a_normalised_line_is_refused() {
        assert!(split(b"m v=1").is_none());
        assert!(split(b"m v=x 1").is_none());
        assert!(split(b"").is_none());
    }
}
