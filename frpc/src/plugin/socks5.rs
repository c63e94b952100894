//! `socks5` (frp `socks5.go`, which serves armon/go-socks5): RFC 1928 CONNECT with no
//! authentication, or RFC 1929 username/password when `username` or `password` is set. IPv4,
//! IPv6 and domain addresses. BIND and UDP ASSOCIATE get "command not supported", as in
//! go-socks5 (frp has no UDP ASSOCIATE).

use super::HEADER_TIMEOUT;
use common::config::PluginConfig;
use common::io::BoxStream;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, warn};

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0x00;
const USER_PASS: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xff;
const USER_PASS_VERSION: u8 = 1;

pub(crate) const CMD_CONNECT: u8 = 1;

/// Reply codes (RFC 1928 §6).
pub(crate) mod reply {
    pub const SUCCEEDED: u8 = 0;
    pub const NETWORK_UNREACHABLE: u8 = 3;
    pub const HOST_UNREACHABLE: u8 = 4;
    pub const CONNECTION_REFUSED: u8 = 5;
    pub const COMMAND_NOT_SUPPORTED: u8 = 7;
    pub const ADDR_TYPE_NOT_SUPPORTED: u8 = 8;
}

/// How long a CONNECT target may take to accept.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A SOCKS5 destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Addr {
    Ip(IpAddr),
    Domain(String),
}

/// A request read from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub cmd: u8,
    pub addr: Addr,
    pub port: u16,
}

/// Why a handshake ended without a request to carry out.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("unsupported SOCKS version {0}")]
    Version(u8),
    #[error("no acceptable authentication method offered")]
    NoAcceptableMethod,
    #[error("unsupported auth version {0}")]
    AuthVersion(u8),
    #[error("wrong username or password")]
    BadCredentials,
    #[error("unsupported address type {0}")]
    AddrType(u8),
}

#[derive(Debug)]
pub(crate) struct Socks5 {
    creds: Option<(String, String)>,
}

impl Socks5 {
    pub(crate) fn new(c: &PluginConfig) -> Self {
        let creds = (!c.username.is_empty() || !c.password.is_empty())
            .then(|| (c.username.clone(), c.password.0.clone()));
        Socks5 { creds }
    }

    pub(crate) async fn serve(&self, mut conn: BoxStream) {
        let req =
            match tokio::time::timeout(HEADER_TIMEOUT, handshake(&mut conn, self.creds.as_ref()))
                .await
            {
                Ok(Ok(r)) => r,
                Ok(Err(HandshakeError::Io(e))) => {
                    debug!(error = %e, "socks5: client left during the handshake");
                    return;
                }
                Ok(Err(e)) => {
                    warn!(error = %e, "socks5: handshake refused, closing");
                    return;
                }
                Err(_) => {
                    warn!("socks5: handshake not finished in time, closing");
                    return;
                }
            };
        if req.cmd != CMD_CONNECT {
            warn!(cmd = req.cmd, "socks5: command not supported");
            let _ = conn
                .write_all(&reply_bytes(reply::COMMAND_NOT_SUPPORTED, None))
                .await;
            return;
        }
        // The user's bytes: logged with `?` so control bytes are escaped, not new log lines.
        let target = match &req.addr {
            Addr::Ip(ip) => format!("{}", SocketAddr::new(*ip, req.port)),
            Addr::Domain(d) => format!("{d}:{}", req.port),
        };
        let dialed = match &req.addr {
            Addr::Ip(ip) => {
                tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect((*ip, req.port))).await
            }
            Addr::Domain(d) => {
                tokio::time::timeout(DIAL_TIMEOUT, common::dns::connect(d, req.port)).await
            }
        };
        let mut remote = match dialed {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                warn!(?target, error = %e, "socks5: connect failed");
                let code = match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => reply::CONNECTION_REFUSED,
                    std::io::ErrorKind::NetworkUnreachable => reply::NETWORK_UNREACHABLE,
                    _ => reply::HOST_UNREACHABLE,
                };
                let _ = conn.write_all(&reply_bytes(code, None)).await;
                return;
            }
            Err(_) => {
                warn!(?target, "socks5: connect timed out");
                let _ = conn
                    .write_all(&reply_bytes(reply::HOST_UNREACHABLE, None))
                    .await;
                return;
            }
        };
        let bound = remote.local_addr().ok();
        if conn
            .write_all(&reply_bytes(reply::SUCCEEDED, bound))
            .await
            .is_err()
        {
            return;
        }
        if let Err(e) = common::io::join(&mut conn, &mut remote).await {
            debug!(?target, error = %e, "socks5: tunnel ended with error");
        }
    }
}

