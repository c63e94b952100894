//! frpc to frps over each `transport.protocol` (websocket, wss, quic, kcp) and through
//! `transport.proxyURL` (http CONNECT, https CONNECT, socks5): TLS on and off, the 0x17 byte, mTLS, IPv6,
//! tcpMux on and off, a 10 MiB echo through each, QUIC and KCP through a relay dropping 5% of
//! datagrams, and bad input at each entry failing only its own connection.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::config::ClientConfig;
use rcgen::ExtendedKeyUsagePurpose;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tests::pki::{make_ca, make_leaf, pki_dir, write_ca};
use tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const BIG: usize = 10 << 20;

/// Starts frpc with a tcp proxy to a fresh echo server, waits for it to run, and checks
/// `len` bytes come back identical through it. Returns frpc (still running).
async fn echo_via(
    frps: &Frps,
    server: SocketAddr,
    len: usize,
    f: impl FnOnce(&mut ClientConfig),
) -> Frpc {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!("e{}", N.fetch_add(1, Ordering::Relaxed));
    let echo = echo_tcp().await;
    let frpc = Frpc::start(server, |c| {
        c.proxies.push(proxy(&name, "tcp", echo, 0));
        f(c);
    });
    let port = remote_port(&frpc.wait_running(&name).await);
    let entry = SocketAddr::new(frps.addr.ip(), port);
    let data = pattern(len, len as u64);
    assert!(
        echo_through(entry, &data).await == data,
        "echo of {len} bytes differs"
    );
    frpc
}

