//! Test harness: in-process frps/frpc with fluent config tweaks, echo backends, the real
//! binaries, and bounded waits. Every listener binds 127.0.0.1 port 0; every wait has a limit.

pub mod http_backend;
pub mod oidc;
pub mod pki;
pub mod procs;

use common::config::{self, ClientConfig, ProxyConfig, ServerConfig};
use frpc::status::{Phase, ProxyStatus, StatusBoard};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The token every fixture uses unless a test changes it.
pub const TOKEN: &str = "test-token";
/// Upper bound for any single wait in a test.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// frps config for tests: 127.0.0.1, port 0, token [`TOKEN`].
pub fn server_config() -> ServerConfig {
    let mut c = config::default_server();
    c.bind_addr = "127.0.0.1".into();
    c.proxy_bind_addr = "127.0.0.1".into();
    c.bind_port = 0;
    c.auth.token = TOKEN.into();
    c
}

/// frpc config for tests, pointed at `server`.
pub fn client_config(server: SocketAddr) -> ClientConfig {
    let mut c = config::default_client();
    c.server_addr = server.ip().to_string();
    c.server_port = server.port();
    c.auth.token = TOKEN.into();
    c
}

/// A proxy of `kind` to `local`, on `remote_port` (0 = frps picks).
pub fn proxy(name: &str, kind: &str, local: SocketAddr, remote_port: u16) -> ProxyConfig {
    ProxyConfig {
        name: name.into(),
        kind: kind.into(),
        local_ip: local.ip().to_string(),
        local_port: local.port(),
        remote_port,
        ..Default::default()
    }
}

/// An in-process frps.
#[derive(Debug)]
pub struct Frps {
    pub addr: SocketAddr,
    /// The dashboard, when `webServer.port` was set.
    pub dashboard: Option<SocketAddr>,
    /// The vhost HTTP server, when `vhostHTTPPort` was set.
    pub vhost_http: Option<SocketAddr>,
    /// The HTTPS (SNI) vhost, when `vhostHTTPSPort` was set.
    pub vhost_https: Option<SocketAddr>,
    /// The tcpmux CONNECT listener, when `tcpmuxHTTPConnectPort` was set.
    pub tcpmux: Option<SocketAddr>,
    /// The QUIC (UDP) listener, when `quicBindPort` was set.
    pub quic: Option<SocketAddr>,
    /// The KCP (UDP) listener, when `kcpBindPort` was set.
    pub kcp: Option<SocketAddr>,
    pub stats: frps::ServerStats,
    token: CancellationToken,
    task: JoinHandle<()>,
}

impl Frps {
    /// Starts frps with [`server_config`] changed by `f`.
    pub async fn start(f: impl FnOnce(&mut ServerConfig)) -> Frps {
        Frps::start_with(frps::Limits::default(), f).await
    }

    /// [`Frps::start`] with other limits on connections that have not logged in.
    pub async fn start_with(limits: frps::Limits, f: impl FnOnce(&mut ServerConfig)) -> Frps {
        let mut cfg = server_config();
        f(&mut cfg);
        let server = frps::Server::bind_with(cfg, limits)
            .await
            .expect("frps bind");
        let addr = server.local_addr().expect("frps addr");
        let dashboard = server.dashboard_addr();
        let vhost_http = server.vhost_http_addr();
        let vhost_https = server.vhost_https_addr();
        let tcpmux = server.tcpmux_addr();
        let quic = server.quic_addr();
        let kcp = server.kcp_addr();
        let stats = server.stats();
        let token = CancellationToken::new();
        let task = tokio::spawn(server.run(token.clone()));
        Frps {
            addr,
            dashboard,
            vhost_http,
            vhost_https,
            tcpmux,
            quic,
            kcp,
            stats,
            token,
            task,
        }
    }

    /// Stops frps and waits until it has closed everything.
    pub async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("frps stops in time")
            .expect("frps task");
    }
}

/// An in-process frpc.
#[derive(Debug)]
pub struct Frpc {
    pub status: StatusBoard,
    /// The visitors' states.
    pub visitors: StatusBoard,
    pub metrics: std::sync::Arc<frpc::metrics::ClientMetrics>,
    token: CancellationToken,
    task: JoinHandle<Result<(), frpc::ClientError>>,
}

