//! `frp-load`: simulates many frpc clients against any frp-compatible frps (issue 21), built on
//! `common`'s codec, auth, control-channel encryption, TLS and yamux (no protocol code of its own).
//!
//! Each simulated client logs in (token; TLS and tcpMux as asked), registers its tcp proxies,
//! keeps its work-connection pool (answers `ReqWorkConn`), heartbeats, and relays user
//! connections by echoing their bytes. The hostile modes play the bad crowd: connections that
//! send nothing, logins with a wrong token, clients that register proxies and vanish (RST).
//!
//! It prints a human summary on stderr and one JSON object on stdout (for bench/scale.sh).

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use common::io::{secure_control, BoxStream, Side};
use common::msg::{
    read_msg, write_msg, CloseProxy, Login, Message, NewProxy, NewProxyResp, NewWorkConn, Ping,
};
use common::transport::{mux, tls, FRP_TLS_HEAD_BYTE};
use serde_json::json;
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Well-behaved frpc clients.
    Normal,
    /// TCP connections that open and send nothing, held for --duration.
    Silent,
    /// Logins with a wrong token, --clients of them (or until --duration has passed); give
    /// --mux when frps has tcpMux on (its default), or frps sees garbage, not logins.
    WrongToken,
    /// Clients that log in, register their proxies, then vanish (RST, no goodbye); the tool
    /// then waits until frps has closed every proxy port they held.
    Vanish,
}

#[derive(Debug, Parser)]
#[command(name = "frp-load", about = "Simulates N frpc clients against an frps")]
struct Opts {
    /// frps address (bindPort).
    #[arg(long, default_value = "127.0.0.1:7000")]
    server: String,
    /// auth.token.
    #[arg(long, default_value = "")]
    token: String,
    /// transport.tls.enable (with frp's 0x17 first byte).
    #[arg(long)]
    tls: bool,
    /// transport.tcpMux: one yamux session per client.
    #[arg(long)]
    mux: bool,
    /// Number of clients (attempts in wrong-token mode, connections in silent mode).
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// tcp proxies per client.
    #[arg(long, default_value_t = 1)]
    proxies: usize,
    /// Arrival rate, clients per second (0: as fast as --concurrency allows).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Logins in flight at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Seconds to hold the clients after they all arrived.
    #[arg(long, default_value_t = 0.0)]
    duration: f64,
    /// Heartbeat interval in seconds (0: none); frp's default: 30, none with --mux.
    #[arg(long)]
    heartbeat: Option<u64>,
    /// transport.poolCount.
    #[arg(long, default_value_t = 1)]
    pool_count: i64,
    /// First remotePort (proxy j of client i gets base + i*proxies + j); 0: frps picks.
    #[arg(long, default_value_t = 0)]
    remote_port_base: u16,
    /// Local addresses to dial from, round robin (e.g. 127.0.0.1,127.0.0.2), for more
    /// ephemeral ports.
    #[arg(long, value_delimiter = ',')]
    source_ips: Vec<IpAddr>,
    #[arg(long, value_enum, default_value_t = Mode::Normal)]
    mode: Mode,
    /// Proxy name prefix (default load<pid>), so that several tools can share one frps.
    #[arg(long)]
    name_prefix: Option<String>,
    /// Small requests per second through client 0's first proxy while holding (64-byte echo).
    #[arg(long, default_value_t = 0.0)]
    probe_rate: f64,
    /// Connections the probe requests are spread over.
    #[arg(long, default_value_t = 8)]
    probe_conns: usize,
    /// Bulk streams through client 0's last proxy while holding (64 KiB writes, echoed back).
    #[arg(long, default_value_t = 0)]
    bulk_streams: usize,
    /// Reload: close and re-register this fraction of client 0's proxies, with live user
    /// connections held through the others; reports the time to apply and the survivors.
    #[arg(long, default_value_t = 0.0)]
    reload_fraction: f64,
    /// Live user connections held through unchanged proxies during the reload.
    #[arg(long, default_value_t = 100)]
    live_conns: usize,
    /// A file written once every client has arrived (for scripts that measure the hold).
    #[arg(long)]
    ready_file: Option<std::path::PathBuf>,
    /// Limit for each step (dial, login, proxy registration), seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Runtime worker threads; 1 runs everything on one thread (cheapest when the tool is
    /// pinned to one core, as bench/scale.sh pins it); 0: one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Everything the clients share.
struct Ctx {
    o: Opts,
    addr: SocketAddr,
    host: String,
    tls: Option<tokio_rustls::TlsConnector>,
    prefix: String,
    stats: Stats,
    step: Duration,
}

#[derive(Default)]
struct Stats {
    /// Login latency (dial to LoginResp), microseconds, successful logins only.
    login_us: Mutex<Vec<u64>>,
    logins_ok: AtomicU64,
    proxies_ok: AtomicU64,
    work_conns: AtomicU64,
    relayed: AtomicU64,
    pings: AtomicU64,
    pongs: AtomicU64,
    /// Sessions frps closed while we held them.
    dropped: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    fn fail(&self, why: impl Into<String>) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        *f.entry(why.into()).or_default() += 1;
    }
}

