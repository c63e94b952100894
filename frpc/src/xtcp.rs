//! xtcp on frpc (frp `pkg/nathole/nathole.go`, `client/visitor/xtcp.go`, `client/proxy/xtcp.go`;
//! frp-protocol.md §10.2): what the visitor and the proxy side share.
//!
//! - [`NatLink`]: NatHole messages over the session's control, answers matched to their
//!   request by transaction id (frp's `MessageTransporter`);
//! - [`prepare`]: STUN discovery on the UDP socket that will punch (frp `Prepare`);
//! - [`make_hole`]: the punching rounds as frps's NatHoleResp says (role, TTL, delays, port
//!   ranges, random ports; frp `MakeHole`);
//! - [`tunnel`]: the [`Tunnel`] over the punched socket, as `protocol` says: QUIC
//!   with ALPN `frp` (the visitor dials, the proxy side listens with a self-signed
//!   certificate), or KCP (conversation 1, FEC 10/3) with yamux over it (the visitor is the
//!   yamux client).
//!
//! Each user connection is then one stream of the tunnel with no frp message in it.

use crate::nathole::{discover_on, local_ips};
use common::config::QuicConfig;
use common::crypto::Key;
use common::io::BoxStream;
use common::msg::{Message, NatHoleResp, NatHoleSid};
use common::nathole::{decode_punch, encode_punch, new_id};
use common::transport::kcp::{KcpConfig, KcpStream};
use common::transport::{mux, quic, tls};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, trace, warn};

/// frp's timeouts for the pre-check and for each side's exchange with frps.
pub(crate) const PRECHECK_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// frp's default punch read timeout when frps gives none.
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the proxy side waits for the visitor's QUIC handshake after the punch (frp waits
/// as long as the proxy lives).
pub(crate) const ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);
/// frp's xtcp KCP conversation id (`NewConn3(1, ...)`).
const XTCP_KCP_CONV: u32 = 1;
/// frp's xtcp yamux `KeepAliveInterval`.
const XTCP_MUX_KEEPALIVE_SECS: i64 = 10;
/// Requests waiting for frps's answer at once, per session.
const MAX_WAITERS: usize = 256;
/// Undecodable datagrams on a punching socket are logged at most once per period.
static GARBAGE_LOG: common::log::Throttle = common::log::Throttle::new(Duration::from_secs(10));
/// QUIC handshakes from other addresses than the punched peer: logged at most once per period.
static FOREIGN_LOG: common::log::Throttle = common::log::Throttle::new(Duration::from_secs(10));
/// The largest UDP payload an xtcp endpoint takes (quinn's default, 65527, sizes each
/// endpoint's receive buffer at 64 KiB x GRO segments x batch: megabytes per tunnel). Punched
/// paths carry QUIC packets of at most a 1500-byte MTU; quic-go sends at most 1452 bytes.
const XTCP_MAX_UDP_PAYLOAD: u16 = 1500;

/// NatHole messages over one session's control.
#[derive(Debug)]
pub(crate) struct NatLink {
    out: mpsc::Sender<Message>,
    waiters: Mutex<HashMap<String, oneshot::Sender<NatHoleResp>>>,
}

/// Removes a waiter however its wait ends.
struct Waiting<'a>(&'a NatLink, String);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiters().remove(&self.1);
    }
}

impl NatLink {
    pub(crate) fn new(out: mpsc::Sender<Message>) -> Arc<Self> {
        Arc::new(NatLink {
            out,
            waiters: Mutex::default(),
        })
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<NatHoleResp>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `m` and waits up to `timeout` for the NatHoleResp with transaction id `tid`.
    pub(crate) async fn exchange(
        &self,
        m: Message,
        tid: &str,
        timeout: Duration,
    ) -> Result<NatHoleResp, String> {
        let (tx, rx) = oneshot::channel();
        {
            let mut w = self.waiters();
            if w.len() >= MAX_WAITERS {
                return Err("too many NAT hole requests waiting for the server".into());
            }
            w.insert(tid.to_owned(), tx);
        }
        let _waiting = Waiting(self, tid.to_owned());
        self.send(m).await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err("session closed".into()),
            Err(_) => Err(format!("no NatHoleResp within {timeout:?}")),
        }
    }

    /// Queues a message on the control.
    pub(crate) async fn send(&self, m: Message) -> Result<(), String> {
        self.out
            .send(m)
            .await
            .map_err(|_| "session closed".to_owned())
    }

