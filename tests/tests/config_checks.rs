//! Config keys as users set them, end to end: listen addresses bind what they say (issue 12
//! item 2), and `verify` reports what a run would fail on.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use frpc::status::Phase;
use std::net::SocketAddr;
use std::path::Path;
use tests::*;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::process::Command;

fn write_temp(tag: &str, name: &str, text: &str) -> (std::path::PathBuf, String) {
    let d = std::env::temp_dir().join(format!(
        "frp-rs-{tag}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, text).unwrap();
    let s = p.display().to_string();
    (d, s)
}

/// Whether something accepts TCP connections at `addr` (bounded wait).
async fn accepts(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(PATIENCE, TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

#[tokio::test]
async fn proxy_bind_addr_localhost_binds_loopback_only() {
    init_log();
    let frps = Frps::start(|c| c.proxy_bind_addr = "localhost".into()).await;
    let echo = echo_tcp().await;
    let uecho = echo_udp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.proxies.push(proxy("t", "tcp", echo, 0));
        c.proxies.push(proxy("u", "udp", uecho, 0));
    });
    let port = remote_port(&frpc.wait_running("t").await);
    let uport = remote_port(&frpc.wait_running("u").await);
    assert_eq!(
        echo_through(([127, 0, 0, 1], port).into(), b"x").await,
        b"x"
    );
    // Not every interface: another loopback address is not served, and its port is free.
    let other: SocketAddr = ([127, 0, 0, 2], port).into();
    assert!(
        !accepts(other).await,
        "the tcp proxy listens on 127.0.0.2 too"
    );
    TcpListener::bind(other)
        .await
        .expect("tcp port free on 127.0.0.2");
    UdpSocket::bind(SocketAddr::from(([127, 0, 0, 2], uport)))
        .await
        .expect("udp port free on 127.0.0.2");
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn host_names_in_listen_addresses_bind_their_ipv4_address() {
    init_log();
    let web = free_port().await;
    let frps = Frps::start(|c| {
        c.bind_addr = "localhost".into();
        c.web_server.addr = "localhost".into();
        c.web_server.port = web;
    })
    .await;
    assert_eq!(frps.addr.ip().to_string(), "127.0.0.1");
    assert_eq!(frps.dashboard, Some(([127, 0, 0, 1], web).into()));
    frps.stop().await;
}

/// A config built in code (not through the loader) is checked when frps starts.
#[tokio::test]
async fn frps_refuses_a_proxy_bind_addr_it_cannot_use() {
    for key in ["proxyBindAddr", "bindAddr"] {
        let mut cfg = server_config();
        match key {
            "proxyBindAddr" => cfg.proxy_bind_addr = "no.such.host.invalid".into(),
            _ => cfg.bind_addr = "no.such.host.invalid".into(),
        }
        let err = frps::Server::bind(cfg).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "{key}: \"no.such.host.invalid\" is not an IP address"
            )),
            "{err}"
        );
    }
}

#[tokio::test]
async fn verify_and_run_fail_on_a_proxy_bind_addr_that_does_not_resolve() {
    let (dir, f) = write_temp(
        "pba",
        "frps.toml",
        "bindAddr = \"127.0.0.1\"\nbindPort = 0\nproxyBindAddr = \"no.such.host.invalid\"\n",
    );
    for args in [vec!["verify", "-c", &f], vec!["-c", &f]] {
        let out = run_bin("frps", &args).await;
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "{f}:3:1: proxyBindAddr: \"no.such.host.invalid\" is not an IP address or a host name that resolves"
            )),
            "{args:?}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}

/// Keys frp-rs cannot act on yet (issue 12 item 10): a proxy using one does not start and its
/// status names the key; it is never registered as if the key were absent.
#[tokio::test]
async fn a_proxy_using_an_unsupported_key_does_not_start_and_says_why() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let p2 = free_port().await;
    let frpc = Frpc::start(frps.addr, |c| {
        let mut plug = proxy("plug", "tcp", echo, p2);
        plug.plugin = Some(common::config::PluginConfig {
            kind: "virtual_net".into(),
            ..Default::default()
        });
        c.proxies.push(plug);
        c.proxies.push(proxy("ok", "tcp", echo, 0));
    });
    // NewProxy goes out in config order: once "ok" runs, frps has seen whatever came before.
    frpc.wait_running("ok").await;
    for (name, key) in [("plug", "plugin.type")] {
        let s = frpc.wait_phase(name, Phase::StartError).await;
        assert!(
            s.error.starts_with(&format!("{key}: ")) && s.error.contains("not supported"),
            "{name}: {}",
            s.error
        );
    }
    assert!(
        !accepts(([127, 0, 0, 1], p2).into()).await,
        "port {p2} is served"
    );
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn frpc_does_not_start_with_a_transport_it_does_not_have() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    for (key, set) in [("transport.proxyURL", "ntlm://127.0.0.1:3128")] {
        let frpc = Frpc::start(frps.addr, |c| match key {
            "transport.proxyURL" => c.transport.proxy_url = set.into(),
            _ => unreachable!(),
        });
        let err = frpc.exited().await.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{key}: ")) && err.contains("frpc will not start"),
            "{key}: {err}"
        );
    }
    assert_eq!(frps.stats.client_count(), 0, "no login happened");
    frps.stop().await;
}

