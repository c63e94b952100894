//! Client plugins (frp `pkg/plugin/client`): what a work connection is handed to instead of the
//! dial to `localIP:localPort`. The shared path (StartWorkConn, the per-proxy layers, byte
//! counting, the PROXY header) stays in [`crate::proxy`]; a plugin only serves one already
//! wrapped connection. [`Plugin::new`] builds one from `[proxies.plugin]` once per proxy (a
//! certificate that cannot be loaded fails there, and the proxy gets an error status).
//!
//! One file per plugin; the four HTTP bridges (`http2http`, `http2https`, `https2http`,
//! `https2https`) differ only in a few settings and share [`http_bridge`].

mod http_bridge;
mod http_proxy;
mod socks5;
mod static_file;
mod tls2raw;
mod unix_domain_socket;

use bytes::Bytes;
use common::config::PluginConfig;
use common::io::BoxStream;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a plugin learns about the connection besides its bytes (frp `ConnectionInfo`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnInfo {
    /// The user's address, from StartWorkConn.
    pub src: Option<SocketAddr>,
    /// The PROXY protocol header, when `transport.proxyProtocolVersion` is set; the plugins
    /// that dial something (unix_domain_socket, tls2raw) write it first.
    pub proxy_header: Option<Vec<u8>>,
}

/// Why a plugin cannot start; the proxy's status shows it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PluginError {
    #[error("plugin {kind}: {error}")]
    Tls {
        kind: &'static str,
        error: common::transport::tls::TlsError,
    },
    #[error("plugin {0}: {1}")]
    Invalid(&'static str, String),
    #[error(
        "plugin virtual_net is not supported: frp 0.70 ships it as alpha behind featureGates.VirtualNet"
    )]
    VirtualNet,
    #[error("unknown plugin type {0:?}")]
    Unknown(String),
}

/// One proxy's plugin, chosen from its config once.
#[derive(Debug)]
pub(crate) enum Plugin {
    HttpProxy(http_proxy::HttpProxy),
    Socks5(socks5::Socks5),
    StaticFile(static_file::StaticFile),
    UnixDomainSocket(unix_domain_socket::UnixDomainSocket),
    HttpBridge(http_bridge::HttpBridge),
    Tls2Raw(tls2raw::Tls2Raw),
}

impl Plugin {
    pub(crate) fn new(c: &PluginConfig) -> Result<Plugin, PluginError> {
        Ok(match c.kind.as_str() {
            "http_proxy" => Plugin::HttpProxy(http_proxy::HttpProxy::new(c)),
            "socks5" => Plugin::Socks5(socks5::Socks5::new(c)),
            "static_file" => Plugin::StaticFile(static_file::StaticFile::new(c)?),
            "unix_domain_socket" => {
                Plugin::UnixDomainSocket(unix_domain_socket::UnixDomainSocket::new(c)?)
            }
            "http2http" | "http2https" | "https2http" | "https2https" => {
                Plugin::HttpBridge(http_bridge::HttpBridge::new(c)?)
            }
            "tls2raw" => Plugin::Tls2Raw(tls2raw::Tls2Raw::new(c)?),
            "virtual_net" => return Err(PluginError::VirtualNet),
            other => return Err(PluginError::Unknown(other.to_owned())),
        })
    }

    /// frp's plugin name, for logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Plugin::HttpProxy(_) => "http_proxy",
            Plugin::Socks5(_) => "socks5",
            Plugin::StaticFile(_) => "static_file",
            Plugin::UnixDomainSocket(_) => "unix_domain_socket",
            Plugin::HttpBridge(b) => b.name(),
            Plugin::Tls2Raw(_) => "tls2raw",
        }
    }

    /// Serves one work connection until it ends. Problems are logged here, once.
    pub(crate) async fn serve(&self, conn: BoxStream, info: ConnInfo) {
        match self {
            Plugin::HttpProxy(p) => p.serve(conn).await,
            Plugin::Socks5(p) => p.serve(conn).await,
            Plugin::StaticFile(p) => p.serve(conn).await,
            Plugin::UnixDomainSocket(p) => p.serve(conn, info).await,
            Plugin::HttpBridge(p) => p.serve(conn, info).await,
            Plugin::Tls2Raw(p) => p.serve(conn, info).await,
        }
    }
}

/// The server TLS config of the TLS-terminating plugins: `crtPath`/`keyPath`, or a fresh
/// self-signed certificate when either is empty (frp `transport.NewServerTLSConfig`).
fn server_tls(
    c: &PluginConfig,
    kind: &'static str,
    alpn: &[&[u8]],
) -> Result<std::sync::Arc<rustls::ServerConfig>, PluginError> {
    use common::transport::tls::{server_config, TlsFiles};
    let files = if c.crt_path.is_empty() || c.key_path.is_empty() {
        TlsFiles::default()
    } else {
        TlsFiles {
            cert_file: Some(c.crt_path.clone().into()),
            key_file: Some(c.key_path.clone().into()),
            trusted_ca_file: None,
        }
    };
    let cfg = server_config(&files).map_err(|error| PluginError::Tls { kind, error })?;
    let mut cfg = (*cfg).clone();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(std::sync::Arc::new(cfg))
}

