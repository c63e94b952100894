//! frpc's dialers, one per `transport.protocol` (frp `client/connector.go` `realConnect`;
//! frp-protocol.md §3.1). [`ServerDialer::connect`] yields one real connection as a
//! [`BoxStream`] with every layer frp stacks below yamux, in frp's order:
//!
//! | protocol | layers |
//! |---|---|
//! | `tcp` | TCP (via `proxyURL`) → [0x17] → TLS |
//! | `websocket` | TCP (via `proxyURL`) → WebSocket → [0x17] → TLS |
//! | `wss` | TCP (via `proxyURL`) → TLS (always, no 0x17) → WebSocket |
//! | `kcp` | KCP over UDP ([`kcp`], not through `proxyURL`) → [0x17] → TLS |
//!
//! `quic` has no such stream: [`ServerDialer::open_quic`] gives the QUIC connection whose
//! streams are the logical connections.

use super::{kcp, proxy::ProxyUrl, quic, set_keepalive, tls, ws, FRP_TLS_HEAD_BYTE};
use crate::config::ClientConfig;
use crate::io::BoxStream;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

/// `transport.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Websocket,
    Wss,
    Quic,
    Kcp,
}

impl Protocol {
    /// frp's spelling, as in the config (frp compares `quic` case-insensitively and the rest
    /// exactly).
    pub fn parse(s: &str) -> Option<Protocol> {
        Some(match s {
            "tcp" => Protocol::Tcp,
            "websocket" => Protocol::Websocket,
            "wss" => Protocol::Wss,
            "kcp" => Protocol::Kcp,
            q if q.eq_ignore_ascii_case("quic") => Protocol::Quic,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Websocket => "websocket",
            Protocol::Wss => "wss",
            Protocol::Quic => "quic",
            Protocol::Kcp => "kcp",
        }
    }
}

/// Why a dialer could not be built from the config; names the key.
#[derive(Debug, thiserror::Error)]
pub enum DialSetupError {
    #[error("transport.tls: {0}")]
    Tls(tls::TlsError),
    #[error("transport.proxyURL: {0}")]
    ProxyUrl(String),
    #[error("transport.protocol: {0}")]
    Protocol(String),
    #[error("transport.{0}")]
    Quic(quic::QuicSetupError),
}
crate::from_cause!(tls::TlsError => DialSetupError::Tls);
crate::from_cause!(quic::QuicSetupError => DialSetupError::Quic);

/// How frpc reaches frps; built once from the config.
#[derive(Clone)]
pub struct ServerDialer {
    cfg: Arc<ClientConfig>,
    /// The frps this dialer reaches: `serverAddr:serverPort`, or one `serverAddrs` entry.
    server: (String, u16),
    protocol: Protocol,
    /// TLS for `tcp`/`websocket` with `transport.tls.enable`, and always for `wss`.
    tls: Option<tokio_rustls::TlsConnector>,
    proxy: Option<ProxyUrl>,
    quic: Option<quinn::ClientConfig>,
}

impl std::fmt::Debug for ServerDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerDialer")
            .field("server", &self.server)
            .field("protocol", &self.protocol)
            .field("tls", &self.tls.is_some())
            .field("proxy", &self.proxy)
            .finish()
    }
}

fn tls_files(t: &crate::config::ClientTls) -> tls::TlsFiles {
    let opt = |s: &str| (!s.is_empty()).then(|| s.into());
    tls::TlsFiles {
        cert_file: opt(&t.cert_file),
        key_file: opt(&t.key_file),
        trusted_ca_file: opt(&t.trusted_ca_file),
    }
}

/// frps said nothing over KCP: most likely no `kcpBindPort` there, or UDP filtered.
pub fn kcp_silent(peer: SocketAddr, t: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "timed out ({t:?}) with no answer over KCP from UDP {peer}: is it frps's \
             kcpBindPort, and does UDP get through?"
        ),
    )
}

