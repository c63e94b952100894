//! A tiny HTTP backend for the quickstart: answers every request with a greeting.
//! Usage: `demo-backend [ADDR]` (default 127.0.0.1:8080).

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("demo backend listening on {addr}");
    loop {
        let (mut s, peer) = listener.accept().await?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut seen = Vec::new();
            // Read the request head, then answer and close.
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
                if seen.len() > 64 * 1024 {
                    return;
                }
            }
            let body = format!("hello from the frp-rs demo backend (you came from {peer})\n");
            let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            let _ = s.write_all(resp.as_bytes()).await;
            let _ = s.shutdown().await;
        });
    }
}
