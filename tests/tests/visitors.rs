//! stcp and sudp: a secret proxy on one frpc, reached through frps by a visitor on another
//! (frp `client/visitor/`, `server/visitor/`; frp-protocol.md §8 and §10.1). The raw tests
//! build frp's frames by hand, as a Go frpc writes them.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::auth::{auth_key, unix_now};
use common::config::{ProxyConfig, VisitorConfig};
use common::msg::{v2, Message, NewVisitorConn, Wire};
use std::net::SocketAddr;
use tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const SK: &str = "s3cret";

fn secret_proxy(name: &str, kind: &str, local: SocketAddr) -> ProxyConfig {
    let mut p = proxy(name, kind, local, 0);
    p.secret_key.0 = SK.into();
    p
}

fn visitor(name: &str, kind: &str, server_name: &str, port: u16) -> VisitorConfig {
    let mut v = VisitorConfig {
        name: name.into(),
        kind: kind.into(),
        server_name: server_name.into(),
        bind_addr: "127.0.0.1".into(),
        bind_port: i32::from(port),
        ..Default::default()
    };
    v.secret_key.0 = SK.into();
    v
}

fn local(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

/// An frpc with the proxies `f` adds, once all of them run.
async fn start_proxies(
    frps: SocketAddr,
    f: impl FnOnce(&mut common::config::ClientConfig),
) -> Frpc {
    let mut cfg = client_config(frps);
    f(&mut cfg);
    let names: Vec<String> = cfg.proxies.iter().map(|p| p.name.clone()).collect();
    let frpc = Frpc::run(frpc::Client::new(cfg));
    for n in names {
        frpc.wait_running(&n).await;
    }
    frpc
}

/// An frpc with the visitors `f` adds, once all the enabled ones listen.
async fn start_visitors(
    frps: SocketAddr,
    f: impl FnOnce(&mut common::config::ClientConfig),
) -> Frpc {
    let mut cfg = client_config(frps);
    f(&mut cfg);
    let names: Vec<String> = cfg.active_visitors().map(|v| v.name.clone()).collect();
    let frpc = Frpc::run(frpc::Client::new(cfg));
    for n in names {
        frpc.wait_visitor(&n).await;
    }
    frpc
}

/// Connects through a visitor and expects the connection to be closed without data (the
/// visitor connection was refused).
async fn expect_closed(addr: SocketAddr) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(b"hello").await;
    let mut b = [0u8; 16];
    let n = tokio::time::timeout(PATIENCE, s.read(&mut b))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "a refused visitor connection carries nothing");
}

