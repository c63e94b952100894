//! Bad input closes only the offending connection; frps keeps serving everyone else.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::auth::{auth_key, unix_now};
use common::crypto::derive_key;
use common::io::CryptStream;
use common::msg::{read_msg, write_msg, Login, Message, NewWorkConn};
use std::net::SocketAddr;
use tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes; panics if it does not within PATIENCE.
async fn assert_closed<S: tokio::io::AsyncRead + Unpin>(s: &mut S, what: &str) {
    let mut buf = [0u8; 1024];
    let r = tokio::time::timeout(PATIENCE, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(r.is_ok(), "frps did not close the connection after {what}");
}

/// A working tunnel through `frps`, to prove it still serves others.
async fn still_serves(frps: &Frps, tcp_mux: bool) {
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.transport.tcp_mux = tcp_mux;
        c.proxies.push(proxy("probe", "tcp", echo, 0));
    });
    let port = remote_port(&frpc.wait_running("probe").await);
    assert_eq!(
        echo_through(([127, 0, 0, 1], port).into(), b"alive").await,
        b"alive"
    );
    frpc.stop().await;
}

fn frame(ty: u8, len: i64, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ty];
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(body);
    v
}

async fn send_raw(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s
}

#[tokio::test]
async fn garbage_on_bind_port() {
    init_log();
    for tcp_mux in [true, false] {
        let frps = Frps::start(|c| c.transport.tcp_mux = tcp_mux).await;
        let mut s = send_raw(
            frps.addr,
            &pattern(4096, 5)
                .iter()
                .map(|b| b | 0x80)
                .collect::<Vec<_>>(),
        )
        .await;
        assert_closed(&mut s, "garbage").await;
        // A broken TLS handshake too.
        let mut s = send_raw(frps.addr, b"\x16\x03\x01\x00\x05hello").await;
        assert_closed(&mut s, "a bad ClientHello").await;
        still_serves(&frps, tcp_mux).await;
        frps.stop().await;
    }
}

#[tokio::test]
async fn malformed_frames_close_the_connection() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("an unknown type byte", frame(b'F', 2, b"{}")),
        ("an oversized length", frame(b'o', 10241, b"{}")),
        ("a huge length", frame(b'o', i64::MAX, b"")),
        ("a negative length", frame(b'o', -1, b"")),
        ("bad JSON", frame(b'o', 5, b"{bad}")),
        (
            "a wrong JSON type",
            frame(b'o', 17, br#"{"timestamp":"x"}"#),
        ),
        ("a non-login first message", frame(b'h', 2, b"{}")),
        ("a truncated frame", frame(b'o', 100, b"{")),
    ];
    for (what, bytes) in cases {
        let mut s = send_raw(frps.addr, &bytes).await;
        if what == "a truncated frame" {
            s.shutdown().await.unwrap();
        }
        assert_closed(&mut s, what).await;
    }
    still_serves(&frps, false).await;
    frps.stop().await;
}

#[tokio::test]
async fn work_conn_for_unknown_client_gets_an_error() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let mut s = TcpStream::connect(frps.addr).await.unwrap();
    write_msg(
        &mut s,
        &NewWorkConn {
            run_id: "nope".into(),
            ..Default::default()
        }
        .into(),
    )
    .await
    .unwrap();
    match tokio::time::timeout(PATIENCE, read_msg(&mut s))
        .await
        .unwrap()
        .unwrap()
    {
        Message::StartWorkConn(m) => assert!(m.error.contains("nope"), "{m:?}"),
        other => panic!("{other:?}"),
    }
    assert_closed(&mut s, "a refused work connection").await;
    frps.stop().await;
}

#[tokio::test]
async fn garbage_on_an_established_control_channel() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let mut s = TcpStream::connect(frps.addr).await.unwrap();
    let ts = unix_now();
    let login = Login {
        version: "0.70.1".into(),
        privilege_key: auth_key(TOKEN, ts),
        timestamp: ts,
        pool_count: 1,
        ..Default::default()
    };
    write_msg(&mut s, &login.into()).await.unwrap();
    match read_msg(&mut s).await.unwrap() {
        Message::LoginResp(r) => assert!(r.error.is_empty() && r.run_id.len() == 16, "{r:?}"),
        other => panic!("{other:?}"),
    }
    let mut ctl = CryptStream::new(s, derive_key(TOKEN.as_bytes()));
    // The pool prefill arrives encrypted: a ReqWorkConn.
    assert!(matches!(
        read_msg(&mut ctl).await.unwrap(),
        Message::ReqWorkConn(_)
    ));
    assert_eq!(frps.stats.client_count(), 1);
    ctl.write_all(&frame(b'Z', 2, b"{}")).await.unwrap();
    ctl.flush().await.unwrap();
    assert_closed(&mut ctl, "garbage inside the control channel").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while frps.stats.client_count() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "session still registered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    still_serves(&frps, false).await;
    frps.stop().await;
}

#[tokio::test]
async fn silent_peer_is_closed_after_the_first_message_deadline() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let mut s = TcpStream::connect(frps.addr).await.unwrap();
    // frps gives a new connection 10 s to show what it is.
    assert_closed(&mut s, "10 s of silence").await;
    frps.stop().await;
}

#[tokio::test]
async fn plain_client_refused_when_tls_is_forced() {
    init_log();
    let frps = Frps::start(|c| c.transport.tls.force = true).await;
    let plain = Frpc::start(frps.addr, |c| c.transport.tls.enable = false);
    assert!(
        plain.exited().await.is_err(),
        "plain login must fail under tls.force"
    );
    still_serves(&frps, true).await;
    frps.stop().await;
}
