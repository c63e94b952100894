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