    /// A NatHoleResp from frps: to the request waiting for it, if any.
    pub(crate) fn deliver(&self, r: NatHoleResp) {
        match self.waiters().remove(&r.transaction_id) {
            Some(tx) => {
                let _ = tx.send(r);
            }
            None => {
                debug!(transaction_id = %common::log::printable(&r.transaction_id, 64), "NatHoleResp for no waiting request")
            }
        }
    }
}

/// frp `ExchangeInfo`'s checks of an answer.
pub(crate) fn check_resp(r: NatHoleResp) -> Result<NatHoleResp, String> {
    if !r.error.is_empty() {
        return Err(format!("natHoleRespMsg get error info: {}", r.error));
    }
    if r.candidate_addrs.is_empty() {
        return Err("natHoleRespMsg get empty candidate addresses".into());
    }
    Ok(r)
}

/// What [`prepare`] found, and the socket that found it.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) addrs: Vec<String>,
    pub(crate) assisted: Vec<String>,
    pub(crate) socket: UdpSocket,
    pub(crate) nat: common::nathole::NatFeature,
}

/// frp `Prepare`: our mapped addresses from the STUN server (two are needed), our own
/// addresses with the socket's port as assisted addresses unless disabled. Logged as frp
/// does; the error is frp's `nathole prepare error: ...`.
pub(crate) async fn prepare(stun: &str, disable_assisted: bool) -> Result<Prepared, String> {
    let p = discover_nat(stun, disable_assisted)
        .await
        .map_err(|e| format!("nathole prepare error: {e}"))?;
    tracing::info!(nat_type = p.nat.nat_type, behavior = p.nat.behavior, addresses = ?p.addrs, assisted = ?p.assisted, "nathole prepare success");
    Ok(p)
}

async fn discover_nat(stun: &str, disable_assisted: bool) -> Result<Prepared, String> {
    let socket = UdpSocket::bind(("0.0.0.0", 0))
        .await
        .map_err(|e| format!("listen udp: {e}"))?;
    let port = socket.local_addr().map_err(|e| e.to_string())?.port();
    let addrs = discover_on(&socket, stun)
        .await
        .map_err(|e| format!("discover error: {e}"))?;
    if addrs.len() < 2 {
        return Err("discover error: not enough addresses".into());
    }
    let ips = local_ips(stun).await;
    let nat = common::nathole::classify(&addrs, &ips)
        .map_err(|e| format!("classify nat feature error: {e}"))?;
    let assisted = if disable_assisted {
        Vec::new()
    } else {
        ips.iter()
            .map(|ip| SocketAddr::new(*ip, port).to_string())
            .collect()
    };
    Ok(Prepared {
        addrs: addrs.iter().map(ToString::to_string).collect(),
        assisted,
        socket,
        nat,
    })
}

/// Candidate (and assisted) addresses of the peer that are punched, each list: frp punches
/// all it is given, so a peer listing hundreds would make this frpc spray third parties.
const MAX_PEER_ADDRS: usize = 16;

/// One punch datagram from `sock` to `addr`, with `ttl` if set (frp `sendSidMessage`).
async fn send_sid(sock: &UdpSocket, sid: &str, tid: &str, addr: &str, key: &Key, ttl: i64) {
    let Ok(to) = addr.parse::<SocketAddr>() else {
        trace!(addr = %common::log::printable(addr, 64), "not an address, skipped");
        return;
    };
    let m = NatHoleSid {
        transaction_id: tid.into(),
        sid: sid.into(),
        response: false,
        nonce: "0".repeat(rand::random::<usize>() % 20),
    };
    let original = (ttl > 0).then(|| sock.ttl().ok()).flatten();
    if let (Some(_), Ok(t)) = (original, u32::try_from(ttl)) {
        let _ = sock.set_ttl(t);
    }
    if let Err(e) = sock.send_to(&encode_punch(&m, key), to).await {
        trace!(%to, error = %e, "send sid message failed");
    }
    if let Some(t) = original {
        let _ = sock.set_ttl(t);
    }
}

