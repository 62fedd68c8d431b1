//! `manage_retention: true`: make sure every bucket exists upstream with the
//! retention the config gives it. Runs on the forwarder thread (which owns
//! the upstream connection) at start, after each reload, and when the server
//! says a database is missing.
//!
//! - 1.x: `CREATE DATABASE` (idempotent), then `SHOW RETENTION POLICIES`; the
//!   bucket's policy is created (`CREATE RETENTION POLICY … DURATION …
//!   REPLICATION 1`) or, when its duration differs, altered (`ALTER RETENTION
//!   POLICY … DURATION …`). The database's default policy is left alone.
//! - 2.x: the org's id from `/api/v2/orgs`, the bucket from
//!   `/api/v2/buckets?name=`; created (`POST`) or its retention rule patched
//!   (`PATCH /api/v2/buckets/{id}`).
//!
//! The warm tier's destinations (`lifecycle.rules`' `<rp>_<window>` or
//! `warm_destination`, retention `warm_days`) are provisioned the same way
//! once a delivery to one finds it missing (they follow the raw points'
//! databases, which producers name).
//!
//! Missing rights (401/403, "requires admin privilege") are an error the
//! operator must see, never a crash: the forwarder logs it, records it in
//! `/health` and the metrics, keeps delivering to what exists and tries again
//! later.

use crate::config::{ApiVersion, Influxdb};
use crate::deliver::upstream::Upstream;
use crate::route::dest::Destination;
use miniserde::json::{self, Number, Value};
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum ProvisionError {
    /// The credentials may not create databases, policies or buckets.
    Forbidden(String),
    /// No answer (network, 5xx): try again soon.
    Unreachable(String),
    /// The server refused for another reason.
    Failed(String),
}

impl fmt::Display for ProvisionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProvisionError::Forbidden(m) => write!(f, "not allowed to manage retention: {m}"),
            ProvisionError::Unreachable(m) => write!(f, "upstream unreachable: {m}"),
            ProvisionError::Failed(m) => write!(f, "{m}"),
        }
    }
}

/// One destination to provision, with its retention (`None`: for ever).
#[derive(Debug, Clone, PartialEq)]
pub struct Want {
    pub dest: Destination,
    pub retention_s: Option<u64>,
}

