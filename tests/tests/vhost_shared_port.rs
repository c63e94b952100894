//! `vhostHTTPPort` / `vhostHTTPSPort` equal to `bindPort`: one listener, split by the first bytes
//! as frp's golib `net/mux` does (spec 3.4): an HTTP method goes to the HTTP vhost, a TLS
//! ClientHello (0x16) to the HTTPS vhost when it shares the port, 0x17 and (otherwise) 0x16 to
//! frp's own TLS, anything else to plain frp.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::config::ProxyConfig;
use tests::http_backend::{self as backend, get};
use tests::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;

fn with_domain(mut p: ProxyConfig, domain: &str) -> ProxyConfig {
    p.custom_domains = vec![domain.into()];
    p
}

/// HTTP for the proxy's domain on bindPort reaches it; frpc logged in on the same port.
async fn http_on_bind_port(tcp_mux: bool) {
    init_log();
    let port = free_port().await;
    let frps = Frps::start(|c| {
        c.bind_port = port;
        c.vhost_http_port = port;
        c.transport.tcp_mux = tcp_mux;
    })
    .await;
    assert_eq!(frps.addr.port(), port);
    let web = backend::start("WEB").await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.transport.tcp_mux = tcp_mux;
        c.proxies = vec![with_domain(
            proxy("web", "http", web, 0),
            "shared.example.com",
        )];
    });
    frpc.wait_running("web").await;
    let a = get(frps.addr, "shared.example.com", "/", &[]).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.text().lines().next(), Some("WEB"));
    // Unknown host: frp's 404 from the same listener.
    assert_eq!(
        get(frps.addr, "nobody.example.com", "/", &[]).await.status,
        404
    );
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn http_vhost_shares_bind_port_with_tcp_mux() {
    http_on_bind_port(true).await;
}

#[tokio::test]
async fn http_vhost_shares_bind_port_without_tcp_mux() {
    http_on_bind_port(false).await;
}

/// TLS by SNI on bindPort reaches the https proxy; frpc (TLS, with the 0x17 first byte frp
/// requires here) logged in on the same port.
#[tokio::test]
async fn https_vhost_shares_bind_port() {
    init_log();
    let port = free_port().await;
    let frps = Frps::start(|c| {
        c.bind_port = port;
        c.vhost_https_port = port;
    })
    .await;
    let t = tls_backend("TLS").await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.transport.tls.disable_custom_tls_first_byte = false;
        c.proxies = vec![with_domain(
            proxy("secure", "https", t, 0),
            "tls.example.com",
        )];
    });
    frpc.wait_running("secure").await;
    let cfg = common::transport::tls::client_config(&Default::default()).unwrap();
    let go = async {
        let tcp = TcpStream::connect(frps.addr).await.unwrap();
        let sni = ServerName::try_from("tls.example.com".to_owned()).unwrap();
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(sni, tcp)
            .await
            .unwrap();
        let mut line = String::new();
        BufReader::new(tls).read_line(&mut line).await.unwrap();
        line
    };
    let line = tokio::time::timeout(PATIENCE, go).await.expect("in time");
    assert_eq!(line, "TLS\n");
    frpc.stop().await;
    frps.stop().await;
}

/// Bytes that are neither HTTP, TLS nor frp are closed on the shared port.
#[tokio::test]
async fn garbage_on_shared_port_is_closed() {
    init_log();
    let port = free_port().await;
    let frps = Frps::start(|c| {
        c.bind_port = port;
        c.vhost_http_port = port;
        c.vhost_https_port = port;
    })
    .await;
    for junk in [
        &b"\x01\x02garbage garbage\r\n\r\n"[..],
        b"GEX / HTTP/1.1\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(frps.addr).await.unwrap();
        s.write_all(junk).await.unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(PATIENCE, s.read_to_end(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(_)) | Ok(Err(_))),
            "shared port kept a garbage connection open"
        );
        assert!(
            !String::from_utf8_lossy(&buf).starts_with("HTTP/"),
            "{buf:?}"
        );
    }
    frps.stop().await;
}

/// A web user on the shared port is no frpc waiting to log in: it leaves the pre-login
/// admission, so open keep-alive connections do not use up the room for unauthenticated ones
/// (here one), and frpc still logs in while they stay open.
#[tokio::test]
async fn web_users_leave_the_pre_login_admission() {
    init_log();
    let port = free_port().await;
    let limits = frps::Limits {
        pending_connections: 1,
        ..Default::default()
    };
    let frps = Frps::start_with(limits, |c| {
        c.bind_port = port;
        c.vhost_http_port = port;
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut sender = backend::connect(frps.addr).await;
        let req = hyper::Request::get("/")
            .header("host", "nobody.example.com")
            .body(backend::empty())
            .unwrap();
        assert_eq!(backend::send(&mut sender, req).await.status, 404);
        open.push(sender);
    }
    eventually("web users no longer count as unauthenticated", || {
        frps.stats.unauthenticated_connections() == 0
    })
    .await;
    let web = backend::start("WEB").await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.proxies = vec![with_domain(proxy("web", "http", web, 0), "a.example.com")];
    });
    frpc.wait_running("web").await;
    let req = hyper::Request::get("/")
        .header("host", "a.example.com")
        .body(backend::empty())
        .unwrap();
    let a = backend::send(&mut open[0], req).await;
    assert_eq!(a.text().lines().next(), Some("WEB"));
    drop(open);
    frpc.stop().await;
    frps.stop().await;
}
