//! tcpmux with the `httpconnect` multiplexer on `tcpmuxHTTPConnectPort` (frp
//! `pkg/util/tcpmux/httpconnect.go`, `pkg/util/vhost/vhost.go` `Muxer`): the user sends
//! `CONNECT host:port`; the host (and `routeByHTTPUser`, from `Proxy-Authorization`) picks a
//! route; that route's credentials are checked against the same header (407 otherwise). Then
//! frps answers `200 OK` and relays the rest, or with `tcpmuxPassthrough` forwards the CONNECT
//! request itself. No route: frp's 404 page, then close.

use super::http::{parse_basic, NOT_FOUND_PAGE};
use super::router::{canonical_host, Conflict, RouteGuard, Table};
use super::StreamBackend;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// frp's `vhostReadWriteTimeout` for reading the CONNECT request.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest CONNECT request head read.
const MAX_HEAD: usize = 64 * 1024;

/// What a tcpmux proxy registers per domain.
#[derive(Debug)]
pub(crate) struct TcpMuxRoute {
    /// `httpUser`/`httpPassword`; `None` when both are empty.
    pub(crate) auth: Option<(String, String)>,
    pub(crate) backend: Arc<dyn StreamBackend>,
}

/// Routes of the tcpmux listener.
#[derive(Debug)]
pub(crate) struct TcpMuxVhost {
    routes: Table<Arc<TcpMuxRoute>>,
    passthrough: bool,
}

impl TcpMuxVhost {
    pub(crate) fn new(passthrough: bool) -> TcpMuxVhost {
        TcpMuxVhost {
            routes: Table::default(),
            passthrough,
        }
    }

    pub(crate) fn register(
        &self,
        domain: &str,
        route_by_http_user: &str,
        route: Arc<TcpMuxRoute>,
    ) -> Result<RouteGuard<Arc<TcpMuxRoute>>, Conflict> {
        self.routes.register(domain, "", route_by_http_user, route)
    }
}

/// A parsed CONNECT request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Connect {
    /// Canonical host (no port, lowercased).
    pub(crate) host: String,
    /// Basic credentials from `Proxy-Authorization`.
    pub(crate) creds: Option<(String, String)>,
}

/// Where the head ends (after its empty line), if it is complete.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(n) = buf[i..].iter().position(|b| *b == b'\n') {
        let end = i + n + 1;
        let line = &buf[i..i + n];
        if (line.is_empty() || line == b"\r") && i > 0 {
            return Some(end);
        }
        i = end;
    }
    None
}

/// Parses a CONNECT request head (Go `http.ReadRequest` + frp's checks).
pub(crate) fn parse_connect(head: &[u8]) -> Result<Connect, &'static str> {
    let text = std::str::from_utf8(head).map_err(|_| "request head is not UTF-8")?;
    let mut lines = text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().ok_or("empty request")?;
    let mut parts = first.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target), Some(version), None) = (method, target, version, parts.next())
    else {
        return Err("malformed request line");
    };
    if !version.starts_with("HTTP/1.") {
        return Err("malformed HTTP version");
    }
    if method != "CONNECT" {
        return Err("connections to tcp vhost must be of method CONNECT");
    }
    let mut host_header = None;
    let mut creds = None;
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or("malformed header line")?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("host") {
            host_header.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("proxy-authorization") && creds.is_none() {
            creds = parse_basic(value);
        }
    }
    // Go: the authority in the request line wins over the Host header.
    let host = if target.is_empty() {
        host_header.unwrap_or("")
    } else {
        target
    };
    Ok(Connect {
        host: canonical_host(host),
        creds,
    })
}

/// Serves CONNECT users on `listener` until `token` is cancelled.
pub(crate) async fn serve(
    vhost: Arc<TcpMuxVhost>,
    listener: TcpListener,
    pp: Arc<common::transport::proxy_protocol::Trusted>,
    tracker: TaskTracker,
    token: CancellationToken,
) {
    super::accept_loop(
        "tcpmux",
        listener,
        pp,
        tracker,
        token,
        move |tcp, peer, _| {
            let vhost = vhost.clone();
            async move { serve_conn(&vhost, tcp, peer).await }
        },
    )
    .await
}

