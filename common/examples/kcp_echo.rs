//! frp-rs's KCP (frp's settings) as a plain echo server or client, for the interop check
//! against kcp-go in `bench/kcp-interop/run.sh`.
//!
//!   cargo run -p frp-common --example kcp_echo -- server 127.0.0.1:7000
//!   cargo run -p frp-common --example kcp_echo -- client 127.0.0.1:7000 10485760

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a test tool: failing loudly is the point

use common::transport::kcp::{KcpConfig, KcpListener, KcpStream, ListenerLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 131 % 251) as u8).collect()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = args[2].parse().unwrap();
    match args[1].as_str() {
        "server" => {
            let mut l = KcpListener::bind(addr, KcpConfig::server(), ListenerLimits::default())
                .await
                .unwrap();
            println!("listening {}", l.local_addr());
            while let Some(s) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = tokio::io::split(s);
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        }
        _ => {
            let n: usize = args[3].parse().unwrap();
            let s = KcpStream::connect(addr, None, KcpConfig::client())
                .await
                .unwrap();
            let (mut r, mut w) = tokio::io::split(s);
            let data = pattern(n);
            let start = tokio::time::Instant::now();
            let send = data.clone();
            let w_back = tokio::spawn(async move {
                w.write_all(&send).await.unwrap();
                w
            });
            let mut got = vec![0u8; n];
            tokio::time::timeout(std::time::Duration::from_secs(60), r.read_exact(&mut got))
                .await
                .unwrap()
                .unwrap();
            assert!(got == data, "echoed bytes differ");
            let s = r.unsplit(w_back.await.unwrap());
            println!(
                "OK {n} bytes in {:?}, {} lost data shards recovered by FEC",
                start.elapsed(),
                s.fec_recovered()
            );
        }
    }
}
