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

/// The design notes' rule, each field checked. Downsampling is applied;
/// `hot_days` and `cold_storage` are refused, once valid, as not applied yet
/// (never accepted and ignored).
#[test]
fn lifecycle_rules_are_checked_key_by_key_and_hot_days_not_yet_applied() {
    let rule = |body: &str| format!("lifecycle:\n  rules:\n    - measurement: telemetry\n{body}");
    let err = |body: &str| {
        Config::from_yaml(&rule(body))
            .map(|_| ())
            .expect_err(body)
            .to_string()
    };
    let c = Config::from_yaml(&rule("      warm_days: 30\n      downsample: \"5m\"\n"))
        .expect("a downsampling rule is applied");
    assert_eq!(c.lifecycle.rules[0].downsample, "5m");
    assert_eq!(c.lifecycle.checkpoint_interval_s().ok(), Some(30));
    let notes = "      hot_days: 7\n      warm_days: 30\n      downsample: \"5m\"\n";
    let e = err(notes);
    assert!(
        e.starts_with("lifecycle.rules[0].hot_days:") && e.contains("not applied yet"),
        "{e}"
    );
    // Fractional days and durations are times too.
    for hot in ["0.5", "\"36h\"", "\"2w\""] {
        let e = err(&format!("      hot_days: {hot}\n"));
        assert!(e.contains("not applied yet"), "{hot}: {e}");
    }
    for (text, ok) in [
        ("\"1s\"", true),
        ("\"1h\"", true),
        ("\"0\"", false),
        ("\"2h\"", false),
        ("\"x\"", false),
    ] {
        let yaml = format!("lifecycle:\n  checkpoint_interval: {text}\n");
        match Config::from_yaml(&yaml) {
            Ok(_) => assert!(ok, "{text} accepted"),
            Err(e) => {
                assert!(!ok, "{text}: {e}");
                assert!(
                    e.to_string().starts_with("lifecycle.checkpoint_interval"),
                    "{e}"
                );
            }
        }
    }
    for (body, key, why) in [
        (
            "      hot_days: 7\n      cold_storage: \"s3://bucket/archive/\"\n",
            "lifecycle.rules[0].cold_storage",
            "not built yet",
        ),
        (
            "      downsample: \"5x\"\n",
            "lifecycle.rules[0].downsample",
            "unit",
        ),
        (
            "      downsample: \"0\"\n",
            "lifecycle.rules[0].downsample",
            "1s to 366d",
        ),
        (
            "      downsample: \"300000d\"\n",
            "lifecycle.rules[0].downsample",
            "1s to 366d",
        ),
        (
            "      warm_days: \"2h\"\n      downsample: 1d\n",
            "lifecycle.rules[0].warm_days",
            "shorter than one window",
        ),
        (
            "      downsample: 5m\n      max_lateness: 100000d\n",
            "lifecycle.rules[0].max_lateness",
            "at most",
        ),
        (
            "      hot_days: 30\n      warm_days: 7\n      downsample: 5m\n",
            "lifecycle.rules[0].warm_days",
            "shorter than hot_days",
        ),
        (
            "      downsample: 5m\n      aggregates: [mean, median]\n",
            "lifecycle.rules[0].aggregates",
            "\"median\"",
        ),
        (
            "      downsample: 5m\n      aggregates: [max, max]\n",
            "lifecycle.rules[0].aggregates",
            "twice",
        ),
        (
            "      hot_days: -1\n",
            "lifecycle.rules[0].hot_days",
            "above 0",
        ),
        (
            "      hot_days: \"soon\"\n",
            "lifecycle.rules[0].hot_days",
            "duration",
        ),
        (
            "      hot_days: \"30m\"\n",
            "lifecycle.rules[0].hot_days",
            "at least 1h",
        ),
        (
            "      warm_days: 30\n",
            "lifecycle.rules[0].warm_days",
            "without downsample",
        ),
        (
            "      tags: {}\n",
            "lifecycle.rules[0].downsample",
            "does nothing",
        ),
        (
            "      downsample: 5m\n      grace: \"a while\"\n",
            "lifecycle.rules[0].grace",
            "duration",
        ),
    ] {
        let e = err(body);
        assert!(e.starts_with(key) && e.contains(why), "{body}: {e}");
    }
    let e = Config::from_yaml("lifecycle:\n  rules:\n    - hot_days: 7\n")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("lifecycle.rules[0].measurement"), "{e}");
    let e = Config::from_yaml("lifecycle:\n  max_open_windows: 0\n")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("lifecycle.max_open_windows"), "{e}");
    // One window however spelled: the same rule twice (found in review).
    let twice = "lifecycle:\n  rules:\n    - measurement: m\n      downsample: 5m\n    - measurement: m\n      downsample: \"300s \"\n";
    let e = Config::from_yaml(twice)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("lifecycle.rules[1]"), "{e}");
    let shared = "lifecycle:\n  rules:\n    - measurement: m\n      downsample: 5m\n      warm_destination: w\n    - measurement: n\n      downsample: 1h\n      warm_destination: w\n";
    let e = Config::from_yaml(shared)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("lifecycle.rules[1].warm_destination"), "{e}");
    // No rules: the defaults, valid.
    let c = Config::from_yaml("lifecycle:\n  max_open_windows: 5000\n").expect("valid");
    assert_eq!(c.lifecycle.max_open_windows, 5000);
}