/// The transport each online client record names (`/api/clients`).
async fn client_transports(frps: &Frps) -> Vec<String> {
    let a = http_backend::get(frps.dashboard.unwrap(), "127.0.0.1", "/api/clients", &[]).await;
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    v.as_array()
        .unwrap_or_else(|| panic!("/api/clients: {} {v}", a.status))
        .iter()
        .filter(|c| c["online"] == true)
        .map(|c| c["transport"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn websocket_with_tls_on_and_off_first_byte_and_tcp_mux() {
    init_log();
    for tcp_mux in [true, false] {
        for (tls, first_byte) in [(false, false), (true, false), (true, true)] {
            let web = free_port().await;
            let frps = Frps::start(|c| {
                c.transport.tcp_mux = tcp_mux;
                c.web_server.addr = "127.0.0.1".into();
                c.web_server.port = web;
            })
            .await;
            let len = if tcp_mux && tls { BIG } else { 256 << 10 };
            let frpc = echo_via(&frps, frps.addr, len, |c| {
                c.transport.protocol = "websocket".into();
                c.transport.tcp_mux = tcp_mux;
                c.transport.tls.enable = tls;
                c.transport.tls.disable_custom_tls_first_byte = !first_byte;
            })
            .await;
            assert_eq!(
                client_transports(&frps).await,
                ["websocket"],
                "tcpMux {tcp_mux} tls {tls} 0x17 {first_byte}"
            );
            frpc.stop().await;
            frps.stop().await;
        }
    }
}

/// A CA, a server and a client certificate from it, as file paths.
struct Mtls {
    ca_file: String,
    scert: String,
    skey: String,
    ccert: String,
    ckey: String,
}

impl Mtls {
    /// frps with this server certificate, requiring client certificates from the CA.
    fn require_client_certs(&self, c: &mut common::config::ServerConfig) {
        c.transport.tls.cert_file = self.scert.clone();
        c.transport.tls.key_file = self.skey.clone();
        c.transport.tls.trusted_ca_file = self.ca_file.clone();
        c.transport.tls.force = true;
    }
}

fn mtls_files() -> (std::path::PathBuf, Mtls) {
    let dir = pki_dir();
    let ca = make_ca("transports CA");
    let (scert, skey) = make_leaf(&dir, "s", &ca, ExtendedKeyUsagePurpose::ServerAuth, false);
    let (ccert, ckey) = make_leaf(&dir, "c", &ca, ExtendedKeyUsagePurpose::ClientAuth, false);
    let ca_file = write_ca(&dir, "ca", &ca);
    let m = Mtls {
        ca_file,
        scert,
        skey,
        ccert,
        ckey,
    };
    (dir, m)
}

#[tokio::test]
async fn websocket_with_mutual_tls() {
    init_log();
    let (dir, pki) = mtls_files();
    let frps = Frps::start(|c| pki.require_client_certs(c)).await;
    let Mtls {
        ca_file,
        ccert,
        ckey,
        ..
    } = pki;
    let tls = |c: &mut ClientConfig| {
        c.transport.protocol = "websocket".into();
        c.transport.tls.trusted_ca_file = ca_file.clone();
        c.transport.tls.server_name = "localhost".into();
    };
    let frpc = echo_via(&frps, frps.addr, 1 << 20, |c| {
        tls(c);
        c.transport.tls.cert_file = ccert.clone();
        c.transport.tls.key_file = ckey.clone();
    })
    .await;
    // Without a client certificate, and without TLS: refused.
    let no_cert = Frpc::start(frps.addr, tls);
    assert!(no_cert.exited().await.is_err());
    let plain = Frpc::start(frps.addr, |c| {
        c.transport.protocol = "websocket".into();
        c.transport.tls.enable = false;
    });
    assert!(plain.exited().await.is_err());
    assert_eq!(frps.stats.client_count(), 1);
    frpc.stop().await;
    frps.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A TLS-terminating front (as a CDN or reverse proxy before frps): TLS in, plain out.
async fn tls_front(backend: SocketAddr) -> SocketAddr {
    let cfg = common::transport::tls::server_config(&Default::default()).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn wss_through_a_tls_terminating_front() {
    init_log();
    for tcp_mux in [true, false] {
        let web = free_port().await;
        let frps = Frps::start(|c| {
            c.transport.tcp_mux = tcp_mux;
            c.web_server.addr = "127.0.0.1".into();
            c.web_server.port = web;
        })
        .await;
        let front = tls_front(frps.addr).await;
        let len = if tcp_mux { BIG } else { 256 << 10 };
        let frpc = echo_via(&frps, front, len, |c| {
            c.transport.protocol = "wss".into();
            c.transport.tcp_mux = tcp_mux;
        })
        .await;
        assert_eq!(client_transports(&frps).await, ["websocket"]);
        frpc.stop().await;
        frps.stop().await;
    }
}

async fn quic_frps(f: impl FnOnce(&mut common::config::ServerConfig)) -> Frps {
    udp_frps("quic", f).await.0
}

#[tokio::test]
async fn quic_with_tls_settings_and_serverinfo() {
    init_log();
    let frps = quic_frps(|_| {}).await;
    let quic = frps.quic.unwrap();
    for tls in [true, false] {
        let frpc = echo_via(&frps, quic, BIG, |c| {
            c.transport.protocol = "quic".into();
            c.transport.tls.enable = tls;
            c.transport.quic.keepalive_period = 2;
            c.transport.quic.max_idle_timeout = 5;
        })
        .await;
        assert_eq!(client_transports(&frps).await, ["quic"]);
        frpc.stop().await;
    }
    let a = http_backend::get(frps.dashboard.unwrap(), "127.0.0.1", "/api/serverinfo", &[]).await;
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["quicBindPort"], quic.port());
    assert_eq!(v["kcpBindPort"], 0);
    frps.stop().await;
}

/// frps serving `protocol` (quic, or kcp with `kcpBindPort` the same number as `bindPort`:
/// one is TCP, the other UDP) and its dashboard, and the UDP address to dial.
async fn udp_frps(
    protocol: &str,
    f: impl FnOnce(&mut common::config::ServerConfig),
) -> (Frps, SocketAddr) {
    let port = free_port().await;
    let web = free_port().await;
    let frps = Frps::start(|c| {
        if protocol == "quic" {
            c.quic_bind_port = port;
        } else {
            c.bind_port = port;
            c.kcp_bind_port = port;
        }
        c.web_server.addr = "127.0.0.1".into();
        c.web_server.port = web;
        f(c);
    })
    .await;
    let addr = if protocol == "quic" {
        frps.quic
    } else {
        frps.kcp
    };
    let addr = addr.unwrap();
    (frps, addr)
}

/// frps on `protocol` (quic or kcp) requiring client certificates: a frpc with one gets its
/// echo, one without is refused. Returns the refused frpc's error.
async fn mutual_tls_over(protocol: &str) -> String {
    let (dir, pki) = mtls_files();
    let (frps, server) = udp_frps(protocol, |c| pki.require_client_certs(c)).await;
    let Mtls {
        ca_file,
        ccert,
        ckey,
        ..
    } = pki;
    let base = |c: &mut ClientConfig| {
        c.transport.protocol = protocol.into();
        c.transport.tls.trusted_ca_file = ca_file.clone();
        c.transport.tls.server_name = "localhost".into();
    };
    let frpc = echo_via(&frps, server, 1 << 20, |c| {
        base(c);
        c.transport.tls.cert_file = ccert.clone();
        c.transport.tls.key_file = ckey.clone();
    })
    .await;
    let err = login_error(server, base).await;
    assert_eq!(frps.stats.client_count(), 1);
    frpc.stop().await;
    frps.stop().await;
    let _ = std::fs::remove_dir_all(dir);
    err
}

#[tokio::test]
async fn quic_with_mutual_tls() {
    init_log();
    let err = mutual_tls_over("quic").await;
    assert!(err.contains("certificate"), "{err}");
}

/// A UDP relay to `target` that drops one datagram in `one_in` each way (pseudo-random,
/// seeded), delivering the rest unchanged. Returns its address and the count dropped.
async fn lossy_relay(target: SocketAddr, one_in: u64) -> (SocketAddr, Arc<AtomicUsize>) {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    back.connect(target).await.unwrap();
    let addr = front.local_addr().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let client = Arc::new(std::sync::Mutex::new(None::<SocketAddr>));
    let lose = |seed: u64, dropped: Arc<AtomicUsize>| {
        let mut x = seed | 1;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let drop = x.is_multiple_of(one_in);
            if drop {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
            drop
        }
    };
    {
        let (front, back, client) = (front.clone(), back.clone(), client.clone());
        let mut lose = lose(0x9e37_79b9, dropped.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = front.recv_from(&mut buf).await {
                *client.lock().unwrap() = Some(from);
                if !lose() {
                    let _ = back.send(&buf[..n]).await;
                }
            }
        });
    }
    let mut lose = lose(0x85eb_ca6b, dropped.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = back.recv(&mut buf).await {
            let to = *client.lock().unwrap();
            if let (Some(to), false) = (to, lose()) {
                let _ = front.send_to(&buf[..n], to).await;
            }
        }
    });
    (addr, dropped)
}

/// A 4 MiB echo over `protocol` (quic or kcp) through [`lossy_relay`] dropping 5%.
async fn echo_through_5_percent_loss(protocol: &str) {
    let (frps, server) = udp_frps(protocol, |_| {}).await;
    let (relay, dropped) = lossy_relay(server, 20).await;
    let frpc = echo_via(&frps, relay, 4 << 20, |c| {
        c.transport.protocol = protocol.into();
    })
    .await;
    assert!(
        dropped.load(Ordering::Relaxed) > 0,
        "the relay dropped nothing"
    );
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn quic_delivers_identical_bytes_through_5_percent_loss() {
    init_log();
    echo_through_5_percent_loss("quic").await;
}

async fn kcp_frps(f: impl FnOnce(&mut common::config::ServerConfig)) -> Frps {
    udp_frps("kcp", f).await.0
}

/// frpc `transport.protocol = "kcp"` to frps `kcpBindPort`: a 10 MiB echo with TLS off, on,
/// and on with the 0x17 first byte, with tcpMux on and off; the client record says "kcp" and
/// /api/serverinfo names the port.
#[tokio::test]
async fn kcp_with_tls_on_and_off_and_tcp_mux() {
    init_log();
    for tcp_mux in [true, false] {
        for (tls, first_byte) in [(false, false), (true, false), (true, true)] {
            // A frps each: KCP has no close message, so a stopped frpc's record stays online
            // until yamux's keepalive (or the heartbeat) fails, as with frp.
            let frps = kcp_frps(|c| c.transport.tcp_mux = tcp_mux).await;
            let kcp = frps.kcp.unwrap();
            let len = if tcp_mux || tls { BIG } else { 1 << 20 };
            let frpc = echo_via(&frps, kcp, len, |c| {
                c.transport.protocol = "kcp".into();
                c.transport.tcp_mux = tcp_mux;
                c.transport.tls.enable = tls;
                c.transport.tls.disable_custom_tls_first_byte = !first_byte;
            })
            .await;
            assert_eq!(
                client_transports(&frps).await,
                ["kcp"],
                "tcpMux {tcp_mux} tls {tls} 0x17 {first_byte}"
            );
            let a = http_backend::get(frps.dashboard.unwrap(), "127.0.0.1", "/api/serverinfo", &[])
                .await;
            let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
            assert_eq!(v["kcpBindPort"], kcp.port());
            frpc.stop().await;
            frps.stop().await;
        }
    }
}

/// A frpc that stops tells frps over KCP (frp's frpc closes gracefully on SIGTERM when the
/// protocol is kcp or quic: the control stream's close goes out before the session ends), so
/// frps drops its client record at once, not when yamux's keepalive fails (set to an hour
/// here on both sides); a restarted frpc's proxies would otherwise be "already exists".
#[tokio::test]
async fn kcp_frpc_that_stops_is_offline_on_frps_at_once() {
    init_log();
    let frps = kcp_frps(|c| c.transport.tcp_mux_keepalive_interval = 3600).await;
    let kcp = frps.kcp.unwrap();
    let frpc = echo_via(&frps, kcp, 1000, |c| {
        c.transport.protocol = "kcp".into();
        c.transport.tcp_mux_keepalive_interval = 3600;
    })
    .await;
    assert_eq!(client_transports(&frps).await, ["kcp"]);
    frpc.stop().await;
    wait_until("frps sees the stopped KCP frpc offline", || async {
        client_transports(&frps).await.is_empty()
    })
    .await;
    frps.stop().await;
}

/// The error of a frpc with `kcp` (TLS on or off, a 1 s dial timeout) whose login fails.
async fn kcp_login_error(server: SocketAddr, tls: bool) -> String {
    let frpc = Frpc::start(server, |c| {
        c.transport.protocol = "kcp".into();
        c.transport.tls.enable = tls;
        c.transport.dial_server_timeout = 1;
    });
    let r = frpc.exited().await;
    r.expect_err("the login fails").to_string()
}

/// frpc with `kcp` at a frps without `kcpBindPort`: whether the UDP port answers with ICMP
/// port unreachable or says nothing, the login fails (no fallback to TCP) with an error that
/// names the setting to check, not a "TLS/WebSocket handshake".
#[tokio::test]
async fn kcp_to_a_port_without_kcp_fails_naming_kcp_bind_port() {
    init_log();
    let closed = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let refused = closed.local_addr().unwrap();
    drop(closed);
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for (server, tls) in [
        (refused, true),
        (silent.local_addr().unwrap(), true),
        (silent.local_addr().unwrap(), false),
    ] {
        let e = kcp_login_error(server, tls).await;
        assert!(
            e.contains("kcpBindPort") && !e.contains("WebSocket"),
            "{server} tls {tls}: {e}"
        );
    }
}

#[tokio::test]
async fn kcp_with_mutual_tls() {
    init_log();
    let err = mutual_tls_over("kcp").await;
    assert!(err.contains("client certificate"), "{err}");
}

#[tokio::test]
async fn kcp_delivers_identical_bytes_through_5_percent_loss() {
    init_log();
    echo_through_5_percent_loss("kcp").await;
}

/// An FEC data shard opening KCP conversation `conv` (a PUSH with sn 0), as kcp-go frames it.
fn kcp_opening(conv: u32) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&0u32.to_le_bytes());
    d.extend_from_slice(&0xf1u16.to_le_bytes());
    d.extend_from_slice(&(2u16 + 24 + 3).to_le_bytes());
    d.extend_from_slice(&conv.to_le_bytes());
    d.extend_from_slice(&[81, 0, 128, 0]);
    d.extend_from_slice(&[0; 12]); // ts, sn, una
    d.extend_from_slice(&3u32.to_le_bytes());
    d.extend_from_slice(b"abc");
    d
}

/// Garbage at the KCP port (random datagrams, truncated FEC frames, bad shard indexes, parity
/// for nobody, a flood of new conversations from many addresses) fails alone: a client that
/// was logged in keeps working and another one logs in.
#[tokio::test]
async fn garbage_at_the_kcp_port_fails_alone() {
    init_log();
    let frps = kcp_frps(|_| {}).await;
    let kcp = frps.kcp.unwrap();
    let good = echo_via(&frps, kcp, 64 << 10, |c| {
        c.transport.protocol = "kcp".into()
    })
    .await;
    let junk = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..400u64 {
        let len = 1 + (i as usize * 37) % 1400;
        let mut d = pattern(len, i);
        match i % 4 {
            0 => {}
            1 => d.truncate(7),
            2 => d = vec![11, 0, 0, 0, 0xf1, 0, 2, 0, 1, 2],
            _ => d = vec![12, 0, 0, 0, 0xf2, 0, 0, 0, 5, 5, 5],
        }
        junk.send_to(&d, kcp).await.unwrap();
    }
    let mut flood = Vec::new();
    for conv in 0..64u32 {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.send_to(&kcp_opening(conv), kcp).await.unwrap();
        // A second conversation from the same address replaces the first.
        s.send_to(&kcp_opening(conv + 1000), kcp).await.unwrap();
        flood.push(s);
    }
    let again = echo_via(&frps, kcp, 64 << 10, |c| {
        c.transport.protocol = "kcp".into()
    })
    .await;
    assert_eq!(frps.stats.client_count(), 2);
    again.stop().await;
    good.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn ipv6_loopback_on_every_transport() {
    init_log();
    let quic_port = free_port().await;
    let kcp_port = free_port().await;
    let frps = Frps::start(|c| {
        c.bind_addr = "::1".into();
        c.proxy_bind_addr = "::1".into();
        c.quic_bind_port = quic_port;
        c.kcp_bind_port = kcp_port;
    })
    .await;
    assert!(frps.addr.is_ipv6());
    for protocol in ["tcp", "websocket", "quic", "kcp"] {
        let port = match protocol {
            "quic" => frps.quic.unwrap().port(),
            "kcp" => frps.kcp.unwrap().port(),
            _ => frps.addr.port(),
        };
        let frpc = echo_via(&frps, frps.addr, 1 << 20, |c| {
            c.server_addr = "::1".into();
            c.server_port = port;
            c.transport.protocol = protocol.into();
        })
        .await;
        frpc.stop().await;
    }
    frps.stop().await;
}

/// What a test proxy does with a request.
#[derive(Clone, Copy, PartialEq)]
enum ProxyMode {
    /// Tunnels when the credentials are `u:p`.
    WantsUserPass,
    /// Refuses every request.
    Refuses,
}

/// An HTTP CONNECT proxy; counts the tunnels it opened.
async fn http_proxy(mode: ProxyMode) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let tunnels = Arc::new(AtomicUsize::new(0));
    let count = tunnels.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve_connect(s, mode, count.clone()));
        }
    });
    (addr, tunnels)
}

