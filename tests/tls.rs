//! TLS to the upstream against real servers and a PKI the test makes with
//! openssl: influxd 1.6.7 with `https-enabled` behind a private CA, and a TLS
//! front demanding a client certificate (mutual TLS). A wrong CA or a missing
//! client certificate is a clear, counted error, nothing is lost, and a
//! reload with the right files delivers everything.

mod common;
use common::tls::{MtlsProxy, Pki};
use common::*;

const POINTS: &str = "m,src=t v=1i 1\nm,src=t v=2i 2\nm,src=t v=3i 3\n";

fn tls_section(lines: &[(&str, String)]) -> String {
    let mut s = String::from("  database: plant\n  tls:\n");
    for (k, v) in lines {
        s.push_str(&format!("    {k}: {v:?}\n"));
    }
    s
}

#[test]
fn an_https_upstream_behind_a_private_ca_gets_every_point_and_a_wrong_ca_is_a_clear_counted_error()
{
    let pki = Pki::new();
    let influx = Influx::start_https(&pki);
    influx.create_db("plant");
    let wrong = tls_section(&[("ca_file", pki.path_text("other-ca.pem"))]);
    let mut h = Hissrv::start(&influx.url(), &wrong);
    assert_eq!(h.post("/write?db=plant", POINTS).0, 204);
    wait_for(
        "the verification failure reported",
        DELIVERY_TIMEOUT,
        || {
            let health = h.health();
            health.upstream_failures >= 2 && health.last_error.contains("UnknownIssuer")
        },
    );
    let metrics = h.get("/metrics");
    assert!(
        !metrics.contains("hissrv_upstream_write_failures_total{class=\"network\"} 0"),
        "counted as a failed write: {metrics}"
    );
    assert_eq!(h.buffered_points(), 3, "kept while the CA is wrong");
    assert_eq!(influx.count("plant", "m"), 0);

    let right = tls_section(&[("ca_file", pki.path_text("ca.pem"))]);
    h.rewrite_config(&influx.url(), Sections::influxdb(&right));
    wait_for(
        "delivery once the right CA is loaded",
        DELIVERY_TIMEOUT,
        || influx.count("plant", "m") == 3,
    );
    wait_for("the buffer emptied", DELIVERY_TIMEOUT, || {
        h.buffered_points() == 0
    });
}

#[test]
fn mutual_tls_presents_the_client_certificate_and_without_one_nothing_is_lost() {
    let pki = Pki::new();
    let influx = Influx::start();
    influx.create_db("plant");
    let front = MtlsProxy::start(&pki, influx.port);
    let no_cert = tls_section(&[("ca_file", pki.path_text("ca.pem"))]);
    let mut h = Hissrv::start(&front.url(), &no_cert);
    assert_eq!(h.post("/write?db=plant", POINTS).0, 204);
    wait_for("the refused handshake reported", DELIVERY_TIMEOUT, || {
        let health = h.health();
        // TLS 1.3 refuses a client certificate after the handshake: the
        // agent sees an alert or the connection go, and says which key to check.
        health.upstream_failures >= 2 && health.last_error.contains("influxdb.tls.client_cert")
    });
    assert_eq!(h.buffered_points(), 3, "kept without a client certificate");
    assert_eq!(influx.count("plant", "m"), 0);

    let with_cert = tls_section(&[
        ("ca_file", pki.path_text("ca.pem")),
        ("client_cert", pki.path_text("client.pem")),
        ("client_key", pki.path_text("client.key")),
    ]);
    h.rewrite_config(&front.url(), Sections::influxdb(&with_cert));
    wait_for(
        "delivery with the client certificate",
        DELIVERY_TIMEOUT,
        || influx.count("plant", "m") == 3,
    );
    wait_for("the buffer emptied", DELIVERY_TIMEOUT, || {
        h.buffered_points() == 0
    });
}

#[test]
fn insecure_skip_verify_delivers_to_an_unknown_ca_and_says_so_loudly() {
    let pki = Pki::new();
    let influx = Influx::start_https(&pki);
    influx.create_db("plant");
    let h = Hissrv::start(
        &influx.url(),
        "  database: plant\n  tls:\n    insecure_skip_verify: true\n",
    );
    assert_eq!(h.post("/write?db=plant", POINTS).0, 204);
    wait_for("delivery without verification", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == 3
    });
    assert!(
        h.log()
            .contains("[ERROR] influxdb.tls.insecure_skip_verify is on: the upstream's certificate is NOT verified"),
        "{}",
        h.log()
    );
}

