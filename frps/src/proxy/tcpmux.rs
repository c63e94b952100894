//! tcpmux proxy (`multiplexer = "httpconnect"`): CONNECT routes on the tcpmux listener (frp
//! `server/proxy/tcpmux.go`). Routed connections take the shared path through
//! [`StreamWork`](super::https::StreamWork).

use super::http::{check_vhost, hold_routes};
use super::https::StreamWork;
use super::{ProxyCtx, ProxyError, Traffic};
use crate::vhost::TcpMuxRoute;
use common::msg::NewProxy;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tracing::info;

pub(super) async fn start(
    np: &NewProxy,
    ctx: ProxyCtx,
    traffic: Arc<Traffic>,
) -> Result<(JoinHandle<()>, String), ProxyError> {
    let shared = ctx.shared.clone();
    let token = ctx.token.clone();
    if np.multiplexer != "httpconnect" {
        return Err(ProxyError::Invalid(format!(
            "unknown multiplexer [{}]",
            np.multiplexer
        )));
    }
    let vhost = shared.vhost_tcpmux.clone();
    let (vhost, domains) = check_vhost(
        np,
        &shared,
        vhost,
        "tcpmux",
        "tcpmux with multiplexer httpconnect not supported because this feature is not enabled in server",
        false,
    )?;
    let route = Arc::new(TcpMuxRoute {
        auth: (!np.http_user.is_empty() || !np.http_pwd.is_empty())
            .then(|| (np.http_user.clone(), np.http_pwd.clone())),
        backend: Arc::new(StreamWork {
            ctx: Arc::new(ctx),
            traffic,
        }),
    });
    let port = shared.cfg.tcpmux_http_connect_port;
    let mut guards = Vec::new();
    let mut addrs = Vec::new();
    for d in &domains {
        guards.push(vhost.register(d, &np.route_by_http_user, route.clone())?);
        addrs.push(format!("{d}:{port}"));
        info!(proxy = %np.proxy_name, domain = %d, route_by_http_user = %np.route_by_http_user, "tcpmux proxy route registered");
    }
    Ok((hold_routes(&shared, token, guards), addrs.join(",")))
}
