//! QUIC as frp uses it (frp `client/connector.go`, `server/service.go`; frp-protocol.md §3.1,
//! §3.4): quinn with ALPN `frp`, frps's TLS certificate (and client-certificate rule), one
//! bidirectional stream per logical connection instead of yamux, and `transport.quic.*`
//! (keep-alive period, idle timeout, incoming stream limit; defaults 10 s, 30 s, 100000).

use crate::config::QuicConfig;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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
        // Checked here; advertised a little at a time by [`StreamBudget`].
        quinn::VarInt::from_u64(q.max_incoming_streams as u64)
            .map_err(|e| QuicSetupError(format!("transport.quic.maxIncomingStreams: {e}")))?;
    }
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u64(first_streams(q)).unwrap_or_default());
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

/// Stream slots a connection's peer may use at first. quinn allocates every slot it
/// advertises (~60 bytes each, for the connection's life) where quic-go, frp's, allocates
/// as streams open: advertising frp's 100,000 at once cost ~6 MiB per connection, before
/// login. [`StreamBudget`] raises the count as streams are used, up to `maxIncomingStreams`.
pub const FIRST_STREAMS: u64 = 128;

fn max_streams(q: &QuicConfig) -> u64 {
    u64::try_from(q.max_incoming_streams)
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or(100_000)
}

fn first_streams(q: &QuicConfig) -> u64 {
    FIRST_STREAMS.min(max_streams(q))
}

/// The streams a peer may open on one connection (`transport.quic.maxIncomingStreams`, frp's
/// limit), advertised as they are used: once 3/4 of what was advertised is open, twice as
/// many (up to the limit). The peer's `OpenStreamSync` waits for the raise, as quic-go's
/// does at its limit.
#[derive(Debug, Clone)]
pub struct StreamBudget(Arc<Budget>);

#[derive(Debug)]
struct Budget {
    conn: quinn::Connection,
    open: AtomicU64,
    advertised: Mutex<u64>,
    max: u64,
}

impl StreamBudget {
    /// The budget of `conn`, made with this module's transport config for `q`.
    pub fn new(conn: &quinn::Connection, q: &QuicConfig) -> Self {
        StreamBudget(Arc::new(Budget {
            conn: conn.clone(),
            open: AtomicU64::new(0),
            advertised: Mutex::new(first_streams(q)),
            max: max_streams(q),
        }))
    }

    /// Counts an accepted stream as open until the returned stream drops.
    pub fn admit<S>(&self, stream: S) -> Budgeted<S> {
        let open = self.0.open.fetch_add(1, Ordering::AcqRel) + 1;
        let mut advertised = self.0.advertised.lock().unwrap_or_else(|p| p.into_inner());
        if open * 4 >= *advertised * 3 && *advertised < self.0.max {
            *advertised = (*advertised * 2).min(self.0.max);
            if let Ok(n) = quinn::VarInt::from_u64(*advertised) {
                self.0.conn.set_max_concurrent_bi_streams(n);
            }
        }
        Budgeted {
            inner: stream,
            budget: self.0.clone(),
        }
    }

    /// Streams now counted as open.
    pub fn open(&self) -> u64 {
        self.0.open.load(Ordering::Acquire)
    }

    /// Stream slots now advertised to the peer.
    pub fn advertised(&self) -> u64 {
        *self.0.advertised.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A stream counted by a [`StreamBudget`] while it lives.
#[derive(Debug)]
pub struct Budgeted<S> {
    inner: S,
    budget: Arc<Budget>,
}

impl<S> Drop for Budgeted<S> {
    fn drop(&mut self) {
        self.budget.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Budgeted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Budgeted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::transport::tls;

    /// A peer may hold more streams open than were first advertised: each time 3/4 are in
    /// use the budget advertises twice as many, so the peer's `open_bi` (quic-go's
    /// `OpenStreamSync`) goes on; without the raise the 129th stream would never come.
    #[tokio::test]
    async fn streams_are_advertised_as_they_are_used() {
        let q = QuicConfig::default();
        let server_tls = tls::server_config(&tls::TlsFiles::default()).unwrap();
        let sc = server_config(&server_tls, &q, 8, CONN_WINDOW).unwrap();
        let server = quinn::Endpoint::server(sc, "127.0.0.1:0".parse().unwrap()).unwrap();
        let client_tls = tls::client_config(&tls::TlsFiles::default()).unwrap();
        let cc = client_config(&client_tls, &q).unwrap();
        let client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let connecting = client
            .connect_with(cc, server.local_addr().unwrap(), "localhost")
            .unwrap();
        let (conn_c, conn_s) =
            tokio::join!(connecting, async { server.accept().await.unwrap().await });
        let (conn_c, conn_s) = (conn_c.unwrap(), conn_s.unwrap());
        let budget = StreamBudget::new(&conn_s, &q);
        assert_eq!(budget.advertised(), FIRST_STREAMS);
        const N: usize = 300;
        let opener = tokio::spawn(async move {
            let mut held = Vec::new();
            for _ in 0..N {
                let (mut send, recv) = conn_c.open_bi().await.unwrap();
                send.write_all(b"x").await.unwrap();
                held.push((send, recv));
            }
            (conn_c, held)
        });
        let mut accepted = Vec::new();
        for i in 0..N {
            let (send, recv) = tokio::time::timeout(Duration::from_secs(10), conn_s.accept_bi())
                .await
                .unwrap_or_else(|_| panic!("stream {} never came", i + 1))
                .unwrap();
            accepted.push(budget.admit(tokio::io::join(recv, send)));
        }
        assert_eq!(budget.open(), N as u64);
        assert!(budget.advertised() >= N as u64, "{}", budget.advertised());
        assert!(
            budget.advertised() <= 4 * N as u64,
            "{}",
            budget.advertised()
        );
        drop(accepted);
        assert_eq!(budget.open(), 0);
        drop(opener.await.unwrap());
    }

    /// The limit is `maxIncomingStreams` when that is lower than the first count.
    #[test]
    fn first_and_most_streams_follow_the_config() {
        let mut q = QuicConfig::default();
        assert_eq!(
            (first_streams(&q), max_streams(&q)),
            (FIRST_STREAMS, 100_000)
        );
        q.max_incoming_streams = 10;
        assert_eq!((first_streams(&q), max_streams(&q)), (10, 10));
    }
}