/// frp `util.NotFoundResponse`, `OkResponse`, `ProxyUnauthorizedResponse` as written by Go.
fn not_found() -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nContent-Type: text/html\r\nServer: frp/{}\r\n\r\n",
        NOT_FOUND_PAGE.len(),
        common::FRP_VERSION
    )
    .into_bytes();
    r.extend_from_slice(NOT_FOUND_PAGE.as_bytes());
    r
}
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
const PROXY_UNAUTHORIZED: &[u8] = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\nProxy-Authenticate: Basic realm=\"Restricted\"\r\n\r\n";

async fn serve_conn(vhost: &TcpMuxVhost, mut tcp: TcpStream, peer: SocketAddr) {
    let (buf, end) = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut tcp)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            debug!(error = %e, "closing tcpmux connection: no CONNECT request");
            return;
        }
        Err(_) => {
            debug!("closing tcpmux connection: no CONNECT request within {READ_TIMEOUT:?}");
            return;
        }
    };
    let req = match parse_connect(&buf[..end]) {
        Ok(r) => r,
        Err(e) => {
            debug!(error = e, "closing tcpmux connection");
            return;
        }
    };
    let user = req.creds.as_ref().map(|c| c.0.as_str()).unwrap_or("");
    let Some(route) = vhost.routes.lookup(&req.host, "", user) else {
        debug!(host = %req.host, "tcpmux: no route");
        let _ = tcp.write_all(&not_found()).await;
        return;
    };
    if !super::http::credentials_match(route.auth.as_ref(), req.creds.as_ref()) {
        let _ = tcp.write_all(PROXY_UNAUTHORIZED).await;
        return;
    }
    let first = if vhost.passthrough {
        buf
    } else {
        if tcp.write_all(OK).await.is_err() {
            return;
        }
        buf[end..].to_vec()
    };
    route.backend.serve(tcp, peer, first).await;
}

/// Reads until the request head is complete; returns the bytes read and where the head ends.
async fn read_head(tcp: &mut TcpStream) -> std::io::Result<(Vec<u8>, usize)> {
    let mut buf = Vec::with_capacity(512);
    loop {
        if let Some(end) = head_end(&buf) {
            return Ok((buf, end));
        }
        if buf.len() >= MAX_HEAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "CONNECT request head too large",
            ));
        }
        let mut chunk = [0u8; 2048];
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn connect_requests() {
        let c = parse_connect(
            b"CONNECT Mux.Example.com:443 HTTP/1.1\r\nHost: other\r\nProxy-Authorization: Basic dTpw\r\n\r\n",
        )
        .unwrap();
        assert_eq!(c.host, "mux.example.com");
        assert_eq!(c.creds, Some(("u".into(), "p".into())));
        assert_eq!(
            parse_connect(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Err("connections to tcp vhost must be of method CONNECT")
        );
        assert!(parse_connect(b"CONNECT a:1\r\n\r\n").is_err());
        assert!(parse_connect(b"CONNECT a:1 HTTP/1.1\r\nbad header\r\n\r\n").is_err());
        assert_eq!(head_end(b"CONNECT a:1 HTTP/1.1\r\n\r\nrest"), Some(24));
        assert_eq!(head_end(b"CONNECT a:1 HTTP/1.1\n\nrest"), Some(22));
        assert_eq!(head_end(b"CONNECT a:1 HTTP/1.1\r\n"), None);
        assert_eq!(head_end(b"\r\n"), None);
    }

    proptest! {
        /// The CONNECT authority routes as its bare lowercase host, whatever its case,
        /// trailing dot or port, and wins over the Host header.
        #[test]
        fn connect_targets_normalise(
            labels in proptest::collection::vec("[a-zA-Z0-9-]{1,10}", 1..5),
            dot in any::<bool>(),
            port in any::<u16>(),
            bare_lf in any::<bool>(),
        ) {
            let name = labels.join(".");
            let d = if dot { "." } else { "" };
            let nl = if bare_lf { "\n" } else { "\r\n" };
            let head = format!("CONNECT {name}{d}:{port} HTTP/1.1{nl}Host: other.example{nl}{nl}");
            prop_assert_eq!(head_end(head.as_bytes()), Some(head.len()));
            let c = parse_connect(head.as_bytes()).unwrap();
            prop_assert_eq!(c.host, name.to_ascii_lowercase());
            prop_assert_eq!(c.creds, None);
        }

        #[test]
        fn random_heads_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400), s in "\\PC{0,80}") {
            let _ = head_end(&b);
            let _ = parse_connect(&b);
            let t = format!("CONNECT {s} HTTP/1.1\r\nProxy-Authorization: {s}\r\nHost: {s}\r\n\r\n");
            let _ = parse_connect(t.as_bytes());
        }
    }
}