/// The value of a metric line starting with `prefix` in Prometheus text.
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn stcp_echo_10_mib_plain_encrypted_compressed_both() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let server = start_proxies(frps.addr, |c| {
        c.proxies.push(secret_proxy("ssh", "stcp", echo));
        // The proxy side's own layers are independent of the visitor's.
        let mut p = secret_proxy("ssh2", "stcp", echo);
        p.transport.use_encryption = true;
        p.transport.use_compression = true;
        c.proxies.push(p);
    })
    .await;
    let modes = [(false, false), (true, false), (false, true), (true, true)];
    let mut ports = Vec::new();
    for _ in 0..modes.len() + 2 {
        ports.push(free_port().await);
    }
    let disabled_port = ports[modes.len() + 1];
    let visitors = start_visitors(frps.addr, |c| {
        for (i, (enc, comp)) in modes.iter().enumerate() {
            let mut v = visitor(&format!("v{i}"), "stcp", "ssh", ports[i]);
            v.transport.use_encryption = *enc;
            v.transport.use_compression = *comp;
            c.visitors.push(v);
        }
        c.visitors
            .push(visitor("v-layers", "stcp", "ssh2", ports[modes.len()]));
        let mut off = visitor("off", "stcp", "ssh", disabled_port);
        off.enabled = Some(false);
        c.visitors.push(off);
    })
    .await;
    let data = pattern(10 * 1024 * 1024, 7);
    for (i, port) in ports.iter().take(modes.len() + 1).enumerate() {
        let name = if i < modes.len() {
            format!("v{i}")
        } else {
            "v-layers".into()
        };
        let got = echo_through(local(*port), &data).await;
        assert!(got == data, "{name}: 10 MiB came back intact");
    }
    // frps counted the bytes on the proxy, the visitor frpc on its visitor.
    let (bytes_in, _, _) = frps.stats.proxy_traffic("ssh").unwrap();
    assert!(bytes_in >= 4 * data.len() as u64, "{bytes_in}");
    let text = visitors.metrics.render();
    assert!(
        metric(
            &text,
            "frp_rs_client_visitor_bytes_total{direction=\"out\",name=\"v3\""
        ) >= data.len() as f64,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "frp_rs_client_visitor_dials_total{name=\"v0\",result=\"ok\""
        ),
        1.0
    );
    // A disabled visitor does not listen.
    assert!(visitors.visitors.get("off").is_none());
    assert!(TcpStream::connect(local(disabled_port)).await.is_err());
    visitors.stop().await;
    server.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn sudp_datagrams_up_to_1400_bytes() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_udp().await;
    let server = start_proxies(frps.addr, |c| {
        c.proxies.push(secret_proxy("dns", "sudp", echo));
    })
    .await;
    let port = free_port().await;
    let visitors = start_visitors(frps.addr, |c| {
        let mut v = visitor("dns-v", "sudp", "dns", port);
        v.transport.use_encryption = true;
        c.visitors.push(v);
    })
    .await;
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for (i, sock) in [&a, &b].into_iter().enumerate() {
        for len in [1, 100, 1000, 1400] {
            let msg = pattern(len, (i * 10_000 + len) as u64);
            assert_eq!(
                udp_roundtrip(sock, local(port), &msg).await,
                msg,
                "user {i} len {len}"
            );
        }
    }
    visitors.stop().await;
    server.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn wrong_key_refused_while_right_key_works() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let server = start_proxies(frps.addr, |c| {
        c.proxies.push(secret_proxy("ssh", "stcp", echo))
    })
    .await;
    let (good, bad) = (free_port().await, free_port().await);
    let visitors = start_visitors(frps.addr, |c| {
        c.visitors.push(visitor("good", "stcp", "ssh", good));
        let mut v = visitor("bad", "stcp", "ssh", bad);
        v.secret_key.0 = "guess".into();
        c.visitors.push(v);
    })
    .await;
    expect_closed(local(bad)).await;
    assert_eq!(echo_through(local(good), b"hi").await, b"hi");
    expect_closed(local(bad)).await;
    let text = visitors.metrics.render();
    assert_eq!(
        metric(
            &text,
            "frp_rs_client_visitor_dials_total{name=\"bad\",result=\"refused\""
        ),
        2.0,
        "{text}"
    );
    let server_text = frps.stats.metrics_text();
    assert!(
        server_text.contains("reason=\"auth\",what=\"visitor_conn\"} 2"),
        "{server_text}"
    );
    visitors.stop().await;
    server.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn allow_users_another_user_star_and_refused() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let server = start_proxies(frps.addr, |c| {
        c.user = "alice".into();
        let mut shared = secret_proxy("shared", "stcp", echo);
        shared.allow_users = vec!["bob".into()];
        c.proxies.push(shared);
        let mut open = secret_proxy("open", "stcp", echo);
        open.allow_users = vec!["*".into()];
        c.proxies.push(open);
        c.proxies.push(secret_proxy("private", "stcp", echo));
    })
    .await;
    let ports: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(free_port().await);
        }
        v
    };
    let for_alice = |name: &str, target: &str, port: u16| {
        let mut v = visitor(name, "stcp", target, port);
        v.server_user = "alice".into();
        v
    };
    let bob = start_visitors(frps.addr, |c| {
        c.user = "bob".into();
        c.visitors.push(for_alice("shared", "shared", ports[0]));
        c.visitors.push(for_alice("open", "open", ports[1]));
        c.visitors.push(for_alice("private", "private", ports[2]));
    })
    .await;
    let carol = start_visitors(frps.addr, |c| {
        c.user = "carol".into();
        c.visitors.push(for_alice("shared", "shared", ports[3]));
    })
    .await;
    assert_eq!(echo_through(local(ports[0]), b"bob").await, b"bob");
    assert_eq!(echo_through(local(ports[1]), b"any").await, b"any");
    expect_closed(local(ports[2])).await;
    expect_closed(local(ports[3])).await;
    let text = frps.stats.metrics_text();
    assert!(
        text.contains("reason=\"user_not_allowed\",what=\"visitor_conn\"} 2"),
        "{text}"
    );
    for c in [bob, carol, server] {
        c.stop().await;
    }
    frps.stop().await;
}

/// Opens a raw visitor connection as a Go frpc does (tcpMux off) and returns frps's answer.
async fn raw_visitor(
    frps: SocketAddr,
    wire: Wire,
    m: NewVisitorConn,
) -> (TcpStream, common::msg::NewVisitorConnResp) {
    let mut s = TcpStream::connect(frps).await.unwrap();
    if wire == Wire::V2 {
        s.write_all(&v2::MAGIC).await.unwrap();
    }
    wire.write(&mut s, &m.into()).await.unwrap();
    let r = tokio::time::timeout(PATIENCE, wire.read(&mut s))
        .await
        .expect("answer in time")
        .expect("NewVisitorConnResp");
    let Message::NewVisitorConnResp(r) = r else {
        panic!("expected NewVisitorConnResp, got {r:?}")
    };
    (s, r)
}

fn signed(name: &str, sk: &str, ts: i64) -> NewVisitorConn {
    NewVisitorConn {
        proxy_name: name.into(),
        sign_key: auth_key(sk, ts),
        timestamp: ts,
        ..Default::default()
    }
}

