//! frpc's main loop (frp `client/service.go`): log in, run the session until it ends, log in
//! again with the same run_id and backoff (1 s doubling to 10 s on the first run, 20 s after).

use crate::connector::{Connector, Dialer};
use crate::control::Session;
use crate::status::{ProxyStatus, StatusBoard};
use common::auth::unix_now;
use common::backoff::Backoff;
use common::config::ClientConfig;
use common::msg::{v2, DecodeError, Login, Message, Wire};
use common::transport::dial::DialSetupError;
use common::transport::{cause_of, mux, tls};
use common::FRP_VERSION;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// frp reads LoginResp with this deadline.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

impl ClientError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ClientError::Connect { .. } => "connect",
            ClientError::Refused(_) => "refused",
            ClientError::Protocol(_) => "protocol",
            ClientError::Tls(_)
            | ClientError::TlsHandshake(_)
            | ClientError::Transport(DialSetupError::Tls(_)) => "tls",
            ClientError::Transport(_) => "transport",
            ClientError::Admin(_) => "admin",
            ClientError::Watch(_) => "watch",
            ClientError::Auth(_) => "auth",
            ClientError::Unsupported(_) => "unsupported",
            ClientError::Dns(_) => "dns",
        }
    }
}

/// Why frpc stopped or a login failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect to server {addr}: {error}")]
    Connect { addr: String, error: std::io::Error },
    #[error("login to server failed: {0}")]
    Refused(String),
    #[error("login to server failed: {0}")]
    Protocol(String),
    #[error("transport.tls: {0}")]
    Tls(common::transport::tls::TlsError),
    /// frps refused the TLS handshake, or its certificate was not accepted.
    #[error("login to server failed: TLS handshake with frps failed: {0}")]
    TlsHandshake(String),
    /// The transport settings cannot be used (names the key).
    #[error(transparent)]
    Transport(DialSetupError),
    #[error(transparent)]
    Auth(#[from] common::oidc::OidcError),
    #[error("watch config: {0}")]
    Watch(String),
    #[error("admin API: {0}")]
    Admin(common::http::WebError),
    /// The config uses a key whose feature frp-rs does not have yet (`config::support`).
    #[error("{0}")]
    Unsupported(String),
    #[error("dnsServer {0}")]
    Dns(common::dns::DnsError),
}

common::from_cause!(common::http::WebError => ClientError::Admin);
common::from_cause!(common::transport::tls::TlsError => ClientError::Tls);
common::from_cause!(DialSetupError => ClientError::Transport);
common::from_cause!(common::dns::DnsError => ClientError::Dns);

/// An frpc instance.
#[derive(Debug)]
pub struct Client {
    cfg: Arc<ClientConfig>,
    status: StatusBoard,
    /// The visitors' states (`running`, or `start error` with why).
    visitor_status: StatusBoard,
    /// The proxies to run; sessions follow it (hot reload).
    reloader: Reloader,
    /// The file `/api/reload` re-reads, and how.
    config_path: Option<(std::path::PathBuf, common::config::LoadOptions)>,
    metrics: Arc<crate::metrics::ClientMetrics>,
    /// What the admin API's clients may hold.
    web_limits: common::http::WebLimits,
    /// The host of the frps of the current session, for the admin API's status.
    server_host: Arc<std::sync::Mutex<String>>,
}

impl Client {
    /// # Panics
    /// Never in practice: registering the fixed set of metric names cannot collide.
    pub fn new(cfg: ClientConfig) -> Self {
        let reloader = Reloader::new(cfg);
        let cfg = reloader.current();
        let status = StatusBoard::default();
        for p in cfg.active_proxies() {
            status.set(ProxyStatus::initial(
                &p.name,
                &p.kind,
                crate::control::refused(p),
            ));
        }
        let visitor_status = StatusBoard::default();
        for v in cfg.active_visitors() {
            visitor_status.set(ProxyStatus::initial(
                &v.name,
                &v.kind,
                crate::visitor::refused(v),
            ));
        }
        let first_server = cfg.servers().into_iter().next().map(|s| s.0);
        Client {
            server_host: Arc::new(std::sync::Mutex::new(first_server.unwrap_or_default())),
            cfg,
            status,
            visitor_status,
            reloader,
            config_path: None,
            web_limits: Default::default(),
            #[allow(clippy::expect_used)] // fixed, distinct metric names
            metrics: Arc::new(
                crate::metrics::ClientMetrics::new().expect("metric names are distinct"),
            ),
        }
    }