/// A short failure category for an IO error.
fn io_reason(step: &str, e: &io::Error) -> String {
    format!("{step}: {:?}", e.kind())
}

/// A logged-in client's handles.
struct Session {
    out: mpsc::Sender<Message>,
    resps: mpsc::UnboundedReceiver<NewProxyResp>,
    /// Remote port of each proxy (None: not registered).
    ports: Vec<Option<u16>>,
    token: CancellationToken,
}

/// Opens logical connections to frps for one client: yamux streams, or fresh TCP(+TLS).
#[derive(Clone)]
struct Dialer {
    ctx: Arc<Ctx>,
    idx: usize,
    mux: Option<mux::Opener>,
}

impl Dialer {
    async fn tcp(ctx: &Ctx, idx: usize) -> io::Result<TcpStream> {
        let sock = if ctx.addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if !ctx.o.source_ips.is_empty() {
            sock.bind(SocketAddr::new(
                ctx.o.source_ips[idx % ctx.o.source_ips.len()],
                0,
            ))?;
        }
        let s = timeout(ctx.step, sock.connect(ctx.addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "dial timed out"))??;
        let _ = s.set_nodelay(true);
        if ctx.o.mode == Mode::Vanish {
            // Dropping the socket then resets it: no FIN, no goodbye.
            s.set_zero_linger()?;
        }
        Ok(s)
    }

    async fn real(ctx: &Ctx, idx: usize) -> io::Result<BoxStream> {
        let mut tcp = Self::tcp(ctx, idx).await?;
        let Some(tls) = &ctx.tls else {
            return Ok(Box::new(tcp));
        };
        tcp.write_all(&[FRP_TLS_HEAD_BYTE]).await?;
        let s = timeout(ctx.step, tls.connect(tls::server_name(&ctx.host), tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        Ok(Box::new(s))
    }

    /// A client's connector: with --mux, one yamux session whose driver lives until `token`.
    async fn open(ctx: Arc<Ctx>, idx: usize, token: &CancellationToken) -> io::Result<Dialer> {
        let mux = if ctx.o.mux {
            let io = Self::real(&ctx, idx).await?;
            let (opener, mut driver) = mux::client(io, mux::config(30));
            let t = token.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = t.cancelled() => {}
                    _ = &mut driver => {}
                }
                t.cancel();
            });
            Some(opener)
        } else {
            None
        };
        Ok(Dialer { ctx, idx, mux })
    }

    async fn connect(&self) -> io::Result<BoxStream> {
        match &self.mux {
            Some(m) => Ok(Box::new(m.open()?)),
            None => Self::real(&self.ctx, self.idx).await,
        }
    }
}

fn login_msg(token: &str, pool_count: i64) -> Message {
    let ts = common::auth::unix_now();
    Login {
        version: common::FRP_VERSION.into(),
        hostname: "frp-load".into(),
        os: std::env::consts::OS.into(),
        arch: "amd64".into(),
        privilege_key: common::auth::auth_key(token, ts),
        timestamp: ts,
        pool_count,
        ..Default::default()
    }
    .into()
}

