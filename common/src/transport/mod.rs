//! Transport set-up with frp's parameters: TLS configs ([`tls`]), yamux ([`mux`]) and the one
//! TCP bind helper every listener of both binaries uses ([`listen_tcp`]). Dialling and accepting
//! live in the binaries; this module only builds the pieces.

pub mod mux;
pub mod tls;

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