    /// The config file the admin API's reload re-reads (with the options it was loaded with).
    pub fn with_config_path(
        mut self,
        path: std::path::PathBuf,
        opts: common::config::LoadOptions,
    ) -> Self {
        self.config_path = Some((path, opts));
        self
    }

    fn config_source(&self) -> Option<crate::reload::ConfigSource> {
        self.config_path
            .as_ref()
            .map(|(path, opts)| crate::reload::ConfigSource {
                path: path.clone(),
                opts: opts.clone(),
            })
    }

    /// Other bounds for the admin API than [`common::http::WebLimits::default`].
    pub fn with_web_limits(mut self, limits: common::http::WebLimits) -> Self {
        self.web_limits = limits;
        self
    }

    /// Reloads on changes to the config file or its includes (`--watch`), until `shutdown`.
    pub fn watch_config(&self, shutdown: &CancellationToken) -> Result<(), ClientError> {
        let Some(source) = self.config_source() else {
            return Ok(());
        };
        crate::watch::spawn(source, self.reloader(), shutdown.child_token())
            .map_err(|e| ClientError::Watch(e.to_string()))
    }

    /// A handle that applies a new config to the running client (hot reload).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// The client's metrics (also served at `/metrics` on the admin API).
    pub fn metrics(&self) -> Arc<crate::metrics::ClientMetrics> {
        self.metrics.clone()
    }

    /// The proxies' states; stays valid while `run` runs.
    pub fn status(&self) -> StatusBoard {
        self.status.clone()
    }

    /// The visitors' states.
    pub fn visitor_status(&self) -> StatusBoard {
        self.visitor_status.clone()
    }

