//! The one small HTTP server both binaries use for their web endpoints (frps dashboard and
//! metrics, frpc admin API): hyper http1, one task per connection under a cancellation token,
//! and frp's Basic auth (checked in constant time; a failure waits 200 ms and answers 401 with
//! `WWW-Authenticate: Basic realm="Restricted"`).
//!
//! What a client may hold is bounded ([`WebLimits`], issue 22): a request head must arrive in
//! time (this is also the keep-alive idle limit: hyper starts the clock when it waits for the
//! next request), a connection with no bytes moving either way is closed, a body must arrive in
//! time and within a size, and connections over the cap get a 503 and are closed. Handlers get
//! the request with its body already read: after auth, and only for POST, PUT and PATCH, a few
//! at a time server-wide (`max_concurrent_bodies`); other methods' bodies are dropped (up to
//! 64 KiB, else 413). Without credentials, a `Host` that is not an IP address, `localhost` or
//! `webServer.addr` is refused (DNS rebinding).

use crate::transport::proxy::ProxyKind;
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
    #[error("bind {addr}: {error}")]
    Bind { addr: String, error: std::io::Error },
    #[error("webServer.tls: {0}")]
    Tls(crate::transport::tls::TlsError),
    #[error("webServer.tls: certFile and keyFile are both required")]
    TlsFiles,
    /// `webServer.addr` is neither an IP address nor a host name that resolves.
    #[error("webServer.addr: {0}")]
    Addr(String),
}

crate::from_cause!(crate::transport::tls::TlsError => WebError::Tls);

/// Bounds on what one web server keeps for its clients. Go's `http.Server` in frp has a 60 s
/// read and write timeout and no connection or body cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebLimits {
    /// From accepting a connection, or from the end of the previous response, to a complete
    /// request head; so also how long an idle keep-alive connection stays.
    pub header_timeout: Duration,
    /// How long a connection may move no byte either way (a client that stops reading its
    /// response, or sending its body).
    pub idle_timeout: Duration,
    /// How long a request body may take to arrive in full.
    pub body_timeout: Duration,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// The largest request body (413 beyond).
    pub max_body: usize,
    /// Request bodies read at once, server-wide; others wait (within `body_timeout`, else
    /// 503), so buffered bodies take at most this many times `max_body`.
    pub max_concurrent_bodies: usize,
}

impl Default for WebLimits {
    fn default() -> Self {
        WebLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            // The admin API and dashboard serve a few people and scripts, not crowds.
            max_connections: 256,
            // A config file or a store entry; frp's largest example config is a few KiB.
            max_body: 10 << 20,
            max_concurrent_bodies: 4,
        }
    }
}

/// A bound `webServer` (frps dashboard, frpc admin API): TCP, plus TLS when `webServer.tls`
/// has a certificate and key (as frp).
pub struct WebListener {
    tcp: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: WebLimits,
    stats: WebStats,
    /// `webServer.addr`: a `Host` accepted without credentials (see [`foreign_host`]).
    own_host: Arc<str>,
    /// Whether any route takes a request body (see [`WebListener::without_bodies`]).
    bodies: bool,
}

/// What a [`WebListener`]'s server holds right now (tests bound memory with it).
#[derive(Debug, Clone, Default)]
pub struct WebStats(Arc<StatsInner>);

