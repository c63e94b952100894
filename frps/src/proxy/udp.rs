//! udp proxy (frp `server/proxy/udp.go`): one UDP socket on `remotePort`, one work connection at
//! a time carrying UDPPacket messages; replies go to the packet's `r` address.

use super::{ProxyCtx, ProxyError, Traffic};
use crate::ports::{self, PortError};
use common::io::wrap_work_conn;
use common::io::Count;
use common::msg::{udp, Message, NewProxy, StartWorkConn, UdpPacket};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tracing::{debug, warn, Instrument};

/// frp waits this long after registration before asking for the work connection, so that
/// frpc has processed NewProxyResp when StartWorkConn arrives.
const START_DELAY: Duration = Duration::from_millis(500);
/// frps drops a silent udp work connection after this (frpc pings every 30 s).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) async fn start(
    np: &NewProxy,
    ctx: ProxyCtx,
    traffic: Arc<Traffic>,
) -> Result<(JoinHandle<()>, String), ProxyError> {
    let port = u16::try_from(np.remote_port).map_err(|_| PortError::NotAllowed)?;
    let (socket, guard) = ports::bind::<UdpSocket>(&ctx.shared.cfg, &ctx.shared.registry, port)
        .await
        .map_err(|e| ProxyError::UdpPort(port, e))?;
    let remote_addr = format!(":{}", guard.port);
    let span = tracing::info_span!("proxy", name = %ctx.name, kind = "udp");
    let tracker = ctx.shared.tracker.clone();
    let task = tracker.spawn(
        async move {
            let _guard = guard;
            tokio::select! {
                _ = ctx.token.cancelled() => {}
                _ = serve(&ctx, &socket, &traffic) => {}
            }
        }
        .instrument(span),
    );
    Ok((task, remote_addr))
}

async fn serve(ctx: &ProxyCtx, socket: &UdpSocket, traffic: &Arc<Traffic>) {
    tokio::time::sleep(START_DELAY).await;
    let size = ctx.shared.cfg.udp_packet_size.clamp(1, 65535) as usize;
    let mut buf = vec![0u8; size];
    let start = StartWorkConn {
        proxy_name: ctx.name.clone(),
        ..Default::default()
    };
    let drops = udp::Drops::default();
    loop {
        let work = match ctx.pool.get_started(&start).await {
            Ok(w) => w,
            Err(e) => {
                warn!(error = %e, "no work connection for udp proxy, retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let wire = ctx.pool.wire();
        let (mut rd, mut wr) = tokio::io::split(wrap_work_conn(work, &ctx.wrap));
        let to_client = async {
            loop {
                let (n, from) = socket.recv_from(&mut buf).await?;
                traffic.read(n as u64);
                let pkt = UdpPacket {
                    content: buf[..n].to_vec(),
                    local_addr: None,
                    remote_addr: Some(from.into()),
                };
                udp::send(wire, &mut wr, &pkt.into(), &drops).await?;
            }
        };
        let to_user = async {
            loop {
                match tokio::time::timeout(READ_TIMEOUT, udp::recv(wire, &mut rd, &drops)).await {
                    Err(_) => {
                        return Err::<(), std::io::Error>(std::io::ErrorKind::TimedOut.into())
                    }
                    Ok(Err(e)) => return Err(std::io::Error::other(e)),
                    Ok(Ok(Message::UdpPacket(p))) => {
                        if let Some(to) = p.remote_addr.as_ref().and_then(|a| a.to_socket_addr()) {
                            traffic.written(p.content.len() as u64);
                            if let Err(e) = socket.send_to(&p.content, to).await {
                                debug!(error = %e, %to, "udp send failed");
                            }
                        }
                    }
                    Ok(Ok(_)) => {} // Ping keepalive from frpc
                }
            }
        };
        let r: std::io::Result<()> = tokio::select! { r = to_client => r, r = to_user => r };
        if let Err(e) = r {
            debug!(error = %e, "udp work connection ended, getting a new one");
        }
    }
}
