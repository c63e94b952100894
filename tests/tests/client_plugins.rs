//! Client plugins (issue 15): each plugin behind a real frps tunnel, driven by real clients
//! written here (a SOCKS5 client from RFC 1928/1929, raw HTTP, hyper over rustls with rcgen
//! certificates, a Unix-socket echo server).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::config::{PluginConfig, ProxyConfig};
use common::http::BasicAuth;
use frpc::status::Phase;
use hyper::{Method, StatusCode};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tests::http_backend::{self, basic};
use tests::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

fn plugin(kind: &str) -> PluginConfig {
    PluginConfig {
        kind: kind.into(),
        ..Default::default()
    }
}

/// A tcp proxy served by `pl`; frps picks the port.
fn plugged(name: &str, pl: PluginConfig) -> ProxyConfig {
    ProxyConfig {
        name: name.into(),
        kind: "tcp".into(),
        plugin: Some(pl),
        ..Default::default()
    }
}

/// Starts frps and frpc with `proxies`; returns them and each proxy's public address.
async fn start(proxies: Vec<ProxyConfig>) -> (Frps, Frpc, Vec<SocketAddr>) {
    let frps = Frps::start(|_| {}).await;
    let names: Vec<String> = proxies.iter().map(|p| p.name.clone()).collect();
    let frpc = Frpc::start(frps.addr, |c| c.proxies = proxies);
    let mut addrs = Vec::new();
    for n in &names {
        let s = frpc.wait_running(n).await;
        addrs.push(SocketAddr::from(([127, 0, 0, 1], remote_port(&s))));
    }
    (frps, frpc, addrs)
}

/// Reads until the peer closes (bounded by [`PATIENCE`]).
async fn read_all<S: AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut out))
        .await
        .expect("peer closes in time")
        .ok();
    out
}

/// Sends raw bytes and returns everything until the server closes.
async fn raw(addr: SocketAddr, req: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(req).await.expect("write");
    String::from_utf8_lossy(&read_all(&mut s).await).into_owned()
}

/// Reads exactly `n` bytes within [`PATIENCE`].
async fn read_n<S: AsyncRead + Unpin>(s: &mut S, n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut b))
        .await
        .expect("answer in time")
        .expect("answer");
    b
}

/// Writes `data`, reads as many bytes back: a round trip through an echo service.
async fn echo_round<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, data: &[u8]) {
    s.write_all(data).await.expect("write");
    assert_eq!(read_n(s, data.len()).await, data);
}

