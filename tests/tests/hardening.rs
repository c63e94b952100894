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

// --- dashboard records (issue 22, item 8) ---------------------------------------------------

use common::http::{request, BasicAuth};
use common::msg::{read_msg, write_msg, Login, Message, NewProxy};

async fn dash_get(dash: std::net::SocketAddr, path: &str) -> serde_json::Value {
    let (code, body) = request(
        &dash.to_string(),
        &BasicAuth::default(),
        hyper::Method::GET,
        path,
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(code, hyper::StatusCode::OK, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

async fn new_proxy(ctl: &mut RawControl, name: &str, remote_port: u16) -> String {
    let np = NewProxy {
        proxy_name: name.into(),
        proxy_type: "tcp".into(),
        remote_port: remote_port.into(),
        ..Default::default()
    };
    write_msg(ctl, &np.into()).await.unwrap();
    match tokio::time::timeout(PATIENCE, read_msg(ctl)).await {
        Ok(Ok(Message::NewProxyResp(r))) => r.error,
        other => panic!("NewProxyResp expected, got {other:?}"),
    }
}

/// Refused NewProxy requests leave nothing behind: no dashboard record, no Prometheus series,
/// and another client's offline record under the same name stays as it was. A client without
/// a clientID is forgotten when it goes offline (as frp); one with a clientID is kept.
#[tokio::test]
async fn refused_proxies_leave_no_records() {
    init_log();
    let allowed = free_port().await;
    let dash = free_port().await;
    let frps = Frps::start(|c| {
        c.transport.tcp_mux = false;
        c.web_server.addr = "127.0.0.1".into();
        c.web_server.port = dash;
        c.enable_prometheus = true;
        c.allow_ports = vec![common::config::PortsRange {
            single: allowed,
            ..Default::default()
        }];
    })
    .await;
    let dash = frps.dashboard.unwrap();
    // Client A registers "shared" and goes away: an offline record owned by A.
    let login = |user: &str, client_id: &str| Login {
        user: user.into(),
        client_id: client_id.into(),
        ..Default::default()
    };
    let (mut a, _) = raw_login_as(frps.addr, login("alice", "laptop")).await;
    assert_eq!(new_proxy(&mut a, "alice.shared", allowed).await, "");
    drop(a);
    eventually("alice's session ends", || frps.stats.client_count() == 0).await;
    // Client B (no clientID) is refused 30 times, once under A's proxy name.
    let (mut b, _) = raw_login_as(frps.addr, login("alice", "")).await;
    assert_ne!(new_proxy(&mut b, "alice.shared", allowed + 1).await, "");
    for i in 0..30 {
        let err = new_proxy(&mut b, &format!("alice.refused-{i}"), allowed + 1).await;
        assert!(
            err.contains("error") || err.contains("not allowed"),
            "{err}"
        );
    }
    let proxies = dash_get(dash, "/api/proxy/tcp").await;
    let names: Vec<&str> = proxies["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["alice.shared"],
        "only the proxy that started has a record"
    );
    let shared = &proxies["proxies"][0];
    assert_eq!(
        shared["clientID"], "laptop",
        "A's record is still A's: {shared}"
    );
    assert_eq!(shared["status"], "offline");
    let metrics = frps.stats.metrics_text();
    assert!(
        !metrics.contains("refused-"),
        "series of refused proxies:\n{metrics}"
    );
    let v2 = dash_get(dash, "/api/v2/proxies").await;
    assert_eq!(v2["data"]["total"], 1, "{v2}");
    // B leaves: without a clientID its record goes; A's (with one) stays.
    drop(b);
    eventually("the second session ends", || frps.stats.client_count() == 0).await;
    let clients = dash_get(dash, "/api/clients").await;
    let keys: Vec<&str> = clients
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["alice.laptop"], "{clients}");
    frps.stop().await;
}

// --- a client that stops reading (issue 22, item 9) ----------------------------------------

/// A client logs in, stops reading its control channel and floods requests whose answers
/// pile up (frps's send queue and the socket fill). Its session must stay killable: a
/// re-login with its run_id replaces it in time.
#[tokio::test]
async fn a_client_that_stops_reading_cannot_block_its_relogin() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let (ctl, run_id) = raw_login(frps.addr, 0).await;
    let (_unread, mut wr) = tokio::io::split(ctl);
    let written = Arc::new(AtomicU64::new(0));
    let progress = written.clone();
    let flood = tokio::spawn(async move {
        // Each refused request is answered with its ~8 KB name: answers outgrow requests.
        for i in 0.. {
            let np = NewProxy {
                proxy_name: format!("{i}-{}", "x".repeat(8000)),
                proxy_type: "no-such-type".into(),
                ..Default::default()
            };
            if write_msg(&mut wr, &np.into()).await.is_err() {
                return;
            }
            progress.fetch_add(1, Ordering::Relaxed);
        }
    });
    // Wait until frps has stopped reading us (our writes make no progress for a while).
    let mut last = (0, 0);
    let stalled = tokio::time::timeout(PATIENCE, async {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let now = written.load(Ordering::Relaxed);
            last = if now == last.0 {
                (now, last.1 + 1)
            } else {
                (now, 0)
            };
            if last.1 >= 10 || flood.is_finished() {
                return;
            }
        }
    });
    stalled.await.expect("the flood fills every buffer");
    let relogin = raw_login_as(
        frps.addr,
        Login {
            run_id: run_id.clone(),
            ..Default::default()
        },
    );
    let (_ctl, again) = tokio::time::timeout(PATIENCE, relogin)
        .await
        .expect("re-login with the run_id of a stuck session completes");
    assert_eq!(again, run_id);
    assert_eq!(frps.stats.client_count(), 1);
    flood.abort();
    frps.stop().await;
}

