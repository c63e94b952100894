//! udp proxies: UDPPacket framing over the work connection, replies to the right user.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use tests::*;
use tokio::net::UdpSocket;

async fn udp_echo(tcp_mux: bool, encryption: bool) {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = tcp_mux).await;
    let echo = echo_udp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.transport.tcp_mux = tcp_mux;
        let mut p = proxy("dns", "udp", echo, 0);
        p.transport.use_encryption = encryption;
        p.transport.use_compression = encryption;
        c.proxies.push(p);
    });
    let port = remote_port(&frpc.wait_running("dns").await);
    // Two users, several datagrams each; every answer reaches the user who asked.
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for (i, sock) in [&a, &b].into_iter().enumerate() {
        for n in 0..5u8 {
            let msg = pattern(1000, (i * 10 + n as usize) as u64);
            let got = udp_roundtrip(sock, target, &msg).await;
            assert_eq!(got, msg, "user {i} datagram {n}");
        }
    }
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn udp_echo_tcp_mux_on() {
    udp_echo(true, false).await;
}

#[tokio::test]
async fn udp_echo_tcp_mux_off() {
    udp_echo(false, false).await;
}

#[tokio::test]
async fn udp_echo_encrypted() {
    udp_echo(true, true).await;
}

/// A datagram too big for one wire v1 message once base64-encoded (about 7.6 KB fit).
const BIG_LEN: usize = 9000;

/// A UDP backend that echoes, except that `BIG` is answered with [`BIG_LEN`] bytes; it records
/// every address it hears from (frpc opens one local socket per user flow).
async fn recording_backend() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<std::net::SocketAddr>>>,
) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            log.lock().unwrap().push(from);
            let reply = if &buf[..n] == b"BIG" {
                pattern(BIG_LEN, 1)
            } else {
                buf[..n].to_vec()
            };
            let _ = s.send_to(&reply, from).await;
        }
    });
    (addr, seen)
}

/// Work connections frps has handed out so far (all to the one udp proxy here).
fn work_conns_handed_out(frps: &Frps) -> f64 {
    let text = frps.stats.metrics_text();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == "frp_rs_server_work_conns_handed_out_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// `udpPacketSize = 10240` on both sides, wire v1: a datagram too big for one message, from a
/// user (frps side) or from the local service (frpc side), is dropped alone. The next datagrams
/// of the same flow and of another flow still arrive, over the same work connection and through
/// the same frpc-side socket per flow.
#[tokio::test]
async fn oversized_datagram_costs_only_itself_on_wire_v1() {
    init_log();
    let frps = Frps::start(|c| c.udp_packet_size = 10240).await;
    let (backend, seen) = recording_backend().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.udp_packet_size = 10240;
        c.proxies.push(proxy("big", "udp", backend, 0));
    });
    let target =
        std::net::SocketAddr::from(([127, 0, 0, 1], remote_port(&frpc.wait_running("big").await)));
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(udp_roundtrip(&a, target, b"a1").await, b"a1");
    assert_eq!(udp_roundtrip(&b, target, b"b1").await, b"b1");

    // User -> frps: too big for a UDPPacket message.
    a.send_to(&pattern(BIG_LEN, 2), target).await.unwrap();
    assert_eq!(udp_roundtrip(&a, target, b"a2").await, b"a2");
    assert_eq!(udp_roundtrip(&b, target, b"b2").await, b"b2");
    // Local service -> frpc: a reply too big for a UDPPacket message.
    a.send_to(b"BIG", target).await.unwrap();
    assert_eq!(udp_roundtrip(&a, target, b"a3").await, b"a3");
    assert_eq!(udp_roundtrip(&b, target, b"b3").await, b"b3");

    let mut sources = seen.lock().unwrap().clone();
    sources.sort();
    sources.dedup();
    assert_eq!(
        sources.len(),
        2,
        "one frpc socket per flow for the whole test (no flow restarted): {sources:?}"
    );
    assert_eq!(
        work_conns_handed_out(&frps),
        1.0,
        "the udp work connection survived"
    );
    frpc.stop().await;
    frps.stop().await;
}

/// Wire v2 frames carry up to 64 KiB: the same big datagrams go through both ways.
#[tokio::test]
async fn big_datagrams_ride_on_wire_v2() {
    init_log();
    let frps = Frps::start(|c| c.udp_packet_size = 10240).await;
    let (backend, _) = recording_backend().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.udp_packet_size = 10240;
        c.transport.wire_protocol = "v2".into();
        c.proxies.push(proxy("big", "udp", backend, 0));
    });
    let target =
        std::net::SocketAddr::from(([127, 0, 0, 1], remote_port(&frpc.wait_running("big").await)));
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let big = pattern(BIG_LEN, 3);
    assert_eq!(udp_roundtrip(&a, target, &big).await, big);
    assert_eq!(udp_roundtrip(&a, target, b"BIG").await, pattern(BIG_LEN, 1));
    frpc.stop().await;
    frps.stop().await;
}