/// Reads an HTTP response head (up to the blank line).
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let b = read_n(s, 1).await;
        head.extend_from_slice(&b);
        assert!(head.len() < 8192, "head too long");
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn http_proxy_connect_and_plain_requests_with_credentials() {
    init_log();
    let echo = echo_tcp().await;
    let backend = http_backend::start("origin").await;
    let mut pl = plugin("http_proxy");
    pl.http_user = "u".into();
    pl.http_password = "p".into();
    let mut p = plugged("hp", pl);
    p.transport.use_encryption = true;
    p.transport.use_compression = true;
    let (frps, frpc, addrs) = start(vec![p]).await;
    let hp = addrs[0];
    let good = basic("u", "p");

    // CONNECT with the right credentials: 200, then a tunnel to the echo service.
    let mut s = TcpStream::connect(hp).await.unwrap();
    let req =
        format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\nProxy-Authorization: {good}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    assert_eq!(read_head(&mut s).await, "HTTP/1.1 200 OK\r\n\r\n");
    echo_round(&mut s, &pattern(100_000, 1)).await;
    drop(s);

    // Wrong or missing credentials: frp's 407, then the connection closes.
    for auth in [basic("u", "x"), String::new()] {
        let hdr = if auth.is_empty() {
            String::new()
        } else {
            format!("Proxy-Authorization: {auth}\r\n")
        };
        let got = raw(
            hp,
            format!("CONNECT {echo} HTTP/1.1\r\n{hdr}\r\n").as_bytes(),
        )
        .await;
        assert!(got.starts_with("HTTP/1.1 407 Not authorized\r\n"), "{got}");
        assert!(got.contains("Proxy-Authenticate: Basic\r\n"), "{got}");
    }

    // A plain request with an absolute URI goes to the origin, without the proxy headers.
    let got = raw(
        hp,
        format!("GET http://{backend}/x?y=1 HTTP/1.1\r\nHost: {backend}\r\nProxy-Authorization: {good}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.contains("origin\nGET /x?y=1\n"), "{got}");
    assert!(
        !got.to_ascii_lowercase().contains("proxy-authorization"),
        "{got}"
    );
    let got = raw(
        hp,
        format!("GET http://{backend}/x HTTP/1.1\r\nHost: {backend}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 407 "), "{got}");
    assert!(
        got.to_ascii_lowercase()
            .contains("proxy-authenticate: basic"),
        "{got}"
    );

    // Malformed CONNECT lines: closed without an answer; the proxy still serves afterwards.
    for bad in [
        &b"CONNECT nohost HTTP/1.1\r\n\r\n"[..],
        b"CONNECT a:b:c HTTP/1.1\r\n\r\n",
        b"CONNECT \x01\x02 \r\n\r\n",
    ] {
        assert_eq!(raw(hp, bad).await, "", "{bad:?}");
    }
    let mut s = TcpStream::connect(hp).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    assert_eq!(read_head(&mut s).await, "HTTP/1.1 200 OK\r\n\r\n");
    echo_round(&mut s, b"still works").await;
    frpc.stop().await;
    frps.stop().await;
}

/// The SOCKS5 client side of RFC 1928 (and 1929 when `creds` is given) up to the reply.
async fn socks5_connect(
    s: &mut TcpStream,
    creds: Option<(&str, &str)>,
    cmd: u8,
    addr: &[u8],
    port: u16,
) -> Vec<u8> {
    let method = if creds.is_some() { 2 } else { 0 };
    s.write_all(&[5, 1, method]).await.unwrap();
    assert_eq!(read_n(s, 2).await, [5, method]);
    if let Some((u, p)) = creds {
        let mut m = vec![1, u.len() as u8];
        m.extend_from_slice(u.as_bytes());
        m.push(p.len() as u8);
        m.extend_from_slice(p.as_bytes());
        s.write_all(&m).await.unwrap();
        assert_eq!(read_n(s, 2).await, [1, 0], "auth accepted");
    }
    let mut m = vec![5, cmd, 0];
    m.extend_from_slice(addr);
    m.extend_from_slice(&port.to_be_bytes());
    s.write_all(&m).await.unwrap();
    let head = read_n(s, 4).await;
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        t => panic!("reply address type {t}"),
    };
    let mut r = head;
    r.extend(read_n(s, rest).await);
    r
}

/// An echo server on [::1], if the machine has IPv6 loopback.
async fn echo_tcp_v6() -> Option<SocketAddr> {
    let l = tokio::net::TcpListener::bind("[::1]:0").await.ok()?;
    let addr = l.local_addr().ok()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Some(addr)
}

#[tokio::test]
async fn socks5_connects_by_ipv4_ipv6_and_domain_with_credentials() {
    init_log();
    let echo = echo_tcp().await;
    let mut pl = plugin("socks5");
    pl.username = "alice".into();
    pl.password = "secret".into();
    let mut auth = plugged("s5auth", pl);
    auth.transport.use_encryption = true;
    auth.transport.use_compression = true;
    let (frps, frpc, addrs) = start(vec![auth, plugged("s5open", plugin("socks5"))]).await;
    let (with_auth, open) = (addrs[0], addrs[1]);
    let creds = Some(("alice", "secret"));

    // IPv4 with user/password.
    let mut s = TcpStream::connect(with_auth).await.unwrap();
    let mut a = vec![1];
    a.extend_from_slice(&[127, 0, 0, 1]);
    let r = socks5_connect(&mut s, creds, 1, &a, echo.port()).await;
    assert_eq!(r[..2], [5, 0], "succeeded");
    echo_round(&mut s, &pattern(50_000, 2)).await;
    drop(s);
    // A domain name, without authentication on the open proxy.
    let mut s = TcpStream::connect(open).await.unwrap();
    let mut a = vec![3, 9];
    a.extend_from_slice(b"localhost");
    let r = socks5_connect(&mut s, None, 1, &a, echo.port()).await;
    assert_eq!(r[..2], [5, 0]);
    echo_round(&mut s, b"by name").await;
    drop(s);
    // IPv6.
    if let Some(v6) = echo_tcp_v6().await {
        let mut s = TcpStream::connect(open).await.unwrap();
        let mut a = vec![4];
        a.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        let r = socks5_connect(&mut s, None, 1, &a, v6.port()).await;
        assert_eq!(r[..2], [5, 0]);
        echo_round(&mut s, b"by v6").await;
    }
    // UDP ASSOCIATE and BIND: "command not supported", as go-socks5 (frp) answers.
    for cmd in [2u8, 3] {
        let mut s = TcpStream::connect(open).await.unwrap();
        let r = socks5_connect(&mut s, None, cmd, &[1, 127, 0, 0, 1], 1).await;
        assert_eq!(r[..2], [5, 7], "cmd {cmd}");
    }
    // Connection refused is reported as such.
    let closed = free_port().await;
    let mut s = TcpStream::connect(open).await.unwrap();
    let r = socks5_connect(&mut s, None, 1, &[1, 127, 0, 0, 1], closed).await;
    assert_eq!(r[..2], [5, 5]);

    // Wrong password: RFC 1929 failure, then close.
    let mut s = TcpStream::connect(with_auth).await.unwrap();
    s.write_all(&[5, 1, 2]).await.unwrap();
    assert_eq!(read_n(&mut s, 2).await, [5, 2]);
    s.write_all(&[1, 5, b'a', b'l', b'i', b'c', b'e', 1, b'x'])
        .await
        .unwrap();
    assert_eq!(read_all(&mut s).await, [1, 1]);
    // No acceptable method (no auth offered to the proxy that needs it).
    let mut s = TcpStream::connect(with_auth).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    assert_eq!(read_all(&mut s).await, [5, 0xff]);
    // Bad greeting (SOCKS4) and a client that stops half way: closed.
    assert_eq!(raw(open, &[4, 1, 0, 80, 127, 0, 0, 1, 0]).await, "");
    let mut s = TcpStream::connect(open).await.unwrap();
    s.write_all(&[5, 2, 0]).await.unwrap();
    s.shutdown().await.unwrap();
    assert!(read_all(&mut s).await.is_empty());
    // Unknown address type: reply 8.
    let mut s = TcpStream::connect(open).await.unwrap();
    s.write_all(&[5, 1, 0, 5, 1, 0, 9, 0, 0]).await.unwrap();
    let got = read_all(&mut s).await;
    assert_eq!(got[..4], [5, 0, 5, 8]);
    // And the proxy still works.
    let mut s = TcpStream::connect(with_auth).await.unwrap();
    let r = socks5_connect(&mut s, creds, 1, &[1, 127, 0, 0, 1], echo.port()).await;
    assert_eq!(r[..2], [5, 0]);
    echo_round(&mut s, b"again").await;
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn static_file_serves_files_listings_ranges_and_refuses_escapes() {
    init_log();
    let dir = temp_dir("static");
    let root = dir.join("www");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(dir.join("outside")).unwrap();
    std::fs::write(root.join("a.txt"), "hello static world").unwrap();
    std::fs::write(root.join("sub/page.html"), "<p>hi</p>").unwrap();
    std::fs::create_dir_all(root.join("site")).unwrap();
    std::fs::write(root.join("site/index.html"), "<h1>index</h1>").unwrap();
    std::fs::write(dir.join("outside/secret"), "TOP-SECRET").unwrap();
    std::os::unix::fs::symlink(dir.join("outside/secret"), root.join("link")).unwrap();
    std::os::unix::fs::symlink(dir.join("outside"), root.join("dirlink")).unwrap();
    std::fs::write(root.join("inner-target"), "inner").unwrap();
    std::os::unix::fs::symlink(root.join("inner-target"), root.join("inner-link")).unwrap();
    let mut pl = plugin("static_file");
    pl.local_path = root.display().to_string();
    pl.strip_prefix = "static".into();
    pl.http_user = "u".into();
    pl.http_password = "p".into();
    let mut p = plugged("sf", pl);
    p.transport.use_encryption = true;
    p.transport.use_compression = true;
    let (frps, frpc, addrs) = start(vec![p]).await;
    let sf = addrs[0];
    let auth = basic("u", "p");
    let get = |path: &'static str, extra: Vec<(&'static str, String)>| {
        let auth = auth.clone();
        async move {
            let mut h: Vec<(&str, &str)> = vec![("authorization", auth.as_str())];
            h.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
            http_backend::get(sf, "files", path, &h).await
        }
    };

    let a = get("/static/a.txt", vec![]).await;
    assert_eq!((a.status, a.text().as_str()), (200, "hello static world"));
    assert_eq!(a.headers["content-type"], "text/plain; charset=utf-8");
    let a = get("/static/sub/page.html", vec![]).await;
    assert_eq!(a.headers["content-type"], "text/html; charset=utf-8");
    // gzip when accepted (frp's gzip wrapper).
    let a = get("/static/a.txt", vec![("accept-encoding", "gzip".into())]).await;
    assert_eq!(a.headers["content-encoding"], "gzip");
    let mut plain = String::new();
    async_compression::tokio::bufread::GzipDecoder::new(&a.body[..])
        .read_to_string(&mut plain)
        .await
        .unwrap();
    assert_eq!(plain, "hello static world");
    // Ranges.
    let a = get("/static/a.txt", vec![("range", "bytes=6-11".into())]).await;
    assert_eq!((a.status, a.text().as_str()), (206, "static"));
    assert_eq!(a.headers["content-range"], "bytes 6-11/18");
    let a = get("/static/a.txt", vec![("range", "bytes=100-".into())]).await;
    assert_eq!(a.status, 416);
    // Listings and the trailing-slash redirect.
    let a = get("/static/", vec![]).await;
    assert_eq!(a.status, 200);
    for l in ["<a href=\"a.txt\">a.txt</a>", "<a href=\"sub/\">sub/</a>"] {
        assert!(a.text().contains(l), "{}", a.text());
    }
    let a = get("/static/sub", vec![]).await;
    assert_eq!(
        (a.status, a.headers["location"].to_str().unwrap()),
        (301, "sub/")
    );
    // A directory with an index.html serves it; asking for index.html redirects to the dir.
    assert_eq!(get("/static/site/", vec![]).await.text(), "<h1>index</h1>");
    let a = get("/static/site/index.html", vec![]).await;
    assert_eq!(
        (a.status, a.headers["location"].to_str().unwrap()),
        (301, "./")
    );
    // GET only.
    let got = raw(
        sf,
        format!("POST /static/a.txt HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 405 "), "{got}");
    // A symlink inside the tree is served.
    assert_eq!(get("/static/inner-link", vec![]).await.text(), "inner");
    // Credentials: missing or wrong get 401.
    for h in [vec![], vec![("authorization", basic("u", "bad"))]] {
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let a = http_backend::get(sf, "files", "/static/a.txt", &h).await;
        assert_eq!(a.status, 401);
        assert_eq!(a.headers["www-authenticate"], "Basic realm=\"Restricted\"");
    }
    // Outside the prefix.
    assert_eq!(get("/a.txt", vec![]).await.status, 404);
    // Escapes: dot-dot (raw and percent-encoded), symlinks out of localPath.
    for path in [
        "/static/../outside/secret",
        "/static/../../outside/secret",
        "/static/%2e%2e/outside/secret",
        "/static/%2E%2E%2Foutside%2Fsecret",
        "/static/sub/..%2f..%2foutside/secret",
        "/static/link",
        "/static/dirlink/secret",
    ] {
        let got = raw(
            sf,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert!(!got.contains("TOP-SECRET"), "{path}: {got}");
        assert!(got.starts_with("HTTP/1.1 404 "), "{path}: {got}");
    }
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn unix_domain_socket_gets_the_proxy_protocol_header_first() {
    init_log();
    let dir = temp_dir("uds");
    let path = dir.join("echo.sock");
    let l = tokio::net::UnixListener::bind(&path).unwrap();
    let (head_tx, mut head_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let head_tx = head_tx.clone();
            tokio::spawn(async move {
                // The v1 header is one line; then echo.
                let mut line = Vec::new();
                while !line.ends_with(b"\r\n") {
                    let mut b = [0u8; 1];
                    if s.read_exact(&mut b).await.is_err() {
                        return;
                    }
                    line.push(b[0]);
                }
                let _ = head_tx.send(line).await;
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let mut pl = plugin("unix_domain_socket");
    pl.unix_path = path.display().to_string();
    let mut p = plugged("uds", pl);
    p.transport.proxy_protocol_version = "v1".into();
    p.transport.use_encryption = true;
    let (frps, frpc, addrs) = start(vec![p]).await;
    let mut s = TcpStream::connect(addrs[0]).await.unwrap();
    let me = s.local_addr().unwrap();
    echo_round(&mut s, &pattern(200_000, 3)).await;
    let head = tokio::time::timeout(PATIENCE, head_rx.recv())
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8(head).unwrap();
    assert!(
        head.starts_with(&format!("PROXY TCP4 127.0.0.1 127.0.0.1 {} ", me.port())),
        "{head}"
    );
    frpc.stop().await;
    frps.stop().await;
}

/// Writes a certificate for `names` (and its key) under `dir`; returns (cert, key) paths.
fn cert_files(dir: &Path, names: &[&str]) -> (String, String) {
    let ck =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, ck.cert.pem()).unwrap();
    std::fs::write(&k, ck.key_pair.serialize_pem()).unwrap();
    (c.display().to_string(), k.display().to_string())
}

/// A TLS client connection with `sni` and `alpn`, trusting `ca` (or anything when `None`).
async fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    alpn: &[&[u8]],
    ca: Option<&str>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let files = common::transport::tls::TlsFiles {
        trusted_ca_file: ca.map(Into::into),
        ..Default::default()
    };
    let mut cfg = (*common::transport::tls::client_config(&files).unwrap()).clone();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    tokio::time::timeout(
        PATIENCE,
        tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp),
    )
    .await
    .expect("tls in time")
    .expect("tls handshake")
}

/// GET `path` over an HTTP/1.1 connection on `io`.
async fn get_on<S: AsyncRead + AsyncWrite + Send + Unpin + 'static>(
    io: S,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> http_backend::Answer {
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut b = hyper::Request::get(path).header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    http_backend::send(&mut sender, b.body(http_backend::empty()).unwrap()).await
}

/// The value of header `name` in the backend's echo of a request.
fn seen(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn forwarded_chain_through_http2https_and_https2http() {
    init_log();
    let https_backend = http_backend::start_tls("secure-backend").await;
    let http_backend_addr = http_backend::start("plain-backend").await;
    let vhost = free_port().await;
    let frps = Frps::start(|c| c.vhost_http_port = vhost).await;
    let vhost: SocketAddr = ([127, 0, 0, 1], vhost).into();

    let mut h2s = plugin("http2https");
    h2s.local_addr = https_backend.to_string();
    h2s.host_header_rewrite = "backend.internal".into();
    h2s.request_headers
        .set
        .insert("x-from-plugin".into(), "h2s".into());
    let mut web = plugged("web", h2s);
    web.kind = "http".into();
    web.custom_domains = vec!["web.example".into()];
    web.transport.use_encryption = true;
    web.transport.use_compression = true;

    let mut s2h = plugin("https2http");
    s2h.local_addr = http_backend_addr.to_string();
    s2h.request_headers
        .set
        .insert("x-from-plugin".into(), "s2h".into());
    let term = plugged("term", s2h);

    let frpc = Frpc::start(frps.addr, |c| c.proxies = vec![web, term]);
    frpc.wait_running("web").await;
    let term_addr: SocketAddr = (
        [127, 0, 0, 1],
        remote_port(&frpc.wait_running("term").await),
    )
        .into();

    // http2https behind frps's vhost: frps appends the user's address to X-Forwarded-For; the
    // plugin passes the chain on as received.
    let a = http_backend::get(
        vhost,
        "web.example",
        "/chain",
        &[("x-forwarded-for", "1.2.3.4")],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let t = a.text();
    assert!(t.starts_with("secure-backend\nGET /chain\n"), "{t}");
    assert_eq!(seen(&t, "x-forwarded-for"), ["1.2.3.4, 127.0.0.1"], "{t}");
    assert_eq!(seen(&t, "host"), ["backend.internal"], "{t}");
    assert_eq!(seen(&t, "x-from-plugin"), ["h2s"], "{t}");

    // https2http: TLS terminated in frpc (self-signed), the user's address (from StartWorkConn)
    // appended to the chain.
    let tls = tls_connect(term_addr, "term.example", &[b"http/1.1"], None).await;
    let a = get_on(tls, "term.example", "/x", &[("x-forwarded-for", "5.6.7.8")]).await;
    let t = a.text();
    assert!(t.starts_with("plain-backend\nGET /x\n"), "{t}");
    assert_eq!(seen(&t, "x-forwarded-for"), ["5.6.7.8, 127.0.0.1"], "{t}");
    assert_eq!(seen(&t, "x-forwarded-proto"), ["https"], "{t}");
    assert_eq!(seen(&t, "x-forwarded-host"), ["term.example"], "{t}");
    assert_eq!(seen(&t, "host"), ["term.example"], "{t}");
    assert_eq!(seen(&t, "x-from-plugin"), ["s2h"], "{t}");
    // A WebSocket-style upgrade passes through: 101, then the backend echoes.
    let mut tls = tls_connect(term_addr, "term.example", &[b"http/1.1"], None).await;
    tls.write_all(b"GET /ws HTTP/1.1\r\nHost: term.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    echo_round(&mut tls, &pattern(70_000, 5)).await;
    drop(tls);
    // SNI and Host differ: 421.
    let tls = tls_connect(term_addr, "term.example", &[b"http/1.1"], None).await;
    assert_eq!(get_on(tls, "other.example", "/x", &[]).await.status, 421);
    // Plain HTTP on the TLS side: Go's 400, and the plugin keeps serving.
    let got = raw(term_addr, b"GET / HTTP/1.1\r\nHost: term.example\r\n\r\n").await;
    assert!(
        got.starts_with(
            "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server."
        ),
        "{got}"
    );
    let tls = tls_connect(term_addr, "term.example", &[b"http/1.1"], None).await;
    assert_eq!(get_on(tls, "term.example", "/x", &[]).await.status, 200);
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn https2https_with_given_certificate_speaks_h2_only_when_enabled() {
    init_log();
    let dir = temp_dir("s2s");
    let (crt, key) = cert_files(&dir, &["secure.example"]);
    let backend = http_backend::start_tls("s2s-backend").await;
    let mk = |name: &str, h2: Option<bool>| {
        let mut pl = plugin("https2https");
        pl.local_addr = backend.to_string();
        pl.crt_path = crt.clone();
        pl.key_path = key.clone();
        pl.enable_http2 = h2;
        plugged(name, pl)
    };
    let (frps, frpc, addrs) = start(vec![mk("s2s", None), mk("s2s-h1", Some(false))]).await;
    let cert_path = dir.join("cert.pem").display().to_string();

    // Default: h2 offered and chosen; the given certificate verifies.
    let tls = tls_connect(
        addrs[0],
        "secure.example",
        &[b"h2", b"http/1.1"],
        Some(&cert_path),
    )
    .await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("https://secure.example/over-h2")
        .body(http_backend::empty())
        .unwrap();
    let resp = tokio::time::timeout(PATIENCE, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = tokio::time::timeout(PATIENCE, http_body_util::BodyExt::collect(resp.into_body()))
        .await
        .expect("body in time")
        .unwrap()
        .to_bytes();
    let t = String::from_utf8_lossy(&body).into_owned();
    assert!(t.starts_with("s2s-backend\nGET /over-h2\n"), "{t}");
    assert_eq!(seen(&t, "x-forwarded-proto"), ["https"], "{t}");
    assert_eq!(seen(&t, "x-forwarded-for"), ["127.0.0.1"], "{t}");

    // enableHTTP2 = false: only HTTP/1.1 is offered.
    let tls = tls_connect(
        addrs[1],
        "secure.example",
        &[b"h2", b"http/1.1"],
        Some(&cert_path),
    )
    .await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let a = get_on(tls, "secure.example", "/h1", &[]).await;
    assert!(
        a.text().starts_with("s2s-backend\nGET /h1\n"),
        "{}",
        a.text()
    );
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn http2http_drops_forwarded_headers_and_rewrites_host() {
    init_log();
    let backend = http_backend::start("h2h").await;
    let mut pl = plugin("http2http");
    pl.local_addr = backend.to_string();
    pl.host_header_rewrite = "rewritten.internal".into();
    let (frps, frpc, addrs) = start(vec![plugged("h2h", pl)]).await;
    let a = http_backend::get(
        addrs[0],
        "public.example",
        "/p?q=1",
        &[("x-forwarded-for", "9.9.9.9")],
    )
    .await;
    let t = a.text();
    assert!(t.starts_with("h2h\nGET /p?q=1\n"), "{t}");
    assert_eq!(seen(&t, "host"), ["rewritten.internal"], "{t}");
    assert!(seen(&t, "x-forwarded-for").is_empty(), "{t}");
    // The upstream is down: 502.
    let mut pl = plugin("http2http");
    pl.local_addr = format!("127.0.0.1:{}", free_port().await);
    let frpc2 = Frpc::start(frps.addr, |c| c.proxies = vec![plugged("down", pl)]);
    let down: SocketAddr = (
        [127, 0, 0, 1],
        remote_port(&frpc2.wait_running("down").await),
    )
        .into();
    assert_eq!(http_backend::get(down, "x", "/", &[]).await.status, 502);
    frpc2.stop().await;
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn tls2raw_terminates_tls_and_passes_raw_bytes() {
    init_log();
    let echo = echo_tcp().await;
    let mut pl = plugin("tls2raw");
    pl.local_addr = echo.to_string();
    let mut p = plugged("t2r", pl);
    p.transport.use_compression = true;
    let (frps, frpc, addrs) = start(vec![p]).await;
    let mut tls = tls_connect(addrs[0], "raw.example", &[], None).await;
    echo_round(&mut tls, &pattern(300_000, 4)).await;
    // Not TLS at all: the handshake fails (a TLS alert at most) and the connection closes.
    let got = raw(addrs[0], b"hello\r\n\r\n").await;
    assert!(!got.contains("hello") && got.len() < 16, "{got:?}");
    let mut tls = tls_connect(addrs[0], "raw.example", &[], None).await;
    echo_round(&mut tls, b"after a bad client").await;
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn a_plugin_that_cannot_start_puts_its_proxy_in_error_and_the_api_shows_plugins() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let admin = free_port().await;
    let mut missing_dir = plugin("static_file");
    missing_dir.local_path = "/nonexistent/frp-rs-static".into();
    let mut missing_cert = plugin("https2http");
    missing_cert.local_addr = "127.0.0.1:1".into();
    missing_cert.crt_path = "/nonexistent/cert.pem".into();
    missing_cert.key_path = "/nonexistent/key.pem".into();
    let frpc = Frpc::start(frps.addr, |c| {
        c.web_server.addr = "127.0.0.1".into();
        c.web_server.port = admin;
        c.proxies = vec![
            plugged("nodir", missing_dir),
            plugged("nocert", missing_cert),
            plugged("vnet", plugin("virtual_net")),
            plugged("good", plugin("socks5")),
            {
                // frp shows localIP:localPort whenever localPort is set, even with a plugin.
                let mut p = plugged("withport", plugin("socks5"));
                p.local_ip = "127.0.0.1".into();
                p.local_port = 8080;
                p
            },
        ];
    });
    frpc.wait_running("good").await;
    for (name, want) in [
        ("nodir", "/nonexistent/frp-rs-static"),
        ("nocert", "/nonexistent/cert.pem"),
        ("vnet", "virtual_net"),
    ] {
        let s = frpc.wait_phase(name, Phase::StartError).await;
        assert!(s.error.contains(want), "{name}: {}", s.error);
    }
    wait_listening(([127, 0, 0, 1], admin).into()).await;
    let addr = format!("127.0.0.1:{admin}");
    let (code, body) = common::http::request(
        &addr,
        &BasicAuth::default(),
        Method::GET,
        "/api/status",
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(code, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rows = v["tcp"].as_array().unwrap();
    let row = |n: &str| rows.iter().find(|r| r["name"] == n).unwrap().clone();
    assert_eq!(row("good")["plugin"], "socks5");
    assert_eq!(row("good")["status"], "running");
    assert_eq!(row("good")["local_addr"], "");
    assert_eq!(row("withport")["local_addr"], "127.0.0.1:8080");
    assert_eq!(row("withport")["plugin"], "socks5");
    assert_eq!(row("nodir")["status"], "start error");
    assert!(row("nodir")["err"]
        .as_str()
        .unwrap()
        .contains("/nonexistent/frp-rs-static"));
    let (code, body) = common::http::request(
        &addr,
        &BasicAuth::default(),
        Method::GET,
        "/api/proxy/good/config",
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(code, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["tcp"]["plugin"],
        serde_json::json!({"type": "socks5"}),
        "{v}"
    );
    // Only the plugin type's own options, empty ones left out (frp's `omitempty`).
    let (_, body) = common::http::request(
        &addr,
        &BasicAuth::default(),
        Method::GET,
        "/api/proxy/nodir/config",
        Default::default(),
    )
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["tcp"]["plugin"],
        serde_json::json!({"type": "static_file", "localPath": "/nonexistent/frp-rs-static"}),
        "{v}"
    );
    frpc.stop().await;
    frps.stop().await;
}

/// The real binaries, configured from TOML as a user would: the README examples' shape.
/// Writes `frpc.toml` in `dir` for the frps on `bind`, with `rest` after the server lines.
fn frpc_toml(dir: &Path, bind: u16, rest: &str) -> String {
    tests::procs::write(
        dir,
        "frpc.toml",
        &format!("serverAddr = \"127.0.0.1\"\nserverPort = {bind}\n{rest}"),
    )
}

#[tokio::test]
async fn plugins_through_the_real_binaries_from_a_toml_file() {
    init_log();
    use tests::procs::{spawn, start_frps, tempdir};
    let dir = tempdir("plugins-bin");
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/hello.txt"), "from the file server").unwrap();
    let echo = echo_tcp().await;
    let (_frps, bind) = start_frps(&dir, "auth.token = \"tok\"\n").await;
    let (hp, s5, sf) = (free_port().await, free_port().await, free_port().await);
    let cfg = frpc_toml(
        &dir,
        bind,
        &format!(
            r#"auth.token = "tok"

[[proxies]]
name = "http-proxy"
type = "tcp"
remotePort = {hp}
transport.useEncryption = true
transport.useCompression = true
[proxies.plugin]
type = "http_proxy"
httpUser = "abc"
httpPassword = "abc"

[[proxies]]
name = "socks5"
type = "tcp"
remotePort = {s5}
[proxies.plugin]
type = "socks5"
username = "abc"
password = "abc"

[[proxies]]
name = "files"
type = "tcp"
remotePort = {sf}
[proxies.plugin]
type = "static_file"
localPath = "{www}"
stripPrefix = "static"
httpUser = "abc"
httpPassword = "abc"
"#,
            www = dir.join("www").display()
        ),
    );
    let out = tests::procs::run("frpc", &["verify", "-c", &cfg]).await;
    assert!(out.status.success(), "{}", tests::procs::stderr(&out));
    let _frpc = spawn("frpc", &["-c", &cfg]);
    let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    for p in [hp, s5, sf] {
        wait_listening(at(p)).await;
    }
    let mut s = TcpStream::connect(at(hp)).await.unwrap();
    let req = format!(
        "CONNECT {echo} HTTP/1.1\r\nProxy-Authorization: {}\r\n\r\n",
        basic("abc", "abc")
    );
    s.write_all(req.as_bytes()).await.unwrap();
    assert_eq!(read_head(&mut s).await, "HTTP/1.1 200 OK\r\n\r\n");
    echo_round(&mut s, b"through the binaries").await;
    let mut s = TcpStream::connect(at(s5)).await.unwrap();
    let r = socks5_connect(
        &mut s,
        Some(("abc", "abc")),
        1,
        &[1, 127, 0, 0, 1],
        echo.port(),
    )
    .await;
    assert_eq!(r[..2], [5, 0]);
    echo_round(&mut s, b"socks").await;
    let auth = basic("abc", "abc");
    let a = http_backend::get(
        at(sf),
        "x",
        "/static/hello.txt",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!((a.status, a.text().as_str()), (200, "from the file server"));
    let _ = std::fs::remove_dir_all(dir);
}

/// The usual setup: an `https` proxy (SNI routing in frps, TLS untouched) whose plugin
/// terminates TLS in frpc; the backend sees the user's address in `X-Forwarded-For`.
#[tokio::test]
async fn https2http_behind_frps_https_vhost() {
    init_log();
    let backend = http_backend::start("vhost-backend").await;
    let port = free_port().await;
    let frps = Frps::start(|c| c.vhost_https_port = port).await;
    let vhost: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut pl = plugin("https2http");
    pl.local_addr = backend.to_string();
    let mut p = plugged("site", pl);
    p.kind = "https".into();
    p.custom_domains = vec!["site.example".into()];
    p.transport.use_encryption = true;
    p.transport.use_compression = true;
    let frpc = Frpc::start(frps.addr, |c| c.proxies = vec![p]);
    frpc.wait_running("site").await;
    let tls = tls_connect(vhost, "site.example", &[b"http/1.1"], None).await;
    let me = tls.get_ref().0.local_addr().unwrap();
    let a = get_on(tls, "site.example", "/v", &[]).await;
    let t = a.text();
    assert!(t.starts_with("vhost-backend\nGET /v\n"), "{t}");
    assert_eq!(seen(&t, "x-forwarded-for"), [me.ip().to_string()], "{t}");
    assert_eq!(seen(&t, "x-forwarded-proto"), ["https"], "{t}");
    frpc.stop().await;
    frps.stop().await;
}

/// A SOCKS5 user picks the domain bytes; frpc's log line for it must stay one line (the
/// domain is quoted with its control bytes escaped), so a user cannot forge log lines.
#[tokio::test]
async fn socks5_domain_with_control_bytes_cannot_forge_log_lines() {
    init_log();
    use tests::procs::{spawn, start_frps, stderr_lines, tempdir, wait_line};
    let dir = tempdir("plugins-socks-log");
    let (_frps, bind) = start_frps(&dir, "").await;
    let s5 = free_port().await;
    let cfg = frpc_toml(
        &dir,
        bind,
        &format!(
            r#"[[proxies]]
name = "socks5"
type = "tcp"
remotePort = {s5}
[proxies.plugin]
type = "socks5"
"#
        ),
    );
    let mut frpc = spawn("frpc", &["-c", &cfg]);
    let mut log = stderr_lines(&mut frpc);
    let at = SocketAddr::from(([127, 0, 0, 1], s5));
    wait_listening(at).await;
    // The NUL makes the lookup fail at once, without asking DNS.
    let domain = b"x\nFORGED INFO login to server success\0";
    let mut addr = vec![3, domain.len() as u8];
    addr.extend_from_slice(domain);
    let mut s = TcpStream::connect(at).await.unwrap();
    let r = socks5_connect(&mut s, None, 1, &addr, 9).await;
    assert_eq!(r[..2], [5, 4], "host unreachable");
    let line = wait_line(&mut log, "socks5: connect failed").await;
    assert!(
        line.contains(r#"x\nFORGED INFO login to server success\0"#),
        "the whole domain, escaped, on the one line: {line}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// An upstream (`localAddr`) that accepts TCP but never answers the TLS handshake gets the
/// request a 502 after a bounded time instead of hanging it.
#[tokio::test]
async fn http2https_upstream_that_never_speaks_tls_gets_a_502() {
    init_log();
    let mute = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mute_addr = mute.local_addr().unwrap();
    let held = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = mute.accept().await {
            keep.lock().await.push(s);
        }
    });
    let mut pl = plugin("http2https");
    pl.local_addr = mute_addr.to_string();
    let (frps, frpc, addrs) = start(vec![plugged("mute-upstream", pl)]).await;
    let a = http_backend::get(addrs[0], "x", "/", &[]).await;
    assert_eq!(a.status, 502);
    assert!(
        !held.lock().await.is_empty(),
        "the plugin did reach the upstream"
    );
    frpc.stop().await;
    frps.stop().await;
}

/// A TLS client that picks h2, sends the connection preface and then nothing (no SETTINGS, no
/// request) is closed after the header timeout (Go's server drops it when its SETTINGS do not
/// come), instead of holding a work connection for ever.
#[tokio::test]
async fn https2http_closes_a_silent_h2_client() {
    init_log();
    let backend = http_backend::start("h2-silent").await;
    let mut pl = plugin("https2http");
    pl.local_addr = backend.to_string();
    let (frps, frpc, addrs) = start(vec![plugged("h2-silent", pl)]).await;
    let mut tls = tls_connect(addrs[0], "site.example", &[b"h2"], None).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(90),
        tls.read_to_end(&mut sink),
    )
    .await;
    assert!(closed.is_ok(), "the silent h2 connection is still open");
    frpc.stop().await;
    frps.stop().await;
}
