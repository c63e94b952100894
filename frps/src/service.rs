//! The frps listener (frp `server/service.go` `HandleListener`, `handleConnection`).
//!
//! Each accepted connection: sniff its first bytes (`GET /~!frp`: a WebSocket upgrade, whose
//! stream is then treated as the connection), then for TLS (0x17 custom byte, 0x16
//! ClientHello, anything else plain unless `transport.tls.force`), then run a yamux server
//! session when `transport.tcpMux` is on, and route every logical connection by its first
//! message. `quicBindPort` accepts QUIC connections, whose streams are the logical
//! connections (no yamux); `kcpBindPort` KCP conversations, each then handled as a TCP
//! connection is.

use crate::admission::{
    closing, summarise_rejections, tls_reject, Admission, Gate, Limits, Reject,
};
use crate::control::{self, ControlHandle};
use crate::registry::Registry;
use common::config::ServerConfig;
use common::crypto::{derive_key, Key};
use common::io::BoxStream;
use common::msg::{v2, DecodeError, Message, NewWorkConn, StartWorkConn, Wire};
use common::transport::kcp::{KcpConfig, KcpListener, KcpStream, ListenerLimits};
use common::transport::proxy_protocol::{AcceptError, Trusted};
use common::transport::{self, mux, quic, tls, ws, Rewound, FRP_TLS_HEAD_BYTE, TLS_HANDSHAKE_BYTE};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

/// How long `run` waits for connection tasks after shutdown before giving up on them.
const GRACE: Duration = Duration::from_secs(5);

