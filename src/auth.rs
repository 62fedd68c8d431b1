//! Ingest authentication: only producers holding a configured token or
//! user/password may write. With nothing configured, ingest is open (the
//! default listens on loopback only).
//!
//! Accepted credentials, as InfluxDB's clients send them:
//! `Authorization: Token T` (2.x), `Authorization: Basic …` (1.x), `u=`/`p=` query
//! parameters (1.x), and a token given as the 1.x password.

use crate::config::Auth;
use crate::http::Request;

/// Base64 (RFC 4648, standard alphabet), for Basic credentials.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in input.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// The `Authorization: Basic` value for a user and password.
pub fn basic_header(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64_encode(format!("{user}:{pass}").as_bytes())
    )
}

impl Auth {
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty() && self.users.is_empty()
    }

    fn user_ok(&self, user: &str, pass: &str) -> bool {
        self.users
            .iter()
            .any(|u| u.username == user && u.password == pass)
            || self.tokens.iter().any(|t| t == pass)
    }

    /// Does this request carry credentials we know?
    pub fn allows(&self, req: &Request) -> bool {
        if self.is_open() {
            return true;
        }
        if let Some(h) = req.header("authorization") {
            let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
            let rest = rest.trim();
            if scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer") {
                return self.tokens.iter().any(|t| t == rest);
            }
            if scheme.eq_ignore_ascii_case("basic") {
                let decoded = base64_decode(rest).map(|b| String::from_utf8_lossy(&b).into_owned());
                return decoded
                    .as_deref()
                    .and_then(|d| d.split_once(':'))
                    .is_some_and(|(u, p)| self.user_ok(u, p));
            }
            return false;
        }
        match (req.param("u"), req.param("p")) {
            (Some(u), Some(p)) => self.user_ok(&u, &p),
            (None, Some(p)) => self.tokens.contains(&p),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::User;

    fn req(query: &str, auth: Option<&str>) -> Request {
        Request {
            method: "POST".into(),
            path: "/write".into(),
            query: query.into(),
            headers: auth
                .map(|a| vec![("authorization".to_string(), a.to_string())])
                .unwrap_or_default(),
            body: Vec::new(),
            keep_alive: true,
        }
    }

    #[test]
    fn base64_round_trips_and_matches_rfc_7617() {
        assert_eq!(
            basic_header("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        for s in ["", "a", "ab", "abc", "abcd"] {
            assert_eq!(
                base64_decode(&base64_encode(s.as_bytes())).unwrap(),
                s.as_bytes()
            );
        }
    }

    #[test]
    fn only_configured_credentials_may_write() {
        let auth = Auth {
            tokens: vec!["tok".into()],
            users: vec![User {
                username: "meter".into(),
                password: "pw".into(),
            }],
        };
        assert!(auth.allows(&req("", Some("Token tok"))));
        assert!(auth.allows(&req("u=meter&p=pw", None)));
        assert!(auth.allows(&req("", Some(&basic_header("meter", "pw")))));
        assert!(!auth.allows(&req("", Some("Token nope"))));
        assert!(!auth.allows(&req("u=meter&p=bad", None)));
        assert!(!auth.allows(&req("", None)));
        assert!(Auth::default().allows(&req("", None)));
    }
}
