//! Wire protocol v2 (frp-protocol.md §2.3, §4.5, §4.6): our frpc and frps speaking it to each
//! other, and raw "Go-like" v2 peers checking the bytes on each side.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::io::AeadStream;
use common::msg::{v2, Login, Message, NewProxy, Ping, Wire};
use std::net::SocketAddr;
use tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

#[tokio::test]
async fn v2_frpc_to_frps_tcp_and_udp_with_and_without_mux() {
    init_log();
    let echo = echo_tcp().await;
    let uecho = echo_udp().await;
    for tcp_mux in [true, false] {
        let frps = Frps::start(|c| c.transport.tcp_mux = tcp_mux).await;
        let frpc = Frpc::start(frps.addr, |c| {
            c.transport.wire_protocol = "v2".into();
            c.transport.tcp_mux = tcp_mux;
            c.transport.heartbeat_interval = 1;
            let mut p = proxy("t", "tcp", echo, 0);
            p.transport.use_encryption = true;
            p.transport.use_compression = true;
            c.proxies.push(p);
            c.proxies.push(proxy("u", "udp", uecho, 0));
        });
        let entry: SocketAddr = ([127, 0, 0, 1], remote_port(&frpc.wait_running("t").await)).into();
        let data = pattern(3 * 1024 * 1024, 9);
        assert!(
            echo_through(entry, &data).await == data,
            "tcp_mux {tcp_mux}"
        );
        let uport = remote_port(&frpc.wait_running("u").await);
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut buf = [0u8; 64];
        let mut answered = false;
        for _ in 0..20 {
            sock.send_to(b"ping-v2", ("127.0.0.1", uport))
                .await
                .unwrap();
            if let Ok(Ok((n, _))) =
                tokio::time::timeout(std::time::Duration::from_secs(1), sock.recv_from(&mut buf))
                    .await
            {
                assert_eq!(&buf[..n], b"ping-v2");
                answered = true;
                break;
            }
        }
        assert!(answered, "udp through v2");
        // The dashboard's client record says v2.
        assert_eq!(frps.stats.client_count(), 1);
        frpc.stop().await;
        frps.stop().await;
    }
}

/// Logs in to `frps` as a v2 client would, with raw bytes; returns the AEAD control channel.
async fn raw_v2_login(frps: SocketAddr, alg_order: &[&str]) -> (AeadStream<TcpStream>, Message) {
    let mut s = TcpStream::connect(frps).await.unwrap();
    let mut ch = v2::client_hello(false, false);
    ch.capabilities.crypto.algorithms = alg_order.iter().map(|a| a.to_string()).collect();
    let chp = serde_json::to_vec(&ch).unwrap();
    let ts = common::auth::unix_now();
    let login = Login {
        version: "0.70.1".into(),
        privilege_key: common::auth::auth_key(TOKEN, ts),
        timestamp: ts,
        ..Default::default()
    };
    // Magic, ClientHello, Login in one go, as frpc does, then read.
    let mut out = v2::MAGIC.to_vec();
    v2::write_frame(&mut out, v2::FRAME_CLIENT_HELLO, &chp)
        .await
        .unwrap();
    v2::write_msg(&mut out, &login.into()).await.unwrap();
    assert_eq!(&out[..7], b"FRP\x00\x02\r\n");
    assert_eq!(&out[7..11], &[0, 1, 0, 0], "ClientHello frame header");
    s.write_all(&out).await.unwrap();
    let (ty, shp) = tokio::time::timeout(PATIENCE, v2::read_frame(&mut s))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ty, v2::FRAME_SERVER_HELLO);
    let sh: v2::ServerHello = serde_json::from_slice(&shp).unwrap();
    let alg = v2::check_server_hello(&ch, &sh).unwrap();
    assert_eq!(alg, alg_order[0], "frps picks the client's first choice");
    let resp = v2::read_msg(&mut s).await.unwrap();
    let (c2s, s2c) = v2::control_keys(TOKEN, &v2::transcript(&chp, &shp), &alg);
    (AeadStream::new(s, &alg, &c2s, &s2c).unwrap(), resp)
}

#[tokio::test]
async fn raw_v2_client_talks_to_frps_over_aead_in_both_algorithms() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    for order in [
        [v2::ALG_AES, v2::ALG_XCHACHA],
        [v2::ALG_XCHACHA, v2::ALG_AES],
    ] {
        let (mut ctl, resp) = raw_v2_login(frps.addr, &order).await;
        let Message::LoginResp(r) = resp else {
            panic!("{resp:?}")
        };
        assert!(r.error.is_empty(), "{r:?}");
        // Inside the AEAD channel: NewProxy -> ReqWorkConn / NewProxyResp, Ping -> Pong.
        let np = NewProxy {
            proxy_name: format!("raw-{}", order[0]),
            proxy_type: "tcp".into(),
            ..Default::default()
        };
        Wire::V2.write(&mut ctl, &np.into()).await.unwrap();
        Wire::V2
            .write(&mut ctl, &Ping::default().into())
            .await
            .unwrap();
        let mut seen = Vec::new();
        while !(seen.contains(&"NewProxyResp") && seen.contains(&"Pong")) {
            let m = tokio::time::timeout(PATIENCE, Wire::V2.read(&mut ctl))
                .await
                .unwrap()
                .unwrap();
            if let Message::NewProxyResp(r) = &m {
                assert!(r.error.is_empty(), "{r:?}");
            }
            seen.push(m.name());
        }
    }
    frps.stop().await;
}