/// One CONNECT request on `s`, answered as `mode` says; counts the tunnel if it opens one.
async fn serve_connect<S>(mut s: S, mode: ProxyMode, count: Arc<AtomicUsize>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let Ok(b) = s.read_u8().await else { return };
        head.push(b);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    let answer = match mode {
        ProxyMode::Refuses => "HTTP/1.1 403 Forbidden\r\n\r\n",
        ProxyMode::WantsUserPass if !head.contains("Proxy-Authorization: Basic dTpw\r\n") => {
            "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"
        }
        ProxyMode::WantsUserPass => "",
    };
    if !answer.is_empty() {
        let _ = s.write_all(answer.as_bytes()).await;
        return;
    }
    let Ok(mut up) = TcpStream::connect(target.as_str()).await else {
        return;
    };
    count.fetch_add(1, Ordering::Relaxed);
    let _ = s
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await;
    let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
}

/// An HTTPS proxy (CONNECT inside TLS, certificate `cert`/`key`) wanting `u:p`; counts the
/// tunnels it opened and records the server names its clients sent.
async fn https_proxy(
    cert: &str,
    key: &str,
) -> (
    SocketAddr,
    Arc<AtomicUsize>,
    Arc<std::sync::Mutex<Vec<String>>>,
) {
    let files = common::transport::tls::TlsFiles {
        cert_file: Some(cert.into()),
        key_file: Some(key.into()),
        trusted_ca_file: None,
    };
    let acceptor =
        tokio_rustls::TlsAcceptor::from(common::transport::tls::server_config(&files).unwrap());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let tunnels = Arc::new(AtomicUsize::new(0));
    let names = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (count, seen) = (tunnels.clone(), names.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let (acceptor, count, seen) = (acceptor.clone(), count.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().unwrap_or("").to_owned();
                seen.lock().unwrap().push(sni);
                serve_connect(tls, ProxyMode::WantsUserPass, count).await;
            });
        }
    });
    (addr, tunnels, names)
}

