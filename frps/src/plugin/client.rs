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
        let exchange = self.exchange(ep, query, headers, body);
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    async fn exchange(
        &self,
        ep: &Endpoint,
        query: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), String> {
        let mut conn = match self.take_idle(ep) {
            Some(c) => c,
            None => self.connect(ep).await?,
        };
        let sep = if ep.path.contains('?') { '&' } else { '?' };
        let mut req = Request::post(format!("{}{sep}{query}", ep.path))
            .header(hyper::header::HOST, &ep.authority)
            .header(hyper::header::CONTENT_TYPE, "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let resp = conn
            .sender
            .send_request(req)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
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
