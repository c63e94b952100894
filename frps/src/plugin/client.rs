//! The one HTTP client every server-plugin call goes through: hyper http1 over TCP or rustls,
//! idle connections kept per endpoint and reused, every exchange bounded by one deadline.
//!
//! Not a general client: one POST with a JSON body, answers read up to [`MAX_ANSWER`], no
//! redirects (a 3xx is an answer like any non-200, and refused by the caller), no proxies.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_rustls::rustls;
use tokio_util::sync::{CancellationToken, DropGuard};

/// The largest plugin answer read; a bigger one fails the call.
pub(crate) const MAX_ANSWER: usize = 1024 * 1024;
/// Idle connections kept per endpoint.
const MAX_IDLE: usize = 16;
/// An idle connection older than this is not reused (Go's `IdleConnTimeout` is 90 s; plugin
/// servers often close sooner, so reuse stays well below the usual 60 s).
const IDLE_FOR: Duration = Duration::from_secs(30);

/// Where a plugin listens, parsed once from its `addr` and `path`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Endpoint {
    pub(crate) https: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `Host` header value (host[:port] as written).
    pub(crate) authority: String,
    /// Path (with any query of its own) requests go to.
    pub(crate) path: String,
    /// `tlsVerify`: certificates are checked (https only).
    pub(crate) verify: bool,
}

impl Endpoint {
    /// frp's URL rule: `addr + path`, `http://` prepended unless the address has a scheme.
    pub(crate) fn parse(addr: &str, path: &str, verify: bool) -> Result<Endpoint, String> {
        let uri = common::config::plugin_url(addr, path)?;
        let https = uri.scheme_str() == Some("https");
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_else(|| host.clone());
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        Ok(Endpoint {
            https,
            port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
            host,
            authority,
            path,
            verify: https && verify,
        })
    }
}

/// An idle connection: its sender, and the guard whose drop ends its driver task.
struct Idle {
    sender: SendRequest<Full<Bytes>>,
    _driver: DropGuard,
    since: Instant,
}

