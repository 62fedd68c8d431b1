//! TLS towards a server of ours: the upstream (`influxdb.tls`) and the cold
//! archive's S3 store (`lifecycle.archive.s3.tls`), the same keys for both:
//! which CAs to trust (a private PKI's bundle instead of the built-in
//! Mozilla roots), the client certificate to present (mutual TLS), and, for
//! labs only, no verification. A layer of its own under `deliver` and
//! `archive`, so both clients are made by the same code.
//!
//! The files are read and parsed each time a client is made (at start and
//! after a reload), so a renewed certificate is a reload away. A file that
//! cannot be used does not stop the agent: writes keep being buffered, and
//! every delivery or upload fails with the reason, counted and shown in
//! `/health` (`last_error`, `archive`), until the files are fixed.

use crate::config::Tls;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use std::io::Read;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

/// Largest TLS file read: a site's CA bundle is tens of KiB (Mozilla's
/// whole set is about 220 KiB); anything larger is not what the key means.
pub const MAX_TLS_FILE_BYTES: u64 = 1024 * 1024;

/// The client's TLS settings, or why the files cannot be used. Also the
/// check `check-config`, start and reload run, so a file that would fail (a
/// key that does not belong to its certificate, an encrypted key) is refused
/// before any connection: ureq panics on a key mismatch at the first one.
/// `key`: where `t` sits in the config (`influxdb.tls`), for messages.
pub fn tls_config(key: &str, t: &Tls) -> Result<TlsConfig, String> {
    let mut b = TlsConfig::builder();
    if !t.ca_file.is_empty() {
        let (certs, _) = read_pem(&format!("{key}.ca_file"), &t.ca_file)?;
        if certs.is_empty() {
            return Err(format!("{key}.ca_file {:?}: no certificate", t.ca_file));
        }
        // ureq keeps only the certificates rustls can parse, silently: a
        // bundle cut short (a partial copy, a full disk) would leave a
        // client that trusts nothing, accepted here (review).
        let mut store = rustls::RootCertStore::empty();
        let (_, ignored) = store.add_parsable_certificates(
            certs.iter().map(|c| CertificateDer::from(c.der().to_vec())),
        );
        if ignored > 0 {
            return Err(format!(
                "{key}.ca_file {:?}: {ignored} of its {} certificates cannot be parsed (cut short or damaged?)",
                t.ca_file,
                certs.len()
            ));
        }
        b = b.root_certs(RootCerts::new_with_certs(&certs));
    }
    if !t.client_cert.is_empty() {
        let (chain, _) = read_pem(&format!("{key}.client_cert"), &t.client_cert)?;
        let key_pem = read_tls_file(&format!("{key}.client_key"), &t.client_key)?;
        if chain.is_empty() {
            return Err(format!(
                "{key}.client_cert {:?}: no certificate",
                t.client_cert
            ));
        }
        let key = matching_key(&chain, &key_pem).ok_or_else(|| {
            format!(
                "{key}.client_key {:?}: no private key there belongs to the certificate in \
                 client_cert {:?} (encrypted keys are not supported)",
                t.client_key, t.client_cert
            )
        })?;
        b = b.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    if t.insecure_skip_verify {
        b = b.disable_verification(true);
    }
    Ok(b.build())
}

/// Both clients' TLS files parsed as the clients will parse them: what
/// `check-config`, start and reload refuse.
pub fn check_files(c: &crate::config::Config) -> Result<(), String> {
    tls_config("influxdb.tls", &c.influxdb.tls)?;
    tls_config("lifecycle.archive.s3.tls", &c.lifecycle.archive.s3.tls)?;
    Ok(())
}

/// The TLS settings a client of `server` ("the upstream") is made with, and
/// why `key`'s files cannot be used, if so: the client is then made with the
/// defaults and every request fails with that reason (the data waits).
/// Insecure settings are logged as an error each time a client is made.
pub fn for_client(key: &str, t: &Tls, server: &str) -> (TlsConfig, Option<String>) {
    match tls_config(key, t) {
        Ok(c) => {
            if t.insecure_skip_verify {
                log::error!(
                    "{key}.insecure_skip_verify is on: {server}'s certificate is NOT verified; \
                     anyone on the path can read and change what is sent (lab use only)"
                );
            }
            (c, None)
        }
        Err(e) => {
            log::error!("{server}: TLS: {e}; nothing is sent there until it is fixed");
            (TlsConfig::default(), Some(format!("TLS setup: {e}")))
        }
    }
}

/// A failed request's error, with what a TLS failure means for the operator
/// (the TLS library's own words kept: they name the certificate problem).
/// `tls`: the request went over TLS; `server`: whom it went to ("the
/// upstream"); `key`: its TLS settings' place in the config.
pub fn explain(error: String, tls: bool, server: &str, key: &str) -> String {
    if error.contains("invalid peer certificate") {
        format!(
            "TLS: {server}'s certificate was refused ({error}); UnknownIssuer: not signed by a CA \
             in {key}.ca_file (or the built-in roots), NotValidForName: issued for another host \
             name, Expired/NotValidYet: check the dates and this gateway's clock"
        )
    } else if error.contains("CertificateRequired") || error.contains("BadCertificate") {
        format!(
            "TLS: {server} refused our client certificate ({error}); check \
             {key}.client_cert and client_key"
        )
    } else if error.contains("received fatal alert") {
        format!(
            "TLS: {server} ended the handshake ({error}); with a client certificate, \
             check {key}.client_cert, client_key and their dates"
        )
    } else if tls && (error.contains("Broken pipe") || error.contains("reset")) {
        // TLS 1.3 servers refuse a client certificate after the handshake:
        // the client then sees only the connection go.
        format!(
            "{error} (over TLS this is often the server refusing the client certificate: \
             check {key}.client_cert and client_key)"
        )
    } else {
        error
    }
}

/// The certificates and private keys in a PEM file.
type Pem = (Vec<Certificate<'static>>, Vec<PrivateKey<'static>>);

/// The private key in `pem` whose public key is the one `chain` certifies,
/// as ureq takes it.
fn matching_key(chain: &[Certificate<'static>], pem: &[u8]) -> Option<PrivateKey<'static>> {
    use base64::Engine;
    use rustls::pki_types::pem::{PemObject, SectionKind};
    let provider = rustls::crypto::ring::default_provider();
    let chain: Vec<CertificateDer<'static>> = chain
        .iter()
        .map(|c| CertificateDer::from(c.der().to_vec()))
        .collect();
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        let Ok((kind, der)) = item else { continue };
        let (key, label) = match kind {
            SectionKind::PrivateKey => (
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.clone())),
                "PRIVATE KEY",
            ),
            SectionKind::RsaPrivateKey => (
                PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der.clone())),
                "RSA PRIVATE KEY",
            ),
            SectionKind::EcPrivateKey => (
                PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der.clone())),
                "EC PRIVATE KEY",
            ),
            _ => continue,
        };
        if rustls::sign::CertifiedKey::from_der(chain.clone(), key, &provider).is_ok() {
            let text = base64::engine::general_purpose::STANDARD.encode(&der);
            let pem = format!("-----BEGIN {label}-----\n{text}\n-----END {label}-----\n");
            return PrivateKey::from_pem(pem.as_bytes()).ok();
        }
    }
    None
}

