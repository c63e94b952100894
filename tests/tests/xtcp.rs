//! xtcp (P2P): an xtcp proxy on one frpc, reached peer to peer by a visitor on another after
//! hole punching arranged by frps (frp `client/visitor/xtcp.go`, `client/proxy/xtcp.go`,
//! `pkg/nathole/`; frp-protocol.md §10.2). Both frpc discover their addresses from a STUN
//! responder in the harness (Binding with XOR-MAPPED-ADDRESS and OTHER-ADDRESS), so on one
//! host the punch succeeds at once. The raw tests speak frp's frames as a Go frpc does.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::auth::{auth_key, unix_now};
use common::config::{ClientConfig, ProxyConfig, VisitorConfig};
use common::msg::{read_msg, write_msg, Message, NatHoleResp, NatHoleVisitor, NewProxy};
use std::net::SocketAddr;
use std::time::Duration;
use tests::*;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpStream, UdpSocket};

const SK: &str = "p2p-s3cret";

fn xtcp_proxy(name: &str, local: SocketAddr) -> ProxyConfig {
    let mut p = proxy(name, "xtcp", local, 0);
    p.secret_key.0 = SK.into();
    p
}

fn visitor(name: &str, kind: &str, server_name: &str, port: i32) -> VisitorConfig {
    let mut v = VisitorConfig {
        name: name.into(),
        kind: kind.into(),
        server_name: server_name.into(),
        bind_addr: "127.0.0.1".into(),
        bind_port: port,
        ..Default::default()
    };
    if kind == "xtcp" {
        v.protocol = "quic".into();
        v.max_retries_an_hour = 8;
        v.min_retry_interval = 90;
        v.fallback_timeout_ms = 1000;
    }
    v.secret_key.0 = SK.into();
    v
}

/// An frpc with `f`'s config, once its proxies run and its visitors listen.
async fn start(frps: SocketAddr, stun: SocketAddr, f: impl FnOnce(&mut ClientConfig)) -> Frpc {
    let mut cfg = client_config(frps);
    cfg.nat_hole_stun_server = stun.to_string();
    f(&mut cfg);
    let proxies: Vec<String> = cfg.proxies.iter().map(|p| p.name.clone()).collect();
    let visitors: Vec<String> = cfg.active_visitors().map(|v| v.name.clone()).collect();
    let frpc = Frpc::run(frpc::Client::new(cfg));
    for n in proxies {
        frpc.wait_running(&n).await;
    }
    for n in visitors {
        frpc.wait_visitor(&n).await;
    }
    frpc
}

/// frpc's count of hole punches by `side`, `name` and `result`.
fn punches(frpc: &Frpc, side: &str, name: &str, result: &str) -> f64 {
    let want = format!(
        "frp_rs_client_xtcp_punches_total{{name=\"{name}\",result=\"{result}\",side=\"{side}\"}}"
    );
    frpc.metrics
        .render()
        .lines()
        .find(|l| l.starts_with(&want))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn wait_punches(frpc: &Frpc, side: &str, name: &str, result: &str, n: f64) {
    wait_until(&format!("{side} {name} punch {result} x{n}"), || async {
        punches(frpc, side, name, result) >= n
    })
    .await;
}

/// 10 MiB each way through an xtcp tunnel, plain and with encryption and compression (both
/// sides set alike, as frp requires); a second connection reuses the tunnel.
#[tokio::test]
async fn xtcp_echo_10_mib_plain_and_encrypted_compressed() {
    echo_10_mib("quic").await;
}

/// The same over KCP (`protocol = "kcp"`): kcp-go's conversation 1 with FEC over the punched
/// socket, yamux over it, one yamux stream per user connection.
#[tokio::test]
async fn xtcp_over_kcp_echo_10_mib_plain_and_encrypted_compressed() {
    echo_10_mib("kcp").await;
}

async fn echo_10_mib(protocol: &str) {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let stun = stun_pair().await;
    let echo = echo_tcp().await;
    let server = start(frps.addr, stun, |c| {
        c.proxies.push(xtcp_proxy("p2p", echo));
        let mut p = xtcp_proxy("p2p-layers", echo);
        p.transport.use_encryption = true;
        p.transport.use_compression = true;
        c.proxies.push(p);
    })
    .await;
    let (a, b) = (free_port().await, free_port().await);
    let client = start(frps.addr, stun, |c| {
        let mut v = visitor("x", "xtcp", "p2p", i32::from(a));
        v.protocol = protocol.into();
        c.visitors.push(v);
        let mut v = visitor("x-layers", "xtcp", "p2p-layers", i32::from(b));
        v.protocol = protocol.into();
        v.transport.use_encryption = true;
        v.transport.use_compression = true;
        c.visitors.push(v);
    })
    .await;
    let data = pattern(10 << 20, 7);
    for port in [a, b] {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        assert!(
            echo_through(addr, &data).await == data,
            "echo through {port}"
        );
        assert_eq!(echo_through(addr, b"again").await, b"again");
    }
    for name in ["x", "x-layers"] {
        assert_eq!(
            punches(&client, "visitor", name, "ok"),
            1.0,
            "{name}: one tunnel"
        );
    }
    assert_eq!(punches(&server, "proxy", "p2p", "ok"), 1.0);
    assert_eq!(punches(&server, "proxy", "p2p-layers", "ok"), 1.0);
    client.stop().await;
    server.stop().await;
    frps.stop().await;
}

/// Without a working tunnel in `fallbackTimeoutMs`, the xtcp visitor hands the user
/// connection to its `fallbackTo` stcp visitor (here the proxy side's STUN server never
/// answers, so the punch cannot start); frps's session for the attempt ends on its own.
#[tokio::test]
async fn xtcp_falls_back_to_stcp() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let stun = stun_pair().await;
    // Bound, never answering: the proxy side's discovery times out.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let echo = echo_tcp().await;
    let server = start(frps.addr, silent.local_addr().unwrap(), |c| {
        c.proxies.push(xtcp_proxy("p2p", echo));
        let mut s = proxy("relay", "stcp", echo, 0);
        s.secret_key.0 = SK.into();
        c.proxies.push(s);
    })
    .await;
    let port = free_port().await;
    let client = start(frps.addr, stun, |c| {
        c.visitors.push(visitor("fb", "stcp", "relay", -1));
        let mut v = visitor("x", "xtcp", "p2p", i32::from(port));
        v.fallback_to = "fb".into();
        v.fallback_timeout_ms = 500;
        c.visitors.push(v);
    })
    .await;
    let data = pattern(1 << 20, 3);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    assert!(echo_through(addr, &data).await == data);
    wait_punches(&server, "proxy", "p2p", "stun", 1.0).await;
    assert_eq!(punches(&client, "visitor", "x", "ok"), 0.0);
    wait_until("frps ends the session", || async {
        frps.stats.nathole_counts().1 == 0
    })
    .await;
    client.stop().await;
    server.stop().await;
    frps.stop().await;
}

