//! frpc to frps through a proxy (`transport.proxyURL`; golib `net/dial_option.go`):
//! `http://[user:pass@]host:port` sends `CONNECT`, `https://...` does the same inside TLS to the
//! proxy (golib `httpsProxyAfterHook`: the proxy's host name as SNI, its certificate checked
//! against the CA bundle `SSL_CERT_FILE` names, as Go's crypto/x509 reads it, else the web PKI
//! roots), `socks5://[user:pass@]host:port` speaks SOCKS5 (RFC 1928, user/password auth RFC
//! 1929) as x/net/proxy does. Like frp, the URL applies
//! to every dial of frps (frp reads no `NO_PROXY`); its default is the `http_proxy` variable.

use crate::io::BoxStream;
use base64::Engine;
use std::io;
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed `transport.proxyURL`.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub kind: ProxyKind,
    /// `host:port` of the proxy.
    pub addr: String,
    pub auth: Option<(String, String)>,
    /// The config key the URL came from, named in errors (`transport.proxyURL` unless
    /// [`ProxyUrl::for_key`] says otherwise).
    pub key: &'static str,
}

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of logs.
        f.debug_struct("ProxyUrl")
            .field("kind", &self.kind)
            .field("addr", &self.addr)
            .field("user", &self.auth.as_ref().map(|a| &a.0))
            .field("key", &self.key)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    Http,
    /// HTTP CONNECT inside TLS to the proxy.
    Https,
    Socks5,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl ProxyUrl {
    /// Parses `scheme://[user[:pass]@]host:port`. The error says what is wrong, without the
    /// password.
    pub fn parse(url: &str) -> Result<ProxyUrl, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| "expected scheme://host:port".to_owned())?;
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "http" => ProxyKind::Http,
            "https" => ProxyKind::Https,
            "socks5" => ProxyKind::Socks5,
            other => {
                return Err(format!(
                    "proxy scheme {other:?} is not supported (http, https and socks5 are; frp's \
                     ntlm proxies are not yet)"
                ))
            }
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let (auth, host) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => {
                let (u, p) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (Some((percent_decode(u), percent_decode(p))), host)
            }
            None => (None, authority),
        };
        if host.is_empty() {
            return Err("the proxy URL has no host".into());
        }
        let has_port = match host.strip_prefix('[') {
            Some(v6) => v6.contains("]:"),
            None => host.contains(':'),
        };
        let addr = if has_port {
            host.to_owned()
        } else {
            // Go dials the URL's Host as it is, which fails without a port; a default port
            // is the friendlier reading of the same URL.
            let port = match kind {
                ProxyKind::Http => 80,
                ProxyKind::Https => 443,
                ProxyKind::Socks5 => 1080,
            };
            format!("{host}:{port}")
        };
        Ok(ProxyUrl {
            kind,
            addr,
            auth,
            key: "transport.proxyURL",
        })
    }

    /// The same URL, its errors naming `key` (e.g. `auth.oidc.proxyURL`).
    pub fn for_key(self, key: &'static str) -> ProxyUrl {
        ProxyUrl { key, ..self }
    }

    /// Over `tcp` (connected to [`addr`](Self::addr)): TLS first for an `https://` proxy,
    /// then, when `target` (`host:port`) is given, asks the proxy for a tunnel to it. Without a
    /// target the stream is left for a request in absolute form (an `http://` URL through an
    /// HTTP proxy). Errors name [`key`](Self::key).
    pub async fn connect(&self, mut tcp: TcpStream, target: Option<&str>) -> io::Result<BoxStream> {
        match (self.kind, target) {
            (ProxyKind::Https, _) => {
                let (host, _) = super::dial::split_host_port(&self.addr)?;
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| refused(format!("{}: bad proxy host {host:?}: {e}", self.key)))?;
                let mut s = tokio_rustls::TlsConnector::from(https_proxy_tls()?)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!(
                                "TLS handshake with HTTPS proxy {} ({}): {e}",
                                self.addr, self.key
                            ),
                        )
                    })?;
                if let Some(t) = target {
                    self.handshake(&mut s, t).await?;
                }
                Ok(Box::new(s))
            }
            (_, Some(t)) => {
                self.handshake(&mut tcp, t).await?;
                Ok(Box::new(tcp))
            }
            (_, None) => Ok(Box::new(tcp)),
        }
    }

    /// Asks the proxy, over `conn` (past TLS for `https://`), for a tunnel to `target`.
    async fn handshake<S>(&self, conn: &mut S, target: &str) -> io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let auth = self.auth.as_ref();
        match self.kind {
            ProxyKind::Http | ProxyKind::Https => http_connect(conn, target, auth, self.key).await,
            ProxyKind::Socks5 => socks5_connect(conn, target, auth, self.key).await,
        }
    }
}