/// `transport.proxyURL = "https://..."` with the real frpc (golib `httpsProxyAfterHook`): TLS to
/// the proxy with its host name as SNI, verified against the CA bundle `SSL_CERT_FILE` names,
/// then CONNECT with the credentials; a proxy whose certificate the roots do not vouch for
/// stops frpc naming the TLS handshake with the proxy.
#[tokio::test]
async fn proxy_url_https_connect_with_the_real_frpc() {
    init_log();
    let dir = procs::tempdir("https-proxy");
    let ca = make_ca("https proxy CA");
    let (cert, key) = make_leaf(
        &dir,
        "proxy",
        &ca,
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    let ca_file = write_ca(&dir, "ca", &ca);
    let (proxy, tunnels, names) = https_proxy(&cert, &key).await;
    let (_frps, port) = procs::start_frps(&dir, &format!("auth.token = \"{TOKEN}\"\n")).await;
    let echo = echo_tcp().await;
    let remote = free_port().await;
    let cfg = procs::write(
        &dir,
        "frpc.toml",
        &format!(
            "serverAddr = \"127.0.0.1\"\nserverPort = {port}\nauth.token = \"{TOKEN}\"\n\
             transport.proxyURL = \"https://u:p@localhost:{}\"\n\
             [[proxies]]\nname = \"svc\"\ntype = \"tcp\"\nlocalPort = {}\nremotePort = {remote}\n",
            proxy.port(),
            echo.port()
        ),
    );
    let frpc = |ca: Option<&str>| {
        let mut c = tokio::process::Command::new(bin("frpc"));
        c.args(["-c", &cfg])
            .env_remove("SSL_CERT_FILE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(ca) = ca {
            c.env("SSL_CERT_FILE", ca);
        }
        c
    };

    // The web PKI roots do not vouch for the test's CA: frpc stops at its first login.
    let out = tokio::time::timeout(PATIENCE, frpc(None).output())
        .await
        .expect("frpc exits")
        .unwrap();
    assert!(!out.status.success());
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(err.contains("TLS handshake with HTTPS proxy"), "{err}");
    assert_eq!(tunnels.load(Ordering::Relaxed), 0);

    // With the CA bundle: the tunnel runs through the proxy.
    let _frpc = frpc(Some(&ca_file)).spawn().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], remote));
    wait_tunnel(addr).await;
    let data = pattern(1 << 20, 9);
    assert!(echo_through(addr, &data).await == data);
    assert!(
        tunnels.load(Ordering::Relaxed) > 0,
        "the proxy opened no tunnel"
    );
    assert!(
        names.lock().unwrap().iter().all(|n| n == "localhost"),
        "server names sent: {:?}",
        names.lock().unwrap()
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A SOCKS5 proxy wanting user `u` password `p`; counts the tunnels it opened.
async fn socks5_proxy() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let tunnels = Arc::new(AtomicUsize::new(0));
    let count = tunnels.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut h = [0u8; 2];
                s.read_exact(&mut h).await?;
                let mut methods = vec![0u8; h[1] as usize];
                s.read_exact(&mut methods).await?;
                if !methods.contains(&2) {
                    return s.write_all(&[5, 0xff]).await;
                }
                s.write_all(&[5, 2]).await?;
                let _ver = s.read_u8().await?;
                let mut user = vec![0u8; s.read_u8().await? as usize];
                s.read_exact(&mut user).await?;
                let mut pass = vec![0u8; s.read_u8().await? as usize];
                s.read_exact(&mut pass).await?;
                if user != b"u" || pass != b"p" {
                    return s.write_all(&[1, 1]).await;
                }
                s.write_all(&[1, 0]).await?;
                let mut req = [0u8; 4];
                s.read_exact(&mut req).await?;
                let host = match req[3] {
                    1 => {
                        let mut a = [0u8; 4];
                        s.read_exact(&mut a).await?;
                        std::net::IpAddr::from(a).to_string()
                    }
                    4 => {
                        let mut a = [0u8; 16];
                        s.read_exact(&mut a).await?;
                        std::net::IpAddr::from(a).to_string()
                    }
                    _ => {
                        let mut a = vec![0u8; s.read_u8().await? as usize];
                        s.read_exact(&mut a).await?;
                        String::from_utf8_lossy(&a).into_owned()
                    }
                };
                let port = s.read_u16().await?;
                let mut up = TcpStream::connect((host.as_str(), port)).await?;
                count.fetch_add(1, Ordering::Relaxed);
                s.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
                tokio::io::copy_bidirectional(&mut s, &mut up)
                    .await
                    .map(|_| ())
            });
        }
    });
    (addr, tunnels)
}

