//! `http_proxy` (frp `http_proxy.go`): an HTTP forward proxy into frpc's network. `CONNECT`
//! opens a tunnel; other requests (absolute URIs) are forwarded. `httpUser`/`httpPassword`
//! are checked against `Proxy-Authorization`; a wrong or missing one gets 407.

use super::{basic_ok, Body, AUTH_FAIL_DELAY, HEADER_TIMEOUT};
use bytes::BytesMut;
use common::config::PluginConfig;
use common::io::BoxStream;
use hyper::header::{HeaderValue, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION};
use hyper::{Request, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, warn};

/// The longest CONNECT head we read (request line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// How long a CONNECT target may take to accept.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// frp's answer to bad credentials on CONNECT (`getBadResponse`).
pub(crate) const RESP_407: &[u8] = b"HTTP/1.1 407 Not authorized\r\nConnection: close\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n";
const RESP_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
const RESP_200: &[u8] = b"HTTP/1.1 200 OK\r\n\r\n";

#[derive(Debug)]
pub(crate) struct HttpProxy {
    auth: Arc<(String, String)>,
}

/// A parsed CONNECT head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Connect {
    pub host: String,
    pub port: u16,
    pub proxy_auth: Option<Vec<u8>>,
    /// Where the head ends in the buffer (bytes after it are tunnel data).
    pub head_len: usize,
}

/// Why a CONNECT head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("incomplete request head")]
    Partial,
    #[error("malformed request head: {0}")]
    Malformed(String),
    #[error("not a CONNECT request")]
    NotConnect,
    #[error("bad CONNECT target {0:?}")]
    Target(String),
}

/// Parses a CONNECT request head from `buf` (the whole head must be there).
pub(crate) fn parse_connect(buf: &[u8]) -> Result<Connect, ConnectError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(ConnectError::Partial),
        Err(e) => return Err(ConnectError::Malformed(e.to_string())),
    };
    if !req
        .method
        .is_some_and(|m| m.eq_ignore_ascii_case("CONNECT"))
    {
        return Err(ConnectError::NotConnect);
    }
    let target = req.path.unwrap_or_default();
    let (host, port) =
        split_authority(target).ok_or_else(|| ConnectError::Target(target.into()))?;
    let proxy_auth = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|h| h.value.to_vec());
    Ok(Connect {
        host,
        port,
        proxy_auth,
        head_len,
    })
}

/// `host:port` or `[v6]:port`.
pub(crate) fn split_authority(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return None;
    }
    Some((host.to_owned(), port))
}

impl HttpProxy {
    pub(crate) fn new(c: &PluginConfig) -> Self {
        HttpProxy {
            auth: Arc::new((c.http_user.clone(), c.http_password.0.clone())),
        }
    }