#[test]
fn a_rule_s_windowing_defaults_to_one_window_of_grace_and_an_hour_of_lateness() {
    let r = LifecycleRule {
        measurement: "m".into(),
        downsample: "5m".into(),
        ..LifecycleRule::default()
    };
    assert_eq!(r.windowing_s(), Some((300, 300, 3600)));
    let r = LifecycleRule {
        grace: "0".into(),
        max_lateness: "2h".into(),
        ..r
    };
    assert_eq!(r.windowing_s(), Some((300, 0, 7200)));
}

#[test]
fn warm_destinations_are_named_by_their_window_s_largest_unit_and_known_by_name() {
    let rule = |every: &str| LifecycleRule {
        measurement: "m".into(),
        downsample: every.into(),
        ..LifecycleRule::default()
    };
    for (every, name) in [
        ("5m", "autogen_5m"),
        ("300s", "autogen_5m"),
        ("90s", "autogen_90s"),
        ("1d", "autogen_1d"),
        ("7d", "autogen_1w"),
    ] {
        assert_eq!(rule(every).warm_rp("").as_deref(), Some(name), "{every}");
    }
    assert_eq!(rule("1h").warm_rp("raw").as_deref(), Some("raw_1h"));
    assert_eq!(LifecycleRule::default().warm_rp(""), None, "no downsample");
    let l = Lifecycle {
        rules: vec![
            LifecycleRule {
                warm_days: Some(Days::Number(30.0)),
                ..rule("5m")
            },
            LifecycleRule {
                measurement: "n".into(),
                warm_destination: "w".into(),
                ..rule("1h")
            },
        ],
        ..Lifecycle::default()
    };
    assert_eq!(l.warm_retention_s("autogen_5m"), Some(Some(30 * 86_400)));
    assert_eq!(l.warm_retention_s("raw_5m"), Some(Some(30 * 86_400)));
    assert_eq!(l.warm_retention_s("w"), Some(None), "kept for ever");
    for not_warm in ["_5m", "autogen", "autogen_1h", "", "w2"] {
        assert_eq!(l.warm_retention_s(not_warm), None, "{not_warm:?}");
    }
}

#[test]
fn degrade_needs_a_downsampling_rule_whose_aggregates_stand_for_what_it_deletes() {
    let e = Config::from_yaml("buffer:\n  when_full: degrade\n")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("buffer.when_full"), "{e}");
    let c = Config::from_yaml(
        "buffer:\n  when_full: degrade\nlifecycle:\n  rules:\n    - measurement: m\n      downsample: 5m\n",
    )
    .expect("valid");
    assert_eq!(c.buffer.when_full, WhenFull::Degrade);
}

/// Found in review: a warm_destination where another rule's derived name
/// could be made one rule's aggregates silently nothing.
#[test]
fn a_warm_destination_that_could_be_another_rule_s_derived_name_is_refused() {
    let two = |name: &str| {
        format!(
            "lifecycle:\n  rules:\n    - measurement: m\n      downsample: 5m\n    - measurement: n\n      downsample: 1h\n      warm_destination: {name}\n"
        )
    };
    for name in ["autogen_5m", "raw_5m"] {
        let e = Config::from_yaml(&two(name))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("lifecycle.rules[1].warm_destination"),
            "{name}: {e}"
        );
    }
    assert!(Config::from_yaml(&two("hourly")).is_ok());
}