// --- work connections by run_id alone (issue 22, item 6) ------------------------------------

use common::msg::{NewWorkConn, StartWorkConn};
use common::transport::mux;
use tokio::net::{TcpSocket, TcpStream};

/// A TCP connection to frps from `src` (another loopback address than frpc's 127.0.0.1).
async fn connect_from(src: [u8; 4], frps: std::net::SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind((src, 0).into()).unwrap();
    sock.connect(frps).await.unwrap()
}

/// What an attacker's work connection gets first: a user (StartWorkConn without error) is the
/// failure; a refusal or a close is what frps must do.
async fn first_on_stolen_work_conn<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
) -> Option<StartWorkConn> {
    match tokio::time::timeout(PATIENCE, read_msg(s)).await {
        Ok(Ok(Message::StartWorkConn(m))) if m.error.is_empty() => Some(m),
        Ok(_) => None,
        Err(_) => panic!("frps neither refused nor used the stolen work connection"),
    }
}

/// Someone who learned a client's run_id (logs, a dashboard) attaches work connections with
/// it, without the token: they must not receive that client's users. With tcpMux a work
/// connection must come on its control's yamux session; without, from its control's address.
#[tokio::test]
async fn a_stolen_run_id_does_not_attract_user_connections() {
    init_log();
    for tcp_mux in [true, false] {
        let dash = free_port().await;
        let frps = Frps::start(|c| {
            c.transport.tcp_mux = tcp_mux;
            c.web_server.addr = "127.0.0.1".into();
            c.web_server.port = dash;
            c.web_server.user = "admin".into();
            c.web_server.password = "pw".into();
        })
        .await;
        let dash = frps.dashboard.unwrap();
        let echo = echo_tcp().await;
        let frpc = Frpc::start(frps.addr, |c| {
            c.transport.tcp_mux = tcp_mux;
            c.proxies.push(proxy("victim", "tcp", echo, 0));
        });
        let entry: std::net::SocketAddr = (
            [127, 0, 0, 1],
            remote_port(&frpc.wait_running("victim").await),
        )
            .into();
        // Without the dashboard's credentials no run_id shows.
        let (code, _) = request(
            &dash.to_string(),
            &BasicAuth::default(),
            hyper::Method::GET,
            "/api/clients",
            Default::default(),
        )
        .await
        .unwrap();
        assert_eq!(code, hyper::StatusCode::UNAUTHORIZED);
        // The attacker learned it anyway (say, from a log).
        let admin = BasicAuth {
            user: "admin".into(),
            password: "pw".into(),
        };
        let (_, body) = request(
            &dash.to_string(),
            &admin,
            hyper::Method::GET,
            "/api/clients",
            Default::default(),
        )
        .await
        .unwrap();
        let clients: serde_json::Value = serde_json::from_str(&body).unwrap();
        let run_id = clients[0]["runID"].as_str().unwrap().to_owned();
        let stolen = NewWorkConn {
            run_id: run_id.clone(),
            ..Default::default()
        };
        let mut attacker: Vec<common::io::BoxStream> = Vec::new();
        if tcp_mux {
            // Its own yamux session (from frpc's own address), streams with the run_id.
            let tcp = TcpStream::connect(frps.addr).await.unwrap();
            let (opener, driver) = mux::client(Box::new(tcp), mux::config(30));
            tokio::spawn(driver);
            for _ in 0..3 {
                attacker.push(Box::new(opener.open().unwrap()));
            }
        } else {
            for _ in 0..3 {
                attacker.push(Box::new(connect_from([127, 0, 0, 2], frps.addr).await));
            }
        }
        for s in &mut attacker {
            write_msg(s, &stolen.clone().into()).await.unwrap();
        }
        // Users arrive; each must reach the real client.
        let users: Vec<_> = (0..6u64)
            .map(|i| {
                tokio::spawn(async move {
                    echo_through(entry, &pattern(100, i)).await == pattern(100, i)
                })
            })
            .collect();
        for s in &mut attacker {
            let got = first_on_stolen_work_conn(s).await;
            assert!(
                got.is_none(),
                "tcpMux {tcp_mux}: the attacker received a user: {got:?}"
            );
        }
        for u in users {
            assert!(
                u.await.unwrap(),
                "tcpMux {tcp_mux}: a user was not served by the client"
            );
        }
        frpc.stop().await;
        frps.stop().await;
    }
}