/// Dial, Login, LoginResp. Returns the dialer, the control stream and the run id, or a reason.
async fn login(
    ctx: &Arc<Ctx>,
    idx: usize,
    token: &str,
    session: &CancellationToken,
) -> Result<(Dialer, BoxStream, String), String> {
    let dialer = Dialer::open(ctx.clone(), idx, session)
        .await
        .map_err(|e| io_reason("dial", &e))?;
    let mut s = dialer.connect().await.map_err(|e| io_reason("dial", &e))?;
    write_msg(&mut s, &login_msg(token, ctx.o.pool_count))
        .await
        .map_err(|e| io_reason("send Login", &e))?;
    match timeout(ctx.step, read_msg(&mut s)).await {
        Err(_) => Err("login: no LoginResp in time".into()),
        Ok(Err(e)) if e.is_closed() => Err("login: closed before LoginResp".into()),
        Ok(Err(e)) => Err(format!("login: {e}")),
        Ok(Ok(Message::LoginResp(r))) if !r.error.is_empty() => {
            Err(format!("refused: {}", r.error))
        }
        Ok(Ok(Message::LoginResp(r))) => Ok((dialer, s, r.run_id)),
        Ok(Ok(m)) => Err(format!("login: got {} instead of LoginResp", m.name())),
    }
}

fn proxy_msg(ctx: &Ctx, idx: usize, j: usize, port: u16) -> Message {
    NewProxy {
        proxy_name: format!("{}-{idx}-{j}", ctx.prefix),
        proxy_type: "tcp".into(),
        remote_port: i64::from(port),
        ..Default::default()
    }
    .into()
}

fn wanted_port(ctx: &Ctx, idx: usize, j: usize) -> u16 {
    if ctx.o.remote_port_base == 0 {
        return 0;
    }
    let p = usize::from(ctx.o.remote_port_base) + idx * ctx.o.proxies + j;
    u16::try_from(p).unwrap_or(0)
}

/// The port of `remote_addr` (":6000", "0.0.0.0:6000").
fn port_of(remote_addr: &str) -> Option<u16> {
    remote_addr.rsplit(':').next()?.parse().ok()
}

