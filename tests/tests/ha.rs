//! More than one frps (issue 20): frps believes PROXY protocol v1/v2 headers from the load
//! balancers in `proxyProtocol.trustedAddrs` on `bindPort` and the vhost ports, and nobody
//! else's; frpc with `serverAddrs` logs in to the next frps when one is down and registers its
//! proxies there. The load balancer is a small PROXY-protocol front written here.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::time::Duration;
use tests::procs::{spawn, stderr_lines, tempdir, wait_line, write};
use tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SIG_V2: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// The header a balancer writes for `src` -> `dst` (both IPv4), written out by hand so the test
/// does not share frps's codec.
fn pp_header(v1: bool, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (SocketAddr::V4(s), SocketAddr::V4(d)) = (src, dst) else {
        panic!("IPv4 only")
    };
    if v1 {
        return format!(
            "PROXY TCP4 {} {} {} {}\r\n",
            s.ip(),
            d.ip(),
            s.port(),
            d.port()
        )
        .into_bytes();
    }
    let mut h = SIG_V2.to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&s.ip().octets());
    h.extend_from_slice(&d.ip().octets());
    h.extend_from_slice(&s.port().to_be_bytes());
    h.extend_from_slice(&d.port().to_be_bytes());
    h
}

/// An L4 balancer: each connection goes to the first of `targets` that answers, preceded by a
/// PROXY header that says it came from `client` (the port is the real peer's).
async fn pp_front(targets: Vec<SocketAddr>, v1: bool, client: [u8; 4]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut user, peer)) = l.accept().await {
            let targets = targets.clone();
            tokio::spawn(async move {
                for t in targets {
                    let Ok(Ok(mut up)) =
                        tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(t)).await
                    else {
                        continue;
                    };
                    let src = SocketAddr::from((client, peer.port()));
                    if up.write_all(&pp_header(v1, src, addr)).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut user, &mut up).await;
                    return;
                }
            });
        }
    });
    addr
}

/// An HTTP backend that answers every request with the X-Forwarded-For it got.
async fn xff_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let Some(head) = read_head(&mut s).await else {
                    return;
                };
                let head = String::from_utf8_lossy(&head).to_lowercase();
                let xff = head
                    .lines()
                    .find_map(|l| l.strip_prefix("x-forwarded-for:"))
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xff}",
                    xff.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

/// GET / for `host` through `addr`; the body, or `None` when it does not answer 200.
async fn get_body(addr: SocketAddr, host: &str) -> Option<String> {
    let go = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), go)
        .await
        .ok()
        .flatten()
}

