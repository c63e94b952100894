//! One logged-in frpc (frp `server/control.go`): login checks, the encrypted control channel,
//! heartbeat, and the proxies this client registered.
//!
//! Tasks: a writer (channel -> frames, 100 deep as frp's send queue) and the control loop that
//! owns all state and reads the client's messages itself. Cancelling the control's token ends
//! both and, through child tokens, every proxy and user connection under it.

use crate::admission::Reject;
use crate::metrics::Owner;
use crate::plugin::UserInfo;
use crate::pool::WorkConnPool;
use crate::proxy::{self, ProxyCtx, ProxyError, ProxyHandle};
use crate::service::{Origin, Shared};
use common::io::{secure_control, BoxStream, LimitAt, Limiter, Side, WrapOpts};
use common::msg::{
    v2, CloseProxy, Login, LoginResp, Message, NewProxy, NewProxyResp, Ping, Pong, Wire,
};
use common::FRP_VERSION;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// frp's control send queue depth.
const SEND_QUEUE: usize = 100;
/// NatHoleVisitor requests of one control handled at once (a real one lasts until its report
/// window ends); more are refused at once, so a client that floods them and does not read
/// its answers cannot make frps hold a task per request.
const NATHOLE_IN_FLIGHT: usize = 256;
/// What the control's queues carry: boxed, because a tokio channel allocates its slots 32 at a
/// time and a `Message` is ~500 bytes: two queues of bare messages cost every idle client
/// ~31 KiB (issue 21 profile); boxed, 512 bytes.
pub(crate) type Queued = Box<Message>;
/// How long the control waits for room in its send queue: a client that takes none of 100
/// queued messages for this long is not reading, and its session is closed.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a re-login waits for the session it replaces to let go of its proxies.
const REPLACE_TIMEOUT: Duration = Duration::from_secs(10);
/// "login refused" lines: up to 5 per source address and 50 in all per 10 s, then a count (a
/// flood of wrong tokens cost frps a log line each, 14,000 a second in the hostile benchmark);
/// per address so that a flood from one host does not hide another client's refusal. The
/// metric counts every refusal.
static REFUSED_LOG: std::sync::LazyLock<common::log::KeyedThrottle<std::net::IpAddr>> =
    std::sync::LazyLock::new(|| {
        common::log::KeyedThrottle::new(Duration::from_secs(10), 5, 50, 4096)
    });

/// Logs a refused login unless [`REFUSED_LOG`] holds it back.
fn log_refused(peer: std::net::SocketAddr, user: &str, version: &str, error: &str) {
    match REFUSED_LOG.ready(peer.ip()) {
        Some(0) => warn!(%peer, user, version, error, "login refused"),
        Some(held) => warn!(%peer, user, version, error, similar_held_back = held, "login refused"),
        None => {}
    }
}

/// What the registry keeps of a control.
#[derive(Debug, Clone)]
pub(crate) struct ControlHandle {
    /// Distinguishes two controls that shared a run_id.
    pub(crate) id: u64,
    pub(crate) run_id: String,
    pub(crate) user: String,
    pub(crate) client_id: String,
    /// Where the control came from: its work connections must come from there too.
    pub(crate) origin: Origin,
    /// The client as server plugins see it (user, metas, run_id).
    pub(crate) plugin_user: Arc<UserInfo>,
    token: CancellationToken,
    work_tx: crate::pool::PoolFeeder,
    /// Closed (sender dropped) once the control has released everything it held.
    done: watch::Receiver<()>,
}

impl ControlHandle {
    /// Idle work connections in this control's pool.
    pub(crate) fn pooled(&self) -> usize {
        self.work_tx.len()
    }

    /// Queues a work connection; gives it back when the pool is full or closed.
    pub(crate) fn push_work_conn(&self, conn: BoxStream) -> Result<(), BoxStream> {
        self.work_tx.push(conn)
    }

    /// Closes the control and waits until its proxies and ports are released.
    pub(crate) async fn close_and_wait(&self) {
        self.token.cancel();
        let mut done = self.done.clone();
        while done.changed().await.is_ok() {}
    }
}