/// Creates or adjusts every bucket, then each of `more` (the lifecycle
/// tiers' destinations); returns what changed, for the log.
///
/// Wants naming one upstream policy are merged first: on 1.x a destination
/// without a policy is the database's default one, so (`db`, "") and
/// (`db`, `autogen`) are one policy (found in review: altered back and
/// forth each pass). A bucket's own retention wins (the operator named it
/// there; a different one asked is logged); otherwise the longest wins (a
/// point is never dropped sooner than a rule asks). One want refused
/// (rights, a bad name) does not stop the others: the first error is
/// returned after all were tried; no answer ends the pass at once.
pub fn ensure(up: &Upstream, db: &Influxdb, more: &[Want]) -> Result<Vec<String>, ProvisionError> {
    let buckets: Vec<Want> = db
        .sharding
        .buckets
        .iter()
        .map(|b| Want {
            dest: crate::route::dest::Destination::of_bucket(b, db),
            retention_s: b.retention_s(),
        })
        .collect();
    let mut defaults = std::collections::HashMap::new();
    let mut wants: Vec<Want> = Vec::new();
    let mut first_error = None;
    for (i, w) in buckets.iter().chain(more).enumerate() {
        let mut dest = w.dest.clone();
        if db.api == ApiVersion::V1 && dest.rp.is_empty() {
            dest.rp = match defaults.get(&dest.db) {
                Some(rp) => String::clone(rp),
                // One database unreadable stops none of the others (found
                // in review): its wants wait for the next pass.
                None => match default_rp(up, &dest.db) {
                    Ok(rp) => {
                        up.note_default_policy(&dest.db, &rp);
                        defaults.insert(dest.db.clone(), rp.clone());
                        rp
                    }
                    // No answer: the pass ends (each try would cost a
                    // timeout on a silent link; third review).
                    Err(e @ ProvisionError::Unreachable(_)) => return Err(e),
                    Err(e) => {
                        first_error.get_or_insert(e);
                        continue;
                    }
                },
            };
        }
        match wants.iter().position(|h| h.dest == dest) {
            Some(at) if at < buckets.len() => {
                if i >= buckets.len() && wants[at].retention_s != w.retention_s {
                    log::warn!(
                        "manage_retention: {}.{} keeps its bucket's retention; a lifecycle rule's asked for another",
                        dest.db,
                        dest.rp
                    );
                }
            }
            Some(at) => {
                let h = &mut wants[at];
                h.retention_s = h.retention_s.zip(w.retention_s).map(|(a, b)| a.max(b));
            }
            None => wants.push(Want {
                dest,
                retention_s: w.retention_s,
            }),
        }
    }
    let mut changes = Vec::new();
    let org = match db.api {
        ApiVersion::V1 => None,
        ApiVersion::V2 => Some(org_id(up, &db.org)?),
    };
    for w in &wants {
        let done = match &org {
            None => ensure_v1(up, w, &mut changes),
            Some(org) => ensure_v2(up, org, w, &mut changes),
        };
        match done {
            Err(e @ ProvisionError::Unreachable(_)) => {
                first_error = Some(e);
                break;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
            Ok(()) => {}
        }
    }
    match first_error {
        None => Ok(changes),
        Some(e) => {
            for c in &changes {
                log::info!("upstream: {c}");
            }
            Err(e)
        }
    }
}

/// Database `db`'s retention policies (`SHOW RETENTION POLICIES`), the
/// database created first if it is missing.
fn policies_on(up: &Upstream, db: &str) -> Result<Value, ProvisionError> {
    query(up, "POST", &format!("CREATE DATABASE {}", ident(db)))?;
    query(
        up,
        "GET",
        &format!("SHOW RETENTION POLICIES ON {}", ident(db)),
    )
}

/// The name of database `db`'s default retention policy.
fn default_rp(up: &Upstream, db: &str) -> Result<String, ProvisionError> {
    Ok(default_of(&policies_on(up, db)?))
}

/// The default policy among `SHOW RETENTION POLICIES`' rows (`autogen`
/// when none says so).
fn default_of(result: &Value) -> String {
    policy_rows(result)
        .find(|row| matches!(row.get(4), Some(Value::Bool(true))))
        .and_then(|row| row.first().and_then(text).map(str::to_string))
        .unwrap_or_else(|| crate::config::DEFAULT_RP.to_string())
}

/// The rows of `SHOW RETENTION POLICIES` (1.6.7: name, duration,
/// shardGroupDuration, replicaN, default).
fn policy_rows(result: &Value) -> impl Iterator<Item = &Vec<Value>> {
    field(result, "series")
        .and_then(first)
        .and_then(|s| field(s, "values"))
        .and_then(array)
        .into_iter()
        .flatten()
        .filter_map(array)
}

/// An InfluxQL identifier, quoted.
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn influxql_duration(retention_s: Option<u64>) -> String {
    retention_s.map_or("INF".into(), |s| format!("{s}s"))
}

/// Runs one InfluxQL statement; the first result.
fn query(up: &Upstream, method: &str, q: &str) -> Result<Value, ProvisionError> {
    let (status, body) = up
        .call(method, "/query", &[("q", q)], None)
        .map_err(ProvisionError::Unreachable)?;
    let v: Value = json::from_str(&body).unwrap_or(Value::Null);
    let error = field(&v, "error")
        .or_else(|| field(first(field(&v, "results")?)?, "error"))
        .and_then(text)
        .map(str::to_string);
    match (status, error) {
        (401 | 403, e) => Err(ProvisionError::Forbidden(e.unwrap_or(body))),
        (500.., e) => Err(ProvisionError::Unreachable(format!(
            "{status}: {}",
            e.unwrap_or(body)
        ))),
        (_, Some(e)) if e.contains("authoriz") || e.contains("privilege") => {
            Err(ProvisionError::Forbidden(e))
        }
        (_, Some(e)) => Err(ProvisionError::Failed(format!("{q}: {e}"))),
        (200..=299, None) => Ok(field(&v, "results")
            .and_then(first)
            .cloned()
            .unwrap_or(Value::Null)),
        (_, None) => Err(ProvisionError::Failed(format!("{q}: {status} {body}"))),
    }
}

fn ensure_v1(up: &Upstream, w: &Want, changes: &mut Vec<String>) -> Result<(), ProvisionError> {
    let (db, rp) = (&w.dest.db, &w.dest.rp);
    let result = policies_on(up, db)?;
    // No policy named: the points go to the database's default one,
    // whatever its name (`ensure` resolves it first; kept for any caller).
    let rp = match rp.as_str() {
        "" => &default_of(&result),
        named => named,
    };
    let row = policy_rows(&result).find(|row| row.first().and_then(text) == Some(rp));
    let existing = row.and_then(|row| row.get(1).and_then(text).map(go_duration_s));
    let shard_s = row.and_then(|row| row.get(2).and_then(text).and_then(go_duration_s));
    let want = w.retention_s.unwrap_or(0);
    let dur = influxql_duration(w.retention_s);
    let on = format!("{} ON {}", ident(rp), ident(db));
    match existing {
        None => {
            query(
                up,
                "POST",
                &format!("CREATE RETENTION POLICY {on} DURATION {dur} REPLICATION 1"),
            )?;
            changes.push(format!("created retention policy {db}.{rp} ({dur})"));
        }
        Some(have) if have != Some(want) => {
            // influxd refuses a duration under the policy's shard duration
            // (the default policy's is 7 days: found against 1.6.7 with
            // hot_days 2): then the shard duration it would pick itself.
            let shard = match (w.retention_s, shard_s) {
                (Some(r), Some(s)) if r <= s => {
                    format!(" SHARD DURATION {}s", default_shard_duration_s(r))
                }
                _ => String::new(),
            };
            query(
                up,
                "POST",
                &format!("ALTER RETENTION POLICY {on} DURATION {dur}{shard}"),
            )?;
            changes.push(format!("altered retention policy {db}.{rp} to {dur}"));
        }
        Some(_) => {}
    }
    Ok(())
}

/// Calls a 2.x endpoint; the JSON answer of a 2xx.
fn api(
    up: &Upstream,
    method: &str,
    path: &str,
    q: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Value, ProvisionError> {
    let (status, text_body) = up
        .call(method, path, q, body)
        .map_err(ProvisionError::Unreachable)?;
    let v: Value = json::from_str(&text_body).unwrap_or(Value::Null);
    let message = || {
        field(&v, "message")
            .and_then(text)
            .map_or(text_body.clone(), str::to_string)
    };
    match status {
        200..=299 => Ok(v),
        401 | 403 => Err(ProvisionError::Forbidden(message())),
        404 => Ok(Value::Null),
        500.. => Err(ProvisionError::Unreachable(format!(
            "{status}: {}",
            message()
        ))),
        _ => Err(ProvisionError::Failed(format!(
            "{method} {path}: {status} {}",
            message()
        ))),
    }
}

fn org_id(up: &Upstream, org: &str) -> Result<String, ProvisionError> {
    let v = api(up, "GET", "/api/v2/orgs", &[("org", org)], None)?;
    field(&v, "orgs")
        .and_then(first)
        .and_then(|o| field(o, "id"))
        .and_then(text)
        .map(str::to_string)
        .ok_or_else(|| ProvisionError::Failed(format!("organization {org:?} not found")))
}

fn rules_json(retention_s: Option<u64>) -> String {
    match retention_s {
        Some(s) => format!("[{{\"type\":\"expire\",\"everySeconds\":{s}}}]"),
        None => "[]".into(),
    }
}

fn ensure_v2(
    up: &Upstream,
    org: &str,
    w: &Want,
    changes: &mut Vec<String>,
) -> Result<(), ProvisionError> {
    let name = w.dest.bucket();
    let v = api(
        up,
        "GET",
        "/api/v2/buckets",
        &[("orgID", org), ("name", &name)],
        None,
    )?;
    let found = field(&v, "buckets").and_then(first);
    let rules = rules_json(w.retention_s);
    match found {
        None => {
            let body = format!(
                "{{\"orgID\":{},\"name\":{},\"retentionRules\":{rules}}}",
                json::to_string(org),
                json::to_string(&name)
            );
            api(up, "POST", "/api/v2/buckets", &[], Some(&body))?;
            changes.push(format!("created bucket {name} ({rules})"));
        }
        Some(b) => {
            let rule = field(b, "retentionRules").and_then(first);
            let have = (rule.and_then(|r| field(r, "everySeconds")))
                .and_then(number)
                .filter(|&s| s > 0);
            let shard_s = rule
                .and_then(|r| field(r, "shardGroupDurationSeconds"))
                .and_then(number);
            if have != w.retention_s {
                let id = field(b, "id").and_then(text).unwrap_or_default();
                // As on 1.x: a retention at or under the bucket's shard
                // group duration is refused (422) unless that shrinks too
                // (found in review).
                let rules = match (w.retention_s, shard_s) {
                    (Some(r), Some(sg)) if r <= sg => format!(
                        "[{{\"type\":\"expire\",\"everySeconds\":{r},\"shardGroupDurationSeconds\":{}}}]",
                        default_shard_duration_s(r)
                    ),
                    _ => rules,
                };
                let body = format!("{{\"retentionRules\":{rules}}}");
                api(
                    up,
                    "PATCH",
                    &format!("/api/v2/buckets/{id}"),
                    &[],
                    Some(&body),
                )?;
                changes.push(format!("set bucket {name} retention to {rules}"));
            }
        }
    }
    Ok(())
}

fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(o) => o.get(key),
        _ => None,
    }
}