/// Why frps could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("bind {addr}: {error}")]
    Bind { addr: String, error: std::io::Error },
    /// The config uses a key whose feature frp-rs does not have yet and cannot run without
    /// (`config::support`).
    #[error("{0}")]
    Unsupported(String),
    /// A listen address that is neither an IP address nor a host name that resolves.
    #[error("{key}: {msg}")]
    Addr { key: &'static str, msg: String },
    #[error("transport.tls: {0}")]
    Tls(tls::TlsError),
    #[error("transport.{0}")]
    Quic(quic::QuicSetupError),
    #[error("metrics: {0}")]
    Metrics(String),
    #[error(transparent)]
    Oidc(#[from] common::oidc::OidcError),
    #[error("dashboard: {0}")]
    Dashboard(common::http::WebError),
    /// A `[[httpPlugins]]` entry frps cannot call (its addr, ops or TLS setup).
    #[error("{0}")]
    Plugins(String),
    #[error("proxyProtocol.trustedAddrs: {0}")]
    ProxyProtocol(String),
}
common::from_cause!(tls::TlsError => ServerError::Tls);
common::from_cause!(quic::QuicSetupError => ServerError::Quic);

common::from_cause!(common::http::WebError => ServerError::Dashboard);

/// State shared by every task of one frps. Immutable config plus registries of handles.
pub(crate) struct Shared {
    pub(crate) cfg: ServerConfig,
    pub(crate) registry: Arc<Registry>,
    /// Secret proxies (stcp, sudp) that visitors reach.
    pub(crate) visitors: Arc<crate::visitor::VisitorManager>,
    /// xtcp proxies and hole-punch sessions.
    pub(crate) nathole: Arc<crate::nathole::NatHoleController>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    pub(crate) groups: crate::group::Groups,
    pub(crate) auth: crate::auth::Auth,
    /// The server plugins (`httpPlugins`), called on logins, proxies, pings and connections.
    pub(crate) plugins: Arc<crate::plugin::Plugins>,
    pub(crate) tracker: TaskTracker,
    /// What connections that have not logged in may cost.
    pub(crate) gate: Arc<Gate>,
    /// Control-channel and work-connection key, from `auth.token`.
    pub(crate) key: Key,
    /// The vhost HTTP server's routes, when `vhostHTTPPort` is set.
    pub(crate) vhost_http: Option<Arc<crate::vhost::HttpVhost>>,
    /// The HTTPS (SNI) vhost's routes, when `vhostHTTPSPort` is set.
    pub(crate) vhost_https: Option<Arc<crate::vhost::HttpsVhost>>,
    /// The tcpmux (CONNECT) routes, when `tcpmuxHTTPConnectPort` is set.
    pub(crate) vhost_tcpmux: Option<Arc<crate::vhost::TcpMuxVhost>>,
    /// Which vhosts share `bindPort`'s listener (frp's golib `net/mux`, spec 3.4).
    shared_port: SharedPort,
    /// Load balancers whose PROXY protocol headers are believed (`proxyProtocol`).
    pub(crate) proxy_protocol: Arc<Trusted>,
    tls: tokio_rustls::TlsAcceptor,
    next_id: AtomicU64,
    /// Rate limit for "the client's tcpMux/TLS settings disagree" warnings.
    mismatch_log: common::log::Throttle,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("bind_port", &self.cfg.bind_port)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Where a logical connection came from.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// The TCP connection it arrived on (with tcpMux: one yamux session).
    pub(crate) conn_id: u64,
    pub(crate) peer: SocketAddr,
    /// It is a yamux or QUIC stream (tcpMux on, or QUIC).
    pub(crate) muxed: bool,
    /// What carried it: `tcp`, `websocket` or `quic` (the dashboard's client records).
    pub(crate) transport: &'static str,
    /// Its TCP connection's standing until a Login succeeds on it.
    pub(crate) admission: Arc<Admission>,
}

impl Origin {
    /// Whether a work connection from `work` may join the control that came from `self`.
    /// frp accepts any connection that names the run_id, so anyone who learned it received
    /// that client's users. Go frpc opens its work connections on its control's yamux session
    /// (tcpMux), or from the same host (without): that much is required here.
    pub(crate) fn may_attach(&self, work: &Origin) -> bool {
        if work.muxed || self.muxed {
            return work.muxed && self.muxed && work.conn_id == self.conn_id;
        }
        work.peer.ip().to_canonical() == self.peer.ip().to_canonical()
    }
}

/// A bound frps, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    /// `webServer` (dashboard and metrics), when its port is set.
    dashboard: Option<common::http::WebListener>,
    /// `vhostHTTPPort`, when set.
    vhost_http: Option<TcpListener>,
    /// `vhostHTTPSPort`, when set.
    vhost_https: Option<TcpListener>,
    /// `tcpmuxHTTPConnectPort`, when set.
    vhost_tcpmux: Option<TcpListener>,
    /// `quicBindPort`, when set.
    quic: Option<quinn::Endpoint>,
    /// `kcpBindPort`, when set.
    kcp: Option<KcpListener>,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds `bindAddr:bindPort` and prepares TLS (a self-signed certificate unless configured).
    pub async fn bind(cfg: ServerConfig) -> Result<Server, ServerError> {
        Server::bind_with(cfg, Limits::default()).await
    }

    /// [`bind`](Server::bind) with other [`Limits`] on connections that have not logged in.
    pub async fn bind_with(mut cfg: ServerConfig, limits: Limits) -> Result<Server, ServerError> {
        if let Some(why) = common::config::refusal(&common::config::server_unsupported(&cfg)) {
            return Err(ServerError::Unsupported(why));
        }
        let proxy_protocol = Arc::new(
            Trusted::new(&cfg.proxy_protocol.trusted_addrs).map_err(ServerError::ProxyProtocol)?,
        );
        let resolve = |key: &'static str, host: String| async move {
            common::config::resolve_listen_ip(&host)
                .await
                .map_err(|msg| ServerError::Addr { key, msg })
        };
        let ip = resolve("bindAddr", cfg.bind_addr.clone()).await?;
        // Proxies bind the one address proxyBindAddr names (empty: bindAddr's), resolved once
        // here as frp's Listen does; `ports` binds exactly this and never falls back.
        cfg.proxy_bind_addr = if cfg.proxy_bind_addr.is_empty() {
            ip
        } else {
            resolve("proxyBindAddr", cfg.proxy_bind_addr.clone()).await?
        }
        .to_string();
        let addr = SocketAddr::new(ip, cfg.bind_port);
        let listener = transport::listen_tcp(addr)
            .await
            .map_err(|error| ServerError::Bind {
                addr: addr.to_string(),
                error,
            })?;
        let t = &cfg.transport.tls;
        let opt = |s: &str| (!s.is_empty()).then(|| s.into());
        let files = tls::TlsFiles {
            cert_file: opt(&t.cert_file),
            key_file: opt(&t.key_file),
            trusted_ca_file: opt(&t.trusted_ca_file),
        };
        let tls_config = tls::server_config(&files)?;
        let tls = tokio_rustls::TlsAcceptor::from(tls_config.clone());
        // QUIC has frps's certificate and client-certificate rule, with ALPN "frp".
        let quic = if cfg.quic_bind_port > 0 {
            let qc = quic::server_config(
                &tls_config,
                &cfg.transport.quic,
                limits.pending_connections,
                crate::admission::PRE_LOGIN_QUIC_WINDOW,
            )?;
            let addr = SocketAddr::new(ip, cfg.quic_bind_port);
            Some(
                quinn::Endpoint::server(qc, addr).map_err(|error| ServerError::Bind {
                    addr: format!("udp {addr}"),
                    error,
                })?,
            )
        } else {
            None
        };
        // KCP may share bindPort's number: it is UDP.
        let kcp = if cfg.kcp_bind_port > 0 {
            let addr = SocketAddr::new(ip, cfg.kcp_bind_port);
            Some(
                KcpListener::bind(addr, pre_login_kcp(), ListenerLimits::default())
                    .await
                    .map_err(|error| ServerError::Bind {
                        addr: format!("udp {addr}"),
                        error,
                    })?,
            )
        } else {
            None
        };
        let auth = crate::auth::Auth::new(&cfg.auth).await?;
        // frps serves v1 and v2 clients alike: say what each can carry.
        for wire in [Wire::V1, Wire::V2] {
            if let Some(w) = common::msg::udp::packet_size_warning(cfg.udp_packet_size, wire) {
                warn!("{w}");
            }
        }
        let metrics = Arc::new(
            crate::metrics::Metrics::new().map_err(|e| ServerError::Metrics(e.to_string()))?,
        );
        let gate = Arc::new(Gate::new(limits, metrics.rejected_connections.clone()));
        let plugins = Arc::new(
            crate::plugin::Plugins::new(&cfg.http_plugins, metrics.clone())
                .map_err(ServerError::Plugins)?,
        );
        report_unsupported(&cfg);
        // A vhost port equal to bindPort on the same address shares its listener (frp
        // `server/service.go`): connections are told apart by their first bytes.
        let shares =
            |port: u16| port != 0 && port == cfg.bind_port && cfg.proxy_bind_addr == ip.to_string();
        let shared_port = SharedPort {
            http: shares(cfg.vhost_http_port),
            https: shares(cfg.vhost_https_port),
        };
        let own_port = |port: u16, shared: bool| if shared { 0 } else { port };
        let vhost_http = bind_vhost(&cfg, own_port(cfg.vhost_http_port, shared_port.http)).await?;
        let vhost_https =
            bind_vhost(&cfg, own_port(cfg.vhost_https_port, shared_port.https)).await?;
        let vhost_tcpmux = bind_vhost(&cfg, cfg.tcpmux_http_connect_port).await?;
        let tcpmux_routes = vhost_tcpmux
            .as_ref()
            .map(|_| Arc::new(crate::vhost::TcpMuxVhost::new(cfg.tcpmux_passthrough)));
        let vhost = (cfg.vhost_http_port != 0).then(|| {
            Arc::new(crate::vhost::HttpVhost::new(
                cfg.vhost_http_timeout,
                &cfg.custom404_page,
            ))
        });
        let https_routes =
            (cfg.vhost_https_port != 0).then(|| Arc::new(crate::vhost::HttpsVhost::default()));
        let nathole = Arc::new(crate::nathole::NatHoleController::new(
            cfg.nathole_analysis_data_reserve_hours,
        ));
        let shared = Arc::new(Shared {
            key: derive_key(cfg.auth.token.as_bytes()),
            cfg,
            registry: Arc::new(Registry::default()),
            visitors: Arc::default(),
            nathole,
            metrics,
            groups: crate::group::Groups::default(),
            auth,
            plugins,
            tracker: TaskTracker::new(),
            gate,
            vhost_http: vhost,
            vhost_https: https_routes,
            vhost_tcpmux: tcpmux_routes,
            shared_port,
            proxy_protocol,
            tls,
            next_id: AtomicU64::new(1),
            mismatch_log: common::log::Throttle::new(Duration::from_secs(10)),
        });
        let web = &shared.cfg.web_server;
        let dashboard = if web.port > 0 {
            // No dashboard route takes a request body.
            Some(common::http::WebListener::bind(web).await?.without_bodies())
        } else {
            None
        };
        Ok(Server {
            listener,
            dashboard,
            vhost_http,
            vhost_https,
            vhost_tcpmux,
            quic,
            kcp,
            shared,
        })
    }

    /// The address frpc connects to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The dashboard's address, when `webServer.port` is set.
    pub fn dashboard_addr(&self) -> Option<SocketAddr> {
        self.dashboard.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The vhost HTTP address, when `vhostHTTPPort` is set.
    pub fn vhost_http_addr(&self) -> Option<SocketAddr> {
        self.vhost_addr(&self.vhost_http, self.shared.shared_port.http)
    }

    /// The HTTPS (SNI) vhost address, when `vhostHTTPSPort` is set.
    pub fn vhost_https_addr(&self) -> Option<SocketAddr> {
        self.vhost_addr(&self.vhost_https, self.shared.shared_port.https)
    }

    fn vhost_addr(&self, own: &Option<TcpListener>, shared: bool) -> Option<SocketAddr> {
        let l = if shared {
            Some(&self.listener)
        } else {
            own.as_ref()
        };
        l.and_then(|l| l.local_addr().ok())
    }

    /// The QUIC (UDP) address, when `quicBindPort` is set.
    pub fn quic_addr(&self) -> Option<SocketAddr> {
        self.quic.as_ref().and_then(|e| e.local_addr().ok())
    }

    /// The KCP (UDP) address, when `kcpBindPort` is set.
    pub fn kcp_addr(&self) -> Option<SocketAddr> {
        self.kcp.as_ref().map(KcpListener::local_addr)
    }

    /// The tcpmux (CONNECT) address, when `tcpmuxHTTPConnectPort` is set.
    pub fn tcpmux_addr(&self) -> Option<SocketAddr> {
        self.vhost_tcpmux.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Number of logged-in clients (for tests and, later, the dashboard).
    pub fn client_count(&self) -> usize {
        self.shared.registry.control_count()
    }

    /// A handle to observe the running server after `run` has taken `self`.
    pub fn stats(&self) -> ServerStats {
        ServerStats(self.shared.clone())
    }

    /// Serves until `shutdown` is cancelled, then closes every session and waits (bounded) for
    /// their tasks.
    pub async fn run(self, shutdown: CancellationToken) {
        let addr = self
            .listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        info!(%addr, "frps started");
        let shared = self.shared;
        if shared.shared_port.http {
            info!(%addr, "vhost http shares the bind port");
        }
        if shared.shared_port.https {
            info!(%addr, "vhost https shares the bind port");
        }
        if let Some(l) = self.dashboard {
            info!(addr = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(), "dashboard listening");
            let bind_port = self.listener.local_addr().map(|a| a.port()).ok();
            shared.tracker.spawn(crate::dashboard::serve(
                l,
                shared.clone(),
                bind_port,
                shutdown.child_token(),
            ));
        }
        shared
            .tracker
            .spawn(summarise_rejections(shared.gate.clone(), shutdown.clone()));
        if let (Some(l), Some(vhost)) = (self.vhost_http, shared.vhost_http.clone()) {
            info!(addr = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(), "vhost http listening");
            shared.tracker.spawn(crate::vhost::http::serve(
                vhost,
                l,
                shared.proxy_protocol.clone(),
                shared.tracker.clone(),
                shutdown.child_token(),
            ));
        }
        if let (Some(l), Some(vhost)) = (self.vhost_https, shared.vhost_https.clone()) {
            info!(addr = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(), "vhost https listening");
            shared.tracker.spawn(crate::vhost::https::serve(
                vhost,
                l,
                shared.proxy_protocol.clone(),
                shared.tracker.clone(),
                shutdown.child_token(),
            ));
        }
        if let (Some(l), Some(vhost)) = (self.vhost_tcpmux, shared.vhost_tcpmux.clone()) {
            info!(addr = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(), "tcpmux httpconnect listening");
            shared.tracker.spawn(crate::vhost::tcpmux::serve(
                vhost,
                l,
                shared.proxy_protocol.clone(),
                shared.tracker.clone(),
                shutdown.child_token(),
            ));
        }
        if let Some(l) = self.kcp {
            shared
                .tracker
                .spawn(serve_kcp(shared.clone(), l, shutdown.clone()));
        }
        if let Some(endpoint) = self.quic {
            shared
                .tracker
                .spawn(serve_quic(shared.clone(), endpoint, shutdown.clone()));
        }
        loop {
            // Connections that have not logged in are bounded: at the limit, frps stops
            // accepting (the kernel's backlog holds the rest) until one logs in, goes, or is
            // evicted to make room (`Gate::permit`).
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = shared.gate.permit() => match p {
                    Some(p) => p,
                    None => break,
                },
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.listener.accept() => match r {
                    Ok((tcp, peer)) => {
                        let span = tracing::info_span!("conn", %peer, client = tracing::field::Empty);
                        // A trusted balancer speaks for many clients: not counted per address.
                        let source = (!shared.proxy_protocol.trusts(peer.ip())).then_some(peer.ip());
                        let token = shutdown.child_token();
                        let Some(admission) = shared.gate.admission(permit, source, token.clone()) else {
                            debug!(%peer, "closed: this address already holds its share of connections that have not logged in");
                            continue;
                        };
                        shared.tracker.spawn(handle_conn(shared.clone(), tcp, peer, admission, token).instrument(span));
                    }
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        // Stop taking connections before waiting for the open ones: a frpc that tries this
        // frps meanwhile is refused at once (and moves on to its next serverAddrs entry)
        // instead of waiting in the backlog.
        drop(self.listener);
        shutdown.cancel();
        shared.tracker.close();
        if tokio::time::timeout(GRACE, shared.tracker.wait())
            .await
            .is_err()
        {
            warn!("some connections did not close within {GRACE:?}");
        }
        info!("frps stopped");
    }
}

/// Vhost keys that cannot have an effect are reported by name, never silently ignored.
fn report_unsupported(cfg: &ServerConfig) {
    if cfg.tcpmux_passthrough && cfg.tcpmux_http_connect_port == 0 {
        warn!("tcpmuxPassthrough has no effect: tcpmuxHTTPConnectPort is not set");
    }
}

/// Binds `proxyBindAddr:port` for a vhost (frp binds the vhost ports on proxyBindAddr); `None`
/// when the port is 0 (off, or shared with bindPort).
async fn bind_vhost(cfg: &ServerConfig, port: u16) -> Result<Option<TcpListener>, ServerError> {
    if port == 0 {
        return Ok(None);
    }
    let ip = if cfg.proxy_bind_addr.is_empty() {
        &cfg.bind_addr
    } else {
        &cfg.proxy_bind_addr
    };
    let addr = format!("{ip}:{port}");
    transport::listen_tcp(&addr)
        .await
        .map(Some)
        .map_err(|error| ServerError::Bind { addr, error })
}

/// Read-only view of a running server.
#[derive(Debug, Clone)]
pub struct ServerStats(Arc<Shared>);

impl ServerStats {
    pub fn client_count(&self) -> usize {
        self.0.registry.control_count()
    }

    /// TCP connections accepted that have not logged in (yet).
    pub fn unauthenticated_connections(&self) -> usize {
        self.0.gate.unauthenticated()
    }

    /// Logical connections (yamux streams, or connections without tcpMux) waiting for their
    /// first message.
    pub fn awaiting_first_message(&self) -> usize {
        self.0.gate.awaiting_first()
    }

    /// Secret proxies (stcp, sudp) registered with the visitor manager.
    pub fn visitor_listeners(&self) -> usize {
        self.0.visitors.count()
    }

    /// xtcp proxies registered, and hole-punch sessions pending or awaiting their report.
    pub fn nathole_counts(&self) -> (usize, usize) {
        (self.0.nathole.proxies(), self.0.nathole.sessions())
    }

    /// Tasks frps is running (listeners, controls, connections, hole-punch requests).
    pub fn tasks(&self) -> usize {
        self.0.tracker.len()
    }

    /// Idle work connections in every client's pool.
    pub fn pooled_work_conns(&self) -> usize {
        self.0.registry.pooled_work_conns()
    }

    /// (bytes user -> frpc, bytes frpc -> user, open user connections) of an online proxy.
    pub fn proxy_traffic(&self, wire_name: &str) -> Option<(u64, u64, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        let r = self.0.metrics.proxy(wire_name).filter(|r| r.online)?;
        let t = &r.traffic;
        Some((
            t.bytes_in.load(Relaxed),
            t.bytes_out.load(Relaxed),
            t.conns.load(Relaxed).max(0) as u64,
        ))
    }

    /// The Prometheus text the server would serve at `/metrics`.
    pub fn metrics_text(&self) -> String {
        self.0.metrics.render()
    }
}

/// Which vhosts share the bind port.
#[derive(Debug, Clone, Copy)]
struct SharedPort {
    http: bool,
    https: bool,
}

/// What a fresh connection on the bind port is, by its first bytes.
enum Sniffed {
    /// frp, with TLS set up if it asked for it; what carried it (`tcp`, `websocket`).
    Frp(BoxStream, &'static str),
    /// An HTTP request for the vhost sharing the port; nothing of it has been read.
    Http(TcpStream),
    /// A TLS ClientHello for the HTTPS vhost sharing the port; nothing of it has been read.
    Https(TcpStream),
}

/// First three bytes of the methods frp's shared-port HTTP matcher knows (golib `net/mux`
/// `HTTPMatch`).
const HTTP_METHOD_HEADS: [&[u8; 3]; 9] = [
    b"GET", b"HEA", b"POS", b"PUT", b"DEL", b"CON", b"OPT", b"TRA", b"PAT",
];

/// Sniffs a fresh connection, the one place that looks at its first bytes (frp golib
/// `net/mux` matchers in `server/service.go`, then `pkg/util/net/tls.go`
/// `CheckAndEnableTLSServerConnWithTimeout`): an HTTP method goes to a vhost sharing the
/// port, and so does a TLS ClientHello (0x16) when the HTTPS vhost shares it (frpc must then
/// send the 0x17 first byte); 0x17 and otherwise 0x16 are frp's TLS; anything else plain frp
/// unless `transport.tls.force`. The bytes are only peeked, so a vhost reads them itself.
async fn sniff(shared: &Shared, mut tcp: TcpStream) -> std::io::Result<Sniffed> {
    let mut head = [0u8; 3];
    peek_at_least(&tcp, &mut head[..1]).await?;
    if head[0] == ws::UPGRADE_HEAD[0] {
        // frp's mux reads 10 bytes of every connection; any HTTP request has them.
        let mut h = [0u8; 10];
        peek_at_least(&tcp, &mut h).await?;
        if &h == ws::UPGRADE_HEAD {
            let s = ws::accept(tcp)
                .await
                .map_err(|e| std::io::Error::new(e.kind(), WsRefused(e.to_string())))?;
            return Ok(Sniffed::Frp(
                frp_tls(shared, Box::new(s)).await?,
                "websocket",
            ));
        }
    }
    let ports = shared.shared_port;
    if ports.http && HTTP_METHOD_HEADS.iter().any(|m| m[0] == head[0]) {
        peek_at_least(&tcp, &mut head).await?;
        if HTTP_METHOD_HEADS.contains(&&head) {
            return Ok(Sniffed::Http(tcp));
        }
    }
    match head[0] {
        TLS_HANDSHAKE_BYTE if ports.https => Ok(Sniffed::Https(tcp)),
        FRP_TLS_HEAD_BYTE => {
            tcp.read_exact(&mut head[..1]).await?;
            Ok(Sniffed::Frp(Box::new(shared.tls.accept(tcp).await?), "tcp"))
        }
        TLS_HANDSHAKE_BYTE => Ok(Sniffed::Frp(Box::new(shared.tls.accept(tcp).await?), "tcp")),
        _ if shared.cfg.transport.tls.force => Err(plain_refused()),
        _ => Ok(Sniffed::Frp(Box::new(tcp), "tcp")),
    }
}

fn plain_refused() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        "plain connection refused: transport.tls.force is on",
    )
}

/// A WebSocket upgrade frps refused (wrong path, no Origin, not WebSocket).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct WsRefused(String);

/// frp's TLS check on a carrier that cannot be peeked (WebSocket): one byte is read, and
/// replayed unless it is frp's 0x17 (frp `CheckAndEnableTLSServerConnWithTimeout`).
async fn frp_tls(shared: &Shared, mut s: BoxStream) -> std::io::Result<BoxStream> {
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await?;
    Ok(match b[0] {
        FRP_TLS_HEAD_BYTE => Box::new(shared.tls.accept(s).await?),
        TLS_HANDSHAKE_BYTE => Box::new(shared.tls.accept(Rewound::new(b[0], s)).await?),
        _ if shared.cfg.transport.tls.force => return Err(plain_refused()),
        _ => Box::new(Rewound::new(b[0], s)),
    })
}

/// Peeks until `buf` is full. A peek leaves the socket readable, so between peeks that came up
/// short it waits a little (the caller's deadline bounds the whole).
async fn peek_at_least(tcp: &TcpStream, buf: &mut [u8]) -> std::io::Result<()> {
    let mut pause = Duration::from_millis(1);
    loop {
        let n = tcp.peek(buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before sending anything",
            ));
        }
        if n >= buf.len() {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

async fn handle_conn(
    shared: Arc<Shared>,
    mut tcp: TcpStream,
    peer: SocketAddr,
    admission: Arc<Admission>,
    token: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    transport::set_keepalive(&tcp, shared.cfg.transport.tcp_keepalive);
    // One deadline for everything before login: TLS, yamux, the first message (frp gives each
    // step its own 10 s, and none to a yamux session that never logs in).
    let timeout = shared.gate.limits.first_msg_timeout;
    let deadline = Instant::now() + timeout;
    // Whether it sends anything decides whether it is the first to go when every pre-login
    // slot is held (a client sends at once; an error or EOF shows in the steps below). A
    // peek, not readiness: `readable()` may report a socket that has nothing to read.
    let mut first = [0u8; 1];
    tokio::select! {
        _ = token.cancelled() => return,
        r = tokio::time::timeout_at(deadline, tcp.peek(&mut first)) => {
            if matches!(r, Ok(Ok(1..))) {
                admission.spoke();
            }
        }
    }
    // The header read ends with the shutdown too (a sender stalling in it must not hold frps).
    let header = tokio::select! {
        _ = token.cancelled() => return,
        r = tokio::time::timeout_at(deadline, Box::pin(shared.proxy_protocol.accept(&mut tcp, peer))) => r,
    };
    let peer = match header {
        Ok(Ok(client)) => {
            if client != peer {
                tracing::Span::current().record("client", tracing::field::display(client));
            }
            client
        }
        Ok(Err(AcceptError::Io(e))) => {
            closing(
                &admission,
                tls_reject(&e),
                format_args!("reading the PROXY header: {e}"),
            );
            return;
        }
        Ok(Err(e)) => {
            closing(&admission, Reject::Garbage, format_args!("{e}"));
            return;
        }
        Err(_) => {
            closing(
                &admission,
                Reject::Timeout,
                format_args!("no complete PROXY header within {timeout:?}"),
            );
            return;
        }
    };
    let sniffed = tokio::select! {
        _ = token.cancelled() => return,
        r = tokio::time::timeout_at(deadline, Box::pin(sniff(&shared, tcp))) => r,
    };
    let (stream, carrier) = match sniffed {
        Ok(Ok(Sniffed::Frp(s, carrier))) => (s, carrier),
        Ok(Ok(web)) => {
            // A web user, not a frpc: it leaves the pre-login admission, and the vhost's own
            // timeouts apply from here.
            admission.admit();
            drop(admission);
            Box::pin(serve_web(&shared, web, peer, token)).await;
            return;
        }
        Ok(Err(e)) if e.get_ref().is_some_and(|r| r.is::<WsRefused>()) => {
            warn_mismatch(&shared, &format!("websocket upgrade refused: {e}"));
            admission.reject(Reject::Garbage);
            return;
        }
        Ok(Err(e)) => return setup_failed(&admission, Some(&e), timeout),
        Err(_) => return setup_failed(&admission, None, timeout),
    };
    // The steps above are boxed (freed once done): this task then holds only what a session
    // needs for its life, not the largest of the TLS handshake, the PROXY header or a vhost
    // (a task is as big as its largest state: 5.9 KB per idle client before, issue 21).
    serve_carrier(shared, stream, carrier, peer, admission, deadline, token).await;
}

/// One frp connection with TLS set up (TCP, WebSocket or KCP): yamux when `transport.tcpMux`
/// is on, and each logical connection routed by its first message.
async fn serve_carrier(
    shared: Arc<Shared>,
    stream: BoxStream,
    carrier: &'static str,
    peer: SocketAddr,
    admission: Arc<Admission>,
    deadline: Instant,
    token: CancellationToken,
) {
    let timeout = shared.gate.limits.first_msg_timeout;
    let origin = Origin {
        conn_id: shared.next_id(),
        peer,
        muxed: shared.cfg.transport.tcp_mux,
        transport: carrier,
        admission,
    };
    if !origin.muxed {
        Box::pin(handle_logical(shared, stream, origin, deadline, token)).await;
        return;
    }
    let (mut incoming, mut driver) = mux::server(
        stream,
        shared
            .gate
            .mux_config(shared.cfg.transport.tcp_mux_keepalive_interval),
    );
    origin.admission.set_session(incoming.limits());
    let mut login_by = LoginBy::new(deadline);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = login_by.missed(&origin.admission) => {
                closing(&origin.admission, Reject::Timeout, format_args!("no login within {timeout:?}"));
                break;
            }
            r = &mut driver => {
                match r {
                    Ok(()) => debug!("yamux session closed"),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        // frpc went away without a clean TLS close: routine, not a fault.
                        debug!(error = %e, "yamux session ended by the client");
                    }
                    Err(e) => {
                        if let Some(why) = transport::cause_of::<mux::NotYamux>(&e).and_then(|n| n.hint()) {
                            warn_mismatch(&shared, why);
                        }
                        let reason = if e.kind() == std::io::ErrorKind::InvalidData {
                            Reject::Garbage
                        } else {
                            Reject::Closed
                        };
                        closing(&origin.admission, reason, format_args!("yamux session error: {e}"));
                    }
                }
                break;
            }
            s = incoming.accept() => match s {
                Some(stream) => {
                    shared.tracker.spawn(
                        handle_logical(shared.clone(), Box::new(stream), origin.clone(), Instant::now() + timeout, token.clone()).in_current_span(),
                    );
                }
                None => break,
            },
        }
    }
    token.cancel();
}