#[derive(Debug, Default)]
struct StatsInner {
    reading: std::sync::atomic::AtomicUsize,
    waiting: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

impl WebStats {
    /// Request bodies being read (buffered) now.
    pub fn bodies_reading(&self) -> usize {
        self.0.reading.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Requests whose body waits for its turn to be read.
    pub fn bodies_waiting(&self) -> usize {
        self.0.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The most bodies ever read at once.
    pub fn bodies_peak(&self) -> usize {
        self.0.peak.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Counts one body in a [`WebStats`] counter while it lives.
struct Counted<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Counted<'a> {
    /// The guard and the count with this one.
    fn new(c: &'a std::sync::atomic::AtomicUsize) -> (Self, usize) {
        let now = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        (Counted(c), now)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
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
        let tcp = crate::transport::listen_tcp(std::net::SocketAddr::new(ip, cfg.port))
            .await
            .map_err(|error| WebError::Bind { addr, error })?;
        Ok(WebListener {
            tcp,
            tls,
            limits: WebLimits::default(),
            stats: WebStats::default(),
            own_host: cfg.addr.as_str().into(),
            bodies: true,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.tcp.local_addr()
    }

    /// A handle on what this listener's server holds.
    pub fn stats(&self) -> WebStats {
        self.stats.clone()
    }

    /// For a server none of whose routes takes a body (frps's dashboard): every request body
    /// is dropped as a GET's is (up to 64 KiB, else 413), never buffered.
    pub fn without_bodies(mut self) -> Self {
        self.bodies = false;
        self
    }

    /// Other bounds than [`WebLimits::default`] (tests shorten them).
    pub fn with_limits(mut self, limits: WebLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// Percent-decodes a URL path (the static_file plugin, `webServer.assetsDir`); `None` for a
/// bad escape, invalid UTF-8 or a NUL byte.
pub fn percent_decode_path(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return None;
    }
    String::from_utf8(out).ok()
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

/// A JSON response, ending with a newline as Go's `json.Encoder` writes it (frp's handlers).
pub fn json<T: serde::Serialize>(code: StatusCode, v: &T) -> Resp {
    let mut body = serde_json::to_vec(v).unwrap_or_default();
    body.push(b'\n');
    let mut r = reply(code, body);
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
pub fn percent_decode(s: &str) -> String {
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
    pub fn allows<B>(&self, req: &Request<B>) -> bool {
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

/// The address a request arrived on (a request extension set by [`serve`]).
#[derive(Debug, Clone, Copy)]
pub struct LocalAddr(pub std::net::SocketAddr);

/// Serves `handler` on `listener` until `token` is cancelled. `/healthz` answers 200 without
/// auth; every other path needs `auth`. The handler gets the request with its body read
/// (bounded by the listener's [`WebLimits`]) and a [`LocalAddr`] extension.
pub async fn serve<H, F>(
    listener: WebListener,
    auth: BasicAuth,
    handler: Arc<H>,
    token: CancellationToken,
) where
    H: Fn(Request<Bytes>) -> F + Send + Sync + 'static,
    F: Future<Output = Resp> + Send + 'static,
{
    let auth = Arc::new(auth);
    let limits = listener.limits;
    let takes_bodies = listener.bodies;
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    // Turning a connection away costs a short task; bound those too.
    let refusals = Arc::new(tokio::sync::Semaphore::new(64));
    // The server-wide body budget: what buffered bodies hold is at most this many `max_body`.
    let bodies = Arc::new(tokio::sync::Semaphore::new(
        limits.max_concurrent_bodies.max(1),
    ));
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
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!("web server at its connection cap; turning a connection away");
            if let (Ok(r), None) = (refusals.clone().try_acquire_owned(), &listener.tls) {
                tokio::spawn(async move {
                    turn_away(stream).await;
                    drop(r);
                });
            }
            continue;
        };
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(_) => continue,
        };
        let (handler, auth, conn_token) = (handler.clone(), auth.clone(), token.clone());
        let (stats, bodies, own_host) = (
            listener.stats.clone(),
            bodies.clone(),
            listener.own_host.clone(),
        );
        let tls = listener.tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let stream: crate::io::BoxStream = match tls {
                None => Box::new(stream),
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
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
                let (handler, auth, stats) = (handler.clone(), auth.clone(), stats.clone());
                let (bodies, own_host) = (bodies.clone(), own_host.clone());
                async move {
                    if req.uri().path() == "/healthz" {
                        return Ok::<_, Infallible>(reply(StatusCode::OK, ""));
                    }
                    if !auth.allows(&req) {
                        return Ok(unauthorized().await);
                    }
                    if !auth.required() {
                        if let Some(refused) = foreign_host(&req, &own_host) {
                            return Ok(refused);
                        }
                    }
                    let (mut parts, body) = req.into_parts();
                    let wanted = takes_bodies
                        && matches!(
                            parts.method,
                            hyper::Method::POST | hyper::Method::PUT | hyper::Method::PATCH
                        );
                    let body = match take_body(&parts, body, wanted, &limits, &bodies, &stats).await
                    {
                        Ok(b) => b,
                        Err(resp) => return Ok(resp),
                    };
                    parts.extensions.insert(LocalAddr(local));
                    Ok(handler(Request::from_parts(parts, body)).await)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(
                    hyper_util::rt::TokioIo::new(Idle::new(stream, limits.idle_timeout)),
                    svc,
                );
            tokio::select! {
                _ = conn_token.cancelled() => {}
                r = conn => if let Err(e) = r { debug!(error = %e, "http connection") },
            }
        });
    }
}

/// Answers a connection over the cap with a 503 and closes it, reading what the client sent
/// meanwhile (for at most a second) so the close does not reset the connection under the
/// answer.
async fn turn_away(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let answer = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\nConnection: close\r\n\r\ntoo many connections";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// The most of a body read (and dropped) for a method that takes none: GET, DELETE, HEAD...
const UNWANTED_BODY: usize = 64 << 10;

/// The body for the handler. A `wanted` body (POST, PUT and PATCH, on a server that takes
/// bodies) is read within the server-wide budget (`max_concurrent_bodies` at once; a request
/// that does not get its turn within `body_timeout` gets 503); any other is read up to
/// [`UNWANTED_BODY`] (413 beyond) and dropped.
async fn take_body(
    parts: &hyper::http::request::Parts,
    body: Incoming,
    wanted: bool,
    limits: &WebLimits,
    budget: &tokio::sync::Semaphore,
    stats: &WebStats,
) -> Result<Bytes, Resp> {
    if !wanted {
        let small = WebLimits {
            max_body: limits.max_body.min(UNWANTED_BODY),
            ..*limits
        };
        read_body(&parts.headers, body, &small).await?;
        return Ok(Bytes::new());
    }
    let permit = {
        let _waiting = Counted::new(&stats.0.waiting);
        match tokio::time::timeout(limits.body_timeout, budget.acquire()).await {
            Ok(Ok(p)) => p,
            _ => {
                debug!("web server at its body budget; turning a request away");
                return Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many request bodies being received at once; try again",
                ));
            }
        }
    };
    let (_reading, now) = Counted::new(&stats.0.reading);
    stats
        .0
        .peak
        .fetch_max(now, std::sync::atomic::Ordering::SeqCst);
    let body = read_body(&parts.headers, body, limits).await;
    drop(permit);
    body
}

/// DNS rebinding: with no credentials, a page on a name the attacker controls, once that name
/// resolves to this server, could read the API (the config and its token) from the victim's
/// browser; such requests carry the attacker's name in `Host`. So without credentials only an
/// IP address, `localhost` or `webServer.addr` is accepted as `Host` (any port); 403 otherwise.
/// A request without `Host` is not from a browser and passes.
fn foreign_host<B>(req: &Request<B>, own: &str) -> Option<Resp> {
    let host = req.headers().get(hyper::header::HOST)?;
    let text = String::from_utf8_lossy(host.as_bytes());
    let unbracket = |h: &str| {
        h.trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_owned()
    };
    let name = text
        .parse::<hyper::http::uri::Authority>()
        .ok()
        .map(|a| unbracket(a.host()));
    let ok = name.is_some_and(|n| {
        n.parse::<std::net::IpAddr>().is_ok()
            || n.eq_ignore_ascii_case("localhost")
            || n.eq_ignore_ascii_case(&unbracket(own))
    });
    if ok {
        return None;
    }
    Some(error(
        StatusCode::FORBIDDEN,
        &format!(
            "Host {text:?} refused: without webServer.user and webServer.password, only an IP \
             address, localhost or webServer.addr ({own}) may name this server (protection \
             against DNS rebinding)"
        ),
    ))
}

/// Reads a request body within `limits`: 413 when it is (or says it will be) larger than
/// `max_body`, 408 when it does not arrive within `body_timeout`.
pub async fn read_body<B>(
    headers: &hyper::HeaderMap,
    body: B,
    limits: &WebLimits,
) -> Result<Bytes, Resp>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body is larger than {} bytes", limits.max_body),
        )
    };
    let declared = headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(body, limits.max_body);
    match tokio::time::timeout(limits.body_timeout, limited.collect()).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("read request body error: {e}"),
        )),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "request body not received within {}s",
                limits.body_timeout.as_secs()
            ),
        )),
    }
}

