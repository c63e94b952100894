//! xtcp (P2P): an xtcp proxy on one frpc, reached peer to peer by a visitor on another after
//! hole punching arranged by frps (frp `client/visitor/xtcp.go`, `client/proxy/xtcp.go`,
//! `pkg/nathole/`; frp-protocol.md §10.2). Both frpc discover their addresses from a STUN
//! responder in the harness (Binding with XOR-MAPPED-ADDRESS and OTHER-ADDRESS), so on one
//! host the punch succeeds at once. The raw tests speak frp's frames as a Go frpc does.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::auth::{auth_key, unix_now};
use common::config::{ClientConfig, ProxyConfig, VisitorConfig};
use common::msg::{read_msg, write_msg, Message, NatHoleResp, NatHoleVisitor, NewProxy};
use std::net::SocketAddr;
use std::time::Duration;
use tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const SK: &str = "p2p-s3cret";

fn xtcp_proxy(name: &str, local: SocketAddr) -> ProxyConfig {
    let mut p = proxy(name, "xtcp", local, 0);
    p.secret_key.0 = SK.into();
    p
}

fn visitor(name: &str, kind: &str, server_name: &str, port: i32) -> VisitorConfig {
    let mut v = VisitorConfig {
        name: name.into(),
        kind: kind.into(),
        server_name: server_name.into(),
        bind_addr: "127.0.0.1".into(),
        bind_port: port,
        ..Default::default()
    };
    if kind == "xtcp" {
        v.protocol = "quic".into();
        v.max_retries_an_hour = 8;
        v.min_retry_interval = 90;
        v.fallback_timeout_ms = 1000;
    }
    v.secret_key.0 = SK.into();
    v
}

/// An frpc with `f`'s config, once its proxies run and its visitors listen.
async fn start(frps: SocketAddr, stun: SocketAddr, f: impl FnOnce(&mut ClientConfig)) -> Frpc {
    let mut cfg = client_config(frps);
    cfg.nat_hole_stun_server = stun.to_string();
    f(&mut cfg);
    let proxies: Vec<String> = cfg.proxies.iter().map(|p| p.name.clone()).collect();
    let visitors: Vec<String> = cfg.active_visitors().map(|v| v.name.clone()).collect();
    let frpc = Frpc::run(frpc::Client::new(cfg));
    for n in proxies {
        frpc.wait_running(&n).await;
    }
    for n in visitors {
        frpc.wait_visitor(&n).await;
    }
    frpc
}

/// frpc's count of hole punches by `side`, `name` and `result`.
fn punches(frpc: &Frpc, side: &str, name: &str, result: &str) -> f64 {
    let want = format!(
        "frp_rs_client_xtcp_punches_total{{name=\"{name}\",result=\"{result}\",side=\"{side}\"}}"
    );
    frpc.metrics
        .render()
        .lines()
        .find(|l| l.starts_with(&want))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn wait_punches(frpc: &Frpc, side: &str, name: &str, result: &str, n: f64) {
    wait_until(&format!("{side} {name} punch {result} x{n}"), || async {
        punches(frpc, side, name, result) >= n
    })
    .await;
}

/// 10 MiB each way through an xtcp tunnel, plain and with encryption and compression (both
/// sides set alike, as frp requires); a second connection reuses the tunnel.
#[tokio::test]
async fn xtcp_echo_10_mib_plain_and_encrypted_compressed() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let stun = stun_pair().await;
    let echo = echo_tcp().await;
    let server = start(frps.addr, stun, |c| {
        c.proxies.push(xtcp_proxy("p2p", echo));
        let mut p = xtcp_proxy("p2p-layers", echo);
        p.transport.use_encryption = true;
        p.transport.use_compression = true;
        c.proxies.push(p);
    })
    .await;
    let (a, b) = (free_port().await, free_port().await);
    let client = start(frps.addr, stun, |c| {
        c.visitors.push(visitor("x", "xtcp", "p2p", i32::from(a)));
        let mut v = visitor("x-layers", "xtcp", "p2p-layers", i32::from(b));
        v.transport.use_encryption = true;
        v.transport.use_compression = true;
        c.visitors.push(v);
    })
    .await;
    let data = pattern(10 << 20, 7);
    for port in [a, b] {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        assert!(
            echo_through(addr, &data).await == data,
            "echo through {port}"
        );
        assert_eq!(echo_through(addr, b"again").await, b"again");
    }
    for name in ["x", "x-layers"] {
        assert_eq!(
            punches(&client, "visitor", name, "ok"),
            1.0,
            "{name}: one tunnel"
        );
    }
    assert_eq!(punches(&server, "proxy", "p2p", "ok"), 1.0);
    assert_eq!(punches(&server, "proxy", "p2p-layers", "ok"), 1.0);
    client.stop().await;
    server.stop().await;
    frps.stop().await;
}