/// The TLS client config for `https://` proxies, built once: the CA bundle `SSL_CERT_FILE`
/// names (as Go reads it), else the web PKI roots; certificates are always checked.
fn https_proxy_tls() -> io::Result<Arc<rustls::ClientConfig>> {
    static TLS: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    TLS.get_or_init(|| {
        let ca = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
        super::tls::https_client_config(ca.as_deref(), false).map_err(|e| match &ca {
            Some(p) => format!("SSL_CERT_FILE {}: {e}", p.display()),
            None => e.to_string(),
        })
    })
    .clone()
    .map_err(io::Error::other)
}

fn refused(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionRefused, msg)
}

/// Longest CONNECT response head read.
const MAX_HEAD: usize = 16 << 10;

async fn http_connect<S>(
    conn: &mut S,
    target: &str,
    auth: Option<&(String, String)>,
    key: &str,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut req =
        format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: Mozilla/5.0\r\n");
    if let Some((u, p)) = auth {
        let cred = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        req.push_str(&format!("Proxy-Authorization: Basic {cred}\r\n"));
    }
    req.push_str("\r\n");
    conn.write_all(req.as_bytes()).await?;
    // Byte by byte: nothing past the head may be consumed.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err(refused("proxy CONNECT response head too long".into()));
        }
        let b = conn.read_u8().await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("proxy closed before answering CONNECT: {e}"),
            )
        })?;
        head.push(b);
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or("");
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| refused(format!("proxy sent a bad CONNECT answer {status_line:?}")))?;
    match code {
        200 => Ok(()),
        407 if auth.is_none() => Err(refused(format!(
            "proxy asks for credentials (407 Proxy Authentication Required): put user:pass@ in \
             {key}"
        ))),
        407 => Err(refused(format!(
            "proxy refused the credentials in {key} (407 Proxy Authentication Required)"
        ))),
        _ => Err(refused(format!(
            "proxy refused CONNECT to {target}: {status_line} ({key})"
        ))),
    }
}