/// A stream closed (with a `TimedOut` error) once no byte has moved either way for `limit`.
struct Idle<S> {
    inner: S,
    limit: Duration,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<S> Idle<S> {
    fn new(inner: S, limit: Duration) -> Self {
        Idle {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }

    fn moved(&mut self) {
        let next = tokio::time::Instant::now() + self.limit;
        self.deadline.as_mut().reset(next);
    }

    /// On `Pending`, whether the limit has passed.
    fn expired(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn idle_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "no traffic on the connection")
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Idle<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Idle<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(e) => Poll::Ready(e),
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Refuses a state-changing request sent by a browser page of another site (issue 22: a page
/// could POST a `text/plain` store entry, or stop frpc): `403` when its `Sec-Fetch-Site` is
/// `cross-site` or `same-site`, or its `Origin` is not this server's own (`http(s)://` the
/// address the request arrived on, or a loopback name for a loopback address, and its
/// port; or the `Host` it was sent to). `Sec-Fetch-Site: same-origin` passes (a server
/// reached by a name, or through a reverse proxy that sets its own `Host`). Clients that send
/// neither header (frpc's and frp's CLI, curl, scripts) pass.
pub fn refuse_cross_site<B>(req: &Request<B>) -> Option<Resp> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    if let Some(site) = header("sec-fetch-site") {
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return Some(error(
                StatusCode::FORBIDDEN,
                &format!("cross-site request refused (Sec-Fetch-Site: {site})"),
            ));
        }
    }
    // The browser itself says the page is this server's (a page cannot set this header).
    if header("sec-fetch-site").is_some_and(|s| s.eq_ignore_ascii_case("same-origin")) {
        return None;
    }
    let origin = header("origin")?;
    let local = req.extensions().get::<LocalAddr>().map(|l| l.0);
    if local.is_some_and(|l| same_origin(&origin, l))
        || header("host").is_some_and(|h| origin_names_host(&origin, &h))
    {
        return None;
    }
    Some(error(
        StatusCode::FORBIDDEN,
        &format!("cross-site request refused (Origin {origin} is not this server)"),
    ))
}

/// Whether `origin` (`scheme://host[:port]`) is the `Host` the request was sent to: a page
/// opened by a name (`http://frps.lan:7500/`) posting its own form. Safe because a page of
/// another site carries its own name in `Origin`, and one on a rebound name has no credentials
/// for it (and without credentials `foreign_host` refuses such names).
fn origin_names_host(origin: &str, host: &str) -> bool {
    let (Ok(o), Ok(h)) = (
        origin.parse::<hyper::Uri>(),
        host.parse::<hyper::http::uri::Authority>(),
    ) else {
        return false;
    };
    let default_port = match o.scheme_str() {
        Some("http") => 80,
        Some("https") => 443,
        _ => return false,
    };
    o.host().is_some_and(|n| n.eq_ignore_ascii_case(h.host()))
        && o.port_u16().unwrap_or(default_port) == h.port_u16().unwrap_or(default_port)
}

/// Whether `origin` (`scheme://host[:port]`) names `local`.
fn same_origin(origin: &str, local: std::net::SocketAddr) -> bool {
    let Ok(uri) = origin.parse::<hyper::Uri>() else {
        return false;
    };
    let default_port = match uri.scheme_str() {
        Some("http") => 80,
        Some("https") => 443,
        _ => return false,
    };
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host_ok = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip == local.ip() || (ip.is_loopback() && local.ip().is_loopback()),
        Err(_) => host.eq_ignore_ascii_case("localhost") && local.ip().is_loopback(),
    };
    host_ok && uri.port_u16().unwrap_or(default_port) == local.port()
}

/// One HTTP/1.1 request to `url` (`http://`, or `https://` with `tls`), through `proxy` when
/// given (as Go's `http.ProxyURL`: an `http://` URL is sent to an HTTP proxy in absolute form,
/// an `https://` one through its CONNECT tunnel; a SOCKS5 proxy tunnels both); returns status
/// and body. Bounded by `timeout` as a whole.
pub async fn fetch(
    url: &str,
    method: hyper::Method,
    headers: &[(&str, String)],
    body: Bytes,
    tls: &std::sync::Arc<rustls::ClientConfig>,
    timeout: Duration,
    proxy: Option<&crate::transport::proxy::ProxyUrl>,
) -> std::io::Result<(StatusCode, Bytes)> {
    let (code, _, body) =
        tokio::time::timeout(timeout, send(url, method, headers, body, Some(tls), proxy))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{url}: timed out"))
            })??;
    Ok((code, body))
}

