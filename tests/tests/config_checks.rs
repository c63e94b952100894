//! Config keys as users set them, end to end: listen addresses bind what they say (issue 12
//! item 2), and `verify` reports what a run would fail on.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::Path;
use tests::*;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::process::Command;

async fn run(name: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(bin(name))
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(PATIENCE, out)
        .await
        .expect("exits in time")
        .expect("run")
}

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
        let out = run("frps", &args).await;
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
