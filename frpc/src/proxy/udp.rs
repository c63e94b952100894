//! frpc's side of a udp proxy (frp `client/proxy/udp.go`): UDPPacket messages from frps go to
//! the local service from one local socket per user address `r`; replies go back with that same
//! `r`. A socket idle for 30 s is closed. A Ping keeps the work connection alive every 30 s.

use common::io::BoxStream;
use common::msg::{udp, Message, Ping, UdpAddr, UdpPacket, Wire};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

const IDLE: Duration = Duration::from_secs(30);
const PING_EVERY: Duration = Duration::from_secs(30);
/// frp's queue depth; packets beyond it are dropped, as UDP would.
const QUEUE: usize = 1024;

pub(super) async fn relay(
    work: BoxStream,
    local: (&str, u16),
    packet_size: usize,
    wire: Wire,
    proxy_protocol: &str,
    token: CancellationToken,
) {
    let local: SocketAddr = match common::dns::lookup(local.0, local.1)
        .await
        .ok()
        .and_then(|a| a.into_iter().next())
    {
        Some(a) => a,
        None => {
            debug!(host = local.0, "local udp address did not resolve");
            return;
        }
    };
    let (mut rd, mut wr) = tokio::io::split(work);
    let (out_tx, mut out_rx) = mpsc::channel::<UdpPacket>(QUEUE);
    let drops = udp::Drops::default();

    let writer = async {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            let msg: Message = tokio::select! {
                p = out_rx.recv() => match p { Some(p) => p.into(), None => return },
                _ = ping.tick() => Ping::default().into(),
            };
            if udp::send(wire, &mut wr, &msg, &drops).await.is_err() {
                return;
            }
        }
    };

    let reader = async {
        let mut socks: HashMap<UdpAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
        loop {
            let pkt = match udp::recv(wire, &mut rd, &drops).await {
                Ok(Message::UdpPacket(p)) => p,
                Ok(_) => continue,
                Err(e) if e.is_closed() => {
                    debug!("udp work connection closed");
                    return;
                }
                // frp: "read from workConn for udp error"; for sudp the bytes are the visitor's.
                Err(e) => {
                    warn!(error = %e, "read from work connection for udp error; closing it");
                    return;
                }
            };
            let Some(r) = pkt.remote_addr.clone() else {
                continue;
            };
            let tx = match socks.get(&r).filter(|t| !t.is_closed()) {
                Some(t) => t.clone(),
                None => {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    // frp prepends the header to the first datagram of each user, with the
                    // local service as destination.
                    let header = (!proxy_protocol.is_empty()).then(|| {
                        super::proxy_protocol::header(
                            proxy_protocol,
                            super::proxy_protocol::Transport::Datagram,
                            r.to_socket_addr().map(|src| (src, local)),
                        )
                    });
                    tokio::spawn(local_socket(
                        local,
                        r.clone(),
                        rx,
                        header,
                        out_tx.clone(),
                        packet_size,
                        token.child_token(),
                    ));
                    socks.insert(r, tx.clone());
                    tx
                }
            };
            let _ = tx.try_send(pkt.content);
        }
    };

    tokio::select! {
        _ = writer => {}
        _ = reader => {}
    }
}

/// One local socket for one user address.
async fn local_socket(
    local: SocketAddr,
    r: UdpAddr,
    mut rx: mpsc::Receiver<Vec<u8>>,
    mut header: Option<Vec<u8>>,
    out: mpsc::Sender<UdpPacket>,
    size: usize,
    token: CancellationToken,
) {
    let bind: SocketAddr = if local.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => {
            debug!(error = %e, "bind local udp socket");
            return;
        }
    };
    if let Err(e) = sock.connect(local).await {
        debug!(error = %e, "connect local udp socket");
        return;
    }
    let mut buf = vec![0u8; size];
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            c = rx.recv() => match c {
                Some(c) => {
                    let c = match header.take() {
                        Some(mut h) => { h.extend_from_slice(&c); h }
                        None => c,
                    };
                    let _ = sock.send(&c).await;
                }
                None => return,
            },
            r2 = tokio::time::timeout(IDLE, sock.recv(&mut buf)) => match r2 {
                Ok(Ok(n)) => {
                    let pkt = UdpPacket { content: buf[..n].to_vec(), local_addr: None, remote_addr: Some(r.clone()) };
                    if out.try_send(pkt).is_err() && out.is_closed() {
                        return;
                    }
                }
                Ok(Err(e)) => debug!(error = %e, "local udp recv"),
                Err(_) => return,
            },
        }
    }
}