#[tokio::test]
async fn proxy_url_http_connect_and_socks5_for_tcp_and_websocket() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let (http, http_tunnels) = http_proxy(ProxyMode::WantsUserPass).await;
    let (socks, socks_tunnels) = socks5_proxy().await;
    for protocol in ["tcp", "websocket"] {
        for (url, tunnels) in [
            (format!("http://u:p@{http}"), &http_tunnels),
            (format!("socks5://u:p@{socks}"), &socks_tunnels),
        ] {
            let before = tunnels.load(Ordering::Relaxed);
            let frpc = echo_via(&frps, frps.addr, 1 << 20, |c| {
                c.transport.protocol = protocol.into();
                c.transport.proxy_url = url.clone();
            })
            .await;
            assert!(
                tunnels.load(Ordering::Relaxed) > before,
                "{url} was not used"
            );
            frpc.stop().await;
        }
    }
    frps.stop().await;
}

/// Starts frpc with `f` and returns the error of its (failing) first login.
async fn login_error(server: SocketAddr, f: impl FnOnce(&mut ClientConfig)) -> String {
    match Frpc::start(server, f).exited().await {
        Err(e) => e.to_string(),
        Ok(()) => panic!("login should have failed"),
    }
}

#[tokio::test]
async fn proxy_refusing_or_asking_for_credentials_fails_that_frpc_only() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let (http, _) = http_proxy(ProxyMode::WantsUserPass).await;
    let (refusing, _) = http_proxy(ProxyMode::Refuses).await;
    let (socks, _) = socks5_proxy().await;
    let good = echo_via(&frps, frps.addr, 64 << 10, |c| {
        c.transport.proxy_url = format!("http://u:p@{http}");
    })
    .await;
    let cases = [
        (format!("http://{http}"), "asks for credentials"),
        (format!("http://u:wrong@{http}"), "refused the credentials"),
        (format!("http://{refusing}"), "403"),
        (format!("socks5://{socks}"), "asks for a user and password"),
        (
            format!("socks5://u:wrong@{socks}"),
            "refused the user and password",
        ),
    ];
    for (url, want) in cases {
        let err = login_error(frps.addr, |c| c.transport.proxy_url = url.clone()).await;
        assert!(err.contains(want), "{url}: {err}");
    }
    assert_eq!(frps.stats.client_count(), 1, "the good client stays");
    good.stop().await;
    frps.stop().await;
}