impl Frpc {
    /// Starts frpc against `server` with [`client_config`] changed by `f`.
    pub fn start(server: SocketAddr, f: impl FnOnce(&mut ClientConfig)) -> Frpc {
        let mut cfg = client_config(server);
        f(&mut cfg);
        Frpc::run(frpc::Client::new(cfg))
    }

    /// Starts frpc from a config file, as the binary does (so `/api/reload` re-reads it).
    pub fn start_from_file(path: &std::path::Path) -> Frpc {
        Frpc::run(client_from_file(path))
    }

    /// Runs a client built by the test.
    pub fn run(client: frpc::Client) -> Frpc {
        let status = client.status();
        let visitors = client.visitor_status();
        let metrics = client.metrics();
        let token = CancellationToken::new();
        let task = tokio::spawn(client.run(token.clone()));
        Frpc {
            status,
            visitors,
            metrics,
            token,
            task,
        }
    }

    /// Waits until proxy `name` is running; returns its status.
    pub async fn wait_running(&self, name: &str) -> ProxyStatus {
        self.wait_phase(name, Phase::Running).await
    }

    /// Waits until proxy `name` reaches `phase`.
    pub async fn wait_phase(&self, name: &str, phase: Phase) -> ProxyStatus {
        match self
            .status
            .wait_for(name, PATIENCE, |s| s.phase == phase)
            .await
        {
            Some(s) => s,
            None => panic!(
                "proxy {name} did not reach {phase:?}; now {:?}",
                self.status.get(name)
            ),
        }
    }

    /// Waits until visitor `name` is running (listening); returns its status.
    pub async fn wait_visitor(&self, name: &str) -> ProxyStatus {
        match self
            .visitors
            .wait_for(name, PATIENCE, |s| s.phase == Phase::Running)
            .await
        {
            Some(s) => s,
            None => panic!(
                "visitor {name} did not start; now {:?}",
                self.visitors.get(name)
            ),
        }
    }

    /// Waits until proxy `name` is no longer running (its session ended).
    pub async fn wait_not_running(&self, name: &str) {
        let ok = self
            .status
            .wait_for(name, PATIENCE, |s| s.phase != Phase::Running)
            .await;
        assert!(ok.is_some(), "proxy {name} still running");
    }

    /// Waits for frpc to exit by itself and returns its result.
    pub async fn exited(self) -> Result<(), frpc::ClientError> {
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("frpc exits in time")
            .expect("frpc task")
    }

    pub async fn stop(self) {
        self.token.cancel();
        let _ = tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("frpc stops in time");
    }
}

/// A client loaded from a config file as the binary loads it, not yet started.
pub fn client_from_file(path: &std::path::Path) -> frpc::Client {
    let opts = config::LoadOptions::default();
    let cfg = config::load_client(path, &opts)
        .expect("load frpc config")
        .config;
    frpc::Client::new(cfg).with_config_path(path.to_owned(), opts)
}

/// A fresh directory under the system temp dir, unique to this call.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "frp-rs-{tag}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// The port in a NewProxyResp `remote_addr` such as `:6000`.
pub fn remote_port(s: &ProxyStatus) -> u16 {
    s.remote_addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {:?}", s.remote_addr))
}

/// A port free for TCP and UDP on 127.0.0.1, for a server the test starts later.
///
/// Taken below the kernel's ephemeral range (32768 and up by default) rather than by binding
/// port 0: a port handed out by bind(0) and released can be handed out again at once, to
/// another test's listener or as the local port of any outgoing connection, before our server
/// binds it. Ports below the range are only ever handed out here, each one once per process.
pub async fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20000;
    const SPAN: u16 = 12000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Start at a different place in each test process (they run one after another, but a
    // previous one's sockets may still be in TIME_WAIT).
    let _ = NEXT.compare_exchange(
        0,
        1 + (std::process::id() % u32::from(SPAN)) as u16,
        Ordering::AcqRel,
        Ordering::Acquire,
    );
    for _ in 0..SPAN {
        let port = FIRST + NEXT.fetch_add(1, Ordering::AcqRel) % SPAN;
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN)
}

/// A TCP echo server; it runs until the test's runtime ends.
pub async fn echo_tcp() -> SocketAddr {
    echo_tcp_at([127, 0, 0, 1].into()).await
}