// --- connections that have not logged in (issue 22 item 3, issue 12 items 12 and 13) --------

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One TCP connection opens 100 yamux streams with one byte each and never logs in: frps
/// accepts only a handful (the rest are reset) and keeps only that many waiting for a first
/// message.
#[tokio::test]
async fn unauthenticated_yamux_streams_are_bounded() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let mut s = TcpStream::connect(frps.addr).await.unwrap();
    let mut flood = Vec::new();
    for i in 0..100u32 {
        flood.extend_from_slice(&yamux_header(0, 1, 2 * i + 1, 1));
        flood.push(b'o');
    }
    s.write_all(&flood).await.unwrap();
    let (mut acked, mut reset) = (0, 0);
    while acked + reset < 100 {
        let mut h = [0u8; 12];
        tokio::time::timeout(PATIENCE, s.read_exact(&mut h))
            .await
            .expect("an answer for every stream")
            .unwrap();
        let flags = u16::from_be_bytes([h[2], h[3]]);
        match (h[1], flags) {
            (1, f) if f & 8 != 0 => reset += 1,
            (1, f) if f & 2 != 0 => acked += 1,
            _ => {} // pings, window updates
        }
    }
    assert!(acked <= 4, "{acked} streams accepted before login");
    eventually("the accepted streams wait for a first message", || {
        frps.stats.awaiting_first_message() == acked
    })
    .await;
    assert_eq!(frps.stats.unauthenticated_connections(), 1);
    frps.stop().await;
}

/// Many connections that never finish a first message: frps holds no more than its limit at
/// once, and serves a real client again once they are gone.
#[tokio::test]
async fn connections_that_have_not_logged_in_are_bounded() {
    init_log();
    let limits = frps::Limits {
        pending_connections: 8,
        ..Default::default()
    };
    for tcp_mux in [true, false] {
        let frps = Frps::start_with(limits.clone(), |c| c.transport.tcp_mux = tcp_mux).await;
        let mut idle = Vec::new();
        for _ in 0..20 {
            let mut s = TcpStream::connect(frps.addr).await.unwrap();
            s.write_all(b"o").await.unwrap(); // not TLS: plain, and then nothing more
            idle.push(s);
        }
        eventually("the limit is reached", || {
            frps.stats.unauthenticated_connections() == 8
        })
        .await;
        for _ in 0..25 {
            assert!(frps.stats.unauthenticated_connections() <= 8);
            assert!(frps.stats.awaiting_first_message() <= 8);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        drop(idle);
        let echo = echo_tcp().await;
        let frpc = Frpc::start(frps.addr, |c| {
            c.transport.tcp_mux = tcp_mux;
            c.proxies.push(proxy("after", "tcp", echo, 0));
        });
        frpc.wait_running("after").await;
        frpc.stop().await;
        frps.stop().await;
    }
}

/// A crowd of silent connections from one address takes only that address's share of the
/// slots for connections that have not logged in: the rest are closed at once, and a client
/// from another address logs in without waiting for the crowd's deadline.
#[tokio::test]
async fn one_address_cannot_take_every_pre_login_slot() {
    init_log();
    let limits = frps::Limits {
        // Longer than any wait here: only the per-address share can free the slots.
        first_msg_timeout: std::time::Duration::from_secs(300),
        pending_connections: 8,
        pending_per_source: 4,
        ..Default::default()
    };
    let frps = Frps::start_with(limits, |_| {}).await;
    let mut crowd = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(frps.addr).await.unwrap();
        let _ = s.write_all(b"o").await; // not TLS: plain, and then nothing more
        crowd.push(s);
    }
    // Past its share, the crowd's connections are closed at once (counted as busy).
    eventually("four of the crowd are refused as busy", || {
        frps.stats
            .metrics_text()
            .contains("frp_rs_server_rejected_connections_total{reason=\"busy\"} 4")
    })
    .await;
    assert_eq!(frps.stats.unauthenticated_connections(), 4);
    // Another address (127.0.0.2) logs in while the crowd still holds its share.
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.transport.connect_server_local_ip = "127.0.0.2".into();
        c.proxies.push(proxy("other", "tcp", echo, 0));
    });
    frpc.wait_running("other").await;
    assert_eq!(frps.stats.unauthenticated_connections(), 4);
    drop(crowd);
    frpc.stop().await;
    frps.stop().await;
}