/// Sends `request` to frps's bind port and returns the status line of the answer.
async fn upgrade_answer(frps: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(frps).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn bad_websocket_upgrades_fail_alone() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let good = echo_via(&frps, frps.addr, 64 << 10, |c| {
        c.transport.protocol = "websocket".into();
    })
    .await;
    let req = |path: &str, origin: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             {origin}\r\n"
        )
    };
    let wrong_path = upgrade_answer(frps.addr, &req("/~!frpx", "Origin: http://x\r\n")).await;
    assert!(wrong_path.contains("404"), "{wrong_path}");
    let no_origin = upgrade_answer(frps.addr, &req("/~!frp", "")).await;
    assert!(no_origin.contains("403"), "{no_origin}");
    let not_ws = upgrade_answer(frps.addr, "GET /~!frp HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(not_ws.contains("400") || not_ws.is_empty(), "{not_ws}");
    // The good client is untouched and a new one still logs in.
    let again = echo_via(&frps, frps.addr, 64 << 10, |c| {
        c.transport.protocol = "websocket".into();
    })
    .await;
    eventually("the refused upgrades are no longer pending", || {
        frps.stats.unauthenticated_connections() == 0
    })
    .await;
    again.stop().await;
    good.stop().await;
    frps.stop().await;
}

/// A QUIC client offering ALPN `alpn` (verifying nothing).
async fn quic_connect(server: SocketAddr, alpn: &[u8]) -> Result<quinn::Connection, String> {
    let tls = common::transport::tls::client_config(&Default::default()).unwrap();
    let mut tls = (*tls).clone();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls)).unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let c = ep.connect(server, "localhost").map_err(|e| e.to_string())?;
    tokio::time::timeout(PATIENCE, c)
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn garbage_datagrams_and_wrong_alpn_at_the_quic_port_fail_alone() {
    init_log();
    let frps = quic_frps(|_| {}).await;
    let quic = frps.quic.unwrap();
    let good = echo_via(&frps, quic, 64 << 10, |c| {
        c.transport.protocol = "quic".into()
    })
    .await;
    let junk = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..200u64 {
        let len = 1 + (i as usize * 37) % 1400;
        junk.send_to(&pattern(len, i), quic).await.unwrap();
    }
    let err = quic_connect(quic, b"h3").await.unwrap_err();
    assert!(err.to_lowercase().contains("protocol"), "wrong ALPN: {err}");
    // The right ALPN gets a connection (it may then log in or not).
    quic_connect(quic, b"frp").await.unwrap();
    let again = echo_via(&frps, quic, 64 << 10, |c| {
        c.transport.protocol = "quic".into()
    })
    .await;
    assert_eq!(frps.stats.client_count(), 2);
    again.stop().await;
    good.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn a_transport_this_build_cannot_serve_is_refused_by_name() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let err = login_error(frps.addr, |c| {
        c.transport.proxy_url = "ntlm://127.0.0.1:1".into()
    })
    .await;
    assert!(err.contains("transport.proxyURL"), "{err}");
    assert_eq!(frps.stats.client_count(), 0);
    frps.stop().await;
}