/// One well-behaved client: login, register proxies, then serve the session in the background.
async fn client(
    ctx: Arc<Ctx>,
    idx: usize,
    permit: tokio::sync::OwnedSemaphorePermit,
    all: CancellationToken,
) -> Option<Session> {
    let token = all.child_token();
    let t0 = Instant::now();
    let r = login(&ctx, idx, &ctx.o.token, &token).await;
    drop(permit);
    let (dialer, stream, run_id) = match r {
        Ok(v) => v,
        Err(why) => {
            token.cancel();
            ctx.stats.fail(why);
            return None;
        }
    };
    ctx.stats
        .login_us
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(t0.elapsed().as_micros() as u64);
    ctx.stats.logins_ok.fetch_add(1, Relaxed);

    let secured = match secure_control(stream, &ctx.o.token, None, Side::Client) {
        Ok(s) => s,
        Err(e) => {
            token.cancel();
            ctx.stats.fail(io_reason("control encryption", &e));
            return None;
        }
    };
    let (mut rd, mut wr) = tokio::io::split(secured);
    let (out, mut out_rx) = mpsc::channel::<Message>(ctx.o.proxies + 16);
    let (resp_tx, mut resps) = mpsc::unbounded_channel();
    let t = token.clone();
    tokio::spawn(async move {
        while let Some(m) = tokio::select! { _ = t.cancelled() => None, m = out_rx.recv() => m } {
            if write_msg(&mut wr, &m).await.is_err() {
                break;
            }
        }
        t.cancel();
    });
    let (t, c) = (token.clone(), ctx.clone());
    tokio::spawn(async move {
        loop {
            let m = tokio::select! { _ = t.cancelled() => break, m = read_msg(&mut rd) => m };
            match m {
                Ok(Message::ReqWorkConn(_)) => {
                    tokio::spawn(work_conn(dialer.clone(), run_id.clone(), t.clone()));
                }
                Ok(Message::NewProxyResp(r)) => {
                    let _ = resp_tx.send(r);
                }
                Ok(Message::Pong(_)) => {
                    c.stats.pongs.fetch_add(1, Relaxed);
                }
                Ok(_) => {}
                Err(_) => {
                    if !t.is_cancelled() {
                        c.stats.dropped.fetch_add(1, Relaxed);
                    }
                    break;
                }
            }
        }
        t.cancel();
    });
    let hb = ctx.o.heartbeat.unwrap_or(if ctx.o.mux { 0 } else { 30 });
    if hb > 0 {
        let (t, o, c) = (token.clone(), out.clone(), ctx.clone());
        tokio::spawn(async move {
            let every = Duration::from_secs(hb);
            let mut tick = tokio::time::interval_at(Instant::now() + every, every);
            loop {
                tokio::select! { _ = t.cancelled() => break, _ = tick.tick() => {} }
                if o.send(Ping::default().into()).await.is_err() {
                    break;
                }
                c.stats.pings.fetch_add(1, Relaxed);
            }
        });
    }

    for j in 0..ctx.o.proxies {
        if out
            .send(proxy_msg(&ctx, idx, j, wanted_port(&ctx, idx, j)))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut ports = vec![None; ctx.o.proxies];
    let deadline = Instant::now() + ctx.step.max(Duration::from_secs(1)) * 3;
    let mut answered = 0;
    while answered < ctx.o.proxies {
        let r = tokio::select! {
            _ = sleep_until(deadline) => None,
            r = resps.recv() => r,
        };
        let Some(r) = r else {
            ctx.stats.fail("proxy: no NewProxyResp in time");
            break;
        };
        answered += 1;
        let j = r
            .proxy_name
            .rsplit('-')
            .next()
            .and_then(|j| j.parse::<usize>().ok());
        match (r.error.is_empty(), j) {
            (true, Some(j)) if j < ports.len() => {
                ports[j] = port_of(&r.remote_addr);
                ctx.stats.proxies_ok.fetch_add(1, Relaxed);
            }
            (true, _) => ctx.stats.fail("proxy: answer for an unknown proxy"),
            (false, _) => ctx.stats.fail(format!("proxy: {}", r.error)),
        }
    }
    Some(Session {
        out,
        resps,
        ports,
        token,
    })
}

/// Answers one ReqWorkConn: NewWorkConn, StartWorkConn, then echoes the user's bytes.
async fn work_conn(dialer: Dialer, run_id: String, token: CancellationToken) {
    let stats = &dialer.ctx.stats;
    let mut s = match dialer.connect().await {
        Ok(s) => s,
        Err(e) => {
            if !token.is_cancelled() {
                stats.fail(io_reason("work conn dial", &e));
            }
            return;
        }
    };
    let m = NewWorkConn {
        run_id,
        ..Default::default()
    };
    if write_msg(&mut s, &m.into()).await.is_err() {
        return;
    }
    stats.work_conns.fetch_add(1, Relaxed);
    let start = tokio::select! { _ = token.cancelled() => return, m = read_msg(&mut s) => m };
    match start {
        Ok(Message::StartWorkConn(w)) if w.error.is_empty() => {}
        Ok(Message::StartWorkConn(w)) => return stats.fail(format!("work conn: {}", w.error)),
        Ok(m) => return stats.fail(format!("work conn: got {}", m.name())),
        Err(_) => return,
    }
    stats.relayed.fetch_add(1, Relaxed);
    let (mut r, mut w) = tokio::io::split(s);
    tokio::select! {
        _ = token.cancelled() => {}
        _ = async { let _ = tokio::io::copy(&mut r, &mut w).await; let _ = w.shutdown().await; } => {}
    }
}

/// Percentiles (ms) of microsecond samples.
fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 * p) as usize).min(v.len() - 1);
    v[i] as f64 / 1000.0
}

