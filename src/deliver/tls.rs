//! TLS towards the upstream (`influxdb.tls`): which CAs to trust (a private
//! PKI's bundle instead of the built-in Mozilla roots), the client
//! certificate to present (mutual TLS), and, for labs only, no verification.
//!
//! The files are read and parsed each time the upstream client is made (at
//! start and after a reload), so a renewed certificate is a reload away. A
//! file that cannot be used does not stop the agent: writes keep being
//! buffered, and every delivery attempt fails with the reason, counted and
//! shown in `/health` (`last_error`), until the files are fixed.

use crate::config::Tls;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

/// The client's TLS settings, or why the files cannot be used.
pub fn tls_config(t: &Tls) -> Result<TlsConfig, String> {
    let mut b = TlsConfig::builder();
    if !t.ca_file.is_empty() {
        let (certs, _) = read_pem("influxdb.tls.ca_file", &t.ca_file)?;
        if certs.is_empty() {
            return Err(format!(
                "influxdb.tls.ca_file {:?}: no certificate",
                t.ca_file
            ));
        }
        b = b.root_certs(RootCerts::new_with_certs(&certs));
    }
    if !t.client_cert.is_empty() {
        let (chain, _) = read_pem("influxdb.tls.client_cert", &t.client_cert)?;
        let (_, keys) = read_pem("influxdb.tls.client_key", &t.client_key)?;
        let Some(key) = keys.into_iter().next() else {
            return Err(format!(
                "influxdb.tls.client_key {:?}: no private key",
                t.client_key
            ));
        };
        if chain.is_empty() {
            return Err(format!(
                "influxdb.tls.client_cert {:?}: no certificate",
                t.client_cert
            ));
        }
        b = b.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    if t.insecure_skip_verify {
        log::error!(
            "influxdb.tls.insecure_skip_verify is on: the upstream's certificate is NOT verified; \
             anyone on the path can read and change what is delivered (lab use only)"
        );
        b = b.disable_verification(true);
    }
    Ok(b.build())
}

/// A failed request's error, with what a TLS failure means for the operator
/// (the TLS library's own words kept: they name the certificate problem).
pub fn explain(error: String) -> String {
    if error.contains("invalid peer certificate") {
        format!(
            "TLS: the upstream's certificate was refused ({error}); UnknownIssuer: not signed by a CA \
             in influxdb.tls.ca_file (or the built-in roots), NotValidForName: issued for another host \
             name, Expired/NotValidYet: check the dates and this gateway's clock"
        )
    } else if error.contains("CertificateRequired") || error.contains("BadCertificate") {
        format!(
            "TLS: the upstream refused our client certificate ({error}); check \
             influxdb.tls.client_cert and client_key"
        )
    } else {
        error
    }
}

/// The certificates and private keys in a PEM file.
type Pem = (Vec<Certificate<'static>>, Vec<PrivateKey<'static>>);

fn read_pem(key: &str, path: &str) -> Result<Pem, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{key} {path:?}: {e}"))?;
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
        let e = tls_config(&t).expect_err("refused");
        assert!(
            e.contains("influxdb.tls.ca_file") && e.contains("junk.pem"),
            "{e}"
        );
        let t = Tls {
            ca_file: dir.join("missing.pem").display().to_string(),
            ..Tls::default()
        };
        let e = tls_config(&t).expect_err("refused");
        assert!(e.contains("missing.pem"), "{e}");
        assert!(
            tls_config(&Tls::default()).is_ok(),
            "no files: the built-in roots"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
