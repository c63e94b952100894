//! `transport.proxyProtocolVersion`: frpc writes a PROXY protocol header (v1 text or v2 binary)
//! carrying the user's address to the local service before any data, as frp 0.70 does.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::{IpAddr, SocketAddr};
use tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const SIG_V2: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Reads one PROXY header (v1 line or v2 block) off `s`, byte-exact; `None` (nothing read)
/// when the first byte cannot start one.
async fn read_pp_header(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut h = vec![0u8; 1];
    if s.peek(&mut h).await.ok()? == 0 || !matches!(h[0], b'P' | b'\r') {
        return None;
    }
    s.read_exact(&mut h).await.ok()?;
    match h[0] {
        b'P' => {
            // v1: at most 107 bytes, ending in CRLF.
            while !h.ends_with(b"\r\n") && h.len() < 107 {
                let mut b = [0u8; 1];
                s.read_exact(&mut b).await.ok()?;
                h.push(b[0]);
            }
            h.ends_with(b"\r\n").then_some(h)
        }
        b'\r' => {
            h.resize(16, 0);
            s.read_exact(&mut h[1..]).await.ok()?;
            let len = u16::from_be_bytes([h[14], h[15]]) as usize;
            let start = h.len();
            h.resize(start + len, 0);
            s.read_exact(&mut h[start..]).await.ok()?;
            (&h[..12] == SIG_V2).then_some(h)
        }
        _ => None,
    }
}

/// A PROXY-protocol-aware backend: per connection it reads the header, answers with its length
/// (one byte, 0 when there was none) and bytes, then echoes.
async fn pp_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let h = read_pp_header(&mut s).await.unwrap_or_default();
                let mut out = vec![h.len() as u8];
                out.extend_from_slice(&h);
                if s.write_all(&out).await.is_err() {
                    return;
                }
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// The header frp sends for a TCP user `src` reaching frps at `dst`.
fn expected(version: &str, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    match version {
        "v1" => format!(
            "PROXY {} {} {} {} {}\r\n",
            if src.is_ipv4() { "TCP4" } else { "TCP6" },
            src.ip(),
            dst.ip(),
            src.port(),
            dst.port()
        )
        .into_bytes(),
        _ => {
            let mut h = SIG_V2.to_vec();
            h.push(0x21);
            match (src.ip(), dst.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    h.extend_from_slice(&[0x11, 0, 12]);
                    h.extend_from_slice(&s.octets());
                    h.extend_from_slice(&d.octets());
                }
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    h.extend_from_slice(&[0x21, 0, 36]);
                    h.extend_from_slice(&s.octets());
                    h.extend_from_slice(&d.octets());
                }
                _ => unreachable!("one family per test"),
            }
            h.extend_from_slice(&src.port().to_be_bytes());
            h.extend_from_slice(&dst.port().to_be_bytes());
            h
        }
    }
}

/// Connects to the tunnel, reads the header the backend saw, checks it, then one echo.
async fn check_tcp_header(version: &str, port: u16) {
    let target: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_listening(target).await;
    let mut s = tokio::time::timeout(PATIENCE, TcpStream::connect(target))
        .await
        .unwrap()
        .unwrap();
    let me = s.local_addr().unwrap();
    s.write_all(b"ping").await.unwrap();
    let mut len = [0u8; 1];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut len))
        .await
        .expect("backend answers in time")
        .unwrap();
    let mut got = vec![0u8; len[0] as usize];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(
        got,
        expected(version, me, target),
        "{version} header: the user's address as source, frps' port as destination"
    );
    let mut echo = [0u8; 4];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping", "data follows the header untouched");
}

async fn tcp_header_e2e(version: &str) {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let backend = pp_backend().await;
    let frpc = Frpc::start(frps.addr, |c| {
        let mut p = proxy("pp", "tcp", backend, 0);
        p.transport.proxy_protocol_version = version.into();
        c.proxies.push(p);
        // Without the key the local service sees no header.
        c.proxies.push(proxy("plain", "tcp", backend, 0));
    });
    let port = remote_port(&frpc.wait_running("pp").await);
    check_tcp_header(version, port).await;
    check_tcp_header(version, port).await;

    let plain = remote_port(&frpc.wait_running("plain").await);
    let mut s = TcpStream::connect(("127.0.0.1", plain)).await.unwrap();
    s.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 5];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b, b"\0ping", "no header without the key");
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn tcp_proxy_sends_v1_header_with_user_address() {
    tcp_header_e2e("v1").await;
}

