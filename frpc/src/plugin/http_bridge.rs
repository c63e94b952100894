//! The HTTP bridges (frp `http2http.go`, `http2https.go`, `https2http.go`, `https2https.go`,
//! `http_common.go`): a reverse proxy from the work connection to `localAddr`. They differ in
//! four settings, kept in one table ([`Kind`]):
//!
//! | plugin      | serves              | to `localAddr` | `X-Forwarded-*` |
//! |-------------|---------------------|----------------|-----------------|
//! | http2http   | HTTP/1.1            | http           | dropped |
//! | http2https  | HTTP/1.1            | https (no verification) | copied as received |
//! | https2http  | TLS, h2 if `enableHTTP2` | http      | `X-Forwarded-For` gets the user's address (from StartWorkConn) appended; `-Host`, `-Proto` set |
//! | https2https | TLS, h2 if `enableHTTP2` | https (no verification) | as https2http |
//!
//! The Host header is kept unless `hostHeaderRewrite` is set; `requestHeaders.set` is applied
//! last. `Upgrade` requests (WebSocket) are passed through and joined after the `101`, as Go's
//! `ReverseProxy` does. A TLS bridge answers 421 when the SNI name and the Host differ (frp 0.70).

use super::{Body, ConnInfo, PluginError, Rewind, HEADER_TIMEOUT};
use bytes::BytesMut;
use common::config::PluginConfig;
use common::http::{remove_hop_by_hop, wants_upgrade};
use common::io::BoxStream;
use hyper::header::{HeaderName, HeaderValue, CONNECTION, HOST, UPGRADE};
use hyper::{Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

/// Go's answer to plain HTTP on a TLS port.
const PLAIN_ON_TLS: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// What happens to `X-Forwarded-*` on the way to `localAddr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forwarded {
    Drop,
    Copy,
    Append,
}

/// One row of the table in the module docs.
#[derive(Debug, Clone, Copy)]
struct Kind {
    name: &'static str,
    tls_in: bool,
    tls_out: bool,
    forwarded: Forwarded,
}

fn kind(name: &str) -> Option<Kind> {
    let (tls_in, tls_out, forwarded, name) = match name {
        "http2http" => (false, false, Forwarded::Drop, "http2http"),
        "http2https" => (false, true, Forwarded::Copy, "http2https"),
        "https2http" => (true, false, Forwarded::Append, "https2http"),
        "https2https" => (true, true, Forwarded::Append, "https2https"),
        _ => return None,
    };
    Some(Kind {
        name,
        tls_in,
        tls_out,
        forwarded,
    })
}

/// What every request of the proxy needs.
#[derive(Debug)]
struct Settings {
    kind: Kind,
    local_addr: String,
    host_rewrite: Option<HeaderValue>,
    set: Vec<(HeaderName, HeaderValue)>,
    upstream_tls: Option<Arc<rustls::ClientConfig>>,
}

/// What one connection adds.
#[derive(Debug)]
struct ConnCtx {
    tls: bool,
    sni: Option<String>,
    src: Option<SocketAddr>,
}

#[derive(Debug)]
pub(crate) struct HttpBridge {
    settings: Arc<Settings>,
    acceptor: Option<Arc<rustls::ServerConfig>>,
}

