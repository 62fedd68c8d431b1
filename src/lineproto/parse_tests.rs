//! Named vectors for the line-protocol parser.

use super::*;

const NOW: i64 = 1_700_000_000_123_456_789;

fn opts(precision: Precision) -> ParseOptions {
    ParseOptions {
        precision,
        now_ns: NOW,
        allow_unsigned: true,
    }
}

fn parse(body: &str) -> (String, Parsed) {
    parse_with(body, opts(Precision::Nanos))
}

fn parse_with(body: &str, o: ParseOptions) -> (String, Parsed) {
    let mut out = Vec::new();
    let p = parse_into(body.as_bytes(), &o, &mut out);
    (String::from_utf8(out).unwrap(), p)
}

fn reject(body: &str) -> ErrorKind {
    let (out, p) = parse(body);
    assert_eq!(out, "", "{body:?} should be rejected");
    assert_eq!(p.rejected, 1, "{body:?}");
    p.errors[0].kind.clone()
}

#[test]
fn a_plain_line_keeps_its_text_and_timestamp() {
    let (out, p) = parse("cpu,host=a value=1 1000");
    assert_eq!(out, "cpu,host=a value=1 1000\n");
    assert_eq!((p.points, p.min_ts, p.max_ts), (1, Some(1000), Some(1000)));
}

#[test]
fn a_line_without_timestamp_gets_the_arrival_time_truncated_to_precision() {
    let (out, _) = parse("cpu value=1");
    assert_eq!(out, format!("cpu value=1 {NOW}\n"));
    let (out, _) = parse_with("cpu value=1", opts(Precision::Seconds));
    assert_eq!(out, "cpu value=1 1700000000000000000\n");
}

#[test]
fn precision_converts_timestamps_to_nanoseconds() {
    for (p, want) in [
        (Precision::Nanos, 5i64),
        (Precision::Micros, 5_000),
        (Precision::Millis, 5_000_000),
        (Precision::Seconds, 5_000_000_000),
        (Precision::Minutes, 300_000_000_000),
        (Precision::Hours, 18_000_000_000_000),
    ] {
        let (out, _) = parse_with("m v=1 5", opts(p));
        assert_eq!(out, format!("m v=1 {want}\n"), "{p:?}");
    }
    assert_eq!(Precision::from_param("u"), Some(Precision::Micros));
    assert_eq!(Precision::from_param("weeks"), None);
}

#[test]
fn a_timestamp_that_overflows_after_precision_conversion_is_rejected() {
    let (_, p) = parse_with("m v=1 9223372036854775", opts(Precision::Seconds));
    assert_eq!(p.errors[0].kind, ErrorKind::TimeOutOfRange);
}

#[test]
fn negative_timestamps_are_accepted() {
    let (out, _) = parse("m v=1 -1000");
    assert_eq!(out, "m v=1 -1000\n");
}

#[test]
fn escapes_in_measurement_tags_and_field_keys_are_kept_verbatim() {
    let line = r"my\ cpu\,x,ta\ g=v\=a\,b fi\ eld\=k=1i 7";
    let (out, p) = parse(line);
    assert_eq!(p.rejected, 0);
    assert_eq!(out, format!("{line}\n"));
}

#[test]
fn quoted_string_fields_may_hold_spaces_commas_escaped_quotes_and_newlines() {
    let body = "log msg=\"a b, \\\"c\\\" d\nsecond\" 3\nlog msg=\"x\" 4";
    let (out, p) = parse(body);
    assert_eq!(p.points, 2, "{:?}", p.errors);
    assert_eq!(out, format!("{body}\n"));
    assert_eq!(lines(out.as_bytes()).count(), 2);
}

#[test]
fn every_field_type_is_accepted() {
    let (_, p) = parse("m f=1.5,g=-2e-3,h=.5,i=-42i,u=42u,b=t,c=FALSE,s=\"str\" 1");
    assert_eq!(p.rejected, 0, "{:?}", p.errors);
}

#[test]
fn unsigned_is_refused_when_the_upstream_speaks_1x() {
    let mut o = opts(Precision::Nanos);
    o.allow_unsigned = false;
    let (_, p) = parse_with("m u=42u", o);
    assert_eq!(p.errors[0].kind, ErrorKind::InvalidNumber);
}