/// A crowd spread over more addresses than the per-address share can stop (4 addresses x 2
/// slots fill all 8) still cannot lock other clients out: once every slot is held, the oldest
/// connection that has sent nothing makes room for a new one (counted as evicted), and a
/// client from yet another address logs in long before the crowd's deadline.
#[tokio::test]
async fn a_crowd_from_many_addresses_cannot_lock_out_a_login() {
    init_log();
    let limits = frps::Limits {
        // Longer than any wait here: only the eviction of silent connections can free slots.
        first_msg_timeout: std::time::Duration::from_secs(300),
        evict_after: std::time::Duration::from_secs(300),
        pending_connections: 8,
        pending_per_source: 2,
        ..Default::default()
    };
    for tcp_mux in [true, false] {
        let frps = Frps::start_with(limits.clone(), |c| c.transport.tcp_mux = tcp_mux).await;
        let mut crowd = Vec::new();
        for i in 0..8u8 {
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind(([127, 0, 0, 2 + i / 2], 0).into()).unwrap();
            crowd.push(sock.connect(frps.addr).await.unwrap()); // and then nothing
        }
        eventually("the crowd holds every slot", || {
            frps.stats.unauthenticated_connections() == 8
        })
        .await;
        let echo = echo_tcp().await;
        let frpc = Frpc::start(frps.addr, |c| {
            c.transport.tcp_mux = tcp_mux;
            c.proxies.push(proxy("other", "tcp", echo, 0));
        });
        frpc.wait_running("other").await;
        assert!(frps.stats.unauthenticated_connections() <= 8);
        let text = frps.stats.metrics_text();
        assert!(
            text.contains("frp_rs_server_rejected_connections_total{reason=\"evicted\"}"),
            "crowd connections were evicted: {text}"
        );
        drop(crowd);
        frpc.stop().await;
        frps.stop().await;
    }
}

/// Keeps `s` alive the way an attacker would (`keep_alive()` bytes every 100 ms, answers read
/// and dropped) and returns once frps has closed it; panics if frps never does.
async fn closed_despite_keepalive(
    mut s: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    mut keep_alive: impl FnMut() -> Vec<u8>,
    what: &str,
) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut buf = [0u8; 1024];
    loop {
        assert!(tokio::time::Instant::now() < deadline, "{what}: still open");
        if s.write_all(&keep_alive()).await.is_err() {
            return;
        }
        let read = tokio::time::timeout(std::time::Duration::from_millis(100), s.read(&mut buf));
        if let Ok(Ok(0) | Err(_)) = read.await {
            return;
        }
    }
}

