//! The `lifecycle` section and `buffer.when_full: degrade`: errors that name
//! the key, warm destinations' names, what needs a rule.

use crate::config::*;

/// The design notes' rule, each field checked. Downsampling and `hot_days`
/// are applied, `hot_days` only with `manage_retention` (it sets the
/// upstream retention); `cold_storage` takes a `file://` directory and
/// refuses S3 by name until it is built (never accepted and ignored).
#[test]
fn lifecycle_rules_are_checked_key_by_key_and_hot_days_needs_manage_retention() {
    let rule = |body: &str| format!("lifecycle:\n  rules:\n    - measurement: telemetry\n{body}");
    let managed = |body: &str| format!("influxdb:\n  manage_retention: true\n{}", rule(body));
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
        e.starts_with("lifecycle.rules[0].hot_days:") && e.contains("manage_retention"),
        "{e}"
    );
    let c = Config::from_yaml(&managed(notes)).expect("the design notes' rule");
    assert!(c.lifecycle.rules[0].hot_days.is_some());
    // Fractional days and durations are times too.
    for (hot, s) in [("0.5", 43_200), ("\"36h\"", 129_600), ("\"2w\"", 1_209_600)] {
        let c = Config::from_yaml(&managed(&format!("      hot_days: {hot}\n")))
            .unwrap_or_else(|e| panic!("{hot}: {e}"));
        let days = c.lifecycle.rules[0].hot_days.as_ref().map(|d| d.seconds());
        assert_eq!(days, Some(Ok(s)), "{hot}");
        let e = err(&format!("      hot_days: {hot}\n"));
        assert!(e.contains("manage_retention"), "{hot}: {e}");
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
    let c = Config::from_yaml(&rule("      cold_storage: \"file:///mnt/usb/archive/\"\n"))
        .expect("a rule may only archive");
    assert_eq!(c.lifecycle.rules[0].cold_storage, "file:///mnt/usb/archive/");
    for (body, key, why) in [
        (
            "      cold_storage: \"file://relative\"\n",
            "lifecycle.rules[0].cold_storage",
            "absolute",
        ),
        (
            "      hot_days: 7\n      cold_storage: \"s3://Bucket/archive/\"\n",
            "lifecycle.rules[0].cold_storage",
            "a bucket name is 3 to 63",
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
fn warm_destinations_are_named_by_their_window_s_largest_unit() {
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