/// Writes the PROXY header, when there is one, to the service a plugin dialed, then joins the
/// two (unix_domain_socket, tls2raw: frp writes the header before any data).
async fn join_after_header<A, B>(conn: &mut A, local: &mut B, info: &ConnInfo, plugin: &'static str)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    if let Some(h) = &info.proxy_header {
        if let Err(e) = local.write_all(h).await {
            tracing::warn!(plugin, error = %e, "write PROXY header to the local service failed");
            return;
        }
    }
    if let Err(e) = common::io::join(conn, local).await {
        tracing::debug!(plugin, error = %e, "connection ended with error");
    }
}

/// Constant-time comparison of configured and offered credentials.
fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// frp waits this long before answering a wrong password (slows guessing).
const AUTH_FAIL_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// How long a client may take to send its request head (frp: `ReadHeaderTimeout` 60 s).
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A stream that first replays bytes already read from it (sniffed request heads).
pub(crate) struct Rewind<S> {
    head: Bytes,
    inner: S,
}

impl<S> std::fmt::Debug for Rewind<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rewind")
    }
}

impl<S> Rewind<S> {
    pub(crate) fn new(head: Bytes, inner: S) -> Self {
        Rewind { head, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.head.is_empty() {
            let n = self.head.len().min(buf.remaining());
            let chunk = self.head.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Basic credentials from an `Authorization`/`Proxy-Authorization` value, if well formed.
fn basic_credentials(value: &[u8]) -> Option<(String, String)> {
    use base64::Engine;
    let s = std::str::from_utf8(value).ok()?;
    let (scheme, rest) = s.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let pair = String::from_utf8(raw).ok()?;
    let (u, p) = pair.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// Whether `value` carries `user`/`password`; true when both are unset (no auth configured).
fn basic_ok(value: Option<&[u8]>, user: &str, password: &str) -> bool {
    if user.is_empty() && password.is_empty() {
        return true;
    }
    match value.and_then(basic_credentials) {
        Some((u, p)) => same(&u, user) & same(&p, password),
        None => false,
    }
}

/// The response body every HTTP plugin answers with.
pub(crate) type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// The error type of [`Body`] (hyper's, or a file read's).
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn empty() -> Body {
    use http_body_util::BodyExt;
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A plain-text answer (Go's `http.Error`: the text and a newline).
fn text(status: hyper::StatusCode, msg: impl Into<String>) -> hyper::Response<Body> {
    use http_body_util::BodyExt;
    let mut body = msg.into();
    body.push('\n');
    let mut r = hyper::Response::new(
        http_body_util::Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        hyper::header::HeaderValue::from_static("nosniff"),
    );
    r
}

/// Serves HTTP/1.1 on one connection (with upgrades, and frp's header read timeout).
async fn serve_http1<S, F>(io: S, svc: F, plugin: &'static str)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    F: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<Body>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    F::Future: Send + 'static,
{
    let r = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
        .with_upgrades()
        .await;
    if let Err(e) = r {
        tracing::debug!(plugin, error = %e, "http connection ended with error");
    }
}

/// How long an upstream HTTP service may take to accept, and then its TLS handshake.
const UPSTREAM_DIAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a request could not be sent upstream.
#[derive(Debug, thiserror::Error)]
enum UpstreamError {
    #[error("dial {0}: {1}")]
    Dial(String, std::io::Error),
    #[error("dial {0}: timed out")]
    Timeout(String),
    #[error("tls to {0}: timed out")]
    TlsTimeout(String),
    #[error("tls to {0}: {1}")]
    Tls(String, std::io::Error),
    #[error("http: {0}")]
    Http(hyper::Error),
}

/// Sends `req` (origin-form URI) to `addr` over a new connection, plain or TLS with
/// verification off (frp's `InsecureSkipVerify` transports). The response body streams while
/// the connection task runs; after a `101` the returned upgrade yields the raw connection.
async fn upstream<B>(
    req: hyper::Request<B>,
    addr: &str,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
) -> Result<(hyper::Response<Body>, hyper::upgrade::OnUpgrade), UpstreamError>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    let tcp = tokio::time::timeout(UPSTREAM_DIAL_TIMEOUT, common::dns::connect_addr(addr))
        .await
        .map_err(|_| UpstreamError::Timeout(addr.to_owned()))?
        .map_err(|e| UpstreamError::Dial(addr.to_owned(), e))?;
    let _ = tcp.set_nodelay(true);
    let io: BoxStream = match tls {
        None => Box::new(tcp),
        Some(cfg) => {
            let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
            let name = common::transport::tls::server_name(host.trim_matches(['[', ']']));
            let s = tokio::time::timeout(
                UPSTREAM_DIAL_TIMEOUT,
                tokio_rustls::TlsConnector::from(cfg.clone()).connect(name, tcp),
            )
            .await
            .map_err(|_| UpstreamError::TlsTimeout(addr.to_owned()))?
            .map_err(|e| UpstreamError::Tls(addr.to_owned(), e))?;
            Box::new(s)
        }
    };
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(UpstreamError::Http)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream http connection ended with error");
        }
    });
    let mut resp = send.send_request(req).await.map_err(UpstreamError::Http)?;
    let upgrade = hyper::upgrade::on(&mut resp);
    Ok((resp.map(|b| b.map_err(BoxError::from).boxed()), upgrade))
}
