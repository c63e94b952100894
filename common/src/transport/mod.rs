//! Transports with frp's parameters. Below yamux: frpc's dialer per `transport.protocol`
//! ([`dial`]: TCP, WebSocket, wss, QUIC; through [`proxy`] when `transport.proxyURL` is set),
//! the WebSocket carrier both sides use ([`ws`]), QUIC's configs ([`quic`]), KCP over UDP
//! with kcp-go's FEC ([`kcp`], [`fec`]); TLS configs
//! ([`tls`]), yamux ([`mux`]) and the one TCP bind helper every listener uses
//! ([`listen_tcp`]). frpc stacks yamux (or QUIC streams) in `frpc::connector`; frps accepts
//! every carrier in `frps::service`, where the TLS sniff and yamux sit.

pub mod dial;
pub mod fec;
pub mod kcp;
pub mod mux;
pub mod proxy;
pub mod proxy_protocol;
pub mod quic;
pub mod tls;
pub mod ws;

/// frpc's optional first byte before a TLS ClientHello (`disableCustomTLSFirstByte = false`).
pub const FRP_TLS_HEAD_BYTE: u8 = 0x17;
/// First byte of a TLS record carrying a handshake.
pub const TLS_HANDSHAKE_BYTE: u8 = 0x16;

/// Applies TCP keepalive (`transport.dialServerKeepalive` / `tcpKeepalive`; negative disables).
pub fn set_keepalive(stream: &tokio::net::TcpStream, secs: i64) {
    if secs <= 0 {
        return;
    }
    let sock = socket2::SockRef::from(stream);
    let ka = socket2::TcpKeepalive::new().with_time(std::time::Duration::from_secs(secs as u64));
    if let Err(e) = sock.set_tcp_keepalive(&ka) {
        tracing::debug!(error = %e, "set tcp keepalive");
    }
}

/// What the first bytes of a connection (or of a yamux stream) are: enough to tell the two
/// sides' `transport.tcpMux` or TLS settings disagree, since each framing starts differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaks {
    /// A yamux header: version 0, then a frame type 0..=3.
    Yamux,
    /// A wire v1 message; its Go type name.
    Message(&'static str),
    /// The wire v2 magic (`FRP\0`...).
    WireV2,
    /// A TLS handshake record, with or without frp's 0x17 first byte.
    Tls,
    /// Anything else.
    Unknown,
}

/// Classifies the first bytes a peer sent.
pub fn speaks(head: &[u8]) -> Speaks {
    match head {
        [0, ty, ..] if *ty <= 3 => Speaks::Yamux,
        [b'F', b'R', b'P', 0, ..] => Speaks::WireV2,
        [TLS_HANDSHAKE_BYTE, 3, ..] | [FRP_TLS_HEAD_BYTE, TLS_HANDSHAKE_BYTE, ..] => Speaks::Tls,
        [ty, ..] => crate::msg::codec::decode(*ty, b"{}")
            .map(|m| Speaks::Message(m.name()))
            .unwrap_or(Speaks::Unknown),
        [] => Speaks::Unknown,
    }
}

/// Why a peer's first bytes are another frp framing than this side expects (`yamux`: this
/// side has `transport.tcpMux = true`), in words for the user; `None` when they are what is
/// expected, or garbage. `peer` and `this` name the two sides ("client", "frps").
pub fn mismatch(head: &[u8], yamux: bool, peer: &str, this: &str) -> Option<String> {
    match (speaks(head), yamux) {
        (Speaks::Message(name), true) => Some(format!(
            "the {peer} sent a {name} message without yamux: the {peer} has transport.tcpMux = \
             false but this {this} has transport.tcpMux = true"
        )),
        (Speaks::WireV2, true) => Some(format!(
            "the {peer} sent a wire v2 hello without yamux: the {peer} has transport.tcpMux = \
             false but this {this} has transport.tcpMux = true"
        )),
        (Speaks::Yamux, false) => Some(format!(
            "the {peer} speaks yamux: the {peer} has transport.tcpMux = true but this {this} \
             has transport.tcpMux = false"
        )),
        (Speaks::Tls, _) => Some(format!(
            "the {peer} sent a TLS handshake where frp data was expected: the two sides \
             disagree about TLS (transport.tls)"
        )),
        _ => None,
    }
}