fn parse_ips(addrs: &[String]) -> Vec<std::net::IpAddr> {
    let mut ips: Vec<_> = addrs
        .iter()
        .filter_map(|a| a.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .collect();
    ips.dedup();
    ips.truncate(MAX_PEER_ADDRS);
    ips
}

/// Waits on `sock` for the peer's punch with our `sid` (frp `waitDetectMessage`): a receiver
/// answers the first request and is done; a sender waits for an answer. Anything else is
/// logged (throttled) and skipped.
async fn wait_detect(
    sock: &UdpSocket,
    sid: &str,
    key: &Key,
    sender: bool,
) -> Result<SocketAddr, String> {
    let mut buf = vec![0u8; 1024];
    loop {
        let (n, from) = sock.recv_from(&mut buf).await.map_err(|e| e.to_string())?;
        let m = match decode_punch(&buf[..n], key) {
            Ok(m) => m,
            Err(e) => {
                if let Some(held) = GARBAGE_LOG.ready() {
                    warn!(%from, error = %e, similar_held_back = held, "decode sid message error: datagram ignored");
                }
                continue;
            }
        };
        if m.sid != sid {
            if let Some(held) = GARBAGE_LOG.ready() {
                warn!(%from, sid = %common::log::printable(&m.sid, 64), expected = %sid, similar_held_back = held, "sid message with the wrong sid ignored");
            }
            continue;
        }
        if !m.response {
            if sender {
                continue;
            }
            let answer = NatHoleSid {
                response: true,
                ..m
            };
            let _ = sock.send_to(&encode_punch(&answer, key), from).await;
        }
        return Ok(from);
    }
}

/// frp `MakeHole`: punches as `m.detect_behavior` says and returns the socket that heard the
/// peer and the peer's address.
pub(crate) async fn make_hole(
    socket: UdpSocket,
    m: &NatHoleResp,
    key: &Key,
) -> Result<(UdpSocket, SocketAddr), String> {
    let b = &m.detect_behavior;
    let tid = new_id();
    let sender = b.role == "sender";
    let mut socks = vec![socket];
    let mut detect: Vec<String> = Vec::new();
    if sender {
        if b.send_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(b.send_delay_ms as u64)).await;
        }
        detect.extend(m.assisted_addrs.iter().take(MAX_PEER_ADDRS).cloned());
        detect.extend(m.candidate_addrs.iter().take(MAX_PEER_ADDRS).cloned());
    } else {
        if b.candidate_ports.is_empty() {
            detect.extend(m.candidate_addrs.iter().take(MAX_PEER_ADDRS).cloned());
        }
        for _ in 0..b.listen_random_ports.clamp(0, 256) {
            match UdpSocket::bind(("0.0.0.0", 0)).await {
                Ok(s) => socks.push(s),
                Err(e) => warn!(error = %e, "listen random udp addr error"),
            }
        }
    }
    detect.dedup();
    for addr in &detect {
        for s in &socks {
            send_sid(s, &m.sid, &tid, addr, key, b.ttl).await;
        }
    }
    if !b.candidate_ports.is_empty() {
        for s in &socks {
            for ip in parse_ips(&m.candidate_addrs) {
                for r in &b.candidate_ports {
                    for port in r.from.max(1)..=r.to.min(65535) {
                        let addr = SocketAddr::new(ip, port as u16).to_string();
                        send_sid(s, &m.sid, &tid, &addr, key, b.ttl).await;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
            }
        }
    }
    let timeout = if b.read_timeout > 0 {
        Duration::from_millis(b.read_timeout as u64)
    } else {
        DEFAULT_READ_TIMEOUT
    };
    let heard = {
        let random_ports = async {
            if b.send_random_ports > 0 {
                let ips = parse_ips(&m.candidate_addrs);
                let mut used = std::collections::HashSet::new();
                for _ in 0..b.send_random_ports.min(65535) {
                    let port = 1024 + rand::random::<u16>() % (65535 - 1024);
                    if !used.insert(port) {
                        continue;
                    }
                    for ip in &ips {
                        let addr = SocketAddr::new(*ip, port).to_string();
                        for s in &socks {
                            send_sid(s, &m.sid, &tid, &addr, key, b.ttl).await;
                        }
                        tokio::time::sleep(Duration::from_millis(15)).await;
                    }
                }
            }
            std::future::pending::<()>().await
        };
        let waits = socks.iter().enumerate().map(|(i, s)| {
            Box::pin(async move { wait_detect(s, &m.sid, key, sender).await.map(|a| (i, a)) })
        });
        tokio::select! {
            r = tokio::time::timeout(timeout, futures::future::select_ok(waits)) => match r {
                Ok(Ok(((i, from), _))) => Ok((i, from)),
                Ok(Err(e)) => Err(format!("wait detect message error: {e}")),
                Err(_) => Err(format!("wait detect message timeout ({timeout:?})")),
            },
            () = random_ports => Err("random port sender ended".to_owned()),
        }
    };
    let (i, from) = heard?;
    Ok((socks.swap_remove(i), from))
}

/// A QUIC endpoint on the punched socket.
fn endpoint(
    socket: UdpSocket,
    server: Option<quinn::ServerConfig>,
) -> Result<quinn::Endpoint, String> {
    let std = socket.into_std().map_err(|e| e.to_string())?;
    let mut config = quinn::EndpointConfig::default();
    config
        .max_udp_payload_size(XTCP_MAX_UDP_PAYLOAD)
        .map_err(|e| format!("quic endpoint: {e}"))?;
    quinn::Endpoint::new(config, server, std, Arc::new(quinn::TokioRuntime))
        .map_err(|e| format!("quic endpoint: {e}"))
}

/// An xtcp tunnel over the punched socket: QUIC, or yamux over KCP (frp's `protocol`). The
/// visitor opens streams, the proxy side accepts them; each is one user connection.
#[derive(Debug, Clone)]
pub(crate) enum Tunnel {
    Quic {
        endpoint: quinn::Endpoint,
        conn: quinn::Connection,
        /// The streams the peer may open, advertised as they are used.
        budget: quic::StreamBudget,
    },
    Kcp(Arc<KcpTunnel>),
}

/// yamux over a KCP conversation; the session ends when this is dropped or closed.
#[derive(Debug)]
pub(crate) struct KcpTunnel {
    peer: SocketAddr,
    mux: KcpMux,
    stop: CancellationToken,
}

#[derive(Debug)]
enum KcpMux {
    /// The visitor: yamux client.
    Opener(mux::Opener),
    /// The proxy side: yamux server.
    Incoming(tokio::sync::Mutex<mux::Incoming>),
}

impl Drop for KcpTunnel {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Tunnel {
    pub(crate) fn peer(&self) -> SocketAddr {
        match self {
            Tunnel::Quic { conn, .. } => conn.remote_address(),
            Tunnel::Kcp(k) => k.peer,
        }
    }

    /// Whether `other` is this tunnel.
    pub(crate) fn same(&self, other: &Tunnel) -> bool {
        match (self, other) {
            (Tunnel::Quic { conn: a, .. }, Tunnel::Quic { conn: b, .. }) => {
                a.stable_id() == b.stable_id()
            }
            (Tunnel::Kcp(a), Tunnel::Kcp(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// A new stream to the peer (the visitor's side).
    pub(crate) async fn open(&self) -> Result<BoxStream, String> {
        match self {
            Tunnel::Quic { conn, .. } => {
                let (send, recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
                Ok(stream(send, recv))
            }
            Tunnel::Kcp(k) => match &k.mux {
                KcpMux::Opener(o) => Ok(Box::new(o.open().map_err(|e| e.to_string())?)),
                KcpMux::Incoming(_) => Err("the proxy side does not open streams".into()),
            },
        }
    }

    /// The peer's next stream (the proxy side); an error once the tunnel has ended.
    pub(crate) async fn accept(&self) -> Result<BoxStream, String> {
        match self {
            Tunnel::Quic { conn, budget, .. } => {
                let (send, recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
                Ok(Box::new(budget.admit(tokio::io::join(recv, send))))
            }
            Tunnel::Kcp(k) => match &k.mux {
                KcpMux::Incoming(i) => match i.lock().await.accept().await {
                    Some(s) => Ok(Box::new(s)),
                    None => Err("yamux session over kcp ended".into()),
                },
                KcpMux::Opener(_) => Err("the visitor does not accept streams".into()),
            },
        }
    }

    pub(crate) fn close(&self) {
        match self {
            Tunnel::Quic { endpoint, conn, .. } => {
                conn.close(0u32.into(), b"");
                endpoint.close(0u32.into(), b"");
            }
            Tunnel::Kcp(k) => k.stop.cancel(),
        }
    }
}

/// The tunnel over the punched `socket` to `peer` (frp's `TunnelSession.Init` for the
/// visitor, `listenByKCP`/`listenByQUIC` for the proxy side, which follows frps's NatHoleResp:
/// kcp, else QUIC). The error names the failing step (the metric's `result`).
pub(crate) async fn tunnel(
    socket: UdpSocket,
    peer: SocketAddr,
    protocol: &str,
    q: &QuicConfig,
    visitor: bool,
) -> Result<Tunnel, (&'static str, String)> {
    match (protocol, visitor) {
        ("kcp", _) => kcp(socket, peer, visitor).await.map_err(|e| ("kcp", e)),
        (_, true) => dial_quic(socket, peer, q).await.map_err(|e| ("quic", e)),
        (_, false) => accept_quic(socket, peer, q).await.map_err(|e| ("quic", e)),
    }
}

/// frp `NewKCPConnFromUDP` then yamux (frp's xtcp: keepalive 10 s, stream window 6 MiB): the
/// socket connected to `peer`, KCP conversation 1 with FEC 10/3 and windows 1024/1024, the
/// visitor as yamux client, the proxy side as server.
async fn kcp(socket: UdpSocket, peer: SocketAddr, client: bool) -> Result<Tunnel, String> {
    socket
        .connect(peer)
        .await
        .map_err(|e| format!("dial udp error: {e}"))?;
    let conn = KcpStream::over_socket(socket, XTCP_KCP_CONV, KcpConfig::server())
        .map_err(|e| format!("create kcp connection from udp connection error: {e}"))?;
    let cfg = mux::config(XTCP_MUX_KEEPALIVE_SECS);
    let stop = CancellationToken::new();
    let (m, driver) = if client {
        let (o, d) = mux::client(Box::new(conn), cfg);
        (KcpMux::Opener(o), d)
    } else {
        let (i, d) = mux::server(Box::new(conn), cfg);
        (KcpMux::Incoming(tokio::sync::Mutex::new(i)), d)
    };
    let until = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            r = driver => if let Err(e) = r {
                debug!(%peer, error = %e, "xtcp yamux session over kcp ended");
            },
            () = until.cancelled() => {}
        }
    });
    Ok(Tunnel::Kcp(Arc::new(KcpTunnel { peer, mux: m, stop })))
}

/// The visitor's side: QUIC to the peer, any certificate accepted (frp: InsecureSkipVerify).
async fn dial_quic(socket: UdpSocket, peer: SocketAddr, q: &QuicConfig) -> Result<Tunnel, String> {
    let tls = tls::client_config(&tls::TlsFiles::default()).map_err(|e| e.to_string())?;
    let cc = quic::client_config(&tls, q).map_err(|e| e.to_string())?;
    let endpoint = endpoint(socket, None)?;
    let connecting = endpoint
        .connect_with(cc, peer, &peer.ip().to_string())
        .map_err(|e| format!("dial quic error: {e}"))?;
    let conn = tokio::time::timeout(ACCEPT_TIMEOUT, connecting)
        .await
        .map_err(|_| "dial quic error: handshake timed out".to_owned())?
        .map_err(|e| format!("dial quic error: {e}"))?;
    let budget = quic::StreamBudget::new(&conn, q);
    Ok(Tunnel::Quic {
        endpoint,
        conn,
        budget,
    })
}

/// The proxy side's QUIC server: a self-signed certificate, ALPN `frp`, at most 4 handshakes
/// at once, and an SNI that is not a host name ignored: Go frpc's visitor sends the peer's
/// `ip:port` as SNI (frp `client/visitor/xtcp.go`, `raddr.String()`), which quic-go's server
/// ignores and rustls refuses by default.
fn tunnel_server_config(q: &QuicConfig) -> Result<quinn::ServerConfig, String> {
    let mut tls = Arc::unwrap_or_clone(
        tls::server_config(&tls::TlsFiles::default()).map_err(|e| e.to_string())?,
    );
    tls.invalid_sni_policy = rustls::server::InvalidSniPolicy::IgnoreAll;
    quic::server_config(&tls, q, 4, quic::CONN_WINDOW).map_err(|e| e.to_string())
}

/// The proxy side: a self-signed certificate, and the first handshake from `peer` (others
/// are refused) within [`ACCEPT_TIMEOUT`].
async fn accept_quic(
    socket: UdpSocket,
    peer: SocketAddr,
    q: &QuicConfig,
) -> Result<Tunnel, String> {
    let endpoint = endpoint(socket, Some(tunnel_server_config(q)?))?;
    let wait = async {
        loop {
            let Some(incoming) = endpoint.accept().await else {
                return Err("quic endpoint closed".to_owned());
            };
            if incoming.remote_address() != peer {
                if let Some(held) = FOREIGN_LOG.ready() {
                    warn!(from = %incoming.remote_address(), expected = %peer, similar_held_back = held, "quic handshake from another address than the punched peer ignored");
                }
                // Not answered: a spoofed source gets nothing back.
                incoming.ignore();
                continue;
            }
            return incoming
                .await
                .map_err(|e| format!("quic accept connection error: {e}"));
        }
    };
    let conn = tokio::time::timeout(ACCEPT_TIMEOUT, wait)
        .await
        .map_err(|_| format!("no quic handshake from {peer} within {ACCEPT_TIMEOUT:?}"))??;
    let budget = quic::StreamBudget::new(&conn, q);
    Ok(Tunnel::Quic {
        endpoint,
        conn,
        budget,
    })
}

/// A QUIC stream as a [`BoxStream`].
fn stream(send: quinn::SendStream, recv: quinn::RecvStream) -> BoxStream {
    Box::new(tokio::io::join(recv, send))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use common::msg::{NatHoleDetectBehavior, PortsRange};

    /// What Go frpc's xtcp visitor puts in its QUIC ClientHello's SNI: `raddr.String()`
    /// (frp `client/visitor/xtcp.go`), an address with a port, not a host name.
    const GO_VISITOR_SNI: &[u8] = b"127.0.0.1:4242";
    /// A valid host name of the same length, replaced by [`GO_VISITOR_SNI`] in the encoded
    /// ClientHello (lengths and everything else stay as the client wrote them).
    const SAME_LENGTH_NAME: &str = "aaaaaaaaaa.com";

    /// A QUIC v1 ClientHello from a rustls client (ALPN `frp`), whose SNI says `sni` (as
    /// long as [`SAME_LENGTH_NAME`]).
    fn client_hello(sni: &[u8]) -> Vec<u8> {
        assert_eq!(sni.len(), SAME_LENGTH_NAME.len());
        let mut tls = (*tls::client_config(&tls::TlsFiles::default()).unwrap()).clone();
        tls.alpn_protocols = vec![quic::ALPN.to_vec()];
        let client =
            Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls)).unwrap());
        let params = transport_params();
        let mut session =
            quinn::crypto::ClientConfig::start_session(client, 1, SAME_LENGTH_NAME, &params)
                .unwrap();
        let mut hello = Vec::new();
        session.write_handshake(&mut hello);
        let at = hello
            .windows(SAME_LENGTH_NAME.len())
            .position(|w| w == SAME_LENGTH_NAME.as_bytes())
            .unwrap();
        hello[at..at + sni.len()].copy_from_slice(sni);
        hello
    }

    /// The client's connection ids in the QUIC Initial of [`proxy_side_answers_a_go_visitors_quic_initial`].
    const CLIENT_DCID: &[u8] = b"frp-dcid";
    const CLIENT_SCID: &[u8] = b"frp-scid";

    /// Transport parameters that say only `initial_source_connection_id` = [`CLIENT_SCID`]
    /// (the one a QUIC server checks before it answers).
    fn transport_params() -> quinn_proto::transport_parameters::TransportParameters {
        let mut encoded = vec![0x0f, CLIENT_SCID.len() as u8];
        encoded.extend_from_slice(CLIENT_SCID);
        quinn_proto::transport_parameters::TransportParameters::read(
            quinn::Side::Server,
            &mut &encoded[..],
        )
        .unwrap()
    }

    /// Feeds `hello` to a QUIC v1 server session of `server`; the bytes it answers with.
    fn server_answer(
        server: &quinn::ServerConfig,
        hello: &[u8],
    ) -> Result<Vec<u8>, quinn_proto::TransportError> {
        let mut session = server.crypto.clone().start_session(1, &transport_params());
        session.read_handshake(hello)?;
        let mut out = Vec::new();
        session.write_handshake(&mut out);
        Ok(out)
    }

    /// A Go frpc xtcp visitor's ClientHello (SNI `ip:port`) gets a ServerHello from the
    /// proxy side's QUIC server (the config production uses), as from quic-go's.
    #[test]
    fn proxy_side_quic_accepts_go_visitors_sni() {
        let server = tunnel_server_config(&QuicConfig::default()).unwrap();
        let answer = server_answer(&server, &client_hello(GO_VISITOR_SNI)).unwrap();
        // A ServerHello handshake message leads the answer.
        assert_eq!(answer.first(), Some(&2), "{answer:?}");
    }

    /// RFC 9000 §16 variable-length integer at `at`.
    fn get_varint(b: &[u8], at: &mut usize) -> u64 {
        let len = 1usize << (b[*at] >> 6);
        let mut v = u64::from(b[*at] & 0x3f);
        for x in &b[*at + 1..*at + len] {
            v = v << 8 | u64::from(*x);
        }
        *at += len;
        v
    }

    /// A client's first QUIC v1 Initial packet (RFC 9000 §17.2.2, RFC 9001 §5) carrying
    /// `hello` in one CRYPTO frame, padded to a 1200-byte datagram.
    fn client_initial(keys: &quinn::crypto::Keys, hello: &[u8]) -> Vec<u8> {
        let tag = keys.packet.remote.tag_len();
        // Long header, Initial, 4-byte packet number; version 1; the ids; no token.
        let mut packet = vec![0xc3, 0, 0, 0, 1, CLIENT_DCID.len() as u8];
        packet.extend_from_slice(CLIENT_DCID);
        packet.push(CLIENT_SCID.len() as u8);
        packet.extend_from_slice(CLIENT_SCID);
        packet.push(0);
        let body = 1200 - packet.len() - 2 - 4 - tag;
        let length = (4 + body + tag) as u16;
        packet.extend_from_slice(&(0x4000 | length).to_be_bytes());
        let pn_offset = packet.len();
        packet.extend_from_slice(&0u32.to_be_bytes());
        let start = packet.len();
        packet.extend_from_slice(&[0x06, 0x00]);
        packet.extend_from_slice(&(0x4000 | hello.len() as u16).to_be_bytes());
        packet.extend_from_slice(hello);
        packet.resize(start + body + tag, 0);
        keys.packet.remote.encrypt(0, &mut packet, pn_offset + 4);
        keys.header.remote.encrypt(pn_offset, &mut packet);
        packet
    }

    /// What the server's first Initial packet in `datagram` carries: the CRYPTO data, or the
    /// CONNECTION_CLOSE error code.
    fn server_initial(keys: &quinn::crypto::Keys, datagram: &mut [u8]) -> Result<Vec<u8>, u64> {
        assert_eq!(datagram[0] & 0xf0, 0xc0, "not an Initial packet first");
        let mut at = 5;
        at += 1 + usize::from(datagram[at]);
        at += 1 + usize::from(datagram[at]);
        let token = get_varint(datagram, &mut at) as usize;
        at += token;
        let length = get_varint(datagram, &mut at) as usize;
        let pn_offset = at;
        let packet = &mut datagram[..pn_offset + length];
        keys.header.local.decrypt(pn_offset, packet);
        let pn_len = usize::from(packet[0] & 0x03) + 1;
        let (header, rest) = packet.split_at(pn_offset + pn_len);
        let mut payload = bytes::BytesMut::from(rest);
        keys.packet.local.decrypt(0, header, &mut payload).unwrap();
        let mut at = 0;
        let mut crypto = Vec::new();
        while at < payload.len() {
            match get_varint(&payload, &mut at) {
                0x00 | 0x01 => {}
                t @ (0x02 | 0x03) => {
                    let _largest = get_varint(&payload, &mut at);
                    let _delay = get_varint(&payload, &mut at);
                    let ranges = get_varint(&payload, &mut at);
                    let _first = get_varint(&payload, &mut at);
                    for _ in 0..ranges * 2 + if t == 0x03 { 3 } else { 0 } {
                        get_varint(&payload, &mut at);
                    }
                }
                0x06 => {
                    let _offset = get_varint(&payload, &mut at);
                    let len = get_varint(&payload, &mut at) as usize;
                    crypto.extend_from_slice(&payload[at..at + len]);
                    at += len;
                }
                0x1c => return Err(get_varint(&payload, &mut at)),
                t => panic!("unexpected frame type {t:#x} in the server's Initial"),
            }
        }
        Ok(crypto)
    }

    /// End to end on the proxy side's real QUIC endpoint (`accept_quic`, what `tunnel` runs
    /// after the punch): a Go visitor's first Initial, with SNI `ip:port`, is answered with a
    /// ServerHello, not with CONNECTION_CLOSE (crypto error 0x12f, illegal_parameter), as
    /// quic-go's server answers it.
    #[tokio::test]
    async fn proxy_side_answers_a_go_visitors_quic_initial() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peer = client.local_addr().unwrap();
        let q = QuicConfig::default();
        let accepting = tokio::spawn(async move { accept_quic(server, peer, &q).await });
        let keys = tunnel_server_config(&QuicConfig::default())
            .unwrap()
            .crypto
            .initial_keys(1, &quinn::ConnectionId::new(CLIENT_DCID))
            .unwrap();
        let initial = client_initial(&keys, &client_hello(GO_VISITOR_SNI));
        assert_eq!(initial.len(), 1200);
        client.send_to(&initial, server_addr).await.unwrap();
        let mut buf = vec![0u8; 65536];
        let (n, from) = tokio::time::timeout(Duration::from_secs(10), client.recv_from(&mut buf))
            .await
            .expect("no answer from the proxy side's QUIC endpoint")
            .unwrap();
        assert_eq!(from, server_addr);
        let crypto = server_initial(&keys, &mut buf[..n]);
        accepting.abort();
        let crypto = crypto.unwrap_or_else(|code| {
            panic!("the proxy side closed the connection: error code {code:#x}")
        });
        // A ServerHello handshake message.
        assert_eq!(crypto.first(), Some(&2), "{crypto:?}");
    }

    /// Our other QUIC/TLS servers keep rustls's default: the same ClientHello is refused
    /// (the backported policy does not change the default).
    #[test]
    fn other_quic_servers_still_refuse_an_invalid_sni() {
        let tls = tls::server_config(&tls::TlsFiles::default()).unwrap();
        let server =
            quic::server_config(&tls, &QuicConfig::default(), 4, quic::CONN_WINDOW).unwrap();
        let err = server_answer(&server, &client_hello(GO_VISITOR_SNI)).unwrap_err();
        assert!(
            err.to_string().contains("ServerNameMustContainOneHostName"),
            "{err}"
        );
        // The unmodified ClientHello is accepted there: the refusal is the SNI's.
        assert!(server_answer(&server, &client_hello(SAME_LENGTH_NAME.as_bytes())).is_ok());
    }

    fn resp(sid: &str, peer: SocketAddr, b: NatHoleDetectBehavior) -> NatHoleResp {
        NatHoleResp {
            sid: sid.into(),
            candidate_addrs: vec![peer.to_string()],
            detect_behavior: b,
            ..Default::default()
        }
    }

    /// frp's receiver and sender meet on one host in the behaviours that do not guess at
    /// random: TTL-limited first punches, port ranges around the peer's port, extra listening
    /// sockets on the receiver's side.
    #[tokio::test]
    async fn receiver_and_sender_meet() {
        let key = common::nathole::punch_key("sk");
        let receivers = [
            NatHoleDetectBehavior {
                role: "receiver".into(),
                ttl: 7,
                ..Default::default()
            },
            NatHoleDetectBehavior {
                role: "receiver".into(),
                ..Default::default()
            },
            NatHoleDetectBehavior {
                role: "receiver".into(),
                listen_random_ports: 3,
                ..Default::default()
            },
        ];
        for (i, rb) in receivers.into_iter().enumerate() {
            let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
            let mut rb = rb;
            if i == 1 {
                let p = i64::from(ba.port());
                rb.candidate_ports = vec![PortsRange {
                    from: p - 2,
                    to: p + 2,
                }];
            }
            let sid = format!("sid{i}");
            let ra = resp(&sid, ba, rb);
            let sender = NatHoleDetectBehavior {
                role: "sender".into(),
                read_timeout: 5000,
                ..Default::default()
            };
            let rs = resp(&sid, aa, sender);
            let (x, y) = tokio::join!(make_hole(a, &ra, &key), make_hole(b, &rs, &key));
            let ((_, from_a), (_, from_b)) = (x.unwrap(), y.unwrap());
            assert_eq!((from_a, from_b), (ba, aa), "case {i}");
        }
    }

    /// Another key or another sid never completes a punch: it ends at the read timeout.
    #[tokio::test(start_paused = true)]
    async fn wrong_key_or_sid_never_completes() {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let recv = NatHoleDetectBehavior {
            role: "receiver".into(),
            read_timeout: 3000,
            ..Default::default()
        };
        let send = NatHoleDetectBehavior {
            role: "sender".into(),
            read_timeout: 3000,
            ..Default::default()
        };
        let (k1, k2) = (
            common::nathole::punch_key("one"),
            common::nathole::punch_key("two"),
        );
        let (ra, rb) = (resp("s", ba, recv.clone()), resp("s", aa, send.clone()));
        let (x, y) = tokio::join!(make_hole(a, &ra, &k1), make_hole(b, &rb, &k2));
        assert!(x.unwrap_err().contains("timeout") && y.unwrap_err().contains("timeout"));
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let (ra, rb) = (resp("s1", ba, recv), resp("s2", aa, send));
        let (x, y) = tokio::join!(make_hole(a, &ra, &k1), make_hole(b, &rb, &k1));
        assert!(x.is_err() && y.is_err());
    }

    /// A NatHoleResp listing many addresses (a Go frps passes on all a visitor sent) makes
    /// frpc punch only the first few of them, not spray every one.
    #[tokio::test]
    async fn punches_a_bounded_number_of_addresses() {
        let key = common::nathole::punch_key("sk");
        let mut targets = Vec::new();
        for _ in 0..60 {
            targets.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        }
        let addrs: Vec<String> = targets
            .iter()
            .map(|t| t.local_addr().unwrap().to_string())
            .collect();
        let m = NatHoleResp {
            sid: "s".into(),
            candidate_addrs: addrs[..30].to_vec(),
            assisted_addrs: addrs[30..].to_vec(),
            detect_behavior: NatHoleDetectBehavior {
                role: "sender".into(),
                read_timeout: 1,
                ..Default::default()
            },
            ..Default::default()
        };
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert!(make_hole(sock, &m, &key).await.is_err());
        // Datagrams between local sockets are queued by the time send_to returns.
        let mut buf = [0u8; 1500];
        let reached = targets
            .iter()
            .filter(|t| t.try_recv_from(&mut buf).is_ok())
            .count();
        assert!(reached <= 2 * MAX_PEER_ADDRS, "{reached} addresses punched");
        assert!(reached > 0);
    }
}