/// Accepts KCP conversations on `kcpBindPort` (frp `ListenKcp`), within the same bound on
/// connections that have not logged in as TCP; each is then handled like a TCP connection
/// (frp's one-byte TLS check, yamux).
async fn serve_kcp(shared: Arc<Shared>, mut listener: KcpListener, shutdown: CancellationToken) {
    info!(addr = %listener.local_addr(), "kcp listening");
    loop {
        // Conversations wait in the listener's bounded backlog while no permit is free.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = shared.gate.permit() => match p {
                Some(p) => p,
                None => break,
            },
        };
        let kcp = tokio::select! {
            _ = shutdown.cancelled() => break,
            k = listener.accept() => match k {
                Some(k) => k,
                None => break,
            },
        };
        let peer = kcp.peer_addr();
        let span = tracing::info_span!("kcp", %peer);
        let token = shutdown.child_token();
        let Some(admission) = shared
            .gate
            .admission(permit, Some(peer.ip()), token.clone())
        else {
            debug!(%peer, "kcp conversation dropped: this address already holds its share of connections that have not logged in");
            continue;
        };
        // A conversation exists only once its first data segment came: it has spoken.
        admission.spoke();
        shared
            .tracker
            .spawn(handle_kcp(shared.clone(), kcp, admission, token).instrument(span));
    }
}