#[test]
fn without_a_ca_file_a_private_ca_is_not_trusted() {
    // The built-in roots do not know the test CA: the default is safe.
    let pki = Pki::new();
    let influx = Influx::start_https(&pki);
    influx.create_db("plant");
    let h = Hissrv::start(&influx.url(), "  database: plant\n");
    assert_eq!(h.post("/write?db=plant", POINTS).0, 204);
    wait_for(
        "the verification failure reported",
        DELIVERY_TIMEOUT,
        || h.health().last_error.contains("UnknownIssuer"),
    );
    assert_eq!(h.buffered_points(), 3);
}

fn check_config(dir: &TempDir, yaml: &str) -> (bool, String) {
    let path = dir.path().join("check.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = hissrv_command()
        .args(["check-config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_client_key_that_does_not_fit_its_certificate_is_refused_before_any_connection() {
    // Found by review: ureq panics on a mismatched key at the first
    // connection, which aborts the release agent on every restart.
    let pki = Pki::new();
    let dir = TempDir::new("tls-check");
    let yaml = |key: &str| {
        format!(
            "influxdb:\n  url: https://127.0.0.1:1\n  tls:\n    ca_file: {:?}\n    client_cert: {:?}\n    client_key: {key:?}\n",
            pki.path_text("ca.pem"),
            pki.path_text("client.pem"),
        )
    };
    let (ok, err) = check_config(&dir, &yaml(&pki.path_text("other-ca.key")));
    assert!(!ok);
    assert!(
        err.contains("influxdb.tls.client_key") && err.contains("belongs"),
        "{err}"
    );
    // Several keys in the file: the one that fits is used.
    let both = dir.path().join("both.key");
    let mut keys = std::fs::read(pki.file("other-ca.key")).unwrap();
    keys.extend(std::fs::read(pki.file("client.key")).unwrap());
    std::fs::write(&both, keys).unwrap();
    let (ok, err) = check_config(&dir, &yaml(&both.display().to_string()));
    assert!(ok, "{err}");
    // A FIFO would block a reader for ever: refused, at once.
    let fifo = dir.path().join("fifo.pem");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let (ok, err) = check_config(
        &dir,
        &format!(
            "influxdb:\n  tls:\n    ca_file: {:?}\n",
            fifo.display().to_string()
        ),
    );
    assert!(!ok);
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn a_reload_to_a_key_that_does_not_fit_is_refused_and_sighup_reads_renewed_files() {
    let pki = Pki::new();
    let influx = Influx::start_https(&pki);
    influx.create_db("plant");
    let dir = TempDir::new("tls-renew");
    // The CA file at a fixed path holds the wrong CA to begin with.
    let ca = dir.path().join("upstream-ca.pem");
    std::fs::copy(pki.file("other-ca.pem"), &ca).unwrap();
    let section = tls_section(&[("ca_file", ca.display().to_string())]);
    let mut h = Hissrv::start(&influx.url(), &section);
    assert_eq!(h.post("/write?db=plant", POINTS).0, 204);
    wait_for("the wrong CA reported", DELIVERY_TIMEOUT, || {
        h.health().last_error.contains("UnknownIssuer")
    });
    // A reload to a client key that does not fit: refused whole.
    let bad = tls_section(&[
        ("ca_file", ca.display().to_string()),
        ("client_cert", pki.path_text("client.pem")),
        ("client_key", pki.path_text("other-ca.key")),
    ]);
    h.rewrite_config(&influx.url(), Sections::influxdb(&bad));
    wait_for("the reload refused", DELIVERY_TIMEOUT, || {
        h.health().config_reloads_refused == 1
    });
    assert!(h.health().config_error.contains("influxdb.tls.client_key"));
    // Back to the first text, then the CA renewed in place and SIGHUP: the
    // same config text, new file contents.
    h.rewrite_config(&influx.url(), Sections::influxdb(&section));
    std::fs::copy(pki.file("ca.pem"), &ca).unwrap();
    h.signal("HUP");
    wait_for("delivery with the renewed CA", DELIVERY_TIMEOUT, || {
        influx.count("plant", "m") == 3
    });
}
