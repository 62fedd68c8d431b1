//! The S3 target against scripted stores: the second review's holes.

use super::*;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;

fn settings(endpoint: &str) -> crate::config::S3Settings {
    crate::config::S3Settings {
        endpoint: endpoint.into(),
        path_style: true,
        ..Default::default()
    }
}

fn keys() -> LiveS3 {
    Arc::new(Mutex::new(LiveSettings {
        keys: S3Credentials {
            access_key_id: "AKIA".into(),
            secret_access_key: "secret".into(),
            session_token: String::new(),
        },
        ..LiveSettings::default()
    }))
}

/// A target of bucket `bucket`, prefix `p/`, on the scripted store at
/// `port`, spooling in `dir`.
fn scripted(port: u16, dir: &std::path::Path) -> S3Target {
    S3Target::new(
        "bucket",
        "p/",
        &settings(&format!("http://127.0.0.1:{port}")),
        dir.to_path_buf(),
        keys(),
    )
    .unwrap()
}

fn spool(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("hissrv-s3-{tag}-{}", std::process::id()))
}

/// A store that answers each request with the next of `answers`; returns
/// the request lines it saw.
fn store(answers: Vec<&'static [u8]>) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for answer in answers {
            let Ok((s, _)) = listener.accept() else { break };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut headers = Vec::new();
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).unwrap_or(0) == 0 || l.trim().is_empty() {
                    break;
                }
                headers.push(l.trim().to_string());
            }
            let len: usize = (headers.iter())
                .find_map(|h| {
                    let h = h.to_ascii_lowercase();
                    h.strip_prefix("content-length:")?.trim().parse().ok()
                })
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            let _ = std::io::Read::read_exact(&mut r, &mut body);
            let _ = std::io::Write::write_all(&mut &s, answer);
            seen.push(headers.join("\n"));
        }
        seen
    });
    (port, h)
}

#[test]
fn a_redirected_put_is_an_error_not_stored() {
    let (port, seen) = store(vec![
        b"HTTP/1.1 302 Found\r\nlocation: /portal\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    ]);
    let dir = spool("redirect");
    let t = scripted(port, &dir);
    let mut o = t.begin("a/b.lp.gz", "db", "").unwrap();
    o.line(b"m v=1 1", 1).unwrap();
    let confirmed = t.confirm(o);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        matches!(confirmed, Err(ArchiveError::Store { status: 302, .. })),
        "{confirmed:?}"
    );
    assert_eq!(
        seen.join().unwrap().len(),
        1,
        "the redirect was not followed"
    );
}

#[test]
fn the_signed_host_leaves_out_the_default_port_as_the_sent_one_does() {
    assert_eq!(default_port_dropped("http", "store:80"), "store");
    assert_eq!(
        default_port_dropped("https", "s3.example.com:443"),
        "s3.example.com"
    );
    assert_eq!(default_port_dropped("http", "store:9000"), "store:9000");
    assert_eq!(default_port_dropped("https", "store:80"), "store:80");
    let t = S3Target::new(
        "bucket",
        "",
        &settings("http://127.0.0.1:80"),
        spool("host"),
        keys(),
    )
    .unwrap();
    assert_eq!(t.host, "127.0.0.1");
    let _ = std::fs::remove_dir_all(spool("host"));
}

#[test]
fn a_long_destination_is_spooled_under_a_short_name() {
    let dir = spool("long");
    let t = S3Target::new(
        "bucket",
        "p/",
        &settings("http://127.0.0.1:9"),
        dir.clone(),
        keys(),
    )
    .unwrap();
    let name = crate::archive::object::object_name(
        &"d".repeat(200),
        &"r".repeat(200),
        1,
        3_600,
        "0123456789abcdef",
        (1, 1),
    );
    let begun = t.begin(&name, &"d".repeat(200), &"r".repeat(200));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(begun.is_ok(), "{:?}", begun.err());
}

/// A certificate and two keys made with openssl in `dir`: the
/// certificate's key (`good.key`) and another one (`other.key`).
fn client_pki(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "good.key",
    ]);
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "other.key",
    ]);
    run(&[
        "req",
        "-new",
        "-x509",
        "-key",
        "good.key",
        "-subj",
        "/CN=gw7",
        "-days",
        "2",
        "-out",
        "client.pem",
    ]);
}

