//! Visitors (frp `client/visitor/`): the other end of a secret proxy. Each visitor listens
//! locally and reaches the proxy through frps with a `NewVisitorConn` on a fresh logical
//! connection ([`dial`]):
//! - stcp: a TCP listener on `bindAddr:bindPort`; each accepted connection gets its own
//!   visitor connection, joined byte for byte;
//! - sudp: a UDP socket on `bindAddr:bindPort`; datagrams travel as UDPPacket messages in this
//!   client's framing over one visitor connection, opened on the first datagram and again
//!   after it breaks.
//!
//! [`Visitors`] runs one session's visitors (frp's visitor manager lives with the control too):
//! started with the session, diffed on reload, closed with it, listeners released before
//! `close` returns. A visitor with `bindPort < 0` does not listen; it serves only connections
//! handed to it by another visitor ([`transfer`], frp `TransferConn`, the target of
//! xtcp's `fallbackTo`). A new kind plugs in as one more arm of [`Visitors::start`] with its
//! own run function over the same [`Ctx`] and [`dial`].

use crate::connector::Connector;
use crate::metrics::{ClientMetrics, ProxyCounters};
use crate::status::{Phase, ProxyStatus, StatusBoard};
use common::auth::{auth_key, unix_now};
use common::config::{ClientConfig, VisitorConfig};
use common::io::{join, wrap_work_conn, BoxStream, Count, Counted, WrapOpts};
use common::msg::{udp, v2, Message, NewVisitorConn, UdpPacket, Wire};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

mod xtcp;

/// frp reads NewVisitorConnResp with this deadline.
const RESP_TIMEOUT: Duration = Duration::from_secs(10);
/// The sudp visitor drops a tunnel silent for this long (the proxy side pings every 30 s).
const SUDP_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// frp's queue depth for datagrams; beyond it they are dropped, as UDP would.
const QUEUE: usize = 1024;
/// Connections another visitor may hand over at once.
const HANDOFF_QUEUE: usize = 64;
/// After a failed sudp tunnel, datagrams are dropped for this long before the next attempt
/// (frp retries on the next datagram at once, so a refused visitor dials per datagram).
const SUDP_RETRY: Duration = Duration::from_secs(1);

/// Local users an sudp visitor remembers (answers go only to them), and for how long.
const SUDP_USERS: usize = 4096;
const SUDP_USER_TTL: Duration = Duration::from_secs(300);
/// Answers for addresses that never sent to the visitor are logged at most once per period.
static FOREIGN_ANSWER_LOG: common::log::Throttle =
    common::log::Throttle::new(Duration::from_secs(10));

/// Why a visitor connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialError {
    #[error("connect to server error: {0}")]
    Connect(std::io::Error),
    #[error("send newVisitorConnMsg to server error: {0}")]
    Send(std::io::Error),
    #[error("read newVisitorConnRespMsg error: {0}")]
    Read(String),
    /// frps refused; its text.
    #[error("start new visitor connection error: {0}")]
    Refused(String),
}

/// What every visitor of a session shares.
pub(crate) struct Ctx {
    pub(crate) connector: Connector,
    pub(crate) run_id: String,
    pub(crate) user: String,
    pub(crate) wire: Wire,
    pub(crate) udp_packet_size: usize,
    pub(crate) metrics: Arc<ClientMetrics>,
    pub(crate) status: StatusBoard,
    /// xtcp: NatHole messages over the session's control, the STUN server, QUIC settings.
    pub(crate) nat: Arc<crate::xtcp::NatLink>,
    pub(crate) stun_server: String,
    pub(crate) quic: common::config::QuicConfig,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("visitor::Ctx")
            .field("run_id", &self.run_id)
            .field("wire", &self.wire)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    pub(crate) fn new(
        cfg: &ClientConfig,
        connector: Connector,
        run_id: String,
        metrics: Arc<ClientMetrics>,
        status: StatusBoard,
        nat: Arc<crate::xtcp::NatLink>,
    ) -> Self {
        Ctx {
            connector,
            run_id,
            user: cfg.user.clone(),
            wire: crate::wire(cfg),
            udp_packet_size: cfg.udp_packet_size.clamp(1, 65535) as usize,
            metrics,
            status,
            nat,
            stun_server: cfg.nat_hole_stun_server.clone(),
            quic: cfg.transport.quic.clone(),
        }
    }
}

