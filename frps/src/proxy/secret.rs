//! stcp and sudp proxies (frp `server/proxy/stcp.go`, `sudp.go`): no public port; the proxy
//! registers with the visitor manager and each checked visitor connection is its user
//! connection, joined to a work connection through the shared path ([`super::relay`]).
//!
//! sudp carries UDPPacket messages end to end: when the proxy's client and the visitor's client
//! frame them alike the bytes pass untouched; otherwise frps decodes and re-encodes each
//! message (frp `joinSUDPMessageBridge`), dropping the visitor's Pings.

use super::{relay, start_work, ProxyCtx, ProxyError, Traffic};
use crate::visitor::{Secret, VisitorConn};
use common::io::{wrap_work_conn, BoxStream, Count};
use common::msg::{udp, Message, NewProxy, Wire};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn, Instrument};

pub(super) fn start(
    np: &NewProxy,
    ctx: ProxyCtx,
    traffic: Arc<Traffic>,
) -> Result<(JoinHandle<()>, String), ProxyError> {
    // frp: no allowUsers means the proxy owner's user only.
    let allow_users = if np.allow_users.is_empty() {
        vec![ctx.user.clone()]
    } else {
        np.allow_users.clone()
    };
    let secret = Secret {
        sk: np.sk.clone(),
        allow_users,
    };
    let (registration, mut rx) =
        ctx.shared
            .visitors
            .listen(&ctx.name, secret)
            .ok_or_else(|| {
                ProxyError::Invalid(format!("custom listener for [{}] is repeated", ctx.name))
            })?;
    let sudp = np.proxy_type == "sudp";
    let ctx = Arc::new(ctx);
    let span = tracing::info_span!("proxy", name = %ctx.name, kind = %np.proxy_type);
    let tracker = ctx.shared.tracker.clone();
    let task = tracker.spawn(
        async move {
            let _registration = registration;
            info!("visitor listener registered");
            loop {
                let conn = tokio::select! {
                    _ = ctx.token.cancelled() => break,
                    c = rx.recv() => match c { Some(c) => c, None => break },
                };
                let fut = serve(ctx.clone(), traffic.clone(), conn, sudp);
                ctx.shared.tracker.spawn(fut.in_current_span());
            }
        }
        .instrument(span),
    );
    Ok((task, String::new()))
}

/// One visitor connection: a work connection, then the relay (or the sudp bridge).
async fn serve(ctx: Arc<ProxyCtx>, traffic: Arc<Traffic>, conn: VisitorConn, sudp: bool) {
    debug!(peer = %conn.peer, user = %conn.user, "visitor connection");
    // frp hands visitor connections to the same handler as a tcp proxy's users, so the server
    // plugins' NewUserConn is asked about them too (server/proxy/proxy.go).
    if !super::user_allowed(&ctx, conn.peer).await {
        return;
    }
    let work = match start_work(&ctx, conn.peer, None).await {
        Ok(w) => w,
        Err(e) => {
            warn!(peer = %conn.peer, error = %e, "no work connection for visitor connection");
            return;
        }
    };
    let proxy_wire = ctx.pool.wire();
    if sudp && proxy_wire != conn.wire {
        info!(
            proxy_wire = proxy_wire.name(),
            visitor_wire = conn.wire.name(),
            "bridging mixed sudp framings"
        );
        let work = wrap_work_conn(work, &ctx.wrap);
        let _open = traffic.conn_opened();
        tokio::select! {
            _ = ctx.token.cancelled() => {}
            r = bridge(work, proxy_wire, conn.stream, conn.wire, &*traffic) => {
                debug!(reason = %r, "sudp bridge closed");
            }
        }
        return;
    }
    relay(&ctx, &traffic, conn.stream, work, conn.peer, &[]).await;
}

/// Re-frames sudp messages between two framings until either side ends; counts datagram
/// bytes (visitor to proxy as in, back as out). Returns why it ended.
async fn bridge(
    proxy: BoxStream,
    proxy_wire: Wire,
    visitor: BoxStream,
    visitor_wire: Wire,
    count: &dyn Count,
) -> String {
    let (mut prd, mut pwr) = tokio::io::split(proxy);
    let (mut vrd, mut vwr) = tokio::io::split(visitor);
    let drops = udp::Drops::default();
    let to_visitor = async {
        loop {
            let m = udp::recv(proxy_wire, &mut prd, &drops)
                .await
                .map_err(|e| format!("proxy side: {e}"))?;
            let n = match &m {
                Message::UdpPacket(p) => p.content.len(),
                Message::Ping(_) => 0,
                other => {
                    debug!(
                        msg = other.name(),
                        "unexpected message on sudp work connection"
                    );
                    continue;
                }
            };
            udp::send(visitor_wire, &mut vwr, &m, &drops)
                .await
                .map_err(|e| format!("visitor side: {e}"))?;
            count.written(n as u64);
        }
    };
    let to_proxy = async {
        loop {
            let m = udp::recv(visitor_wire, &mut vrd, &drops)
                .await
                .map_err(|e| format!("visitor side: {e}"))?;
            // Only datagrams cross; the visitor's Pings stop here as in frp.
            let Message::UdpPacket(p) = &m else {
                continue;
            };
            let n = p.content.len();
            udp::send(proxy_wire, &mut pwr, &m, &drops)
                .await
                .map_err(|e| format!("proxy side: {e}"))?;
            count.read(n as u64);
        }
    };
    let r: Result<(), String> = tokio::select! { r = to_visitor => r, r = to_proxy => r };
    r.err().unwrap_or_default()
}