    pub(crate) async fn serve(&self, mut conn: BoxStream) {
        let mut buf = BytesMut::with_capacity(1024);
        let first = tokio::time::timeout(HEADER_TIMEOUT, async {
            while buf.len() < 7 {
                if conn.read_buf(&mut buf).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        if !matches!(first, Ok(Ok(()))) {
            debug!("http_proxy: connection closed before a request");
            return;
        }
        if buf[..7].eq_ignore_ascii_case(b"CONNECT") {
            self.connect(conn, buf).await;
            return;
        }
        let auth = self.auth.clone();
        let svc = hyper::service::service_fn(move |req| forward(req, auth.clone()));
        super::serve_http1(super::Rewind::new(buf.freeze(), conn), svc, "http_proxy").await;
    }

    async fn connect(&self, mut conn: BoxStream, mut buf: BytesMut) {
        let head = tokio::time::timeout(HEADER_TIMEOUT, async {
            loop {
                match parse_connect(&buf) {
                    Err(ConnectError::Partial) if buf.len() < MAX_HEAD => {}
                    r => return Ok(r),
                }
                if conn.read_buf(&mut buf).await? == 0 {
                    return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                }
            }
        })
        .await;
        let c = match head {
            Ok(Ok(Ok(c))) => c,
            Ok(Ok(Err(e))) => {
                warn!(error = %e, "http_proxy: bad CONNECT request, closing");
                return;
            }
            Ok(Err(e)) => {
                debug!(error = %e, "http_proxy: connection closed inside the CONNECT head");
                return;
            }
            Err(_) => {
                warn!("http_proxy: CONNECT head not received in time, closing");
                return;
            }
        };
        if !authorized(c.proxy_auth.as_deref(), &self.auth).await {
            warn!(target = %format!("{}:{}", c.host, c.port), "http_proxy: CONNECT with wrong credentials, 407");
            let _ = conn.write_all(RESP_407).await;
            let _ = conn.shutdown().await;
            return;
        }
        let remote =
            tokio::time::timeout(DIAL_TIMEOUT, common::dns::connect(&c.host, c.port)).await;
        let mut remote = match remote {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                warn!(target = %format!("{}:{}", c.host, c.port), error = %e, "http_proxy: CONNECT dial failed");
                let _ = conn.write_all(RESP_400).await;
                return;
            }
            Err(_) => {
                warn!(target = %format!("{}:{}", c.host, c.port), "http_proxy: CONNECT dial timed out");
                let _ = conn.write_all(RESP_400).await;
                return;
            }
        };
        if conn.write_all(RESP_200).await.is_err() {
            return;
        }
        let early = buf.split_off(c.head_len);
        if !early.is_empty() && remote.write_all(&early).await.is_err() {
            return;
        }
        let mut conn = conn;
        if let Err(e) = common::io::join(&mut conn, &mut remote).await {
            debug!(error = %e, "http_proxy: tunnel ended with error");
        }
    }
}

/// Whether `offered` (a `Proxy-Authorization` value) carries the configured credentials. As
/// frp's `Auth`, only credentials that are offered and wrong wait [`AUTH_FAIL_DELAY`]; missing
/// or unreadable ones are refused at once.
async fn authorized(offered: Option<&[u8]>, auth: &(String, String)) -> bool {
    if basic_ok(offered, &auth.0, &auth.1) {
        return true;
    }
    if offered.and_then(super::basic_credentials).is_some() {
        tokio::time::sleep(AUTH_FAIL_DELAY).await;
    }
    false
}

/// A plain (absolute-URI) proxy request: auth, then the request to its origin.
async fn forward(
    mut req: Request<hyper::body::Incoming>,
    auth: Arc<(String, String)>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let offered = req.headers().get(PROXY_AUTHORIZATION).map(|v| v.as_bytes());
    if !authorized(offered, &auth).await {
        warn!(uri = %req.uri(), "http_proxy: request with wrong credentials, 407");
        let mut r = Response::new(super::empty());
        *r.status_mut() = StatusCode::PROXY_AUTHENTICATION_REQUIRED;
        r.headers_mut()
            .insert(PROXY_AUTHENTICATE, HeaderValue::from_static("Basic"));
        return Ok(r);
    }
    let uri = req.uri().clone();
    let (Some(host), Some("http")) = (uri.host(), uri.scheme_str()) else {
        return Ok(super::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unsupported protocol scheme or no host in {uri}"),
        ));
    };
    let port = uri.port_u16().unwrap_or(80);
    let addr = format!(
        "{}:{port}",
        host.trim_start_matches('[').trim_end_matches(']')
    );
    for h in [
        "proxy-connection",
        "connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    ] {
        req.headers_mut().remove(h);
    }
    if !req.headers().contains_key(HOST) {
        if let Some(a) = uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            req.headers_mut().insert(HOST, a);
        }
    }
    *req.uri_mut() = uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .parse()
        .unwrap_or_default();
    match super::upstream(req, &addr, None).await {
        Ok((resp, _)) => Ok(resp),
        Err(e) => {
            debug!(%addr, error = %e, "http_proxy: forward failed");
            Ok(super::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                e.to_string(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_connect_with_auth_and_early_data() {
        let raw = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic dTpw\r\n\r\nEARLY";
        let c = parse_connect(raw).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("example.com", 443));
        assert_eq!(c.proxy_auth.as_deref(), Some(&b"Basic dTpw"[..]));
        assert_eq!(&raw[c.head_len..], b"EARLY");
        let v6 = parse_connect(b"CONNECT [::1]:22 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 22));
    }

    #[test]
    fn refuses_bad_heads() {
        for raw in [
            &b"CONNECT example.com HTTP/1.1\r\n\r\n"[..],
            b"CONNECT :443 HTTP/1.1\r\n\r\n",
            b"CONNECT a:b:443 HTTP/1.1\r\n\r\n",
            b"CONNECT example.com:99999 HTTP/1.1\r\n\r\n",
            b"CONNECT\x00 x:1 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                parse_connect(raw).is_err(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        assert_eq!(
            parse_connect(b"CONNECT example.com:443 HTTP/1.1\r\nHost"),
            Err(ConnectError::Partial)
        );
    }

    /// frp (`HTTPProxy.Auth`) waits its 200 ms only for offered credentials that are wrong; a
    /// request without them (a browser's first try) gets its 407 at once.
    #[test]
    fn only_wrong_credentials_wait_before_the_407() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let hp = HttpProxy {
                auth: Arc::new(("u".into(), "p".into())),
            };
            for (head, delayed) in [
                ("CONNECT a:1 HTTP/1.1\r\n\r\n", false),
                (
                    "CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: Basic\r\n\r\n",
                    false,
                ),
                // u:x
                (
                    "CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: Basic dTp4\r\n\r\n",
                    true,
                ),
            ] {
                let (mut client, server) = tokio::io::duplex(4096);
                client.write_all(head.as_bytes()).await.unwrap();
                let start = tokio::time::Instant::now();
                hp.serve(Box::new(server)).await;
                let took = start.elapsed();
                let mut out = Vec::new();
                client.read_to_end(&mut out).await.unwrap();
                assert!(out.starts_with(b"HTTP/1.1 407 "), "{head:?}");
                assert_eq!(took >= AUTH_FAIL_DELAY, delayed, "{head:?}: {took:?}");
            }
        });
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_connect(&raw);
        }

        #[test]
        fn well_formed_heads_round_trip(
            host in "[a-z][a-z0-9.-]{0,30}",
            port in 1u16..,
            junk in proptest::collection::vec(any::<u8>(), 0..64),
            cut in 0usize..200,
        ) {
            let head = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n");
            let mut raw = head.clone().into_bytes();
            raw.extend_from_slice(&junk);
            let c = parse_connect(&raw).unwrap();
            prop_assert_eq!(c.host, host);
            prop_assert_eq!(c.port, port);
            prop_assert_eq!(c.head_len, head.len());
            // Any strict prefix of the head is incomplete, never an error or a success.
            let cut = cut % head.len();
            prop_assert_eq!(parse_connect(&raw[..cut]), Err(ConnectError::Partial));
        }
    }
}
