use super::*;
use crate::config::Config;
use crate::lineproto::{ParseOptions, Precision, parse_into};

fn router(yaml: &str) -> Router {
    let cfg = Config::from_yaml(yaml).unwrap();
    Router::from_config(&cfg.influxdb).unwrap()
}

fn route(r: &Router, body: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let opts = ParseOptions {
        precision: Precision::Nanos,
        now_ns: 1,
        allow_unsigned: false,
    };
    let parsed = parse_into(body.as_bytes(), &opts, &mut out);
    assert_eq!(parsed.rejected, 0, "{:?}", parsed.errors);
    let fallback = Destination {
        db: "producer".into(),
        rp: String::new(),
    };
    r.route(&fallback, &out)
        .into_iter()
        .map(|r| {
            (
                r.dest.bucket(),
                String::from_utf8(r.payload).unwrap(),
                r.points,
            )
        })
        .collect()
}

const SEED: &str = r#"
influxdb:
  sharding:
    strategy: tag-based
    buckets:
      - name: high_frequency
        retention: 7d
        points: ["voltage", "current", "frequency"]
      - name: low_frequency
        retention: 30d
        points: ["temperature", "humidity"]
      - name: events
        retention: 365d
        points: ["alarm*", "controls"]
"#;

#[test]
fn tag_based_routes_by_measurement_or_field_key_and_splits_mixed_lines() {
    let r = router(SEED);
    let got = route(
        &r,
        "voltage,meter=m1 l1=230.1 10\n\
         meter,id=m2 current=5.2,temperature=41.5,serial=\"x\" 20\n\
         alarms,site=a active=true 30\n",
    );
    assert_eq!(
        got,
        vec![
            (
                "hissrv/high_frequency".into(),
                "voltage,meter=m1 l1=230.1 10\nmeter,id=m2 current=5.2 20\n".into(),
                2
            ),
            (
                "hissrv/low_frequency".into(),
                "meter,id=m2 temperature=41.5 20\n".into(),
                1
            ),
            ("producer".into(), "meter,id=m2 serial=\"x\" 20\n".into(), 1),
            (
                "hissrv/events".into(),
                "alarms,site=a active=true 30\n".into(),
                1
            ),
        ]
    );
}

#[test]
fn tag_rules_need_every_listed_tag_to_match_one_of_its_globs() {
    let r = router(
        r#"
influxdb:
  sharding:
    default_bucket: rest
    buckets:
      - name: north_power
        tags: {site: ["north-*"], kind: ["power", "energy"]}
      - name: rest
        points: ["*"]
"#,
    );
    let got = route(
        &r,
        "m,kind=power,site=north-3 v=1 1\nm,kind=power,site=south-1 v=1 2\nm,site=north-3 v=1 3\n",
    );
    assert_eq!(got[0].0, "hissrv/north_power");
    assert_eq!(got[0].2, 1);
    assert_eq!((got[1].0.as_str(), got[1].2), ("hissrv/rest", 2));
}

#[test]
fn range_routes_by_the_numeric_point_id_tag() {
    let r = router(
        r#"
influxdb:
  sharding:
    strategy: range
    id_tag: pid
    buckets:
      - name: voltages
        ids: ["10001-10099"]
      - name: alarms
        ids: ["30000-30999", "31000"]
"#,
    );
    let got = route(
        &r,
        "ems,pid=10050 v=1 1\nems,pid=31000 v=1 2\nems,pid=20000 v=1 3\nems,pid=x v=1 4\nems v=1 5\n",
    );
    let summary: Vec<_> = got.iter().map(|(d, _, n)| (d.as_str(), *n)).collect();
    assert_eq!(
        summary,
        vec![
            ("hissrv/voltages", 1),
            ("hissrv/alarms", 1),
            ("producer", 3)
        ]
    );
}

