//! https proxy: SNI routes on the HTTPS vhost (frp `server/proxy/https.go`). This file only
//! turns NewProxy into routes; each routed connection takes the shared path (`start_work`,
//! `relay`) with the ClientHello bytes sent first.

use super::http::{canonical_addr, check_vhost, hold_routes, unset};
use super::{relay, start_work, ProxyCtx, ProxyError, Traffic};
use crate::group::stream::{self, Kind};
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
    let (vhost, domains) = check_vhost(np, &shared, vhost, &unset("https"))?;
    let ctx = Arc::new(ctx);
    let backend: Arc<dyn StreamBackend> = Arc::new(StreamWork {
        ctx: ctx.clone(),
        traffic: traffic.clone(),
    });
    let port = shared.cfg.vhost_https_port;
    // Route guards or group memberships; an error drops those taken so far.
    let mut held: Vec<Box<dyn Send>> = Vec::new();
    let mut addrs = Vec::new();
    for d in &domains {
        if np.group.is_empty() {
            held.push(Box::new(vhost.register(d, backend.clone())?));
        } else {
            held.push(Box::new(stream::join(
                &shared,
                Kind::Https,
                &np.group,
                &np.group_key,
                vec![d.clone()],
                (ctx.clone(), traffic.clone()),
                |b| Ok(vhost.register(d, b)?),
            )?));
        }
        addrs.push(canonical_addr(d, port));
        info!(proxy = %np.proxy_name, domain = %d, "https proxy route registered");
    }
    Ok((hold_routes(&shared, token, held), addrs.join(",")))
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
            if !super::user_allowed(&self.ctx, peer).await {
                return;
            }
            match start_work(&self.ctx, peer, user.local_addr().ok()).await {
                Ok(work) => {
                    relay(&self.ctx, &self.traffic, Box::new(user), work, peer, &first).await
                }
                Err(e) => {
                    warn!(proxy = %self.ctx.name, %peer, error = %e, "no work connection for user connection")
                }
            }
        })
    }
}
