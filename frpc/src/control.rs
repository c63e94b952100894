//! One logged-in session (frp `client/control.go`): sends NewProxy for each proxy, answers
//! `ReqWorkConn` by opening a work connection, tracks NewProxyResp, heartbeats when enabled.
//!
//! Tasks: reader (frames -> channel), writer (channel -> frames) and this loop, which owns the
//! session state. Ending the loop cancels the session token: the yamux session, every work
//! connection and every joined user connection under it close.

use crate::connector::{Connector, KCP_CLOSE_GRACE, KCP_FLUSH};
use crate::health::{self, HealthEvent, HealthSpec};
use crate::proxy::Proxies;
use crate::reload::{diff, Change};
use crate::status::{Phase, ProxyStatus, StatusBoard};
use common::auth::unix_now;
use common::config::ClientConfig;
use common::io::{secure_control, BoxStream, Side};
use common::msg::{v2, CloseProxy, Message, NewProxy, NewProxyResp, NewWorkConn, Ping, Wire};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

const SEND_QUEUE: usize = 100;
/// frp's proxy-wrapper check period and its re-send delays.
const CHECK_EVERY: Duration = Duration::from_secs(3);
const WAIT_START_RESEND: Duration = Duration::from_secs(20);
const START_ERROR_RESEND: Duration = Duration::from_secs(30);

/// A session after a successful login.
pub(crate) struct Session {
    /// The config whose proxies this session runs; replaced on reload.
    cfg: Arc<ClientConfig>,
    config_rx: watch::Receiver<Arc<ClientConfig>>,
    connector: Connector,
    run_id: String,
    status: StatusBoard,
    visitor_status: StatusBoard,
    metrics: Arc<crate::metrics::ClientMetrics>,
    auth: crate::auth::Auth,
}

/// What the session loop owns besides the config.
struct State {
    phases: HashMap<String, (Phase, Instant)>,
    /// Health monitors by proxy, stopped when the proxy goes.
    monitors: HashMap<String, CancellationToken>,
    out: mpsc::Sender<Message>,
    health_tx: mpsc::Sender<HealthEvent>,
    proxies: Arc<Proxies>,
    token: CancellationToken,
    span: tracing::Span,
}

impl Session {
    pub(crate) fn new(
        config_rx: watch::Receiver<Arc<ClientConfig>>,
        connector: Connector,
        run_id: String,
        (status, visitor_status): (StatusBoard, StatusBoard),
        metrics: Arc<crate::metrics::ClientMetrics>,
        auth: crate::auth::Auth,
    ) -> Self {
        let cfg = config_rx.borrow().clone();
        Session {
            cfg,
            config_rx,
            connector,
            run_id,
            status,
            visitor_status,
            metrics,
            auth,
        }
    }

    /// Runs until the server goes away or the session token is cancelled.
    pub(crate) async fn run(mut self, stream: BoxStream, negotiated: Option<v2::Negotiated>) {
        let token = self.connector.token.clone();
        let wire = crate::wire(&self.cfg);
        let secured = match secure_control(
            stream,
            &self.cfg.auth.token,
            negotiated.as_ref(),
            Side::Client,
        ) {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot set up the control channel encryption");
                return;
            }
        };
        let (rd, wr) = tokio::io::split(secured);
        let (out_tx, out_rx) = mpsc::channel::<Message>(SEND_QUEUE);
        let (in_tx, mut in_rx) = mpsc::channel::<Message>(SEND_QUEUE);
        let span = tracing::info_span!("session", run_id = %self.run_id);
        tokio::spawn(reader(rd, wire, in_tx, token.clone()).instrument(span.clone()));
        let writer_stop = CancellationToken::new();
        let mut writing = tokio::spawn(
            writer(wr, wire, out_rx, token.clone(), writer_stop.clone()).instrument(span.clone()),
        );

        let (health_tx, mut health_rx) = mpsc::channel::<HealthEvent>(16);
        let nat = crate::xtcp::NatLink::new(out_tx.clone());
        let mut st = State {
            phases: HashMap::new(),
            monitors: HashMap::new(),
            out: out_tx,
            health_tx,
            proxies: Arc::new(Proxies::new(&self.cfg, self.metrics.clone(), nat.clone())),
            token: token.clone(),
            span: span.clone(),
        };
        let cfg = self.cfg.clone();
        for p in cfg.active_proxies() {
            self.start_proxy(&mut st, p).await;
        }
        let vctx = crate::visitor::Ctx::new(
            &cfg,
            self.connector.clone(),
            self.run_id.clone(),
            self.metrics.clone(),
            self.visitor_status.clone(),
            nat.clone(),
        );
        let mut visitors = crate::visitor::Visitors::new(vctx, token.child_token());
        for v in cfg.active_visitors() {
            visitors.start(v).await;
        }