/// A wrong secretKey is refused by frps at the exchange, a visitor user not in allowUsers at
/// the pre-check; neither makes a tunnel nor leaves a session on frps. A listed user works.
#[tokio::test]
async fn wrong_key_and_user_not_allowed_are_refused() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let stun = stun_pair().await;
    let echo = echo_tcp().await;
    let server = start(frps.addr, stun, |c| {
        c.user = "alice".into();
        let mut p = xtcp_proxy("p2p", echo);
        p.allow_users = vec!["bob".into()];
        c.proxies.push(p);
    })
    .await;
    let port = free_port().await;
    let mk = |name: &str, sk: &str, port: i32| {
        let mut v = visitor(name, "xtcp", "p2p", port);
        v.server_user = "alice".into();
        v.secret_key.0 = sk.into();
        v.keep_tunnel_open = true;
        v
    };
    let bob = start(frps.addr, stun, |c| {
        c.user = "bob".into();
        c.visitors.push(mk("wrong-key", "nope", -1));
        c.visitors.push(mk("right", SK, i32::from(port)));
    })
    .await;
    let carol = start(frps.addr, stun, |c| {
        c.user = "carol".into();
        c.visitors.push(mk("not-allowed", SK, -1));
    })
    .await;
    wait_punches(&bob, "visitor", "wrong-key", "exchange", 1.0).await;
    wait_punches(&carol, "visitor", "not-allowed", "precheck", 1.0).await;
    wait_punches(&bob, "visitor", "right", "ok", 1.0).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    assert_eq!(
        echo_through(addr, b"bob is allowed").await,
        b"bob is allowed"
    );
    assert_eq!(punches(&bob, "visitor", "wrong-key", "ok"), 0.0);
    assert_eq!(punches(&carol, "visitor", "not-allowed", "ok"), 0.0);
    // Only bob's good session reached the proxy side.
    assert_eq!(punches(&server, "proxy", "p2p", "ok"), 1.0);
    let text = frps.stats.metrics_text();
    for reason in ["auth", "user_not_allowed"] {
        let series =
            format!("frp_rs_server_refusals_total{{reason=\"{reason}\",what=\"xtcp_visitor\"}}");
        assert!(
            text.lines().any(|l| l.starts_with(&series)),
            "{series} in\n{text}"
        );
    }
    carol.stop().await;
    bob.stop().await;
    wait_until("no session left on frps", || async {
        frps.stats.nathole_counts().1 == 0
    })
    .await;
    server.stop().await;
    frps.stop().await;
}

/// keepTunnelOpen makes the tunnel before any user comes, and every user connection then
/// uses it (one punch for many connections).
#[tokio::test]
async fn keep_tunnel_open_reuses_the_tunnel() {
    keep_tunnel_open("quic").await;
}

/// The same over KCP: the yamux session over KCP is kept and serves every connection.
#[tokio::test]
async fn keep_tunnel_open_reuses_the_kcp_tunnel() {
    keep_tunnel_open("kcp").await;
}

async fn keep_tunnel_open(protocol: &str) {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let stun = stun_pair().await;
    let echo = echo_tcp().await;
    let server = start(frps.addr, stun, |c| c.proxies.push(xtcp_proxy("p2p", echo))).await;
    let port = free_port().await;
    let client = start(frps.addr, stun, |c| {
        let mut v = visitor("x", "xtcp", "p2p", i32::from(port));
        v.keep_tunnel_open = true;
        v.min_retry_interval = 1;
        v.protocol = protocol.into();
        c.visitors.push(v);
    })
    .await;
    wait_punches(&client, "visitor", "x", "ok", 1.0).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    for i in 0..5u8 {
        let msg = [b'm', i];
        assert_eq!(echo_through(addr, &msg).await, msg);
    }
    assert_eq!(punches(&client, "visitor", "x", "ok"), 1.0);
    assert_eq!(punches(&server, "proxy", "p2p", "ok"), 1.0);
    client.stop().await;
    server.stop().await;
    frps.stop().await;
}