/// One 64-byte echo on `s`.
async fn echo_once(s: &mut TcpStream) -> io::Result<()> {
    let req = [0x5au8; 64];
    let mut back = [0u8; 64];
    s.write_all(&req).await?;
    s.read_exact(&mut back).await?;
    if back != req {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "echo differs"));
    }
    Ok(())
}

/// Open-loop small requests: `rate` per second over `conns` connections for `secs`; returns
/// latencies (µs; from the scheduled time when the previous request on that connection made
/// this one late, else from its send), round-trip times (µs from the write of the request to
/// the last byte of the echo) and the number of failed requests.
async fn probe(
    ctx: &Ctx,
    port: u16,
    rate: f64,
    conns: usize,
    secs: f64,
) -> (Vec<u64>, Vec<u64>, u64) {
    let addr = SocketAddr::new(ctx.addr.ip(), port);
    let step = ctx.step;
    let mut tasks = Vec::new();
    let start = Instant::now() + Duration::from_millis(200);
    for i in 0..conns.max(1) {
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut rtt, mut bad) = (Vec::new(), Vec::new(), 0u64);
            let Ok(Ok(mut s)) = timeout(step, TcpStream::connect(addr)).await else {
                return (lat, rtt, 1);
            };
            let _ = s.set_nodelay(true);
            let per = conns as f64 / rate;
            let mut k = 0u64;
            loop {
                let off = (i as f64 / rate) + k as f64 * per;
                if off > secs {
                    break;
                }
                let due = start + Duration::from_secs_f64(off);
                // Late already (the previous request on this connection overran): count from
                // the scheduled time, so a slow answer also counts the requests it delayed.
                // Otherwise from the send, not from `due`: tokio's timer fires up to ~1 ms after
                // it, which would add the probe's own lag to every figure.
                let overran = Instant::now() >= due;
                sleep_until(due).await;
                let sent = Instant::now();
                let from = if overran { due } else { sent };
                match timeout(step, echo_once(&mut s)).await {
                    Ok(Ok(())) => {
                        let done = Instant::now();
                        lat.push((done - from).as_micros() as u64);
                        rtt.push((done - sent).as_micros() as u64);
                    }
                    _ => {
                        bad += 1;
                        break;
                    }
                }
                k += 1;
            }
            (lat, rtt, bad)
        }));
    }
    let (mut lat, mut rtt, mut bad) = (Vec::new(), Vec::new(), 0);
    for t in tasks {
        if let Ok((l, r, b)) = t.await {
            lat.extend(l);
            rtt.extend(r);
            bad += b;
        }
    }
    (lat, rtt, bad)
}