/// frps's KCP settings until a conversation logs in: frp's, with a smaller receive window
/// ([`crate::admission::PRE_LOGIN_KCP_WINDOW`]; frp's is restored at login).
fn pre_login_kcp() -> KcpConfig {
    KcpConfig {
        rcv_wnd: crate::admission::PRE_LOGIN_KCP_WINDOW,
        ..KcpConfig::server()
    }
}

/// One KCP conversation: frp's one-byte TLS check, then as any carrier.
async fn handle_kcp(
    shared: Arc<Shared>,
    kcp: KcpStream,
    admission: Arc<Admission>,
    token: CancellationToken,
) {
    let peer = kcp.peer_addr();
    admission.set_kcp(kcp.receive_window());
    let timeout = shared.gate.limits.first_msg_timeout;
    let deadline = Instant::now() + timeout;
    let tls = tokio::select! {
        _ = token.cancelled() => return,
        r = tokio::time::timeout_at(deadline, frp_tls(&shared, Box::new(kcp))) => r,
    };
    let stream = match tls {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return setup_failed(&admission, Some(&e), timeout),
        Err(_) => return setup_failed(&admission, None, timeout),
    };
    serve_carrier(shared, stream, "kcp", peer, admission, deadline, token).await;
}

/// Closes a connection whose transport setup (the sniff, TLS) failed (`e`) or timed out.
fn setup_failed(admission: &Admission, e: Option<&std::io::Error>, timeout: Duration) {
    match e {
        Some(e) => closing(
            admission,
            tls_reject(e),
            format_args!("transport setup failed: {e}"),
        ),
        None => closing(
            admission,
            Reject::Timeout,
            format_args!("no TLS or frp data within {timeout:?}"),
        ),
    }
}