/// The proxy name a visitor asks for (frp `BuildTargetServerProxyName`).
pub(crate) fn target_name(user: &str, v: &VisitorConfig) -> String {
    let owner = if v.server_user.is_empty() {
        user
    } else {
        &v.server_user
    };
    if owner.is_empty() {
        v.server_name.clone()
    } else {
        format!("{owner}.{}", v.server_name)
    }
}

/// Opens one visitor connection (frp `dialRawVisitorConn` + `wrapVisitorConn`): a logical
/// connection to frps, NewVisitorConn signed with the secret key and the current time, the
/// answer within 10 s, then CFB with the secret key and snappy as the visitor asks.
pub(crate) async fn dial(ctx: &Ctx, v: &VisitorConfig) -> Result<BoxStream, DialError> {
    let mut conn = ctx.connector.connect().await.map_err(DialError::Connect)?;
    let now = unix_now();
    let m = NewVisitorConn {
        run_id: ctx.run_id.clone(),
        proxy_name: target_name(&ctx.user, v),
        sign_key: auth_key(&v.secret_key.0, now),
        timestamp: now,
        use_encryption: v.transport.use_encryption,
        use_compression: v.transport.use_compression,
    };
    let sent = async {
        if ctx.wire == Wire::V2 {
            conn.write_all(&v2::MAGIC).await?;
        }
        ctx.wire.write(&mut conn, &m.into()).await
    };
    sent.await.map_err(DialError::Send)?;
    let resp = tokio::time::timeout(RESP_TIMEOUT, ctx.wire.read(&mut conn))
        .await
        .map_err(|_| DialError::Read("no answer within 10s".into()))?
        .map_err(|e| DialError::Read(e.to_string()))?;
    match resp {
        Message::NewVisitorConnResp(r) if r.error.is_empty() => {}
        Message::NewVisitorConnResp(r) => return Err(DialError::Refused(r.error)),
        other => {
            return Err(DialError::Read(format!(
                "expected NewVisitorConnResp, got {}",
                other.name()
            )))
        }
    }
    Ok(wrap_work_conn(conn, &layers(v)))
}

/// A visitor's layers on its connections (frp `wrapVisitorConn`): CFB keyed by the secret key
/// and snappy, as the visitor asks.
pub(crate) fn layers(v: &VisitorConfig) -> WrapOpts {
    WrapOpts {
        encryption_key: v
            .transport
            .use_encryption
            .then(|| common::crypto::derive_key(v.secret_key.0.as_bytes())),
        compress: v.transport.use_compression,
        limit: None,
    }
}

/// [`dial`], counted in the metrics and logged on failure.
async fn dial_counted(ctx: &Ctx, v: &VisitorConfig) -> Option<BoxStream> {
    let r = dial(ctx, v).await;
    let result = match &r {
        Ok(_) => "ok",
        Err(DialError::Refused(_)) => "refused",
        Err(_) => "error",
    };
    ctx.metrics
        .visitor_dials
        .with_label_values(&[&v.name, &v.kind, result])
        .inc();
    match r {
        Ok(c) => Some(c),
        Err(e) => {
            warn!(error = %e, "visitor connection failed");
            None
        }
    }
}

struct Running {
    cfg: VisitorConfig,
    token: CancellationToken,
    task: JoinHandle<()>,
}

/// Connections handed to visitors by name (frp `TransferConn`).
pub(crate) type Handoffs = Arc<Mutex<HashMap<String, mpsc::Sender<BoxStream>>>>;

/// One session's visitors.
pub(crate) struct Visitors {
    ctx: Arc<Ctx>,
    running: HashMap<String, Running>,
    handoffs: Handoffs,
    token: CancellationToken,
}