/// A STUN "server" whose answers come from another socket than the one asked (frpc ignores
/// them and times out), and one whose answer has a truncated attribute: each ends that
/// attempt at discovery, before frps is asked for a session.
#[tokio::test]
async fn bad_stun_replies_end_the_attempt() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let stun = stun_pair().await;
    let echo = echo_tcp().await;
    let server = start(frps.addr, stun, |c| c.proxies.push(xtcp_proxy("p2p", echo))).await;
    // Answers from a second socket.
    let asked = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let wrong_source = asked.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = asked.recv_from(&mut buf).await {
            let id: [u8; 12] = buf[8..20.min(n)].try_into().unwrap_or_default();
            let answer = frpc::nathole::binding_success(id, from, None);
            let _ = other.send_to(&answer, from).await;
        }
    });
    // Answers with an attribute longer than the message.
    let bad = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bad_attrs = bad.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = bad.recv_from(&mut buf).await {
            let id: [u8; 12] = buf[8..20.min(n)].try_into().unwrap_or_default();
            let mut answer = frpc::nathole::binding_success(id, from, None);
            answer[22..24].copy_from_slice(&200u16.to_be_bytes());
            let _ = bad.send_to(&answer, from).await;
        }
    });
    let mk = |name: &str| {
        let mut v = visitor(name, "xtcp", "p2p", -1);
        v.keep_tunnel_open = true;
        v
    };
    let a = start(frps.addr, wrong_source, |c| c.visitors.push(mk("a"))).await;
    let b = start(frps.addr, bad_attrs, |c| c.visitors.push(mk("b"))).await;
    wait_punches(&a, "visitor", "a", "stun", 1.0).await;
    wait_punches(&b, "visitor", "b", "stun", 1.0).await;
    assert_eq!(frps.stats.nathole_counts(), (1, 0), "one proxy, no session");
    assert_eq!(punches(&server, "proxy", "p2p", "ok"), 0.0);
    a.stop().await;
    b.stop().await;
    server.stop().await;
    frps.stop().await;
}

/// The next message on a raw control that `pick` accepts (others, such as ReqWorkConn, are
/// set aside in `seen`).
async fn next<T>(
    ctl: &mut RawControl,
    seen: &mut Vec<Message>,
    mut pick: impl FnMut(&Message) -> Option<T>,
) -> T {
    if let Some(i) = seen.iter().position(|m| pick(m).is_some()) {
        return pick(&seen.remove(i)).unwrap();
    }
    loop {
        let m = tokio::time::timeout(PATIENCE, read_msg(ctl))
            .await
            .expect("message in time")
            .expect("message");
        if let Some(t) = pick(&m) {
            return t;
        }
        seen.push(m);
    }
}

fn nat_resp(tid: &str) -> impl FnMut(&Message) -> Option<NatHoleResp> + '_ {
    move |m| match m {
        Message::NatHoleResp(r) if r.transaction_id == tid => Some(r.clone()),
        _ => None,
    }
}

/// A Go frpc's answer to ReqWorkConn on an xtcp proxy: a work connection, NewWorkConn, then
/// what frps sends on it (StartWorkConn, the NatHoleSid's sid); the connection is returned.
async fn sid_from_work_conn(
    frps: SocketAddr,
    run_id: &str,
) -> (common::msg::StartWorkConn, String, TcpStream) {
    let mut work = TcpStream::connect(frps).await.unwrap();
    let nwc = common::msg::NewWorkConn {
        run_id: run_id.into(),
        ..Default::default()
    };
    write_msg(&mut work, &nwc.into()).await.unwrap();
    let mut next = async || {
        tokio::time::timeout(PATIENCE, read_msg(&mut work))
            .await
            .unwrap()
            .unwrap()
    };
    let Message::StartWorkConn(start) = next().await else {
        panic!("StartWorkConn expected")
    };
    let Message::NatHoleSid(m) = next().await else {
        panic!("NatHoleSid expected")
    };
    (start, m.sid, work)
}

fn signed_visitor(tid: &str, name: &str, sk: &str, mapped: &[String]) -> NatHoleVisitor {
    let ts = unix_now();
    NatHoleVisitor {
        transaction_id: tid.into(),
        proxy_name: name.into(),
        protocol: "quic".into(),
        sign_key: auth_key(sk, ts),
        timestamp: ts,
        mapped_addrs: mapped.to_vec(),
        ..Default::default()
    }
}