#[tokio::test]
async fn quic_idle_timeout_closes_a_silent_connection() {
    init_log();
    let frps = quic_frps(|c| c.transport.quic.max_idle_timeout = 1).await;
    // This client sends no keep-alives and would wait 30 s itself: frps's 1 s ends it.
    let conn = quic_connect(frps.quic.unwrap(), b"frp").await.unwrap();
    let why = tokio::time::timeout(PATIENCE, conn.closed()).await.unwrap();
    assert!(
        matches!(why, quinn::ConnectionError::TimedOut),
        "closed by {why}"
    );
    frps.stop().await;
}

#[tokio::test]
async fn an_unknown_quic_peer_holds_a_bounded_number_of_streams_and_connections() {
    init_log();
    // A first-message deadline longer than any wait here: what ends a stream is the bound.
    let limits = frps::Limits {
        first_msg_timeout: std::time::Duration::from_secs(60),
        // TCP's accept loop holds one permit while it waits: two are left for QUIC.
        pending_connections: 3,
        pre_login_streams: 2,
        ..Default::default()
    };
    let port = free_port().await;
    let frps = Frps::start_with(limits, |c| c.quic_bind_port = port).await;
    let quic = frps.quic.unwrap();
    let conn = quic_connect(quic, b"frp").await.unwrap();
    let mut streams = Vec::new();
    for _ in 0..6 {
        let (mut send, recv) = conn.open_bi().await.unwrap();
        send.write_all(b"o").await.unwrap();
        streams.push((send, recv));
    }
    // Streams past the bound are closed by frps; those within it wait for their message.
    let mut ended = 0;
    let mut pending = Vec::new();
    for (send, mut recv) in streams {
        pending.push(tokio::spawn(async move {
            let mut b = [0u8; 1];
            let r = recv.read(&mut b).await;
            drop(send);
            r
        }));
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while ended < 4 {
        let (i, _) = tokio::time::timeout_at(deadline, async {
            loop {
                if let Some(i) = pending.iter().position(|h| h.is_finished()) {
                    return (i, ());
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("streams beyond the bound are closed");
        let _ = pending.remove(i).await;
        ended += 1;
    }
    assert!(frps.stats.awaiting_first_message() <= 2);
    // A second connection fits; more wait outside (their handshakes are not answered).
    let _second = quic_connect(quic, b"frp").await.unwrap();
    let _more: Vec<_> = (0..3)
        .map(|_| tokio::spawn(quic_connect(quic, b"frp")))
        .collect();
    eventually("two connections are pending", || {
        frps.stats.unauthenticated_connections() == 2
    })
    .await;
    // As the first two go, the waiting ones take their places, never more at once.
    drop(conn);
    drop(_second);
    for h in _more {
        let _ = h.await;
    }
    assert!(frps.stats.unauthenticated_connections() <= 2);
    frps.stop().await;
}

#[tokio::test]
async fn bind_addr_any_v6_serves_v4_clients_on_every_transport() {
    init_log();
    let quic_port = free_port().await;
    let frps_kcp_port = free_port().await;
    let frps = Frps::start(|c| {
        c.bind_addr = "::".into();
        c.proxy_bind_addr = "127.0.0.1".into();
        c.quic_bind_port = quic_port;
        c.kcp_bind_port = frps_kcp_port;
    })
    .await;
    for protocol in ["tcp", "websocket", "quic", "kcp"] {
        let port = match protocol {
            "quic" => quic_port,
            "kcp" => frps_kcp_port,
            _ => frps.addr.port(),
        };
        let server: SocketAddr = ([127, 0, 0, 1], port).into();
        let echo = echo_tcp().await;
        let frpc = Frpc::start(server, |c| {
            c.transport.protocol = protocol.into();
            c.proxies.push(proxy(protocol, "tcp", echo, 0));
        });
        let port = remote_port(&frpc.wait_running(protocol).await);
        let data = pattern(64 << 10, 3);
        assert!(echo_through(([127, 0, 0, 1], port).into(), &data).await == data);
        frpc.stop().await;
    }
    frps.stop().await;
}

/// The head of the first request frpc sends to a listener that never answers.
async fn first_request_head(f: impl FnOnce(&mut ClientConfig)) -> (String, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let frpc = Frpc::start(addr, f);
    let (mut s, _) = tokio::time::timeout(PATIENCE, l.accept())
        .await
        .unwrap()
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(
            tokio::time::timeout(PATIENCE, s.read_u8())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    frpc.stop().await;
    (String::from_utf8(head).unwrap(), addr)
}

#[tokio::test]
async fn websocket_upgrade_request_is_frps() {
    init_log();
    let (head, addr) = first_request_head(|c| c.transport.protocol = "websocket".into()).await;
    assert!(head.starts_with("GET /~!frp HTTP/1.1\r\n"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains(&format!("\r\nhost: {addr}\r\n")), "{head}");
    assert!(
        lower.contains(&format!("\r\norigin: http://{addr}\r\n")),
        "{head}"
    );
    assert!(
        lower.contains("\r\nsec-websocket-version: 13\r\n"),
        "{head}"
    );
    // Through an http proxy, CONNECT names frps as host:port.
    let (head, _) = first_request_head(|c| {
        c.transport.proxy_url = format!("http://{}:{}", c.server_addr, c.server_port);
        c.server_addr = "::1".into();
        c.server_port = 7000;
    })
    .await;
    assert!(
        head.starts_with("CONNECT [::1]:7000 HTTP/1.1\r\n"),
        "{head}"
    );
}

/// A server that accepts TCP and then says nothing (a wrong port, a stuck front): the TLS
/// handshake and the WebSocket upgrade are bounded by `transport.dialServerTimeout` as the TCP
/// dial is, so frpc fails the login with a reason instead of waiting forever without a word
/// (Go frpc gives up after its 10 s LoginResp deadline).
#[tokio::test]
async fn silent_server_fails_the_login_for_every_layer() {
    init_log();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            keep.lock().unwrap().push(s);
        }
    });
    for (protocol, tls) in [("tcp", true), ("websocket", false), ("wss", true)] {
        let frpc = Frpc::start(addr, |c| {
            c.transport.protocol = protocol.into();
            c.transport.tls.enable = tls;
            c.transport.tcp_mux = false;
            c.transport.dial_server_timeout = 1;
        });
        let r = frpc.exited().await;
        let e = r.expect_err("the login fails").to_string();
        assert!(e.contains("timed out"), "{protocol}: {e}");
    }
    // KCP has no handshake of its own: a UDP port that takes datagrams and says nothing.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let e = kcp_login_error(silent.local_addr().unwrap(), true).await;
    assert!(e.contains("timed out"), "kcp: {e}");
}
