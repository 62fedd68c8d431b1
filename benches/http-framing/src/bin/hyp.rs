use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use std::rc::Rc;
async fn handle(
    req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let body = Limited::new(req.into_body(), 8 << 20)
        .collect()
        .await?
        .to_bytes();
    std::hint::black_box(body.len());
    let mut r = Response::new(Empty::new());
    *r.status_mut() = hyper::StatusCode::NO_CONTENT;
    Ok(r)
}
fn main() {
    let ex = Rc::new(smol::LocalExecutor::new());
    smol::block_on(ex.run({
        let ex = ex.clone();
        async move {
            let l = smol::net::TcpListener::bind("127.0.0.1:18002")
                .await
                .unwrap();
            loop {
                let (s, _) = l.accept().await.unwrap();
                ex.spawn(async move {
                    let io = smol_hyper::rt::FuturesIo::new(s);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, hyper::service::service_fn(handle))
                        .await;
                })
                .detach();
            }
        }
    }));
}