/// Accepts QUIC connections on `quicBindPort` (frp `HandleQUICListener`), within the same
/// bound on connections that have not logged in as TCP.
async fn serve_quic(shared: Arc<Shared>, endpoint: quinn::Endpoint, shutdown: CancellationToken) {
    let addr = endpoint
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    info!(%addr, "quic listening");
    loop {
        // The handshake waits for a permit (quinn queues at most `pending_connections`
        // more): idle, this loop holds none of the permits TCP shares.
        let incoming = tokio::select! {
            _ = shutdown.cancelled() => break,
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
        };
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = shared.gate.permit() => match p {
                Some(p) => p,
                None => break,
            },
        };
        let peer = incoming.remote_address();
        let span = tracing::info_span!("quic", %peer);
        let token = shutdown.child_token();
        let Some(admission) = shared
            .gate
            .admission(permit, Some(peer.ip()), token.clone())
        else {
            debug!(%peer, "quic connection refused: this address already holds its share of connections that have not logged in");
            incoming.refuse();
            continue;
        };
        // Its first packet carried its handshake: not a silent connection.
        admission.spoke();
        shared
            .tracker
            .spawn(handle_quic(shared.clone(), incoming, peer, admission, token).instrument(span));
    }
    endpoint.close(0u32.into(), b"frps stopped");
}