/// frp's answers, byte for byte, to a hand-built NewVisitorConn: wrong key, stale and future
/// timestamps, unknown proxy, unknown run_id, user not allowed; and the right one is answered
/// with no error and then carries the proxy's bytes.
#[tokio::test]
async fn raw_new_visitor_conn_answers() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let echo = echo_tcp().await;
    let server = start_proxies(frps.addr, |c| {
        c.transport.tcp_mux = false;
        c.user = "alice".into();
        let mut p = secret_proxy("open", "stcp", echo);
        p.allow_users = vec!["*".into()];
        c.proxies.push(p);
        c.proxies.push(secret_proxy("mine", "stcp", echo));
    })
    .await;
    let now = unix_now();
    let cases: Vec<(NewVisitorConn, String)> = vec![
        (
            signed("alice.open", "nope", now),
            "visitor connection of [alice.open] auth failed".into(),
        ),
        (
            signed("alice.open", SK, now - 3600),
            "visitor connection of [alice.open] timestamp is more than 900s away from the server's clock"
                .into(),
        ),
        (
            signed("alice.open", SK, now + 3600),
            "visitor connection of [alice.open] timestamp is more than 900s away from the server's clock"
                .into(),
        ),
        (
            signed("nobody", SK, now),
            "custom listener for [nobody] doesn't exist".into(),
        ),
        (
            NewVisitorConn {
                run_id: "0123456789abcdef".into(),
                ..signed("alice.open", SK, now)
            },
            "no client control found for run id [0123456789abcdef]".into(),
        ),
        // No run_id: user "" (pre-0.50 frpc), allowed only where "*" or "" is.
        (
            signed("alice.mine", SK, now),
            "visitor connection of [alice.mine] user [] not allowed".into(),
        ),
    ];
    for wire in [Wire::V1, Wire::V2] {
        for (m, want) in &cases {
            let (mut s, r) = raw_visitor(frps.addr, wire, m.clone()).await;
            assert_eq!(r.proxy_name, m.proxy_name);
            assert_eq!(&r.error, want, "{wire:?}");
            let mut b = [0u8; 1];
            let n = tokio::time::timeout(PATIENCE, s.read(&mut b))
                .await
                .unwrap();
            assert!(
                matches!(n, Ok(0) | Err(_)),
                "frps closes a refused visitor connection"
            );
        }
        let (mut s, r) = raw_visitor(frps.addr, wire, signed("alice.open", SK, unix_now())).await;
        assert_eq!(r.error, "", "{wire:?}");
        s.write_all(b"raw visitor").await.unwrap();
        let mut b = [0u8; 11];
        tokio::time::timeout(PATIENCE, s.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&b, b"raw visitor");
    }
    server.stop().await;
    frps.stop().await;
}

/// With `detailedErrorsToClient = false` the visitor learns only frp's summary.
#[tokio::test]
async fn refusal_text_without_detailed_errors() {
    init_log();
    let frps = Frps::start(|c| {
        c.transport.tcp_mux = false;
        c.detailed_errors_to_client = false;
    })
    .await;
    let (_s, r) = raw_visitor(frps.addr, Wire::V1, signed("x", SK, unix_now())).await;
    assert_eq!(r.error, "register visitor conn error");
    frps.stop().await;
}

/// A visitor (holding the key) that sends garbage instead of SUDP frames ends only its own
/// tunnel: the proxy's client stays up and a real sudp visitor works after it; a
/// NewVisitorConn on a control connection is ignored, and the control stays up; an xtcp
/// visitor's NatHoleVisitor is refused at once.
#[tokio::test]
async fn garbage_sudp_and_visitor_message_on_control() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let echo = echo_udp().await;
    let server = start_proxies(frps.addr, |c| {
        c.transport.tcp_mux = false;
        let mut p = secret_proxy("dns", "sudp", echo);
        p.allow_users = vec!["*".into()];
        c.proxies.push(p);
    })
    .await;
    for wire in [Wire::V1, Wire::V2] {
        let (mut s, r) = raw_visitor(frps.addr, wire, signed("dns", SK, unix_now())).await;
        assert_eq!(r.error, "");
        let mut junk = vec![b'u'];
        junk.extend_from_slice(&(40i64).to_be_bytes());
        junk.extend_from_slice(&[0xff; 40]);
        // Enough that any frame length a v2 reader takes from it is followed by its bytes.
        junk.extend_from_slice(&[0xff; 70_000]);
        let _ = s.write_all(&junk).await;
        // frps or the proxy's client closes this tunnel.
        let mut b = [0u8; 64];
        let closed = tokio::time::timeout(PATIENCE, async {
            loop {
                match s.read(&mut b).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "garbage ends the tunnel");
    }
    // A control that sends NewVisitorConn keeps its session.
    let (mut ctl, _run_id) = raw_login(frps.addr, 0).await;
    common::msg::write_msg(&mut ctl, &signed("dns", SK, unix_now()).into())
        .await
        .unwrap();
    common::msg::write_msg(&mut ctl, &common::msg::Ping::default().into())
        .await
        .unwrap();
    let pong = tokio::time::timeout(PATIENCE, common::msg::read_msg(&mut ctl))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(pong, Message::Pong(_)), "{pong:?}");
    // An xtcp visitor's request is answered at once as frp answers for a missing xtcp proxy.
    let nh = common::msg::NatHoleVisitor {
        transaction_id: "t1".into(),
        proxy_name: "p2p".into(),
        pre_check: true,
        ..Default::default()
    };
    common::msg::write_msg(&mut ctl, &nh.into()).await.unwrap();
    let resp = tokio::time::timeout(PATIENCE, common::msg::read_msg(&mut ctl))
        .await
        .unwrap()
        .unwrap();
    let Message::NatHoleResp(r) = resp else {
        panic!("expected NatHoleResp, got {resp:?}")
    };
    assert_eq!(r.transaction_id, "t1");
    assert_eq!(r.error, "xtcp server for [p2p] doesn't exist");
    // The proxy still serves a real visitor.
    let port = free_port().await;
    let visitors = start_visitors(frps.addr, |c| {
        c.transport.tcp_mux = false;
        c.visitors.push(visitor("v", "sudp", "dns", port));
    })
    .await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(udp_roundtrip(&sock, local(port), b"after").await, b"after");
    visitors.stop().await;
    server.stop().await;
    frps.stop().await;
}

