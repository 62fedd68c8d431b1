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
        health.upstream_failures >= 2 && health.last_error.contains("CertificateRequired")
    });
    let why = h.health().last_error;
    assert!(why.contains("influxdb.tls.client_cert"), "{why}");
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