#[tokio::test]
async fn v2_refusals_and_v1_still_served() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    // A v2 Login without ClientHello: LoginResp says so, in a v2 frame.
    let mut s = TcpStream::connect(frps.addr).await.unwrap();
    s.write_all(&v2::MAGIC).await.unwrap();
    let ts = common::auth::unix_now();
    let login = Login {
        privilege_key: common::auth::auth_key(TOKEN, ts),
        timestamp: ts,
        ..Default::default()
    };
    v2::write_msg(&mut s, &login.into()).await.unwrap();
    match v2::read_msg(&mut s).await.unwrap() {
        Message::LoginResp(r) => assert_eq!(r.error, "missing v2 crypto negotiation"),
        other => panic!("{other:?}"),
    }
    // A ClientHello with a short random: ServerHello carries the error, then the close.
    let mut s = TcpStream::connect(frps.addr).await.unwrap();
    let mut ch = v2::client_hello(false, false);
    ch.capabilities.crypto.client_random = "c2hvcnQ=".into();
    s.write_all(&v2::MAGIC).await.unwrap();
    v2::write_frame(
        &mut s,
        v2::FRAME_CLIENT_HELLO,
        &serde_json::to_vec(&ch).unwrap(),
    )
    .await
    .unwrap();
    let (ty, shp) = v2::read_frame(&mut s).await.unwrap();
    assert_eq!(ty, v2::FRAME_SERVER_HELLO);
    let sh: v2::ServerHello = serde_json::from_slice(&shp).unwrap();
    assert!(sh.error.contains("random"), "{sh:?}");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut rest))
        .await
        .unwrap();
    // Garbage after the magic closes that connection only.
    let mut s = TcpStream::connect(frps.addr).await.unwrap();
    s.write_all(&v2::MAGIC).await.unwrap();
    s.write_all(&[0, 16, 0, 1, 0, 0, 0, 0]).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut rest))
        .await
        .unwrap();
    // A v1 client is still served on the same port.
    let (_ctl, run_id) = raw_login(frps.addr, 0).await;
    assert!(!run_id.is_empty());
    frps.stop().await;
}

#[tokio::test]
async fn v2_frpc_first_bytes_and_aead_channel_against_a_raw_server() {
    init_log();
    // A raw v2 "frps": checks what our frpc sends and answers as a Go frps would.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let frpc = Frpc::start(addr, |c| {
        c.transport.wire_protocol = "v2".into();
        c.transport.tcp_mux = false;
        c.transport.tls.enable = false;
        c.transport.heartbeat_interval = 1;
    });
    let (mut s, _) = tokio::time::timeout(PATIENCE, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut magic = [0u8; 7];
    s.read_exact(&mut magic).await.unwrap();
    assert_eq!(&magic, b"FRP\x00\x02\r\n");
    let (ty, chp) = v2::read_frame(&mut s).await.unwrap();
    assert_eq!(ty, v2::FRAME_CLIENT_HELLO);
    let ch: v2::ClientHello = serde_json::from_slice(&chp).unwrap();
    assert_eq!(ch.capabilities.message.codecs, ["json"]);
    let Message::Login(login) = v2::read_msg(&mut s).await.unwrap() else {
        panic!("Login expected")
    };
    assert!(common::auth::verify_auth_key(
        TOKEN,
        login.timestamp,
        &login.privilege_key
    ));
    let sh = v2::server_hello(&ch);
    let shp = serde_json::to_vec(&sh).unwrap();
    v2::write_frame(&mut s, v2::FRAME_SERVER_HELLO, &shp)
        .await
        .unwrap();
    let resp = common::msg::LoginResp {
        version: "0.70.1".into(),
        run_id: "r1".into(),
        error: String::new(),
    };
    v2::write_msg(&mut s, &resp.into()).await.unwrap();
    let alg = sh.selected.crypto.algorithm.clone();
    let (c2s, s2c) = v2::control_keys(TOKEN, &v2::transcript(&chp, &shp), &alg);
    let mut ctl = AeadStream::new(s, &alg, &s2c, &c2s).unwrap();
    // frpc's heartbeat arrives encrypted; our Pong goes back the same way.
    let m = tokio::time::timeout(PATIENCE, Wire::V2.read(&mut ctl))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.name(), "Ping");
    Wire::V2
        .write(&mut ctl, &common::msg::Pong::default().into())
        .await
        .unwrap();
    frpc.stop().await;
}
