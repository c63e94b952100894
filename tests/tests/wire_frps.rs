//! Our frps seen by a hand-written frpc speaking raw frp frames, as a Go frpc would.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::auth::{auth_key, unix_now};
use common::crypto::derive_key;
use common::io::CryptStream;
use common::msg::*;
use tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Ctl = RawControl;

async fn next(ctl: &mut Ctl) -> Message {
    tokio::time::timeout(PATIENCE, read_msg(ctl))
        .await
        .expect("message in time")
        .expect("message")
}

/// Registers tcp proxy `name` on a raw control; returns the port frps listens on for it.
async fn open_tcp_proxy(ctl: &mut Ctl, name: &str) -> u16 {
    let np = NewProxy {
        proxy_name: name.into(),
        proxy_type: "tcp".into(),
        ..Default::default()
    };
    write_msg(ctl, &np.into()).await.unwrap();
    let Message::NewProxyResp(resp) = next(ctl).await else {
        panic!("NewProxyResp expected")
    };
    assert_eq!((resp.proxy_name.as_str(), resp.error.as_str()), (name, ""));
    resp.remote_addr.trim_start_matches(':').parse().unwrap()
}

/// A work connection as frpc opens one after ReqWorkConn (tcpMux off).
async fn open_work_conn(frps: std::net::SocketAddr, run_id: &str) -> TcpStream {
    let mut work = TcpStream::connect(frps).await.unwrap();
    let m = NewWorkConn {
        run_id: run_id.into(),
        ..Default::default()
    };
    write_msg(&mut work, &m.into()).await.unwrap();
    work
}

async fn start_work(work: &mut TcpStream) -> StartWorkConn {
    match tokio::time::timeout(PATIENCE, read_msg(work)).await {
        Ok(Ok(Message::StartWorkConn(s))) => s,
        other => panic!("expected StartWorkConn, got {other:?}"),
    }
}

#[tokio::test]
async fn pool_prefill_is_capped_by_max_pool_count() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let (mut ctl, run_id) = raw_login(frps.addr, 3).await;
    assert_eq!(run_id.len(), 16);
    assert!(run_id.chars().all(|c| c.is_ascii_hexdigit()));
    for _ in 0..3 {
        assert!(matches!(next(&mut ctl).await, Message::ReqWorkConn(_)));
    }
    // Control messages are in order: the Pong comes right after the prefill.
    write_msg(&mut ctl, &Ping::default().into()).await.unwrap();
    assert!(matches!(next(&mut ctl).await, Message::Pong(p) if p.error.is_empty()));

    let (mut ctl, _) = raw_login(frps.addr, 50).await;
    for _ in 0..5 {
        assert!(matches!(next(&mut ctl).await, Message::ReqWorkConn(_)));
    }
    write_msg(&mut ctl, &Ping::default().into()).await.unwrap();
    assert!(
        matches!(next(&mut ctl).await, Message::Pong(_)),
        "maxPoolCount (5) caps the prefill"
    );
    frps.stop().await;
}

#[tokio::test]
async fn user_connection_gets_a_work_connection_with_addresses() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let (mut ctl, run_id) = raw_login(frps.addr, 0).await;
    let port = open_tcp_proxy(&mut ctl, "raw").await;

    let mut user = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let user_port = user.local_addr().unwrap().port();
    // Pool empty: frps asks for one work connection for this user.
    assert!(matches!(next(&mut ctl).await, Message::ReqWorkConn(_)));
    let mut work = open_work_conn(frps.addr, &run_id).await;
    let start = start_work(&mut work).await;
    assert_eq!(start.proxy_name, "raw");
    assert_eq!(
        (start.src_addr.as_str(), start.src_port),
        ("127.0.0.1", user_port)
    );
    assert_eq!(
        (start.dst_addr.as_str(), start.dst_port),
        ("127.0.0.1", port)
    );
    assert!(start.error.is_empty());
    // And one more ReqWorkConn to refill the pool.
    assert!(matches!(next(&mut ctl).await, Message::ReqWorkConn(_)));

    // Raw bytes both ways after StartWorkConn.
    user.write_all(b"from user").await.unwrap();
    let mut b = [0u8; 9];
    work.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"from user");
    work.write_all(b"from frpc").await.unwrap();
    user.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"from frpc");

    // CloseProxy frees the port.
    write_msg(
        &mut ctl,
        &CloseProxy {
            proxy_name: "raw".into(),
        }
        .into(),
    )
    .await
    .unwrap();
    write_msg(&mut ctl, &Ping::default().into()).await.unwrap();
    assert!(matches!(next(&mut ctl).await, Message::Pong(_)));
    // Waited for, not asserted once: a child process another test is spawning holds a copy of
    // every descriptor until its exec (see visitors.rs `not_listening`).
    wait_until("port released by CloseProxy", || async {
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
    })
    .await;
    frps.stop().await;
}