/// Every pairing of wire protocols between the proxy's client and the visitor's client, for
/// stcp and sudp (frps bridges sudp messages between framings).
#[tokio::test]
async fn v1_v2_mixes_for_stcp_and_sudp() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let uecho = echo_udp().await;
    for (pw, vw) in [("v1", "v2"), ("v2", "v1"), ("v2", "v2"), ("v1", "v1")] {
        let server = start_proxies(frps.addr, |c| {
            c.transport.wire_protocol = pw.into();
            c.proxies.push(secret_proxy("s", "stcp", echo));
            let mut p = secret_proxy("u", "sudp", uecho);
            p.transport.use_compression = true;
            c.proxies.push(p);
        })
        .await;
        let (tp, up) = (free_port().await, free_port().await);
        let visitors = start_visitors(frps.addr, |c| {
            c.transport.wire_protocol = vw.into();
            let mut v = visitor("s", "stcp", "s", tp);
            v.transport.use_encryption = true;
            c.visitors.push(v);
            let mut v = visitor("u", "sudp", "u", up);
            v.transport.use_encryption = true;
            c.visitors.push(v);
        })
        .await;
        let data = pattern(300_000, 3);
        assert!(
            echo_through(local(tp), &data).await == data,
            "{pw}/{vw} stcp"
        );
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for len in [10, 1400] {
            let msg = pattern(len, len as u64);
            assert_eq!(
                udp_roundtrip(&sock, local(up), &msg).await,
                msg,
                "{pw}/{vw} sudp"
            );
        }
        visitors.stop().await;
        server.stop().await;
        wait_until("proxies gone", || async {
            frps.stats.visitor_listeners() == 0
        })
        .await;
    }
    frps.stop().await;
}

/// Reload adds, changes and removes visitors as it does proxies; a visitor's port is free
/// once it is gone, and frps keeps nothing of a proxy whose client left.
#[tokio::test]
async fn reload_diffs_visitors_and_nothing_is_left_behind() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let server = start_proxies(frps.addr, |c| {
        c.proxies.push(secret_proxy("ssh", "stcp", echo))
    })
    .await;
    assert_eq!(frps.stats.visitor_listeners(), 1);
    let (p1, p2) = (free_port().await, free_port().await);
    let dir = temp_dir("visitor-reload");
    let file = dir.join("frpc.toml");
    let write = |port: Option<u16>, other: Option<u16>| {
        let mut text = format!(
            "serverAddr = \"127.0.0.1\"\nserverPort = {}\nauth.token = \"{TOKEN}\"\n",
            frps.addr.port()
        );
        for (name, p) in [("a", port), ("b", other)] {
            if let Some(p) = p {
                text += &format!(
                    "[[visitors]]\nname = \"{name}\"\ntype = \"stcp\"\nserverName = \"ssh\"\nsecretKey = \"{SK}\"\nbindPort = {p}\n"
                );
            }
        }
        std::fs::write(&file, text).unwrap();
    };
    write(Some(p1), None);
    let client = client_from_file(&file);
    let reloader = client.reloader();
    let visitors = Frpc::run(client);
    visitors.wait_visitor("a").await;
    assert_eq!(echo_through(local(p1), b"1").await, b"1");
    // A held connection of an unchanged visitor survives the reload that adds another.
    let mut held = TcpStream::connect(local(p1)).await.unwrap();
    held.write_all(b"x").await.unwrap();
    let mut b = [0u8; 1];
    held.read_exact(&mut b).await.unwrap();
    write(Some(p1), Some(p2));
    let loaded = common::config::load_client(&file, &Default::default()).unwrap();
    reloader.apply(loaded.config);
    visitors.wait_visitor("b").await;
    assert_eq!(echo_through(local(p2), b"2").await, b"2");
    held.write_all(b"y").await.unwrap();
    held.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"y");
    // Removing "b" frees its port.
    write(Some(p1), None);
    let loaded = common::config::load_client(&file, &Default::default()).unwrap();
    reloader.apply(loaded.config);
    wait_until("visitor b gone", || async {
        visitors.visitors.get("b").is_none()
    })
    .await;
    wait_until("visitor b's listener is closed", || async {
        not_listening(p2)
    })
    .await;
    // The visitor client stopping frees its port too.
    visitors.stop().await;
    wait_until("visitor a's listener is closed", || async {
        not_listening(p1)
    })
    .await;
    // frps drops the proxy's registration and connections when its client leaves.
    server.stop().await;
    wait_until("frps released the proxy", || async {
        frps.stats.visitor_listeners() == 0 && frps.stats.proxy_traffic("ssh").is_none()
    })
    .await;
    frps.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The real binaries: one frps, a frpc with stcp and sudp proxies, a frpc with their visitors
