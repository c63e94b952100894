//! What frpc joins a work connection to (frp `client/proxy/proxy.go`). The shared path is
//! [`Proxies::handle_work_conn`]: find the proxy, wrap the work connection, then the
//! type-specific part (tcp: dial the local service and join, or hand the connection to the
//! proxy's [`Plugin`]; udp: the datagram relay).

use common::transport::proxy_protocol;
mod udp;
mod xtcp;

use crate::metrics::{ClientMetrics, ProxyCounters};
use crate::plugin::{ConnInfo, Plugin, PluginError};
use common::config::{ClientConfig, ProxyConfig};
use common::crypto::derive_key;
use common::io::{join_work, wrap_work_conn, BoxStream, Counted, LimitAt, Limiter, WrapOpts};
use common::msg::StartWorkConn;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How long frpc waits for the local service to accept.
const LOCAL_DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A proxy as the data path needs it.
#[derive(Debug)]
struct Spec {
    kind: String,
    local: (String, u16),
    wrap: WrapOpts,
    counters: Arc<ProxyCounters>,
    /// `transport.proxyProtocolVersion`: "", "v1" or "v2".
    proxy_protocol: String,
    /// What serves the work connections instead of the local dial (frp: stream proxies only).
    plugin: Option<Plugin>,
    /// xtcp: what the proxy side's hole punch needs.
    xtcp: Option<XtcpSpec>,
    /// Cancelled when a reload removes or replaces this proxy: its xtcp tunnels close then.
    gone: CancellationToken,
}

/// An xtcp proxy's punching settings.
#[derive(Debug, Clone)]
struct XtcpSpec {
    /// The wire name, sent in NatHoleClient.
    wire_name: String,
    secret_key: String,
    stun_server: String,
    disable_assisted: bool,
    quic: common::config::QuicConfig,
}

/// The session's proxies by (unprefixed) name. Reload adds and removes entries; a work
/// connection takes its proxy's spec once, so a change never disturbs one already running.
#[derive(Debug)]
pub(crate) struct Proxies {
    by_name: RwLock<HashMap<String, Arc<Spec>>>,
    udp_packet_size: usize,
    wire: common::msg::Wire,
    metrics: Arc<ClientMetrics>,
    /// The session's control, for xtcp's NatHole messages.
    nat: Arc<crate::xtcp::NatLink>,
}

impl Proxies {
    pub(crate) fn new(
        cfg: &ClientConfig,
        metrics: Arc<ClientMetrics>,
        nat: Arc<crate::xtcp::NatLink>,
    ) -> Self {
        Proxies {
            by_name: RwLock::new(HashMap::new()),
            udp_packet_size: cfg.udp_packet_size.clamp(1, 65535) as usize,
            wire: crate::wire(cfg),
            metrics,
            nat,
        }
    }

    /// Adds or replaces a proxy; fails when its plugin cannot start (a certificate that does
    /// not load, a missing directory), and then the proxy is not added.
    pub(crate) fn set(&self, p: &ProxyConfig, cfg: &ClientConfig) -> Result<(), PluginError> {
        let plugin = match &p.plugin {
            Some(pl) if p.kind == "udp" => {
                warn!(proxy = %p.name, plugin = %pl.kind, "plugin is not used on a udp proxy (as in frp); datagrams go to localIP:localPort");
                None
            }
            Some(pl) => Some(Plugin::new(pl)?),
            None => None,
        };
        // xtcp streams go peer to peer: their layer is keyed by the secret key (frp passes
        // `sk` as the encryption key of HandleTCPWorkConnection), not the token.
        let key = if p.kind == "xtcp" {
            derive_key(p.secret_key.0.as_bytes())
        } else {
            derive_key(cfg.auth.token.as_bytes())
        };
        let xtcp = (p.kind == "xtcp").then(|| XtcpSpec {
            wire_name: cfg.wire_name(&p.name),
            secret_key: p.secret_key.0.clone(),
            stun_server: cfg.nat_hole_stun_server.clone(),
            disable_assisted: p.nat_traversal.disable_assisted_addrs,
            quic: cfg.transport.quic.clone(),
        });
        let spec = Spec {
            kind: p.kind.clone(),
            local: (p.local_ip.clone(), p.local_port),
            wrap: WrapOpts {
                encryption_key: p.transport.use_encryption.then_some(key),
                compress: p.transport.use_compression,
                limit: client_limit(p),
            },
            counters: self.metrics.proxy(&p.name, &p.kind),
            proxy_protocol: p.transport.proxy_protocol_version.clone(),
            plugin,
            xtcp,
            gone: CancellationToken::new(),
        };
        let old = self
            .by_name
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(p.name.clone(), Arc::new(spec));
        if let Some(old) = old {
            old.gone.cancel();
        }
        Ok(())
    }