async fn socks5_connect<S>(
    conn: &mut S,
    target: &str,
    auth: Option<&(String, String)>,
    key: &str,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (host, port) = super::dial::split_host_port(target)?;
    if let Some((u, p)) = auth {
        if u.len() > 255 || p.len() > 255 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "socks5 user or password longer than 255 bytes",
            ));
        }
        conn.write_all(&[5, 2, 0, 2]).await?;
    } else {
        conn.write_all(&[5, 1, 0]).await?;
    }
    let mut r = [0u8; 2];
    conn.read_exact(&mut r).await?;
    if r[0] != 5 {
        return Err(refused(format!(
            "not a socks5 proxy (version byte {})",
            r[0]
        )));
    }
    match (r[1], auth) {
        (0, _) => {}
        (2, Some((u, p))) => {
            let mut m = vec![1, u.len() as u8];
            m.extend_from_slice(u.as_bytes());
            m.push(p.len() as u8);
            m.extend_from_slice(p.as_bytes());
            conn.write_all(&m).await?;
            conn.read_exact(&mut r).await?;
            if r[1] != 0 {
                return Err(refused(format!(
                    "socks5 proxy refused the user and password in {key}"
                )));
            }
        }
        (2 | 0xff, None) => {
            return Err(refused(format!(
                "socks5 proxy asks for a user and password: put user:pass@ in {key}"
            )))
        }
        (0xff, Some(_)) => {
            return Err(refused(
                "socks5 proxy accepts none of the offered authentication methods".into(),
            ))
        }
        (m, _) => return Err(refused(format!("socks5 proxy chose unknown method {m}"))),
    }
    let mut req = vec![5, 1, 0];
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            req.push(1);
            req.extend_from_slice(&ip.octets());
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            req.push(4);
            req.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            if host.len() > 255 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "host name too long",
                ));
            }
            req.push(3);
            req.push(host.len() as u8);
            req.extend_from_slice(host.as_bytes());
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    conn.write_all(&req).await?;
    let mut head = [0u8; 4];
    conn.read_exact(&mut head).await?;
    if head[1] != 0 {
        let why = match head[1] {
            1 => "general failure",
            2 => "connection not allowed by ruleset",
            3 => "network unreachable",
            4 => "host unreachable",
            5 => "connection refused",
            6 => "TTL expired",
            7 => "command not supported",
            8 => "address type not supported",
            _ => "unknown error",
        };
        return Err(refused(format!(
            "socks5 proxy could not connect to {target}: {why}"
        )));
    }
    let skip = match head[3] {
        1 => 4,
        4 => 16,
        3 => conn.read_u8().await? as usize,
        t => {
            return Err(refused(format!(
                "socks5 proxy answered with address type {t}"
            )))
        }
    };
    let mut rest = vec![0u8; skip + 2];
    conn.read_exact(&mut rest).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_frp_proxy_urls() {
        let p = ProxyUrl::parse("http://u%40x:p%3Aw@127.0.0.1:3128").unwrap();
        assert_eq!(p.kind, ProxyKind::Http);
        assert_eq!(p.addr, "127.0.0.1:3128");
        assert_eq!(p.auth, Some(("u@x".into(), "p:w".into())));
        let p = ProxyUrl::parse("socks5://[::1]:1080").unwrap();
        assert_eq!(
            (p.kind, p.addr.as_str(), p.auth),
            (ProxyKind::Socks5, "[::1]:1080", None)
        );
        assert_eq!(ProxyUrl::parse("http://proxy").unwrap().addr, "proxy:80");
        assert_eq!(
            ProxyUrl::parse("https://proxy").unwrap(),
            ProxyUrl {
                kind: ProxyKind::Https,
                addr: "proxy:443".into(),
                auth: None,
                key: "transport.proxyURL"
            }
        );
        assert!(ProxyUrl::parse("ntlm://h:1").unwrap_err().contains("ntlm"));
        assert!(ProxyUrl::parse("h:1").is_err());
        assert!(
            !format!("{:?}", ProxyUrl::parse("http://u:secret@h:1").unwrap()).contains("secret")
        );
    }

    #[tokio::test]
    async fn connect_request_and_answers() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let p = ProxyUrl::parse("http://u:p@h:1").unwrap();
        let t = tokio::spawn(async move {
            let mut buf = vec![0u8; 200];
            let n = b.read(&mut buf).await.unwrap();
            b.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let e = p.handshake(&mut a, "[::1]:7000").await.unwrap_err();
        assert!(e.to_string().contains("refused the credentials"), "{e}");
        let req = t.await.unwrap();
        assert!(
            req.starts_with("CONNECT [::1]:7000 HTTP/1.1\r\nHost: [::1]:7000\r\n"),
            "{req}"
        );
        assert!(req.contains("Proxy-Authorization: Basic dTpw\r\n"), "{req}");
    }

    #[tokio::test]
    async fn socks5_asks_for_credentials() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let p = ProxyUrl::parse("socks5://h:1").unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 3];
            b.read_exact(&mut buf).await.unwrap();
            assert_eq!(buf, [5, 1, 0]);
            b.write_all(&[5, 0xff]).await.unwrap();
        });
        let e = p.handshake(&mut a, "127.0.0.1:7000").await.unwrap_err();
        assert!(
            e.to_string().contains("asks for a user and password"),
            "{e}"
        );
    }
}