/// (config files as a user writes them; the visitor side on wire v2).
#[tokio::test]
async fn real_binaries_stcp_and_sudp() {
    init_log();
    let dir = procs::tempdir("visitors-bin");
    let (_frps, port) = procs::start_frps(&dir, &format!("auth.token = \"{TOKEN}\"\n")).await;
    let echo = echo_tcp().await;
    let uecho = echo_udp().await;
    let head = format!("serverAddr = \"127.0.0.1\"\nserverPort = {port}\nauth.token = \"{TOKEN}\"\nuser = \"home\"\n");
    let server_cfg = procs::write(
        &dir,
        "server.toml",
        &format!(
            "{head}[[proxies]]\nname = \"ssh\"\ntype = \"stcp\"\nsecretKey = \"{SK}\"\nlocalIP = \"127.0.0.1\"\nlocalPort = {}\nallowUsers = [\"laptop\"]\n\
             [[proxies]]\nname = \"dns\"\ntype = \"sudp\"\nsecretKey = \"{SK}\"\nlocalIP = \"127.0.0.1\"\nlocalPort = {}\nallowUsers = [\"*\"]\n",
            echo.port(),
            uecho.port()
        ),
    );
    let (tp, up) = (free_port().await, free_port().await);
    let visitor_cfg = procs::write(
        &dir,
        "visitor.toml",
        &format!(
            "serverAddr = \"127.0.0.1\"\nserverPort = {port}\nauth.token = \"{TOKEN}\"\nuser = \"laptop\"\ntransport.wireProtocol = \"v2\"\n\
             [[visitors]]\nname = \"ssh-v\"\ntype = \"stcp\"\nserverUser = \"home\"\nserverName = \"ssh\"\nsecretKey = \"{SK}\"\nbindPort = {tp}\ntransport.useEncryption = true\n\
             [[visitors]]\nname = \"dns-v\"\ntype = \"sudp\"\nserverUser = \"home\"\nserverName = \"dns\"\nsecretKey = \"{SK}\"\nbindPort = {up}\ntransport.useCompression = true\n"
        ),
    );
    let _server = procs::spawn("frpc", &["-c", &server_cfg]);
    let _visitor = procs::spawn("frpc", &["-c", &visitor_cfg]);
    // The proxy may register after the visitor listens: retry until a tunnel works.
    wait_tunnel(local(tp)).await;
    let data = pattern(2 * 1024 * 1024, 11);
    assert!(echo_through(local(tp), &data).await == data);
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let msg = pattern(1400, 5);
    assert_eq!(udp_roundtrip(&sock, local(up), &msg).await, msg);
    let _ = std::fs::remove_dir_all(dir);
}