impl ServerDialer {
    pub fn new(cfg: Arc<ClientConfig>) -> Result<Self, DialSetupError> {
        let t = &cfg.transport;
        let protocol = Protocol::parse(&t.protocol).ok_or_else(|| {
            DialSetupError::Protocol(format!(
                "{:?} is not one of tcp, kcp, quic, websocket, wss",
                t.protocol
            ))
        })?;
        // UDP transports do not go through the proxy (reported by the config rules).
        let udp = matches!(protocol, Protocol::Quic | Protocol::Kcp);
        let proxy = if t.proxy_url.is_empty() || udp {
            None
        } else {
            Some(ProxyUrl::parse(&t.proxy_url).map_err(DialSetupError::ProxyUrl)?)
        };
        let files = tls_files(&t.tls);
        let tls = if t.tls.enable && protocol != Protocol::Quic || protocol == Protocol::Wss {
            Some(tokio_rustls::TlsConnector::from(tls::client_config(
                &files,
            )?))
        } else {
            None
        };
        let quic = if protocol == Protocol::Quic {
            let files = if t.tls.enable {
                files
            } else {
                tls::TlsFiles::default()
            };
            Some(quic::client_config(&*tls::client_config(&files)?, &t.quic)?)
        } else {
            None
        };
        let server = cfg
            .servers()
            .into_iter()
            .next()
            .unwrap_or_else(|| (cfg.server_addr.clone(), cfg.server_port));
        Ok(ServerDialer {
            cfg,
            server,
            protocol,
            tls,
            proxy,
            quic,
        })
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// `host:port` of frps, as frp joins it (`[v6]:port`); also its name in logs and errors.
    pub fn target(&self) -> String {
        join_host_port(&self.server.0, self.server.1)
    }

    /// The frps's host (`serverAddr`, or the host of a `serverAddrs` entry).
    pub fn host(&self) -> &str {
        &self.server.0
    }

    /// The same dialer for another frps (`serverAddrs` failover).
    pub fn to(&self, server: (String, u16)) -> ServerDialer {
        ServerDialer {
            server,
            ..self.clone()
        }
    }

    /// The TLS server name: `transport.tls.serverName`, or the frps's host.
    fn server_name(&self) -> &str {
        let t = &self.cfg.transport.tls;
        if t.server_name.is_empty() {
            &self.server.0
        } else {
            &t.server_name
        }
    }

    fn dial_timeout(&self) -> Duration {
        let t = self.cfg.transport.dial_server_timeout;
        Duration::from_secs(if t > 0 { t as u64 } else { 10 })
    }

    async fn local_ip(&self) -> io::Result<Option<IpAddr>> {
        let ip = &self.cfg.transport.connect_server_local_ip;
        if ip.is_empty() {
            return Ok(None);
        }
        crate::config::resolve_listen_ip(ip)
            .await
            .map(Some)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("transport.connectServerLocalIP: {e}"),
                )
            })
    }

    /// The addresses `host:port` resolves to that `connectServerLocalIP` (when set) can reach.
    async fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> io::Result<(Option<IpAddr>, Vec<SocketAddr>)> {
        let local = self.local_ip().await?;
        let addrs = crate::dns::lookup(host, port)
            .await?
            .into_iter()
            .filter(|a| local.is_none_or(|l| a.is_ipv4() == l.is_ipv4()))
            .collect();
        Ok((local, addrs))
    }

    /// A TCP connection to `host:port`, from `connectServerLocalIP` when set.
    async fn tcp_to(&self, host: &str, port: u16) -> io::Result<TcpStream> {
        let (local, addrs) = self.resolve(host, port).await?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "server address did not resolve");
        for addr in addrs {
            let sock = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            if let Some(l) = local {
                sock.bind(SocketAddr::new(l, 0))?;
            }
            match sock.connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// TCP to frps, or to the proxy and through it (inside TLS to an `https://` proxy).
    async fn tcp(&self) -> io::Result<BoxStream> {
        let tuned = |tcp: TcpStream| {
            let _ = tcp.set_nodelay(true);
            set_keepalive(&tcp, self.cfg.transport.dial_server_keepalive);
            tcp
        };
        let dial = async {
            match &self.proxy {
                None => Ok::<BoxStream, io::Error>(Box::new(tuned(
                    self.tcp_to(&self.server.0, self.server.1).await?,
                ))),
                Some(p) => {
                    let (host, port) = split_host_port(&p.addr)?;
                    let s = self.tcp_to(host, port).await.map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("connect to proxy {} ({}): {e}", p.addr, p.key),
                        )
                    })?;
                    p.connect(tuned(s), Some(&self.target())).await
                }
            }
        };
        tokio::time::timeout(self.dial_timeout(), dial)
            .await
            .map_err(|_| {
                let why = match &self.proxy {
                    None => "dial frps timed out".to_owned(),
                    Some(p) => format!(
                        "dial frps through proxy {} ({}) timed out: the proxy did not answer",
                        p.addr, p.key
                    ),
                };
                io::Error::new(io::ErrorKind::TimedOut, why)
            })?
    }

    /// frp's optional 0x17 byte, then TLS, when TLS is on.
    async fn frp_tls(&self, mut s: BoxStream) -> io::Result<BoxStream> {
        let Some(tls) = &self.tls else {
            return Ok(s);
        };
        if !self.cfg.transport.tls.disable_custom_tls_first_byte {
            s.write_all(&[FRP_TLS_HEAD_BYTE]).await?;
        }
        let name = tls::server_name(self.server_name());
        Ok(Box::new(tls.connect(name, s).await?))
    }

    /// One real connection to frps with every layer below yamux (frp `realConnect`). The
    /// handshakes above TCP (TLS, the WebSocket upgrade) get their own `dialServerTimeout`: a
    /// peer that accepts and then says nothing fails the dial instead of holding it forever.
    pub async fn connect(&self) -> io::Result<BoxStream> {
        let t = self.dial_timeout();
        let layered = if self.protocol == Protocol::Kcp {
            let kcp = self.kcp().await?;
            let peer = kcp.peer_addr();
            return tokio::time::timeout(t, self.frp_tls(Box::new(kcp)))
                .await
                .map_err(|_| kcp_silent(peer, t))?;
        } else {
            let tcp = self.tcp().await?;
            tokio::time::timeout(t, self.layers(tcp)).await
        };
        layered.map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("TLS/WebSocket handshake with frps timed out ({t:?})"),
            )
        })?
    }

    /// A KCP conversation with frps (golib `dialKCPServer`: frpc's window sizes, a random
    /// conversation id). KCP has no handshake: nothing is sent before the first write.
    async fn kcp(&self) -> io::Result<kcp::KcpStream> {
        let (local, addrs) = self.resolve(&self.server.0, self.server.1).await?;
        let addr = addrs.into_iter().next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "server address did not resolve")
        })?;
        kcp::KcpStream::connect(addr, local, kcp::KcpConfig::client()).await
    }

    /// TLS and the WebSocket upgrade over a connected stream, as the protocol stacks them.
    async fn layers(&self, tcp: BoxStream) -> io::Result<BoxStream> {
        match self.protocol {
            Protocol::Websocket => {
                let ws = ws::connect(tcp, &self.target()).await?;
                self.frp_tls(Box::new(ws)).await
            }
            Protocol::Wss => {
                let tls = self
                    .tls
                    .as_ref()
                    .ok_or_else(|| io::Error::other("wss without TLS"))?;
                let name = self.server_name().to_owned();
                let s = tls.connect(tls::server_name(&name), tcp).await?;
                // frp puts the TLS server name (no port) in the URL for wss.
                Ok(Box::new(ws::connect(s, &name).await?))
            }
            Protocol::Tcp | Protocol::Quic | Protocol::Kcp => self.frp_tls(tcp).await,
        }
    }

    /// The QUIC connection for one session (`protocol = "quic"`), with the endpoint it needs.
    pub async fn open_quic(&self) -> io::Result<(quinn::Endpoint, quinn::Connection)> {
        let cfg = self
            .quic
            .clone()
            .ok_or_else(|| io::Error::other("not a quic dialer"))?;
        let local = self.local_ip().await?;
        let dial = async {
            let mut last =
                io::Error::new(io::ErrorKind::NotFound, "server address did not resolve");
            for addr in crate::dns::lookup(&self.server.0, self.server.1)
                .await?
                .into_iter()
                .filter(|a| local.is_none_or(|l| a.is_ipv4() == l.is_ipv4()))
            {
                let endpoint = quic::client_endpoint(addr, local)?;
                let connecting = endpoint
                    .connect_with(cfg.clone(), addr, self.server_name())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                match connecting.await {
                    Ok(c) => return Ok((endpoint, c)),
                    Err(e) => last = quic_error(e),
                }
            }
            Err(last)
        };
        tokio::time::timeout(self.dial_timeout(), dial)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "dial frps (quic) timed out"))?
    }
}

