//! Config: defaults, errors that name the key, secrets.

use super::*;

#[test]
fn an_empty_file_gives_the_embedded_defaults() {
    let c = Config::from_yaml("").unwrap();
    assert_eq!(c.service.http_listen, "127.0.0.1:8186");
    assert_eq!(c.buffer.path, PathBuf::from("./hissrv-data/buffer.db"));
    assert_eq!(c.influxdb.database, "hissrv");
    assert_eq!(c.buffer.synchronous, Synchronous::Full);
}

#[test]
fn an_unknown_key_is_an_error_that_names_it() {
    let e = Config::from_yaml("service:\n  colour: red\n").unwrap_err();
    assert!(e.to_string().contains("colour"), "{e}");
}

#[test]
fn a_bad_value_names_the_key_and_the_reason() {
    let e = Config::from_yaml(
        "performance:\n  adaptive_batching:\n    min_batch_size: 10\n    max_batch_size: 5\n",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("performance.adaptive_batching.max_batch_size"),
        "{e}"
    );
    let e = Config::from_yaml("influxdb:\n  api: v3\n").unwrap_err();
    assert!(e.to_string().contains("v3"), "{e}");
}

#[test]
fn zstd_and_snappy_are_refused_with_the_reason() {
    for a in ["zstd", "snappy"] {
        let e = Config::from_yaml(&format!(
            "performance:\n  compression:\n    algorithm: {a}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("not supported") && e.contains("delta"), "{e}");
    }
    let c = Config::from_yaml("performance:\n  compression:\n    enabled: false\n").unwrap();
    assert_eq!(
        crate::wal::codec::format_for(&c.performance.compression),
        crate::wal::codec::FORMAT_NONE
    );
}

#[test]
fn the_shipped_example_config_is_valid() {
    let text = include_str!("../../config/hissrv.yaml");
    Config::from_yaml(text).unwrap();
    let buckets = Config::from_yaml(include_str!("../../config/hissrv-buckets.yaml")).unwrap();
    assert_eq!(buckets.influxdb.sharding.buckets.len(), 3);
}

#[test]
fn bucket_rules_that_cannot_work_are_refused_with_the_key() {
    for (yaml, key) in [
        (
            "influxdb: {sharding: {buckets: [{name: a}]}}",
            "buckets[0].points",
        ),
        (
            "influxdb: {sharding: {buckets: [{name: a, points: [x]}, {name: a, points: [y]}]}}",
            "buckets[1].name",
        ),
        (
            "influxdb: {sharding: {buckets: [{name: a, points: [x], retention: 30m}]}}",
            "buckets[0].retention",
        ),
        (
            "influxdb: {sharding: {strategy: range, buckets: [{name: a, ids: ['9-1']}]}}",
            "buckets[0].ids",
        ),
        (
            "influxdb: {sharding: {strategy: hash, buckets: [{name: a, points: [x]}]}}",
            "buckets[0].points",
        ),
        (
            "influxdb: {sharding: {default_bucket: b, buckets: [{name: a, points: [x]}]}}",
            "default_bucket",
        ),
        (
            "influxdb: {api: v2, manage_retention: true}",
            "influxdb.org",
        ),
    ] {
        let err = Config::from_yaml(yaml).unwrap_err().to_string();
        assert!(err.contains(key), "{yaml}: {err}");
    }
}

#[test]
fn secrets_come_from_the_environment_and_are_redacted_when_printed() {
    let mut c = Config::default();
    c.apply_env(|k| (k == "HISSRV_INFLUXDB_TOKEN").then(|| "s3cret".to_string()));
    assert_eq!(c.influxdb.token, "s3cret");
    c.service.auth.tokens = vec!["t0k".into()];
    c.service.auth.users = vec![User {
        username: "meter".into(),
        password: "pw-s3cret".into(),
    }];
    let printed = c.to_redacted_yaml();
    for secret in ["s3cret", "t0k", "pw-s3cret"] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
    // Redacted, not dropped: each secret's place says so, the user stays.
    assert_eq!(printed.matches("<redacted>").count(), 3, "{printed}");
    assert!(printed.contains("username: meter"), "{printed}");
}

#[test]
fn udp_with_auth_is_refused_unless_the_operator_accepts_unauthenticated_datagrams() {
    let auth = "  auth:\n    tokens: [t]\n";
    let e = Config::from_yaml(&format!("service:\n{auth}"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("service.udp_listen") && e.contains("udp_allow_unauthenticated"),
        "{e}"
    );
    let off = Config::from_yaml(&format!("service:\n  udp_listen: \"\"\n{auth}")).unwrap();
    assert!(off.service.udp_listen.is_empty());
    let opted = Config::from_yaml(&format!(
        "service:\n  udp_allow_unauthenticated: true\n{auth}"
    ))
    .unwrap();
    assert!(!opted.service.udp_listen.is_empty());
}

#[test]
fn the_destination_cap_and_the_dead_letter_share_are_checked() {
    let e = Config::from_yaml("service:\n  max_destinations: 0\n").unwrap_err();
    assert!(e.to_string().starts_with("service.max_destinations"), "{e}");
    let e = Config::from_yaml("buffer:\n  max_dead_letters_percent: 90\n").unwrap_err();
    assert!(
        e.to_string().starts_with("buffer.max_dead_letters_percent"),
        "{e}"
    );
    let c = Config::from_yaml("").unwrap();
    assert_eq!(
        (
            c.service.max_destinations,
            c.buffer.max_dead_letters_percent
        ),
        (256, 10)
    );
}

#[test]
fn a_live_share_over_50_percent_is_refused_so_live_data_cannot_starve_the_backlog() {
    let e = Config::from_yaml("performance:\n  backlog_replay:\n    live_share_percent: 51\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("performance.backlog_replay.live_share_percent"),
        "{e}"
    );
    assert!(
        Config::from_yaml("performance:\n  backlog_replay:\n    live_share_percent: 50\n").is_ok()
    );
}

#[test]
fn empty_credentials_are_refused_so_no_request_gets_in_without_any() {
    let e = Config::from_yaml("service:\n  udp_listen: \"\"\n  auth:\n    tokens: [\"\"]\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("service.auth.tokens"), "{e}");
    let e = Config::from_yaml(
        "service:\n  udp_listen: \"\"\n  auth:\n    users: [{username: meter, password: \"\"}]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("service.auth.users") && e.contains("meter"),
        "{e}"
    );
}

#[test]
fn tls_files_are_checked_when_the_config_is_loaded_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("hissrv-tls-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("c.pem");
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let key = dir.join("k.pem");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let tls = |lines: String| Config::from_yaml(&format!("influxdb:\n  tls:\n{lines}"));
    let e = tls(format!(
        "    client_cert: {:?}\n",
        cert.display().to_string()
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("influxdb.tls.client_key") && e.contains("both"),
        "{e}"
    );
    let e = tls("    ca_file: /nonexistent/ca.pem\n".into())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("influxdb.tls.ca_file") && e.contains("/nonexistent/ca.pem"),
        "{e}"
    );
    let e = tls(format!("    ca_file: {:?}\n", key.display().to_string()))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("influxdb.tls.ca_file") && e.contains("no PEM certificate"),
        "{e}"
    );
    let e = tls(format!(
        "    ca_file: {:?}\n    insecure_skip_verify: true\n",
        cert.display().to_string()
    ))
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("influxdb.tls.insecure_skip_verify"), "{e}");
    let ok = tls(format!(
        "    ca_file: {:?}\n    client_cert: {:?}\n    client_key: {:?}\n",
        cert.display().to_string(),
        cert.display().to_string(),
        key.display().to_string()
    ));
    assert!(ok.is_ok(), "{:?}", ok.err());
    let encrypted = dir.join("enc.pem");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = tls(format!(
        "    client_cert: {:?}\n    client_key: {:?}\n",
        cert.display().to_string(),
        encrypted.display().to_string()
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("influxdb.tls.client_key") && e.contains("encrypted"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_setting_is_read_by_its_dotted_key_sections_and_unknown_keys_are_errors() {
    let mut c = Config::default();
    c.buffer.path = "/mnt/sda1/hissrv/buffer.db".into();
    c.influxdb.token = "secret".into();
    assert_eq!(
        c.setting("buffer.path").unwrap(),
        "/mnt/sda1/hissrv/buffer.db"
    );
    assert_eq!(
        c.setting("buffer.max_size_mb").unwrap(),
        c.buffer.max_size_mb.to_string()
    );
    assert_eq!(c.setting("influxdb.token").unwrap(), "<redacted>");
    assert!(c.setting("buffer").unwrap_err().contains("section"));
    assert!(c.setting("buffer.nope").unwrap_err().contains("no setting"));
}

/// Second review: the S3 secret and token are printed redacted too.
#[test]
fn the_s3_secret_is_redacted_when_printed() {
    let c = Config::from_yaml(
        "lifecycle: {archive: {s3: {access_key_id: AKIA, secret_access_key: s3-s3cr3t, session_token: s3-t0k}}}",
    )
    .unwrap();
    let printed = c.to_redacted_yaml();
    for secret in ["s3-s3cr3t", "s3-t0k"] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
    assert!(printed.contains("AKIA"), "the key id is not a secret");
    assert_ne!(
        c.setting("lifecycle.archive.s3.secret_access_key").unwrap(),
        "s3-s3cr3t"
    );
}