/// The admin API shows visitors (`/api/status` under `visitors`, `/api/visitor/{name}/config`),
/// a store entry starts a real visitor and deleting it frees its port; frps's dashboard lists
/// stcp and sudp proxies under their type with frp's fields.
#[tokio::test]
async fn admin_api_store_and_dashboard_show_visitors() {
    use hyper::Method;
    init_log();
    let dash = free_port().await;
    let frps = Frps::start(|c| {
        c.web_server.addr = "127.0.0.1".into();
        c.web_server.port = dash;
    })
    .await;
    let echo = echo_tcp().await;
    let uecho = echo_udp().await;
    let server = start_proxies(frps.addr, |c| {
        let mut p = secret_proxy("ssh", "stcp", echo);
        p.allow_users = vec!["*".into()];
        c.proxies.push(p);
        c.proxies.push(secret_proxy("dns", "sudp", uecho));
    })
    .await;
    let (admin, p1, p2) = (free_port().await, free_port().await, free_port().await);
    let dir = temp_dir("visitor-admin");
    let file = dir.join("frpc.toml");
    std::fs::write(
        &file,
        format!(
            "serverAddr = \"127.0.0.1\"\nserverPort = {}\nauth.token = \"{TOKEN}\"\nwebServer.addr = \"127.0.0.1\"\nwebServer.port = {admin}\nstore.path = {:?}\n\
             [[visitors]]\nname = \"file-v\"\ntype = \"stcp\"\nserverName = \"ssh\"\nsecretKey = \"{SK}\"\nbindPort = {p1}\n",
            frps.addr.port(),
            dir.join("store.json").display().to_string()
        ),
    )
    .unwrap();
    let visitors = Frpc::run(client_from_file(&file));
    visitors.wait_visitor("file-v").await;
    let admin_addr = local(admin);
    let (code, status) = api(admin_addr, Method::GET, "/api/status", "").await;
    assert_eq!(code, 200);
    assert_eq!(
        status["visitors"],
        serde_json::json!([{"name": "file-v", "type": "stcp", "status": "running", "err": "",
            "local_addr": format!("127.0.0.1:{p1}"), "plugin": "", "remote_addr": ""}])
    );
    let out = run_bin("frpc", &["status", "-c", &file.display().to_string()]).await;
    let text = procs::stdout(&out);
    assert!(
        text.contains("VISITORS") && text.contains("file-v") && text.contains("running"),
        "{text}"
    );
    let (code, def) = api(admin_addr, Method::GET, "/api/visitor/file-v/config", "").await;
    assert_eq!(code, 200);
    assert_eq!(def["type"], "stcp");
    assert_eq!(def["stcp"]["serverName"], "ssh");
    // A store entry is a real visitor.
    let body = serde_json::json!({"name": "store-v", "type": "stcp",
        "stcp": {"serverName": "ssh", "secretKey": SK, "bindPort": p2}});
    let (code, _) = api(
        admin_addr,
        Method::POST,
        "/api/store/visitors",
        &body.to_string(),
    )
    .await;
    assert_eq!(code, 200);
    visitors.wait_visitor("store-v").await;
    assert_eq!(echo_through(local(p2), b"stored").await, b"stored");
    let (_, status) = api(admin_addr, Method::GET, "/api/status", "").await;
    assert_eq!(status["visitors"][1]["name"], "store-v");
    assert_eq!(status["visitors"][1]["source"], "store");
    let (code, _) = api(
        admin_addr,
        Method::DELETE,
        "/api/store/visitors/store-v",
        "",
    )
    .await;
    assert_eq!(code, 200);
    wait_until("store visitor gone", || async {
        visitors.visitors.get("store-v").is_none()
    })
    .await;
    wait_until("its listener is closed", || async { not_listening(p2) }).await;
    // The dashboard.
    let (code, list) = api(local(dash), Method::GET, "/api/proxy/stcp", "").await;
    assert_eq!(code, 200);
    let p = &list["proxies"][0];
    assert_eq!(p["name"], "ssh");
    assert_eq!(p["status"], "online");
    assert_eq!(p["conf"]["allowUsers"], serde_json::json!(["*"]));
    assert!(
        p["conf"].get("secretKey").is_none(),
        "no secret in API answers"
    );
    let (_, list) = api(local(dash), Method::GET, "/api/proxy/sudp", "").await;
    assert_eq!(list["proxies"][0]["name"], "dns");
    visitors.stop().await;
    server.stop().await;
    frps.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// `frpc stcp` and `frpc stcp|sudp visitor` from flags alone (frp's quick-start subcommands).
#[tokio::test]
async fn quick_start_subcommands_run_proxy_and_visitors() {
    init_log();
    let dir = procs::tempdir("visitors-quick");
    let (_frps, port) = procs::start_frps(&dir, &format!("auth.token = \"{TOKEN}\"\n")).await;
    let echo = echo_tcp().await;
    let uecho = echo_udp().await;
    let (tp, up) = (free_port().await, free_port().await);
    let port_s = port.to_string();
    let common = ["-s", "127.0.0.1", "-P", &port_s, "-t", TOKEN, "-u", "home"];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(common.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let spawn = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        procs::spawn("frpc", &refs)
    };
    let (ep, up_s, tp_s, uep) = (
        echo.port().to_string(),
        up.to_string(),
        tp.to_string(),
        uecho.port().to_string(),
    );
    let _p1 = spawn(with(&["stcp", "-n", "ssh", "--sk", SK, "-l", &ep]));
    let _p2 = spawn(with(&["sudp", "-n", "dns", "--sk", SK, "-l", &uep]));
    let _v1 = spawn(with(&[
        "stcp",
        "visitor",
        "-n",
        "ssh-v",
        "--server-name",
        "ssh",
        "--sk",
        SK,
        "--bind-port",
        &tp_s,
        "--ue",
    ]));
    let _v2 = spawn(with(&[
        "sudp",
        "visitor",
        "-n",
        "dns-v",
        "--server-name",
        "dns",
        "--sk",
        SK,
        "--bind-port",
        &up_s,
    ]));
    wait_tunnel(local(tp)).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(udp_roundtrip(&sock, local(up), b"quick").await, b"quick");
    let _ = std::fs::remove_dir_all(dir);
}

/// frp's SUDP framing by hand: a v1 UDPPacket frame on a raw visitor connection reaches the
/// proxy's local service, and its answer comes back as a UDPPacket with the same `r`.
#[tokio::test]
async fn raw_sudp_frames_round_trip() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let uecho = echo_udp().await;
    let server = start_proxies(frps.addr, |c| {
        c.transport.tcp_mux = false;
        let mut p = secret_proxy("dns", "sudp", uecho);
        p.allow_users = vec!["*".into()];
        c.proxies.push(p);
    })
    .await;
    let (mut s, r) = raw_visitor(frps.addr, Wire::V1, signed("dns", SK, unix_now())).await;
    assert_eq!(r.error, "");
    let user: SocketAddr = "198.51.100.7:5353".parse().unwrap();
    s.write_all(&raw_udp_frame(b"by hand", user)).await.unwrap();
    let back = loop {
        let m = tokio::time::timeout(PATIENCE, common::msg::read_msg(&mut s))
            .await
            .unwrap()
            .unwrap();
        if let Message::UdpPacket(p) = m {
            break p;
        }
    };
    assert_eq!(back.content, b"by hand");
    assert_eq!(
        back.remote_addr.and_then(|a| a.to_socket_addr()),
        Some(user)
    );
    server.stop().await;
    frps.stop().await;
}