impl HttpBridge {
    pub(crate) fn new(c: &PluginConfig) -> Result<Self, PluginError> {
        let k = kind(&c.kind).ok_or_else(|| PluginError::Unknown(c.kind.clone()))?;
        if c.local_addr.is_empty() {
            return Err(PluginError::Invalid(k.name, "localAddr is required".into()));
        }
        let bad = |what: &str| PluginError::Invalid(k.name, what.to_owned());
        let host_rewrite = (!c.host_header_rewrite.is_empty())
            .then(|| HeaderValue::from_str(&c.host_header_rewrite))
            .transpose()
            .map_err(|_| bad("hostHeaderRewrite is not a valid header value"))?;
        let mut set = Vec::new();
        for (name, value) in &c.request_headers.set {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| bad(&format!("requestHeaders.set: bad header name {name:?}")))?;
            let v = HeaderValue::from_str(value)
                .map_err(|_| bad(&format!("requestHeaders.set: bad value for {name:?}")))?;
            set.push((n, v));
        }
        let upstream_tls = k
            .tls_out
            .then(|| {
                common::transport::tls::client_config(&Default::default()).map_err(|error| {
                    PluginError::Tls {
                        kind: k.name,
                        error,
                    }
                })
            })
            .transpose()?;
        let acceptor = k
            .tls_in
            .then(|| {
                let alpn: &[&[u8]] = if c.enable_http2.unwrap_or(true) {
                    &[b"h2", b"http/1.1"]
                } else {
                    &[b"http/1.1"]
                };
                super::server_tls(c, k.name, alpn)
            })
            .transpose()?;
        Ok(HttpBridge {
            settings: Arc::new(Settings {
                kind: k,
                local_addr: c.local_addr.clone(),
                host_rewrite,
                set,
                upstream_tls,
            }),
            acceptor,
        })
    }

    pub(crate) fn name(&self) -> &'static str {
        self.settings.kind.name
    }

    pub(crate) async fn serve(&self, conn: BoxStream, info: ConnInfo) {
        let name = self.name();
        let Some(acceptor) = &self.acceptor else {
            let ctx = Arc::new(ConnCtx {
                tls: false,
                sni: None,
                src: info.src,
            });
            super::serve_http1(conn, self.service(ctx), name).await;
            return;
        };
        let Some(conn) = refuse_plain_http(conn, name).await else {
            return;
        };
        let tls = match tokio::time::timeout(
            HEADER_TIMEOUT,
            TlsAcceptor::from(acceptor.clone()).accept(conn),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                warn!(plugin = name, error = %e, "tls handshake error");
                return;
            }
            Err(_) => {
                warn!(plugin = name, "tls handshake timed out");
                return;
            }
        };
        let (_, session) = tls.get_ref();
        let h2 = session.alpn_protocol() == Some(b"h2");
        let ctx = Arc::new(ConnCtx {
            tls: true,
            sni: session.server_name().map(str::to_owned),
            src: info.src,
        });
        let svc = self.service(ctx);
        if h2 {
            // hyper's h2 server has no timer for a client that never gets to a request (Go's
            // drops one whose first SETTINGS do not come): the first request must start within
            // the header timeout. After that the connection lives as long as the client wants,
            // as in Go.
            let asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let seen = asked.clone();
            let svc = hyper::service::service_fn(move |req| {
                seen.store(true, std::sync::atomic::Ordering::Relaxed);
                hyper::service::Service::call(&svc, req)
            });
            let conn =
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .timer(hyper_util::rt::TokioTimer::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc);
            let first_request = async {
                tokio::time::sleep(HEADER_TIMEOUT).await;
                if asked.load(std::sync::atomic::Ordering::Relaxed) {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                r = conn => {
                    if let Err(e) = r {
                        debug!(plugin = name, error = %e, "h2 connection ended with error");
                    }
                }
                () = first_request => {
                    warn!(plugin = name, "h2 client sent no request in time, closing");
                }
            }
        } else {
            super::serve_http1(tls, svc, name).await;
        }
    }

    fn service(
        &self,
        ctx: Arc<ConnCtx>,
    ) -> impl hyper::service::Service<
        Request<hyper::body::Incoming>,
        Response = Response<Body>,
        Error = std::convert::Infallible,
        Future = impl std::future::Future<Output = Result<Response<Body>, std::convert::Infallible>>
                     + Send,
    > + Send
           + 'static {
        let settings = self.settings.clone();
        hyper::service::service_fn(move |req| handle(req, settings.clone(), ctx.clone()))
    }
}