fn array(v: &Value) -> Option<&Vec<Value>> {
    match v {
        Value::Array(a) => Some(a),
        _ => None,
    }
}

fn first(v: &Value) -> Option<&Value> {
    array(v)?.first()
}

fn text(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(Number::U64(n)) => Some(*n),
        Value::Number(Number::I64(n)) => u64::try_from(*n).ok(),
        Value::Number(Number::F64(f)) if *f >= 0.0 => Some(*f as u64),
        _ => None,
    }
}

/// A Go duration as InfluxDB prints it (`168h0m0s`, `0s`) → seconds, or
/// `None` if it does not read as one.
/// The shard group duration influxd gives a policy of `retention_s`
/// (`shardGroupDuration` in its meta data): 1 h under 2 days, 1 day under
/// 6 months, else 7 days.
fn default_shard_duration_s(retention_s: u64) -> u64 {
    const HOUR_S: u64 = 3_600;
    const DAY_S: u64 = 24 * HOUR_S;
    match retention_s {
        r if r >= 180 * DAY_S => 7 * DAY_S,
        r if r >= 2 * DAY_S => DAY_S,
        _ => HOUR_S,
    }
}

fn go_duration_s(s: &str) -> Option<u64> {
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        total += n * match &rest[..u_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[u_end..];
    }
    Some(total.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shortened_policy_gets_the_shard_duration_influxd_would_give_it() {
        const DAY: u64 = 86_400;
        assert_eq!(default_shard_duration_s(3_600), 3_600);
        assert_eq!(default_shard_duration_s(2 * DAY - 1), 3_600);
        assert_eq!(default_shard_duration_s(2 * DAY), DAY);
        assert_eq!(default_shard_duration_s(180 * DAY - 1), DAY);
        assert_eq!(default_shard_duration_s(180 * DAY), 7 * DAY);
    }

    #[test]
    fn go_durations_as_influxdb_prints_them_read_as_seconds() {
        assert_eq!(go_duration_s("168h0m0s"), Some(7 * 86_400));
        assert_eq!(go_duration_s("0s"), Some(0));
        assert_eq!(go_duration_s("1h30m"), Some(5400));
        assert_eq!(go_duration_s("1x"), None);
    }

    #[test]
    fn identifiers_are_quoted_and_escaped() {
        assert_eq!(ident("plant"), "\"plant\"");
        assert_eq!(ident("a\"b"), "\"a\\\"b\"");
        assert_eq!(influxql_duration(Some(604_800)), "604800s");
        assert_eq!(influxql_duration(None), "INF");
        assert_eq!(rules_json(None), "[]");
    }
}
