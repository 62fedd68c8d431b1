//! Why a line was rejected, in InfluxDB's own words, and where (line and
//! column): the parser's typed error at the ingest boundary.

use std::fmt;

/// Why a line was rejected. The `Display` texts are InfluxDB's own reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    MissingMeasurement,
    MissingFields,
    MissingTagKey,
    MissingTagValue,
    InvalidTagFormat,
    DuplicateTags,
    InvalidTagKeyTime,
    MissingFieldKey,
    MissingFieldValue,
    InvalidFieldFormat,
    InvalidValue,
    InvalidNumber,
    InvalidFloat,
    IntegerOutOfRange,
    InvalidBoolean,
    UnbalancedQuotes,
    BadTimestamp,
    TimeOutOfRange,
    InvalidPoint,
    KeyTooLong,
    /// Ours, not InfluxDB's: a line whose stored form would split differently.
    AmbiguousLine,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::MissingMeasurement => "missing measurement",
            ErrorKind::MissingFields => "missing fields",
            ErrorKind::MissingTagKey => "missing tag key",
            ErrorKind::MissingTagValue => "missing tag value",
            ErrorKind::InvalidTagFormat => "invalid tag format",
            ErrorKind::DuplicateTags => "duplicate tags",
            ErrorKind::InvalidTagKeyTime => "invalid tag key \"time\"",
            ErrorKind::MissingFieldKey => "missing field key",
            ErrorKind::MissingFieldValue => "missing field value",
            ErrorKind::InvalidFieldFormat => "invalid field format",
            ErrorKind::InvalidValue => "invalid field value",
            ErrorKind::InvalidNumber => "invalid number",
            ErrorKind::InvalidFloat => "invalid float",
            ErrorKind::IntegerOutOfRange => "integer out of range",
            ErrorKind::InvalidBoolean => "invalid boolean",
            ErrorKind::UnbalancedQuotes => "unbalanced quotes",
            ErrorKind::BadTimestamp => "bad timestamp",
            ErrorKind::TimeOutOfRange => "time outside range",
            ErrorKind::InvalidPoint => "point is invalid",
            ErrorKind::KeyTooLong => "max key length exceeded",
            ErrorKind::AmbiguousLine => {
                "quotes and newlines after leading whitespace make this line split differently once stored"
            }
        })
    }
}

/// One rejected line: where, why, and the line itself (cut short).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based physical line number in the request body.
    pub line: usize,
    /// 1-based byte column within that line where the scanner stopped.
    pub column: usize,
    pub kind: ErrorKind,
    pub text: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unable to parse '{}': {} (line {}, column {})",
            self.text, self.kind, self.line, self.column
        )
    }
}

impl std::error::Error for ParseError {}