/// A visitor whose port is taken does not start and says why; one with `bindPort = -1` runs
/// without listening (it serves only connections other visitors hand over, frp's fallbackTo).
#[tokio::test]
async fn busy_port_is_reported_and_negative_bind_port_does_not_listen() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let frpc = Frpc::start(frps.addr, |c| {
        c.visitors.push(visitor("busy", "stcp", "ssh", port));
        let mut v = visitor("inner", "stcp", "ssh", 0);
        v.bind_port = -1;
        c.visitors.push(v);
    });
    frpc.wait_visitor("inner").await;
    let s = frpc
        .visitors
        .wait_for("busy", PATIENCE, |s| {
            s.phase == frpc::status::Phase::StartError
        })
        .await
        .expect("busy visitor reports its error");
    assert!(
        s.error
            .starts_with(&format!("listen on 127.0.0.1:{port} error: ")),
        "{}",
        s.error
    );
    frpc.stop().await;
    frps.stop().await;
}

/// Knowing a client's run_id is not enough to pass for its user: a NewVisitorConn naming it
/// must come from where that client's control came from (here, another loopback address).
#[tokio::test]
async fn run_id_from_another_host_does_not_lend_its_user() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let echo = echo_tcp().await;
    let server = start_proxies(frps.addr, |c| {
        c.transport.tcp_mux = false;
        c.user = "alice".into();
        let mut p = secret_proxy("ssh", "stcp", echo);
        p.allow_users = vec!["bob".into()];
        c.proxies.push(p);
    })
    .await;
    let (_bob_ctl, bob_run_id) = raw_login_as(
        frps.addr,
        common::msg::Login {
            user: "bob".into(),
            ..Default::default()
        },
    )
    .await;
    let m = NewVisitorConn {
        run_id: bob_run_id.clone(),
        ..signed("alice.ssh", SK, unix_now())
    };
    // From another address: refused as if the run_id were unknown.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut s = sock.connect(frps.addr).await.unwrap();
    common::msg::write_msg(&mut s, &m.clone().into())
        .await
        .unwrap();
    let r = tokio::time::timeout(PATIENCE, common::msg::read_msg(&mut s))
        .await
        .unwrap()
        .unwrap();
    let Message::NewVisitorConnResp(r) = r else {
        panic!("expected NewVisitorConnResp, got {r:?}")
    };
    assert_eq!(
        r.error,
        format!("no client control found for run id [{bob_run_id}]")
    );
    // From bob's own host, the same request is bob's.
    let (mut s, r) = raw_visitor(frps.addr, Wire::V1, m).await;
    assert_eq!(r.error, "");
    s.write_all(b"bob").await.unwrap();
    let mut b = [0u8; 3];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b, b"bob");
    server.stop().await;
    frps.stop().await;
}

/// Lines from `lines` until none comes for a moment (the ones already written are in).
async fn drain(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(Some(l)) =
        tokio::time::timeout(std::time::Duration::from_millis(500), lines.recv()).await
    {
        out.push(l);
    }
    out
}