#[cfg(test)]
impl ControlHandle {
    /// A handle with no session behind it (registry tests).
    pub(crate) fn for_test(id: u64, run_id: &str, user: &str, client_id: &str) -> ControlHandle {
        let (ctl_tx, _) = mpsc::channel(1);
        let handed_out =
            prometheus::IntCounterVec::new(prometheus::Opts::new("t", "t"), &["source"])
                .expect("metric");
        let (_, work_tx) = WorkConnPool::new(0, 0, Duration::ZERO, ctl_tx, handed_out, Wire::V1);
        ControlHandle {
            id,
            run_id: run_id.into(),
            user: user.into(),
            client_id: client_id.into(),
            origin: Origin {
                conn_id: id,
                peer: ([127, 0, 0, 1], 0).into(),
                muxed: false,
                transport: "tcp",
                admission: crate::admission::Gate::test_admission(),
            },
            plugin_user: Arc::default(),
            token: CancellationToken::new(),
            work_tx,
            done: watch::channel(()).1,
        }
    }
}

fn random_run_id() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

/// Checks a Login; the error text is what frp sends in LoginResp.
async fn check_login(shared: &Shared, login: &Login) -> Result<(), String> {
    shared
        .auth
        .login(login.timestamp, &login.privilege_key)
        .await
}

/// Serves one control connection from its Login to its end.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    stream: BoxStream,
    login: Login,
    negotiated: (Wire, Option<v2::Negotiated>),
    origin: Origin,
    parent: CancellationToken,
) {
    // The login is boxed and freed once done: this future lives as long as the session, and
    // a future is as big as its largest state (the login's plugin and auth calls, the Login
    // itself; 8.5 KB per idle client before, issue 21).
    let start = start(shared, stream, login, negotiated, origin, parent);
    if let Some(session) = Box::pin(start).await {
        session.run().await;
    }
}

/// A logged-in control, its loop not started yet.
struct Session {
    ctl: Control,
    rx: Messages,
    span: tracing::Span,
    run_id: String,
    control_id: u64,
    /// Dropped once everything the control held is released ([`ControlHandle::close_and_wait`]).
    done: watch::Sender<()>,
}

impl Session {
    async fn run(self) {
        let Session {
            mut ctl,
            rx,
            span,
            run_id,
            control_id,
            done,
        } = self;
        ctl.run(rx).instrument(span.clone()).await;

        // Teardown: proxies first (their ports), then the pool, then the registry entry.
        let shared = ctl.shared.clone();
        ctl.token.cancel();
        for (name, p) in ctl.proxies.drain() {
            Box::pin(p.close()).await;
            shared.plugins.close_proxy(&ctl.plugin_user, &name);
        }
        shared.metrics.client_closed(&run_id, control_id);
        ctl.pool.close();
        shared.registry.remove_control(&run_id, control_id);
        info!(parent: &span, "client session closed");
        drop(done);
    }
}