/// Bulk streams through `port` until `token`; returns bytes echoed back.
async fn bulk(ctx: &Ctx, port: u16, streams: usize, token: CancellationToken) -> u64 {
    let addr = SocketAddr::new(ctx.addr.ip(), port);
    let moved = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let (t, moved) = (token.clone(), moved.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(s) = TcpStream::connect(addr).await else {
                return;
            };
            let (mut r, mut w) = s.into_split();
            let buf = vec![0xa5u8; 64 * 1024];
            let writer = async { while w.write_all(&buf).await.is_ok() {} };
            let reader = async {
                let mut b = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = r.read(&mut b).await {
                    moved.fetch_add(n as u64, Relaxed);
                }
            };
            tokio::select! { _ = t.cancelled() => {}, _ = writer => {}, _ = reader => {} }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    moved.load(Relaxed)
}

/// The reload of a fraction of session 0's proxies: live connections through the others, then
/// CloseProxy + NewProxy for the changed ones (what frpc sends on reload); returns (ms to apply,
/// live kept, live total, changed).
async fn reload(ctx: &Ctx, s: &mut Session) -> (f64, usize, usize, usize) {
    let n = s.ports.len();
    let changed = ((n as f64 * ctx.o.reload_fraction).ceil() as usize).min(n);
    let unchanged: Vec<u16> = s.ports[changed..].iter().flatten().copied().collect();
    let mut live = Vec::new();
    for k in 0..ctx.o.live_conns.min(unchanged.len()) {
        // Spread over the unchanged proxies.
        let port = unchanged[k * unchanged.len() / ctx.o.live_conns.max(1)];
        if let Ok(Ok(mut c)) = timeout(
            ctx.step,
            TcpStream::connect(SocketAddr::new(ctx.addr.ip(), port)),
        )
        .await
        {
            if timeout(ctx.step, echo_once(&mut c))
                .await
                .is_ok_and(|r| r.is_ok())
            {
                live.push(c);
            }
        }
    }
    let total = live.len();
    let t0 = Instant::now();
    for j in 0..changed {
        let name = format!("{}-0-{j}", ctx.prefix);
        let _ = s.out.send(CloseProxy { proxy_name: name }.into()).await;
    }
    let base = if ctx.o.remote_port_base == 0 {
        0
    } else {
        ctx.o.remote_port_base as usize + n
    };
    for j in 0..changed {
        let port = if base == 0 {
            0
        } else {
            u16::try_from(base + j).unwrap_or(0)
        };
        let _ = s.out.send(proxy_msg(ctx, 0, j, port)).await;
    }
    let mut ok = 0;
    while ok < changed {
        match timeout(ctx.step, s.resps.recv()).await {
            Ok(Some(r)) if r.error.is_empty() => ok += 1,
            Ok(Some(r)) => {
                ctx.stats.fail(format!("reload proxy: {}", r.error));
                ok += 1;
            }
            _ => {
                ctx.stats.fail("reload: no NewProxyResp in time");
                break;
            }
        }
    }
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let mut kept = 0;
    for c in &mut live {
        if timeout(ctx.step, echo_once(c))
            .await
            .is_ok_and(|r| r.is_ok())
        {
            kept += 1;
        }
    }
    (ms, kept, total, changed)
}

/// Silent mode: connections that send nothing; returns how many frps closed during the hold.
async fn silent(ctx: Arc<Ctx>) -> u64 {
    let closed = Arc::new(AtomicU64::new(0));
    let hold = CancellationToken::new();
    let mut tasks = Vec::new();
    for i in 0..ctx.o.clients {
        match Dialer::tcp(&ctx, i).await {
            Ok(mut s) => {
                let (t, closed) = (hold.clone(), closed.clone());
                tasks.push(tokio::spawn(async move {
                    let mut b = [0u8; 1];
                    tokio::select! {
                        _ = t.cancelled() => {}
                        _ = s.read(&mut b) => { closed.fetch_add(1, Relaxed); }
                    }
                }));
            }
            Err(e) => ctx.stats.fail(io_reason("dial", &e)),
        }
    }
    if let Some(f) = &ctx.o.ready_file {
        if let Err(e) = std::fs::write(f, "ready") {
            ctx.stats.fail(io_reason("ready file", &e));
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(ctx.o.duration)).await;
    hold.cancel();
    for t in tasks {
        let _ = t.await;
    }
    closed.load(Relaxed)
}

/// Wrong-token mode: login attempts with a bad token; returns (attempts, seconds).
async fn wrong_token(ctx: Arc<Ctx>) -> (u64, f64) {
    let sem = Arc::new(Semaphore::new(ctx.o.concurrency.max(1)));
    let t0 = Instant::now();
    let until = (ctx.o.duration > 0.0).then(|| t0 + Duration::from_secs_f64(ctx.o.duration));
    let mut n = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let more = match until {
            Some(u) => Instant::now() < u,
            None => (n as usize) < ctx.o.clients,
        };
        if !more {
            break;
        }
        if ctx.o.rate > 0.0 {
            sleep_until(t0 + Duration::from_secs_f64(n as f64 / ctx.o.rate)).await;
        }
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let c = ctx.clone();
        let idx = n as usize;
        tasks.spawn(async move {
            let t = CancellationToken::new();
            let r = login(&c, idx, "wrong-token-from-frp-load", &t).await;
            t.cancel();
            drop(permit);
            match r {
                Ok(_) => c.stats.fail("accepted a wrong token"),
                Err(why) => c.stats.fail(why),
            }
        });
        n += 1;
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    (n, t0.elapsed().as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let o = Opts::parse();
    let rt = match o.threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if n > 1 {
                b.worker_threads(n);
            }
            b.enable_all().build()?
        }
    };
    rt.block_on(run(o))
}

async fn run(o: Opts) -> anyhow::Result<()> {
    let _ = common::rlimit::raise_open_files();
    let addr = tokio::net::lookup_host(&o.server)
        .await
        .with_context(|| format!("resolve {}", o.server))?
        .next()
        .with_context(|| format!("{} did not resolve", o.server))?;
    let host = o
        .server
        .rsplit_once(':')
        .map_or(o.server.as_str(), |(h, _)| h)
        .to_owned();
    let tls = if o.tls {
        let files = tls::TlsFiles {
            cert_file: None,
            key_file: None,
            trusted_ca_file: None,
        };
        Some(tokio_rustls::TlsConnector::from(tls::client_config(
            &files,
        )?))
    } else {
        None
    };
    let prefix = o
        .name_prefix
        .clone()
        .unwrap_or_else(|| format!("load{}", std::process::id()));
    let step = Duration::from_secs_f64(o.timeout);
    let ctx = Arc::new(Ctx {
        o,
        addr,
        host,
        tls,
        prefix,
        stats: Stats::default(),
        step,
    });
    let mut report = serde_json::Map::new();
    let o = &ctx.o;
    report.insert("mode".into(), json!(format!("{:?}", o.mode).to_lowercase()));
    report.insert("clients".into(), json!(o.clients));
    report.insert("proxies".into(), json!(o.proxies));

    match o.mode {
        Mode::Silent => {
            let closed = silent(ctx.clone()).await;
            report.insert("silent_closed_by_server".into(), json!(closed));
        }
        Mode::WrongToken => {
            let (n, secs) = wrong_token(ctx.clone()).await;
            report.insert("attempts".into(), json!(n));
            report.insert("attempts_per_s".into(), json!(n as f64 / secs.max(1e-9)));
        }
        Mode::Normal | Mode::Vanish => run_clients(&ctx, &mut report).await,
    }

    let s = &ctx.stats;
    let mut lat = s.login_us.lock().unwrap_or_else(|e| e.into_inner()).clone();
    report.insert("logins_ok".into(), json!(s.logins_ok.load(Relaxed)));
    report.insert("login_p50_ms".into(), json!(pct(&mut lat, 0.50)));
    report.insert("login_p99_ms".into(), json!(pct(&mut lat, 0.99)));
    report.insert("proxies_ok".into(), json!(s.proxies_ok.load(Relaxed)));
    report.insert("work_conns".into(), json!(s.work_conns.load(Relaxed)));
    report.insert("relayed".into(), json!(s.relayed.load(Relaxed)));
    report.insert("pings".into(), json!(s.pings.load(Relaxed)));
    report.insert("pongs".into(), json!(s.pongs.load(Relaxed)));
    report.insert(
        "sessions_dropped_by_server".into(),
        json!(s.dropped.load(Relaxed)),
    );
    let failures = s.failures.lock().unwrap_or_else(|e| e.into_inner()).clone();
    report.insert("failures".into(), json!(failures));
    for (k, v) in &report {
        eprintln!("{k:>28}: {v}");
    }
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}

/// Normal and vanish modes: arrivals, then the hold (with probe, bulk and reload).
async fn run_clients(ctx: &Arc<Ctx>, report: &mut serde_json::Map<String, serde_json::Value>) {
    let o = &ctx.o;
    let all = CancellationToken::new();
    let sem = Arc::new(Semaphore::new(o.concurrency.max(1)));
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(o.clients);
    for i in 0..o.clients {
        if o.rate > 0.0 {
            sleep_until(t0 + Duration::from_secs_f64(i as f64 / o.rate)).await;
        }
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        tasks.push(tokio::spawn(client(ctx.clone(), i, permit, all.clone())));
    }
    let mut sessions = Vec::with_capacity(tasks.len());
    for t in tasks {
        sessions.push(t.await.ok().flatten());
    }
    let secs = t0.elapsed().as_secs_f64();
    let ok = ctx.stats.logins_ok.load(Relaxed);
    report.insert("arrival_s".into(), json!(secs));
    report.insert("logins_per_s".into(), json!(ok as f64 / secs.max(1e-9)));
    if let Some(f) = &o.ready_file {
        if let Err(e) = std::fs::write(f, "ready") {
            ctx.stats.fail(io_reason("ready file", &e));
        }
    }

    if o.mode == Mode::Vanish {
        let ports: Vec<u16> = sessions
            .iter()
            .flatten()
            .flat_map(|s| s.ports.iter().flatten().copied())
            .collect();
        let t = Instant::now();
        all.cancel();
        drop(sessions);
        let freed = wait_ports_closed(ctx, &ports).await;
        report.insert("vanished_ports".into(), json!(ports.len()));
        report.insert("ports_still_open".into(), json!(freed));
        report.insert("freed_ms".into(), json!(t.elapsed().as_secs_f64() * 1000.0));
        return;
    }

    let first = sessions.first().and_then(|s| s.as_ref());
    let port = |j: usize| first.and_then(|s| s.ports.get(j).copied().flatten());
    let hold = CancellationToken::new();
    let mut side = tokio::task::JoinSet::new();
    if o.bulk_streams > 0 {
        if let Some(p) = port(o.proxies.saturating_sub(1)) {
            let (c, t, n) = (ctx.clone(), hold.clone(), o.bulk_streams);
            let t1 = Instant::now();
            side.spawn(async move {
                let bytes = bulk(&c, p, n, t).await;
                (
                    "bulk_mb_per_s",
                    json!(bytes as f64 / 1e6 / t1.elapsed().as_secs_f64()),
                )
            });
        }
    }
    if let (Some(s), true) = (
        sessions.first_mut().and_then(|s| s.as_mut()),
        o.reload_fraction > 0.0,
    ) {
        let (ms, kept, total, changed) = reload(ctx, s).await;
        report.insert("reload_changed".into(), json!(changed));
        report.insert("reload_apply_ms".into(), json!(ms));
        report.insert("live_kept".into(), json!(kept));
        report.insert("live_total".into(), json!(total));
    }
    let port0 = sessions
        .first()
        .and_then(|s| s.as_ref())
        .and_then(|s| s.ports.first().copied().flatten());
    if o.probe_rate > 0.0 {
        match port0 {
            Some(p) => {
                let (mut lat, mut rtt, bad) =
                    probe(ctx, p, o.probe_rate, o.probe_conns, o.duration).await;
                report.insert("probe_ok".into(), json!(lat.len()));
                report.insert("probe_failed".into(), json!(bad));
                report.insert("probe_p50_ms".into(), json!(pct(&mut lat, 0.50)));
                report.insert("probe_p99_ms".into(), json!(pct(&mut lat, 0.99)));
                report.insert("probe_rtt_p50_ms".into(), json!(pct(&mut rtt, 0.50)));
                report.insert("probe_rtt_p99_ms".into(), json!(pct(&mut rtt, 0.99)));
            }
            None => ctx.stats.fail("probe: client 0 has no proxy"),
        }
    } else {
        tokio::time::sleep(Duration::from_secs_f64(o.duration)).await;
    }
    hold.cancel();
    while let Some(r) = side.join_next().await {
        if let Ok((k, v)) = r {
            report.insert(k.into(), v);
        }
    }
    let held = sessions
        .iter()
        .flatten()
        .filter(|s| !s.token.is_cancelled())
        .count();
    report.insert("sessions_alive_at_end".into(), json!(held));
    all.cancel();
}

/// Waits (up to 120 s) until no port in `ports` accepts connections; returns how many still do.
async fn wait_ports_closed(ctx: &Ctx, ports: &[u16]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut open: Vec<u16> = ports.to_vec();
    while !open.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for &p in &open {
            if TcpStream::connect(SocketAddr::new(ctx.addr.ip(), p))
                .await
                .is_ok()
            {
                still.push(p);
            }
        }
        open = still;
        if !open.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    open.len()
}