#[test]
fn the_tls_files_checked_at_start_are_the_ones_the_archiver_uses_not_what_lies_there_at_its_first_upload()
 {
    // The agent starts with good S3 TLS files (start checked them). Before
    // the archiver's first upload, a renewal writes the new certificate's
    // key... into the wrong place, half done: the key on disk no longer
    // fits. A reload would be refused ("the running config stays"), and
    // the upstream keeps the client it made at start; the archiver must
    // keep the one of its start too, not read the files again at its first
    // upload and fail every upload until someone fixes the files.
    let dir = spool("tls-lazy");
    let pki = dir.join("pki");
    client_pki(&pki);
    let tls = Tls {
        client_cert: pki.join("client.pem").display().to_string(),
        client_key: pki.join("good.key").display().to_string(),
        ..Tls::default()
    };
    crate::tls::tls_config(TLS_KEY, &tls).expect("good files at start");
    let live = keys();
    live.lock().unwrap().tls = ClientTls::of(&tls);
    let (port, seen) = store(vec![
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    ]);
    let t = S3Target::new(
        "bucket",
        "p/",
        &settings(&format!("http://127.0.0.1:{port}")),
        dir.clone(),
        live,
    )
    .unwrap();
    // The renewal, half done, after start, before any upload.
    std::fs::copy(pki.join("other.key"), pki.join("good.key")).unwrap();
    let mut o = t.begin("a/b.lp.gz", "db", "").unwrap();
    o.line(b"m v=1 1", 1).unwrap();
    let confirmed = t.confirm(o);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        confirmed.is_ok(),
        "the client of the files checked at start was not used: {:?}",
        confirmed.err()
    );
    assert_eq!(seen.join().unwrap().len(), 1, "the PUT reached the store");
}

#[test]
fn a_store_without_conditional_writes_gets_plain_puts_after_its_501() {
    // Objects are PUT with `If-None-Match: *` (never replace what another
    // buffer wrote); a store that answers 501 to it must still get the
    // archive, without the header, from then on.
    let (port, seen) = store(vec![
        b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 79\r\nconnection: close\r\n\r\n<Error><Code>NotImplemented</Code><Message>If-None-Match</Message></Error>\n\n\n\n\n\n\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    ]);
    let dir = spool("conditional-501");
    let t = scripted(port, &dir);
    for name in ["a/b.lp.gz", "a/c.lp.gz"] {
        let mut o = t.begin(name, "db", "").unwrap();
        o.line(b"m v=1 1", 1).unwrap();
        t.confirm(o).expect("stored once the store said 501");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let seen = seen.join().unwrap();
    let conditional: Vec<bool> = (seen.iter())
        .map(|h| h.to_ascii_lowercase().contains("if-none-match: *"))
        .collect();
    assert_eq!(conditional, [true, false, false], "{seen:?}");
}

#[test]
fn a_412_whose_object_cannot_be_read_back_is_an_error_and_never_confirmed() {
    // The name is taken and the object will not come back (the store
    // answers 403 to the GET): the run must stay unconfirmed, not be
    // taken for written.
    let (port, _seen) = store(vec![
        b"HTTP/1.1 412 Precondition Failed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    ]);
    let dir = spool("conditional-412");
    let t = scripted(port, &dir);
    let mut o = t.begin("a/b.lp.gz", "db", "").unwrap();
    o.line(b"m v=1 1", 1).unwrap();
    let got = t.confirm(o);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        matches!(got, Err(ArchiveError::Store { status: 403, .. })),
        "{got:?}"
    );
    let said = got.unwrap_err().to_string();
    assert!(
        said.contains("s3:GetObject"),
        "names what the keys lack: {said}"
    );
}

#[test]
fn a_read_back_cut_short_by_the_network_is_an_error_to_retry_not_a_conflict() {
    // The run is written again after a crash: its object is there, the
    // same lines (412). The read-back's connection drops half way (a
    // flaky uplink). That says nothing about the object's lines: it must
    // be an error retried as any network error, never "exists with other
    // lines ... move it away", which sends the operator to move a good
    // object (this gateway's own) out of the archive.
    let (stored, _) = {
        let mut w = crate::archive::object::ObjectWriter::new(Vec::new(), "db", "").unwrap();
        for i in 0..20_000u64 {
            w.line(
                format!("m,id=s{} v={} {i}", i % 97, i * 7919 % 10_007).as_bytes(),
                i as i64,
            )
            .unwrap();
        }
        w.finish().unwrap()
    };
    let half = &stored[..stored.len() / 2];
    let mut cut = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/gzip\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        stored.len()
    )
    .into_bytes();
    cut.extend_from_slice(half);
    let (port, _seen) = store(vec![
        b"HTTP/1.1 412 Precondition Failed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        Box::leak(cut.into_boxed_slice()),
    ]);
    let dir = spool("cut-read-back");
    let t = scripted(port, &dir);
    let mut o = t.begin("a/b.lp.gz", "db", "").unwrap();
    for i in 0..20_000u64 {
        o.line(
            format!("m,id=s{} v={} {i}", i % 97, i * 7919 % 10_007).as_bytes(),
            i as i64,
        )
        .unwrap();
    }
    let got = t.confirm(o);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(got.is_err(), "never confirmed from half an object: {got:?}");
    assert!(
        !matches!(got, Err(ArchiveError::Conflict { .. })),
        "a dropped connection is reported as another gateway's lines: {}",
        got.unwrap_err()
    );
}