/// Checks a Login, answers it and sets up the control: `None` when refused or gone.
async fn start(
    shared: Arc<Shared>,
    mut stream: BoxStream,
    mut login: Login,
    (wire, hello): (Wire, Option<v2::Negotiated>),
    origin: Origin,
    parent: CancellationToken,
) -> Option<Session> {
    let peer = origin.peer;
    let refuse = |err: String| LoginResp {
        version: FRP_VERSION.into(),
        error: err,
        ..Default::default()
    };
    // Server plugins see the Login first and may rewrite it (frp `handleConnection`).
    let (user, version) = (login.user.clone(), login.version.clone());
    let (checked, reason) = match shared.plugins.login(login, &peer.to_string()).await {
        Err(e) => {
            // What the log line below shows of a Login the plugins refused.
            login = Login {
                user,
                version,
                ..Default::default()
            };
            // The plugin and the reason are logged where the call ended.
            (Err(e.client_text()), "plugin")
        }
        Ok(l) => {
            login = l;
            let checked = match (wire, &hello) {
                // frp: a v2 Login without ClientHello cannot key the control channel.
                (Wire::V2, None) => Err("missing v2 crypto negotiation".to_owned()),
                _ => check_login(&shared, &login).await,
            };
            (checked, "auth")
        }
    };
    if checked.is_ok() {
        origin.admission.admit();
    }
    if let Err(e) = checked {
        origin.admission.reject(Reject::Refused);
        log_refused(origin.peer, &login.user, &login.version, &e);
        shared.metrics.refused("login", reason);
        let msg = if shared.cfg.detailed_errors_to_client {
            e
        } else {
            "register control error".into()
        };
        let _ = wire.write(&mut stream, &refuse(msg).into()).await;
        return None;
    }
    let run_id = if login.run_id.is_empty() {
        random_run_id()
    } else {
        login.run_id.clone()
    };
    let pool_count = login
        .pool_count
        .clamp(0, shared.cfg.transport.max_pool_count.max(0)) as usize;
    let (ctl_tx, ctl_rx) = mpsc::channel::<Queued>(SEND_QUEUE);
    let (pool, work_tx) = WorkConnPool::new(
        pool_count,
        shared.cfg.transport.max_pool_count.max(0) as usize,
        Duration::from_secs(shared.cfg.user_conn_timeout.max(1) as u64),
        ctl_tx.clone(),
        shared.metrics.work_conns_handed_out.clone(),
        wire,
    );
    let token = parent.child_token();
    let (done_tx, done_rx) = watch::channel(());
    let plugin_user = Arc::new(UserInfo::of(&login, &run_id));
    let handle = ControlHandle {
        id: shared.next_id(),
        run_id: run_id.clone(),
        user: login.user.clone(),
        client_id: login.client_id.clone(),
        origin,
        plugin_user: plugin_user.clone(),
        token: token.clone(),
        work_tx,
        done: done_rx,
    };
    match shared.registry.add_control(handle.clone()) {
        Ok(None) => {}
        // A re-login with a known run_id replaces the old session once it has let go of its
        // proxies (before LoginResp, so the new one cannot ask for them yet).
        Ok(Some(prev)) => {
            info!(%run_id, "replacing previous session of this client");
            if tokio::time::timeout(REPLACE_TIMEOUT, prev.close_and_wait())
                .await
                .is_err()
            {
                warn!(%run_id, "previous session did not close in {REPLACE_TIMEOUT:?}, going on");
            }
        }
        Err(e) => {
            handle.origin.admission.reject(Reject::Refused);
            shared.metrics.refused("login", "registry");
            log_refused(
                handle.origin.peer,
                &login.user,
                &login.version,
                &e.to_string(),
            );
            let _ = wire.write(&mut stream, &refuse(e.to_string()).into()).await;
            return None;
        }
    }

    let ok = LoginResp {
        version: FRP_VERSION.into(),
        run_id: run_id.clone(),
        error: String::new(),
    };
    if let Err(e) = wire.write(&mut stream, &ok.into()).await {
        debug!(error = %e, "could not send LoginResp");
        shared.registry.remove_control(&run_id, handle.id);
        return None;
    }
    let span = tracing::info_span!("control", %run_id, user = %login.user);
    info!(parent: &span, %peer, version = %login.version, hostname = %login.hostname, os = %login.os, arch = %login.arch, pool_count, "client login");

    let secured = match secure_control(stream, &shared.cfg.auth.token, hello.as_ref(), Side::Server)
    {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot set up the control channel encryption");
            shared.registry.remove_control(&run_id, handle.id);
            return None;
        }
    };
    let (rd, wr) = tokio::io::split(secured);
    shared
        .tracker
        .spawn(writer(wr, wire, ctl_rx, token.clone()).instrument(span.clone()));
    pool.prime().await;

    let client_key = shared.metrics.client_opened(crate::clients::Login {
        user: &login.user,
        client_id: &login.client_id,
        run_id: &run_id,
        hostname: &login.hostname,
        version: &login.version,
        ip: peer.ip().to_string(),
        wire_protocol: wire.name(),
        transport: handle.origin.transport,
        control_id: handle.id,
    });
    let ctl = Control {
        shared: shared.clone(),
        user: login.user.clone(),
        client_id: shared
            .metrics
            .clients
            .get(&client_key)
            .map(|r| r.client_id)
            .unwrap_or_default(),
        token: token.clone(),
        pool,
        ctl_tx,
        proxies: HashMap::new(),
        nathole_slots: Arc::new(tokio::sync::Semaphore::new(NATHOLE_IN_FLIGHT)),
        plugin_user,
    };
    Some(Session {
        ctl,
        rx: messages(rd, wire),
        span,
        run_id,
        control_id: handle.id,
        done: done_tx,
    })
}

