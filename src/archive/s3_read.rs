//! Reading an S3 archive back (`hissrv archive ls`, `hissrv restore`): the
//! keys under the prefix (ListObjectsV2, page by page) and one object's
//! bytes, streamed. Signed as the writes are (`sigv4.rs`); the answers'
//! XML is read for the few elements needed, nothing more.

use super::super::ArchiveError;
use super::S3Target;

/// SHA-256 of an empty payload: every GET's.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Pages of a listing at most (1,000 keys each): a bound on a store that
/// would never say the listing is done.
const LIST_PAGES_MAX: usize = 100_000;

/// A query value as SigV4 and S3 want it: every byte but `A-Za-z0-9-._~`.
fn encode_query(v: &str) -> String {
    super::super::sigv4::uri_encode(v, false)
}

/// The text of each `<tag>…</tag>` in `xml`, entities decoded.
fn elements(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = rest.get(start + open.len()..).unwrap_or("");
        let Some(end) = after.find(&close) else {
            break;
        };
        let text = after.get(..end).unwrap_or("");
        out.push(
            text.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = after.get(end + close.len()..).unwrap_or("");
    }
    out
}

/// One ListObjectsV2 page: its keys, whether more follow, and the token to
/// them. Any text is taken (a store's answer is input: fuzzed,
/// `fuzz/fuzz_targets/archive_read.rs`).
pub fn parse_listing(xml: &str) -> (Vec<String>, bool, Option<String>) {
    let keys = elements(xml, "Key");
    let truncated = elements(xml, "IsTruncated")
        .first()
        .is_some_and(|t| t == "true");
    let token = elements(xml, "NextContinuationToken").into_iter().next();
    (keys, truncated, token)
}

impl S3Target {
    /// A signed GET of `path` under the bucket's root (`""`: the bucket)
    /// with `query` (name, value); the answer when 2xx.
    pub(super) fn get_signed(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<ureq::http::Response<ureq::Body>, ArchiveError> {
        let path = self.path_of(path);
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (encode_query(k), encode_query(v)))
            .collect();
        pairs.sort();
        let canonical: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let canonical = canonical.join("&");
        let url = if canonical.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{canonical}", self.base)
        };
        let mut req = self.agent()?.get(url);
        for (name, value) in self.signed("GET", &path, &canonical, EMPTY_SHA256) {
            req = req.header(name, value);
        }
        let answer = req.call().map_err(|e| self.unreachable(e))?;
        if answer.status().is_success() {
            return Ok(answer);
        }
        let status = answer.status().as_u16();
        match self.judge(answer) {
            Err(e) => Err(e),
            Ok(()) => Err(ArchiveError::Store {
                target: self.label.clone(),
                status,
                code: String::new(),
                message: String::new(),
            }),
        }
    }

    /// Every key under the target's prefix, without the prefix.
    pub fn list(&self) -> Result<Vec<String>, ArchiveError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..LIST_PAGES_MAX {
            let mut query = vec![("list-type", "2".to_string())];
            if !self.prefix.is_empty() {
                query.push(("prefix", self.prefix.clone()));
            }
            if let Some(t) = &token {
                query.push(("continuation-token", t.clone()));
            }
            let mut answer = self.get_signed("", &query)?;
            let xml = answer
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_string()
                .map_err(|e| self.unreachable(e))?;
            let (page, truncated, next) = parse_listing(&xml);
            for k in page {
                keys.push(k.strip_prefix(&self.prefix).unwrap_or(&k).to_string());
            }
            token = next;
            if !truncated {
                return Ok(keys);
            }
            // A listing that says there is more and gives no way to it
            // would end short, silently (third review).
            if token.is_none() {
                return Err(self.listing_error("truncated without a NextContinuationToken"));
            }
        }
        Err(self.listing_error("more pages than LIST_PAGES_MAX"))
    }

    fn listing_error(&self, why: &str) -> ArchiveError {
        ArchiveError::Io {
            what: format!("list {}", self.label),
            source: std::io::Error::other(why.to_string()),
        }
    }

    /// Object `name` (under the prefix), streamed.
    pub fn open(&self, name: &str) -> Result<Box<dyn std::io::Read + Send>, ArchiveError> {
        let key = format!("{}{name}", self.prefix);
        let answer = self.get_signed(&key, &[])?;
        Ok(Box::new(answer.into_body().into_reader()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_s_keys_and_token_are_read_with_entities_decoded() {
        let xml = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>p/a&amp;b.lp.gz</Key></Contents><Contents><Key>p/c</Key></Contents><NextContinuationToken>t/1+</NextContinuationToken></ListBucketResult>";
        assert_eq!(elements(xml, "Key"), ["p/a&b.lp.gz", "p/c"]);
        assert_eq!(elements(xml, "NextContinuationToken"), ["t/1+"]);
        assert_eq!(elements("<Key>unclosed", "Key"), Vec::<String>::new());
        assert_eq!(encode_query("t/1+ x"), "t%2F1%2B%20x");
    }
}
