//! https proxy: SNI routes on the HTTPS vhost (frp `server/proxy/https.go`). This file only
//! turns NewProxy into routes; each routed connection takes the shared path (`start_work`,
//! `relay`) with the ClientHello bytes sent first.

use super::http::{canonical_addr, check_vhost, hold_routes, unset};
use super::{relay, start_work, ProxyCtx, ProxyError, Traffic};
use crate::vhost::StreamBackend;
use common::msg::NewProxy;
use futures::future::BoxFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub(super) async fn start(
    np: &NewProxy,
    ctx: ProxyCtx,
    traffic: Arc<Traffic>,
) -> Result<(JoinHandle<()>, String), ProxyError> {
    let shared = ctx.shared.clone();
    let token = ctx.token.clone();
    let vhost = shared.vhost_https.clone();
    let (vhost, domains) = check_vhost(np, &shared, vhost, "https", &unset("https"), false)?;
    let backend: Arc<dyn StreamBackend> = Arc::new(StreamWork {
        ctx: Arc::new(ctx),
        traffic,
    });
    let port = shared.cfg.vhost_https_port;
    let mut guards = Vec::new();
    let mut addrs = Vec::new();
    for d in &domains {
        guards.push(vhost.register(d, backend.clone())?);
        addrs.push(canonical_addr(d, port));
        info!(proxy = %np.proxy_name, domain = %d, "https proxy route registered");
    }
    Ok((hold_routes(&shared, token, guards), addrs.join(",")))
}

/// Relays routed raw connections (https, tcpmux) of one proxy through the shared path.
#[derive(Debug)]
pub(super) struct StreamWork {
    pub(super) ctx: Arc<ProxyCtx>,
    pub(super) traffic: Arc<Traffic>,
}

impl StreamBackend for StreamWork {
    fn serve(&self, user: TcpStream, peer: SocketAddr, first: Vec<u8>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            match start_work(&self.ctx, peer, user.local_addr().ok()).await {
                Ok(work) => relay(&self.ctx, &self.traffic, user, work, peer, &first).await,
                Err(e) => {
                    warn!(proxy = %self.ctx.name, %peer, error = %e, "no work connection for user connection")
                }
            }
        })
    }
}