/// The client's messages, each boxed (see [`Queued`]).
type Messages =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<Queued, common::msg::DecodeError>> + Send>>;

/// Reads the client's messages in the control loop itself: a reader task and a queue per
/// client fewer (about 1.3 KB per idle client, issue 21). Cancel-safe: the read in progress
/// lives in the stream between polls. The next message is read once the last is handled, so a
/// client that floods is held back by TCP, as the reader's bounded queue held it back before.
fn messages(rd: tokio::io::ReadHalf<BoxStream>, wire: Wire) -> Messages {
    Box::pin(futures::stream::unfold(rd, move |mut rd| async move {
        let m = wire.read(&mut rd).await.map(Box::new);
        Some((m, rd))
    }))
}

async fn writer<W: tokio::io::AsyncWrite + Unpin>(
    mut wr: W,
    wire: Wire,
    mut rx: mpsc::Receiver<Queued>,
    token: CancellationToken,
) {
    loop {
        let m = tokio::select! {
            _ = token.cancelled() => return,
            m = rx.recv() => match m { Some(m) => m, None => return },
        };
        // A client that does not read blocks this write; cancelling the session still wins.
        let r = tokio::select! {
            _ = token.cancelled() => return,
            r = wire.write(&mut wr, &m) => r,
        };
        if let Err(e) = r {
            debug!(error = %e, "control write failed");
            token.cancel();
            return;
        }
    }
}

/// State owned by the control loop.
struct Control {
    shared: Arc<Shared>,
    /// The client's user and (effective) client id (dashboard).
    user: String,
    client_id: String,
    token: CancellationToken,
    pool: WorkConnPool,
    ctl_tx: mpsc::Sender<Queued>,
    proxies: HashMap<String, ProxyHandle>,
    /// Permits for NatHoleVisitor requests in flight ([`NATHOLE_IN_FLIGHT`]).
    nathole_slots: Arc<tokio::sync::Semaphore>,
    /// The client as server plugins see it.
    plugin_user: Arc<UserInfo>,
}