/// The first error of type `T` behind `e`: through io::Error's payload, a yamux session's
/// recorded cause and `source()` links.
pub fn cause_of<T: std::error::Error + 'static>(e: &std::io::Error) -> Option<&T> {
    fn walk<'a, T: std::error::Error + 'static>(
        e: &'a (dyn std::error::Error + 'static),
    ) -> Option<&'a T> {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        let next: Option<&'a (dyn std::error::Error + 'static)> =
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                io.get_ref()
                    .map(|i| i as &(dyn std::error::Error + 'static))
            } else if let Some(m) = e.downcast_ref::<mux::SessionEnded>() {
                Some(m.cause())
            } else if let Some(m) = e.downcast_ref::<mux::StreamClosed>() {
                m.cause().map(|c| c as &(dyn std::error::Error + 'static))
            } else {
                e.source()
            };
        next.and_then(walk::<T>)
    }
    walk::<T>(e)
}

/// A stream with one byte it already gave back in front (frps's TLS check on a carrier it
/// cannot peek, such as WebSocket: frp reads one byte and replays it).
#[derive(Debug)]
pub struct Rewound<S> {
    head: Option<u8>,
    inner: S,
}

impl<S> Rewound<S> {
    pub fn new(head: u8, inner: S) -> Self {
        Rewound {
            head: Some(head),
            inner,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Rewound<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if buf.remaining() > 0 {
            if let Some(b) = self.head.take() {
                buf.put_slice(&[b]);
                return std::task::Poll::Ready(Ok(()));
            }
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Rewound<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
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

/// Listen backlog when the system's limit cannot be read (Linux's default since 5.4).
const FALLBACK_BACKLOG: i32 = 4096;

/// The listen backlog: the system's limit (`net.core.somaxconn`), as Go's `net.Listen` uses.
/// tokio's `TcpListener::bind` uses 1024 and std's 128; under a burst of connections the rest
/// wait for a SYN retransmit (a second or more).
pub fn listen_backlog() -> i32 {
    static BACKLOG: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *BACKLOG.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(FALLBACK_BACKLOG)
    })
}

/// Binds a TCP listener with [`listen_backlog`] (and `SO_REUSEADDR`, as tokio and Go do). Every
/// TCP listener of frps and frpc is made here. Each address `addr` resolves to is tried in turn;
/// the last error is returned when none binds.
pub async fn listen_tcp(
    addr: impl tokio::net::ToSocketAddrs,
) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        match listen_on(a) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        )
    }))
}

fn listen_on(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    #[cfg(unix)]
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(listen_backlog())?;
    tokio::net::TcpListener::from_std(sock.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn first_bytes_tell_the_framings_apart() {
        assert_eq!(speaks(&[0, 1, 0, 1, 0, 0, 0, 1]), Speaks::Yamux);
        assert_eq!(speaks(b"o\0\0\0\0\0\0\x01{"), Speaks::Message("Login"));
        assert_eq!(speaks(b"w\0"), Speaks::Message("NewWorkConn"));
        assert_eq!(speaks(&crate::msg::v2::MAGIC), Speaks::WireV2);
        assert_eq!(speaks(&[0x16, 3, 1]), Speaks::Tls);
        assert_eq!(speaks(&[0x17, 0x16, 3]), Speaks::Tls);
        assert_eq!(speaks(b"GET / HTTP/1.1"), Speaks::Unknown);
        assert_eq!(speaks(&[0, 9]), Speaks::Unknown);
        let m = mismatch(b"o\0\0", true, "client", "frps").unwrap_or_default();
        assert_eq!(
            m,
            "the client sent a Login message without yamux: the client has transport.tcpMux = \
             false but this frps has transport.tcpMux = true"
        );
        let m = mismatch(&[0, 1, 0, 1], false, "client", "frps").unwrap_or_default();
        assert!(m.contains("this frps has transport.tcpMux = false"), "{m}");
        assert_eq!(mismatch(&[0, 1, 0, 1], true, "client", "frps"), None);
        assert_eq!(mismatch(b"o\0", false, "client", "frps"), None);
        assert_eq!(mismatch(b"xyz", true, "client", "frps"), None);
    }

    #[test]
    fn backlog_is_the_system_limit() {
        match std::fs::read_to_string("/proc/sys/net/core/somaxconn") {
            Ok(s) => assert_eq!(super::listen_backlog(), s.trim().parse::<i32>().unwrap()),
            Err(_) => assert_eq!(super::listen_backlog(), super::FALLBACK_BACKLOG),
        }
    }

    #[tokio::test]
    async fn listen_tcp_binds_and_accepts() {
        let l = super::listen_tcp("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (c, a) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
        assert_eq!(c.unwrap().local_addr().unwrap(), a.unwrap().1);
        assert!(super::listen_tcp("256.0.0.1:0").await.is_err());
    }
}