/// One QUIC connection: the handshake, then each bidirectional stream is a logical
/// connection. Before login it may have [`Limits::pre_login_streams`] streams open and what
/// [`crate::admission::PRE_LOGIN_QUIC_WINDOW`] allows unread.
async fn handle_quic(
    shared: Arc<Shared>,
    incoming: quinn::Incoming,
    peer: SocketAddr,
    admission: Arc<Admission>,
    token: CancellationToken,
) {
    let timeout = shared.gate.limits.first_msg_timeout;
    let deadline = Instant::now() + timeout;
    let handshake = async { incoming.accept()?.await };
    let conn = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            closing(
                &admission,
                Reject::Tls,
                format_args!("quic handshake failed: {e}"),
            );
            return;
        }
        Err(_) => {
            closing(
                &admission,
                Reject::Timeout,
                format_args!("no quic handshake within {timeout:?}"),
            );
            return;
        }
    };
    if quic::alpn(&conn).as_deref() != Some(quic::ALPN) {
        closing(
            &admission,
            Reject::Tls,
            format_args!("quic client did not negotiate ALPN \"frp\""),
        );
        conn.close(0u32.into(), b"alpn");
        return;
    }
    admission.set_quic(conn.clone());
    let origin = Origin {
        conn_id: shared.next_id(),
        peer,
        muxed: true,
        transport: "quic",
        admission,
    };
    let max_pre_login = shared.gate.limits.pre_login_streams.max(1);
    let budget = quic::StreamBudget::new(&conn, &shared.cfg.transport.quic);
    let live = Arc::new(());
    let mut login_by = LoginBy::new(deadline);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = login_by.missed(&origin.admission) => {
                closing(&origin.admission, Reject::Timeout, format_args!("no login within {timeout:?}"));
                break;
            }
            s = conn.accept_bi() => match s {
                Ok((send, recv)) => {
                    if !origin.admission.is_admitted() && Arc::strong_count(&live) > max_pre_login {
                        // Dropping them resets the stream; the connection goes on.
                        debug!("quic stream refused: {max_pre_login} streams open before login");
                        continue;
                    }
                    let stream: BoxStream = Box::new(budget.admit(tokio::io::join(recv, send)));
                    let live = live.clone();
                    let task = handle_logical(shared.clone(), stream, origin.clone(), Instant::now() + timeout, token.clone());
                    shared.tracker.spawn(async move {
                        let _live = live;
                        task.await
                    }.in_current_span());
                }
                Err(e) => {
                    debug!(error = %e, "quic connection ended");
                    break;
                }
            },
        }
    }
    conn.close(0u32.into(), b"");
    token.cancel();
}

