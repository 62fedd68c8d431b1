// 4 keep-alive connections, each posting the same ~330 kB body (5,000 meter
// lines) back to back for `secs`; prints MB/s and requests/s.
use std::io::{Read, Write};
fn main() {
    let port: u16 = std::env::args().nth(1).unwrap().parse().unwrap();
    let secs: u64 = std::env::args()
        .nth(2)
        .unwrap_or("5".into())
        .parse()
        .unwrap();
    let chunked = std::env::args().nth(3).is_some();
    let body: String = (0..5000).map(|i| format!("meter,id=m{},site=north v1={}.5,v2={}i,v3=230.{},v4=1.25,v5=3i,v6=4i,v7=5.5,v8=6i,v9=7.75,v10=8i {}\n", i % 50, i, i, i % 10, 1700000000000000000u64 + i)).collect();
    let req = if chunked {
        let mut r =
            b"POST /write?db=x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for piece in body.as_bytes().chunks(4096) {
            r.extend(format!("{:x}\r\n", piece.len()).bytes());
            r.extend(piece);
            r.extend(b"\r\n");
        }
        r.extend(b"0\r\n\r\n");
        r
    } else {
        let mut r = format!(
            "POST /write?db=x HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend(body.as_bytes());
        r
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let req = req.clone();
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                let mut n = 0u64;
                let mut buf = [0u8; 256];
                while std::time::Instant::now() < until {
                    s.write_all(&req).unwrap();
                    let mut got = 0;
                    loop {
                        let k = s.read(&mut buf[got..]).unwrap();
                        got += k;
                        if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    println!(
        "{} req/s, {:.1} MB/s",
        total / secs,
        (total as f64 * body.len() as f64) / secs as f64 / 1e6
    );
}
