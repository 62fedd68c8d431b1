//! The HTTP reader's framing, limits and attacks (hostile-input rows 1–5).

use super::*;
use std::io::Write;

const IDLE: Duration = Duration::from_secs(5);

fn read(raw: &[u8], max: usize) -> Result<Request, ReadError> {
    let mut c = Conn::new(smol::io::Cursor::new(raw.to_vec()));
    smol::block_on(async {
        let head = c.read_head(IDLE).await?;
        let body = c.read_body(&head, max).await?;
        Ok(Request { body, ..head.req })
    })
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn with_body(head: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = head.as_bytes().to_vec();
    raw.extend_from_slice(body);
    raw
}

#[test]
fn a_content_length_body_and_query_are_read() {
    let r = read(
        b"POST /write?db=my%20db&precision=s HTTP/1.1\r\nContent-Length: 5\r\n\r\nm v=1",
        100,
    )
    .unwrap();
    assert_eq!(
        (r.path.as_str(), r.body.as_slice()),
        ("/write", &b"m v=1"[..])
    );
    assert_eq!(r.param("db").as_deref(), Some("my db"));
    assert_eq!(r.param("precision").as_deref(), Some("s"));
    assert!(r.keep_alive);
}

#[test]
fn percent_decoding_keeps_a_truncated_escape_and_unicode_as_sent() {
    assert_eq!(percent_decode("a%2"), "a%2");
    assert_eq!(percent_decode("%"), "%");
    assert_eq!(percent_decode("%41%zz+é"), "A%zz é");
}

#[test]
fn a_chunked_body_is_reassembled() {
    let r = read(b"POST /write HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nm v\r\n2;ext=1\r\n=1\r\n0\r\nX-T: 1\r\n\r\n", 100).unwrap();
    assert_eq!(r.body, b"m v=1");
}

#[test]
fn a_chunk_size_that_overflows_is_refused_not_a_panic() {
    for size in [
        "ffffffffffffffff",
        "fffffffffffffffff",
        "10000000000000000",
        "7fffffffffffffff",
    ] {
        let raw = format!(
            "POST /write HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n{size}\r\nxyz"
        );
        let r = read(raw.as_bytes(), 100);
        assert!(
            matches!(r, Err(ReadError::TooLarge) | Err(ReadError::Bad(_))),
            "{size}: {r:?}"
        );
    }
}

#[test]
fn chunk_sizes_with_signs_spaces_or_junk_are_malformed() {
    for size in ["+5", "-1", "", "0x5", "5 5", "g"] {
        let raw = format!(
            "POST /write HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nhello\r\n0\r\n\r\n"
        );
        assert!(
            matches!(read(raw.as_bytes(), 100), Err(ReadError::Bad(_))),
            "{size:?}"
        );
    }
}

#[test]
fn a_chunk_longer_than_its_size_is_malformed() {
    let raw = b"POST /write HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n";
    assert!(matches!(read(raw, 100), Err(ReadError::Bad(_))));
}

#[test]
fn chunks_past_the_body_limit_are_refused() {
    let raw = b"POST /write HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n";
    assert!(matches!(read(raw, 63), Err(ReadError::TooLarge)));
}

#[test]
fn a_content_length_past_the_address_space_is_too_large_not_a_wrap() {
    let raw = b"POST /write HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n";
    assert!(matches!(read(raw, 100), Err(ReadError::TooLarge)));
    for bad in ["+5", "-1", "5 5", "0x10", "1e3"] {
        let raw = format!("POST /write HTTP/1.1\r\nContent-Length: {bad}\r\n\r\nhello");
        assert!(
            matches!(read(raw.as_bytes(), 100), Err(ReadError::Bad(_))),
            "{bad}"
        );
    }
}

#[test]
fn conflicting_content_lengths_and_unknown_transfer_codings_are_malformed() {
    let two = b"POST /write HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
    assert!(matches!(read(two, 100), Err(ReadError::Bad(_))));
    let te = b"POST /write HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n";
    assert!(matches!(read(te, 100), Err(ReadError::Bad(_))));
}

#[test]
fn chunked_framing_wins_over_a_content_length() {
    let raw = b"POST /write HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nm v=1\r\n0\r\n\r\n";
    assert_eq!(read(raw, 100).unwrap().body, b"m v=1");
}

#[test]
fn a_gzip_body_is_decompressed_and_bounded() {
    let gz = gzip(&[b'a'; 1000]);
    let raw = with_body(
        &format!(
            "POST /write HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            gz.len()
        ),
        &gz,
    );
    assert_eq!(read(&raw, 1000).unwrap().body.len(), 1000);
    assert!(matches!(read(&raw, 999), Err(ReadError::TooLarge)));
}

#[test]
fn every_member_of_a_concatenated_gzip_body_is_read() {
    let mut gz = gzip(b"m v=1\n");
    gz.extend(gzip(b"m v=2\n"));
    gz.extend(gzip(b"m v=3\n"));
    let raw = with_body(
        &format!(
            "POST /write HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            gz.len()
        ),
        &gz,
    );
    assert_eq!(read(&raw, 1000).unwrap().body, b"m v=1\nm v=2\nm v=3\n");
    // The limit holds across members.
    assert!(matches!(read(&raw, 17), Err(ReadError::TooLarge)));
}

#[test]
fn a_gzip_body_with_trailing_garbage_is_malformed_not_half_stored() {
    let mut gz = gzip(b"m v=1\n");
    gz.extend_from_slice(b"junk");
    let raw = with_body(
        &format!(
            "POST /write HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            gz.len()
        ),
        &gz,
    );
    assert!(matches!(read(&raw, 1000), Err(ReadError::Bad(_))));
}

#[test]
fn an_oversized_body_is_refused_before_it_is_read() {
    let r = read(b"POST /write HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 100);
    assert!(matches!(r, Err(ReadError::TooLarge)));
}

#[test]
fn a_closed_connection_between_requests_is_not_an_error() {
    assert!(matches!(read(b"", 100), Err(ReadError::Closed)));
}

#[test]
fn one_byte_chunks_are_read_in_linear_work() {
    let n = 200_000;
    let mut raw = b"POST /write HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..n {
        raw.extend_from_slice(b"1\r\nx\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let total = raw.len();
    let mut c = Conn::new(smol::io::Cursor::new(raw));
    let body = smol::block_on(async {
        let head = c.read_head(IDLE).await.unwrap();
        c.read_body(&head, n).await.unwrap()
    });
    assert_eq!(body.len(), n);
    // Each received byte moves at most a few times (quadratic would be ~10^11).
    assert!(
        c.moved_bytes() <= total,
        "{} bytes moved for {total} received",
        c.moved_bytes()
    );
}

/// A connected pair on loopback: (our side wrapped in `Conn`, the peer).
fn pair() -> (smol::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (ours, _) = listener.accept().unwrap();
    (smol::net::TcpStream::try_from(ours).unwrap(), peer)
}

#[test]
fn a_declared_length_with_no_bytes_holds_no_budget_and_stalls_no_one() {
    smol::block_on(async {
        let budget = BodyBudget::new(1024 * 1024);
        // Four peers announce the whole budget and send nothing.
        let mut idle = Vec::new();
        for _ in 0..4 {
            let (ours, mut peer) = pair();
            peer.write_all(b"POST /write HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n")
                .unwrap();
            let mut conn = Conn::with_budget(ours, budget.clone());
            let head = conn.read_head(IDLE).await.unwrap();
            let mut body =
                Box::pin(async move { conn.read_body(&head, 1 << 20).await.map(|b| b.len()) });
            assert!(smol::future::poll_once(&mut body).await.is_none());
            idle.push((body, peer));
        }
        assert_eq!(budget.free(), 1024 * 1024, "no byte arrived, none held");
        // A real writer is served at once.
        let (ours, mut peer) = pair();
        peer.write_all(b"POST /write HTTP/1.1\r\nContent-Length: 5\r\n\r\nm v=1")
            .unwrap();
        let mut conn = Conn::with_budget(ours, budget.clone());
        let head = conn.read_head(IDLE).await.unwrap();
        let got = smol::future::or(
            async { Some(conn.read_body(&head, 1 << 20).await.unwrap()) },
            async {
                smol::Timer::after(Duration::from_secs(5)).await;
                None
            },
        )
        .await;
        assert_eq!(got.as_deref(), Some(&b"m v=1"[..]));
    });
}

#[test]
fn a_chunked_body_takes_its_bytes_from_the_budget_whatever_its_content_length() {
    smol::block_on(async {
        let budget = BodyBudget::new(64 * 1024);
        let mut raw =
            b"POST /write HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        raw.extend_from_slice(format!("{:x}\r\n", 40_000).as_bytes());
        raw.extend(std::iter::repeat_n(b'x', 40_000));
        raw.extend_from_slice(b"\r\n0\r\n\r\n");
        let mut conn = Conn::with_budget(smol::io::Cursor::new(raw), budget.clone());
        let head = conn.read_head(IDLE).await.unwrap();
        let body = conn.read_body(&head, 1 << 20).await.unwrap();
        assert_eq!(body.len(), 40_000);
        assert!(
            budget.free() <= 64 * 1024 - 40_000,
            "the body's bytes are held from the budget (free {})",
            budget.free()
        );
        // A second body that cannot fit waits and is then refused, never
        // read past the budget.
        drop(conn);
        assert_eq!(budget.free(), 64 * 1024, "released with the connection");
    });
}

#[test]
fn a_head_sent_too_slowly_times_out() {
    smol::block_on(async {
        let (ours, mut peer) = pair();
        peer.write_all(b"POST /write HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let mut conn =
            Conn::new(ours).with_timeouts(Duration::from_millis(200), Duration::from_secs(5));
        assert!(matches!(
            conn.read_head(IDLE).await,
            Err(ReadError::Timeout)
        ));
    });
}

#[test]
fn a_body_sent_too_slowly_times_out() {
    smol::block_on(async {
        let (ours, mut peer) = pair();
        peer.write_all(b"POST /write HTTP/1.1\r\nContent-Length: 10\r\n\r\nm v")
            .unwrap();
        let mut conn =
            Conn::new(ours).with_timeouts(Duration::from_secs(5), Duration::from_millis(200));
        let head = conn.read_head(IDLE).await.unwrap();
        assert!(matches!(
            conn.read_body(&head, 100).await,
            Err(ReadError::Timeout)
        ));
    });
}

#[test]
fn an_idle_keep_alive_connection_is_closed_quietly() {
    smol::block_on(async {
        let (ours, _peer) = pair();
        let mut conn = Conn::new(ours);
        let r = conn.read_head(Duration::from_millis(100)).await;
        assert!(matches!(r, Err(ReadError::Closed)), "{r:?}");
    });
}

#[test]
fn a_head_sent_one_byte_at_a_time_is_read() {
    smol::block_on(async {
        let (ours, mut peer) = pair();
        let raw = b"POST /write?db=x HTTP/1.1\r\nContent-Length: 5\r\n\r\nm v=1".to_vec();
        let writer = std::thread::spawn(move || {
            peer.set_nodelay(true).unwrap();
            for b in raw {
                peer.write_all(&[b]).unwrap();
            }
            peer
        });
        let mut conn = Conn::new(ours);
        let head = conn.read_head(IDLE).await.unwrap();
        let body = conn.read_body(&head, 100).await.unwrap();
        assert_eq!(
            (head.req.param("db").as_deref(), body.as_slice()),
            (Some("x"), &b"m v=1"[..])
        );
        drop(writer.join());
    });
}

#[test]
fn pipelined_requests_are_read_one_after_the_other() {
    let raw = b"POST /write HTTP/1.1\r\nContent-Length: 5\r\n\r\nm v=1POST /write HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nm v=2\r\n0\r\n\r\n";
    let mut c = Conn::new(smol::io::Cursor::new(raw.to_vec()));
    smol::block_on(async {
        for want in [&b"m v=1"[..], b"m v=2"] {
            let head = c.read_head(IDLE).await.unwrap();
            assert_eq!(c.read_body(&head, 100).await.unwrap(), want);
        }
        assert!(matches!(c.read_head(IDLE).await, Err(ReadError::Closed)));
    });
}
