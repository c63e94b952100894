//! frps's port and name policy: allowPorts, maxPortsPerClient, unique names, with frp's errors.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use frpc::status::Phase;
use tests::*;

#[tokio::test]
async fn allow_ports_refuses_other_ports() {
    init_log();
    let allowed = free_port().await;
    let other = free_port().await;
    let frps = Frps::start(|c| {
        c.allow_ports = vec![common::config::PortsRange {
            single: allowed,
            ..Default::default()
        }]
    })
    .await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.proxies.push(proxy("ok", "tcp", echo, allowed));
        c.proxies.push(proxy("bad", "tcp", echo, other));
    });
    assert_eq!(
        frpc.wait_running("ok").await.remote_addr,
        format!(":{allowed}")
    );
    let bad = frpc.wait_phase("bad", Phase::StartError).await;
    assert_eq!(bad.error, "port not allowed");
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn remote_port_zero_picks_from_allow_ports() {
    init_log();
    let a = free_port().await;
    let frps = Frps::start(|c| {
        c.allow_ports = vec![common::config::PortsRange {
            start: a,
            end: a,
            single: 0,
        }]
    })
    .await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.proxies.push(proxy("first", "tcp", echo, 0));
    });
    assert_eq!(
        frpc.wait_running("first").await.remote_addr,
        format!(":{a}")
    );
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn max_ports_per_client() {
    init_log();
    let frps = Frps::start(|c| c.max_ports_per_client = 1).await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.proxies.push(proxy("a", "tcp", echo, 0));
        c.proxies.push(proxy("b", "tcp", echo, 0));
    });
    // NewProxy messages are handled in order: a gets the port, b is refused.
    frpc.wait_running("a").await;
    let b = frpc.wait_phase("b", Phase::StartError).await;
    assert_eq!(b.error, "exceed the max_ports_per_client");
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn proxy_names_are_unique_across_clients_and_ports_too() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let port = free_port().await;
    let one = Frpc::start(frps.addr, |c| {
        c.proxies.push(proxy("web", "tcp", echo, port))
    });
    one.wait_running("web").await;
    let two = Frpc::start(frps.addr, |c| {
        c.proxies.push(proxy("web", "tcp", echo, 0));
        c.proxies.push(proxy("web2", "tcp", echo, port));
    });
    assert_eq!(
        two.wait_phase("web", Phase::StartError).await.error,
        "proxy [web] already exists"
    );
    assert_eq!(
        two.wait_phase("web2", Phase::StartError).await.error,
        "port already used"
    );
    one.stop().await;
    two.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn unsupported_proxy_type_is_refused_clearly() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| c.proxies.push(proxy("s", "stcp", echo, 0)));
    let s = frpc.wait_phase("s", Phase::StartError).await;
    assert_eq!(
        s.error,
        "proxy type [stcp] is not supported by this frps yet"
    );
    frpc.stop().await;
    frps.stop().await;
}
