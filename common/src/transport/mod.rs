//! Transport set-up with frp's parameters: TLS configs ([`tls`]) and yamux ([`mux`]).
//! Dialling and accepting live in the binaries; this module only builds the pieces.

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