/// A Go frpc logged in as user alice with the xtcp proxy `alice.p2p` (key [`SK`]) that
/// `allowed` may visit: its control, run_id and the messages read past so far.
async fn raw_xtcp_owner(frps: SocketAddr, allowed: &str) -> (RawControl, String, Vec<Message>) {
    let (mut alice, alice_run) = raw_login_as(frps, login("alice")).await;
    let mut alice_seen = Vec::new();
    let np = NewProxy {
        proxy_name: "alice.p2p".into(),
        proxy_type: "xtcp".into(),
        sk: SK.into(),
        allow_users: vec![allowed.into()],
        ..Default::default()
    };
    write_msg(&mut alice, &np.into()).await.unwrap();
    let r = next(&mut alice, &mut alice_seen, |m| match m {
        Message::NewProxyResp(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert!(r.error.is_empty() && r.remote_addr.is_empty(), "{r:?}");
    (alice, alice_run, alice_seen)
}

fn login(user: &str) -> common::msg::Login {
    common::msg::Login {
        user: user.into(),
        ..Default::default()
    }
}

/// frps against two fake Go frpc speaking frp's frames: pre-check answers (frp's texts), a
/// wrong sign key, then the whole flow: ReqWorkConn, StartWorkConn + NatHoleSid on the work
/// connection (then closed), NatHoleClient, and a NatHoleResp to each side with the other's
/// addresses and frp's behaviours for two easy NATs (the proxy side sends, the visitor
/// receives with TTL 7), then NatHoleReport. The session is gone once the visitor leaves.
#[tokio::test]
async fn raw_go_frpc_nathole_flow() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let (mut alice, alice_run, mut alice_seen) = raw_xtcp_owner(frps.addr, "bob").await;
    let (mut bob, _) = raw_login_as(frps.addr, login("bob")).await;
    let mut bob_seen = Vec::new();
    let (mut carol, _) = raw_login_as(frps.addr, login("carol")).await;
    let mut carol_seen = Vec::new();
    let pre = |tid: &str, name: &str| NatHoleVisitor {
        transaction_id: tid.into(),
        proxy_name: name.into(),
        pre_check: true,
        ..Default::default()
    };
    for (is_bob, m, want) in [
        (
            true,
            pre("t1", "alice.nope"),
            "xtcp server for [alice.nope] doesn't exist",
        ),
        (
            false,
            pre("t2", "alice.p2p"),
            "xtcp visitor user [carol] not allowed for [alice.p2p]",
        ),
        (true, pre("t3", "alice.p2p"), ""),
    ] {
        let (ctl, seen) = if is_bob {
            (&mut bob, &mut bob_seen)
        } else {
            (&mut carol, &mut carol_seen)
        };
        let tid = m.transaction_id.clone();
        write_msg(ctl, &m.into()).await.unwrap();
        let r = next(ctl, seen, nat_resp(&tid)).await;
        assert_eq!(r.error, want);
        assert!(r.sid.is_empty());
    }
    let v_addrs = vec!["127.0.0.1:40001".to_string(), "127.0.0.1:40001".to_string()];
    let bad = signed_visitor("t4", "alice.p2p", "wrong", &v_addrs);
    write_msg(&mut bob, &bad.into()).await.unwrap();
    let r = next(&mut bob, &mut bob_seen, nat_resp("t4")).await;
    assert_eq!(r.error, "xtcp connection of [alice.p2p] auth failed");
    // frp checks allowUsers at the pre-check only; a visitor that skips it is refused too.
    let skip = signed_visitor("t4b", "alice.p2p", SK, &v_addrs);
    write_msg(&mut carol, &skip.into()).await.unwrap();
    let r = next(&mut carol, &mut carol_seen, nat_resp("t4b")).await;
    assert_eq!(
        r.error,
        "xtcp visitor user [carol] not allowed for [alice.p2p]"
    );
    assert_eq!(frps.stats.nathole_counts(), (1, 0));

    // The real request: frps asks alice's frpc for a work connection.
    let good = signed_visitor("t5", "alice.p2p", SK, &v_addrs);
    write_msg(&mut bob, &good.into()).await.unwrap();
    next(&mut alice, &mut alice_seen, |m| {
        matches!(m, Message::ReqWorkConn(_)).then_some(())
    })
    .await;
    let (s, sid, mut work) = sid_from_work_conn(frps.addr, &alice_run).await;
    assert_eq!(s.proxy_name, "alice.p2p");
    assert!(
        sid.len() > 16 && sid[..10].chars().all(|c| c.is_ascii_digit()),
        "{sid}"
    );
    let mut rest = Vec::new();
    let n = tokio::time::timeout(PATIENCE, work.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "frps closes the work connection after the sid");
    assert_eq!(frps.stats.nathole_counts(), (1, 1));

    // Another client that learnt the sid cannot answer for alice's proxy (frp would take its
    // addresses and send the visitor there).
    let evil = common::msg::NatHoleClient {
        transaction_id: "evil".into(),
        proxy_name: "alice.p2p".into(),
        sid: sid.clone(),
        mapped_addrs: vec!["127.0.0.1:40666".into(), "127.0.0.1:40666".into()],
        assisted_addrs: vec![],
    };
    write_msg(&mut carol, &evil.into()).await.unwrap();
    let c_addrs = vec!["127.0.0.1:40002".to_string(), "127.0.0.1:40002".to_string()];
    let nhc = common::msg::NatHoleClient {
        transaction_id: "c1".into(),
        proxy_name: "alice.p2p".into(),
        sid: sid.clone(),
        mapped_addrs: c_addrs.clone(),
        assisted_addrs: vec!["192.0.2.10:40002".into()],
    };
    write_msg(&mut alice, &nhc.into()).await.unwrap();
    let v = next(&mut bob, &mut bob_seen, nat_resp("t5")).await;
    let c = next(&mut alice, &mut alice_seen, nat_resp("c1")).await;
    for r in [&v, &c] {
        assert_eq!(
            (r.sid.as_str(), r.protocol.as_str(), r.error.as_str()),
            (sid.as_str(), "quic", "")
        );
        assert_eq!(r.detect_behavior.mode, 0);
        assert_eq!(r.detect_behavior.read_timeout, 5000);
    }
    assert_eq!(v.candidate_addrs, vec!["127.0.0.1:40002".to_string()]);
    assert_eq!(v.assisted_addrs, vec!["192.0.2.10:40002".to_string()]);
    assert_eq!(c.candidate_addrs, vec!["127.0.0.1:40001".to_string()]);
    assert_eq!(
        (c.detect_behavior.role.as_str(), c.detect_behavior.ttl),
        ("sender", 0)
    );
    assert_eq!(
        (v.detect_behavior.role.as_str(), v.detect_behavior.ttl),
        ("receiver", 7)
    );
    let report = common::msg::NatHoleReport { sid, success: true };
    write_msg(&mut alice, &report.into()).await.unwrap();
    // The session is kept for reports until the visitor's control goes.
    drop(bob);
    wait_until("session removed", || async {
        frps.stats.nathole_counts().1 == 0
    })
    .await;
    drop((alice, carol));
    frps.stop().await;
}

/// Our frpc's proxy side against a fake Go visitor: its punch datagrams are frp's (decoded
/// with frp's key and framing, carrying the session's sid); garbage, a wrong sid and a
/// non-answer from the visitor are ignored; without an answer the punch ends at its read
/// timeout, reported to frps as failed, and its UDP port is closed.
#[tokio::test]
async fn raw_go_visitor_garbage_and_a_punch_that_never_completes() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let stun = stun_pair().await;
    let echo = echo_tcp().await;
    let server = start(frps.addr, stun, |c| {
        c.transport.tcp_mux = false;
        c.proxies.push(xtcp_proxy("p2p", echo));
    })
    .await;
    let (mut bob, _) = raw_login(frps.addr, 0).await;
    let mut seen = Vec::new();
    let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = u.local_addr().unwrap().to_string();
    let m = signed_visitor("v1", "p2p", SK, &[me.clone(), me]);
    write_msg(&mut bob, &m.into()).await.unwrap();
    let r = next(&mut bob, &mut seen, nat_resp("v1")).await;
    assert!(r.error.is_empty(), "{r:?}");
    assert_eq!(r.detect_behavior.role, "receiver");
    // The proxy side sends; its datagrams are frp's punch datagrams.
    let key = common::nathole::punch_key(SK);
    let mut buf = [0u8; 1500];
    let (n, frpc_addr) = tokio::time::timeout(PATIENCE, u.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let punch = common::nathole::decode_punch(&buf[..n], &key).unwrap();
    assert_eq!(punch.sid, r.sid);
    assert!(!punch.response && punch.nonce.len() < 20 && punch.nonce.bytes().all(|b| b == b'0'));
    // Garbage, a wrong sid, a non-answer: none completes the punch.
    u.send_to(b"garbage", frpc_addr).await.unwrap();
    u.send_to(&[0u8; 300], frpc_addr).await.unwrap();
    let mut other = punch.clone();
    other.sid = "1700000000deadbeefdeadbeef".into();
    other.response = true;
    u.send_to(&common::nathole::encode_punch(&other, &key), frpc_addr)
        .await
        .unwrap();
    u.send_to(&common::nathole::encode_punch(&punch, &key), frpc_addr)
        .await
        .unwrap();
    wait_punches(&server, "proxy", "p2p", "punch", 1.0).await;
    assert_eq!(punches(&server, "proxy", "p2p", "ok"), 0.0);
    // Its socket is closed: a datagram to it is refused (ICMP port unreachable).
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    probe.connect(frpc_addr).await.unwrap();
    let refused = tokio::time::timeout(PATIENCE, async {
        loop {
            let _ = probe.send(b"x").await;
            match tokio::time::timeout(Duration::from_millis(200), probe.recv(&mut buf)).await {
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
                _ => continue,
            }
        }
    })
    .await;
    assert!(refused.is_ok(), "the punching socket is still open");
    drop(bob);
    wait_until("session removed", || async {
        frps.stats.nathole_counts().1 == 0
    })
    .await;
    server.stop().await;
    frps.stop().await;
}

/// The proxy side on wire v2 and the visitor on v1 (the sid travels in the proxy side's
/// framing; punch datagrams are v1 whatever the wire).
#[tokio::test]
async fn xtcp_proxy_v2_visitor_v1() {
    proxy_v2_visitor_v1("quic").await;
}

/// The same over KCP.
#[tokio::test]
async fn xtcp_over_kcp_proxy_v2_visitor_v1() {
    proxy_v2_visitor_v1("kcp").await;
}

async fn proxy_v2_visitor_v1(protocol: &str) {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let stun = stun_pair().await;
    let echo = echo_tcp().await;
    let server = start(frps.addr, stun, |c| {
        c.transport.wire_protocol = "v2".into();
        c.proxies.push(xtcp_proxy("p2p", echo));
    })
    .await;
    let port = free_port().await;
    let client = start(frps.addr, stun, |c| {
        let mut v = visitor("x", "xtcp", "p2p", i32::from(port));
        v.protocol = protocol.into();
        c.visitors.push(v);
    })
    .await;
    let data = pattern(1 << 20, 9);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    assert!(echo_through(addr, &data).await == data);
    client.stop().await;
    server.stop().await;
    frps.stop().await;
}

/// Real binaries from config files: the proxy side on v1 with allowUsers, the visitor on v2
/// with encryption on both sides.
#[tokio::test]
async fn real_binaries_xtcp() {
    init_log();
    let dir = procs::tempdir("xtcp-bin");
    let (_frps, port) = procs::start_frps(&dir, &format!("auth.token = \"{TOKEN}\"\n")).await;
    let stun = stun_pair().await;
    let echo = echo_tcp().await;
    let head = format!("serverAddr = \"127.0.0.1\"\nserverPort = {port}\nauth.token = \"{TOKEN}\"\nnatHoleStunServer = \"{stun}\"\n");
    let server_cfg = procs::write(
        &dir,
        "server.toml",
        &format!(
            "{head}user = \"home\"\n[[proxies]]\nname = \"ssh\"\ntype = \"xtcp\"\nsecretKey = \"{SK}\"\nlocalIP = \"127.0.0.1\"\nlocalPort = {}\nallowUsers = [\"laptop\"]\ntransport.useEncryption = true\n",
            echo.port()
        ),
    );
    let tp = free_port().await;
    let visitor_cfg = procs::write(
        &dir,
        "visitor.toml",
        &format!(
            "{head}user = \"laptop\"\ntransport.wireProtocol = \"v2\"\n\
             [[visitors]]\nname = \"ssh-v\"\ntype = \"xtcp\"\nserverUser = \"home\"\nserverName = \"ssh\"\nsecretKey = \"{SK}\"\nbindPort = {tp}\ntransport.useEncryption = true\n"
        ),
    );
    let _server = procs::spawn("frpc", &["-c", &server_cfg]);
    let _visitor = procs::spawn("frpc", &["-c", &visitor_cfg]);
    // The proxy may register after the visitor's first attempt: retry until a tunnel works.
    let addr: SocketAddr = ([127, 0, 0, 1], tp).into();
    wait_tunnel(addr).await;
    let data = pattern(2 << 20, 13);
    assert!(echo_through(addr, &data).await == data);
    let _ = std::fs::remove_dir_all(dir);
}

/// frpc's admin API lists the xtcp visitor (`/api/status`, its config), frps's dashboard the
/// xtcp proxy with frp's fields, and a reload that moves the visitor's port is applied (the
/// old port freed, the new one tunnels).
#[tokio::test]
async fn admin_api_dashboard_and_reload_show_xtcp() {
    use hyper::Method;
    init_log();
    let dash = free_port().await;
    let frps = Frps::start(|c| {
        c.web_server.addr = "127.0.0.1".into();
        c.web_server.port = dash;
    })
    .await;
    let stun = stun_pair().await;
    let echo = echo_tcp().await;
    let server = start(frps.addr, stun, |c| {
        let mut p = xtcp_proxy("p2p", echo);
        p.allow_users = vec!["*".into()];
        c.proxies.push(p);
    })
    .await;
    let (admin, p1, p2) = (free_port().await, free_port().await, free_port().await);
    let dir = temp_dir("xtcp-admin");
    let file = dir.join("frpc.toml");
    let write = |port: u16| {
        std::fs::write(
            &file,
            format!(
                "serverAddr = \"127.0.0.1\"\nserverPort = {}\nauth.token = \"{TOKEN}\"\nnatHoleStunServer = \"{stun}\"\nwebServer.addr = \"127.0.0.1\"\nwebServer.port = {admin}\n\
                 [[visitors]]\nname = \"x\"\ntype = \"xtcp\"\nserverName = \"p2p\"\nsecretKey = \"{SK}\"\nbindPort = {port}\n",
                frps.addr.port(),
            ),
        )
        .unwrap()
    };
    write(p1);
    let client = Frpc::run(client_from_file(&file));
    client.wait_visitor("x").await;
    let admin_addr: SocketAddr = ([127, 0, 0, 1], admin).into();
    let (code, status) = api(admin_addr, Method::GET, "/api/status", "").await;
    assert_eq!(code, 200);
    assert_eq!(status["visitors"][0]["name"], "x");
    assert_eq!(status["visitors"][0]["type"], "xtcp");
    assert_eq!(status["visitors"][0]["status"], "running");
    let (code, def) = api(admin_addr, Method::GET, "/api/visitor/x/config", "").await;
    assert_eq!(code, 200);
    assert_eq!(def["xtcp"]["serverName"], "p2p");
    let (code, list) = api(
        ([127, 0, 0, 1], dash).into(),
        Method::GET,
        "/api/proxy/xtcp",
        "",
    )
    .await;
    assert_eq!(code, 200);
    let p = &list["proxies"][0];
    assert_eq!(
        (&p["name"], &p["status"]),
        (&"p2p".into(), &"online".into())
    );
    assert_eq!(p["conf"]["allowUsers"], serde_json::json!(["*"]));
    assert!(
        p["conf"].get("secretKey").is_none(),
        "no secret in API answers"
    );
    let a: SocketAddr = ([127, 0, 0, 1], p1).into();
    assert_eq!(echo_through(a, b"before").await, b"before");
    // Reload with the visitor on another port.
    write(p2);
    let (code, _) = api(admin_addr, Method::GET, "/api/reload", "").await;
    assert_eq!(code, 200);
    let b: SocketAddr = ([127, 0, 0, 1], p2).into();
    wait_until("old port freed", || async {
        std::net::TcpListener::bind(a).is_ok()
    })
    .await;
    wait_tunnel(b).await;
    client.stop().await;
    server.stop().await;
    frps.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// `natTraversal.disableAssistedAddrs` on a proxy and on a visitor: frps passes each side's
/// assisted addresses (its own addresses with the punching port) to the other, and a side
/// with the key sends none. The STUN pair is on this host's non-loopback address so frpc has
/// an address to offer (frp leaves loopback out).
#[tokio::test]
async fn disable_assisted_addrs_on_proxy_and_visitor() {
    init_log();
    let Some(ip) = host_ipv4() else {
        eprintln!("no non-loopback IPv4 address on this host: nothing to check");
        return;
    };
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let stun = stun_pair_at(ip).await;
    let echo = echo_tcp().await;
    // The proxy key: our frpc's proxies, a fake Go visitor reading what frps tells it.
    let server = start(frps.addr, stun, |c| {
        c.transport.tcp_mux = false;
        c.proxies.push(xtcp_proxy("on", echo));
        let mut p = xtcp_proxy("off", echo);
        p.nat_traversal.disable_assisted_addrs = true;
        c.proxies.push(p);
    })
    .await;
    let (mut fake, _) = raw_login(frps.addr, 0).await;
    let mut seen = Vec::new();
    let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = u.local_addr().unwrap().to_string();
    let mut assisted = Vec::new();
    for name in ["on", "off"] {
        let m = signed_visitor(name, name, SK, &[me.clone(), me.clone()]);
        write_msg(&mut fake, &m.into()).await.unwrap();
        let r = next(&mut fake, &mut seen, nat_resp(name)).await;
        assert!(r.error.is_empty(), "{r:?}");
        assisted.push(r.assisted_addrs);
    }
    assert!(
        assisted[0].len() == 1 && assisted[0][0].starts_with(&format!("{ip}:")),
        "{assisted:?}"
    );
    assert!(assisted[1].is_empty(), "{assisted:?}");
    drop(fake);
    server.stop().await;

    // The visitor key: a fake Go frpc owns the proxy, our frpc's visitors ask for it.
    let (mut owner, run_id) = raw_login(frps.addr, 0).await;
    let mut owner_seen = Vec::new();
    let np = NewProxy {
        proxy_name: "q".into(),
        proxy_type: "xtcp".into(),
        sk: SK.into(),
        allow_users: vec!["*".into()],
        ..Default::default()
    };
    write_msg(&mut owner, &np.into()).await.unwrap();
    next(&mut owner, &mut owner_seen, |m| {
        matches!(m, Message::NewProxyResp(_)).then_some(())
    })
    .await;
    let client = start(frps.addr, stun, |c| {
        c.transport.tcp_mux = false;
        for (name, off) in [("v-on", false), ("v-off", true)] {
            let mut v = visitor(name, "xtcp", "q", -1);
            v.keep_tunnel_open = true;
            v.nat_traversal.disable_assisted_addrs = off;
            c.visitors.push(v);
        }
    })
    .await;
    let mut got = Vec::new();
    for i in 0..2 {
        next(&mut owner, &mut owner_seen, |m| {
            matches!(m, Message::ReqWorkConn(_)).then_some(())
        })
        .await;
        let (_, sid, _work) = sid_from_work_conn(frps.addr, &run_id).await;
        let tid = format!("c{i}");
        let nhc = common::msg::NatHoleClient {
            transaction_id: tid.clone(),
            proxy_name: "q".into(),
            sid,
            mapped_addrs: vec![me.clone(), me.clone()],
            assisted_addrs: vec![],
        };
        write_msg(&mut owner, &nhc.into()).await.unwrap();
        let r = next(&mut owner, &mut owner_seen, nat_resp(&tid)).await;
        assert!(r.error.is_empty(), "{r:?}");
        got.push(r.assisted_addrs.len());
    }
    got.sort_unstable();
    assert_eq!(
        got,
        vec![0, 1],
        "one visitor offers its address, the other none"
    );
    client.stop().await;
    drop(owner);
    frps.stop().await;
}

/// A reload that removes an xtcp proxy closes its tunnel at once: a connection held through
/// it ends (the removed proxy is no longer reachable) and the visitor's next user connection
/// is not lost on the dead tunnel but handed to its `fallbackTo` stcp visitor.
#[tokio::test]
async fn reload_removing_the_proxy_closes_its_tunnel_at_once() {
    use hyper::Method;
    use tokio::io::AsyncWriteExt;
    init_log();
    let frps = Frps::start(|_| {}).await;
    let stun = stun_pair().await;
    let echo = echo_tcp().await;
    let admin = free_port().await;
    let dir = temp_dir("xtcp-reload-remove");
    let file = dir.join("frpc.toml");
    let write = |with_xtcp: bool| {
        let mut s = format!(
            "serverAddr = \"127.0.0.1\"\nserverPort = {}\nauth.token = \"{TOKEN}\"\nnatHoleStunServer = \"{stun}\"\nwebServer.addr = \"127.0.0.1\"\nwebServer.port = {admin}\n\
             [[proxies]]\nname = \"relay\"\ntype = \"stcp\"\nsecretKey = \"{SK}\"\nlocalIP = \"127.0.0.1\"\nlocalPort = {}\n",
            frps.addr.port(),
            echo.port(),
        );
        if with_xtcp {
            s += &format!(
                "[[proxies]]\nname = \"p2p\"\ntype = \"xtcp\"\nsecretKey = \"{SK}\"\nlocalIP = \"127.0.0.1\"\nlocalPort = {}\n",
                echo.port()
            );
        }
        std::fs::write(&file, s).unwrap()
    };
    write(true);
    let server = Frpc::run(client_from_file(&file));
    server.wait_running("p2p").await;
    server.wait_running("relay").await;
    let port = free_port().await;
    let client = start(frps.addr, stun, |c| {
        c.visitors.push(visitor("fb", "stcp", "relay", -1));
        let mut v = visitor("x", "xtcp", "p2p", i32::from(port));
        v.fallback_to = "fb".into();
        c.visitors.push(v);
    })
    .await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // The first connection may go through the fallback while the punch runs.
    assert_eq!(echo_through(addr, b"first").await, b"first");
    wait_punches(&client, "visitor", "x", "ok", 1.0).await;
    let mut held = TcpStream::connect(addr).await.unwrap();
    held.write_all(b"held").await.unwrap();
    let mut b = [0u8; 4];
    tokio::time::timeout(PATIENCE, held.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b, b"held");
    assert_eq!(punches(&client, "visitor", "x", "ok"), 1.0);
    write(false);
    let (code, _) = api(
        ([127, 0, 0, 1], admin).into(),
        Method::GET,
        "/api/reload",
        "",
    )
    .await;
    assert_eq!(code, 200);
    // The held connection ends without any new stream arriving on the tunnel.
    let ended = tokio::time::timeout(PATIENCE, held.read(&mut b)).await;
    assert!(
        matches!(ended, Ok(Ok(0)) | Ok(Err(_))),
        "the removed proxy's tunnel still carries a connection: {ended:?}"
    );
    // The next connection goes through the fallback, not into the closed tunnel.
    assert_eq!(echo_through(addr, b"after").await, b"after");
    client.stop().await;
    server.stop().await;
    frps.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A client that floods NatHoleVisitor requests and never reads its control: each request
/// would wait for room in its control's send queue, so frps bounds the requests in flight per
/// control (the rest are refused at once) instead of holding a task for each.
#[tokio::test]
async fn nathole_visitor_flood_from_a_client_that_does_not_read_is_bounded() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let before = frps.stats.tasks();
    let (ctl, _) = raw_login(frps.addr, 0).await;
    let mut ctl = ctl;
    let mut frame = Vec::new();
    let m: Message = signed_visitor("t", "nope", SK, &[]).into();
    for _ in 0..200 {
        let mut one = Vec::new();
        write_msg(&mut one, &m).await.unwrap();
        frame.extend_from_slice(&one);
    }
    // 100k requests, about 15 MB of answers that are never read.
    let mut most = 0;
    for _ in 0..500 {
        let sent = tokio::time::timeout(
            PATIENCE,
            tokio::io::AsyncWriteExt::write_all(&mut ctl, &frame),
        )
        .await;
        most = most.max(frps.stats.tasks());
        if sent.is_err() {
            break; // frps stopped reading: that bounds it too
        }
    }
    most = most.max(frps.stats.tasks());
    assert!(
        most <= before + 1 + 300,
        "frps holds {most} tasks (was {before}) for one client's requests"
    );
    drop(ctl);
    frps.stop().await;
}

/// A visitor (or proxy side) that lists hundreds of addresses cannot make frps hand them all
/// to the other frpc, which would send punch datagrams to each (at third parties): frps passes
/// on at most a few candidate and assisted addresses.
#[tokio::test]
async fn frps_passes_on_a_bounded_number_of_addresses() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let (mut alice, alice_run, mut alice_seen) = raw_xtcp_owner(frps.addr, "*").await;
    let (mut bob, _) = raw_login_as(frps.addr, login("bob")).await;
    let mut bob_seen = Vec::new();
    let many: Vec<String> = (0..200)
        .map(|i| format!("198.51.100.{}:{}", i % 250, 40000 + i))
        .collect();
    let mut m = signed_visitor("t1", "alice.p2p", SK, &many);
    m.assisted_addrs = many.clone();
    write_msg(&mut bob, &m.into()).await.unwrap();
    next(&mut alice, &mut alice_seen, |m| {
        matches!(m, Message::ReqWorkConn(_)).then_some(())
    })
    .await;
    let (_, sid, _work) = sid_from_work_conn(frps.addr, &alice_run).await;
    let nhc = common::msg::NatHoleClient {
        transaction_id: "c1".into(),
        proxy_name: "alice.p2p".into(),
        sid,
        mapped_addrs: many.clone(),
        assisted_addrs: many.clone(),
    };
    write_msg(&mut alice, &nhc.into()).await.unwrap();
    let v = next(&mut bob, &mut bob_seen, nat_resp("t1")).await;
    let c = next(&mut alice, &mut alice_seen, nat_resp("c1")).await;
    for r in [&v, &c] {
        assert!(r.error.is_empty(), "{r:?}");
        assert!(
            r.candidate_addrs.len() <= 16 && r.assisted_addrs.len() <= 16,
            "{} candidate and {} assisted addresses passed on",
            r.candidate_addrs.len(),
            r.assisted_addrs.len()
        );
        assert_eq!(r.candidate_addrs[0], many[0], "the first ones are kept");
    }
    drop((alice, bob));
    frps.stop().await;
}
