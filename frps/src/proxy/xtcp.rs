//! xtcp proxies (frp `server/proxy/xtcp.go`): no public port; the proxy registers with the
//! NAT hole controller, and each session id the controller makes for a visitor goes to the
//! proxy's frpc on a work connection: StartWorkConn, then NatHoleSid in the client's framing,
//! then the connection is closed. User bytes never pass frps.

use super::{ProxyCtx, ProxyError};
use common::msg::{Message, NatHoleSid, NewProxy, StartWorkConn};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn, Instrument};

pub(super) fn start(np: &NewProxy, ctx: ProxyCtx) -> Result<(JoinHandle<()>, String), ProxyError> {
    // frp: no allowUsers means the proxy owner's user only.
    let allow_users = if np.allow_users.is_empty() {
        vec![ctx.user.clone()]
    } else {
        np.allow_users.clone()
    };
    let (registration, mut sids) = ctx
        .shared
        .nathole
        .listen(&ctx.name, &np.sk, allow_users)
        .ok_or_else(|| ProxyError::Invalid(format!("proxy [{}] is repeated", ctx.name)))?;
    let ctx = Arc::new(ctx);
    let span = tracing::info_span!("proxy", name = %ctx.name, kind = "xtcp");
    let tracker = ctx.shared.tracker.clone();
    let task = tracker.spawn(
        async move {
            let _registration = registration;
            info!("xtcp proxy registered with the NAT hole controller");
            loop {
                let sid = tokio::select! {
                    _ = ctx.token.cancelled() => break,
                    s = sids.recv() => match s { Some(s) => s, None => break },
                };
                ctx.shared
                    .tracker
                    .spawn(send_sid(ctx.clone(), sid).in_current_span());
            }
        }
        .instrument(span),
    );
    Ok((task, String::new()))
}

/// One session id to the proxy's frpc over a fresh work connection.
async fn send_sid(ctx: Arc<ProxyCtx>, sid: String) {
    let start = StartWorkConn {
        proxy_name: ctx.name.clone(),
        ..Default::default()
    };
    let work = tokio::select! {
        _ = ctx.token.cancelled() => return,
        w = ctx.pool.get_started(&start) => w,
    };
    let mut work = match work {
        Ok(w) => w,
        Err(e) => {
            warn!(%sid, error = %e, "no work connection for the xtcp session id");
            return;
        }
    };
    let m = Message::NatHoleSid(NatHoleSid {
        sid: sid.clone(),
        ..Default::default()
    });
    match ctx.pool.wire().write(&mut work, &m).await {
        Ok(()) => debug!(%sid, "xtcp session id sent to the proxy side"),
        Err(e) => warn!(%sid, error = %e, "write nat hole sid package error"),
    }
    let _ = work.shutdown().await;
}
