//! TLS to the cold archive's S3 store, as to the upstream
//! (`lifecycle.archive.s3.tls`), against real parts: moto (authentication
//! enforced) behind a TLS front that demands a client certificate, with a
//! PKI the test makes with openssl. A wrong CA and a missing client
//! certificate are clear, shown errors that keep every point; reloads with
//! the right files upload the backlog, and `archive ls` reads the bucket
//! over the same TLS.

mod common;
use common::moto::Moto;
use common::tls::{MtlsProxy, Pki};
use common::*;

const NS: i64 = 1_000_000_000;

/// The lifecycle section: the store at `endpoint`, TLS keys `tls`.
fn lifecycle(moto: &Moto, endpoint: &str, tls: &[(&str, String)]) -> String {
    let mut extra = String::new();
    if !tls.is_empty() {
        extra.push_str("      tls:\n");
        for (k, v) in tls {
            extra.push_str(&format!("        {k}: {v:?}\n"));
        }
    }
    moto.lifecycle(endpoint, &moto.secret, &extra)
}

fn sections(other: &str) -> Sections<'_> {
    Sections {
        influxdb: "  database: plant\n",
        other,
        ..Sections::default()
    }
}

fn archive_error(agent: &Hissrv) -> String {
    agent
        .health()
        .archive
        .map(|a| a.last_error)
        .unwrap_or_default()
}

/// Lines of every object of the bucket, read over plain HTTP behind the
/// front.
fn archived_lines(moto: &Moto) -> usize {
    moto.archived_lines().len()
}

#[test]
fn an_https_store_behind_a_private_ca_and_mutual_tls_gets_the_backlog_once_a_reload_brings_the_right_files()
 {
    let pki = Pki::new();
    let moto = Moto::start("plant-archive");
    let front = MtlsProxy::start(&pki, moto.port);
    let influx = Influx::start();
    influx.create_db("plant");
    let section = |tls: &[(&str, String)]| lifecycle(&moto, &front.url(), tls);
    // 1. The store's certificate is not of the CA given: refused, shown.
    let wrong_ca = section(&[("ca_file", pki.path_text("other-ca.pem"))]);
    let mut agent = Hissrv::start_with(&influx.url(), sections(&wrong_ca));
    let start = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 2 * 3_600)
        * NS;
    let body: String = (0..200)
        .map(|i| format!("telemetry,id=m{} v={i} {}\n", i % 3, start + i * 10 * NS))
        .collect();
    assert_eq!(agent.post("/write?db=plant", &body).0, 204);
    wait_for("the unknown CA reported", DELIVERY_TIMEOUT, || {
        let e = archive_error(&agent);
        e.contains("UnknownIssuer") && e.contains("lifecycle.archive.s3.tls.ca_file")
    });
    wait_for("delivery goes on", DELIVERY_TIMEOUT, || {
        influx.count("plant", "telemetry") == 200
    });
    assert_eq!(agent.buffered_points(), 200, "kept while the CA is wrong");
    assert_eq!(archived_lines(&moto), 0);

    // 2. The right CA, no client certificate: the front refuses the
    //    handshake; still kept, and the message names the key to fix.
    let failures = agent.metric("hissrv_archive_failures_total");
    let no_cert = section(&[("ca_file", pki.path_text("ca.pem"))]);
    agent.rewrite_config(&influx.url(), sections(&no_cert));
    wait_for("the refused client reported", DELIVERY_TIMEOUT, || {
        let e = archive_error(&agent);
        agent.metric("hissrv_archive_failures_total") > failures
            && !e.contains("UnknownIssuer")
            && e.contains("lifecycle.archive.s3.tls.client_cert")
    });
    assert_eq!(agent.buffered_points(), 200, "kept without a certificate");
    assert!(
        agent.health().restart_needed.is_empty(),
        "the S3 TLS files are live"
    );

    // 3. With the client certificate: the backlog goes up, whole.
    let right = section(&[
        ("ca_file", pki.path_text("ca.pem")),
        ("client_cert", pki.path_text("client.pem")),
        ("client_key", pki.path_text("client.key")),
    ]);
    agent.rewrite_config(&influx.url(), sections(&right));
    wait_for(
        "the backlog archived over mutual TLS",
        DELIVERY_TIMEOUT,
        || agent.buffered_points() == 0,
    );
    assert!(archive_error(&agent).is_empty());
    assert_eq!(archived_lines(&moto), 200);

    // The command line reads the bucket over the same TLS settings.
    let cfg = agent.dir.path().join("hissrv.yaml");
    let ls = hissrv_command()
        .args([
            "archive",
            "ls",
            &format!("s3://{}/", moto.bucket),
            "--config",
        ])
        .arg(&cfg)
        .output()
        .expect("hissrv archive ls");
    let said =
        String::from_utf8_lossy(&ls.stdout).into_owned() + &String::from_utf8_lossy(&ls.stderr);
    assert!(ls.status.success() && said.contains("points, "), "{said}");
}

#[test]
fn s3_tls_files_that_cannot_be_used_are_refused_by_check_config_naming_the_key() {
    let pki = Pki::new();
    let dir = TempDir::new("s3-tls-check");
    let check = |tls: &str| {
        let path = dir.path().join("check.yaml");
        std::fs::write(
            &path,
            format!(
                "lifecycle:\n  archive:\n    s3:\n      endpoint: https://127.0.0.1:1\n      tls:\n{tls}"
            ),
        )
        .unwrap();
        let out = hissrv_command()
            .arg("check-config")
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A key that is not the certificate's (ureq would panic at the first
    // connection): refused before any.
    let (ok, err) = check(&format!(
        "        client_cert: {:?}\n        client_key: {:?}\n",
        pki.path_text("client.pem"),
        pki.path_text("other-ca.key")
    ));
    assert!(!ok);
    assert!(
        err.contains("lifecycle.archive.s3.tls.client_key") && err.contains("belongs"),
        "{err}"
    );
    // A certificate without its key.
    let (ok, err) = check(&format!(
        "        client_cert: {:?}\n",
        pki.path_text("client.pem")
    ));
    assert!(!ok);
    assert!(err.contains("lifecycle.archive.s3.tls.client_key"), "{err}");
    // Not a CA bundle.
    let (ok, err) = check(&format!(
        "        ca_file: {:?}\n",
        pki.path_text("client.key")
    ));
    assert!(!ok);
    assert!(err.contains("lifecycle.archive.s3.tls.ca_file"), "{err}");
    // The right files pass.
    let (ok, err) = check(&format!(
        "        ca_file: {:?}\n        client_cert: {:?}\n        client_key: {:?}\n",
        pki.path_text("ca.pem"),
        pki.path_text("client.pem"),
        pki.path_text("client.key")
    ));
    assert!(ok, "{err}");
}