/// Nothing that has not logged in outlives the first-message deadline, however it keeps
/// itself alive: yamux pings on a session with no stream, a Login trickled byte by byte on a
/// stream, a failed Login followed by pings, a trickle without tcpMux. A session that logged
/// in is not affected.
#[tokio::test]
async fn nothing_outlives_the_first_message_deadline_without_a_login() {
    init_log();
    let limits = frps::Limits {
        first_msg_timeout: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let frps = Frps::start_with(limits.clone(), |_| {}).await;
    let ping = |n: u32| yamux_header(2, 1, 0, n).to_vec();
    // Valid yamux, no stream at all: pings only.
    let s = TcpStream::connect(frps.addr).await.unwrap();
    let mut n = 0;
    closed_despite_keepalive(
        s,
        || {
            n += 1;
            ping(n)
        },
        "yamux with pings only",
    )
    .await;
    // A stream whose Login arrives one byte at a time (and pings between).
    let s = TcpStream::connect(frps.addr).await.unwrap();
    let login = common::msg::codec::encode_to_vec(&Login::default().into()).unwrap();
    let mut i = 0;
    closed_despite_keepalive(
        s,
        || {
            i += 1;
            let mut b = if i == 1 {
                yamux_header(1, 1, 1, 0).to_vec()
            } else {
                ping(i as u32)
            };
            if i <= login.len() {
                b.extend_from_slice(&yamux_header(0, 0, 1, 1));
                b.push(login[i - 1]);
            }
            b
        },
        "a trickled Login",
    )
    .await;
    // A refused Login, then pings.
    let s = TcpStream::connect(frps.addr).await.unwrap();
    let mut i = 0;
    closed_despite_keepalive(
        s,
        || {
            i += 1;
            if i == 1 {
                let mut b = yamux_header(0, 1, 1, login.len() as u32).to_vec();
                b.extend_from_slice(&login); // no privilege key: refused
                b
            } else {
                ping(i)
            }
        },
        "pings after a refused Login",
    )
    .await;
    // A logged-in client outlives the deadline.
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| c.proxies.push(proxy("kept", "tcp", echo, 0)));
    let entry = (
        [127, 0, 0, 1],
        remote_port(&frpc.wait_running("kept").await),
    )
        .into();
    // Past the deadline (counted from its session's accept, which came before this), the
    // session is still there: the wait is derived from the limit, so it cannot fall short.
    tokio::time::sleep(limits.first_msg_timeout + limits.first_msg_timeout / 2).await;
    assert_eq!(echo_through(entry, b"still").await, b"still");
    assert_eq!(frps.stats.client_count(), 1);
    frpc.stop().await;
    frps.stop().await;
    // Without tcpMux: a Login trickled byte by byte.
    let frps = Frps::start_with(limits, |c| c.transport.tcp_mux = false).await;
    let s = TcpStream::connect(frps.addr).await.unwrap();
    let mut i = 0;
    closed_despite_keepalive(
        s,
        || {
            i += 1;
            login.get(i - 1).map(|b| vec![*b]).unwrap_or_default()
        },
        "a trickled Login without tcpMux",
    )
    .await;
    frps.stop().await;
}

/// Log lines of one test, captured (a thread-local subscriber: `#[tokio::test]` runs frps's
/// tasks on the test's thread).
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The value of `frp_rs_server_rejected_connections_total{reason}`.
fn rejected(frps: &Frps, reason: &str) -> u64 {
    let want = format!("frp_rs_server_rejected_connections_total{{reason=\"{reason}\"}} ");
    frps.stats
        .metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(&want).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0)
}

/// Port probes, garbage and idle connections are counted by reason and summed up in one INFO
/// line per period, never logged one INFO line each (a cheap way to flood a disk).
#[tokio::test]
async fn rejected_connections_are_summarised_not_logged_one_by_one() {
    let cap = Capture::default();
    let writer = cap.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _log = tracing::subscriber::set_default(sub);
    let limits = frps::Limits {
        first_msg_timeout: std::time::Duration::from_millis(500),
        reject_summary_interval: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    for tcp_mux in [true, false] {
        let frps = Frps::start_with(limits.clone(), |c| c.transport.tcp_mux = tcp_mux).await;
        let from = cap.text().len();
        let mut idle = Vec::new();
        for i in 0..20u64 {
            let mut s = TcpStream::connect(frps.addr).await.unwrap();
            let junk: Vec<u8> = pattern(64, i).iter().map(|b| b | 0x80).collect();
            s.write_all(&junk).await.unwrap(); // garbage
            idle.push(s);
        }
        for _ in 0..5 {
            drop(TcpStream::connect(frps.addr).await.unwrap()); // port probe
        }
        for _ in 0..3 {
            idle.push(TcpStream::connect(frps.addr).await.unwrap()); // says nothing
        }
        eventually("every rejection is counted", || {
            (
                rejected(&frps, "garbage"),
                rejected(&frps, "closed"),
                rejected(&frps, "timeout"),
            ) == (20, 5, 3)
        })
        .await;
        let summarised = || {
            cap.text()[from..]
                .lines()
                .filter_map(|l| l.split("rejected ").nth(1))
                .filter_map(|l| l.split(' ').next()?.parse::<u64>().ok())
                .sum::<u64>()
        };
        eventually("the summary lines add up", || summarised() == 28).await;
        let text = cap.text()[from..].to_owned();
        let per_connection = text
            .lines()
            .filter(|l| l.contains("closing connection"))
            .count();
        assert_eq!(
            per_connection, 0,
            "tcpMux {tcp_mux}: one INFO line per rejection:\n{text}"
        );
        assert!(text.contains(" garbage"), "{text}");
        frps.stop().await;
    }
}