#[tokio::test]
async fn tcp_proxy_sends_v2_header_with_user_address() {
    tcp_header_e2e("v2").await;
}

/// udp: frp prepends the header to the first datagram of each user, with the local service's
/// address as destination (frp `pkg/proto/udp` Forwarder).
#[tokio::test]
async fn udp_proxy_prepends_v2_header_to_first_datagram_of_each_user() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let backend = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    let frpc = Frpc::start(frps.addr, |c| {
        let mut p = proxy("u", "udp", backend_addr, 0);
        p.transport.proxy_protocol_version = "v2".into();
        c.proxies.push(p);
    });
    let port = remote_port(&frpc.wait_running("u").await);
    let target: SocketAddr = ([127, 0, 0, 1], port).into();
    let user = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = user.local_addr().unwrap();
    let mut buf = vec![0u8; 65536];
    // Until frps has a work connection, datagrams may be dropped: resend the first one.
    let (first, from) = loop {
        user.send_to(b"one", target).await.unwrap();
        if let Ok(r) = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            backend.recv_from(&mut buf),
        )
        .await
        {
            let (n, from) = r.unwrap();
            break (buf[..n].to_vec(), from);
        }
    };
    let mut want = SIG_V2.to_vec();
    want.extend_from_slice(&[0x21, 0x12, 0, 12, 127, 0, 0, 1, 127, 0, 0, 1]);
    want.extend_from_slice(&me.port().to_be_bytes());
    want.extend_from_slice(&backend_addr.port().to_be_bytes());
    want.extend_from_slice(b"one");
    assert_eq!(first, want, "header + payload in the first datagram");
    // Later datagrams of the same user carry no header (a late resent "one" is skipped).
    user.send_to(b"two", target).await.unwrap();
    loop {
        let (n, from2) = tokio::time::timeout(PATIENCE, backend.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if &buf[..n] != b"one" {
            assert_eq!((&buf[..n], from2), (&b"two"[..], from));
            break;
        }
    }
    frpc.stop().await;
    frps.stop().await;
}

/// http proxies relay like tcp on frpc's side, so they get the header too; frps' vhost sends
/// only the user's address, so the destination is frp's 127.0.0.1:0.
#[tokio::test]
async fn http_proxy_sends_v1_header_with_user_address() {
    init_log();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let h = read_pp_header(&mut s).await.unwrap_or_default();
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    let mut b = [0u8; 1];
                    if s.read_exact(&mut b).await.is_err() {
                        return;
                    }
                    head.push(b[0]);
                }
                let mut out = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    h.len()
                )
                .into_bytes();
                out.extend_from_slice(&h);
                let _ = s.write_all(&out).await;
            });
        }
    });
    let vport = free_port().await;
    let frps = Frps::start(|c| c.vhost_http_port = vport).await;
    let frpc = Frpc::start(frps.addr, |c| {
        let mut p = proxy("web", "http", backend, 0);
        p.custom_domains = vec!["pp.example.com".into()];
        p.transport.proxy_protocol_version = "v1".into();
        c.proxies.push(p);
    });
    frpc.wait_running("web").await;
    let vhost = frps.vhost_http.expect("vhost http address");
    let mut s = tokio::time::timeout(PATIENCE, TcpStream::connect(vhost))
        .await
        .unwrap()
        .unwrap();
    let me = s.local_addr().unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: pp.example.com\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut answer))
        .await
        .expect("answer in time")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let want = format!("PROXY TCP4 127.0.0.1 127.0.0.1 {} 0\r\n", me.port());
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with(&want),
        "{answer:?} should end with {want:?}"
    );
    frpc.stop().await;
    frps.stop().await;
}