    /// The proxy's spec as it is now.
    fn current(&self, name: &str) -> Option<Arc<Spec>> {
        self.by_name
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub(crate) fn remove(&self, name: &str) {
        let old = self
            .by_name
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if let Some(old) = old {
            old.gone.cancel();
        }
    }

    /// Serves one started work connection until either side ends or `token` is cancelled.
    pub(crate) async fn handle_work_conn(
        self: &Arc<Self>,
        name: &str,
        start: StartWorkConn,
        work: BoxStream,
        token: CancellationToken,
    ) {
        let Some(spec) = self.current(name) else {
            warn!(proxy = %name, "work connection for unknown proxy, closing");
            return;
        };
        self.metrics.work_conns.inc();
        if let Some(x) = &spec.xtcp {
            return xtcp::serve(self, name, x, &spec, start, work, token).await;
        }
        self.serve(name, &spec, start, work, token).await
    }

    /// The shared path of a work connection (or of an xtcp stream): wrap, then the type's part.
    async fn serve(
        &self,
        name: &str,
        spec: &Spec,
        start: StartWorkConn,
        work: BoxStream,
        token: CancellationToken,
    ) {
        let _open = spec.counters.conn_opened();
        let mut work = wrap_work_conn(work, &spec.wrap);
        match spec.kind.as_str() {
            // frpc handles all stream proxies alike: frps does the type-specific part.
            "tcp" | "http" | "https" | "tcpmux" | "stcp" | "xtcp" if spec.plugin.is_some() => {
                let Some(plugin) = &spec.plugin else { return };
                let addrs = proxy_protocol::start_addrs(&start);
                let info = ConnInfo {
                    src: addrs.flatten().map(|(src, _)| src),
                    proxy_header: addrs.filter(|_| !spec.proxy_protocol.is_empty()).map(|a| {
                        proxy_protocol::header(
                            &spec.proxy_protocol,
                            proxy_protocol::Transport::Stream,
                            a,
                        )
                    }),
                };
                // The plugin reads what the user sent: count it as going to the local side.
                let work: BoxStream = Box::new(Counted::new(work, UserSide(spec.counters.clone())));
                debug!(proxy = %name, plugin = plugin.name(), "handle by plugin");
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = plugin.serve(work, info) => {}
                }
            }
            "tcp" | "http" | "https" | "tcpmux" | "stcp" | "xtcp" => {
                let timer = self.metrics.local_dial.start_timer();
                let dialed = tokio::time::timeout(
                    LOCAL_DIAL_TIMEOUT,
                    common::dns::connect(&spec.local.0, spec.local.1),
                )
                .await;
                timer.observe_duration();
                let fail = |reason: &str| {
                    self.metrics
                        .dial_failures
                        .with_label_values(&[name, reason])
                        .inc()
                };
                let local = match dialed {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        fail(if e.kind() == std::io::ErrorKind::ConnectionRefused {
                            "refused"
                        } else {
                            "other"
                        });
                        warn!(proxy = %name, local = %format!("{}:{}", spec.local.0, spec.local.1), error = %e, "connect to local service failed");
                        return;
                    }
                    Err(_) => {
                        fail("timeout");
                        warn!(proxy = %name, "connect to local service timed out");
                        return;
                    }
                };
                let _ = local.set_nodelay(true);
                let mut local = local;
                // frp writes the PROXY header to the local service before any data.
                if let Some(addrs) =
                    proxy_protocol::start_addrs(&start).filter(|_| !spec.proxy_protocol.is_empty())
                {
                    let h = proxy_protocol::header(
                        &spec.proxy_protocol,
                        proxy_protocol::Transport::Stream,
                        addrs,
                    );
                    if let Err(e) = local.write_all(&h).await {
                        warn!(proxy = %name, error = %e, "write proxy protocol header to local service failed");
                        return;
                    }
                }
                // Nothing needs the bytes and both ends are plain TCP: let the kernel move them.
                #[cfg(target_os = "linux")]
                if let Some(w) = common::io::as_tcp(&work).filter(|_| spec.wrap.is_empty()) {
                    let count: &dyn common::io::Count = &*spec.counters;
                    self.metrics.spliced.inc();
                    tokio::select! {
                        _ = token.cancelled() => {}
                        r = common::io::splice::splice_join(&local, w, Some(count)) => match r {
                            Ok((to_server, to_local)) => debug!(proxy = %name, user = %start.src_addr, to_local, to_server, "connection closed (spliced)"),
                            Err(e) => debug!(proxy = %name, error = %e, "connection ended with error"),
                        },
                    }
                    return;
                }
                let mut local = Counted::new(local, spec.counters.clone());
                tokio::select! {
                    _ = token.cancelled() => {}
                    r = join_work(&mut work, &mut local) => match r {
                        Ok((to_local, to_server)) => debug!(proxy = %name, user = %start.src_addr, to_local, to_server, "connection closed"),
                        Err(e) => debug!(proxy = %name, error = %e, "connection ended with error"),
                    },
                }
            }
            // sudp's proxy side is udp's: frps joins the visitor's messages to this connection.
            "udp" | "sudp" => {
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = udp::relay(work, (spec.local.0.as_str(), spec.local.1), self.udp_packet_size, self.wire, &spec.proxy_protocol, token.clone()) => {}
                }
            }
            other => {
                warn!(proxy = %name, kind = other, "proxy type is not supported by this frpc yet")
            }
        }
    }
}

/// Counts a work connection handed to a plugin: read from it = to the local side.
struct UserSide(Arc<ProxyCounters>);

impl common::io::Count for UserSide {
    fn read(&self, n: u64) {
        self.0.written(n)
    }
    fn written(&self, n: u64) {
        self.0.read(n)
    }
}

/// `bandwidthLimitMode = "client"` (the default): one limiter for the proxy, on the wire bytes.
fn client_limit(p: &ProxyConfig) -> Option<(Arc<Limiter>, LimitAt)> {
    let bytes = common::config::parse_bandwidth(&p.transport.bandwidth_limit).unwrap_or(0);
    (p.transport.bandwidth_limit_mode == "client" && bytes > 0)
        .then(|| (Limiter::new(bytes), LimitAt::Wire))
}