/// Reads control messages up to a Pong, counting the ReqWorkConns before it.
async fn req_work_conns_before_pong(ctl: &mut Ctl) -> usize {
    write_msg(ctl, &Ping::default().into()).await.unwrap();
    let mut n = 0;
    loop {
        match next(ctl).await {
            Message::ReqWorkConn(_) => n += 1,
            Message::Pong(_) => return n,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Beyond frp: a user who finds the pool empty makes frps keep one more connection ready,
/// up to maxPoolCount, and refills count the requests still on their way.
#[tokio::test]
async fn pool_grows_when_users_wait_up_to_max_pool_count() {
    init_log();
    let frps = Frps::start(|c| {
        c.transport.tcp_mux = false;
        c.transport.max_pool_count = 2;
    })
    .await;
    let (mut ctl, run_id) = raw_login(frps.addr, 1).await;
    assert!(matches!(next(&mut ctl).await, Message::ReqWorkConn(_)));
    let port = open_tcp_proxy(&mut ctl, "grow").await;
    let mut pooled = open_work_conn(frps.addr, &run_id).await;

    // User A: served from the pool; one refill is asked for.
    let _a = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    start_work(&mut pooled).await;
    assert_eq!(req_work_conns_before_pong(&mut ctl).await, 1);
    // User B arrives before that refill is answered: it asks for its own and waits; the pool
    // target is now 2. Both requests are answered.
    let _b = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert!(matches!(next(&mut ctl).await, Message::ReqWorkConn(_)));
    let mut w1 = open_work_conn(frps.addr, &run_id).await;
    let mut w2 = open_work_conn(frps.addr, &run_id).await;
    // One of them carries B; the other stays pooled. One more refill makes two ready.
    let started = tokio::select! {
        s = start_work(&mut w1) => { drop(w1); (s, w2) }
        s = start_work(&mut w2) => { drop(w2); (s, w1) }
    };
    let (_, mut idle) = started;
    assert_eq!(req_work_conns_before_pong(&mut ctl).await, 1);
    let mut w3 = open_work_conn(frps.addr, &run_id).await;
    tokio::time::timeout(PATIENCE, async {
        while frps.stats.pooled_work_conns() < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("two connections pooled");

    // User C takes a pooled one; the refill brings the pool back to 2, never beyond.
    let _c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tokio::select! {
        _ = start_work(&mut idle) => {}
        _ = start_work(&mut w3) => {}
    }
    assert_eq!(req_work_conns_before_pong(&mut ctl).await, 1);
    assert_eq!(frps.stats.pooled_work_conns(), 1);
    frps.stop().await;
}

#[tokio::test]
async fn user_is_dropped_after_user_conn_timeout() {
    init_log();
    let frps = Frps::start(|c| {
        c.transport.tcp_mux = false;
        c.user_conn_timeout = 1;
    })
    .await;
    let (mut ctl, _) = raw_login(frps.addr, 0).await;
    let port = open_tcp_proxy(&mut ctl, "slow").await;
    let mut user = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert!(matches!(next(&mut ctl).await, Message::ReqWorkConn(_)));
    // We never open the work connection: frps gives up and closes the user.
    let mut b = [0u8; 1];
    let r = tokio::time::timeout(PATIENCE, user.read(&mut b))
        .await
        .expect("user closed in time");
    assert!(matches!(r, Ok(0) | Err(_)));
    frps.stop().await;
}

#[tokio::test]
async fn heartbeat_timeout_closes_a_silent_client() {
    init_log();
    let frps = Frps::start(|c| {
        c.transport.tcp_mux = false;
        c.transport.heartbeat_timeout = 1;
    })
    .await;
    let (mut ctl, _) = raw_login(frps.addr, 0).await;
    let mut b = [0u8; 64];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match ctl.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "frps closes a client that never pings");
    frps.stop().await;
}

/// The heartbeat deadline holds while frps is stuck answering a client that stopped reading
/// (its answer waits up to 30 s for room): a client that floods Pings without reading the
/// Pongs, then goes quiet, is closed a heartbeatTimeout after its last Ping, not 30 s later.
#[tokio::test]
async fn heartbeat_timeout_holds_while_frps_waits_to_answer() {
    init_log();
    let frps = Frps::start(|c| {
        c.transport.tcp_mux = false;
        c.transport.heartbeat_timeout = 2;
    })
    .await;
    let (mut ctl, _) = raw_login(frps.addr, 0).await;
    // Pings until frps stops reading them (its answers have filled every buffer on the way).
    let mut sent = 0u64;
    let ping: Message = Ping::default().into();
    loop {
        let w = write_msg(&mut ctl, &ping);
        match tokio::time::timeout(std::time::Duration::from_millis(500), w).await {
            Ok(Ok(())) => sent += 1,
            Ok(Err(e)) => panic!("closed while still pinging after {sent}: {e}"),
            Err(_) => break,
        }
        assert!(sent < 5_000_000, "frps never stopped reading");
    }
    // Now quiet. Writing again fails once frps has closed the connection.
    let closed = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        loop {
            let w = write_msg(&mut ctl, &ping);
            match tokio::time::timeout(std::time::Duration::from_millis(200), w).await {
                Ok(Err(_)) => return,
                _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "closed within the heartbeat timeout, not after 30 s"
    );
    frps.stop().await;
}

#[tokio::test]
async fn relogin_with_same_run_id_replaces_the_old_session() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let (mut old, run_id) = raw_login(frps.addr, 0).await;
    write_msg(
        &mut old,
        &NewProxy {
            proxy_name: "keep".into(),
            proxy_type: "tcp".into(),
            remote_port: 0,
            ..Default::default()
        }
        .into(),
    )
    .await
    .unwrap();
    assert!(matches!(next(&mut old).await, Message::NewProxyResp(r) if r.error.is_empty()));

    let mut s = TcpStream::connect(frps.addr).await.unwrap();
    let ts = unix_now();
    let m = Login {
        privilege_key: auth_key(TOKEN, ts),
        timestamp: ts,
        run_id: run_id.clone(),
        ..Default::default()
    };
    write_msg(&mut s, &m.into()).await.unwrap();
    let Message::LoginResp(r) = read_msg(&mut s).await.unwrap() else {
        panic!()
    };
    assert_eq!(r.run_id, run_id);
    let mut new = CryptStream::new(s, derive_key(TOKEN.as_bytes()));
    // The old session is gone, and with it the proxy name: registering it again works.
    write_msg(
        &mut new,
        &NewProxy {
            proxy_name: "keep".into(),
            proxy_type: "tcp".into(),
            ..Default::default()
        }
        .into(),
    )
    .await
    .unwrap();
    assert!(
        matches!(next(&mut new).await, Message::NewProxyResp(r) if r.error.is_empty()),
        "name freed by the replaced session"
    );
    let mut b = [0u8; 1];
    assert!(matches!(
        tokio::time::timeout(PATIENCE, old.read(&mut b))
            .await
            .unwrap(),
        Ok(0) | Err(_)
    ));
    assert_eq!(frps.stats.client_count(), 1);
    frps.stop().await;
}

#[tokio::test]
async fn client_id_must_be_unique_while_online() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let mut logins = Vec::new();
    for i in 0..2 {
        let mut s = TcpStream::connect(frps.addr).await.unwrap();
        let ts = unix_now();
        let m = Login {
            user: "u".into(),
            client_id: "c1".into(),
            privilege_key: auth_key(TOKEN, ts),
            timestamp: ts,
            ..Default::default()
        };
        write_msg(&mut s, &m.into()).await.unwrap();
        let Message::LoginResp(r) = read_msg(&mut s).await.unwrap() else {
            panic!()
        };
        if i == 0 {
            assert!(r.error.is_empty());
        } else {
            assert_eq!(r.error, "client_id [c1] for user [u] is already online");
        }
        logins.push(s);
    }
    frps.stop().await;
}

// --- yamux as a Go frpc drives it ------------------------------------------------------

async fn read_header(s: &mut TcpStream) -> [u8; 12] {
    let mut h = [0u8; 12];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut h))
        .await
        .expect("frame in time")
        .unwrap();
    h
}

#[tokio::test]
async fn yamux_streams_are_acked_at_once_and_pings_answered() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let mut s = TcpStream::connect(frps.addr).await.unwrap();
    // Go frpc opens a stream with WindowUpdate|SYN and delta 6 MiB - 256 KiB, then sends nothing.
    const DELTA: u32 = 6 * 1024 * 1024 - 256 * 1024;
    s.write_all(&yamux_header(1, 1, 1, DELTA)).await.unwrap();
    let h = read_header(&mut s).await;
    assert_eq!(h[1], 1, "WindowUpdate");
    assert_eq!(
        u16::from_be_bytes([h[2], h[3]]),
        2,
        "ACK flag, sent before any data"
    );
    assert_eq!(u32::from_be_bytes([h[4], h[5], h[6], h[7]]), 1);
    // frp grants its 6 MiB window at once; frp-rs keeps yamux's initial 256 KiB until a Login
    // has succeeded on the session (then streams grow at their next read; see hardening.rs).
    assert_eq!(
        u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        0,
        "no window growth before login"
    );
    // Keepalive ping: answered with ACK and the same opaque value.
    s.write_all(&yamux_header(2, 1, 0, 0xdead)).await.unwrap();
    let h = read_header(&mut s).await;
    assert_eq!((h[1], u16::from_be_bytes([h[2], h[3]])), (2, 2));
    assert_eq!(u32::from_be_bytes([h[8], h[9], h[10], h[11]]), 0xdead);
    frps.stop().await;
}

