//! Proxies on frps. The shared path (get a work connection, StartWorkConn, wrap, join) is
//! [`handle_user_conn`]; `tcp.rs` and `udp.rs` hold only how each type listens.
//! Mirrors frp `server/proxy/proxy.go`.

mod http;
mod https;
mod secret;
mod tcp;
mod tcpmux;
mod udp;
mod xtcp;

pub(crate) use crate::metrics::Traffic;
use crate::pool::{PoolError, WorkConnPool};
use crate::ports::PortError;
use crate::registry::NameGuard;
use crate::service::Shared;
use common::io::{join_work, wrap_work_conn, BoxStream, Counted, WrapOpts};
use common::msg::{NewProxy, StartWorkConn};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Errors sent back in NewProxyResp (their text is frp's).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    #[error("proxy [{0}] already exists")]
    AlreadyExists(String),
    #[error("exceed the max_ports_per_client")]
    ExceedMaxPorts,
    #[error(transparent)]
    Port(#[from] PortError),
    /// A udp proxy's port error, worded as frp's (`server/proxy/udp.go`).
    #[error("acquire port {0} error: {1}")]
    UdpPort(u16, PortError),
    /// frp's text (`pkg/config/load.go` `NewProxyConfigurerFromMsg`).
    #[error("unknown proxy type: {0}")]
    UnsupportedType(String),
    #[error("{0}")]
    BadBandwidth(String),
    #[error(transparent)]
    Group(#[from] crate::group::GroupError),
    /// A NewProxy frps cannot serve as asked (frp's validation texts, or a key named).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Route(#[from] crate::vhost::router::Conflict),
}

impl ProxyError {
    /// A short label for metrics.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            ProxyError::AlreadyExists(_) => "name_in_use",
            ProxyError::ExceedMaxPorts => "max_ports",
            ProxyError::Port(_) | ProxyError::UdpPort(..) => "port",
            ProxyError::UnsupportedType(_) => "unsupported_type",
            ProxyError::BadBandwidth(_) => "bad_bandwidth",
            ProxyError::Group(_) => "group",
            ProxyError::Invalid(_) => "invalid",
            ProxyError::Route(_) => "route_conflict",
        }
    }
}

/// What every proxy type needs to serve users.
#[derive(Debug)]
pub(crate) struct ProxyCtx {
    /// Wire name (with the `user.` prefix), sent in StartWorkConn.
    pub(crate) name: String,
    /// The owning client's user (a secret proxy's default allowed user).
    pub(crate) user: String,
    pub(crate) pool: WorkConnPool,
    pub(crate) wrap: WrapOpts,
    /// Child of the control's token; parent of every user connection's.
    pub(crate) token: CancellationToken,
    pub(crate) shared: Arc<Shared>,
    /// The proxy's type (server plugins' NewUserConn).
    pub(crate) kind: String,
    /// Who owns the proxy (server plugins' NewUserConn).
    pub(crate) plugin_user: crate::plugin::UserInfo,
}

/// The control's handle on a running proxy.
#[derive(Debug)]
pub(crate) struct ProxyHandle {
    token: CancellationToken,
    task: JoinHandle<()>,
    kind: String,
    name: NameGuard,
}

impl ProxyHandle {
    /// Stops the proxy and waits until its listener is closed, so the port is free on return.
    pub(crate) async fn close(self) {
        self.token.cancel();
        let _ = self.task.await;
    }

    /// From now on, closing the proxy records it as closed in `metrics`.
    pub(crate) fn record_close(&mut self, metrics: Arc<crate::metrics::Metrics>) {
        self.name.opened(metrics, &self.kind);
    }

    pub(crate) fn uses_port(&self) -> bool {
        matches!(self.kind.as_str(), "tcp" | "udp")
    }
}

/// Starts a proxy of `np.proxy_type`; returns its handle and NewProxyResp's `remote_addr`.
pub(crate) async fn start(
    np: &NewProxy,
    ctx: ProxyCtx,
    name: NameGuard,
    traffic: Arc<Traffic>,
) -> Result<(ProxyHandle, String), ProxyError> {
    let token = ctx.token.clone();
    let (task, remote_addr) = match np.proxy_type.as_str() {
        "tcp" => tcp::start(np, ctx, traffic.clone()).await?,
        "udp" => udp::start(np, ctx, traffic.clone()).await?,
        "http" => http::start(np, ctx, traffic.clone()).await?,
        "https" => https::start(np, ctx, traffic.clone()).await?,
        "tcpmux" => tcpmux::start(np, ctx, traffic.clone()).await?,
        "stcp" | "sudp" => secret::start(np, ctx, traffic.clone())?,
        "xtcp" => xtcp::start(np, ctx)?,
        other => return Err(ProxyError::UnsupportedType(other.into())),
    };
    Ok((
        ProxyHandle {
            token,
            task,
            kind: np.proxy_type.clone(),
            name,
        },
        remote_addr,
    ))
}