/// Go's TLS server answers a plain HTTP request with a 400 instead of a TLS alert; so do we.
/// Returns the connection (with what was read put back) when it does not look like HTTP.
async fn refuse_plain_http(mut conn: BoxStream, name: &'static str) -> Option<BoxStream> {
    let mut head = BytesMut::with_capacity(5);
    let read = tokio::time::timeout(HEADER_TIMEOUT, async {
        while head.len() < 5 {
            if conn.read_buf(&mut head).await? == 0 {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) || head.is_empty() {
        debug!(plugin = name, "connection closed before the tls handshake");
        return None;
    }
    if head.len() == 5
        && [&b"GET /"[..], b"HEAD ", b"POST ", b"PUT /", b"OPTIO"].contains(&&head[..])
    {
        warn!(
            plugin = name,
            "plain http request on the tls side, answering 400"
        );
        let _ = conn.write_all(PLAIN_ON_TLS).await;
        let _ = conn.shutdown().await;
        return None;
    }
    Some(Box::new(Rewind::new(head.freeze(), conn)))
}

/// `Host` without port, lower case (frp `httppkg.CanonicalHost`).
fn canonical_host(h: &str) -> String {
    let h = h.trim();
    let h = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match h.rsplit_once(':') {
            Some((host, port))
                if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                host
            }
            _ => h,
        }
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

const XFF: &str = "x-forwarded-for";
const XFH: &str = "x-forwarded-host";
const XFP: &str = "x-forwarded-proto";

/// The protocol a request asks to switch to (`Connection: upgrade` + `Upgrade`).
fn upgrade_of(h: &hyper::HeaderMap) -> Option<HeaderValue> {
    wants_upgrade(h).then(|| h.get(UPGRADE).cloned()).flatten()
}

/// Joins the user's and the upstream's connections once both have switched protocols.
fn splice_upgrades(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    name: &'static str,
) {
    tokio::spawn(async move {
        let (Ok(c), Ok(u)) = (client.await, upstream.await) else {
            debug!(plugin = name, "upgrade did not complete");
            return;
        };
        let mut c = hyper_util::rt::TokioIo::new(c);
        let mut u = hyper_util::rt::TokioIo::new(u);
        if let Err(e) = common::io::join(&mut c, &mut u).await {
            debug!(plugin = name, error = %e, "upgraded connection ended with error");
        }
    });
}

async fn handle(
    mut req: Request<hyper::body::Incoming>,
    s: Arc<Settings>,
    ctx: Arc<ConnCtx>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    if let Some(sni) = ctx.sni.as_deref() {
        if canonical_host(sni) != canonical_host(&host) {
            debug!(plugin = s.kind.name, %sni, %host, "tls server name differs from Host, 421");
            let mut r = Response::new(super::empty());
            *r.status_mut() = StatusCode::MISDIRECTED_REQUEST;
            return Ok(r);
        }
    }
    let upgrade = upgrade_of(req.headers());
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let incoming = parts.headers.clone();
    remove_hop_by_hop(&mut parts.headers);
    if let Some(u) = upgrade {
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        parts.headers.insert(UPGRADE, u);
    }
    for h in [XFF, XFH, XFP] {
        parts.headers.remove(h);
    }
    match s.kind.forwarded {
        Forwarded::Drop => {}
        Forwarded::Copy => {
            for h in [XFF, XFH, XFP] {
                for v in incoming.get_all(h) {
                    parts.headers.append(h, v.clone());
                }
            }
        }
        Forwarded::Append => {
            let prior: Vec<&str> = incoming
                .get_all(XFF)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let mut chain = prior.join(", ");
            if let Some(src) = ctx.src {
                if !chain.is_empty() {
                    chain.push_str(", ");
                }
                chain.push_str(&src.ip().to_string());
            }
            if let Ok(v) = HeaderValue::from_str(&chain) {
                if !chain.is_empty() {
                    parts.headers.insert(XFF, v);
                }
            }
            if let Ok(v) = HeaderValue::from_str(&host) {
                parts.headers.insert(XFH, v);
            }
            parts.headers.insert(
                XFP,
                HeaderValue::from_static(if ctx.tls { "https" } else { "http" }),
            );
        }
    }
    let host_value = match &s.host_rewrite {
        Some(v) => Some(v.clone()),
        None => HeaderValue::from_str(&host).ok(),
    };
    if let Some(v) = host_value {
        parts.headers.insert(HOST, v);
    }
    for (n, v) in &s.set {
        parts.headers.insert(n.clone(), v.clone());
    }
    parts.uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .parse()
        .unwrap_or_default();
    parts.version = hyper::Version::HTTP_11;
    let out = Request::from_parts(parts, body);
    match super::upstream(out, &s.local_addr, s.upstream_tls.as_ref()).await {
        Ok((mut resp, upstream_upgrade)) => {
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                let Some(client) = client_upgrade else {
                    warn!(
                        plugin = s.kind.name,
                        "upstream switched protocols unasked, 502"
                    );
                    let mut r = Response::new(super::empty());
                    *r.status_mut() = StatusCode::BAD_GATEWAY;
                    return Ok(r);
                };
                splice_upgrades(client, upstream_upgrade, s.kind.name);
                return Ok(resp);
            }
            remove_hop_by_hop(resp.headers_mut());
            Ok(resp)
        }
        Err(e) => {
            warn!(plugin = s.kind.name, local = %s.local_addr, error = %e, "http: proxy error");
            let mut r = Response::new(super::empty());
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            Ok(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_hosts() {
        assert_eq!(canonical_host("Example.COM:443"), "example.com");
        assert_eq!(canonical_host("example.com."), "example.com");
        assert_eq!(canonical_host("[::1]:8443"), "::1");
        assert_eq!(canonical_host("::1"), "::1");
    }
}
