//! tcpmux proxy (`multiplexer = "httpconnect"`): CONNECT routes on the tcpmux listener (frp
//! `server/proxy/tcpmux.go`). Routed connections take the shared path through
//! [`StreamWork`](super::https::StreamWork).

use super::http::{check_vhost, hold_routes};
use super::https::StreamWork;
use super::{ProxyCtx, ProxyError, Traffic};
use crate::group::stream::{self, Kind};
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
        "tcpmux with multiplexer httpconnect not supported because this feature is not enabled in server",
    )?;
    let auth = (!np.http_user.is_empty() || !np.http_pwd.is_empty())
        .then(|| (np.http_user.clone(), np.http_pwd.clone()));
    let ctx = Arc::new(ctx);
    let route = Arc::new(TcpMuxRoute {
        auth: auth.clone(),
        backend: Arc::new(StreamWork {
            ctx: ctx.clone(),
            traffic: traffic.clone(),
        }),
    });
    let port = shared.cfg.tcpmux_http_connect_port;
    let user = &np.route_by_http_user;
    // Route guards or group memberships; an error drops those taken so far.
    let mut held: Vec<Box<dyn Send>> = Vec::new();
    let mut addrs = Vec::new();
    for d in &domains {
        if np.group.is_empty() {
            held.push(Box::new(vhost.register(d, user, route.clone())?));
        } else {
            // Members share the credentials too: a member is never served under another's.
            let route_key = vec![
                d.clone(),
                user.clone(),
                np.http_user.clone(),
                np.http_pwd.clone(),
            ];
            let auth = auth.clone();
            held.push(Box::new(stream::join(
                &shared,
                Kind::TcpMux,
                &np.group,
                &np.group_key,
                route_key,
                (ctx.clone(), traffic.clone()),
                |backend| Ok(vhost.register(d, user, Arc::new(TcpMuxRoute { auth, backend }))?),
            )?));
        }
        addrs.push(format!("{d}:{port}"));
        info!(proxy = %np.proxy_name, domain = %d, route_by_http_user = %np.route_by_http_user, "tcpmux proxy route registered");
    }
    Ok((hold_routes(&shared, token, held), addrs.join(",")))
}