        let t = &self.cfg.transport;
        let hb =
            (t.heartbeat_interval > 0).then(|| Duration::from_secs(t.heartbeat_interval as u64));
        let hb_timeout = (t.heartbeat_interval > 0 && t.heartbeat_timeout > 0)
            .then(|| Duration::from_secs(t.heartbeat_timeout as u64));
        let mut hb_tick = tokio::time::interval(hb.unwrap_or(Duration::from_secs(3600)));
        hb_tick.tick().await;
        let mut check = tokio::time::interval(CHECK_EVERY);
        let mut last_pong = Instant::now();
        let mut reloads = true;

        async {
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    m = in_rx.recv() => match m {
                        None => break,
                        Some(Message::ReqWorkConn(_)) => {
                            let fut = work_conn(self.connector.clone(), self.cfg.clone(), self.auth.clone(), self.run_id.clone(), st.proxies.clone());
                            tokio::spawn(fut.in_current_span());
                        }
                        Some(Message::NewProxyResp(r)) => self.on_new_proxy_resp(r, &mut st.phases),
                        Some(Message::NatHoleResp(r)) => nat.deliver(r),
                        Some(Message::Pong(p)) => {
                            if !p.error.is_empty() {
                                warn!(error = %p.error, "heartbeat refused by server, closing session");
                                break;
                            }
                            last_pong = Instant::now();
                        }
                        Some(other) => debug!(msg = other.name(), "ignoring message with no handler"),
                    },
                    Some(ev) = health_rx.recv() => self.on_health(ev, &mut st.phases, &st.out).await,
                    r = self.config_rx.changed(), if reloads => match r {
                        Ok(()) => {
                            let new = self.config_rx.borrow_and_update().clone();
                            visitors.apply(&self.cfg, &new).await;
                            self.apply(&mut st, new).await;
                        }
                        Err(_) => reloads = false,
                    },
                    _ = hb_tick.tick(), if hb.is_some() => {
                        let ping = if self.cfg.auth.has_scope("HeartBeats") {
                            let ts = unix_now();
                            match self.auth.privilege_key(ts).await {
                                Ok(k) => Some(Ping { privilege_key: k, timestamp: ts }),
                                Err(e) => {
                                    warn!(error = %e, "cannot get a token for the heartbeat");
                                    None
                                }
                            }
                        } else {
                            Some(Ping::default())
                        };
                        if let Some(ping) = ping {
                            let _ = st.out.send(ping.into()).await;
                        }
                    }
                    _ = check.tick() => {
                        if hb_timeout.is_some_and(|t| last_pong.elapsed() > t) {
                            warn!("heartbeat timeout, closing session");
                            break;
                        }
                        self.resend_stuck(&mut st.phases, &st.out).await;
                    }
                }
            }
        }
        .instrument(span)
        .await;
        // frp's GracefulClose: a CloseProxy for each proxy frps has, before the session
        // closes. Over KCP without tcpMux it is the only close a Go frps sees.
        for (name, (phase, _)) in &st.phases {
            if matches!(phase, Phase::Running | Phase::WaitStart | Phase::StartError) {
                let m = CloseProxy {
                    proxy_name: self.cfg.wire_name(name),
                };
                let _ = st.out.try_send(m.into());
            }
        }
        writer_stop.cancel();
        if tokio::time::timeout(KCP_CLOSE_GRACE, &mut writing)
            .await
            .is_err()
        {
            writing.abort();
        }
        if self.cfg.transport.protocol == "kcp" && !self.cfg.transport.tcp_mux {
            // KCP sends what was written on its next ticks.
            tokio::time::sleep(KCP_FLUSH).await;
        }
        visitors.close().await;
        self.connector.close();
        for (name, (phase, _)) in &st.phases {
            if *phase != Phase::CheckFailed {
                self.set_status(name, Phase::WaitStart, "", "session closed");
            }
        }
    }

    /// Starts one proxy: registers it now, or after its first good health check; not at all
    /// when it uses a key frp-rs cannot act on yet (its status names the key).
    async fn start_proxy(&self, st: &mut State, p: &common::config::ProxyConfig) {
        if let Some(error) = refused(p) {
            warn!(proxy = %p.name, %error, "proxy not started");
            self.set_status(&p.name, Phase::StartError, "", &error);
            return;
        }
        if let Err(e) = st.proxies.set(p, &self.cfg) {
            let error = e.to_string();
            warn!(proxy = %p.name, %error, "proxy not started");
            self.set_status(&p.name, Phase::StartError, "", &error);
            return;
        }
        // frp: a monitor exists only with a check type and a local port; until its first good
        // check the proxy is not registered.
        if !p.health_check.kind.is_empty() && p.local_port > 0 {
            let spec = HealthSpec {
                name: p.name.clone(),
                check: p.health_check.clone(),
                host: p.local_ip.clone(),
                port: p.local_port,
            };
            let mt = st.token.child_token();
            tokio::spawn(
                health::monitor(spec, st.health_tx.clone(), mt.clone()).instrument(st.span.clone()),
            );
            st.monitors.insert(p.name.clone(), mt);
            st.phases
                .insert(p.name.clone(), (Phase::New, Instant::now()));
            self.set_status(&p.name, Phase::New, "", "");
            return;
        }
        let _ = st.out.send(self.new_proxy_msg(p).into()).await;
        st.phases
            .insert(p.name.clone(), (Phase::WaitStart, Instant::now()));
        self.set_status(&p.name, Phase::WaitStart, "", "");
    }

    /// Stops one proxy: CloseProxy if frps has (or may have) it, and forget it here.
    async fn stop_proxy(&self, st: &mut State, name: &str) {
        if let Some(t) = st.monitors.remove(name) {
            t.cancel();
        }
        if let Some((phase, _)) = st.phases.remove(name) {
            if matches!(phase, Phase::Running | Phase::WaitStart | Phase::StartError) {
                let _ = st
                    .out
                    .send(
                        CloseProxy {
                            proxy_name: self.cfg.wire_name(name),
                        }
                        .into(),
                    )
                    .await;
            }
        }
        st.proxies.remove(name);
        self.status.remove(name);
    }

    /// Applies a reloaded config: only what [`diff`] reports is touched.
    async fn apply(&mut self, st: &mut State, new: Arc<ClientConfig>) {
        let changes = diff(&self.cfg, &new);
        for change in &changes {
            match change {
                Change::Remove(name) => {
                    info!(proxy = %name, "reload: proxy removed");
                    self.stop_proxy(st, name).await;
                }
                Change::Update(name) => {
                    info!(proxy = %name, "reload: proxy changed, restarting it");
                    self.stop_proxy(st, name).await;
                }
                Change::Add(_) => {}
            }
        }
        self.cfg = new.clone();
        for change in &changes {
            if let Change::Add(name) | Change::Update(name) = change {
                if let Some(p) = new.active_proxies().find(|p| &p.name == name) {
                    info!(proxy = %name, "reload: starting proxy");
                    self.start_proxy(st, p).await;
                }
            }
        }
    }

    /// NewProxy with the fields frp sends for this type (frp `MarshalToMsg`; frp-protocol.md §5.1).
    fn new_proxy_msg(&self, p: &common::config::ProxyConfig) -> NewProxy {
        let mut m = NewProxy {
            proxy_name: self.cfg.wire_name(&p.name),
            proxy_type: p.kind.clone(),
            use_encryption: p.transport.use_encryption,
            use_compression: p.transport.use_compression,
            bandwidth_limit: p.transport.bandwidth_limit.clone(),
            // Sent only when not "client".
            bandwidth_limit_mode: if p.transport.bandwidth_limit_mode == "client" {
                String::new()
            } else {
                p.transport.bandwidth_limit_mode.clone()
            },
            group: p.load_balancer.group.clone(),
            group_key: p.load_balancer.group_key.0.clone(),
            metas: p.metadatas.clone(),
            annotations: p.annotations.clone(),
            ..Default::default()
        };
        match p.kind.as_str() {
            "tcp" | "udp" => m.remote_port = i64::from(p.remote_port),
            "http" => {
                m.custom_domains = p.custom_domains.clone();
                m.subdomain = p.subdomain.clone();
                m.locations = p.locations.clone();
                m.host_header_rewrite = p.host_header_rewrite.clone();
                m.http_user = p.http_user.clone();
                m.http_pwd = p.http_password.0.clone();
                m.headers = p.request_headers.set.clone();
                m.response_headers = p.response_headers.set.clone();
                m.route_by_http_user = p.route_by_http_user.clone();
            }
            "https" => {
                m.custom_domains = p.custom_domains.clone();
                m.subdomain = p.subdomain.clone();
            }
            "tcpmux" => {
                m.custom_domains = p.custom_domains.clone();
                m.subdomain = p.subdomain.clone();
                m.multiplexer = p.multiplexer.clone();
                m.http_user = p.http_user.clone();
                m.http_pwd = p.http_password.0.clone();
                m.route_by_http_user = p.route_by_http_user.clone();
            }
            "stcp" | "sudp" | "xtcp" => {
                m.sk = p.secret_key.0.clone();
                m.allow_users = p.allow_users.clone();
            }
            _ => {}
        }
        m
    }

    fn set_status(&self, name: &str, phase: Phase, remote_addr: &str, error: &str) {
        let kind = self
            .cfg
            .proxies
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.kind.clone())
            .unwrap_or_default();
        self.status.set(ProxyStatus {
            name: name.into(),
            kind,
            phase,
            remote_addr: remote_addr.into(),
            error: error.into(),
        });
    }

    fn on_new_proxy_resp(&self, r: NewProxyResp, phases: &mut HashMap<String, (Phase, Instant)>) {
        let name = strip_user(&self.cfg.user, &r.proxy_name).to_owned();
        let Some(entry) = phases.get_mut(&name) else {
            debug!(proxy = %r.proxy_name, "NewProxyResp for unknown proxy");
            return;
        };
        if entry.0 != Phase::WaitStart {
            debug!(proxy = %name, "late NewProxyResp ignored");
            return;
        }
        if r.error.is_empty() {
            info!(proxy = %name, remote_addr = %r.remote_addr, "start proxy success");
            *entry = (Phase::Running, Instant::now());
            self.set_status(&name, Phase::Running, &r.remote_addr, "");
        } else {
            warn!(proxy = %name, error = %r.error, "start proxy error");
            *entry = (Phase::StartError, Instant::now());
            self.set_status(&name, Phase::StartError, "", &r.error);
        }
    }

    /// A health state change: register the proxy when it becomes healthy, close it on frps when
    /// it fails (frp `proxy_wrapper.go` `checkWorker` callbacks).
    async fn on_health(
        &self,
        ev: HealthEvent,
        phases: &mut HashMap<String, (Phase, Instant)>,
        out: &mpsc::Sender<Message>,
    ) {
        let Some(p) = self.cfg.active_proxies().find(|p| p.name == ev.name) else {
            return;
        };
        let Some(entry) = phases.get_mut(&ev.name) else {
            return;
        };
        let failed = format!("health check failed: {}", ev.reason);
        match (ev.healthy, entry.0) {
            (true, Phase::New | Phase::CheckFailed) => {
                info!(proxy = %ev.name, "health check success, starting proxy");
                *entry = (Phase::WaitStart, Instant::now());
                let _ = out.send(self.new_proxy_msg(p).into()).await;
                self.set_status(&ev.name, Phase::WaitStart, "", "");
            }
            (false, Phase::Running | Phase::WaitStart | Phase::StartError) => {
                warn!(proxy = %ev.name, reason = %ev.reason, "health check failed, closing proxy");
                *entry = (Phase::CheckFailed, Instant::now());
                let _ = out
                    .send(
                        CloseProxy {
                            proxy_name: self.cfg.wire_name(&ev.name),
                        }
                        .into(),
                    )
                    .await;
                self.set_status(&ev.name, Phase::CheckFailed, "", &failed);
            }
            (false, Phase::New) => {
                *entry = (Phase::CheckFailed, Instant::now());
                self.set_status(&ev.name, Phase::CheckFailed, "", &failed);
            }
            _ => {}
        }
    }

    /// frp's proxy-wrapper retries: re-send NewProxy after 20 s without an answer, or 30 s
    /// after an error.
    async fn resend_stuck(
        &self,
        phases: &mut HashMap<String, (Phase, Instant)>,
        out: &mpsc::Sender<Message>,
    ) {
        for p in self.cfg.active_proxies() {
            let Some((phase, since)) = phases.get_mut(&p.name) else {
                continue;
            };
            let due = match phase {
                Phase::WaitStart => since.elapsed() >= WAIT_START_RESEND,
                Phase::StartError => since.elapsed() >= START_ERROR_RESEND,
                _ => false,
            };
            if due {
                debug!(proxy = %p.name, "re-sending NewProxy");
                *phase = Phase::WaitStart;
                *since = Instant::now();
                let _ = out.send(self.new_proxy_msg(p).into()).await;
            }
        }
    }
}

