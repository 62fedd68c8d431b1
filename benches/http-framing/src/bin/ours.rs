use http_framing::budget::BodyBudget;
use http_framing::http::{Conn, Response};
use std::rc::Rc;
fn main() {
    let ex = Rc::new(smol::LocalExecutor::new());
    smol::block_on(ex.run({
        let ex = ex.clone();
        async move {
            let l = smol::net::TcpListener::bind("127.0.0.1:18001")
                .await
                .unwrap();
            let budget = BodyBudget::new(32 << 20);
            loop {
                let (s, _) = l.accept().await.unwrap();
                let budget = budget.clone();
                ex.spawn(async move {
                    let mut c = Conn::with_budget(s, budget);
                    loop {
                        let Ok(h) = c.read_head(std::time::Duration::from_secs(60)).await else {
                            return;
                        };
                        let Ok(body) = c.read_body(&h, 8 << 20).await else {
                            return;
                        };
                        std::hint::black_box(body.len());
                        if c.respond(&Response::new(204), true).await.is_err() {
                            return;
                        }
                    }
                })
                .detach();
            }
        }
    }));
}