    /// Runs until `shutdown` is cancelled. Returns an error only when the first login fails
    /// and `loginFailExit` is on (frp's default).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ClientError> {
        // Keys frp-rs cannot act on yet stop frpc rather than be run as if absent.
        let global = common::config::client_global_unsupported(&self.cfg);
        if let Some(why) = common::config::refusal(&global) {
            return Err(ClientError::Unsupported(why));
        }
        if !self.cfg.dns_server.is_empty() {
            let server = common::dns::set_server(&self.cfg.dns_server).await?;
            info!(%server, "dnsServer: names are resolved by this server (after the hosts file)");
        }
        for v in self.cfg.active_visitors() {
            if let Some(why) = crate::visitor::refused(v) {
                error!(visitor = %v.name, "visitor not started: {why}");
            }
        }
        let dialer = Dialer::new(self.cfg.clone())?;
        let auth = crate::auth::Auth::new(&self.cfg.auth)?;
        let wire = crate::wire(&self.cfg);
        if let Some(w) = common::msg::udp::packet_size_warning(self.cfg.udp_packet_size, wire) {
            warn!("{w}");
        }
        self.start_admin(&shutdown).await?;
        let mut run_id = String::new();
        let mut first = true;
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        // `serverAddrs` failover: the next frps is tried at once when one fails; the backoff
        // applies once every one has failed in a row, as with a single frps.
        let servers: Vec<Dialer> = self
            .cfg
            .servers()
            .into_iter()
            .map(|s| dialer.to(s))
            .collect();
        let mut at = 0;
        let mut failed_in_a_row = 0;
        loop {
            let dialer = &servers[at % servers.len()];
            let attempt = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                r = self.login(dialer, &auth, &run_id, shutdown.child_token()) => r,
            };
            match attempt {
                Ok((connector, stream, id, negotiated)) => {
                    failed_in_a_row = 0;
                    let server = dialer.server_label();
                    *self.server_host.lock().unwrap_or_else(|p| p.into_inner()) =
                        dialer.host().to_owned();
                    if first {
                        info!(run_id = %id, %server, "login to server success");
                    } else {
                        info!(run_id = %id, %server, "reconnected to server");
                        self.metrics.reconnects.inc();
                    }
                    first = false;
                    run_id = id.clone();
                    backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(20));
                    let closing = connector.clone();
                    Session::new(
                        self.reloader.tx.subscribe(),
                        connector,
                        id,
                        (self.status.clone(), self.visitor_status.clone()),
                        self.metrics.clone(),
                        auth.clone(),
                    )
                    .run(stream, negotiated)
                    .await;
                    if shutdown.is_cancelled() {
                        // KCP: the session's close reaches frps before frpc exits.
                        closing.drained().await;
                        return Ok(());
                    }
                    warn!(%server, "connection to server lost, reconnecting");
                    continue;
                }
                Err(e) => {
                    failed_in_a_row += 1;
                    let all_failed = failed_in_a_row >= servers.len();
                    if first && self.cfg.login_fail_exit && all_failed {
                        return Err(e);
                    }
                    self.metrics
                        .login_failures
                        .with_label_values(&[e.reason()])
                        .inc();
                    let server = dialer.server_label();
                    if servers.len() == 1 {
                        warn!(error = %e, "login to server failed, will retry");
                    } else if !all_failed {
                        at += 1;
                        warn!(error = %e, %server, "login to server failed, trying the next in serverAddrs");
                        continue;
                    } else {
                        at += 1;
                        failed_in_a_row = 0;
                        warn!(error = %e, %server, "login to server failed; every server in serverAddrs failed, will retry");
                    }
                }
            }
            let delay = backoff.next_delay();
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Starts the admin API when `webServer.port` is set (frp: 0 = off).
    async fn start_admin(&self, shutdown: &CancellationToken) -> Result<(), ClientError> {
        let web = &self.cfg.web_server;
        if web.port == 0 {
            return Ok(());
        }
        let listener = common::http::WebListener::bind(web)
            .await?
            .with_limits(self.web_limits);
        info!(addr = %format!("{}:{}", web.addr, web.port), "admin API listening");
        let admin = crate::admin::Admin {
            source: self.config_source(),
            reloader: self.reloader(),
            status: self.status.clone(),
            visitor_status: self.visitor_status.clone(),
            shutdown: shutdown.clone(),
            metrics: self.metrics.clone(),
            web: web.clone(),
            server_addr: self.server_host.clone(),
        };
        tokio::spawn(crate::admin::serve(
            listener,
            Arc::new(admin),
            shutdown.child_token(),
        ));
        Ok(())
    }

    async fn login(
        &self,
        dialer: &Dialer,
        auth: &crate::auth::Auth,
        run_id: &str,
        token: CancellationToken,
    ) -> Result<
        (
            Connector,
            common::io::BoxStream,
            String,
            Option<v2::Negotiated>,
        ),
        ClientError,
    > {
        let addr = dialer.server_label();
        let connector = dialer
            .open(token)
            .await
            .map_err(|e| login_io_error(&self.cfg, &addr, e))?;
        let io_err = |e| login_io_error(&self.cfg, &addr, connector.explain(e));
        let read_err = |e| match e {
            DecodeError::Io(e) => io_err(e),
            e => ClientError::Protocol(e.to_string()),
        };
        let result = async {
            let mut stream = connector.connect().await.map_err(io_err)?;
            let ts = unix_now();
            let privilege_key = auth.privilege_key(ts).await?;
            let login = Login {
                version: FRP_VERSION.into(),
                hostname: hostname(),
                os: std::env::consts::OS.into(),
                arch: go_arch().into(),
                user: self.cfg.user.clone(),
                privilege_key,
                timestamp: ts,
                run_id: run_id.to_owned(),
                client_id: self.cfg.client_id.clone(),
                metas: self.cfg.metadatas.clone(),
                client_spec: Default::default(),
                pool_count: self.cfg.transport.pool_count,
            };
            let wire = crate::wire(&self.cfg);
            let t = &self.cfg.transport;
            let negotiated = if wire == Wire::V2 {
                // Magic, ClientHello and Login back to back; then ServerHello and LoginResp.
                let chp = serde_json::to_vec(&v2::client_hello(t.tls.enable, t.tcp_mux))
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                stream.write_all(&v2::MAGIC).await.map_err(io_err)?;
                v2::write_frame(&mut stream, v2::FRAME_CLIENT_HELLO, &chp)
                    .await
                    .map_err(io_err)?;
                v2::write_msg(&mut stream, &login.into())
                    .await
                    .map_err(io_err)?;
                let (ty, shp) = tokio::time::timeout(LOGIN_TIMEOUT, v2::read_frame(&mut stream))
                    .await
                    .map_err(|_| ClientError::Protocol("no ServerHello within 10s".into()))?
                    .map_err(read_err)?;
                if ty != v2::FRAME_SERVER_HELLO {
                    return Err(ClientError::Protocol(format!(
                        "expected ServerHello, got frame type {ty}"
                    )));
                }
                let ch: v2::ClientHello = serde_json::from_slice(&chp)
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                let sh: v2::ServerHello = serde_json::from_slice(&shp)
                    .map_err(|e| ClientError::Protocol(format!("bad ServerHello: {e}")))?;
                let alg = v2::check_server_hello(&ch, &sh).map_err(ClientError::Refused)?;
                Some(v2::Negotiated {
                    alg,
                    transcript: v2::transcript(&chp, &shp),
                })
            } else {
                wire.write(&mut stream, &login.into())
                    .await
                    .map_err(io_err)?;
                None
            };
            let resp = tokio::time::timeout(LOGIN_TIMEOUT, wire.read(&mut stream))
                .await
                .map_err(|_| {
                    ClientError::Protocol(if self.cfg.transport.protocol == "kcp" {
                        // KCP has no handshake: a UDP port without frps's KCP says nothing.
                        format!(
                            "no LoginResp within 10s over KCP from UDP {addr}: is it frps's \
                             kcpBindPort, and does UDP get through?"
                        )
                    } else {
                        "no LoginResp within 10s".into()
                    })
                })?
                .map_err(read_err)?;
            match resp {
                Message::LoginResp(r) if !r.error.is_empty() => Err(ClientError::Refused(r.error)),
                Message::LoginResp(r) => Ok((stream, r.run_id, negotiated)),
                other => Err(ClientError::Protocol(format!(
                    "expected LoginResp, got {}",
                    other.name()
                ))),
            }
        }
        .await;
        match result {
            Ok((stream, id, negotiated)) => Ok((connector, stream, id, negotiated)),
            Err(e) => {
                connector.close();
                Err(e)
            }
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

/// Go's GOARCH spelling of the running architecture.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "mips" => "mips",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Applies reloaded configs to a running [`Client`]: proxies are diffed and only the changed
/// ones touched; global settings keep their running values (as frp). The config in force is
/// the file's with the store (`store.path`) laid over it.
#[derive(Debug, Clone)]
pub struct Reloader {
    tx: Arc<watch::Sender<Arc<ClientConfig>>>,
    layers: Arc<std::sync::Mutex<Layers>>,
}

#[derive(Debug)]
struct Layers {
    file: ClientConfig,
    store: Result<crate::store::Store, String>,
}

impl Layers {
    fn effective(&self) -> ClientConfig {
        match &self.store {
            Ok(s) => s.overlay(self.file.clone()),
            Err(_) => self.file.clone(),
        }
    }
}

impl Reloader {
    pub(crate) fn new(file: ClientConfig) -> Self {
        let store = if file.store.path.is_empty() {
            Err("the store is not enabled (set store.path)".to_owned())
        } else {
            crate::store::Store::open(std::path::Path::new(&file.store.path)).map_err(|e| {
                tracing::error!(error = %e, "store not loaded; its API is off");
                e.to_string()
            })
        };
        let layers = Layers { file, store };
        let tx = Arc::new(watch::channel(Arc::new(layers.effective())).0);
        Reloader {
            tx,
            layers: Arc::new(std::sync::Mutex::new(layers)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Layers> {
        self.layers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `cfg` is the config file now in force (before the store is laid over it): the
    /// same proxies, visitors and `start`, and no global setting asked to change.
    pub fn file_is(&self, cfg: &ClientConfig) -> bool {
        let l = self.lock();
        l.file.proxies == cfg.proxies
            && l.file.visitors == cfg.visitors
            && l.file.start == cfg.start
            && crate::reload::globals_changed(&l.file, cfg).is_empty()
    }

    /// Applies a newly loaded config file: its proxies, visitors and `start` list. Global
    /// settings keep their running values (as frp documents; work connections must go on
    /// using the token and wire protocol of the session); a change to one is logged by name
    /// and returned.
    pub fn apply(&self, cfg: ClientConfig) -> Vec<String> {
        let mut l = self.lock();
        let ignored = crate::reload::globals_changed(&l.file, &cfg);
        if !ignored.is_empty() {
            warn!(
                keys = %ignored.join(", "),
                "changes to {} need a restart; the running values stay",
                ignored.join(", ")
            );
        }
        l.file.proxies = cfg.proxies;
        l.file.visitors = cfg.visitors;
        l.file.start = cfg.start;
        self.tx.send_replace(Arc::new(l.effective()));
        ignored
    }

    /// The `includes` the client started with (a reload reads these, not the file's).
    pub fn running_includes(&self) -> Vec<String> {
        self.lock().file.includes.clone()
    }

    /// The config file now in force (its token sources as written, not resolved).
    pub fn running_file(&self) -> ClientConfig {
        self.lock().file.clone()
    }

    /// Runs `f` on the store; when it succeeds the result is applied like a reload.
    pub fn with_store<R>(
        &self,
        f: impl FnOnce(&mut crate::store::Store) -> Result<R, crate::store::StoreError>,
    ) -> Result<R, crate::store::StoreError> {
        let mut l = self.lock();
        let store = l
            .store
            .as_mut()
            .map_err(|e| crate::store::StoreError::Disabled(e.clone()))?;
        let r = f(store)?;
        self.tx.send_replace(Arc::new(l.effective()));
        Ok(r)
    }

    /// Reads the store.
    pub fn read_store<R>(
        &self,
        f: impl FnOnce(&crate::store::Store) -> R,
    ) -> Result<R, crate::store::StoreError> {
        let l = self.lock();
        match &l.store {
            Ok(s) => Ok(f(s)),
            Err(e) => Err(crate::store::StoreError::Disabled(e.clone())),
        }
    }

    /// The config now in force.
    pub fn current(&self) -> Arc<ClientConfig> {
        self.tx.borrow().clone()
    }
}

/// A failed login's IO error, explained: a TLS failure by name with the setting to change; a
/// connection frps closed without answering as the likely settings mismatch (frps cannot tell
/// us: it sees another framing than it expects and drops the connection).
fn login_io_error(cfg: &ClientConfig, addr: &str, error: std::io::Error) -> ClientError {
    use std::io::ErrorKind as K;
    if let Some(why) = tls::explain_for_client(&error) {
        return ClientError::TlsHandshake(why);
    }
    // QUIC has no tcpMux and its own TLS: its error says what happened.
    let quic = cfg.transport.protocol.eq_ignore_ascii_case("quic");
    let closed = !quic
        && matches!(
            error.kind(),
            K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe
        )
        || cause_of::<mux::StreamClosed>(&error).is_some();
    if closed {
        return ClientError::Protocol(format!(
            "frps closed the connection without answering the login; check that frps has the \
             same transport.tcpMux (= {} here) and accepts this TLS setting \
             (transport.tls.enable = {} here)",
            cfg.transport.tcp_mux, cfg.transport.tls.enable
        ));
    }
    ClientError::Connect {
        addr: addr.to_owned(),
        error,
    }
}