/// A TLS file's bytes: a regular file (never a FIFO or a device, which
/// could block or never end) of at most `MAX_TLS_FILE_BYTES`.
pub fn read_tls_file(key: &str, path: &str) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{key} {path:?}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{key} {path:?}: not a regular file"));
    }
    if meta.len() > MAX_TLS_FILE_BYTES {
        return Err(format!(
            "{key} {path:?}: {} bytes, more than a PEM file holds ({MAX_TLS_FILE_BYTES} at most)",
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_TLS_FILE_BYTES).read_to_end(&mut bytes))
        .map_err(|e| format!("{key} {path:?}: {e}"))?;
    Ok(bytes)
}

fn read_pem(key: &str, path: &str) -> Result<Pem, String> {
    let bytes = read_tls_file(key, path)?;
    let mut out: Pem = (Vec::new(), Vec::new());
    for item in ureq::tls::parse_pem(&bytes) {
        match item.map_err(|e| format!("{key} {path:?}: {e}"))? {
            PemItem::Certificate(c) => out.0.push(c),
            PemItem::PrivateKey(k) => out.1.push(k),
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_cannot_be_used_are_an_error_naming_the_key_and_the_file() {
        let dir = std::env::temp_dir().join(format!("hissrv-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let t = Tls {
            ca_file: junk.display().to_string(),
            ..Tls::default()
        };
        let e = tls_config("influxdb.tls", &t).expect_err("refused");
        assert!(
            e.contains("influxdb.tls.ca_file") && e.contains("junk.pem"),
            "{e}"
        );
        let t = Tls {
            ca_file: dir.join("missing.pem").display().to_string(),
            ..Tls::default()
        };
        let e = tls_config("influxdb.tls", &t).expect_err("refused");
        assert!(e.contains("missing.pem"), "{e}");
        assert!(
            tls_config("influxdb.tls", &Tls::default()).is_ok(),
            "no files: the built-in roots"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_ca_file_whose_certificate_is_not_one_is_refused_not_an_empty_trust_store() {
        // A CA bundle cut in half (a partial copy, a full disk): still PEM,
        // base64 that decodes, but no certificate. ureq's
        // `add_parsable_certificates` drops it silently, so the client
        // would trust nothing and every upload fail with UnknownIssuer; the
        // check that start, check-config and reload run must refuse it, so
        // a reload to it keeps the running, working client.
        let dir = std::env::temp_dir().join(format!("hissrv-tls-cut-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cut = dir.join("cut-ca.pem");
        std::fs::write(
            &cut,
            "-----BEGIN CERTIFICATE-----\n\
             MIIBbzCCARWgAwIBAgIUGzTx4rtUUzfMRdGaQIir+PDVT9swCgYIKoZIzj0EAwIw\n\
             DTELMAkGA1UEAwwCY2EwHhcNMjYxMTI4MDM0NjU4WhcNMjYxMTMwMDM0NjU4WjAN\n\
             MQswCQYDVQQDDAJjYTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABIFPGT04NJCL\n\
             tJjSaCdlKI6zZjdbB/SGIVzc/Fzg2T6J8FgNAG0Ca1CoQMyMmVL3S3aCyd8mUhgC\n\
             -----END CERTIFICATE-----\n",
        )
        .unwrap();
        let t = Tls {
            ca_file: cut.display().to_string(),
            ..Tls::default()
        };
        let got = tls_config("lifecycle.archive.s3.tls", &t);
        let _ = std::fs::remove_dir_all(&dir);
        let e = got.expect_err("a cut CA bundle must be refused");
        assert!(
            e.contains("lifecycle.archive.s3.tls.ca_file") && e.contains("cut-ca.pem"),
            "{e}"
        );
    }
}