#[test]
fn hash_keeps_each_series_in_one_bucket_and_spreads_many() {
    let r = router(
        r#"
influxdb:
  sharding:
    strategy: hash
    buckets: [{name: s0}, {name: s1}, {name: s2}, {name: s3}]
"#,
    );
    let mut body = String::new();
    for i in 0..400 {
        body.push_str(&format!("m,dev=d{} v=1 {}\n", i % 100, i));
    }
    let got = route(&r, &body);
    assert_eq!(got.len(), 4, "100 series should reach all 4 buckets");
    assert_eq!(got.iter().map(|g| g.2).sum::<usize>(), 400);
    for (dest, payload, _) in &got {
        for line in payload.lines() {
            let key = line.split(' ').next().unwrap();
            let want = format!("hissrv/s{}", fnv1a64(key.as_bytes()) % 4);
            assert_eq!(dest, &want, "{key}");
        }
    }
}

#[test]
fn globs_match_whole_names() {
    assert!(glob(b"alarm*", b"alarms"));
    assert!(glob(b"*_temp", b"oil_temp"));
    assert!(glob(b"v?", b"v1"));
    assert!(glob(b"a*b*c", b"axxbyyc"));
    assert!(!glob(b"alarm*", b"xalarm"));
    assert!(!glob(b"v?", b"v12"));
    assert!(glob(b"*", b""));
}

#[test]
fn escaped_names_are_matched_unescaped() {
    let r = router(
        r#"
influxdb:
  sharding:
    buckets:
      - name: spaced
        points: ["grid power"]
"#,
    );
    let got = route(&r, "grid\\ power v=1 1\n");
    assert_eq!(got[0].0, "hissrv/spaced");
}

#[test]
fn hash_puts_a_series_in_one_bucket_whatever_order_its_tags_come_in() {
    let r = router(
        r#"
influxdb:
  sharding:
    strategy: hash
    buckets: [{name: s0}, {name: s1}, {name: s2}, {name: s3}, {name: s4}, {name: s5}, {name: s6}]
"#,
    );
    for i in 0..200 {
        let sorted = format!("m,a=x{i},b=y{i},c=z v=1 1\n");
        let shuffled = [
            format!("m,c=z,b=y{i},a=x{i} v=2 2\n"),
            format!("m,b=y{i},a=x{i},c=z v=3 3\n"),
        ];
        let want = route(&r, &sorted)[0].0.clone();
        for s in &shuffled {
            assert_eq!(route(&r, s)[0].0, want, "{s}");
        }
        // Sorted keys hash as before the canonical order was introduced.
        let idx = fnv1a64(sorted.split(' ').next().unwrap().as_bytes()) % 7;
        assert_eq!(want, format!("hissrv/s{idx}"));
    }
}

#[test]
fn points_no_rule_takes_go_to_the_default_bucket_when_one_is_set() {
    // The default bucket's own rule matches nothing here: only the fallback
    // can put points there.
    let tagged = router(
        r#"
influxdb:
  sharding:
    default_bucket: archive
    buckets:
      - name: north
        tags: {site: ["north-*"]}
      - name: archive
        points: ["never_written"]
"#,
    );
    let got = route(&tagged, "m,site=north-1 v=1 1\nm,site=south-1 v=2 2\n");
    assert_eq!(
        got.iter().map(|g| (g.0.as_str(), g.2)).collect::<Vec<_>>(),
        vec![("hissrv/north", 1), ("hissrv/archive", 1)]
    );
    let ranged = router(
        r#"
influxdb:
  sharding:
    strategy: range
    id_tag: id
    default_bucket: spare
    buckets:
      - name: low
        ids: ["1-10"]
      - name: spare
        ids: ["1000-1000"]
"#,
    );
    let got = route(&ranged, "m,id=5 v=1 1\nm,id=99 v=2 2\nm v=3 3\n");
    assert_eq!(
        got.iter().map(|g| (g.0.as_str(), g.2)).collect::<Vec<_>>(),
        vec![("hissrv/low", 1), ("hissrv/spare", 2)]
    );
}

#[test]
fn a_key_already_in_influxdbs_tag_order_keeps_its_hash() {
    // "host" sorts before "host-id" as a key, after it as `k=v` text.
    for key in [&b"cpu,host=a,host-id=b"[..], b"m,a=1,a-b=2,ab=3", b"m,t=x"] {
        assert_eq!(
            series_hash(key),
            fnv1a64(key),
            "{}",
            String::from_utf8_lossy(key)
        );
    }
    assert_eq!(
        series_hash(b"cpu,host-id=b,host=a"),
        fnv1a64(b"cpu,host=a,host-id=b")
    );
}