/// `verify` accepts what frp accepts and warns, naming each key.
#[tokio::test]
async fn verify_warns_about_unsupported_keys() {
    let (dir, f) = write_temp(
        "sshgw",
        "frps.toml",
        "bindAddr = \"127.0.0.1\"\nbindPort = 0\nsshTunnelGateway.bindPort = 2200\n",
    );
    let out = run_bin("frps", &["verify", "-c", &f]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "{f}:3:1: sshTunnelGateway: the SSH tunnel gateway is not supported yet"
        )),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn frpc_says_a_visitor_is_not_started() {
    let closed = free_port().await;
    let (dir, f) = write_temp(
        "visitor",
        "frpc.toml",
        &format!("serverAddr = \"127.0.0.1\"\nserverPort = {closed}\n[[visitors]]\nname = \"v\"\ntype = \"stcp\"\nserverName = \"s\"\nsecretKey = \"k\"\nbindPort = {}\n[visitors.plugin]\ntype = \"virtual_net\"\n", free_port().await),
    );
    let out = run_bin("frpc", &["verify", "-c", &f]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "{f}:9:11: visitors[0].plugin (\"v\"): visitor plugins (virtual_net) are not supported yet"
        )),
        "{err}"
    );
    // Run (the login fails: nothing listens there): the visitor is named as not started.
    let out = run_bin("frpc", &["-c", &f]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("visitor not started")
            && err.contains("visitor plugins (virtual_net) are not supported yet"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `auth.oidc.scope`, `audience` and `additionalEndpointParams` go into the token request.
#[tokio::test]
async fn oidc_token_request_carries_scope_audience_and_extra_params() {
    use tests::oidc::{Issuer, AUDIENCE, CLIENT_ID, CLIENT_SECRET};
    init_log();
    let issuer = Issuer::start(3600).await;
    let frps = Frps::start(|c| {
        c.auth.method = "oidc".into();
        c.auth.oidc.issuer = issuer.url.clone();
        c.auth.oidc.audience = AUDIENCE.into();
    })
    .await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.auth.method = "oidc".into();
        c.auth.oidc.client_id = CLIENT_ID.into();
        c.auth.oidc.client_secret = CLIENT_SECRET.into();
        c.auth.oidc.token_endpoint_url = format!("{}/token", issuer.url);
        c.auth.oidc.audience = AUDIENCE.into();
        c.auth.oidc.scope = "frp-login".into();
        c.auth.oidc.additional_endpoint_params =
            [("resource".to_string(), "frps-api".to_string())].into();
        c.proxies.push(proxy("o", "tcp", echo, 0));
    });
    frpc.wait_running("o").await;
    let forms = issuer.token_forms.lock().unwrap().clone();
    let form = forms.first().expect("a token request");
    for want in [
        "grant_type=client_credentials",
        "scope=frp-login",
        &format!("audience={AUDIENCE}"),
        "resource=frps-api",
    ] {
        assert!(form.split('&').any(|p| p == want), "{want} not in {form}");
    }
    frpc.stop().await;
    frps.stop().await;
}

/// `udpPacketSize` on both sides: a datagram bigger than the default 1500 bytes arrives whole.
#[tokio::test]
async fn udp_packet_size_carries_bigger_datagrams() {
    init_log();
    let frps = Frps::start(|c| c.udp_packet_size = 4000).await;
    let echo = echo_udp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.udp_packet_size = 4000;
        c.proxies.push(proxy("u", "udp", echo, 0));
    });
    let port = remote_port(&frpc.wait_running("u").await);
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let data = pattern(3000, 5);
    let mut buf = vec![0u8; 65536];
    // The first datagrams can go before the work connection is up: send until one comes back.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let n = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no datagram came back"
        );
        s.send_to(&data, ("127.0.0.1", port)).await.unwrap();
        if let Ok(r) =
            tokio::time::timeout(std::time::Duration::from_millis(500), s.recv(&mut buf)).await
        {
            break r.unwrap();
        }
    };
    assert!(
        buf[..n] == data[..],
        "the datagram arrives whole: got {n} bytes of {}",
        data.len()
    );
    frpc.stop().await;
    frps.stop().await;
}

/// `log.to` a file and `log.level`: a warning reaches the file at "warn", not at "error".
#[tokio::test]
async fn log_to_a_file_at_the_configured_level() {
    for (level, logged) in [("warn", true), ("error", false)] {
        let (dir, _) = write_temp("log", "x", "");
        let log = dir.join("frps.log");
        let f = dir.join("frps.toml");
        // sshTunnelGateway warns at load; binding an address this host does not have (TEST-NET-1)
        // then stops frps, so the run ends by itself.
        std::fs::write(&f, format!("bindAddr = \"192.0.2.1\"\nbindPort = 0\nsshTunnelGateway.bindPort = 2200\nlog.to = \"{}\"\nlog.level = \"{level}\"\n", log.display())).unwrap();
        let out = tokio::time::timeout(
            PATIENCE,
            Command::new(bin("frps"))
                .args(["-c", &f.display().to_string()])
                .env_remove("RUST_LOG")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("exits in time")
        .unwrap();
        assert!(!out.status.success());
        let text = std::fs::read_to_string(&log).expect("the log file is written");
        assert_eq!(
            text.contains("sshTunnelGateway"),
            logged,
            "level {level}: {text}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
