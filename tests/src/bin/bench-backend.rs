//! HTTP/1.1 backend for the benchmarks: keep-alive, answers every request with a 1 KiB body
//! (or closes after answering when the request says `Connection: close`).
//! Usage: `bench-backend ADDR`.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let body = vec![b'x'; 1024];
    let keep = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n",
        body.len()
    );
    let close = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let keep: Vec<u8> = [keep.as_bytes(), &body].concat();
    let close: Vec<u8> = [close.as_bytes(), &body].concat();
    let (keep, close) = (std::sync::Arc::new(keep), std::sync::Arc::new(close));
    loop {
        let (mut s, _) = listener.accept().await?;
        let _ = s.set_nodelay(true);
        let (keep, close) = (keep.clone(), close.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut have = 0usize;
            loop {
                let end = loop {
                    if let Some(i) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    if have == buf.len() {
                        return;
                    }
                    match s.read(&mut buf[have..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => have += n,
                    }
                };
                let head = buf[..end].to_ascii_lowercase();
                let wants_close = head.windows(16).any(|w| w == b"connection:close")
                    || head.windows(17).any(|w| w == b"connection: close");
                let resp = if wants_close { &close } else { &keep };
                if s.write_all(resp).await.is_err() || wants_close {
                    return;
                }
                buf.copy_within(end..have, 0);
                have -= end;
            }
        });
    }
}
