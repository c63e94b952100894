//! Stream layers. [`BoxStream`] is the one stream type at every boundary; [`wrap_work_conn`] is
//! the only place that knows the order of per-proxy layers (frp `client/proxy/proxy.go`
//! `wrapWorkConn`, `server/proxy/proxy.go` `handleUserTCPConnection`).

pub mod aead;
pub mod compress;
pub mod count;
pub mod crypt;
pub mod join;
pub mod limit;
mod outbuf;
#[cfg(target_os = "linux")]
pub mod splice;
#[cfg(test)]
pub(crate) mod testing;

pub use aead::AeadStream;
pub use compress::CompressStream;
pub use count::{Count, Counted};
pub use crypt::CryptStream;
pub use join::{join, join_work};
pub use limit::{LimitedStream, Limiter};

use tokio::io::{AsyncRead, AsyncWrite};

/// Anything we can proxy bytes over.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin {
    /// For finding a plain TCP socket under a [`BoxStream`] (the zero-copy path).
    fn as_any(&self) -> &dyn std::any::Any;
    /// For driving a yamux stream under a [`BoxStream`] directly ([`join::join_work`]).
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncStream for T {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// The plain TCP socket a stream is, if it is one (no TLS, no mux, no layer).
pub fn as_tcp(s: &BoxStream) -> Option<&tokio::net::TcpStream> {
    (**s).as_any().downcast_ref::<tokio::net::TcpStream>()
}

/// The stream type handed across module boundaries (TCP, TLS, yamux stream, wrapped layers).
pub type BoxStream = Box<dyn AsyncStream>;

/// Per-proxy layers applied to a work connection after `StartWorkConn`.
#[derive(Debug, Clone, Default)]
pub struct WrapOpts {
    /// `transport.useEncryption`: AES-128-CFB keyed from the auth token.
    pub encryption_key: Option<crate::crypto::Key>,
    /// `transport.useCompression`: snappy framed stream.
    pub compress: bool,
    /// `transport.bandwidthLimit`, shared by all connections of the proxy, and where it sits.
    pub limit: Option<(std::sync::Arc<Limiter>, LimitAt)>,
}

impl WrapOpts {
    /// No layer touches the bytes (so they may bypass user space).
    pub fn is_empty(&self) -> bool {
        self.encryption_key.is_none() && !self.compress && self.limit.is_none()
    }
}

/// Which end of a control channel we are (v2 keys differ per direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// Encrypts a control channel once the login succeeded: AES-128-CFB keyed from the token (v1,
/// frp `NewCryptoReadWriter`), or the AEAD stream with the keys of the v2 hello exchange. The
/// one place that chooses, for both binaries.
pub fn secure_control(
    stream: BoxStream,
    token: &str,
    negotiated: Option<&crate::msg::v2::Negotiated>,
    side: Side,
) -> std::io::Result<BoxStream> {
    let Some(n) = negotiated else {
        return Ok(Box::new(CryptStream::new(
            stream,
            crate::crypto::token_key(token.as_bytes()),
        )));
    };
    let (c2s, s2c) = crate::msg::v2::control_keys(token, &n.transcript, &n.alg);
    let (write, read) = match side {
        Side::Client => (&c2s, &s2c),
        Side::Server => (&s2c, &c2s),
    };
    Ok(Box::new(AeadStream::new(stream, &n.alg, write, read)?))
}

/// Where the bandwidth limiter sits in the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitAt {
    /// frpc, `bandwidthLimitMode = "client"`: on the wire, below encryption and compression.
    Wire,
    /// frps, `bandwidthLimitMode = "server"`: on the plaintext, above compression.
    Plain,
}

/// Stacks the per-proxy layers, wire side outermost: encryption, then compression, so data is
/// compressed first and then encrypted (frp `wrapWorkConn` / `handleUserTCPConnection`).
pub fn wrap_work_conn(stream: BoxStream, opts: &WrapOpts) -> BoxStream {
    let stream: BoxStream = match &opts.limit {
        Some((l, LimitAt::Wire)) => Box::new(LimitedStream::new(stream, l.clone())),
        _ => stream,
    };
    let stream: BoxStream = match &opts.encryption_key {
        Some(key) => Box::new(CryptStream::new(stream, *key)),
        None => stream,
    };
    let stream: BoxStream = if opts.compress {
        Box::new(CompressStream::new(stream))
    } else {
        stream
    };
    match &opts.limit {
        Some((l, LimitAt::Plain)) => Box::new(LimitedStream::new(stream, l.clone())),
        _ => stream,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every combination of layers round-trips 5 MiB both ways through the one stacking function.
    #[tokio::test]
    async fn every_layer_combination_round_trips() {
        let key = crate::crypto::derive_key(b"token");
        for (enc, compress) in [(false, false), (true, false), (false, true), (true, true)] {
            let opts = WrapOpts {
                encryption_key: enc.then_some(key),
                compress,
                limit: None,
            };
            let (a, b) = tokio::io::duplex(1 << 16);
            let a = wrap_work_conn(Box::new(a), &opts);
            let mut b = wrap_work_conn(Box::new(b), &opts);
            let data: Vec<u8> = (0..5 * 1024 * 1024u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 & 0x3f)
                .collect();
            let (got, back) =
                testing::half_close_exchange(a, &mut b, data.clone(), &data[..1000]).await;
            assert!(got == data, "enc={enc} compress={compress}");
            assert_eq!(back, &data[..1000]);
        }
    }
}