/// A session's login deadline (yamux or QUIC): by then a Login must have succeeded on it.
struct LoginBy {
    at: std::pin::Pin<Box<tokio::time::Sleep>>,
    passed: bool,
}

impl LoginBy {
    fn new(deadline: Instant) -> Self {
        LoginBy {
            at: Box::pin(tokio::time::sleep_until(deadline)),
            passed: false,
        }
    }

    /// Resolves when the deadline has passed without a login; never once it was met
    /// (cancel-safe, for `select!` loops).
    async fn missed(&mut self, admission: &Admission) {
        if !self.passed {
            (&mut self.at).await;
            self.passed = true;
            if !admission.is_admitted() {
                return;
            }
        }
        std::future::pending::<()>().await
    }
}

/// Hands a connection sniffed on the shared bind port to its vhost.
async fn serve_web(shared: &Shared, web: Sniffed, peer: SocketAddr, token: CancellationToken) {
    match (web, &shared.vhost_http, &shared.vhost_https) {
        (Sniffed::Http(tcp), Some(vhost), _) => {
            let tracker = shared.tracker.clone();
            crate::vhost::http::serve_conn(vhost.clone(), tcp, peer, tracker, token).await
        }
        (Sniffed::Https(tcp), _, Some(vhost)) => {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = crate::vhost::https::serve_conn(vhost, tcp, peer) => {}
            }
        }
        _ => debug!("no vhost for a connection sniffed as web traffic"),
    }
}

/// Warns that a client's `transport.tcpMux` or TLS settings disagree with ours: the one thing
/// its user must change. At most every 10 s (any peer can send such bytes), with a count.
fn warn_mismatch(shared: &Shared, why: &str) {
    if let Some(held) = shared.mismatch_log.ready() {
        warn!(similar_held_back = held, "closing connection: {why}");
    }
}

/// Reads a logical connection's first message, in v1 or v2 (frp `acceptConnection`): 7 bytes
/// tell them apart; a v2 ClientHello is answered before the first Message frame is read.
async fn first_message(
    stream: &mut BoxStream,
) -> Result<(Wire, Option<v2::Negotiated>, Message), DecodeError> {
    let mut head = [0u8; 7];
    stream.read_exact(&mut head).await?;
    if head != v2::MAGIC {
        // A yamux header here (no stream carries one) means a client with tcpMux on.
        if let Some(why) = transport::mismatch(&head, false, "client", "frps") {
            return Err(DecodeError::Mismatch(why));
        }
        let m = common::msg::codec::read_msg_after(&head, stream).await?;
        return Ok((Wire::V1, None, m));
    }
    let (ty, payload) = v2::read_frame(stream).await?;
    match ty {
        v2::FRAME_MESSAGE => Ok((Wire::V2, None, v2::decode_message(&payload)?)),
        v2::FRAME_CLIENT_HELLO => {
            let ch: v2::ClientHello = serde_json::from_slice(&payload)
                .map_err(|e| DecodeError::Frame(format!("bad ClientHello: {e}")))?;
            let sh = v2::server_hello(&ch);
            let shp = serde_json::to_vec(&sh).map_err(std::io::Error::other)?;
            v2::write_frame(stream, v2::FRAME_SERVER_HELLO, &shp).await?;
            if !sh.error.is_empty() {
                return Err(DecodeError::Frame(format!(
                    "ClientHello refused: {}",
                    sh.error
                )));
            }
            let hello = v2::Negotiated {
                alg: sh.selected.crypto.algorithm.clone(),
                transcript: v2::transcript(&payload, &shp),
            };
            let m = v2::read_msg(stream).await?;
            Ok((Wire::V2, Some(hello), m))
        }
        other => Err(DecodeError::Frame(format!(
            "unexpected first frame type {other}"
        ))),
    }
}

