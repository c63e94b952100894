//! https proxies: frps routes TLS by the ClientHello's server name on `vhostHTTPSPort` without
//! terminating TLS; the TLS session is between the user and the backend (real rustls on both
//! ends, a self-signed backend certificate from rcgen via common::transport::tls).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::config::ProxyConfig;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use tests::*;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;

/// Writes at most one byte per write: the ClientHello arrives in many small segments.
struct Trickle(TcpStream);

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Trickle {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = data.len().min(1);
        Pin::new(&mut self.0).poll_write(cx, &data[..n])
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// TLS to `vhost` with server name `sni`; returns the backend's id line and checks an echo.
async fn tls_id<S>(io: S, sni: ServerName<'static>) -> Option<String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let cfg = common::transport::tls::client_config(&Default::default()).unwrap();
    let go = async {
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(sni, io)
            .await
            .ok()?;
        let mut r = BufReader::new(tls);
        let mut line = String::new();
        r.read_line(&mut line).await.ok()?;
        r.get_mut().write_all(b"ping\n").await.ok()?;
        let mut echo = String::new();
        r.read_line(&mut echo).await.ok()?;
        assert_eq!(echo, "ping\n");
        Some(line.trim_end().to_owned())
    };
    tokio::time::timeout(PATIENCE, go)
        .await
        .expect("tls exchange in time")
}

fn name(s: &str) -> ServerName<'static> {
    ServerName::try_from(s.to_owned()).unwrap()
}

fn https(name: &str, local: SocketAddr, domains: &[&str]) -> ProxyConfig {
    let mut p = proxy(name, "https", local, 0);
    p.custom_domains = domains.iter().map(|d| d.to_string()).collect();
    p
}

#[tokio::test]
async fn routes_tls_by_sni_without_terminating_it() {
    init_log();
    let (t1, t2, t3) = (
        tls_backend("T1").await,
        tls_backend("T2").await,
        tls_backend("T3").await,
    );
    let port = free_port().await;
    let frps = Frps::start(|c| {
        c.vhost_https_port = port;
        c.sub_domain_host = "frps.test".into();
    })
    .await;
    let mut sub = proxy("sub", "https", t3, 0);
    sub.subdomain = "app".into();
    let frpc = Frpc::start(frps.addr, |c| {
        c.proxies = vec![
            https("exact", t1, &["tls.example.com"]),
            https("wild", t2, &["*.wild.example.com"]),
            sub,
        ];
    });
    for n in ["exact", "wild", "sub"] {
        frpc.wait_running(n).await;
    }
    assert_eq!(
        frpc.wait_running("exact").await.remote_addr,
        format!("tls.example.com:{port}")
    );
    let vhost = frps.vhost_https.unwrap();
    let conn = || async { TcpStream::connect(vhost).await.unwrap() };
    assert_eq!(
        tls_id(conn().await, name("tls.example.com"))
            .await
            .as_deref(),
        Some("T1")
    );
    assert_eq!(
        tls_id(conn().await, name("TLS.Example.com"))
            .await
            .as_deref(),
        Some("T1")
    );
    assert_eq!(
        tls_id(conn().await, name("a.b.wild.example.com"))
            .await
            .as_deref(),
        Some("T2")
    );
    assert_eq!(
        tls_id(conn().await, name("app.frps.test")).await.as_deref(),
        Some("T3")
    );
    // A ClientHello in one-byte pieces.
    let trickle = Trickle(conn().await);
    let _ = trickle.0.set_nodelay(true);
    assert_eq!(
        tls_id(trickle, name("tls.example.com")).await.as_deref(),
        Some("T1")
    );
    // Unknown name, and no name at all (an IP address is not sent as SNI): closed.
    assert_eq!(tls_id(conn().await, name("nope.example.com")).await, None);
    let ip = ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    assert_eq!(tls_id(conn().await, ip).await, None);
    // Not TLS at all: closed, and the server goes on.
    let mut plain = conn().await;
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: tls.example.com\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(
        PATIENCE,
        tokio::io::AsyncReadExt::read_to_end(&mut plain, &mut rest),
    )
    .await
    .expect("closed in time");
    assert!(rest.is_empty());
    assert_eq!(
        tls_id(conn().await, name("tls.example.com"))
            .await
            .as_deref(),
        Some("T1")
    );

    // Closing the proxies removes their routes.
    frpc.stop().await;
    wait_until("route still served after close", || async {
        tls_id(conn().await, name("tls.example.com"))
            .await
            .is_none()
    })
    .await;
    frps.stop().await;
}