/// [`echo_tcp`] on `ip`.
pub async fn echo_tcp_at(ip: std::net::IpAddr) -> SocketAddr {
    let l = TcpListener::bind((ip, 0)).await.expect("bind echo");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A TCP server that reads until EOF, then answers with `reply` (needs half-close to work).
pub async fn reply_after_eof(reply: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                if s.read_to_end(&mut got).await.is_ok() {
                    let _ = s.write_all(&got).await;
                    let _ = s.write_all(reply).await;
                    let _ = s.shutdown().await;
                }
            });
        }
    });
    addr
}

/// A UDP echo server.
pub async fn echo_udp() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
    let addr = s.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let _ = s.send_to(&buf[..n], from).await;
        }
    });
    addr
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `data` through `addr` and reads back as many bytes, writing and reading at once.
pub async fn echo_through(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    let s = tokio::time::timeout(PATIENCE, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let (mut r, mut w) = s.into_split();
    let owned = data.to_vec();
    let writer = tokio::spawn(async move {
        w.write_all(&owned).await.expect("write");
        w
    });
    let mut got = vec![0u8; data.len()];
    tokio::time::timeout(PATIENCE, r.read_exact(&mut got))
        .await
        .expect("echo in time")
        .expect("read echo");
    let _w = writer.await.expect("writer");
    got
}

/// Connects to a tunnel entry until one echo succeeds (the proxy may still be starting).
pub async fn wait_tunnel(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let attempt = async {
            let mut s = TcpStream::connect(addr).await.ok()?;
            s.write_all(b"ping").await.ok()?;
            let mut b = [0u8; 4];
            s.read_exact(&mut b).await.ok()?;
            (b == *b"ping").then_some(())
        };
        if tokio::time::timeout(Duration::from_secs(2), attempt)
            .await
            .ok()
            .flatten()
            .is_some()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "tunnel at {addr} never worked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `cond` holds, checking every 20 ms; panics with `what` after [`PATIENCE`].
pub async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Load-balancing group tests: each named proxy of `frpc` fails to start with its error.
pub async fn expect_start_errors(frpc: &Frpc, cases: &[(&str, &str)]) {
    for (name, error) in cases {
        let got = frpc.wait_phase(name, Phase::StartError).await.error;
        assert_eq!(got, *error, "proxy {name}");
    }
}

/// Load-balancing group tests, the end: once `first` (the frpc of the first member) stops,
/// every user reaches the other member (`user()` gives `rest`); once `second` stops too, the
/// group's route is gone (`gone` holds for what `user()` gives).
pub async fn last_members_leave<T, F, Fut>(
    first: Frpc,
    second: Frpc,
    mut user: F,
    rest: T,
    gone: impl Fn(&T) -> bool,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
    T: PartialEq + std::fmt::Debug,
{
    first.stop().await;
    wait_until("the departed member still gets users", || {
        let u = user();
        async { u.await == rest }
    })
    .await;
    for _ in 0..4 {
        assert_eq!(user().await, rest);
    }
    second.stop().await;
    wait_until("the group's route outlives its last member", || {
        let u = user();
        async { gone(&u.await) }
    })
    .await;
}

/// Waits until something accepts TCP connections on `addr`.
pub async fn wait_listening(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while TcpStream::connect(addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing listens on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads an HTTP request head (up to the blank line) from `s`; `None` if it closes first.
pub async fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&b[..n]),
        }
    }
    Some(head)
}

/// A raw yamux frame header: (type, flags, stream id, length).
pub fn yamux_header(ty: u8, flags: u16, id: u32, len: u32) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[1] = ty;
    h[2..4].copy_from_slice(&flags.to_be_bytes());
    h[4..8].copy_from_slice(&id.to_be_bytes());
    h[8..12].copy_from_slice(&len.to_be_bytes());
    h
}

/// Waits until `f` holds (checked every 20 ms, at most [`PATIENCE`]).
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Runs a workspace binary to its end (bounded by [`PATIENCE`]) and returns what it printed.
pub async fn run_bin(name: &str, args: &[&str]) -> std::process::Output {
    let out = tokio::process::Command::new(bin(name))
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(PATIENCE, out)
        .await
        .expect("exits in time")
        .expect("run")
}

/// Path of a workspace binary built by `cargo build` (frps, frpc).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` before the tests (README)",
        p.display()
    );
    p
}

