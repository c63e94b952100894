//! tcp proxies through in-process frps and frpc on 127.0.0.1.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;
use tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn echo_10mib(tcp_mux: bool, tls: bool, encryption: bool) {
    echo_10mib_with(tcp_mux, tls, encryption, false).await;
}

async fn echo_10mib_with(tcp_mux: bool, tls: bool, encryption: bool, compression: bool) {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = tcp_mux).await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.transport.tcp_mux = tcp_mux;
        c.transport.tls.enable = tls;
        let mut p = proxy("echo", "tcp", echo, 0);
        p.transport.use_encryption = encryption;
        p.transport.use_compression = compression;
        c.proxies.push(p);
    });
    let port = remote_port(&frpc.wait_running("echo").await);
    let data = pattern(10 * 1024 * 1024, 1);
    let got = echo_through(([127, 0, 0, 1], port).into(), &data).await;
    assert!(got == data, "10 MiB came back different");
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn echo_10mib_tcp_mux_on() {
    echo_10mib(true, true, false).await;
}

#[tokio::test]
async fn echo_10mib_tcp_mux_off() {
    echo_10mib(false, true, false).await;
}

#[tokio::test]
async fn echo_10mib_plain_transport() {
    echo_10mib(true, false, false).await;
}

#[tokio::test]
async fn echo_10mib_encrypted_work_conns() {
    echo_10mib(true, true, true).await;
}

#[tokio::test]
async fn two_hundred_concurrent_connections() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| c.proxies.push(proxy("echo", "tcp", echo, 0)));
    let port = remote_port(&frpc.wait_running("echo").await);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let tasks: Vec<_> = (0..200u64)
        .map(|i| {
            tokio::spawn(async move {
                let data = pattern(64 * 1024 + i as usize, i);
                echo_through(addr, &data).await == data
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() {
            ok += 1;
        }
    }
    assert_eq!(ok, 200, "every connection gets its own bytes back");
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn remote_port_zero_gets_a_port() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| c.proxies.push(proxy("echo", "tcp", echo, 0)));
    let st = frpc.wait_running("echo").await;
    assert!(st.remote_addr.starts_with(':'), "{st:?}");
    let port = remote_port(&st);
    assert_ne!(port, 0);
    assert_eq!(
        echo_through(([127, 0, 0, 1], port).into(), b"hi").await,
        b"hi"
    );
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn fixed_remote_port_and_user_prefix() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let port = free_port().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.user = "alice".into();
        c.proxies.push(proxy("echo", "tcp", echo, port));
    });
    let st = frpc.wait_running("echo").await;
    assert_eq!(st.remote_addr, format!(":{port}"));
    assert_eq!(
        echo_through(([127, 0, 0, 1], port).into(), b"hi").await,
        b"hi"
    );
    assert!(
        frps.stats.proxy_traffic("alice.echo").is_some(),
        "frps knows the proxy by its wire name"
    );
    frpc.stop().await;
    frps.stop().await;
}

/// Through `port` to a `reply_after_eof(b"|done")` backend: sends 300 000 bytes, half-closes,
/// and expects them back followed by `|done`.
async fn assert_reply_after_half_close(port: u16, seed: u64, what: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req = pattern(300_000, seed);
    s.write_all(&req).await.unwrap();
    s.shutdown().await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut got))
        .await
        .expect("reply in time")
        .unwrap();
    let mut want = req.clone();
    want.extend_from_slice(b"|done");
    assert!(
        got == want,
        "{what}: reply after half-close intact ({} of {} bytes)",
        got.len(),
        want.len()
    );
}

#[tokio::test]
async fn half_close_loses_no_data() {
    init_log();
    for tcp_mux in [true, false] {
        let frps = Frps::start(|c| c.transport.tcp_mux = tcp_mux).await;
        let backend = reply_after_eof(b"|done").await;
        let frpc = Frpc::start(frps.addr, |c| {
            c.transport.tcp_mux = tcp_mux;
            c.proxies.push(proxy("h", "tcp", backend, 0));
        });
        let port = remote_port(&frpc.wait_running("h").await);
        assert_reply_after_half_close(port, 9, &format!("tcpMux={tcp_mux}")).await;
        frpc.stop().await;
        frps.stop().await;
    }
}

#[tokio::test]
async fn byte_counts_are_kept() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| c.proxies.push(proxy("echo", "tcp", echo, 0)));
    let port = remote_port(&frpc.wait_running("echo").await);
    let data = pattern(100_000, 3);
    {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(&data).await.unwrap();
        s.shutdown().await.unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).await.unwrap();
        assert_eq!(back.len(), data.len());
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (i, o, open) = frps.stats.proxy_traffic("echo").unwrap();
        if i == 100_000 && o == 100_000 && open == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "counts were {i}/{o}/{open}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn pool_count_five_serves_sequential_users() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.transport.pool_count = 5;
        c.proxies.push(proxy("echo", "tcp", echo, 0));
    });
    let port = remote_port(&frpc.wait_running("echo").await);
    for i in 0..20 {
        let d = pattern(1000, i);
        assert_eq!(echo_through(([127, 0, 0, 1], port).into(), &d).await, d);
    }
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn custom_tls_first_byte_is_detected() {
    init_log();
    for tcp_mux in [true, false] {
        let frps = Frps::start(|c| {
            c.transport.tcp_mux = tcp_mux;
            c.transport.tls.force = true;
        })
        .await;
        let echo = echo_tcp().await;
        let frpc = Frpc::start(frps.addr, |c| {
            c.transport.tcp_mux = tcp_mux;
            c.transport.tls.disable_custom_tls_first_byte = false;
            c.proxies.push(proxy("echo", "tcp", echo, 0));
        });
        let port = remote_port(&frpc.wait_running("echo").await);
        let d = pattern(500_000, 11);
        assert!(echo_through(([127, 0, 0, 1], port).into(), &d).await == d);
        frpc.stop().await;
        frps.stop().await;
    }
}

#[tokio::test]
async fn echo_10mib_compressed_and_encrypted() {
    echo_10mib_with(true, true, true, true).await;
    echo_10mib_with(false, true, false, true).await;
}

/// tcpMux off, TLS off, no layers: both sides relay with splice(2). Data, half-close and byte
/// counts behave exactly as on the copying path, and frps's metric shows the zero-copy path ran.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn zero_copy_path_keeps_data_half_close_and_counts() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let echo = echo_tcp().await;
    let backend = reply_after_eof(b"|done").await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.transport.tcp_mux = false;
        c.transport.tls.enable = false;
        c.proxies.push(proxy("z", "tcp", echo, 0));
        c.proxies.push(proxy("h", "tcp", backend, 0));
    });
    let port = remote_port(&frpc.wait_running("z").await);
    let data = pattern(10 * 1024 * 1024, 5);
    assert!(echo_through(([127, 0, 0, 1], port).into(), &data).await == data);
    let hport = remote_port(&frpc.wait_running("h").await);
    assert_reply_after_half_close(hport, 8, "zero-copy").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (i, o, open) = frps.stats.proxy_traffic("z").unwrap();
        if i == data.len() as u64 && o == data.len() as u64 && open == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "counts were {i}/{o}/{open}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = frps.stats.metrics_text();
    assert!(
        text.lines()
            .any(|l| l == "frp_rs_server_spliced_connections_total 2"),
        "both user connections took the splice path:\n{text}"
    );
    let ctext = frpc.metrics.render();
    assert!(
        ctext
            .lines()
            .any(|l| l == "frp_rs_client_spliced_connections_total 2"),
        "frpc spliced both too:\n{ctext}"
    );
    frpc.stop().await;
    frps.stop().await;
}
