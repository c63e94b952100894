//! Health checks and load-balancing groups: fail-over and recovery through real frps/frpc.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::config::{HealthCheck, NameValue};
use frpc::status::Phase;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tests::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

fn member(name: &str, backend: SocketAddr, port: u16, key: &str) -> common::config::ProxyConfig {
    let mut p = proxy(name, "tcp", backend, port);
    p.load_balancer.group = "web".into();
    p.load_balancer.group_key = key.into();
    p.health_check = HealthCheck {
        kind: "tcp".into(),
        timeout_seconds: 1,
        max_failed: 1,
        interval_seconds: 1,
        ..Default::default()
    };
    p
}

/// Sends `n` users through `entry`; returns how many each backend served. Every user must be served.
async fn spread(entry: SocketAddr, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for i in 0..n {
        let id = read_id(entry)
            .await
            .unwrap_or_else(|| panic!("user {i} of {n} failed"));
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

#[tokio::test]
async fn group_spreads_users_fails_over_and_recovers() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let port = free_port().await;
    let entry = SocketAddr::from(([127, 0, 0, 1], port));
    let mut a = IdServer::start("A").await;
    let b = IdServer::start("B").await;
    let fa = Frpc::start(frps.addr, |c| {
        c.proxies.push(member("a", a.addr, port, "k"))
    });
    let fb = Frpc::start(frps.addr, |c| {
        c.proxies.push(member("b", b.addr, port, "k"))
    });
    assert_eq!(fa.wait_running("a").await.remote_addr, format!(":{port}"));
    assert_eq!(fb.wait_running("b").await.remote_addr, format!(":{port}"));

    // Both members take users, evenly.
    let seen = spread(entry, 20).await;
    assert_eq!(
        (seen.get("A"), seen.get("B")),
        (Some(&10), Some(&10)),
        "{seen:?}"
    );

    // Backend A dies: its health check takes it out; then every user reaches B.
    a.stop().await;
    fa.wait_phase("a", Phase::CheckFailed).await;
    let seen = spread(entry, 10).await;
    assert_eq!(seen.get("B"), Some(&10), "{seen:?}");

    // A comes back: it is registered again and takes users again.
    a.restart().await;
    fa.wait_running("a").await;
    let seen = spread(entry, 10).await;
    assert!(
        seen.get("A").copied().unwrap_or(0) > 0 && seen.get("B").copied().unwrap_or(0) > 0,
        "{seen:?}"
    );

    // B's frpc goes away: once frps has dropped that client, every user reaches A.
    fb.stop().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while frps.stats.client_count() != 1 {
        assert!(tokio::time::Instant::now() < deadline, "client not dropped");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let seen = spread(entry, 10).await;
    assert_eq!(seen.get("A"), Some(&10), "{seen:?}");

    // The last member leaves: the shared port is released.
    fa.stop().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while TcpListener::bind(entry).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "group port not released"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    frps.stop().await;
}

#[tokio::test]
async fn group_refuses_wrong_key_and_other_port() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let port = free_port().await;
    let other = free_port().await;
    let b = IdServer::start("B").await;
    let first = Frpc::start(frps.addr, |c| {
        c.proxies.push(member("m1", b.addr, port, "right"))
    });
    first.wait_running("m1").await;
    let second = Frpc::start(frps.addr, |c| {
        c.proxies.push(member("m2", b.addr, port, "wrong"));
        c.proxies.push(member("m3", b.addr, other, "right"));
    });
    assert_eq!(
        second.wait_phase("m2", Phase::StartError).await.error,
        "group auth failed"
    );
    assert_eq!(
        second.wait_phase("m3", Phase::StartError).await.error,
        "group should have same remote port"
    );
    first.stop().await;
    second.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn no_new_proxy_until_the_first_good_check() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let mut a = IdServer::start("A").await;
    let backend = a.addr;
    a.stop().await;
    let f = Frpc::start(frps.addr, |c| {
        c.proxies.push(member("late", backend, 0, "k"))
    });
    f.wait_phase("late", Phase::CheckFailed).await;
    assert!(
        frps.stats.proxy_traffic("late").is_none(),
        "not registered on frps while unhealthy"
    );
    a.restart().await;
    let st = f.wait_running("late").await;
    assert_eq!(
        read_id(([127, 0, 0, 1], remote_port(&st)).into())
            .await
            .as_deref(),
        Some("A")
    );
    f.stop().await;
    frps.stop().await;
}

/// An HTTP backend that answers 200 on `/healthz` only when `X-Check: yes` is sent, records the
/// Host it saw, and can be switched to 500.
async fn http_backend(healthy: Arc<Mutex<bool>>, hosts: Arc<Mutex<Vec<String>>>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let (healthy, hosts) = (healthy.clone(), hosts.clone());
            tokio::spawn(async move {
                let Some(head) = read_head(&mut s).await else {
                    return;
                };
                let head = String::from_utf8_lossy(&head).to_string();
                let lower = head.to_ascii_lowercase();
                if let Some(h) = lower.lines().find_map(|l| l.strip_prefix("host: ")) {
                    hosts.lock().unwrap().push(h.trim().to_owned());
                }
                let ok = head.starts_with("GET /healthz HTTP/1.1")
                    && lower.contains("\r\nx-check: yes\r\n")
                    && *healthy.lock().unwrap();
                let status = if ok {
                    "200 OK"
                } else {
                    "500 Internal Server Error"
                };
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn http_health_check_honours_path_and_headers() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let healthy = Arc::new(Mutex::new(true));
    let hosts = Arc::new(Mutex::new(Vec::new()));
    let backend = http_backend(healthy.clone(), hosts.clone()).await;
    let f = Frpc::start(frps.addr, |c| {
        let mut p = proxy("web", "tcp", backend, 0);
        p.health_check = HealthCheck {
            kind: "http".into(),
            path: "healthz".into(), // frp adds the missing '/'
            timeout_seconds: 1,
            max_failed: 2,
            interval_seconds: 1,
            http_headers: vec![
                NameValue {
                    name: "X-Check".into(),
                    value: "yes".into(),
                },
                NameValue {
                    name: "Host".into(),
                    value: "svc.internal".into(),
                },
            ],
        };
        c.proxies.push(p);
    });
    f.wait_running("web").await;
    assert!(
        hosts.lock().unwrap().iter().all(|h| h == "svc.internal"),
        "{:?}",
        hosts.lock().unwrap()
    );
    *healthy.lock().unwrap() = false;
    assert_eq!(
        f.wait_phase("web", Phase::CheckFailed).await.phase.as_str(),
        "check failed"
    );
    *healthy.lock().unwrap() = true;
    f.wait_running("web").await;
    f.stop().await;
    frps.stop().await;
}

/// A failed check says why, in the proxy's status (and so in `frpc status`): refused, no answer
/// in time, or the HTTP status the service gave.
#[tokio::test]
async fn failed_health_check_says_why() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    // Accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let sick = Arc::new(Mutex::new(false));
    let backend = http_backend(sick, Arc::new(Mutex::new(Vec::new()))).await;
    let check = |kind: &str| HealthCheck {
        kind: kind.into(),
        path: "/healthz".into(),
        timeout_seconds: 1,
        max_failed: 1,
        interval_seconds: 1,
        ..Default::default()
    };
    let f = Frpc::start(frps.addr, |c| {
        for (name, kind, addr) in [
            ("refused", "tcp", closed),
            ("silent", "http", silent_addr),
            ("status", "http", backend),
        ] {
            let mut p = proxy(name, "tcp", addr, 0);
            p.health_check = check(kind);
            c.proxies.push(p);
        }
    });
    for (name, want) in [
        ("refused", "refused"),
        ("silent", "no answer within 1s"),
        ("status", "HTTP status 500"),
    ] {
        let s = f.wait_phase(name, Phase::CheckFailed).await;
        assert!(
            s.error.starts_with("health check failed: ") && s.error.contains(want),
            "{name}: {:?}",
            s.error
        );
    }
    f.stop().await;
    frps.stop().await;
}

/// http load-balancing group with health checks: a member whose local service stops leaves the
/// group (every request reaches the other), and rejoins when the service is back.
#[tokio::test]
async fn http_group_members_leave_and_rejoin_on_health_checks() {
    use tests::http_backend::{get, start, start_at};
    init_log();
    let port = free_port().await;
    let frps = Frps::start(|c| c.vhost_http_port = port).await;
    let vhost = SocketAddr::from(([127, 0, 0, 1], port));
    let (a, _, a_task) = start_at("A", ([127, 0, 0, 1], 0).into()).await;
    let b = start("B").await;
    let member = |name: &str, backend: SocketAddr| {
        let mut p = member(name, backend, 0, "k");
        p.kind = "http".into();
        p.custom_domains = vec!["lb.example.com".into()];
        p
    };
    let fa = Frpc::start(frps.addr, |c| c.proxies.push(member("a", a)));
    let fb = Frpc::start(frps.addr, |c| c.proxies.push(member("b", b)));
    fa.wait_running("a").await;
    fb.wait_running("b").await;
    let spread = |n: usize| async move {
        let mut seen = HashMap::new();
        for _ in 0..n {
            let answer = get(vhost, "lb.example.com", "/", &[]).await;
            let id = answer.text().lines().next().unwrap_or_default().to_owned();
            *seen.entry(format!("{} {id}", answer.status)).or_insert(0) += 1;
        }
        seen
    };
    let seen = spread(10).await;
    assert_eq!(
        (seen.get("200 A"), seen.get("200 B")),
        (Some(&5), Some(&5)),
        "{seen:?}"
    );

    // A's service stops: its health check takes it out of the group; then B serves everyone.
    a_task.abort();
    let _ = a_task.await;
    fa.wait_phase("a", Phase::CheckFailed).await;
    wait_until("requests still reach the stopped member", || async {
        spread(2).await.get("200 B") == Some(&2)
    })
    .await;
    let seen = spread(10).await;
    assert_eq!(seen.get("200 B"), Some(&10), "{seen:?}");

    // A's service is back on its port: A rejoins and both serve.
    let (_, _, _a_task) = start_at("A", a).await;
    fa.wait_running("a").await;
    wait_until("the member did not rejoin", || async {
        spread(2).await.contains_key("200 A")
    })
    .await;
    let seen = spread(10).await;
    assert_eq!(
        (seen.get("200 A"), seen.get("200 B")),
        (Some(&5), Some(&5)),
        "{seen:?}"
    );
    fa.stop().await;
    fb.stop().await;
    frps.stop().await;
}
