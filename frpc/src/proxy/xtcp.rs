//! The proxy side of xtcp (frp `client/proxy/xtcp.go`): a work connection brings a session id
//! (NatHoleSid after StartWorkConn); frpc discovers its addresses, sends NatHoleClient on its
//! control, punches as frps answers, reports the result, then accepts the visitor's tunnel
//! (QUIC, or yamux over KCP) and serves each stream as a user connection of this proxy.

use super::{Proxies, Spec, XtcpSpec};
use crate::xtcp::{self, check_resp};
use common::io::BoxStream;
use common::msg::{Message, NatHoleClient, NatHoleReport, StartWorkConn};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// How long frpc waits for NatHoleSid on an xtcp work connection (frps writes it at once).
const SID_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn serve(
    proxies: &Arc<Proxies>,
    name: &str,
    x: &XtcpSpec,
    spec: &Arc<Spec>,
    start: StartWorkConn,
    mut work: BoxStream,
    token: CancellationToken,
) {
    let count = |result: &str| {
        proxies
            .metrics
            .punches
            .with_label_values(&["proxy", name, result])
            .inc()
    };
    let sid = match tokio::time::timeout(SID_TIMEOUT, proxies.wire.read(&mut work)).await {
        Ok(Ok(Message::NatHoleSid(m))) => m.sid,
        Ok(Ok(other)) => {
            warn!(proxy = %name, msg = other.name(), "xtcp read from workConn error: expected NatHoleSid");
            return;
        }
        Ok(Err(e)) => {
            warn!(proxy = %name, error = %e, "xtcp read from workConn error");
            return;
        }
        Err(_) => {
            warn!(proxy = %name, "xtcp read from workConn error: no NatHoleSid within {SID_TIMEOUT:?}");
            return;
        }
    };
    drop(work);
    let punched = tokio::select! {
        _ = token.cancelled() => return,
        _ = spec.gone.cancelled() => return,
        r = punch(proxies, name, x, &sid) => r,
    };
    let tunnel = match punched {
        Ok(t) => t,
        Err((step, e)) => {
            count(step);
            warn!(proxy = %name, %sid, error = %e, "xtcp hole punch failed ({step})");
            return;
        }
    };
    count("ok");
    info!(proxy = %name, %sid, peer = %tunnel.peer(), "xtcp tunnel established");
    loop {
        let accepted = tokio::select! {
            biased;
            _ = token.cancelled() => break,
            _ = spec.gone.cancelled() => {
                info!(proxy = %name, "proxy removed or changed: closing its xtcp tunnel");
                break;
            }
            s = tunnel.accept() => s,
        };
        let stream = match accepted {
            Ok(s) => s,
            Err(e) => {
                debug!(proxy = %name, error = %e, "accept stream error: tunnel closed");
                break;
            }
        };
        let (p, spec, name, start, t) = (
            proxies.clone(),
            spec.clone(),
            name.to_owned(),
            start.clone(),
            token.child_token(),
        );
        let fut = async move { p.serve(&name, &spec, start, stream, t).await };
        tokio::spawn(fut.in_current_span());
    }
    tunnel.close();
}

/// Discovery, NatHoleClient, the punch and the report, then the tunnel (QUIC accept, or KCP
/// and yamux as the visitor's protocol says). The error names
/// the step that failed (the metric's `result`).
async fn punch(
    proxies: &Proxies,
    name: &str,
    x: &XtcpSpec,
    sid: &str,
) -> Result<xtcp::Tunnel, (&'static str, String)> {
    let prepared = xtcp::prepare(&x.stun_server, x.disable_assisted)
        .await
        .map_err(|e| ("stun", e))?;
    let tid = common::nathole::new_id();
    let m = NatHoleClient {
        transaction_id: tid.clone(),
        proxy_name: x.wire_name.clone(),
        sid: sid.into(),
        mapped_addrs: prepared.addrs.clone(),
        assisted_addrs: prepared.assisted.clone(),
    };
    let resp = proxies
        .nat
        .exchange(m.into(), &tid, xtcp::EXCHANGE_TIMEOUT)
        .await
        .and_then(check_resp)
        .map_err(|e| ("exchange", format!("nathole exchange info error: {e}")))?;
    debug!(proxy = %name, sid = %resp.sid, protocol = %resp.protocol, candidates = ?resp.candidate_addrs, behavior = ?resp.detect_behavior, "get natHoleRespMsg");
    let report = |success: bool| NatHoleReport {
        sid: resp.sid.clone(),
        success,
    };
    let key = common::nathole::punch_key(&x.secret_key);
    let (socket, peer) = match xtcp::make_hole(prepared.socket, &resp, &key).await {
        Ok(r) => r,
        Err(e) => {
            let _ = proxies.nat.send(report(false).into()).await;
            return Err(("punch", format!("make hole error: {e}")));
        }
    };
    info!(proxy = %name, sid = %resp.sid, %peer, "establishing nat hole connection successful");
    let _ = proxies.nat.send(report(true).into()).await;
    xtcp::tunnel(socket, peer, &resp.protocol, &x.quic, false).await
}
