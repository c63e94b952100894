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
