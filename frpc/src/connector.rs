//! One session's logical connections to frps (frp `client/connector.go`): the dialer of
//! `transport.protocol` ([`common::transport::dial`]) gives real connections; on them sits one
//! yamux client session when `tcpMux` is on, and QUIC's own streams replace yamux.
//! [`Connector::connect`] opens one logical connection: a yamux stream, a QUIC stream, or a
//! fresh real connection without tcpMux.

use common::config::ClientConfig;
use common::io::BoxStream;
use common::transport::dial::{self, Protocol, ServerDialer};
use common::transport::{mux, quic};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// How long a closing yamux session over KCP is still driven, so the streams' closes reach
/// KCP (frp's frpc waits 500 ms on SIGTERM with kcp or quic before closing the session).
pub(crate) const KCP_CLOSE_GRACE: Duration = Duration::from_millis(500);
/// Then how long the process waits for KCP's tick to send them (5 ticks).
pub(crate) const KCP_FLUSH: Duration = Duration::from_millis(100);

/// How to reach frps; built once per [`crate::Client`].
#[derive(Clone, Debug)]
pub(crate) struct Dialer {
    cfg: Arc<ClientConfig>,
    server: ServerDialer,
}

impl Dialer {
    pub(crate) fn new(cfg: Arc<ClientConfig>) -> Result<Self, dial::DialSetupError> {
        Ok(Dialer {
            server: ServerDialer::new(cfg.clone())?,
            cfg,
        })
    }

    /// `host:port` of the frps, for logs and errors.
    pub(crate) fn server_label(&self) -> String {
        self.server.target()
    }

    /// The frps's host (`serverAddr`, or the host of a `serverAddrs` entry).
    pub(crate) fn host(&self) -> &str {
        self.server.host()
    }

    /// The same dialer for another frps (`serverAddrs` failover).
    pub(crate) fn to(&self, server: (String, u16)) -> Dialer {
        Dialer {
            server: self.server.to(server),
            cfg: self.cfg.clone(),
        }
    }

    /// One real connection to frps (frp `realConnect`).
    pub(crate) async fn real_connect(&self) -> io::Result<BoxStream> {
        self.server.connect().await
    }

    /// Opens a connector for one session.
    pub(crate) async fn open(&self, token: CancellationToken) -> io::Result<Connector> {
        let drained = CancellationToken::new();
        let session = if self.server.protocol() == Protocol::Quic {
            let (endpoint, conn) = self.server.open_quic().await?;
            let watch = conn.clone();
            let t = token.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = t.cancelled() => watch.close(0u32.into(), b""),
                    e = watch.closed() => debug!(error = %e, "quic connection closed"),
                }
                t.cancel();
            });
            Session::Quic {
                conn,
                _endpoint: endpoint,
            }
        } else if self.cfg.transport.tcp_mux {
            let stream = self.real_connect().await?;
            let (opener, mut driver) = mux::client(
                stream,
                mux::config(self.cfg.transport.tcp_mux_keepalive_interval),
            );
            let driver_token = token.clone();
            let kcp = self.server.protocol() == Protocol::Kcp;
            let drained = drained.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = driver_token.cancelled() => {
                        if kcp {
                            // KCP has no close of its own: as frp's graceful close (kcp and
                            // quic), the streams' FINs go out before the session ends, so frps
                            // sees the control stream end at once.
                            let _ = tokio::time::timeout(KCP_CLOSE_GRACE, &mut driver).await;
                            drop(driver);
                            // The conversation's task sends what was written on its next
                            // ticks.
                            tokio::time::sleep(KCP_FLUSH).await;
                        }
                    }
                    r = &mut driver => match r {
                        Ok(()) => debug!("yamux session closed by frps"),
                        Err(e) => debug!(error = %e, "yamux session error"),
                    },
                }
                driver_token.cancel();
                drained.cancel();
            });
            Session::Mux(opener)
        } else {
            Session::Direct
        };
        if !matches!(session, Session::Mux(_)) {
            drained.cancel();
        }
        Ok(Connector {
            dialer: self.clone(),
            session,
            token,
            drained,
        })
    }
}

/// What logical connections are opened on.
#[derive(Clone)]
enum Session {
    /// A new real connection each (tcpMux off).
    Direct,
    Mux(mux::Opener),
    /// The endpoint is kept with the connection it drives.
    Quic {
        conn: quinn::Connection,
        _endpoint: quinn::Endpoint,
    },
}

/// Opens logical connections for one session. Cancelling its token closes the yamux session
/// or QUIC connection.
#[derive(Clone)]
pub(crate) struct Connector {
    dialer: Dialer,
    session: Session,
    pub(crate) token: CancellationToken,
    /// Cancelled once the session's last bytes had their chance to leave (KCP: after
    /// [`KCP_CLOSE_GRACE`] and [`KCP_FLUSH`]); at once for the other transports.
    drained: CancellationToken,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.session {
            Session::Direct => "direct",
            Session::Mux(_) => "yamux",
            Session::Quic { .. } => "quic",
        };
        f.debug_struct("Connector").field("session", &kind).finish()
    }
}

impl Connector {
    /// A new logical connection (frp `Connector.Connect`).
    pub(crate) async fn connect(&self) -> io::Result<BoxStream> {
        match &self.session {
            Session::Mux(opener) => Ok(Box::new(opener.open()?)),
            Session::Quic { conn, .. } => Ok(Box::new(quic::open(conn).await?)),
            Session::Direct => self.dialer.real_connect().await,
        }
    }

    /// `e` with the reason its QUIC connection was closed, when it was (a stream only says
    /// "connection lost"; the close says why, such as a TLS alert).
    pub(crate) fn explain(&self, e: io::Error) -> io::Error {
        match &self.session {
            Session::Quic { conn, .. } => match conn.close_reason() {
                Some(reason) => dial::quic_error(reason),
                None => e,
            },
            _ => e,
        }
    }

    /// Resolves once the closed session's last bytes had their chance to leave (see
    /// [`Connector::drained`]'s field), at most [`KCP_CLOSE_GRACE`] plus [`KCP_FLUSH`].
    pub(crate) async fn drained(&self) {
        self.drained.cancelled().await
    }

    /// Closes the session (and with tcpMux or QUIC every stream in it).
    pub(crate) fn close(&self) {
        self.token.cancel();
    }
}