/// Whether frps closes `s` (EOF or reset) without answering, within [`PATIENCE`].
async fn closed_without_answer(mut s: TcpStream) -> bool {
    let mut b = [0u8; 64];
    match tokio::time::timeout(PATIENCE, s.read(&mut b)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

async fn send_and_check_closed(addr: SocketAddr, bytes: &[u8], half_close: bool) -> bool {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    if half_close {
        s.shutdown().await.unwrap();
    }
    closed_without_answer(s).await
}

async fn ha_frps() -> Frps {
    let vhost = free_port().await;
    Frps::start(|c| {
        c.vhost_http_port = vhost;
        c.proxy_protocol.trusted_addrs = vec!["127.0.0.0/8".into()];
    })
    .await
}

#[tokio::test]
async fn two_frps_behind_a_proxy_protocol_front_and_failover() {
    init_log();
    let (a, b) = (ha_frps().await, ha_frps().await);
    // The balancer in front of bindPort (one front per frps, v1 to A and v2 to B) and in
    // front of the vhost ports (A first, B when A is down).
    let front_a = pp_front(vec![a.addr], true, [198, 51, 100, 1]).await;
    let front_b = pp_front(vec![b.addr], false, [198, 51, 100, 2]).await;
    let web = pp_front(
        vec![a.vhost_http.unwrap(), b.vhost_http.unwrap()],
        false,
        [203, 0, 113, 9],
    )
    .await;
    let backend = xff_backend().await;
    let admin = free_port().await;
    let frpc = Frpc::start(front_a, |c| {
        c.server_addr = "0.0.0.0".into();
        c.server_port = 7000;
        // B by name, so the admin API's status shows which frps frpc is on.
        c.server_addrs = vec![front_a.to_string(), format!("localhost:{}", front_b.port())];
        c.login_fail_exit = false;
        c.web_server.port = admin;
        let mut p = proxy("web", "http", backend, 0);
        p.custom_domains = vec!["ha.test".into()];
        c.proxies = vec![p, proxy("echo", "tcp", backend, 0)];
    });
    frpc.wait_running("web").await;
    let tcp_remote = || async {
        let (_, body) = common::http::request(
            &format!("127.0.0.1:{admin}"),
            &Default::default(),
            hyper::Method::GET,
            "/api/status",
            hyper::body::Bytes::new(),
        )
        .await
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["tcp"][0]["remote_addr"].as_str().unwrap_or("").to_owned()
    };
    assert!(tcp_remote().await.starts_with("127.0.0.1:"));
    assert_eq!(
        a.stats.client_count(),
        1,
        "frpc logged in to the first frps"
    );
    assert_eq!(b.stats.client_count(), 0);
    // The user's address from the balancer's header reaches the backend.
    assert_eq!(
        get_body(web, "ha.test").await.as_deref(),
        Some("203.0.113.9")
    );

    // A goes down: frpc registers its proxy on B, and users reach it there.
    a.stop().await;
    wait_until("frpc logs in to the second frps", || async {
        b.stats.client_count() == 1
    })
    .await;
    frpc.wait_running("web").await;
    wait_until("the status names the second frps", || async {
        tcp_remote().await.starts_with("localhost:")
    })
    .await;
    wait_until("the proxy answers through the second frps", || async {
        get_body(web, "ha.test").await.as_deref() == Some("203.0.113.9")
    })
    .await;
    frpc.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn untrusted_malformed_or_missing_proxy_headers_close_that_connection_only() {
    init_log();
    let vhost = free_port().await;
    // Trusts a balancer elsewhere, not 127.0.0.1. Without tcpMux a raw Login is answered
    // directly, so a believed header would show.
    let frps = Frps::start(|c| {
        c.vhost_http_port = vhost;
        c.transport.tcp_mux = false;
        c.proxy_protocol.trusted_addrs = vec!["192.0.2.0/24".into()];
    })
    .await;
    let v = frps.vhost_http.unwrap();
    let lie = pp_header(
        true,
        "1.2.3.4:5".parse().unwrap(),
        "5.6.7.8:80".parse().unwrap(),
    );
    let lie2 = pp_header(
        false,
        "1.2.3.4:5".parse().unwrap(),
        "5.6.7.8:80".parse().unwrap(),
    );
    let mut login = Vec::new();
    let ts = common::auth::unix_now();
    let m = common::msg::Login {
        version: "0.70.1".into(),
        privilege_key: common::auth::auth_key(TOKEN, ts),
        timestamp: ts,
        ..Default::default()
    };
    common::msg::write_msg(&mut login, &m.into()).await.unwrap();
    let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    for (addr, h, then) in [
        (frps.addr, &lie, &login),
        (frps.addr, &lie2, &login),
        (v, &lie, &get),
        (v, &lie2, &get),
    ] {
        let mut req = h.clone();
        req.extend_from_slice(then);
        assert!(
            send_and_check_closed(addr, &req, false).await,
            "an untrusted sender's header is refused on {addr}"
        );
    }
    // Without a header an untrusted address is served as before.
    let backend = xff_backend().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.transport.tcp_mux = false;
        let mut p = proxy("web", "http", backend, 0);
        p.custom_domains = vec!["direct.test".into()];
        c.proxies = vec![p];
    });
    frpc.wait_running("web").await;
    assert_eq!(
        get_body(v, "direct.test").await.as_deref(),
        Some("127.0.0.1")
    );

    // A trusted sender must send a well-formed, complete header.
    let trusting = ha_frps().await;
    let tv = trusting.vhost_http.unwrap();
    let truncated = lie2[..20].to_vec();
    let cases: [(&[u8], bool); 6] = [
        (
            b"PROXY TCP4 1.2.3.4 nope 1 2\r\nGET / HTTP/1.1\r\n\r\n",
            false,
        ),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", false),
        (b"PROXY TCP4 1.2", true),
        (&truncated, true),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false),
        (&[b'P'; 200], false),
    ];
    for (bytes, half_close) in cases {
        for addr in [trusting.addr, tv] {
            assert!(
                send_and_check_closed(addr, bytes, half_close).await,
                "{addr}: {:?} closes the connection",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    // The listeners still serve a proper balancer.
    let front = pp_front(vec![trusting.addr], false, [198, 51, 100, 3]).await;
    let web = pp_front(vec![tv], true, [203, 0, 113, 10]).await;
    let frpc2 = Frpc::start(front, |c| {
        let mut p = proxy("web", "http", backend, 0);
        p.custom_domains = vec!["behind.test".into()];
        c.proxies = vec![p];
    });
    frpc2.wait_running("web").await;
    assert_eq!(
        get_body(web, "behind.test").await.as_deref(),
        Some("203.0.113.10")
    );
    frpc2.stop().await;
    frpc.stop().await;
    trusting.stop().await;
    frps.stop().await;
}

/// Two dead frps: frpc names each one's failure, then backs off and tries again; with
/// `loginFailExit` it exits once both have failed.
#[tokio::test]
async fn every_server_down_logs_each_reason_and_retries() {
    let (p1, p2) = (free_port().await, free_port().await);
    let dir = tempdir("ha-down");
    let list = format!("serverAddrs = [\"127.0.0.1:{p1}\", \"127.0.0.1:{p2}\"]\n");
    let cfg = write(&dir, "frpc.toml", &format!("{list}loginFailExit = false\n"));
    let mut frpc = spawn("frpc", &["-c", &cfg]);
    let mut lines = stderr_lines(&mut frpc);
    for round in 0..2 {
        let l = wait_line(&mut lines, &format!("127.0.0.1:{p1}")).await;
        assert!(l.contains("trying the next"), "round {round}: {l}");
        let l = wait_line(&mut lines, &format!("127.0.0.1:{p2}")).await;
        assert!(l.contains("every server in serverAddrs failed"), "{l}");
    }
    let _ = frpc.kill().await;

    let cfg = write(&dir, "exit.toml", &list);
    let out = tests::procs::run("frpc", &["-c", &cfg]).await;
    let err = tests::procs::stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains(&format!("127.0.0.1:{p1}")), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{p2}")), "{err}");

    // serverAddrs with serverAddr is ambiguous: refused with the reason.
    let cfg = write(
        &dir,
        "both.toml",
        &format!("serverAddr = \"10.0.0.1\"\n{list}"),
    );
    let out = tests::procs::run("frpc", &["verify", "-c", &cfg]).await;
    let err = tests::procs::stderr(&out) + &tests::procs::stdout(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("serverAddrs") && err.contains("serverAddr"),
        "{err}"
    );
}

/// A sender that stalls inside its PROXY header, or in the TLS start after it, does not hold
/// frps's shutdown: stopping frps closes those connections at once, as it does a yamux
/// session that has not logged in yet (before, those reads ignored the shutdown, so frps
/// waited out its 5 s grace with bindPort still accepting, and then left the tasks behind).
#[tokio::test]
async fn a_stalled_proxy_header_does_not_hold_the_shutdown() {
    init_log();
    let frps = ha_frps().await;
    let mut trusted = TcpStream::connect(frps.addr).await.unwrap();
    trusted.write_all(b"PROXY TCP4 1.2.3.4").await.unwrap();
    let mut untrusted = TcpStream::connect(frps.addr).await.unwrap();
    untrusted.write_all(b"PROX").await.unwrap();
    // A whole header, then the start of frp's TLS and nothing more (stalled in the sniff).
    let mut tls = TcpStream::connect(frps.addr).await.unwrap();
    tls.write_all(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n\x17")
        .await
        .unwrap();
    frps.stop().await;
    let mut b = [0u8; 1];
    // `stop` waited for frps's tasks: both connections are closed now.
    for mut s in [trusted, untrusted, tls] {
        let r = tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await;
        assert!(
            matches!(r, Ok(Ok(0)) | Ok(Err(_))),
            "closed by frps's shutdown: {r:?}"
        );
    }
}