#[test]
fn integer_range_is_checked_at_both_ends() {
    assert_eq!(parse("m v=9223372036854775807i").1.points, 1);
    assert_eq!(parse("m v=-9223372036854775808i").1.points, 1);
    assert_eq!(
        reject("m v=9223372036854775808i"),
        ErrorKind::IntegerOutOfRange
    );
    assert_eq!(
        reject("m v=18446744073709551616u"),
        ErrorKind::IntegerOutOfRange
    );
}

#[test]
fn malformed_values_are_named() {
    assert_eq!(reject("cpu"), ErrorKind::MissingFields);
    assert_eq!(reject(",t=1 v=1"), ErrorKind::MissingMeasurement);
    assert_eq!(reject("cpu, v=1"), ErrorKind::MissingTagKey);
    assert_eq!(reject("cpu,host v=1"), ErrorKind::MissingTagValue);
    assert_eq!(reject("cpu,a=b=c v=1"), ErrorKind::InvalidTagFormat);
    assert_eq!(reject("cpu,a=1,a=2 v=1"), ErrorKind::DuplicateTags);
    assert_eq!(reject("cpu,b=1,a=2,b=3 v=1"), ErrorKind::DuplicateTags);
    assert_eq!(reject("cpu,time=1 v=1"), ErrorKind::InvalidTagKeyTime);
    assert_eq!(reject("cpu =1"), ErrorKind::MissingFieldKey);
    assert_eq!(reject("cpu v="), ErrorKind::MissingFieldValue);
    assert_eq!(reject("cpu v=1,w"), ErrorKind::InvalidFieldFormat);
    assert_eq!(reject("cpu v=1.1.1"), ErrorKind::InvalidNumber);
    assert_eq!(reject("cpu v=1e400"), ErrorKind::InvalidFloat);
    assert_eq!(reject("cpu v=tru"), ErrorKind::InvalidBoolean);
    assert_eq!(reject("cpu v=\"open"), ErrorKind::UnbalancedQuotes);
    assert_eq!(reject("cpu v=1 12a"), ErrorKind::BadTimestamp);
    assert_eq!(reject("cpu v=1 12 extra"), ErrorKind::InvalidPoint);
}

#[test]
fn a_bad_line_reports_its_line_and_column_and_spares_the_good_ones() {
    let body = "m v=1 1\n\n# comment\nm v=oops 2\nm v=3 3\n";
    let (out, p) = parse(body);
    assert_eq!(out, "m v=1 1\nm v=3 3\n");
    assert_eq!((p.points, p.rejected), (2, 1));
    let e = &p.errors[0];
    assert_eq!((e.line, e.column, e.text.as_str()), (4, 5, "m v=oops 2"));
    assert_eq!(
        e.to_string(),
        "unable to parse 'm v=oops 2': invalid boolean (line 4, column 5)"
    );
}

#[test]
fn line_numbers_count_newlines_inside_strings() {
    let (_, p) = parse("m s=\"a\nb\" 1\nm v=x 2");
    assert_eq!(p.errors[0].line, 3);
}

#[test]
fn blank_lines_whitespace_and_comments_are_skipped() {
    let (out, p) = parse("\n   \n\t# hi\n  m v=1 1\n");
    assert_eq!((out.as_str(), p.points, p.rejected), ("m v=1 1\n", 1, 0));
}

#[test]
fn a_huge_bad_line_is_quoted_cut_short() {
    let body = format!("m v={}", "x".repeat(10_000));
    let (_, p) = parse(&body);
    assert!(p.errors[0].text.len() <= MAX_QUOTED_LINE_BYTES + 3);
    assert!(p.errors[0].text.ends_with('…'));
}

#[test]
fn only_the_first_errors_are_kept_but_all_are_counted() {
    let body = "bad\n".repeat(MAX_REPORTED_ERRORS + 5);
    let (_, p) = parse(&body);
    assert_eq!(p.rejected, MAX_REPORTED_ERRORS + 5);
    assert_eq!(p.errors.len(), MAX_REPORTED_ERRORS);
}

