//! The HTTP request reader on arbitrary bytes, delivered in arbitrary
//! segments (the first bytes choose the segment sizes, so 1-byte peers are
//! tried as often as bulk ones): framing, Content-Length, chunked sizes and
//! extensions, trailers, gzip members, pipelining, headers, query strings and
//! credentials.
//!
//! Invariants: no panic; no body over the limit; the body budget is whole
//! again once the connection is gone; the read buffer moves a linear amount
//! of bytes whatever the segmentation.
//!
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run http_request -- -max_total_time=60`
#![no_main]

use hissrv::config::{Auth, User};
use hissrv::ingest::budget::BodyBudget;
use hissrv::ingest::http::{Conn, Request};
use libfuzzer_sys::fuzz_target;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

const MAX_BODY_BYTES: usize = 64 * 1024;
const BUDGET_BYTES: usize = 256 * 1024;
const MAX_REQUESTS: usize = 16;

/// Hands out `data` in segments of the sizes `sizes` cycles through.
struct Segmented {
    data: Vec<u8>,
    pos: usize,
    sizes: Vec<usize>,
    turn: usize,
}

impl smol::io::AsyncRead for Segmented {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let size = self.sizes[self.turn % self.sizes.len()];
        self.turn += 1;
        let n = size.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Poll::Ready(Ok(n))
    }
}

impl smol::io::AsyncWrite for Segmented {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&schedule, data)) = input.split_first() else {
        return;
    };
    // 0: one byte at a time; otherwise sizes from 1 to 4 KiB.
    let sizes = match schedule % 4 {
        0 => vec![1],
        1 => vec![1, 7, 3, 4096],
        2 => vec![64 * 1024],
        _ => vec![(schedule as usize) * 13 + 1, 2, 1],
    };
    let stream = Segmented {
        data: data.to_vec(),
        pos: 0,
        sizes,
        turn: 0,
    };
    let budget = BodyBudget::new(BUDGET_BYTES);
    let auth = Auth {
        tokens: vec!["tok".into()],
        users: vec![User {
            username: "meter".into(),
            password: "pw".into(),
        }],
    };
    let mut conn = Conn::with_budget(stream, budget.clone());
    smol::block_on(async {
        for _ in 0..MAX_REQUESTS {
            let Ok(head) = conn.read_head(Duration::from_secs(1)).await else {
                break;
            };
            for name in ["db", "rp", "precision", "u", "p", "bucket", "org"] {
                let _ = head.req.param(name);
            }
            let _ = auth.allows(&head.req);
            match conn.read_body(&head, MAX_BODY_BYTES).await {
                Ok(body) => {
                    assert!(body.len() <= MAX_BODY_BYTES, "{} byte body", body.len());
                    let req = Request { body, ..head.req };
                    let _ = hissrv::ingest::http::percent_decode(&req.query);
                }
                Err(_) => break,
            }
        }
    });
    let moved = conn.moved_bytes();
    assert!(
        moved <= 2 * data.len() + 64 * 1024,
        "{moved} bytes moved for {} received",
        data.len()
    );
    drop(conn);
    assert_eq!(budget.free(), BUDGET_BYTES, "the budget is whole again");
});