/// A TCP backend that answers every connection with its id and closes; it can be stopped and
/// started again on the same port.
#[derive(Debug)]
pub struct IdServer {
    pub addr: SocketAddr,
    id: &'static str,
    task: Option<JoinHandle<()>>,
}

impl IdServer {
    pub async fn start(id: &'static str) -> IdServer {
        let mut s = IdServer {
            addr: ([127, 0, 0, 1], 0).into(),
            id,
            task: None,
        };
        s.listen().await;
        s
    }

    async fn listen(&mut self) {
        let l = TcpListener::bind(self.addr).await.expect("bind id server");
        self.addr = l.local_addr().expect("addr");
        let id = self.id;
        self.task = Some(tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let _ = s.write_all(id.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        }));
    }

    /// Stops listening (the port is free again when this returns).
    pub async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.listen().await;
    }
}

/// Connects to `addr` and reads the whole answer (an [`IdServer`] id through a tunnel).
pub async fn read_id(addr: SocketAddr) -> Option<String> {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        (!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into_owned())
    };
    tokio::time::timeout(PATIENCE, attempt).await.ok().flatten()
}

/// An encrypted control stream opened by hand, as a Go frpc would.
pub type RawControl = common::io::CryptStream<TcpStream>;

/// Logs in to an frps running with `tcpMux = false` by speaking raw frames, as a Go frpc would;
/// returns the encrypted control stream and the run_id.
pub async fn raw_login(frps: SocketAddr, pool_count: i64) -> (RawControl, String) {
    raw_login_as(
        frps,
        common::msg::Login {
            pool_count,
            ..Default::default()
        },
    )
    .await
}

/// [`raw_login`] with the Login's other fields (user, client_id, run_id...) taken from `m`.
pub async fn raw_login_as(frps: SocketAddr, mut m: common::msg::Login) -> (RawControl, String) {
    use common::msg::{read_msg, write_msg, Message};
    let mut s = TcpStream::connect(frps).await.expect("connect frps");
    let ts = common::auth::unix_now();
    m.version = "0.70.1".into();
    m.privilege_key = common::auth::auth_key(TOKEN, ts);
    m.timestamp = ts;
    write_msg(&mut s, &m.into()).await.expect("send Login");
    let resp = tokio::time::timeout(PATIENCE, read_msg(&mut s))
        .await
        .expect("LoginResp in time")
        .expect("LoginResp");
    let Message::LoginResp(r) = resp else {
        panic!("LoginResp expected, got {resp:?}")
    };
    assert_eq!(r.version, "0.70.1");
    assert!(r.error.is_empty(), "{r:?}");
    (
        common::io::CryptStream::new(s, common::crypto::derive_key(TOKEN.as_bytes())),
        r.run_id,
    )
}

/// Sends `msg` from `sock` to `target` until an answer arrives and returns it (the first
/// datagrams can arrive before frps has its work connection, and UDP may drop them); each try
/// waits at most 1 s, 20 tries in all.
pub async fn udp_roundtrip(sock: &UdpSocket, target: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    for _ in 0..20 {
        sock.send_to(msg, target).await.expect("udp send");
        if let Ok(Ok((n, from))) =
            tokio::time::timeout(Duration::from_secs(1), sock.recv_from(&mut buf)).await
        {
            assert_eq!(from, target, "answer from the proxy's address");
            return buf[..n].to_vec();
        }
    }
    panic!("no udp answer from {target}");
}

/// A v1 UDPPacket frame carrying `content` for user `r`, as Go writes it whatever its size
/// (golib's `WriteMsg` checks no length; only its reader refuses bodies over 10240 bytes).
pub fn raw_udp_frame(content: &[u8], r: SocketAddr) -> Vec<u8> {
    let pkt = common::msg::UdpPacket {
        content: content.to_vec(),
        local_addr: None,
        remote_addr: Some(r.into()),
    };
    let body = serde_json::to_vec(&pkt).expect("UDPPacket JSON");
    let mut frame = vec![b'u'];
    frame.extend_from_slice(&(body.len() as i64).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// A TLS listener on 127.0.0.1 (self-signed certificate) running `serve` on each connection
/// after its handshake.
pub async fn tls_server<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(tokio_rustls::server::TlsStream<TcpStream>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(
        common::transport::tls::server_config(&Default::default()).expect("tls server"),
    );
    let l = TcpListener::bind("127.0.0.1:0").await.expect("tls server");
    let addr = l.local_addr().expect("tls server");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (acceptor, serve) = (acceptor.clone(), serve.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(s).await {
                    serve(tls).await;
                }
            });
        }
    });
    addr
}