/// Routes one logical connection by its first message (frp `handleConnection`).
async fn handle_logical(
    shared: Arc<Shared>,
    stream: BoxStream,
    origin: Origin,
    deadline: Instant,
    token: CancellationToken,
) {
    // Routing is boxed and freed once done, so a control's task keeps only the control's
    // (boxed) future: a task is as big as its largest state (2.7 KB per idle client before,
    // issue 21).
    if let Some(control) = Box::pin(route_logical(shared, stream, origin, deadline, token)).await {
        control.await;
    }
}

/// A logged-in control's future, from [`route_logical`].
type ControlFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Reads a logical connection's first message and serves it, except for a Login: the
/// control's future is returned for the caller to run.
async fn route_logical(
    shared: Arc<Shared>,
    mut stream: BoxStream,
    origin: Origin,
    deadline: Instant,
    token: CancellationToken,
) -> Option<ControlFuture> {
    let awaiting = shared.gate.awaiting();
    let first = tokio::select! {
        // Shutdown, or evicted to make room (`Gate::permit`).
        _ = token.cancelled() => return None,
        r = tokio::time::timeout_at(deadline, first_message(&mut stream)) => r,
    };
    let first = match first {
        Ok(Ok(m)) => m,
        Ok(Err(e)) if e.is_closed() => {
            origin.admission.reject(Reject::Closed);
            debug!(error = %e, "connection closed before its first message");
            return None;
        }
        Ok(Err(DecodeError::Mismatch(why))) => {
            warn_mismatch(&shared, &why);
            return None;
        }
        Ok(Err(e)) => {
            closing(
                &origin.admission,
                Reject::Garbage,
                format_args!("bad first message: {e}"),
            );
            return None;
        }
        Err(_) => {
            let t = shared.gate.limits.first_msg_timeout;
            closing(
                &origin.admission,
                Reject::Timeout,
                format_args!("no first message within {t:?}"),
            );
            return None;
        }
    };
    drop(awaiting);
    let (wire, hello, first) = first;
    match first {
        Message::Login(login) => {
            return Some(Box::pin(control::serve(
                shared,
                stream,
                login,
                (wire, hello),
                origin,
                token,
            )));
        }
        Message::NewWorkConn(m) => attach_work_conn(&shared, stream, m, wire, &origin).await,
        Message::NewVisitorConn(m) => {
            crate::visitor::serve(&shared, stream, m, wire, &origin).await
        }
        other => {
            let name = other.name();
            closing(
                &origin.admission,
                Reject::Garbage,
                format_args!("unexpected first message {name}"),
            )
        }
    }
    None
}

/// Puts a new work connection into its control's pool (frp `RegisterWorkConn`), if it comes
/// from where its control came from ([`Origin::may_attach`]).
async fn attach_work_conn(
    shared: &Shared,
    mut stream: BoxStream,
    m: NewWorkConn,
    wire: Wire,
    origin: &Origin,
) {
    let refuse = |err: String| StartWorkConn {
        error: err,
        ..Default::default()
    };
    let handle: ControlHandle = match shared.registry.control(&m.run_id) {
        Some(h) => h,
        None => {
            closing(
                &origin.admission,
                Reject::Refused,
                format_args!("work connection for unknown client {}", m.run_id),
            );
            let _ = wire
                .write(
                    &mut stream,
                    &refuse(format!("no client control found for run id [{}]", m.run_id)).into(),
                )
                .await;
            return;
        }
    };
    if !handle.origin.may_attach(origin) {
        closing(
            &origin.admission,
            Reject::Refused,
            format_args!(
                "work connection for {} not from its client's control connection",
                m.run_id
            ),
        );
        shared.metrics.refused("work_conn", "foreign_connection");
        let msg = if origin.muxed {
            "work connection must use its client's control session"
        } else {
            "work connection must come from its client's address"
        };
        let _ = wire.write(&mut stream, &refuse(msg.into()).into()).await;
        return;
    }
    // Server plugins first, as frp: they may rewrite what is checked below.
    let m = match shared.plugins.new_work_conn(&handle.plugin_user, m).await {
        Ok(m) => m,
        Err(e) => {
            closing(
                &origin.admission,
                Reject::Refused,
                format_args!(
                    "work connection for {} refused by a plugin: {e}",
                    handle.run_id
                ),
            );
            let text = if shared.cfg.detailed_errors_to_client {
                e.client_text()
            } else {
                "invalid NewWorkConn".into()
            };
            let _ = wire.write(&mut stream, &refuse(text).into()).await;
            return;
        }
    };
    if shared.cfg.auth.has_scope("NewWorkConns") {
        if let Err(e) = shared.auth.scoped(m.timestamp, &m.privilege_key).await {
            closing(
                &origin.admission,
                Reject::Refused,
                format_args!(
                    "work connection for {} failed authentication: {e}",
                    m.run_id
                ),
            );
            let _ = wire.write(&mut stream, &refuse(e).into()).await;
            return;
        }
    }
    // A work connection of its own client: not a rejection, and no longer pending.
    origin.admission.admit();
    if handle.push_work_conn(stream).is_err() {
        debug!(run_id = %m.run_id, "work connection pool is full or closed, discarding");
    }
}