#[tokio::test]
async fn https_refused_without_vhost_https_port() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let be = tls_backend("X").await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.proxies = vec![https("t", be, &["t.example.com"])]
    });
    assert_eq!(
        frpc.wait_phase("t", frpc::status::Phase::StartError)
            .await
            .error,
        "type [https] not supported when vhost https port is not set"
    );
    frpc.stop().await;
    frps.stop().await;
}

/// https load-balancing groups: members from several frpc share one SNI route; users go to
/// the members in turn; frp's group errors; the route goes away with the last member.
#[tokio::test]
async fn load_balancing_group_shares_a_route() {
    init_log();
    let (a, b) = (tls_backend("A").await, tls_backend("B").await);
    let member = |n: &str, be: SocketAddr, key: &str, domain: &str| {
        let mut p = https(n, be, &[domain]);
        p.load_balancer.group = "tls".into();
        p.load_balancer.group_key = key.into();
        p
    };
    let port = free_port().await;
    let frps = Frps::start(|c| c.vhost_https_port = port).await;
    let first = Frpc::start(frps.addr, |c| {
        c.proxies = vec![member("a", a, "k", "lb.example.com")]
    });
    first.wait_running("a").await;
    let second = Frpc::start(frps.addr, |c| {
        c.proxies = vec![member("b", b, "k", "lb.example.com")]
    });
    second.wait_running("b").await;
    let vhost = frps.vhost_https.unwrap();
    let id = || async {
        tls_id(
            TcpStream::connect(vhost).await.unwrap(),
            name("lb.example.com"),
        )
        .await
    };
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        seen.insert(id().await.unwrap());
    }
    assert_eq!(seen, ["A".to_string(), "B".to_string()].into());

    let third = Frpc::start(frps.addr, |c| {
        c.proxies = vec![
            member("c", b, "other", "lb.example.com"),
            member("d", b, "k", "other.example.com"),
        ];
    });
    expect_start_errors(
        &third,
        &[("c", "group auth failed"), ("d", "group params invalid")],
    )
    .await;
    third.stop().await;
    last_members_leave(first, second, id, Some("B".to_string()), Option::is_none).await;
    frps.stop().await;
}

/// Opens `n` connections to `addr`, every other one sending the start of `partial` and then
/// nothing more (a slow head or ClientHello), the rest sending nothing at all.
async fn hold_idle(addr: SocketAddr, n: usize, partial: &[u8]) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = tokio::time::timeout(PATIENCE, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .unwrap();
        if i % 2 == 1 {
            s.write_all(partial).await.unwrap();
        }
        held.push(s);
    }
    held
}

/// Bad input: a thousand idle or stalled connections on each of vhostHTTPPort and
/// vhostHTTPSPort do not keep other users from being served on both ports (the listeners
/// accept in order, so a later user's answer means every held connection was accepted first).
/// The held ones are closed by the header-read / ClientHello timeouts (60 s / 30 s, no knob;
/// covered with a paused clock by the frps unit tests `silent_connections_are_closed_too` and
/// `slow_headers_are_closed_by_the_header_read_timeout`).
#[tokio::test]
async fn thousands_of_idle_connections_leave_other_users_unaffected() {
    const IDLE: usize = 1000;
    init_log();
    let web = tests::http_backend::start("WEB").await;
    let t1 = tls_backend("T1").await;
    let (hp, sp) = (free_port().await, free_port().await);
    let frps = Frps::start(|c| {
        c.vhost_http_port = hp;
        c.vhost_https_port = sp;
    })
    .await;
    let mut http = proxy("web", "http", web, 0);
    http.custom_domains = vec!["web.example.com".into()];
    let frpc = Frpc::start(frps.addr, |c| {
        c.proxies = vec![http, https("tls", t1, &["tls.example.com"])];
    });
    frpc.wait_running("web").await;
    frpc.wait_running("tls").await;
    let (vh, vs) = (frps.vhost_http.unwrap(), frps.vhost_https.unwrap());

    let held_http = hold_idle(
        vh,
        IDLE,
        b"GET / HTTP/1.1\r\nHost: web.example.com\r\nX-Slow: ",
    )
    .await;
    let held_https = hold_idle(vs, IDLE, &[0x16, 3, 1, 0x02, 0x00, 0x01, 0x00]).await;

    let answer = tests::http_backend::get(vh, "web.example.com", "/", &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text().lines().next(), Some("WEB"));
    let conn = TcpStream::connect(vs).await.unwrap();
    assert_eq!(
        tls_id(conn, name("tls.example.com")).await.as_deref(),
        Some("T1")
    );

    // Letting them go changes nothing for the others.
    drop((held_http, held_https));
    let answer = tests::http_backend::get(vh, "web.example.com", "/", &[]).await;
    assert_eq!(answer.status, 200);
    frpc.stop().await;
    frps.stop().await;
}