/// Why a proxy must not start: the unsupported keys it uses (`config::support`), if any.
pub(crate) fn refused(p: &common::config::ProxyConfig) -> Option<String> {
    common::config::refusal(&common::config::proxy_unsupported(p))
}

/// frpc strips exactly one `user.` prefix from names frps sends back.
pub(crate) fn strip_user<'a>(user: &str, name: &'a str) -> &'a str {
    if user.is_empty() {
        return name;
    }
    name.strip_prefix(user)
        .and_then(|r| r.strip_prefix('.'))
        .unwrap_or(name)
}

async fn reader<R: tokio::io::AsyncRead + Unpin>(
    mut rd: R,
    wire: Wire,
    tx: mpsc::Sender<Message>,
    token: CancellationToken,
) {
    loop {
        let r = tokio::select! {
            _ = token.cancelled() => return,
            r = wire.read(&mut rd) => r,
        };
        match r {
            Ok(m) => {
                if tx.send(m).await.is_err() {
                    return;
                }
            }
            Err(e) if e.is_closed() => {
                debug!(error = %e, "control connection closed by server");
                return;
            }
            Err(e) => {
                warn!(error = %e, "closing session: bad message from server");
                return;
            }
        }
    }
}

async fn writer<W: tokio::io::AsyncWrite + Unpin>(
    mut wr: W,
    wire: Wire,
    mut rx: mpsc::Receiver<Message>,
    token: CancellationToken,
    stop: CancellationToken,
) {
    loop {
        let m = tokio::select! {
            // What is queued (the closing CloseProxy messages) is still written.
            _ = stop.cancelled() => match rx.try_recv() { Ok(m) => m, Err(_) => return },
            m = rx.recv() => match m { Some(m) => m, None => return },
        };
        if let Err(e) = wire.write(&mut wr, &m).await {
            debug!(error = %e, "control write failed");
            token.cancel();
            return;
        }
    }
}

