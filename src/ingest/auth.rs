//! Ingest authentication: only producers holding a configured token or
//! user/password may write. With nothing configured, ingest is open (the
//! default listens on loopback only).
//!
//! Accepted credentials, as InfluxDB's clients send them:
//! `Authorization: Token T` (2.x), `Authorization: Basic …` (1.x), `u=`/`p=` query
//! parameters (1.x), and a token given as the 1.x password.

use crate::config::Auth;
use crate::ingest::http::Request;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Equal in constant time (`subtle`, already in the tree through rustls): the
/// time taken does not depend on where `a` and `b` first differ, so a remote
/// producer cannot guess a token byte by byte from answer times. (Lengths
/// are compared first; a token's length is not its secret.)
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// Any of `candidates` equal to `given`, every candidate compared in full.
fn any_equal<'a>(candidates: impl Iterator<Item = &'a String>, given: &str) -> bool {
    candidates.fold(false, |found, c| {
        found | constant_time_eq(c.as_bytes(), given.as_bytes())
    })
}

impl Auth {
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty() && self.users.is_empty()
    }

    fn user_ok(&self, user: &str, pass: &str) -> bool {
        let user_match = self.users.iter().fold(false, |found, u| {
            found
                | (constant_time_eq(u.username.as_bytes(), user.as_bytes())
                    & constant_time_eq(u.password.as_bytes(), pass.as_bytes()))
        });
        user_match | any_equal(self.tokens.iter(), pass)
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
                return any_equal(self.tokens.iter(), rest);
            }
            if scheme.eq_ignore_ascii_case("basic") {
                let decoded = BASE64
                    .decode(rest)
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).into_owned());
                return decoded
                    .as_deref()
                    .and_then(|d| d.split_once(':'))
                    .is_some_and(|(u, p)| self.user_ok(u, p));
            }
            return false;
        }
        match (req.param("u"), req.param("p")) {
            (Some(u), Some(p)) => self.user_ok(&u, &p),
            (None, Some(p)) => any_equal(self.tokens.iter(), &p),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::upstream::basic_header;
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
    fn basic_credentials_match_rfc_7617() {
        assert_eq!(
            basic_header("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn constant_time_equality_is_equality() {
        for (a, b) in [("", ""), ("a", "a"), ("tok", "tok")] {
            assert!(constant_time_eq(a.as_bytes(), b.as_bytes()));
        }
        for (a, b) in [
            ("", "a"),
            ("a", ""),
            ("tok", "toK"),
            ("tok", "tok\0"),
            ("tok\0", "tok"),
        ] {
            assert!(!constant_time_eq(a.as_bytes(), b.as_bytes()), "{a:?} {b:?}");
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
