//! Security and traffic-shaping layers end to end: bandwidth limits, TLS and mTLS with
//! certificates made here (rcgen), token files.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend that reads to EOF and answers with the byte count.
async fn counting_sink() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut n = 0usize;
                let mut b = vec![0u8; 16384];
                loop {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                }
                let _ = s.write_all(n.to_string().as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn bandwidth_limit_in_client_and_server_mode() {
    init_log();
    for mode in ["client", "server"] {
        let frps = Frps::start(|_| {}).await;
        let sink = counting_sink().await;
        let frpc = Frpc::start(frps.addr, |c| {
            let mut p = proxy("slow", "tcp", sink, 0);
            p.transport.bandwidth_limit = "64KB".into();
            p.transport.bandwidth_limit_mode = mode.into();
            c.proxies.push(p);
        });
        let port = remote_port(&frpc.wait_running("slow").await);
        let start = tokio::time::Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(&pattern(192 * 1024, 4)).await.unwrap();
        s.shutdown().await.unwrap();
        let mut reply = String::new();
        tokio::time::timeout(PATIENCE, s.read_to_string(&mut reply))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            reply,
            (192 * 1024).to_string(),
            "{mode}: every byte arrives"
        );
        // 192 KiB at 64 KiB/s with a 64 KiB burst needs at least 2 s; only the lower bound is
        // checked, so a slow machine cannot make this fail.
        let secs = start.elapsed().as_secs_f64();
        assert!(
            secs >= 1.8,
            "{mode} mode: 192 KiB took {secs:.2}s, so the 64KB/s limit was not applied"
        );
        frpc.stop().await;
        frps.stop().await;
    }
}

#[tokio::test]
async fn bad_bandwidth_is_refused_by_frps() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    // A Go frpc may send a limit our frpc's config check would have caught; frps refuses it.
    let (mut ctl, _) = raw_login(frps.addr, 0).await;
    let np = common::msg::NewProxy {
        proxy_name: "p".into(),
        proxy_type: "tcp".into(),
        bandwidth_limit: "1GB".into(),
        bandwidth_limit_mode: "server".into(),
        ..Default::default()
    };
    common::msg::write_msg(&mut ctl, &np.into()).await.unwrap();
    match common::msg::read_msg(&mut ctl).await.unwrap() {
        common::msg::Message::NewProxyResp(r) => {
            assert!(r.error.contains("unit not support"), "{r:?}")
        }
        other => panic!("{other:?}"),
    }
    frps.stop().await;
}