/// The shared client (cheap to clone).
#[derive(Clone)]
pub(crate) struct Client {
    idle: Arc<Mutex<HashMap<Endpoint, Vec<Idle>>>>,
    /// `tlsVerify = true`: the CA file `SSL_CERT_FILE` names (as Go), else the web PKI roots.
    verified: Option<Arc<rustls::ClientConfig>>,
    /// `tlsVerify = false`: any certificate (frp's `InsecureSkipVerify`).
    unverified: Arc<rustls::ClientConfig>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("plugin::Client")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client whose every exchange (connect, TLS, request, whole answer) ends within
    /// `timeout`. `verified`: the TLS config for endpoints with `tlsVerify` (if any has it).
    pub(crate) fn new(
        verified: Option<Arc<rustls::ClientConfig>>,
        unverified: Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Client {
        Client {
            idle: Arc::default(),
            verified,
            unverified,
            timeout,
        }
    }

    /// POSTs `body` to `ep` with `query` appended to its path; returns status and body.
    pub(crate) async fn post(
        &self,
        ep: &Endpoint,
        query: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), String> {
        let request = || {
            let sep = if ep.path.contains('?') { '&' } else { '?' };
            let mut req = Request::post(format!("{}{sep}{query}", ep.path))
                .header(hyper::header::HOST, &ep.authority)
                .header(hyper::header::CONTENT_TYPE, "application/json");
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            req.body(Full::new(body.clone())).map_err(|e| e.to_string())
        };
        match tokio::time::timeout(self.timeout, self.exchange(ep, request)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    /// One request (`request` builds it; it may be sent twice), on a pooled connection if any.
    async fn exchange(
        &self,
        ep: &Endpoint,
        request: impl Fn() -> Result<Request<Full<Bytes>>, String>,
    ) -> Result<(StatusCode, Bytes), String> {
        // A pooled connection the plugin closed while idle fails before the request is sent:
        // then it goes again on a fresh connection (as Go's transport does).
        if let Some(mut c) = self.take_idle(ep) {
            match c.sender.send_request(request()?).await {
                Ok(resp) => return self.read(ep, c, resp).await,
                Err(e) if !(e.is_canceled() || e.is_closed()) => {
                    return Err(format!("request failed: {e}"))
                }
                Err(_) => {}
            }
        }
        let mut c = self.connect(ep).await?;
        let resp = c.sender.send_request(request()?).await;
        let resp = resp.map_err(|e| format!("request failed: {e}"))?;
        self.read(ep, c, resp).await
    }

    /// Reads a whole answer, then pools its connection.
    async fn read(
        &self,
        ep: &Endpoint,
        conn: Idle,
        resp: hyper::Response<hyper::body::Incoming>,
    ) -> Result<(StatusCode, Bytes), String> {
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        self.put_idle(ep, conn);
        Ok((parts.status, body))
    }

    fn take_idle(&self, ep: &Endpoint) -> Option<Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(ep)?;
        while let Some(c) = list.pop() {
            if c.since.elapsed() < IDLE_FOR && c.sender.is_ready() {
                return Some(c);
            }
        }
        None
    }

    fn put_idle(&self, ep: &Endpoint, mut conn: Idle) {
        if !conn.sender.is_ready() {
            return;
        }
        conn.since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(ep.clone()).or_default();
        list.retain(|c| c.since.elapsed() < IDLE_FOR && !c.sender.is_closed());
        if list.len() < MAX_IDLE {
            list.push(conn);
        }
    }

    async fn connect(&self, ep: &Endpoint) -> Result<Idle, String> {
        let tcp = tokio::net::TcpStream::connect((ep.host.as_str(), ep.port))
            .await
            .map_err(|e| format!("connect {}:{}: {e}", ep.host, ep.port))?;
        let _ = tcp.set_nodelay(true);
        let stream: common::io::BoxStream = if ep.https {
            let cfg = match (ep.verify, &self.verified) {
                (true, Some(c)) => c.clone(),
                (true, None) => return Err("no TLS roots for tlsVerify".into()),
                (false, _) => self.unverified.clone(),
            };
            let name = rustls::pki_types::ServerName::try_from(ep.host.clone())
                .map_err(|e| format!("bad host {:?}: {e}", ep.host))?;
            Box::new(
                tokio_rustls::TlsConnector::from(cfg)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake: {e}"))?,
            )
        } else {
            Box::new(tcp)
        };
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("HTTP handshake: {e}"))?;
        // The connection's driver lives as long as the connection is used or pooled.
        let token = CancellationToken::new();
        let stop = token.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = conn => {}
            }
        });
        Ok(Idle {
            sender,
            _driver: token.drop_guard(),
            since: Instant::now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A raw HTTP/1.1 server answering `{}` to each request; `close`: it closes the connection
    /// after each answer (without saying so). Returns its address and accepted connections.
    async fn raw_server(close: bool) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let n = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                n.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(k) = s.read(&mut chunk).await else {
                            return;
                        };
                        if k == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..k]);
                        // Requests here are small: one read holds head and body.
                        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            buf.clear();
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                            if s.write_all(answer).await.is_err() || close {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    fn client() -> Client {
        let any = common::transport::tls::https_client_config(None, true).expect("tls");
        Client::new(None, any, Duration::from_secs(5))
    }

    #[tokio::test]
    async fn connections_are_reused_and_a_closed_one_is_replaced() {
        for (close, conns) in [(false, 1), (true, 3)] {
            let (addr, accepted) = raw_server(close).await;
            let ep = Endpoint::parse(&addr.to_string(), "/", false).expect("ep");
            let c = client();
            for _ in 0..3 {
                let (code, body) = c
                    .post(&ep, "op=Ping", &[], Bytes::new())
                    .await
                    .expect("post");
                assert_eq!((code, &body[..]), (StatusCode::OK, &b"{}"[..]));
            }
            assert_eq!(accepted.load(Ordering::SeqCst), conns, "close = {close}");
        }
    }

    #[test]
    fn endpoints_follow_frps_url_rule() {
        let e = Endpoint::parse("127.0.0.1:9000", "/handler", false).expect("parse");
        assert_eq!(
            (e.https, e.host.as_str(), e.port),
            (false, "127.0.0.1", 9000)
        );
        assert_eq!(e.path, "/handler");
        let e = Endpoint::parse("https://plugins.example", "/p", true).expect("parse");
        assert_eq!((e.https, e.port, e.verify), (true, 443, true));
        assert_eq!(e.authority, "plugins.example");
        let e = Endpoint::parse("http://[::1]:80", "/", true).expect("parse");
        assert_eq!((e.host.as_str(), e.verify), ("::1", false));
        assert!(Endpoint::parse("http://", "/", false).is_err());
        assert!(Endpoint::parse("a b:1", "/", false).is_err());
        assert!(Endpoint::parse("http://u:p@h:1", "/", false).is_err());
    }
}
