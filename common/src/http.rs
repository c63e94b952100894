//! The one small HTTP server both binaries use for their web endpoints (frps dashboard and
//! metrics, frpc admin API): hyper http1, one task per connection under a cancellation token,
//! and frp's Basic auth (checked in constant time; a failure waits 200 ms and answers 401 with
//! `WWW-Authenticate: Basic realm="Restricted"`).

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// Why a `webServer` listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("webServer.tls: {0}")]
    Tls(#[from] crate::transport::tls::TlsError),
    #[error("webServer.tls: certFile and keyFile are both required")]
    TlsFiles,
    /// `webServer.addr` is neither an IP address nor a host name that resolves.
    #[error("webServer.addr: {0}")]
    Addr(String),
}

/// A bound `webServer` (frps dashboard, frpc admin API): TCP, plus TLS when `webServer.tls`
/// has a certificate and key (as frp).
pub struct WebListener {
    tcp: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for WebListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebListener")
            .field("addr", &self.tcp.local_addr().ok())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl WebListener {
    /// Binds `addr:port` and loads the TLS files, so mistakes show at start-up.
    pub async fn bind(cfg: &crate::config::WebServerConfig) -> Result<WebListener, WebError> {
        let addr = format!("{}:{}", cfg.addr, cfg.port);
        let tls = match &cfg.tls {
            // As frp: a `tls` table needs both files; it never means plain HTTP.
            Some(t) if t.cert_file.is_empty() || t.key_file.is_empty() => {
                return Err(WebError::TlsFiles)
            }
            Some(t) => {
                let files = crate::transport::tls::TlsFiles {
                    cert_file: Some(t.cert_file.clone().into()),
                    key_file: Some(t.key_file.clone().into()),
                    trusted_ca_file: None,
                };
                Some(tokio_rustls::TlsAcceptor::from(
                    crate::transport::tls::server_config(&files)?,
                ))
            }
            _ => None,
        };
        // A host name binds the one address frp's Listen picks (see `config::addr`).
        let ip = crate::config::resolve_listen_ip(&cfg.addr)
            .await
            .map_err(WebError::Addr)?;
        let tcp = TcpListener::bind(std::net::SocketAddr::new(ip, cfg.port))
            .await
            .map_err(|source| WebError::Bind { addr, source })?;
        Ok(WebListener { tcp, tls })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.tcp.local_addr()
    }
}

/// A response with a full body.
pub type Resp = Response<Full<Bytes>>;

/// A plain response.
pub fn reply(code: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = code;
    r
}

/// A registry in Prometheus's text format.
pub fn metrics_text(registry: &prometheus::Registry) -> String {
    let mut out = String::new();
    let _ = prometheus::TextEncoder::new().encode_utf8(&registry.gather(), &mut out);
    out
}

/// `GET /metrics` on either binary's web server.
pub fn metrics(registry: &prometheus::Registry) -> Resp {
    let mut r = reply(StatusCode::OK, metrics_text(registry));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// A JSON response.
pub fn json<T: serde::Serialize>(code: StatusCode, v: &T) -> Resp {
    let mut r = reply(code, serde_json::to_vec(v).unwrap_or_default());
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// frp's error body: `{"Code":400,"Msg":"..."}` (its `GeneralResponse` has no JSON tags).
pub fn error(code: StatusCode, msg: &str) -> Resp {
    #[derive(serde::Serialize)]
    struct E<'a> {
        #[serde(rename = "Code")]
        code: u16,
        #[serde(rename = "Msg")]
        msg: &'a str,
    }
    json(
        code,
        &E {
            code: code.as_u16(),
            msg,
        },
    )
}

/// The request's query as decoded `(key, value)` pairs, in order.
pub fn query<B>(req: &Request<B>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space; bad escapes kept as is).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Basic-auth credentials; empty user and password = no auth (as frp).
#[derive(Clone, Default)]
pub struct BasicAuth {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    fn required(&self) -> bool {
        !self.user.is_empty() || !self.password.is_empty()
    }

    /// Whether the request carries these credentials (constant-time comparison).
    pub fn allows(&self, req: &Request<Incoming>) -> bool {
        if !self.required() {
            return true;
        }
        let given = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| {
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b.trim()).ok()
            })
            .unwrap_or_default();
        let want = format!("{}:{}", self.user, self.password);
        subtle::ConstantTimeEq::ct_eq(given.as_slice(), want.as_bytes()).into()
    }
}

/// frp's answer to a failed Basic auth.
pub async fn unauthorized() -> Resp {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut r = reply(StatusCode::UNAUTHORIZED, "Unauthorized\n");
    r.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Basic realm=\"Restricted\""),
    );
    r
}

