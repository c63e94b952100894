//! The HTTP reverse proxy on `vhostHTTPPort` (frp `pkg/util/vhost/http.go`,
//! `server/proxy/http.go`): hyper http1 on the user's socket, hyper client on work connections.
//!
//! Per request: canonical host, percent-decoded path and the Basic user pick a route; that same
//! route's credentials are then checked against the same header the user came from (so routing
//! by `Proxy-Authorization` cannot skip a proxy's check: frp PR #5285). The request goes
//! upstream with hop-by-hop headers removed, `X-Forwarded-For` appended, `X-Forwarded-Host`
//! and `X-Forwarded-Proto` set, `hostHeaderRewrite` and `requestHeaders.set` applied; bodies
//! stream both ways. `Upgrade` requests (WebSocket) are joined byte for byte after the 101.
//!
//! Keep-alive on both legs: each user connection keeps the work connection of its last route
//! and reuses it for the next request to the same route (frp pools idle upstream connections
//! per route across users; we do not share them between user connections).

use super::router::{canonical_host, Conflict, RouteGuard, Table};
use bytes::Bytes;
use common::io::BoxStream;
use futures::future::BoxFuture;
use headers::{
    credentials, decode_path, has_conflicting_length, has_unsupported_transfer_encoding,
    header_str, remove_hop_by_hop, wants_upgrade,
};
pub(crate) use headers::{credentials_match, parse_basic};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

/// frp's built-in 404 page (`pkg/util/vhost/resource.go`).
pub(crate) const NOT_FOUND_PAGE: &str = r#"<!DOCTYPE html>
<html>
<head>
<title>Not Found</title>
<style>
    body {
        width: 35em;
        margin: 0 auto;
        font-family: Tahoma, Verdana, Arial, sans-serif;
    }
</style>
</head>
<body>
<h1>The page you requested was not found.</h1>
<p>Sorry, the page you are looking for is currently unavailable.<br/>
Please try again later.</p>
<p>The server is powered by <a href="https://github.com/fatedier/frp">frp</a>.</p>
<p><em>Faithfully yours, frp.</em></p>
</body>
</html>
"#;

/// Ours: frp answers 404 here, which sends users looking for a domain mistake.
const BAD_GATEWAY_PAGE: &str = r#"<!DOCTYPE html>
<html>
<head><title>502 Bad Gateway</title></head>
<body>
<h1>502 Bad Gateway</h1>
<p>The domain is served by this frps, but its backend could not be reached: the frp client
is offline, has no work connection to spare, or its local service refused the request.</p>
</body>
</html>
"#;

/// The longest request head we read (request line plus headers); longer ones get 431.
/// (Go's default `MaxHeaderBytes` is 1 MiB; 64 KiB is what common servers allow.)
const MAX_HEAD: usize = 64 * 1024;
/// frp's `ReadHeaderTimeout` for the vhost server.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Response body: streamed from upstream or one of our pages.
type Body = BoxBody<Bytes, hyper::Error>;
/// Upstream request body: the user's, streamed, reporting when it is done.
type UpBody = EndSignal<Incoming>;

/// A started work connection for one upstream HTTP connection.
pub(crate) struct Work {
    /// Wrapped (encryption, compression, limiter) and counted.
    pub(crate) stream: BoxStream,
    /// The proxy's token: the upstream connection ends when the proxy closes.
    pub(crate) token: CancellationToken,
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Work").finish_non_exhaustive()
    }
}

/// Where a route's requests go: the proxy behind it.
pub(crate) trait Backend: Send + Sync + std::fmt::Debug {
    /// Opens a work connection for a user at `peer` (StartWorkConn carries `peer` only, as frp).
    fn connect(&self, peer: SocketAddr) -> BoxFuture<'_, Result<Work, String>>;
    /// The proxy's wire name, for logs.
    fn name(&self) -> &str;
}