/// A QUIC connection error as IO, keeping a TLS alert's words.
pub fn quic_error(e: quinn::ConnectionError) -> io::Error {
    use quinn::ConnectionError as E;
    let kind = match &e {
        E::TimedOut => io::ErrorKind::TimedOut,
        E::ConnectionClosed(_) | E::ApplicationClosed(_) | E::Reset => {
            io::ErrorKind::ConnectionReset
        }
        E::LocallyClosed => io::ErrorKind::ConnectionAborted,
        _ => io::ErrorKind::Other,
    };
    let alert = match &e {
        E::ConnectionClosed(c) => tls_alert(u64::from(c.error_code)),
        E::TransportError(t) => tls_alert(u64::from(t.code)),
        _ => None,
    };
    match alert {
        Some(a) => io::Error::new(kind, format!("quic: {e} (TLS alert: {a})")),
        None => io::Error::new(kind, format!("quic: {e}")),
    }
}

/// The name of the TLS alert a QUIC crypto error code (0x100 + alert) carries.
fn tls_alert(code: u64) -> Option<&'static str> {
    if code & !0xff != 0x100 {
        return None;
    }
    Some(match code & 0xff {
        40 => "handshake failure",
        42 => "bad certificate",
        43 => "unsupported certificate",
        44 => "certificate revoked",
        45 => "certificate expired",
        46 => "certificate unknown",
        48 => "unknown CA (certificate not trusted)",
        112 => "unrecognized name",
        116 => "certificate required (frps wants a client certificate: transport.tls.certFile)",
        120 => "no application protocol (ALPN \"frp\" not accepted)",
        _ => "other",
    })
}

/// `host:port`, with brackets around an IPv6 host (Go's `net.JoinHostPort`).
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Splits `host:port` or `[v6]:port`.
pub fn split_host_port(s: &str) -> io::Result<(&str, u16)> {
    let bad = || io::Error::new(io::ErrorKind::InvalidInput, format!("bad address {s:?}"));
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((host, port.parse().map_err(|_| bad())?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(join_host_port("::1", 7000), "[::1]:7000");
        assert_eq!(join_host_port("h", 7000), "h:7000");
        assert_eq!(split_host_port("[::1]:7000").unwrap(), ("::1", 7000));
        assert_eq!(split_host_port("h:1").unwrap(), ("h", 1));
        assert!(split_host_port("h").is_err());
        assert_eq!(Protocol::parse("QUIC"), Some(Protocol::Quic));
        assert_eq!(Protocol::parse("Websocket"), None);
    }
}
