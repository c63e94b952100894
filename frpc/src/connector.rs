//! Dialling frps (frp `client/connector.go`): TCP, then TLS (by default, with the optional 0x17
//! first byte), then one yamux client session when `tcpMux` is on. [`Connector::connect`] opens
//! one logical connection: a yamux stream, or a fresh TCP(+TLS) connection without tcpMux.

use common::config::ClientConfig;
use common::io::BoxStream;
use common::transport::{self, mux, tls, FRP_TLS_HEAD_BYTE};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// How to reach frps; built once per [`crate::Client`].
#[derive(Clone)]
pub(crate) struct Dialer {
    cfg: Arc<ClientConfig>,
    tls: Option<tokio_rustls::TlsConnector>,
    /// The frps this dialer reaches (one of `ClientConfig::servers`).
    server: (String, u16),
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("server", &self.server)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Dialer {
    pub(crate) fn new(cfg: Arc<ClientConfig>) -> Result<Self, tls::TlsError> {
        let t = &cfg.transport.tls;
        let tls = if t.enable {
            let opt = |s: &str| (!s.is_empty()).then(|| s.into());
            let files = tls::TlsFiles {
                cert_file: opt(&t.cert_file),
                key_file: opt(&t.key_file),
                trusted_ca_file: opt(&t.trusted_ca_file),
            };
            Some(tokio_rustls::TlsConnector::from(tls::client_config(
                &files,
            )?))
        } else {
            None
        };
        let server = cfg
            .servers()
            .into_iter()
            .next()
            .unwrap_or_else(|| (cfg.server_addr.clone(), cfg.server_port));
        Ok(Dialer { cfg, tls, server })
    }

    /// `host:port` of the frps, for logs and errors.
    pub(crate) fn server_label(&self) -> String {
        let (h, p) = &self.server;
        if h.contains(':') {
            format!("[{h}]:{p}")
        } else {
            format!("{h}:{p}")
        }
    }

    /// The frps's host (`serverAddr`, or the host of a `serverAddrs` entry).
    pub(crate) fn host(&self) -> &str {
        &self.server.0
    }

    /// The same dialer for another frps (`serverAddrs` failover).
    pub(crate) fn to(&self, server: (String, u16)) -> Dialer {
        Dialer {
            server,
            ..self.clone()
        }
    }

    async fn tcp(&self) -> io::Result<TcpStream> {
        let t = &self.cfg.transport;
        let target = (self.server.0.as_str(), self.server.1);
        let dial = async {
            if t.connect_server_local_ip.is_empty() {
                return TcpStream::connect(target).await;
            }
            let local = common::config::resolve_listen_ip(&t.connect_server_local_ip)
                .await
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("transport.connectServerLocalIP: {e}"),
                    )
                })?;
            let mut last =
                io::Error::new(io::ErrorKind::NotFound, "server address did not resolve");
            for addr in tokio::net::lookup_host(target)
                .await?
                .filter(|a| a.is_ipv4() == local.is_ipv4())
            {
                let sock = if addr.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                sock.bind(SocketAddr::new(local, 0))?;
                match sock.connect(addr).await {
                    Ok(s) => return Ok(s),
                    Err(e) => last = e,
                }
            }
            Err(last)
        };
        let secs = if t.dial_server_timeout > 0 {
            t.dial_server_timeout as u64
        } else {
            10
        };
        let tcp = tokio::time::timeout(Duration::from_secs(secs), dial)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "dial frps timed out"))??;
        let _ = tcp.set_nodelay(true);
        transport::set_keepalive(&tcp, t.dial_server_keepalive);
        Ok(tcp)
    }

    /// One real connection to frps: TCP, then TLS if enabled.
    pub(crate) async fn real_connect(&self) -> io::Result<BoxStream> {
        let mut tcp = self.tcp().await?;
        let Some(tls) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let t = &self.cfg.transport.tls;
        if !t.disable_custom_tls_first_byte {
            tcp.write_all(&[FRP_TLS_HEAD_BYTE]).await?;
        }
        let name = if t.server_name.is_empty() {
            &self.server.0
        } else {
            &t.server_name
        };
        let stream = tls.connect(tls::server_name(name), tcp).await?;
        Ok(Box::new(stream))
    }

    /// Opens a connector for one session.
    pub(crate) async fn open(&self, token: CancellationToken) -> io::Result<Connector> {
        if !self.cfg.transport.tcp_mux {
            return Ok(Connector {
                dialer: self.clone(),
                mux: None,
                token,
            });
        }
        let stream = self.real_connect().await?;
        let (opener, mut driver) = mux::client(
            stream,
            mux::config(self.cfg.transport.tcp_mux_keepalive_interval),
        );
        let driver_token = token.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = driver_token.cancelled() => {}
                r = &mut driver => match r {
                    Ok(()) => debug!("yamux session closed by frps"),
                    Err(e) => debug!(error = %e, "yamux session error"),
                },
            }
            driver_token.cancel();
        });
        Ok(Connector {
            dialer: self.clone(),
            mux: Some(opener),
            token,
        })
    }
}

/// Opens logical connections for one session. Cancelling its token closes the yamux session.
#[derive(Clone)]
pub(crate) struct Connector {
    dialer: Dialer,
    mux: Option<mux::Opener>,
    pub(crate) token: CancellationToken,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("mux", &self.mux.is_some())
            .finish()
    }
}

impl Connector {
    /// A new logical connection (frp `Connector.Connect`).
    pub(crate) async fn connect(&self) -> io::Result<BoxStream> {
        match &self.mux {
            Some(opener) => Ok(Box::new(opener.open()?)),
            None => self.dialer.real_connect().await,
        }
    }

    /// Closes the session (and with tcpMux every stream in it).
    pub(crate) fn close(&self) {
        self.token.cancel();
    }
}