impl std::fmt::Debug for Visitors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Visitors")
            .field("running", &self.running.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Visitors {
    pub(crate) fn new(ctx: Ctx, token: CancellationToken) -> Self {
        Visitors {
            ctx: Arc::new(ctx),
            running: HashMap::new(),
            handoffs: Arc::default(),
            token,
        }
    }

    fn set_status(&self, v: &VisitorConfig, phase: Phase, error: &str) {
        self.ctx.status.set(ProxyStatus {
            name: v.name.clone(),
            kind: v.kind.clone(),
            phase,
            remote_addr: String::new(),
            error: error.into(),
        });
    }

    /// Starts a visitor: binds its listener now (an error is its status), then serves it.
    pub(crate) async fn start(&mut self, v: &VisitorConfig) {
        if let Some(why) = refused(v) {
            warn!(visitor = %v.name, error = %why, "visitor not started");
            self.set_status(v, Phase::StartError, &why);
            return;
        }
        let token = self.token.child_token();
        let (tx, rx) = mpsc::channel(HANDOFF_QUEUE);
        let cfg = Arc::new(v.clone());
        let counters = self.ctx.metrics.visitor(&v.name, &v.kind);
        let span = tracing::info_span!("visitor", name = %v.name, kind = %v.kind);
        let bind = (v.bind_port > 0).then(|| format!("{}:{}", v.bind_addr, v.bind_port));
        let ctx = self.ctx.clone();
        let t = token.clone();
        let task = match v.kind.as_str() {
            "stcp" | "xtcp" => {
                let listener = match &bind {
                    Some(addr) => match TcpListener::bind(addr).await {
                        Ok(l) => Some(l),
                        Err(e) => return self.bind_failed(v, addr, e),
                    },
                    None => None,
                };
                let users = Users {
                    listener,
                    handoff: rx,
                };
                if v.kind == "xtcp" {
                    let fut = xtcp::run(ctx, cfg, users, counters, t, self.handoffs.clone());
                    tokio::spawn(fut.instrument(span))
                } else {
                    tokio::spawn(run_stcp(ctx, cfg, users, counters, t).instrument(span))
                }
            }
            "sudp" => {
                let Some(addr) = &bind else {
                    return self.bind_failed(
                        v,
                        "",
                        std::io::Error::other("an sudp visitor needs a bindPort"),
                    );
                };
                let socket = match UdpSocket::bind(addr).await {
                    Ok(s) => s,
                    Err(e) => return self.bind_failed(v, addr, e),
                };
                tokio::spawn(run_sudp(ctx, cfg, socket, counters, t).instrument(span))
            }
            other => {
                let why = format!("visitor type {other} is not supported by this frpc");
                self.set_status(v, Phase::StartError, &why);
                return;
            }
        };
        info!(visitor = %v.name, kind = %v.kind, listen = bind.as_deref().unwrap_or("(none: bindPort < 0)"), "visitor started");
        self.handoffs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(v.name.clone(), tx);
        self.set_status(v, Phase::Running, "");
        self.running.insert(
            v.name.clone(),
            Running {
                cfg: v.clone(),
                token,
                task,
            },
        );
    }

    fn bind_failed(&self, v: &VisitorConfig, addr: &str, e: std::io::Error) {
        let why = format!("listen on {addr} error: {e}");
        warn!(visitor = %v.name, error = %why, "visitor not started");
        self.set_status(v, Phase::StartError, &why);
    }

    /// Stops a visitor and waits until its listener is closed.
    pub(crate) async fn stop(&mut self, name: &str) {
        self.handoffs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        if let Some(r) = self.running.remove(name) {
            r.token.cancel();
            let _ = r.task.await;
            debug!(visitor = %r.cfg.name, "visitor stopped");
        }
        self.ctx.status.remove(name);
    }

    /// Applies a reloaded config: only the visitors that changed are touched.
    pub(crate) async fn apply(&mut self, old: &ClientConfig, new: &ClientConfig) {
        use crate::reload::Change;
        let changes = crate::reload::diff_visitors(old, new);
        for c in &changes {
            if let Change::Remove(n) | Change::Update(n) = c {
                info!(visitor = %n, "reload: stopping visitor");
                self.stop(n).await;
            }
        }
        for c in &changes {
            if let Change::Add(n) | Change::Update(n) = c {
                if let Some(v) = new.active_visitors().find(|v| &v.name == n) {
                    info!(visitor = %n, "reload: starting visitor");
                    self.start(v).await;
                }
            }
        }
    }

    /// Stops every visitor, listeners released on return.
    pub(crate) async fn close(&mut self) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        for n in names {
            let cfg = self.running.get(&n).map(|r| r.cfg.clone());
            self.stop(&n).await;
            if let Some(v) = cfg {
                self.set_status(&v, Phase::WaitStart, "session closed");
            }
        }
    }
}

/// Hands a user connection to visitor `name` (frp `TransferConn`; xtcp's `fallbackTo`).
pub(crate) fn transfer(handoffs: &Handoffs, name: &str, conn: BoxStream) -> Result<(), String> {
    let tx = handoffs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(name)
        .cloned();
    match tx {
        Some(tx) => tx
            .try_send(conn)
            .map_err(|_| format!("visitor [{name}] is busy or closed")),
        None => Err(format!("visitor [{name}] not found")),
    }
}