#[test]
fn fmt_i64_handles_the_extremes() {
    let mut b = itoa_buf();
    assert_eq!(fmt_i64(i64::MIN, &mut b), i64::MIN.to_string().as_bytes());
    let mut b = itoa_buf();
    assert_eq!(fmt_i64(0, &mut b), b"0");
}

/// Every accepted line, re-split from the stored payload, is one stored line.
fn stored_lines_resplit_as_accepted(body: &str) -> (usize, usize) {
    let (out, p) = parse(body);
    (p.points, lines(out.as_bytes()).count())
}

#[test]
fn a_line_that_would_split_differently_once_stored_is_rejected_not_acknowledged() {
    // Leading whitespace, then a newline inside a quoted field key: the body's
    // split (which saw the whitespace) keeps it one line; stored without the
    // whitespace it would be two unparseable ones.
    let body = " m=x f=1,\"k\n\"=2 5\nok v=1 1\n";
    let (points, stored) = stored_lines_resplit_as_accepted(body);
    assert_eq!(points, stored, "{body:?}");
    let (_, p) = parse(body);
    assert_eq!(p.points, 1, "the good line is kept");
    assert_eq!(p.errors[0].kind, ErrorKind::AmbiguousLine);
    assert_eq!(p.errors[0].line, 1);
}

#[test]
fn leading_whitespace_alone_still_parses() {
    for body in ["  m v=1 1\n", "\tm,t=a s=\"x y\" 2\n", " m s=\"a\nb\" 3\n"] {
        let (points, stored) = stored_lines_resplit_as_accepted(body);
        assert_eq!((points, stored), (1, 1), "{body:?}");
    }
}

#[test]
fn a_line_whose_added_timestamp_would_change_how_it_parses_is_rejected_not_acknowledged() {
    // Found by the ingest_roundtrip fuzz target: escapes, NULs and a quote,
    // no timestamp. Accepted as is, its stored form (timestamp appended) no
    // longer parsed: it would have been acknowledged and then refused upstream.
    let body = b"cRase\xb7tag1\\\"\\\\ \0\0=\"\0\0av a=1i,t492e=5";
    let opts = opts(Precision::Nanos);
    let mut out = Vec::new();
    let p = parse_into(body, &opts, &mut out);
    for line in lines(&out) {
        let mut again = Vec::new();
        let mut one = line.to_vec();
        one.push(b'\n');
        let q = parse_into(&one, &opts, &mut again);
        assert_eq!(
            (q.points, q.rejected),
            (1, 0),
            "{:?}",
            String::from_utf8_lossy(line)
        );
        assert_eq!(again, one);
    }
    assert_eq!(p.points + p.rejected, 1);
}

#[test]
fn the_eight_bytes_a_step_line_end_agrees_with_the_careful_scan_on_random_bodies() {
    // Bodies of the bytes that matter (newline, quote, backslash, NUL, the
    // separators) at every offset and alignment, so a special byte lands in
    // every lane of a step and in the tail.
    const ALPHABET: &[u8] = b"ab =,\n\"\\\0 x1";
    let mut seed: u64 = 0x5eed_1234_abcd_0001;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..20_000 {
        let len = (next() % 40) as usize;
        // Mostly plain bytes, so long plain runs happen.
        let body: Vec<u8> = (0..len)
            .map(|_| {
                let r = next();
                if r % 4 == 0 {
                    ALPHABET[(r >> 8) as usize % ALPHABET.len()]
                } else {
                    b'a' + (r >> 8) as u8 % 26
                }
            })
            .collect();
        for start in 0..=body.len() {
            let careful = scan_line_escaped(&body, start);
            match plain_line_end(&body, start) {
                Some(end) => {
                    assert_eq!(end, careful, "{body:?} from {start}");
                    assert!(
                        !body[start..end]
                            .iter()
                            .any(|b| matches!(b, b'"' | b'\\' | 0 | b'\n')),
                        "a plain line holds no special byte: {body:?} from {start}"
                    );
                }
                None => assert!(
                    body[start..careful]
                        .iter()
                        .any(|b| matches!(b, b'"' | b'\\' | 0)),
                    "refused only for a special byte: {body:?} from {start}"
                ),
            }
            assert_eq!(scan_line(&body, start), careful);
        }
    }
}
