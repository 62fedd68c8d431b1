//! End-to-end: producers → hissrv → a real InfluxDB 1.6.7 (and VictoriaMetrics
//! for the 2.x request path), with faults injected against the real servers.

mod common;
use common::*;

fn v1(db: &str) -> String {
    format!("  api: v1\n  database: \"{db}\"\n")
}

#[test]
fn points_written_through_v1_and_v2_arrive_with_their_values_types_tags_and_timestamps() {
    let influx = Influx::start();
    influx.create_db("plant");
    let h = Hissrv::start(&influx.url(), &v1("plant"));
    let (s, b) = h.post(
        "/write?db=plant&precision=s",
        "meter,site=north,id=m\\ 1 voltage=230.5,count=42i,ok=true,state=\"run, fast\" 1700000000\n",
    );
    assert_eq!(s, 204, "{b}");
    let (s, b) = h.post(
        "/api/v2/write?org=o&bucket=plant&precision=ms",
        "meter,site=south voltage=-1.25e-3,count=-7i,ok=F,state=\"a \\\"q\\\"\" 1700000000123",
    );
    assert_eq!(s, 204, "{b}");
    wait_for("2 points upstream", DELIVERY_TIMEOUT, || influx.count("plant", "meter") == 2);
    let rows = influx.rows("plant", "SELECT count, id, ok, site, state, voltage FROM meter");
    assert_eq!(
        rows,
        vec![
            r#"[1700000000000000000,42,"m 1",true,"north","run, fast",230.5]"#.to_string(),
            r#"[1700000000123000000,-7,null,false,"south","a \"q\"",-0.00125]"#.to_string(),
        ]
    );
    let types = influx.rows("plant", "SHOW FIELD KEYS FROM meter");
    assert_eq!(
        types,
        vec![
            r#"["count","integer"]"#.to_string(),
            r#"["ok","boolean"]"#.to_string(),
            r#"["state","string"]"#.to_string(),
            r#"["voltage","float"]"#.to_string(),
        ]
    );
}

#[test]
fn one_malformed_line_gets_a_partial_write_naming_it_and_the_good_lines_arrive() {
    let influx = Influx::start();
    influx.create_db("plant");
    let h = Hissrv::start(&influx.url(), &v1("plant"));
    let (s, body) = h.post(
        "/write?db=plant",
        "m v=1 1\nm v=2 2\nm v=oops 3\nm v=4 4\n",
    );
    assert_eq!(s, 400);
    assert!(
        body.contains("partial write: unable to parse 'm v=oops 3': invalid boolean")
            && body.contains("(line 3)"),
        "{body}"
    );
    wait_for("3 good points upstream", DELIVERY_TIMEOUT, || influx.count("plant", "m") == 3);
    assert_eq!(
        influx.rows("plant", "SELECT v FROM m"),
        vec!["[1,1]", "[2,2]", "[4,4]"]
    );
}