/// Gets a work connection for a user at `peer` and sends StartWorkConn with the user's
/// addresses (`local`: where frps accepted the user, when the proxy type sends it).
pub(crate) async fn start_work(
    ctx: &ProxyCtx,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) -> Result<BoxStream, PoolError> {
    let start = StartWorkConn {
        proxy_name: ctx.name.clone(),
        src_addr: peer.ip().to_string(),
        src_port: peer.port(),
        dst_addr: local.map(|a| a.ip().to_string()).unwrap_or_default(),
        dst_port: local.map(|a| a.port()).unwrap_or_default(),
        error: String::new(),
    };
    let waited = tokio::time::Instant::now();
    let work = tokio::select! {
        _ = ctx.token.cancelled() => Err(PoolError::Closed),
        w = ctx.pool.get_started(&start) => w,
    };
    if work.is_ok() {
        ctx.shared
            .metrics
            .work_conn_wait
            .observe(waited.elapsed().as_secs_f64());
    }
    work
}

/// Relays a user connection (a TCP user, or a visitor connection) over a started work
/// connection until either side ends (frp `handleUserTCPConnection` after the work connection
/// is obtained). `first`: bytes already read from the user (an https ClientHello), sent ahead
/// of the rest.
pub(crate) async fn relay(
    ctx: &ProxyCtx,
    traffic: &Arc<Traffic>,
    user: BoxStream,
    work: BoxStream,
    peer: SocketAddr,
    first: &[u8],
) {
    let mut work = wrap_work_conn(work, &ctx.wrap);
    let _open = traffic.conn_opened();
    if !first.is_empty() {
        use common::io::Count;
        use tokio::io::AsyncWriteExt;
        if let Err(e) = work.write_all(first).await {
            debug!(proxy = %ctx.name, %peer, error = %e, "work connection closed before the first bytes");
            return;
        }
        traffic.read(first.len() as u64);
    }
    // Nothing needs the bytes and both ends are plain TCP: let the kernel move them.
    #[cfg(target_os = "linux")]
    if let (Some(w), Some(u)) = (
        common::io::as_tcp(&work).filter(|_| ctx.wrap.is_empty()),
        common::io::as_tcp(&user),
    ) {
        let count: &dyn common::io::Count = &**traffic;
        ctx.shared.metrics.spliced.inc();
        tokio::select! {
            _ = ctx.token.cancelled() => {}
            r = common::io::splice::splice_join(u, w, Some(count)) => match r {
                Ok((to_client, to_user)) => debug!(proxy = %ctx.name, %peer, to_client, to_user, "user connection closed (spliced)"),
                Err(e) => debug!(proxy = %ctx.name, %peer, error = %e, "user connection ended with error"),
            },
        }
        return;
    }
    let mut user = Counted::new(user, traffic.clone());
    tokio::select! {
        _ = ctx.token.cancelled() => {}
        r = join_work(&mut work, &mut user) => match r {
            Ok((to_user, to_client)) => debug!(proxy = %ctx.name, %peer, to_client, to_user, "user connection closed"),
            Err(e) => debug!(proxy = %ctx.name, %peer, error = %e, "user connection ended with error"),
        },
    }
}

/// Asks the server plugins whether a user at `peer` may use the proxy (NewUserConn; frp calls
/// it for tcp, https and tcpmux users, not http or udp). A refused user is to be closed.
pub(crate) async fn user_allowed(ctx: &ProxyCtx, peer: SocketAddr) -> bool {
    let plugins = &ctx.shared.plugins;
    if !plugins.handles(crate::plugin::Op::NewUserConn) {
        return true;
    }
    let r = tokio::select! {
        _ = ctx.token.cancelled() => return false,
        r = plugins.new_user_conn(&ctx.plugin_user, &ctx.name, &ctx.kind, peer) => r,
    };
    match r {
        Ok(()) => true,
        Err(e) => {
            warn!(proxy = %ctx.name, %peer, error = %e, "the user connection was rejected");
            false
        }
    }
}

/// One user connection of a single proxy.
pub(crate) async fn handle_user_conn(
    ctx: Arc<ProxyCtx>,
    traffic: Arc<Traffic>,
    user: TcpStream,
    peer: SocketAddr,
) {
    if !user_allowed(&ctx, peer).await {
        return;
    }
    match start_work(&ctx, peer, user.local_addr().ok()).await {
        Ok(work) => relay(&ctx, &traffic, Box::new(user), work, peer, &[]).await,
        Err(e) => {
            warn!(proxy = %ctx.name, %peer, error = %e, "no work connection for user connection")
        }
    }
}