/// The request behind [`fetch`] and [`request`], on a fresh connection whose driver runs in
/// this future (no task left behind if the caller gives up).
async fn send(
    url: &str,
    method: hyper::Method,
    headers: &[(&str, String)],
    body: Bytes,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
    proxy: Option<&crate::transport::proxy::ProxyUrl>,
) -> std::io::Result<(StatusCode, hyper::HeaderMap, Bytes)> {
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
    // Through an HTTP proxy a plain `http://` request goes in absolute form, as Go's
    // transport sends it; anything else is tunnelled.
    let absolute =
        proxy.is_some_and(|p| matches!(p.kind, ProxyKind::Http | ProxyKind::Https)) && !https;
    let tcp: crate::io::BoxStream = match proxy {
        None => Box::new(crate::dns::connect(&host, port).await?),
        Some(p) => {
            let (ph, pp) = crate::transport::dial::split_host_port(&p.addr)?;
            let tcp = crate::dns::connect(ph, pp)
                .await
                .map_err(|e| std::io::Error::new(e.kind(), format!("{} {}: {e}", p.key, p.addr)))?;
            let target = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            p.connect(tcp, (!absolute).then_some(target.as_str()))
                .await?
        }
    };
    let stream: crate::io::BoxStream = match (https, tls) {
        (false, _) => tcp,
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
        .uri(if absolute { url } else { path })
        .header(hyper::header::HOST, authority);
    if let (true, Some((u, p))) = (absolute, proxy.and_then(|p| p.auth.as_ref())) {
        use base64::Engine;
        let cred = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        req = req.header("proxy-authorization", format!("Basic {cred}"));
    }
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req.body(Full::new(body)).map_err(std::io::Error::other)?;
    let exchange = async move {
        let resp = sender.send_request(req).await.map_err(io)?;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.map_err(io)?.to_bytes();
        // `sender` drops here, which lets the connection driver below finish.
        Ok::<_, std::io::Error>((parts.status, parts.headers, bytes))
    };
    let (result, _) = tokio::join!(exchange, conn);
    match (result, proxy) {
        // Through an HTTP proxy in absolute form, its own refusal is the answer.
        (Ok((StatusCode::PROXY_AUTHENTICATION_REQUIRED, ..)), Some(p)) if absolute => {
            Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "proxy {} wants other credentials in {} (407 Proxy Authentication Required)",
                    p.addr, p.key
                ),
            ))
        }
        (r, _) => r,
    }
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
    let a = request_with(addr, auth, method, path, &[], body).await?;
    Ok((a.code, a.body))
}

