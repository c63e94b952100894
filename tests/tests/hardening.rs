//! frps under attack: listeners, connections that never log in, stolen run_ids, clients that
//! stop reading, forged records. Each test plays the attacker and asserts what frps keeps or
//! refuses (counts, not timings).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use tests::*;

// --- listen backlog (issue 12, item 11) -----------------------------------------------------

/// The backlog of the TCP listener on `port` (`ss` shows it as Send-Q of a listening socket);
/// `None` when `ss` is not installed.
fn listen_backlog(port: u16) -> Option<u32> {
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .next()
        .unwrap_or_else(|| panic!("nothing listens on {port}: {text:?}"));
    Some(line.split_whitespace().nth(2).unwrap().parse().unwrap())
}

fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .map(|s| s.trim().parse().unwrap())
        .unwrap_or(4096)
}

/// bindPort, the dashboard, a proxy listener and frpc's admin server all listen with the
/// system's backlog, as Go does (tokio's default of 1024 left users waiting for SYN retries).
#[tokio::test]
async fn every_listener_uses_the_system_backlog() {
    init_log();
    if std::process::Command::new("ss").arg("-V").output().is_err() {
        eprintln!("ss is not installed: skipped");
        return;
    }
    let dash = free_port().await;
    let frps = Frps::start(|c| {
        c.web_server.addr = "127.0.0.1".into();
        c.web_server.port = dash;
    })
    .await;
    let echo = echo_tcp().await;
    let admin = free_port().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.web_server.addr = "127.0.0.1".into();
        c.web_server.port = admin;
        c.proxies.push(proxy("e", "tcp", echo, 0));
    });
    let proxy_port = remote_port(&frpc.wait_running("e").await);
    wait_listening(([127, 0, 0, 1], admin).into()).await;
    let want = somaxconn();
    for (what, port) in [
        ("bindPort", frps.addr.port()),
        ("dashboard", dash),
        ("proxy", proxy_port),
        ("frpc admin", admin),
    ] {
        assert_eq!(listen_backlog(port), Some(want), "{what} backlog");
    }
    frpc.stop().await;
    frps.stop().await;
}