/// Answers one ReqWorkConn (frp `handleReqWorkConn`): open a logical connection, send
/// NewWorkConn, wait (without limit, as frp) for StartWorkConn, then hand it to its proxy.
async fn work_conn(
    connector: Connector,
    cfg: Arc<ClientConfig>,
    auth: crate::auth::Auth,
    run_id: String,
    proxies: Arc<Proxies>,
) {
    let token = connector.token.child_token();
    let mut conn = match connector.connect().await {
        Ok(c) => c,
        Err(e) => {
            debug!(error = %e, "open work connection failed");
            return;
        }
    };
    let mut m = NewWorkConn {
        run_id,
        ..Default::default()
    };
    if cfg.auth.has_scope("NewWorkConns") {
        m.timestamp = unix_now();
        m.privilege_key = match auth.privilege_key(m.timestamp).await {
            Ok(k) => k,
            Err(e) => {
                warn!(error = %e, "cannot get a token for the work connection");
                return;
            }
        };
    }
    let wire = crate::wire(&cfg);
    let sent = async {
        if wire == Wire::V2 {
            conn.write_all(&v2::MAGIC).await?;
        }
        wire.write(&mut conn, &m.into()).await
    };
    if let Err(e) = sent.await {
        debug!(error = %e, "send NewWorkConn failed");
        return;
    }
    let start = tokio::select! {
        _ = token.cancelled() => return,
        r = wire.read(&mut conn) => r,
    };
    match start {
        Ok(Message::StartWorkConn(s)) if s.error.is_empty() => {
            let name = strip_user(&cfg.user, &s.proxy_name).to_owned();
            proxies.handle_work_conn(&name, s, conn, token).await;
        }
        Ok(Message::StartWorkConn(s)) => warn!(error = %s.error, "server refused work connection"),
        Ok(other) => warn!(
            msg = other.name(),
            "expected StartWorkConn on work connection"
        ),
        Err(e) if e.is_closed() => debug!("work connection closed before use"),
        Err(e) => warn!(error = %e, "bad StartWorkConn"),
    }
}

#[cfg(test)]
mod tests {
    use super::strip_user;

    #[test]
    fn strips_one_user_prefix() {
        assert_eq!(strip_user("u", "u.ssh"), "ssh");
        assert_eq!(strip_user("u", "u.u.ssh"), "u.ssh");
        assert_eq!(strip_user("", "u.ssh"), "u.ssh");
        assert_eq!(strip_user("u", "ussh"), "ussh");
    }
}
