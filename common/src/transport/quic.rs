//! QUIC as frp uses it (frp `client/connector.go`, `server/service.go`; frp-protocol.md §3.1,
//! §3.4): quinn with ALPN `frp`, frps's TLS certificate (and client-certificate rule), one
//! bidirectional stream per logical connection instead of yamux, and `transport.quic.*`
//! (keep-alive period, idle timeout, incoming stream limit; defaults 10 s, 30 s, 100000).

use crate::config::QuicConfig;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// The one ALPN protocol frp's QUIC speaks.
pub const ALPN: &[u8] = b"frp";

/// A QUIC stream as a byte stream.
pub type QuicStream = tokio::io::Join<quinn::RecvStream, quinn::SendStream>;

/// Why a QUIC config could not be built.
#[derive(Debug, thiserror::Error)]
#[error("quic: {0}")]
pub struct QuicSetupError(String);

/// quic-go's stream and connection receive windows (its defaults: 6 MiB and 15 MiB).
pub const STREAM_WINDOW: u32 = 6 << 20;
pub const CONN_WINDOW: u32 = 15 << 20;

fn transport(q: &QuicConfig) -> Result<Arc<quinn::TransportConfig>, QuicSetupError> {
    let mut t = quinn::TransportConfig::default();
    if q.max_idle_timeout > 0 {
        let idle = quinn::IdleTimeout::try_from(Duration::from_secs(q.max_idle_timeout as u64))
            .map_err(|e| QuicSetupError(format!("transport.quic.maxIdleTimeout: {e}")))?;
        t.max_idle_timeout(Some(idle));
    }
    if q.keepalive_period > 0 {
        t.keep_alive_interval(Some(Duration::from_secs(q.keepalive_period as u64)));
    }
    if q.max_incoming_streams > 0 {
        let n = quinn::VarInt::from_u64(q.max_incoming_streams as u64)
            .map_err(|e| QuicSetupError(format!("transport.quic.maxIncomingStreams: {e}")))?;
        t.max_concurrent_bidi_streams(n);
    }
    t.stream_receive_window(STREAM_WINDOW.into());
    t.receive_window(CONN_WINDOW.into());
    Ok(Arc::new(t))
}

/// frpc's QUIC config: `tls` is its TLS client config (frp uses the configured files only
/// with `transport.tls.enable`, and an empty config otherwise).
pub fn client_config(
    tls: &rustls::ClientConfig,
    q: &QuicConfig,
) -> Result<quinn::ClientConfig, QuicSetupError> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls))
        .map_err(|e| QuicSetupError(e.to_string()))?;
    let mut c = quinn::ClientConfig::new(Arc::new(crypto));
    c.transport_config(transport(q)?);
    Ok(c)
}

/// frps's QUIC config: its TLS server config (the same certificate as TCP) with ALPN `frp`.
/// `max_incoming` bounds handshakes in progress (each costs memory before it logs in), and
/// `pre_login_window` what a connection may send before frps raises its window to
/// [`CONN_WINDOW`] (`Connection::set_receive_window`, at login).
pub fn server_config(
    tls: &rustls::ServerConfig,
    q: &QuicConfig,
    max_incoming: usize,
    pre_login_window: u32,
) -> Result<quinn::ServerConfig, QuicSetupError> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(Arc::new(tls))
        .map_err(|e| QuicSetupError(e.to_string()))?;
    let mut s = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut t = transport(q)?;
    if let Some(t) = Arc::get_mut(&mut t) {
        t.receive_window(pre_login_window.into());
    }
    s.transport_config(t);
    s.max_incoming(max_incoming.max(1));
    Ok(s)
}

/// Opens one logical connection on a QUIC connection (frp `OpenStreamSync`).
pub async fn open(conn: &quinn::Connection) -> io::Result<QuicStream> {
    let (send, recv) = conn.open_bi().await.map_err(io::Error::other)?;
    Ok(tokio::io::join(recv, send))
}

/// A QUIC connection's negotiated ALPN protocol, if any.
pub fn alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}

/// A client endpoint bound to the unspecified address of `target`'s family.
pub fn client_endpoint(
    target: std::net::SocketAddr,
    local: Option<std::net::IpAddr>,
) -> io::Result<quinn::Endpoint> {
    let ip = local.unwrap_or(if target.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    });
    quinn::Endpoint::client(std::net::SocketAddr::new(ip, 0))
}