impl Control {
    async fn run(&mut self, mut rx: Messages) {
        use futures::StreamExt;
        let hb_timeout = self.shared.cfg.transport.heartbeat_timeout;
        let limit = Duration::from_secs(hb_timeout.max(0) as u64);
        // One deadline per session, pushed back by each Ping: an idle client costs a timer
        // wake-up per heartbeat, not one a second (issue 21; frp checks every second).
        let expiry = tokio::time::sleep(limit);
        tokio::pin!(expiry);
        loop {
            tokio::select! {
                _ = self.token.cancelled() => return,
                m = rx.next() => match m {
                    Some(Ok(m)) => {
                        if let Message::Ping(_) = &*m {
                            expiry.as_mut().reset(Instant::now() + limit);
                        }
                        // Boxed: the loop waits with a small state, not with the largest
                        // handler's (proxy start, plugin calls) for every idle client. The
                        // heartbeat deadline holds while it runs: a handler can wait up to
                        // SEND_TIMEOUT for a client that stopped reading.
                        let handled = Box::pin(self.handle(*m));
                        tokio::select! {
                            () = handled => {}
                            () = &mut expiry, if hb_timeout > 0 => {
                                warn!("heartbeat timeout, closing client session");
                                return;
                            }
                        }
                    }
                    Some(Err(e)) if e.is_closed() => {
                        debug!(error = %e, "control connection closed by client");
                        return;
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, "closing control connection: bad message from client");
                        return;
                    }
                    None => return,
                },
                () = &mut expiry, if hb_timeout > 0 => {
                    warn!("heartbeat timeout, closing client session");
                    return;
                }
            }
        }
    }

    /// Queues a message for the client. The wait for room is bounded and cancellation wins,
    /// so a client that stops reading cannot stall this loop (heartbeat checks, closing).
    async fn send(&self, m: impl Into<Message>) {
        tokio::select! {
            _ = self.token.cancelled() => {}
            r = tokio::time::timeout(SEND_TIMEOUT, self.ctl_tx.send(Box::new(m.into()))) => {
                if r.is_err() {
                    warn!("client has not read its control channel for {SEND_TIMEOUT:?}, closing session");
                    self.token.cancel();
                }
            }
        }
    }

    async fn handle(&mut self, m: Message) {
        match m {
            Message::NewProxy(np) => {
                let resp = self.new_proxy(np).await;
                self.send(resp).await;
            }
            Message::CloseProxy(CloseProxy { proxy_name }) => {
                if let Some(p) = self.proxies.remove(&proxy_name) {
                    p.close().await;
                    info!(proxy = %proxy_name, "proxy closed");
                    self.shared
                        .plugins
                        .close_proxy(&self.plugin_user, &proxy_name);
                }
            }
            Message::Ping(ping) => {
                let pong = match self.shared.plugins.ping(&self.plugin_user, ping).await {
                    Ok(ping) => self.check_ping(&ping).await,
                    Err(e) => {
                        warn!(error = %e, "received invalid ping");
                        let error = if self.shared.cfg.detailed_errors_to_client {
                            e.client_text()
                        } else {
                            "invalid ping".into()
                        };
                        Pong { error }
                    }
                };
                self.send(pong).await;
            }
            // frp handles these asynchronously: a visitor's request waits for the proxy side.
            Message::NatHoleVisitor(m) => {
                let Ok(slot) = self.nathole_slots.clone().try_acquire_owned() else {
                    self.shared.nathole.refuse_busy(&m, &self.ctl_tx);
                    self.shared.metrics.refused("xtcp_visitor", "busy");
                    return;
                };
                let (nathole, tx, user, token) = (
                    self.shared.nathole.clone(),
                    self.ctl_tx.clone(),
                    self.user.clone(),
                    self.token.clone(),
                );
                let metrics = self.shared.metrics.clone();
                let fut = async move {
                    if let Some(reason) = nathole.handle_visitor(m, tx, &user, token).await {
                        metrics.refused("xtcp_visitor", reason);
                    }
                    drop(slot);
                };
                self.shared.tracker.spawn(fut.in_current_span());
            }
            Message::NatHoleClient(m) => {
                let owns = |name: &str| self.proxies.contains_key(name);
                self.shared
                    .nathole
                    .handle_client(m, self.ctl_tx.clone(), owns)
            }
            Message::NatHoleReport(m) => {
                let owns = |name: &str| self.proxies.contains_key(name);
                self.shared.nathole.handle_report(&m, owns)
            }
            Message::NewVisitorConn(m) => warn!(
                proxy = %m.proxy_name,
                "NewVisitorConn on the control connection ignored: a visitor opens a new connection for it"
            ),
            other => debug!(msg = other.name(), "ignoring message with no handler"),
        }
    }

    async fn check_ping(&self, ping: &Ping) -> Pong {
        if self.shared.cfg.auth.has_scope("HeartBeats") {
            if let Err(error) = self
                .shared
                .auth
                .scoped(ping.timestamp, &ping.privilege_key)
                .await
            {
                warn!(%error, "invalid heartbeat authentication");
                return Pong { error };
            }
        }
        Pong::default()
    }

    async fn new_proxy(&mut self, np: NewProxy) -> NewProxyResp {
        // Server plugins first: frps registers the proxy they return (frp `handleNewProxy`).
        let asked = np.proxy_name.clone();
        let np = match self.shared.plugins.new_proxy(&self.plugin_user, np).await {
            Ok(np) => np,
            Err(e) => {
                let name = asked;
                warn!(proxy = %name, error = %e, "new proxy refused by a server plugin");
                self.shared.metrics.refused("new_proxy", "plugin");
                let error = if self.shared.cfg.detailed_errors_to_client {
                    e.client_text()
                } else {
                    format!("new proxy [{name}] error")
                };
                return NewProxyResp {
                    proxy_name: name,
                    remote_addr: String::new(),
                    error,
                };
            }
        };
        let name = np.proxy_name.clone();
        match self.start_proxy(np).await {
            Ok((handle, remote_addr)) => {
                info!(proxy = %name, %remote_addr, "new proxy success");
                self.proxies.insert(name.clone(), handle);
                NewProxyResp {
                    proxy_name: name,
                    remote_addr,
                    error: String::new(),
                }
            }
            Err(e) => {
                warn!(proxy = %name, error = %e, "new proxy failed");
                self.shared.metrics.refused("new_proxy", e.reason());
                let error = if self.shared.cfg.detailed_errors_to_client {
                    e.to_string()
                } else {
                    format!("new proxy [{name}] error")
                };
                NewProxyResp {
                    proxy_name: name,
                    remote_addr: String::new(),
                    error,
                }
            }
        }
    }

    async fn start_proxy(&mut self, mut np: NewProxy) -> Result<(ProxyHandle, String), ProxyError> {
        if np.proxy_type.is_empty() {
            np.proxy_type = "tcp".into();
        }
        let max_ports = self.shared.cfg.max_ports_per_client;
        if matches!(np.proxy_type.as_str(), "tcp" | "udp") && max_ports > 0 {
            let used = self.proxies.values().filter(|p| p.uses_port()).count() as i64;
            if used >= max_ports {
                return Err(ProxyError::ExceedMaxPorts);
            }
        }
        let name_guard = self
            .shared
            .registry
            .claim_name(&np.proxy_name)
            .ok_or_else(|| ProxyError::AlreadyExists(np.proxy_name.clone()))?;
        let ctx = ProxyCtx {
            name: np.proxy_name.clone(),
            user: self.user.clone(),
            pool: self.pool.clone(),
            wrap: WrapOpts {
                encryption_key: np.use_encryption.then_some(self.shared.key),
                compress: np.use_compression,
                limit: server_limit(&np)?,
            },
            token: self.token.child_token(),
            shared: self.shared.clone(),
            kind: np.proxy_type.clone(),
            plugin_user: (*self.plugin_user).clone(),
        };
        // Only a proxy that started is recorded (dashboard, series): a refused one leaves
        // nothing, and cannot overwrite the record another client left under its name.
        let metrics = &self.shared.metrics;
        let traffic = metrics.traffic_for(&np.proxy_name, &np.proxy_type);
        let (mut handle, remote_addr) = proxy::start(&np, ctx, name_guard, traffic.clone()).await?;
        let owner = Owner {
            user: &self.user,
            client_id: &self.client_id,
        };
        metrics.proxy_started(&np, owner, &traffic, &remote_addr);
        handle.record_close(metrics.clone());
        Ok((handle, remote_addr))
    }
}

/// `bandwidthLimitMode = "server"`: one limiter for the proxy, on the plaintext.
fn server_limit(np: &NewProxy) -> Result<Option<(Arc<Limiter>, LimitAt)>, ProxyError> {
    let bytes =
        common::config::parse_bandwidth(&np.bandwidth_limit).map_err(ProxyError::BadBandwidth)?;
    Ok((np.bandwidth_limit_mode == "server" && bytes > 0)
        .then(|| (Limiter::new(bytes), LimitAt::Plain)))
}
