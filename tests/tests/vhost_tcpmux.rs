//! tcpmux proxies (`multiplexer = "httpconnect"`): `CONNECT host:port` on
//! `tcpmuxHTTPConnectPort`, routed by host and `routeByHTTPUser`, credentials from
//! `Proxy-Authorization`, with and without `tcpmuxPassthrough`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::config::ProxyConfig;
use std::net::SocketAddr;
use tests::http_backend::basic;
use tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

fn tcpmux(name: &str, local: SocketAddr, domains: &[&str]) -> ProxyConfig {
    let mut p = proxy(name, "tcpmux", local, 0);
    p.custom_domains = domains.iter().map(|d| d.to_string()).collect();
    p.multiplexer = "httpconnect".into();
    p
}

async fn start(passthrough: bool, proxies: Vec<ProxyConfig>) -> (Frps, Frpc, SocketAddr) {
    init_log();
    let port = free_port().await;
    let frps = Frps::start(|c| {
        c.tcpmux_http_connect_port = port;
        c.tcpmux_passthrough = passthrough;
    })
    .await;
    let names: Vec<String> = proxies.iter().map(|p| p.name.clone()).collect();
    let frpc = Frpc::start(frps.addr, |c| c.proxies = proxies);
    for n in &names {
        frpc.wait_running(n).await;
    }
    let mux = frps.tcpmux.unwrap();
    (frps, frpc, mux)
}

/// Sends `head` (and `early` in the same write); returns the stream and what came back
/// within the first `want` bytes, or everything until close when `want` is 0.
async fn connect(mux: SocketAddr, head: &str, early: &[u8], want: usize) -> (TcpStream, String) {
    let mut s = TcpStream::connect(mux).await.unwrap();
    let mut out = head.as_bytes().to_vec();
    out.extend(early);
    s.write_all(&out).await.unwrap();
    let mut got = vec![0u8; want];
    let read = async {
        if want == 0 {
            got.clear();
            let _ = s.read_to_end(&mut got).await;
        } else {
            s.read_exact(&mut got).await.unwrap();
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("answer in time");
    (s, String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test]
async fn connect_routes_by_host_and_relays() {
    let echo = echo_tcp().await;
    let (frps, frpc, mux) = start(
        false,
        vec![
            tcpmux("m", echo, &["mux.example.com"]),
            tcpmux("w", echo, &["*.wild.example.com"]),
        ],
    )
    .await;
    assert_eq!(
        frpc.wait_running("m").await.remote_addr,
        format!("mux.example.com:{}", mux.port())
    );
    for host in [
        "mux.example.com:443",
        "MUX.example.com.:22",
        "a.b.wild.example.com:1",
    ] {
        let head = format!("CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        // Bytes sent with the request itself are relayed too.
        let (mut s, got) = connect(mux, &head, b"early", OK.len() + 5).await;
        assert_eq!(got, format!("{OK}early"), "{host}");
        s.write_all(b"more").await.unwrap();
        let mut b = [0u8; 4];
        tokio::time::timeout(PATIENCE, s.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&b, b"more");
    }
    let (_, got) = connect(mux, "CONNECT nope.example.com:443 HTTP/1.1\r\n\r\n", b"", 0).await;
    assert!(got.starts_with("HTTP/1.1 404 Not Found\r\n"), "{got}");
    assert!(
        got.contains("The page you requested was not found."),
        "{got}"
    );
    // Not CONNECT: closed without an answer.
    let (_, got) = connect(
        mux,
        "GET / HTTP/1.1\r\nHost: mux.example.com\r\n\r\n",
        b"",
        0,
    )
    .await;
    assert_eq!(got, "");
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn credentials_from_proxy_authorization_and_no_bypass_by_routing() {
    let (secret, public) = (
        IdServer::start("SECRET").await,
        IdServer::start("PUBLIC").await,
    );
    let mut s = tcpmux("secret", secret.addr, &["db.example.com"]);
    s.route_by_http_user = "admin".into();
    s.http_user = "admin".into();
    s.http_password = "s3cret".into();
    let p = tcpmux("public", public.addr, &["db.example.com"]);
    let (frps, frpc, mux) = start(false, vec![s, p]).await;
    let req = |auth: Option<String>| {
        let mut h = "CONNECT db.example.com:5432 HTTP/1.1\r\n".to_owned();
        if let Some(a) = auth {
            h.push_str(&format!("Proxy-Authorization: {a}\r\n"));
        }
        h.push_str("\r\n");
        h
    };
    let (_, got) = connect(mux, &req(Some(basic("admin", "wrong"))), b"", 0).await;
    assert!(got.starts_with("HTTP/1.1 407 "), "{got}");
    assert!(
        got.contains("Proxy-Authenticate: Basic realm=\"Restricted\""),
        "{got}"
    );
    assert!(!got.contains("SECRET"));
    let (_, got) = connect(mux, &req(Some(basic("admin", "s3cret"))), b"", 0).await;
    assert_eq!(got, format!("{OK}SECRET"));
    let (_, got) = connect(mux, &req(None), b"", 0).await;
    assert_eq!(got, format!("{OK}PUBLIC"));
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn passthrough_forwards_the_connect_request() {
    let echo = echo_tcp().await;
    let (frps, frpc, mux) = start(true, vec![tcpmux("m", echo, &["mux.example.com"])]).await;
    let head = "CONNECT mux.example.com:443 HTTP/1.1\r\nHost: mux.example.com:443\r\n\r\n";
    let (_, got) = connect(mux, head, b"x", head.len() + 1).await;
    assert_eq!(
        got,
        format!("{head}x"),
        "the backend sees the CONNECT request itself"
    );
    frpc.stop().await;
    frps.stop().await;
}

/// tcpmux load-balancing groups: members from several frpc share one (domain,
/// routeByHTTPUser) route; users go to the members in turn; frp's group errors; the route goes
/// away with the last member.
#[tokio::test]
async fn load_balancing_group_shares_a_route() {
    let (a, b) = (IdServer::start("A").await, IdServer::start("B").await);
    let member = |n: &str, be: SocketAddr, key: &str, user: &str| {
        let mut p = tcpmux(n, be, &["lb.example.com"]);
        p.load_balancer.group = "mux".into();
        p.load_balancer.group_key = key.into();
        p.route_by_http_user = user.into();
        p
    };
    let (frps, first, mux) = start(false, vec![member("a", a.addr, "k", "")]).await;
    let second = Frpc::start(frps.addr, |c| {
        c.proxies = vec![member("b", b.addr, "k", "")]
    });
    second.wait_running("b").await;
    let head = "CONNECT lb.example.com:22 HTTP/1.1\r\n\r\n";
    let id = || async { connect(mux, head, b"", 0).await.1 };
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        seen.insert(id().await);
    }
    assert_eq!(seen, [format!("{OK}A"), format!("{OK}B")].into());

    let third = Frpc::start(frps.addr, |c| {
        c.proxies = vec![
            member("c", b.addr, "other", ""),
            member("d", b.addr, "k", "someone"),
            {
                // Other credentials: never served under the group's.
                let mut e = member("e", b.addr, "k", "");
                e.http_user = "u".into();
                e.http_password = "p".into();
                e
            },
        ];
    });
    expect_start_errors(
        &third,
        &[
            ("c", "group auth failed"),
            ("d", "group params invalid"),
            ("e", "group params invalid"),
        ],
    )
    .await;
    third.stop().await;
    last_members_leave(first, second, id, format!("{OK}B"), |got: &String| {
        got.starts_with("HTTP/1.1 404 ")
    })
    .await;
    frps.stop().await;
}
