//! Stream layers. [`BoxStream`] is the one stream type at every boundary; [`wrap_work_conn`] is
//! the only place that knows the order of per-proxy layers (frp `client/proxy/proxy.go`
//! `wrapWorkConn`, `server/proxy/proxy.go` `handleUserTCPConnection`).

pub mod crypt;
pub mod join;

pub use crypt::CryptStream;
pub use join::join;

use tokio::io::{AsyncRead, AsyncWrite};

/// Anything we can proxy bytes over.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncStream for T {}

/// The stream type handed across module boundaries (TCP, TLS, yamux stream, wrapped layers).
pub type BoxStream = Box<dyn AsyncStream>;

/// Per-proxy layers applied to a work connection after `StartWorkConn`.
#[derive(Debug, Clone, Default)]
pub struct WrapOpts {
    /// `transport.useEncryption`: AES-128-CFB keyed from the auth token.
    pub encryption_key: Option<crate::crypto::Key>,
}

/// Stacks the per-proxy layers, wire side outermost: encryption, then (later) compression.
pub fn wrap_work_conn(stream: BoxStream, opts: &WrapOpts) -> BoxStream {
    match &opts.encryption_key {
        Some(key) => Box::new(CryptStream::new(stream, *key)),
        None => stream,
    }
}