/// A backend that reads to EOF and answers with the byte count.
pub async fn counting_sink() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("sink");
    let addr = l.local_addr().expect("sink");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut n = 0usize;
                let mut b = vec![0u8; 16384];
                loop {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                }
                let _ = s.write_all(n.to_string().as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// Sends 192 KiB through 127.0.0.1:`port` to a [`counting_sink`] and checks that all of it
/// arrived no faster than a 64 KiB/s limit (with its 64 KiB burst) allows. Only the lower bound
/// is checked, so a slow machine cannot make this fail.
pub async fn assert_limited_to_64k(port: u16, what: &str) {
    let start = tokio::time::Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(&pattern(192 * 1024, 4)).await.expect("write");
    s.shutdown().await.expect("shutdown");
    let mut reply = String::new();
    tokio::time::timeout(PATIENCE, s.read_to_string(&mut reply))
        .await
        .expect("the sink answers in time")
        .expect("read");
    assert_eq!(
        reply,
        (192 * 1024).to_string(),
        "{what}: every byte arrives"
    );
    let secs = start.elapsed().as_secs_f64();
    assert!(
        secs >= 1.8,
        "{what}: 192 KiB took {secs:.2}s, so the 64KB/s limit was not applied"
    );
}

/// A TLS backend: after the handshake it writes `id\n`, then echoes.
pub async fn tls_backend(id: &'static str) -> SocketAddr {
    tls_server(move |tls| async move {
        let (r, mut w) = tokio::io::split(tls);
        if w.write_all(format!("{id}\n").as_bytes()).await.is_err() {
            return;
        }
        let mut r = r;
        let _ = tokio::io::copy(&mut r, &mut w).await;
    })
    .await
}

/// A STUN server on 127.0.0.1 that answers Binding requests (RFC 5389, XOR-MAPPED-ADDRESS)
/// with the sender's address and `other` as its other address (RFC 5780 OTHER-ADDRESS).
pub async fn stun_server(other: Option<SocketAddr>) -> SocketAddr {
    stun_server_at([127, 0, 0, 1].into(), other).await
}

/// [`stun_server`] on `ip`.
pub async fn stun_server_at(ip: std::net::IpAddr, other: Option<SocketAddr>) -> SocketAddr {
    let s = UdpSocket::bind((ip, 0)).await.expect("bind stun");
    let addr = s.local_addr().expect("stun addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            if n >= 20 && buf[..2] == [0, 1] {
                let mut id = [0u8; 12];
                id.copy_from_slice(&buf[8..20]);
                let _ = s
                    .send_to(&frpc::nathole::binding_success(id, from, other), from)
                    .await;
            }
        }
    });
    addr
}

/// A STUN server with a second one as its other address, as frp's discovery needs (two
/// mapped addresses); returns the first.
pub async fn stun_pair() -> SocketAddr {
    stun_pair_at([127, 0, 0, 1].into()).await
}

/// [`stun_pair`] on `ip`.
pub async fn stun_pair_at(ip: std::net::IpAddr) -> SocketAddr {
    let second = stun_server_at(ip, None).await;
    stun_server_at(ip, Some(second)).await
}

/// This host's IPv4 address on its default route, if it has one (not loopback).
pub fn host_ipv4() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // No datagram is sent: connect only picks the route and with it the source address.
    s.connect("8.8.8.8:53").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// One JSON call to an admin API or the dashboard (no credentials); the status code and the
/// body as JSON (or as a JSON string when it is not JSON).
pub async fn api(
    addr: SocketAddr,
    method: hyper::Method,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let headers = [("content-type", "application/json".to_string())];
    let (addr, auth) = (addr.to_string(), common::http::BasicAuth::default());
    let call =
        common::http::request_with(&addr, &auth, method, path, &headers, body.to_owned().into());
    let a = tokio::time::timeout(PATIENCE, call)
        .await
        .expect("answer in time")
        .expect("answer");
    let v = serde_json::from_str(&a.body).unwrap_or(serde_json::Value::String(a.body.clone()));
    (a.code.as_u16(), v)
}