/// What an `http` proxy registers per (domain, location).
#[derive(Debug)]
pub(crate) struct HttpRoute {
    /// `httpUser`/`httpPassword`; `None` when both are empty (frp: no check).
    pub(crate) auth: Option<(String, String)>,
    pub(crate) host_rewrite: Option<HeaderValue>,
    /// `requestHeaders.set`, applied with set semantics.
    pub(crate) request_headers: Vec<(HeaderName, HeaderValue)>,
    /// `responseHeaders.set`.
    pub(crate) response_headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) backend: Arc<dyn Backend>,
}

/// The vhost HTTP server's shared state: routes and settings.
#[derive(Debug)]
pub(crate) struct HttpVhost {
    routes: Table<Arc<HttpRoute>>,
    /// `vhostHTTPTimeout`: from the end of the request body to the response head.
    response_timeout: Duration,
    /// frp's page or the contents of `custom404Page`.
    not_found: Bytes,
    header_read_timeout: Duration,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HttpVhost {
    /// `custom404_page` is read once here; an unreadable file falls back to frp's page with a
    /// warning, as frp does.
    pub(crate) fn new(vhost_http_timeout: i64, custom404_page: &str) -> HttpVhost {
        let not_found = if custom404_page.is_empty() {
            Bytes::from_static(NOT_FOUND_PAGE.as_bytes())
        } else {
            match std::fs::read(custom404_page) {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    warn!(path = custom404_page, error = %e, "cannot read custom404Page, using frp's page");
                    Bytes::from_static(NOT_FOUND_PAGE.as_bytes())
                }
            }
        };
        HttpVhost {
            routes: Table::default(),
            response_timeout: Duration::from_secs(vhost_http_timeout.max(1) as u64),
            not_found,
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }

    /// Adds a route; it lives until the guard drops.
    pub(crate) fn register(
        &self,
        domain: &str,
        location: &str,
        route_by_http_user: &str,
        route: Arc<HttpRoute>,
    ) -> Result<RouteGuard<Arc<HttpRoute>>, Conflict> {
        self.routes
            .register(domain, location, route_by_http_user, route)
    }

    fn lookup(&self, host: &str, path: &str, user: &str) -> Option<Arc<HttpRoute>> {
        self.routes.lookup(host, path, user)
    }
}

/// Serves users on `listener` until `token` is cancelled.
pub(crate) async fn serve(
    vhost: Arc<HttpVhost>,
    listener: TcpListener,
    pp: Arc<common::transport::proxy_protocol::Trusted>,
    tracker: TaskTracker,
    token: CancellationToken,
) {
    let t = tracker.clone();
    super::accept_loop(
        "http",
        listener,
        pp,
        tracker,
        token,
        move |tcp, peer, token| serve_conn(vhost.clone(), tcp, peer, t.clone(), token),
    )
    .await
}

/// One user connection: hyper's http1 server with header limits and the header-read timeout.
pub(crate) async fn serve_conn<S>(
    vhost: Arc<HttpVhost>,
    io: S,
    peer: SocketAddr,
    tracker: TaskTracker,
    token: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let verdicts = super::framing::Verdicts::default();
    let io = super::framing::Scanned::new(io, verdicts.clone());
    let conn = Arc::new(UserConn {
        vhost: vhost.clone(),
        verdicts,
        peer,
        tracker,
        token: token.clone(),
        upstream: Mutex::new(None),
    });
    let svc = hyper::service::service_fn(move |req| {
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(conn.handle(req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(vhost.header_read_timeout)
        .max_header_size(MAX_HEAD)
        .keep_alive(true);
    let served = builder
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::select! {
        _ = token.cancelled() => {}
        r = served => if let Err(e) = r {
            debug!(error = %e, "vhost http connection ended with error");
        },
    }
}

/// The upstream connection a user connection keeps for its last route.
struct Upstream {
    route: Arc<HttpRoute>,
    sender: hyper::client::conn::http1::SendRequest<UpBody>,
}

/// State of one user connection.
struct UserConn {
    vhost: Arc<HttpVhost>,
    /// One per request head read, in order: whether it had both framings.
    verdicts: super::framing::Verdicts,
    peer: SocketAddr,
    tracker: TaskTracker,
    /// Cancelled when the user connection ends (or frps stops): ends upgraded tunnels too.
    token: CancellationToken,
    upstream: Mutex<Option<Upstream>>,
}

/// Why a request got no upstream response.
enum Failure {
    Unreachable(String),
    Timeout,
    /// The user's request body broke off or was malformed (a bad chunk): the user's fault, not
    /// the backend's.
    UserBody(String),
}

impl UserConn {
    async fn handle(&self, mut req: Request<Incoming>) -> Response<Body> {
        let both_framings = lock(&self.verdicts).pop_front().unwrap_or(false);
        if both_framings || has_conflicting_length(req.headers()) {
            info!(peer = %self.peer, "refusing a request with both Content-Length and Transfer-Encoding");
            let mut r = text(StatusCode::BAD_REQUEST, "Bad Request\n");
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        if has_unsupported_transfer_encoding(req.headers()) {
            info!(peer = %self.peer, "refusing a request with an unsupported Transfer-Encoding");
            let mut r = text(
                StatusCode::NOT_IMPLEMENTED,
                "Not Implemented: unsupported transfer encoding\n",
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        // Two Host headers: which one routes and which one the backend believes would differ
        // (Go answers 400 "too many Host headers").
        if req.headers().get_all(header::HOST).iter().nth(1).is_some() {
            info!(peer = %self.peer, "refusing a request with more than one Host header");
            return text(
                StatusCode::BAD_REQUEST,
                "Bad Request: too many Host headers\n",
            );
        }
        // Absolute-form request line: a proxy-style request (frp: `req.URL.Host != ""`). As in
        // Go, its URI's host (without userinfo) is the request's host: it routes, and it is the
        // Host the backend gets (`rewrite`), whatever the Host header said.
        let proxy_style = req.uri().authority().is_some();
        let raw_host = match req.uri().authority() {
            Some(a) => {
                let a = a.as_str();
                a.rsplit_once('@').map_or(a, |(_, host)| host).to_owned()
            }
            None => header_str(req.headers(), &header::HOST).to_owned(),
        };
        let host = canonical_host(&raw_host);
        let Some(path) = decode_path(req.uri().path()) else {
            return text(StatusCode::BAD_REQUEST, "Bad Request\n");
        };
        let creds = credentials(req.headers(), proxy_style);
        let route_user = creds.as_ref().map(|c| c.0.as_str()).unwrap_or("");
        let Some(route) = self.vhost.lookup(&host, &path, route_user) else {
            debug!(%host, %path, "no route");
            return self.not_found();
        };
        // The route just chosen is the one whose credentials are checked, with the credentials
        // from the header that chose it.
        if !authorized(&route, creds.as_ref()) {
            return unauthorized(proxy_style);
        }
        // CONNECT (frp `connectHandler`) goes to the backend like an Upgrade: a 2xx answer
        // turns both connections into one tunnel.
        let connect = req.method() == Method::CONNECT;
        let user_upgrade =
            (connect || wants_upgrade(req.headers())).then(|| hyper::upgrade::on(&mut req));
        let (done_tx, done_rx) = oneshot::channel();
        let up_req = self.rewrite(req, &route, &raw_host, proxy_style, done_tx);
        let resp = match self.send(&route, up_req, done_rx, connect).await {
            Ok(r) => r,
            Err(Failure::Timeout) => {
                info!(proxy = route.backend.name(), %host, "backend response timed out");
                return page(
                    StatusCode::GATEWAY_TIMEOUT,
                    Bytes::from_static(b"504 Gateway Timeout\n"),
                    "text/plain; charset=utf-8",
                );
            }
            Err(Failure::UserBody(e)) => {
                debug!(proxy = route.backend.name(), %host, error = %e, "user's request body broke off or was malformed");
                let mut r = text(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: malformed request body\n",
                );
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return r;
            }
            Err(Failure::Unreachable(e)) => {
                warn!(proxy = route.backend.name(), %host, error = %e, "backend unreachable");
                return page(
                    StatusCode::BAD_GATEWAY,
                    Bytes::from_static(BAD_GATEWAY_PAGE.as_bytes()),
                    "text/html; charset=utf-8",
                );
            }
        };
        self.respond(resp, &route, user_upgrade, connect)
    }

    fn not_found(&self) -> Response<Body> {
        page(
            StatusCode::NOT_FOUND,
            self.vhost.not_found.clone(),
            "text/html; charset=utf-8",
        )
    }

    /// The request as it goes upstream (Go `ReverseProxy` with frp's `Rewrite`).
    fn rewrite(
        &self,
        req: Request<Incoming>,
        route: &HttpRoute,
        raw_host: &str,
        proxy_style: bool,
        done: oneshot::Sender<()>,
    ) -> Request<UpBody> {
        let (mut parts, body) = req.into_parts();
        let upgrade = wants_upgrade(&parts.headers)
            .then(|| parts.headers.get(header::UPGRADE).cloned())
            .flatten();
        remove_hop_by_hop(&mut parts.headers);
        if let Some(u) = upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            parts.headers.insert(header::UPGRADE, u);
        }
        let h = &mut parts.headers;
        let prior: Vec<&str> = h
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let ip = self.peer.ip().to_string();
        let xff = if prior.is_empty() {
            ip
        } else {
            format!("{}, {ip}", prior.join(", "))
        };
        if let Ok(v) = HeaderValue::from_str(&xff) {
            h.insert("x-forwarded-for", v);
        }
        if let Ok(v) = HeaderValue::from_str(raw_host) {
            h.insert("x-forwarded-host", v);
        }
        h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        if let Some(r) = &route.host_rewrite {
            h.insert(header::HOST, r.clone());
        } else if let Ok(v) = HeaderValue::from_str(raw_host) {
            // The host the request was routed by (the URI's for absolute-form requests).
            h.insert(header::HOST, v);
        }
        for (k, v) in &route.request_headers {
            h.insert(k.clone(), v.clone());
        }
        if !proxy_style && parts.method != Method::CONNECT {
            // Origin form upstream: only the path and query.
            let pq = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            parts.uri = pq.parse::<Uri>().unwrap_or_else(|_| Uri::from_static("/"));
        }
        parts.version = Version::HTTP_11;
        // A body that is already complete may never be polled: start the timer at once.
        let done = (!body.is_end_stream()).then_some(done);
        Request::from_parts(parts, EndSignal { inner: body, done })
    }

    /// Sends upstream on the kept connection of this route, or a new work connection.
    /// The timeout (`vhostHTTPTimeout`) runs from the end of the request body, as Go's
    /// `ResponseHeaderTimeout`.
    async fn send(
        &self,
        route: &Arc<HttpRoute>,
        req: Request<UpBody>,
        body_done: oneshot::Receiver<()>,
        connect: bool,
    ) -> Result<Response<Incoming>, Failure> {
        let kept = lock(&self.upstream)
            .take()
            .filter(|u| Arc::ptr_eq(&u.route, route));
        let reusable = match kept {
            Some(mut u) => u.sender.ready().await.is_ok().then_some(u.sender),
            None => None,
        };
        let mut sender = match reusable {
            Some(s) => s,
            None => self.open(route).await?,
        };
        let timer = async {
            let _ = body_done.await;
            tokio::time::sleep(self.vhost.response_timeout).await;
        };
        let resp = tokio::select! {
            r = sender.send_request(req) => r.map_err(|e| {
                if e.is_user() {
                    Failure::UserBody(e.to_string())
                } else {
                    Failure::Unreachable(e.to_string())
                }
            })?,
            _ = timer => return Err(Failure::Timeout),
        };
        if !tunnel(&resp, connect) {
            *lock(&self.upstream) = Some(Upstream {
                route: route.clone(),
                sender,
            });
        }
        Ok(resp)
    }

    async fn open(
        &self,
        route: &HttpRoute,
    ) -> Result<hyper::client::conn::http1::SendRequest<UpBody>, Failure> {
        let work = route
            .backend
            .connect(self.peer)
            .await
            .map_err(Failure::Unreachable)?;
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .title_case_headers(true)
            .handshake(TokioIo::new(work.stream))
            .await
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        let user = self.token.clone();
        self.tracker.spawn(
            async move {
                tokio::select! {
                    _ = work.token.cancelled() => {}
                    _ = user.cancelled() => {}
                    r = conn.with_upgrades() => if let Err(e) = r {
                        debug!(error = %e, "upstream http connection ended with error");
                    },
                }
            }
            .in_current_span(),
        );
        Ok(sender)
    }

    /// The upstream response as it goes to the user; a 101 joins both upgraded connections.
    fn respond(
        &self,
        mut resp: Response<Incoming>,
        route: &HttpRoute,
        user_upgrade: Option<hyper::upgrade::OnUpgrade>,
        connect: bool,
    ) -> Response<Body> {
        let switching = tunnel(&resp, connect);
        if let (true, Some(user_up)) = (switching, user_upgrade) {
            let up = hyper::upgrade::on(&mut resp);
            let token = self.token.clone();
            self.tracker.spawn(
                async move {
                    let joined = async {
                        let (u, w) = tokio::try_join!(user_up, up).map_err(|e| e.to_string())?;
                        let (mut u, mut w) = (TokioIo::new(u), TokioIo::new(w));
                        tokio::io::copy_bidirectional(&mut u, &mut w)
                            .await
                            .map_err(|e| e.to_string())?;
                        Ok::<_, String>(())
                    };
                    tokio::select! {
                        _ = token.cancelled() => {}
                        r = joined => if let Err(e) = r {
                            debug!(error = %e, "upgraded connection ended with error");
                        },
                    }
                }
                .in_current_span(),
            );
        } else {
            remove_hop_by_hop(resp.headers_mut());
        }
        let h = resp.headers_mut();
        for (k, v) in &route.response_headers {
            h.insert(k.clone(), v.clone());
        }
        resp.map(|b| b.boxed())
    }
}

/// Whether the upstream answer turns the connection into a tunnel (101, or 2xx to CONNECT).
fn tunnel(resp: &Response<Incoming>, connect: bool) -> bool {
    resp.status() == StatusCode::SWITCHING_PROTOCOLS || (connect && resp.status().is_success())
}

/// frp `CheckAuth` on the chosen route, comparing in constant time.
fn authorized(route: &HttpRoute, creds: Option<&(String, String)>) -> bool {
    credentials_match(route.auth.as_ref(), creds)
}

/// 401 with `WWW-Authenticate`, or 407 with `Proxy-Authenticate` for proxy-style requests
/// (Go `http.Error` bodies).
fn unauthorized(proxy_style: bool) -> Response<Body> {
    let (code, name, body) = if proxy_style {
        (
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            header::PROXY_AUTHENTICATE,
            "Proxy Authentication Required\n",
        )
    } else {
        (
            StatusCode::UNAUTHORIZED,
            header::WWW_AUTHENTICATE,
            "Unauthorized\n",
        )
    };
    let mut r = text(code, body);
    r.headers_mut()
        .insert(name, HeaderValue::from_static("Basic realm=\"Restricted\""));
    r
}

fn page(code: StatusCode, body: Bytes, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(body).map_err(|n: Infallible| match n {}).boxed());
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn text(code: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = page(
        code,
        Bytes::from_static(body.as_bytes()),
        "text/plain; charset=utf-8",
    );
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// A body that reports (by dropping `done`) when it has been read to the end or dropped.
struct EndSignal<B> {
    inner: B,
    done: Option<oneshot::Sender<()>>,
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for EndSignal<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.done.take();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

mod headers;
#[cfg(test)]
mod tests;