/// Why a visitor must not start: the unsupported keys it uses (`config::support`), if any.
pub(crate) fn refused(v: &VisitorConfig) -> Option<String> {
    common::config::refusal(&common::config::visitor_unsupported(v))
}

/// Where a stream visitor's users come from: its listener (none with `bindPort < 0`) and
/// the connections other visitors hand over.
pub(crate) struct Users {
    listener: Option<TcpListener>,
    handoff: mpsc::Receiver<BoxStream>,
}

impl Users {
    /// The next user connection; `None` once the visitor is being stopped.
    pub(crate) async fn next(&mut self) -> Option<BoxStream> {
        loop {
            let accepted = match &self.listener {
                Some(l) => tokio::select! {
                    r = l.accept() => r,
                    c = self.handoff.recv() => return c,
                },
                None => return self.handoff.recv().await,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    debug!(%peer, "user connection");
                    let _ = tcp.set_nodelay(true);
                    return Some(Box::new(tcp));
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// stcp: each accepted (or handed-over) connection gets its own visitor connection.
async fn run_stcp(
    ctx: Arc<Ctx>,
    v: Arc<VisitorConfig>,
    mut users: Users,
    counters: Arc<ProxyCounters>,
    token: CancellationToken,
) {
    loop {
        let user = tokio::select! {
            _ = token.cancelled() => return,
            u = users.next() => match u { Some(u) => u, None => return },
        };
        let fut = stcp_conn(
            ctx.clone(),
            v.clone(),
            user,
            counters.clone(),
            token.clone(),
        );
        tokio::spawn(fut.in_current_span());
    }
}

async fn stcp_conn(
    ctx: Arc<Ctx>,
    v: Arc<VisitorConfig>,
    user: BoxStream,
    counters: Arc<ProxyCounters>,
    token: CancellationToken,
) {
    let remote = tokio::select! {
        _ = token.cancelled() => return,
        r = dial_counted(&ctx, &v) => r,
    };
    if let Some(remote) = remote {
        relay_user(user, remote, counters, &token).await;
    }
}

/// Joins a stream visitor's user to its remote side (a visitor connection, an xtcp stream),
/// counted, until either ends or `token` is cancelled.
pub(crate) async fn relay_user(
    user: BoxStream,
    mut remote: BoxStream,
    counters: Arc<ProxyCounters>,
    token: &CancellationToken,
) {
    let _open = counters.conn_opened();
    let mut user = Counted::new(user, counters);
    tokio::select! {
        _ = token.cancelled() => {}
        r = join(&mut user, &mut remote) => match r {
            Ok((a, b)) => debug!(to_remote = a, to_user = b, "visitor user connection closed"),
            Err(e) => debug!(error = %e, "visitor user connection ended with error"),
        },
    }
}

/// sudp: datagrams from local users go as UDPPacket messages (`r` = the user's address) over
/// one visitor connection; answers go back to their `r`.
async fn run_sudp(
    ctx: Arc<Ctx>,
    v: Arc<VisitorConfig>,
    socket: UdpSocket,
    counters: Arc<ProxyCounters>,
    token: CancellationToken,
) {
    let (tx, mut rx) = mpsc::channel::<UdpPacket>(QUEUE);
    let drops = udp::Drops::default();
    let local = Local {
        socket,
        users: Mutex::default(),
    };
    let read_local = async {
        let mut buf = vec![0u8; ctx.udp_packet_size];
        loop {
            match local.socket.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    counters.read(n as u64);
                    local.seen(from);
                    let pkt = UdpPacket {
                        content: buf[..n].to_vec(),
                        local_addr: None,
                        remote_addr: Some(from.into()),
                    };
                    if tx.try_send(pkt).is_err() {
                        drops.dropped(ctx.wire, n, "the tunnel's queue is full");
                    }
                }
                Err(e) => debug!(error = %e, "local udp recv"),
            }
        }
    };
    let tunnels = async {
        loop {
            let Some(first) = rx.recv().await else {
                return;
            };
            let Some(conn) = dial_counted(&ctx, &v).await else {
                // Datagrams that come meanwhile are dropped, not queued for a dead tunnel.
                tokio::time::sleep(SUDP_RETRY).await;
                while rx.try_recv().is_ok() {}
                continue;
            };
            let _open = counters.conn_opened();
            let why = sudp_tunnel(&ctx, conn, first, &mut rx, &local, &*counters, &drops).await;
            info!(reason = %why, "sudp tunnel closed; the next datagram opens a new one");
        }
    };
    tokio::select! {
        _ = token.cancelled() => {}
        _ = read_local => {}
        _ = tunnels => {}
    }
}

/// An sudp visitor's socket and the local users that sent to it recently: the proxy side
/// names each answer's address, and only these may receive one (frp sends wherever the
/// answer says, so a proxy owner could aim the visitor machine's UDP at its LAN).
struct Local {
    socket: UdpSocket,
    users: Mutex<HashMap<std::net::SocketAddr, tokio::time::Instant>>,
}

impl Local {
    fn users(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<std::net::SocketAddr, tokio::time::Instant>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers a sender; at the cap, the stale ones and then the oldest make room.
    fn seen(&self, from: std::net::SocketAddr) {
        let now = tokio::time::Instant::now();
        let mut m = self.users();
        if m.len() >= SUDP_USERS && !m.contains_key(&from) {
            m.retain(|_, t| now.duration_since(*t) < SUDP_USER_TTL);
            let oldest = (m.len() >= SUDP_USERS)
                .then(|| m.iter().min_by_key(|(_, t)| **t).map(|(a, _)| *a))
                .flatten();
            if let Some(a) = oldest {
                m.remove(&a);
            }
        }
        m.insert(from, now);
    }

    fn knows(&self, to: &std::net::SocketAddr) -> bool {
        self.users().contains_key(to)
    }
}

/// One sudp visitor connection until it breaks; returns why.
async fn sudp_tunnel(
    ctx: &Ctx,
    conn: BoxStream,
    first: UdpPacket,
    rx: &mut mpsc::Receiver<UdpPacket>,
    local: &Local,
    counters: &dyn Count,
    drops: &udp::Drops,
) -> String {
    let wire = ctx.wire;
    let (mut rd, mut wr) = tokio::io::split(conn);
    let to_server = async {
        let mut next = Some(first);
        loop {
            let pkt = match next.take() {
                Some(p) => p,
                None => match rx.recv().await {
                    Some(p) => p,
                    None => return "visitor closed".to_owned(),
                },
            };
            if let Err(e) = udp::send(wire, &mut wr, &pkt.into(), drops).await {
                return format!("write: {e}");
            }
        }
    };
    let to_user = async {
        loop {
            let m = match tokio::time::timeout(SUDP_READ_TIMEOUT, udp::recv(wire, &mut rd, drops))
                .await
            {
                Err(_) => return format!("nothing from the proxy for {SUDP_READ_TIMEOUT:?}"),
                Ok(Err(e)) => return format!("read: {e}"),
                Ok(Ok(m)) => m,
            };
            let Message::UdpPacket(p) = m else {
                continue; // the proxy side's Ping keepalive
            };
            let Some(to) = p.remote_addr.as_ref().and_then(|a| a.to_socket_addr()) else {
                debug!("udp packet without a valid address dropped");
                continue;
            };
            if !local.knows(&to) {
                if let Some(held) = FOREIGN_ANSWER_LOG.ready() {
                    warn!(%to, similar_held_back = held, "answer for an address that never sent to this visitor dropped");
                }
                continue;
            }
            counters.written(p.content.len() as u64);
            if let Err(e) = local.socket.send_to(&p.content, to).await {
                debug!(error = %e, %to, "udp send to user failed");
            }
        }
    };
    tokio::select! { r = to_server => r, r = to_user => r }
}

#[cfg(test)]
mod tests {
    use super::{target_name, Local, SUDP_USERS};
    use common::config::VisitorConfig;

    /// frp `BuildTargetServerProxyName`: serverUser, else the visitor's own user, as prefix.
    #[test]
    fn target_names() {
        let v = |user: &str| VisitorConfig {
            server_user: user.into(),
            server_name: "ssh".into(),
            ..Default::default()
        };
        assert_eq!(target_name("alice", &v("")), "alice.ssh");
        assert_eq!(target_name("alice", &v("bob")), "bob.ssh");
        assert_eq!(target_name("", &v("bob")), "bob.ssh");
        assert_eq!(target_name("", &v("")), "ssh");
    }

    /// The senders an sudp visitor remembers are bounded; the newest always counts.
    #[tokio::test]
    async fn sudp_users_are_bounded() {
        let local = Local {
            socket: tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            users: Default::default(),
        };
        for i in 0..SUDP_USERS + 10 {
            local.seen(([127, 0, 0, 1], i as u16 + 1).into());
        }
        assert_eq!(local.users().len(), SUDP_USERS);
        let last = ([127, 0, 0, 1], (SUDP_USERS + 10) as u16).into();
        assert!(local.knows(&last));
    }
}
