//! AWS Signature Version 4 for S3 requests, in the `Authorization` header
//! (sans-IO: text in, header out), with RustCrypto's `hmac` and `sha2`.
//!
//! Why not a signing crate: `rusty-s3`, the sans-IO one, signs presigned
//! URLs only (query authentication), and S3-compatible stores that enforce
//! authentication do not all take those (moto's checks the `Authorization`
//! header only). Header signing also signs the payload's SHA-256, which we
//! compute for the manifest anyway: the store refuses an object whose bytes
//! changed on the way.
//!
//! Checked against AWS's own worked example (`tests` below) and against a
//! store that enforces it (`tests/cold_archive.rs`).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// What a request is signed with.
pub struct Keys<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    /// Temporary credentials' token (`x-amz-security-token`), if any.
    pub session_token: Option<&'a str>,
    pub region: &'a str,
}

/// `x-amz-date`'s form of a time: `20130524T000000Z`.
pub fn amz_date(unix_s: i64) -> String {
    let (y, m, d) = crate::clock::civil(unix_s.div_euclid(86_400));
    let s = unix_s.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        s / 3_600,
        s % 3_600 / 60,
        s % 60
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    let mut m = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// An S3 path percent-encoded as SigV4 wants it: every byte but
/// `A-Za-z0-9-._~` and `/`.
pub fn encode_path(path: &str) -> String {
    uri_encode(path, true)
}

/// SigV4's URI encoding: every byte but `A-Za-z0-9-._~` (and `/` when
/// `keep_slash`: a path) as `%XX`.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The headers to send for a request: `x-amz-date`,
/// `x-amz-content-sha256`, the token if any, and `authorization`.
/// `path` is already encoded (`encode_path`); `query` canonical (sorted,
/// encoded; empty for none); `headers` the other signed headers, names in
/// lower case (`host` among them).
pub fn sign(
    keys: &Keys,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    payload_sha256: &str,
    unix_s: i64,
) -> Vec<(String, String)> {
    let date_time = amz_date(unix_s);
    let date = date_time.get(..8).unwrap_or_default().to_string();
    let mut signed: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    signed.push(("x-amz-content-sha256".into(), payload_sha256.into()));
    signed.push(("x-amz-date".into(), date_time.clone()));
    if let Some(t) = keys.session_token {
        signed.push(("x-amz-security-token".into(), t.to_string()));
    }
    signed.sort();
    let names: Vec<&str> = signed.iter().map(|(k, _)| k.as_str()).collect();
    let names = names.join(";");
    let mut canonical = format!("{method}\n{path}\n{query}\n");
    for (k, v) in &signed {
        canonical.push_str(&format!("{k}:{v}\n"));
    }
    canonical.push_str(&format!("\n{names}\n{payload_sha256}"));
    let scope = format!("{date}/{}/s3/aws4_request", keys.region);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}",
        super::object::hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", keys.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [keys.region, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = super::object::hex(&hmac(&key, to_sign.as_bytes()));
    let mut out: Vec<(String, String)> = signed
        .into_iter()
        .filter(|(k, _)| k.starts_with("x-amz-"))
        .collect();
    out.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope},SignedHeaders={names},Signature={signature}",
            keys.access_key_id
        ),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's worked example "GET Object" (the S3 API reference, "Examples:
    /// Signature Calculations in AWS Signature Version 4").
    #[test]
    fn the_signature_of_aws_s_worked_example_is_aws_s() {
        let keys = Keys {
            access_key_id: "AKIAIOSFODNN7EXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            session_token: None,
            region: "us-east-1",
        };
        let empty = super::super::object::hex(&Sha256::digest(b""));
        let t = 1_369_353_600; // 2013-05-24T00:00:00Z
        assert_eq!(amz_date(t), "20130524T000000Z");
        let h = sign(
            &keys,
            "GET",
            "/test.txt",
            "",
            &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("range", "bytes=0-9"),
            ],
            &empty,
            t,
        );
        let auth = &h.iter().find(|(k, _)| k == "authorization").unwrap().1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        // A token is signed and sent.
        let with = Keys {
            session_token: Some("tok"),
            ..keys
        };
        let h = sign(&with, "GET", "/", "", &[("host", "h")], &empty, t);
        assert!(
            h.iter()
                .any(|(k, v)| k == "x-amz-security-token" && v == "tok")
        );
        assert!(
            h.iter()
                .any(|(k, v)| k == "authorization" && v.contains("x-amz-security-token"))
        );
    }

    #[test]
    fn paths_are_encoded_byte_by_byte_keeping_slashes() {
        assert_eq!(
            encode_path("/b/a%2F..%2Fb/x y.lp.gz"),
            "/b/a%252F..%252Fb/x%20y.lp.gz"
        );
        assert_eq!(encode_path("/@default/ü"), "/%40default/%C3%BC");
    }
}