/// A Go frpc writes a UDPPacket of any size (frp 0.70's v1 writer has no limit): frps skips one
/// over the message limit with a warning, and the same work connection carries the next one.
#[tokio::test]
async fn oversized_udp_packet_from_frpc_is_skipped_alone() {
    init_log();
    let frps = Frps::start(|c| {
        c.transport.tcp_mux = false;
        c.udp_packet_size = 10240;
    })
    .await;
    let (mut ctl, run_id) = raw_login(frps.addr, 0).await;
    let np = NewProxy {
        proxy_name: "dns".into(),
        proxy_type: "udp".into(),
        ..Default::default()
    };
    write_msg(&mut ctl, &np.into()).await.unwrap();
    let Message::NewProxyResp(resp) = next(&mut ctl).await else {
        panic!("NewProxyResp expected")
    };
    assert!(resp.error.is_empty(), "{resp:?}");
    let port: u16 = resp.remote_addr.trim_start_matches(':').parse().unwrap();
    // The udp proxy asks for its work connection by itself.
    assert!(matches!(next(&mut ctl).await, Message::ReqWorkConn(_)));
    let mut work = open_work_conn(frps.addr, &run_id).await;
    assert_eq!(start_work(&mut work).await.proxy_name, "dns");

    let user = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let user_addr = user.local_addr().unwrap();
    user.send_to(b"hi", ("127.0.0.1", port)).await.unwrap();
    let Message::UdpPacket(p) = tokio::time::timeout(PATIENCE, read_msg(&mut work))
        .await
        .unwrap()
        .unwrap()
    else {
        panic!("UDPPacket expected")
    };
    assert_eq!(p.content, b"hi");
    assert_eq!(p.remote_addr.unwrap().to_socket_addr(), Some(user_addr));

    let big = raw_udp_frame(&pattern(9000, 1), user_addr);
    assert!(big.len() > 9 + MAX_MSG_LEN);
    work.write_all(&big).await.unwrap();
    work.write_all(&raw_udp_frame(b"after", user_addr))
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = tokio::time::timeout(PATIENCE, user.recv_from(&mut buf))
        .await
        .expect("the datagram after the oversized one arrives")
        .unwrap();
    assert_eq!(&buf[..n], b"after");
    frps.stop().await;
}