/// `VER REP RSV ATYP BND.ADDR BND.PORT`.
pub(crate) fn reply_bytes(code: u8, bound: Option<SocketAddr>) -> Vec<u8> {
    let bound = bound.unwrap_or(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0));
    let mut out = vec![VERSION, code, 0];
    match bound.ip() {
        IpAddr::V4(ip) => {
            out.push(1);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&bound.port().to_be_bytes());
    out
}

/// Method negotiation, authentication and the request (RFC 1928 §3-4, RFC 1929). Answers what
/// go-socks5 answers; returns the request for the caller to carry out.
pub(crate) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    creds: Option<&(String, String)>,
) -> Result<Request, HandshakeError> {
    let ver = s.read_u8().await?;
    if ver != VERSION {
        return Err(HandshakeError::Version(ver));
    }
    let n = s.read_u8().await? as usize;
    let mut methods = vec![0u8; n];
    s.read_exact(&mut methods).await?;
    let want = if creds.is_some() { USER_PASS } else { NO_AUTH };
    if !methods.contains(&want) {
        s.write_all(&[VERSION, NO_ACCEPTABLE]).await?;
        return Err(HandshakeError::NoAcceptableMethod);
    }
    s.write_all(&[VERSION, want]).await?;
    if let Some((user, password)) = creds {
        let v = s.read_u8().await?;
        if v != USER_PASS_VERSION {
            return Err(HandshakeError::AuthVersion(v));
        }
        let u = read_string(s).await?;
        let p = read_string(s).await?;
        if !(super::same(&u, user) & super::same(&p, password)) {
            tokio::time::sleep(super::AUTH_FAIL_DELAY).await;
            s.write_all(&[USER_PASS_VERSION, 1]).await?;
            return Err(HandshakeError::BadCredentials);
        }
        s.write_all(&[USER_PASS_VERSION, 0]).await?;
    }
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await?;
    if head[0] != VERSION {
        return Err(HandshakeError::Version(head[0]));
    }
    let addr = match head[3] {
        1 => {
            let mut b = [0u8; 4];
            s.read_exact(&mut b).await?;
            Addr::Ip(Ipv4Addr::from(b).into())
        }
        4 => {
            let mut b = [0u8; 16];
            s.read_exact(&mut b).await?;
            Addr::Ip(Ipv6Addr::from(b).into())
        }
        3 => Addr::Domain(read_string(s).await?),
        other => {
            s.write_all(&reply_bytes(reply::ADDR_TYPE_NOT_SUPPORTED, None))
                .await?;
            return Err(HandshakeError::AddrType(other));
        }
    };
    let port = s.read_u16().await?;
    Ok(Request {
        cmd: head[1],
        addr,
        port,
    })
}