/// An answer to [`request_with`].
#[derive(Debug)]
pub struct Answer {
    pub code: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

/// [`request`] with extra request headers, returning the response headers too.
pub async fn request_with(
    addr: &str,
    auth: &BasicAuth,
    method: hyper::Method,
    path: &str,
    extra: &[(&str, String)],
    body: Bytes,
) -> std::io::Result<Answer> {
    let mut headers = extra.to_vec();
    if auth.required() {
        let cred = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", auth.user, auth.password),
        );
        headers.push(("authorization", format!("Basic {cred}")));
    }
    let (code, resp_headers, bytes) = send(
        &format!("http://{addr}{path}"),
        method,
        &headers,
        body,
        None,
        None,
    )
    .await?;
    Ok(Answer {
        code,
        headers: resp_headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// Whether `Connection` lists `upgrade` and `Upgrade` is present.
pub fn wants_upgrade(h: &hyper::HeaderMap) -> bool {
    h.contains_key(hyper::header::UPGRADE)
        && h.get_all(hyper::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Go's `hopHeaders` plus the headers named in `Connection`.
pub fn remove_hop_by_hop(h: &mut hyper::HeaderMap) {
    let named: Vec<hyper::header::HeaderName> = h
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| hyper::header::HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in [
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        h.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_are_read_within_the_limits() {
        use futures::stream;
        use http_body_util::StreamBody;
        use hyper::body::Frame;
        let limits = WebLimits {
            max_body: 1000,
            body_timeout: Duration::from_millis(200),
            ..Default::default()
        };
        let chunks = |n: usize| {
            StreamBody::new(stream::iter((0..n).map(|_| {
                Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![b'x'; 100])))
            })))
        };
        let none = hyper::HeaderMap::new();
        assert_eq!(
            read_body(&none, chunks(10), &limits).await.unwrap().len(),
            1000
        );
        // Without a declared length, the body is cut off one byte past the cap.
        let r = read_body(&none, chunks(11), &limits).await.unwrap_err();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // A declared length over the cap is refused before reading.
        let mut declared = hyper::HeaderMap::new();
        declared.insert(hyper::header::CONTENT_LENGTH, "1001".parse().unwrap());
        let r = read_body(&declared, chunks(0), &limits).await.unwrap_err();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // A body that stops arriving times out.
        let stalled = StreamBody::new(stream::pending::<Result<Frame<Bytes>, std::io::Error>>());
        let r = read_body(&none, stalled, &limits).await.unwrap_err();
        assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
    }

    #[test]
    fn hosts_accepted_without_credentials() {
        for (host, own, ok) in [
            (Some("127.0.0.1:7400"), "127.0.0.1", true),
            (Some("192.168.1.5"), "127.0.0.1", true),
            (Some("[::1]:7400"), "127.0.0.1", true),
            (Some("localhost:7400"), "127.0.0.1", true),
            (Some("LOCALHOST."), "127.0.0.1", true),
            (Some("frpc.lan:7400"), "frpc.lan", true),
            (None, "127.0.0.1", true),
            (Some("evil.example:7400"), "127.0.0.1", false),
            (Some("localhost.evil.example"), "127.0.0.1", false),
            (Some("127.0.0.1.evil.example"), "127.0.0.1", false),
            (Some(""), "127.0.0.1", false),
            (Some("a b"), "127.0.0.1", false),
        ] {
            let mut req = Request::get("/api/config");
            if let Some(h) = host {
                req = req.header(hyper::header::HOST, h);
            }
            let req = req.body(()).unwrap();
            let refused = foreign_host(&req, own);
            assert_eq!(refused.is_none(), ok, "{host:?} with {own}");
            if let Some(r) = refused {
                assert_eq!(r.status(), StatusCode::FORBIDDEN);
            }
        }
    }

    #[test]
    fn own_origins() {
        let lo: std::net::SocketAddr = "127.0.0.1:7400".parse().unwrap();
        let lan: std::net::SocketAddr = "192.168.1.5:7400".parse().unwrap();
        for (origin, local, ok) in [
            ("http://127.0.0.1:7400", lo, true),
            ("http://localhost:7400", lo, true),
            ("http://[::1]:7400", lo, true),
            ("https://127.0.0.1:7400", lo, true),
            ("http://127.0.0.1:7401", lo, false),
            ("http://127.0.0.1", lo, false),
            ("http://evil.example:7400", lo, false),
            ("null", lo, false),
            ("http://192.168.1.5:7400", lan, true),
            ("http://localhost:7400", lan, false),
            ("ftp://192.168.1.5:7400", lan, false),
        ] {
            assert_eq!(same_origin(origin, local), ok, "{origin} on {local}");
        }
    }

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