/// Anyone may send NewVisitorConn: refusals must neither write one line each (a wrong-key
/// flood would fill the disk) nor write the peer's proxy name raw (a newline in it would forge
/// log lines, an escape sequence would drive the operator's terminal).
#[tokio::test]
async fn refused_visitor_conns_cannot_flood_or_forge_the_log() {
    init_log();
    let dir = procs::tempdir("visitors-logflood");
    let (mut frps, port) = procs::start_frps(&dir, "transport.tcpMux = false\n").await;
    let mut lines = procs::stderr_lines(&mut frps);
    let addr = local(port);
    let name = "x\nFORGED 2026-01-01T00:00:00Z  INFO admin logged in\x1b[31m";
    for _ in 0..50 {
        let (_s, r) = raw_visitor(addr, Wire::V1, signed(name, "wrong", unix_now())).await;
        assert!(r.error.contains("doesn't exist"), "{}", r.error);
    }
    procs::wait_line(&mut lines, "visitor conn").await;
    let logged = drain(&mut lines).await;
    assert!(
        !logged
            .iter()
            .any(|l| l.starts_with("FORGED") || l.contains('\x1b')),
        "the peer's name is written raw:\n{}",
        logged.join("\n")
    );
    let per_conn = logged.iter().filter(|l| l.contains("visitor conn")).count();
    assert!(
        per_conn <= 3,
        "{per_conn} lines for 50 refused visitor connections:\n{}",
        logged.join("\n")
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A bad message on an sudp work connection ends it with a line in the proxy's frpc log, as
/// frp's "read from workConn for sudp error" (it was closed without a word).
#[tokio::test]
async fn garbage_on_sudp_work_conn_is_logged_by_the_proxy_client() {
    init_log();
    let dir = procs::tempdir("visitors-sudp-garbage");
    let (_frps, port) = procs::start_frps(&dir, "transport.tcpMux = false\n").await;
    let uecho = echo_udp().await;
    let cfg = procs::write(
        &dir,
        "server.toml",
        &format!(
            "serverAddr = \"127.0.0.1\"\nserverPort = {port}\ntransport.tcpMux = false\n\
             [[proxies]]\nname = \"dns\"\ntype = \"sudp\"\nsecretKey = \"{SK}\"\nlocalIP = \"127.0.0.1\"\nlocalPort = {}\nallowUsers = [\"*\"]\n",
            uecho.port()
        ),
    );
    let mut frpc = procs::spawn("frpc", &["-c", &cfg]);
    let mut lines = procs::stderr_lines(&mut frpc);
    procs::wait_line(&mut lines, "start proxy success").await;
    let (mut s, r) = raw_visitor(local(port), Wire::V1, signed("dns", SK, unix_now())).await;
    assert_eq!(r.error, "");
    let mut junk = vec![b'u'];
    junk.extend_from_slice(&(5i64).to_be_bytes());
    junk.extend_from_slice(b"{{{{{");
    s.write_all(&junk).await.unwrap();
    let l = procs::wait_line(&mut lines, "work connection for udp").await;
    assert!(l.contains("WARN"), "{l}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A quick-start subcommand has no file: it must not warn that "<command line>" was read as
/// JSON "not as its name says" (every `frpc stcp visitor ...` printed that).
#[tokio::test]
async fn quick_start_does_not_warn_about_its_own_format() {
    init_log();
    let port = free_port().await.to_string();
    let bind = free_port().await.to_string();
    let out = procs::run(
        "frpc",
        &[
            "stcp",
            "visitor",
            "-s",
            "127.0.0.1",
            "-P",
            &port,
            "-n",
            "v",
            "--server-name",
            "ssh",
            "--sk",
            SK,
            "--bind-port",
            &bind,
        ],
    )
    .await;
    let err = procs::stderr(&out);
    assert!(err.contains("connect"), "frpc did not try frps:\n{err}");
    assert!(!err.contains("not as its name says"), "{err}");
}

/// The proxy side chooses each answer's address `r`: an sudp visitor sends answers only to
/// local users that sent to it, not to any address a peer names (frp sends anywhere, so a
/// proxy owner could aim the visitor machine's UDP at its LAN or its loopback services).
#[tokio::test]
async fn sudp_visitor_answers_only_its_own_users() {
    use common::msg::{read_msg, write_msg, NewProxy, NewWorkConn, UdpPacket};
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let (mut ctl, run_id) = raw_login(frps.addr, 0).await;
    let np = NewProxy {
        proxy_name: "evil".into(),
        proxy_type: "sudp".into(),
        sk: SK.into(),
        allow_users: vec!["*".into()],
        ..Default::default()
    };
    write_msg(&mut ctl, &np.into()).await.unwrap();
    let next = async |s: &mut RawControl| {
        tokio::time::timeout(PATIENCE, read_msg(s))
            .await
            .unwrap()
            .unwrap()
    };
    assert!(matches!(next(&mut ctl).await, Message::NewProxyResp(r) if r.error.is_empty()));
    let port = free_port().await;
    let visitors = start_visitors(frps.addr, |c| {
        c.transport.tcp_mux = false;
        c.visitors.push(visitor("v", "sudp", "evil", port));
    })
    .await;
    let user = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let victim = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    user.send_to(b"hi", local(port)).await.unwrap();
    assert!(matches!(next(&mut ctl).await, Message::ReqWorkConn(_)));
    let mut work = TcpStream::connect(frps.addr).await.unwrap();
    let m = NewWorkConn {
        run_id,
        ..Default::default()
    };
    write_msg(&mut work, &m.into()).await.unwrap();
    assert!(matches!(
        next_plain(&mut work).await,
        Message::StartWorkConn(_)
    ));
    let Message::UdpPacket(first) = next_plain(&mut work).await else {
        panic!("the user's datagram")
    };
    assert_eq!(first.content, b"hi");
    for (content, to) in [
        (&b"reflected"[..], victim.local_addr().unwrap()),
        (&b"answer"[..], user.local_addr().unwrap()),
    ] {
        let p = UdpPacket {
            content: content.to_vec(),
            local_addr: None,
            remote_addr: Some(to.into()),
        };
        write_msg(&mut work, &p.into()).await.unwrap();
    }
    let mut b = [0u8; 64];
    let (n, _) = tokio::time::timeout(PATIENCE, user.recv_from(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b[..n], b"answer");
    // Answers are sent in order: the one before reached the victim already, or never will.
    assert!(
        victim.try_recv_from(&mut b).is_err(),
        "the visitor sent a datagram to an address the proxy side named"
    );
    visitors.stop().await;
    frps.stop().await;
}

async fn next_plain(s: &mut TcpStream) -> Message {
    tokio::time::timeout(PATIENCE, common::msg::read_msg(s))
        .await
        .unwrap()
        .unwrap()
}

/// Nothing listens on 127.0.0.1:`port` any more. (Binding it instead could race with another
/// test's outgoing connection taking the port as its ephemeral one; a refused connect cannot.)
/// Callers wait for it rather than assert it once: frpc closes the listener before it reports
/// the visitor gone, but a child process that another test of this binary is spawning at that
/// moment holds a copy of every descriptor between its fork and its exec (close-on-exec), so
/// the listening socket can outlive our close by that window (seen once in CI).
fn not_listening(port: u16) -> bool {
    std::net::TcpStream::connect(local(port))
        .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
}