/// A length-prefixed string (usernames, passwords, domain names).
async fn read_string<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<String> {
    let n = s.read_u8().await? as usize;
    let mut b = vec![0u8; n];
    s.read_exact(&mut b).await?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs the server side of a handshake over `input`; returns its result and what it wrote.
    fn run(input: Vec<u8>, creds: Option<(String, String)>) -> (Result<Request, String>, Vec<u8>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let (mut client, mut server) = tokio::io::duplex(1 << 16);
            client.write_all(&input).await.unwrap();
            client.shutdown().await.unwrap();
            let r = handshake(&mut server, creds.as_ref())
                .await
                .map_err(|e| e.to_string());
            drop(server);
            let mut out = Vec::new();
            client.read_to_end(&mut out).await.unwrap();
            (r, out)
        })
    }

    fn creds() -> Option<(String, String)> {
        Some(("u".into(), "p".into()))
    }

    #[test]
    fn connect_by_ipv4_ipv6_and_domain() {
        let (r, out) = run(vec![5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80], None);
        assert_eq!(
            r.unwrap(),
            Request {
                cmd: 1,
                addr: Addr::Ip([127, 0, 0, 1].into()),
                port: 80
            }
        );
        assert_eq!(out, [5, 0]);
        let mut v6 = vec![5, 1, 0, 5, 1, 0, 4];
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v6.extend_from_slice(&[1, 187]);
        assert_eq!(
            run(v6, None).0.unwrap().addr,
            Addr::Ip(Ipv6Addr::LOCALHOST.into())
        );
        let mut d = vec![5, 1, 0, 5, 1, 0, 3, 9];
        d.extend_from_slice(b"localhost");
        d.extend_from_slice(&[0, 22]);
        let r = run(d, None).0.unwrap();
        assert_eq!((r.addr, r.port), (Addr::Domain("localhost".into()), 22));
    }

    #[test]
    fn user_password_right_and_wrong() {
        let mut ok = vec![5, 2, 0, 2, 1, 1, b'u', 1, b'p'];
        ok.extend_from_slice(&[5, 1, 0, 1, 10, 0, 0, 1, 0, 80]);
        let (r, out) = run(ok, creds());
        assert!(r.is_ok());
        assert_eq!(out, [5, 2, 1, 0]);
        let (r, out) = run(vec![5, 1, 2, 1, 1, b'u', 1, b'x'], creds());
        assert_eq!(r.unwrap_err(), "wrong username or password");
        assert_eq!(out, [5, 2, 1, 1]);
        // No user/password method offered when one is required.
        let (r, out) = run(vec![5, 1, 0], creds());
        assert!(r.is_err());
        assert_eq!(out, [5, 0xff]);
    }

    #[test]
    fn bad_greetings_and_address_types() {
        assert_eq!(
            run(vec![4, 1, 0], None).0.unwrap_err(),
            "unsupported SOCKS version 4"
        );
        let (r, out) = run(vec![5, 1, 0, 5, 1, 0, 9], None);
        assert_eq!(r.unwrap_err(), "unsupported address type 9");
        assert_eq!(out[..2], [5, 0]);
        assert_eq!(out[2..4], [5, reply::ADDR_TYPE_NOT_SUPPORTED]);
        // A client that stops half way: an IO error, no request.
        assert!(run(vec![5, 2, 0], None).0.is_err());
        assert!(run(vec![5, 1, 0, 5, 1, 0, 1, 127], None).0.is_err());
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(
            raw in proptest::collection::vec(any::<u8>(), 0..300),
            auth in any::<bool>(),
        ) {
            let (r, out) = run(raw.clone(), auth.then(creds).flatten());
            // Whatever happens, the server only ever answers with well-formed replies.
            if let Ok(req) = r {
                prop_assert_eq!(raw[0], 5);
                prop_assert!(matches!(req.addr, Addr::Ip(_) | Addr::Domain(_)));
            }
            prop_assert!(out.len() <= 2 + 2 + 22);
        }

        #[test]
        fn any_split_of_a_valid_handshake_reads_the_same(
            name in "[a-z]{1,20}",
            port in any::<u16>(),
        ) {
            let mut raw = vec![5, 1, 0, 5, 1, 0, 3, name.len() as u8];
            raw.extend_from_slice(name.as_bytes());
            raw.extend_from_slice(&port.to_be_bytes());
            let full = run(raw.clone(), None).0.unwrap();
            prop_assert_eq!(full, Request { cmd: 1, addr: Addr::Domain(name), port });
            for cut in 0..raw.len() {
                prop_assert!(run(raw[..cut].to_vec(), None).0.is_err());
            }
        }
    }
}
