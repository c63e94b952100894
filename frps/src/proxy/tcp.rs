//! tcp proxy: a listener on `remotePort` (frp `server/proxy/tcp.go`).

use super::{handle_user_conn, ProxyCtx, ProxyError, Traffic};
use crate::ports::{self, PortError};
use common::msg::NewProxy;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{warn, Instrument};

pub(super) async fn start(
    np: &NewProxy,
    ctx: ProxyCtx,
    traffic: Arc<Traffic>,
) -> Result<(JoinHandle<()>, String), ProxyError> {
    let port = u16::try_from(np.remote_port).map_err(|_| PortError::NotAllowed)?;
    if !np.group.is_empty() {
        return start_in_group(np, ctx, traffic, port).await;
    }
    let (listener, guard) =
        ports::bind::<TcpListener>(&ctx.shared.cfg, &ctx.shared.registry, port).await?;
    let remote_addr = format!(":{}", guard.port);
    let ctx = Arc::new(ctx);
    let span = tracing::info_span!("proxy", name = %ctx.name, kind = "tcp");
    let tracker = ctx.shared.tracker.clone();
    let task = tracker.spawn(
        async move {
            let _guard = guard;
            loop {
                tokio::select! {
                    _ = ctx.token.cancelled() => break,
                    r = listener.accept() => match r {
                        Ok((user, peer)) => {
                            let _ = user.set_nodelay(true);
                            ctx.shared.tracker.spawn(handle_user_conn(ctx.clone(), traffic.clone(), user, peer).in_current_span());
                        }
                        Err(e) => {
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    },
                }
            }
        }
        .instrument(span),
    );
    Ok((task, remote_addr))
}

/// A group member: the group owns the listener; this task only holds the membership until the
/// proxy closes.
async fn start_in_group(
    np: &NewProxy,
    ctx: ProxyCtx,
    traffic: Arc<Traffic>,
    port: u16,
) -> Result<(JoinHandle<()>, String), ProxyError> {
    let ctx = Arc::new(ctx);
    let shared = ctx.shared.clone();
    let (real_port, membership) = shared
        .groups
        .join_tcp(
            &shared,
            &np.group,
            &np.group_key,
            port,
            ctx.clone(),
            traffic,
        )
        .await?;
    let token = ctx.token.clone();
    let task = shared.tracker.spawn(async move {
        token.cancelled().await;
        ctx.shared.groups.leave_tcp(membership).await;
    });
    Ok((task, format!(":{real_port}")))
}