/// Serves `handler` on `listener` until `token` is cancelled. `/healthz` answers 200 without
/// auth; every other path needs `auth`.
pub async fn serve<H, F>(
    listener: WebListener,
    auth: BasicAuth,
    handler: Arc<H>,
    token: CancellationToken,
) where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Resp> + Send + 'static,
{
    let auth = Arc::new(auth);
    loop {
        let (stream, _) = tokio::select! {
            _ = token.cancelled() => return,
            r = listener.tcp.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    debug!(error = %e, "http accept");
                    continue;
                }
            },
        };
        let (handler, auth, conn_token) = (handler.clone(), auth.clone(), token.clone());
        let tls = listener.tls.clone();
        tokio::spawn(async move {
            let stream: crate::io::BoxStream = match tls {
                None => Box::new(stream),
                Some(acceptor) => {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => Box::new(s),
                        Ok(Err(e)) => {
                            debug!(error = %e, "https handshake");
                            return;
                        }
                        Err(_) => return,
                    }
                }
            };
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (handler, auth) = (handler.clone(), auth.clone());
                async move {
                    if req.uri().path() == "/healthz" {
                        return Ok::<_, Infallible>(reply(StatusCode::OK, ""));
                    }
                    if !auth.allows(&req) {
                        return Ok(unauthorized().await);
                    }
                    Ok(handler(req).await)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn_token.cancelled() => {}
                r = conn => if let Err(e) = r { debug!(error = %e, "http connection") },
            }
        });
    }
}

/// One HTTP/1.1 request to `url` (`http://`, or `https://` with `tls`); returns status and
/// body. Bounded by `timeout` as a whole.
pub async fn fetch(
    url: &str,
    method: hyper::Method,
    headers: &[(&str, String)],
    body: Bytes,
    tls: &std::sync::Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> std::io::Result<(StatusCode, Bytes)> {
    tokio::time::timeout(timeout, send(url, method, headers, body, Some(tls)))
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{url}: timed out"))
        })?
}

/// The request behind [`fetch`] and [`request`], on a fresh connection whose driver runs in
/// this future (no task left behind if the caller gives up).
async fn send(
    url: &str,
    method: hyper::Method,
    headers: &[(&str, String)],
    body: Bytes,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
) -> std::io::Result<(StatusCode, Bytes)> {
    use http_body_util::BodyExt;
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| bad(format!("bad URL {url:?}: {e}")))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(bad(format!(
                "URL {url:?} must start with http:// or https://"
            )))
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| bad(format!("URL {url:?} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let authority = uri
        .authority()
        .map(|a| a.as_str())
        .unwrap_or(&host)
        .to_owned();
    let io = |e: hyper::Error| std::io::Error::other(e.to_string());
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    let stream: crate::io::BoxStream = match (https, tls) {
        (false, _) => Box::new(tcp),
        (true, Some(tls)) => {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| bad(format!("bad host {host:?}: {e}")))?;
            Box::new(
                tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await?,
            )
        }
        (true, None) => return Err(bad(format!("{url}: https needs a TLS client config"))),
    };
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(io)?;
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, authority);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req.body(Full::new(body)).map_err(std::io::Error::other)?;
    let exchange = async move {
        let resp = sender.send_request(req).await.map_err(io)?;
        let code = resp.status();
        let bytes = resp.into_body().collect().await.map_err(io)?.to_bytes();
        // `sender` drops here, which lets the connection driver below finish.
        Ok::<_, std::io::Error>((code, bytes))
    };
    let (result, _) = tokio::join!(exchange, conn);
    result
}

/// Go's `url.QueryEscape`: form encoding of one value.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `application/x-www-form-urlencoded` encoding of `pairs`.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect();
    parts.join("&")
}

/// One plain-HTTP request to `addr` with frp's Basic auth (for `frpc reload|status|stop` and
/// tests): returns status and body.
pub async fn request(
    addr: &str,
    auth: &BasicAuth,
    method: hyper::Method,
    path: &str,
    body: Bytes,
) -> std::io::Result<(StatusCode, String)> {
    let mut headers = Vec::new();
    if auth.required() {
        let cred = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", auth.user, auth.password),
        );
        headers.push(("authorization", format!("Basic {cred}")));
    }
    let (code, bytes) = send(
        &format!("http://{addr}{path}"),
        method,
        &headers,
        body,
        None,
    )
    .await?;
    Ok((code, String::from_utf8_lossy(&bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_decoded() {
        let req = Request::get("/x?user=a%20b&q=%E4%BD%A0+x&bad=%zz%&flag&ü=%c3%bc")
            .body(())
            .unwrap();
        assert_eq!(
            query(&req),
            [
                ("user".into(), "a b".into()),
                ("q".into(), "你 x".into()),
                ("bad".into(), "%zz%".into()),
                ("flag".into(), String::new()),
                ("ü".into(), "ü".into()),
            ]
        );
    }
}
