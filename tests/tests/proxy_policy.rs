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

/// A proxy type frp does not know is refused with frp's text, naming the type.
#[tokio::test]
async fn unsupported_proxy_type_is_refused_clearly() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let (mut ctl, _) = raw_login(frps.addr, 0).await;
    let np = common::msg::NewProxy {
        proxy_name: "p2p".into(),
        proxy_type: "xtcp2".into(),
        sk: "k".into(),
        ..Default::default()
    };
    common::msg::write_msg(&mut ctl, &np.into()).await.unwrap();
    let resp = tokio::time::timeout(PATIENCE, common::msg::read_msg(&mut ctl))
        .await
        .unwrap()
        .unwrap();
    let common::msg::Message::NewProxyResp(r) = resp else {
        panic!("expected NewProxyResp, got {resp:?}")
    };
    assert_eq!(r.error, "unknown proxy type: xtcp2");
    frps.stop().await;
}

/// The dashboard's legacy proxy entry of `kind`/`name` as JSON.
async fn dashboard_proxy(dash: std::net::SocketAddr, kind: &str, name: &str) -> serde_json::Value {
    let auth = common::http::BasicAuth::default();
    let (code, body) = common::http::request(
        &dash.to_string(),
        &auth,
        hyper::Method::GET,
        &format!("/api/proxy/{kind}/{name}"),
        hyper::body::Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(code, hyper::StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// frp keeps one port manager per protocol (`server/ports`: TCPPortManager, UDPPortManager):
/// a tcp and a udp proxy on the same remote port both run and both carry traffic; allowPorts
/// applies to each protocol on its own; two udp proxies still cannot share a port.
#[tokio::test]
async fn tcp_and_udp_proxies_share_a_remote_port() {
    init_log();
    let port = free_port().await;
    let dash_port = free_port().await;
    let frps = Frps::start(|c| {
        c.allow_ports = vec![common::config::PortsRange {
            single: port,
            ..Default::default()
        }];
        c.web_server.addr = "127.0.0.1".into();
        c.web_server.port = dash_port;
    })
    .await;
    let (tcp_echo, udp_echo) = (echo_tcp().await, echo_udp().await);
    let frpc = Frpc::start(frps.addr, |c| {
        c.proxies.push(proxy("t", "tcp", tcp_echo, port));
        c.proxies.push(proxy("u", "udp", udp_echo, port));
    });
    assert_eq!(frpc.wait_running("t").await.remote_addr, format!(":{port}"));
    assert_eq!(frpc.wait_running("u").await.remote_addr, format!(":{port}"));
    let entry: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    assert_eq!(echo_through(entry, b"over tcp").await, b"over tcp");
    let user = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(udp_roundtrip(&user, entry, b"over udp").await, b"over udp");
    let dash = frps.dashboard.unwrap();
    assert_eq!(
        dashboard_proxy(dash, "tcp", "t").await["conf"]["remotePort"],
        port
    );
    assert_eq!(
        dashboard_proxy(dash, "udp", "u").await["conf"]["remotePort"],
        port
    );

    let other = Frpc::start(frps.addr, |c| {
        c.proxies.push(proxy("u2", "udp", udp_echo, port));
        c.proxies.push(proxy("t2", "tcp", tcp_echo, port));
    });
    // frp's udp proxy wraps the port error (`server/proxy/udp.go`); tcp's does not.
    assert_eq!(
        other.wait_phase("u2", Phase::StartError).await.error,
        format!("acquire port {port} error: port already used")
    );
    assert_eq!(
        other.wait_phase("t2", Phase::StartError).await.error,
        "port already used"
    );
    other.stop().await;
    frpc.stop().await;
    frps.stop().await;
}

/// `remotePort = 0` and tcp groups draw from each protocol's ports on their own: with a single
/// allowed port, a tcp group and a udp proxy asking for any port both get it.
#[tokio::test]
async fn remote_port_zero_and_groups_keep_tcp_and_udp_apart() {
    init_log();
    let port = free_port().await;
    let frps = Frps::start(|c| {
        c.allow_ports = vec![common::config::PortsRange {
            start: port,
            end: port,
            single: 0,
        }]
    })
    .await;
    let (tcp_echo, udp_echo) = (echo_tcp().await, echo_udp().await);
    let frpc = Frpc::start(frps.addr, |c| {
        let mut g = proxy("g1", "tcp", tcp_echo, port);
        g.load_balancer.group = "g".into();
        g.load_balancer.group_key = "k".into();
        c.proxies.push(g);
        c.proxies.push(proxy("u", "udp", udp_echo, 0));
    });
    assert_eq!(
        frpc.wait_running("g1").await.remote_addr,
        format!(":{port}")
    );
    assert_eq!(frpc.wait_running("u").await.remote_addr, format!(":{port}"));
    let entry: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    assert_eq!(echo_through(entry, b"group").await, b"group");
    let user = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(udp_roundtrip(&user, entry, b"udp").await, b"udp");
    frpc.stop().await;
    frps.stop().await;
}

/// frp counts one port per tcp or udp proxy against maxPortsPerClient (`usedPortsNum = 1` in
/// `server/proxy/tcp.go` and `udp.go`), so a tcp and a udp proxy on the same number use two.
#[tokio::test]
async fn max_ports_per_client_counts_tcp_and_udp_on_one_number_as_two() {
    init_log();
    let port = free_port().await;
    let frps = Frps::start(|c| c.max_ports_per_client = 1).await;
    let (tcp_echo, udp_echo) = (echo_tcp().await, echo_udp().await);
    let frpc = Frpc::start(frps.addr, |c| {
        c.proxies.push(proxy("t", "tcp", tcp_echo, port));
        c.proxies.push(proxy("u", "udp", udp_echo, port));
    });
    frpc.wait_running("t").await;
    assert_eq!(
        frpc.wait_phase("u", Phase::StartError).await.error,
        "exceed the max_ports_per_client"
    );
    frpc.stop().await;
    frps.stop().await;
}
