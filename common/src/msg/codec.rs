//! frp's v1 framing (golib `msg/json/pack.go`, `process.go`):
//! `type byte | int64 big-endian body length | JSON body`, body at most [`MAX_MSG_LEN`] bytes.
//!
//! The type byte <-> variant mapping lives here and nowhere else. [`read_msg`] reads exactly
//! one frame and never past it, so the caller can switch the stream to another layer
//! (encryption, raw proxied bytes) right after a message.

use super::*;
use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// golib's `defaultMaxMsgLength`; frp never changes it.
pub const MAX_MSG_LEN: usize = 10240;
/// type byte + int64 length.
pub const HEADER_LEN: usize = 9;

/// Why a frame could not be read or decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The type byte is not one frp registers (golib: `message type error`).
    #[error("message type error: unknown type byte 0x{0:02x}")]
    UnknownType(u8),
    /// The length is over 10240 (golib: `message length exceed the limit`).
    #[error("message length exceed the limit: {0} > {MAX_MSG_LEN}")]
    TooLarge(i64),
    /// A negative int64 length.
    #[error("message length is negative: {0}")]
    NegativeLength(i64),
    /// The body is not valid JSON for the type.
    #[error("invalid {kind} body: {error}")]
    Json {
        kind: &'static str,
        error: serde_json::Error,
    },
    /// The peer speaks another frp framing than this side expects: the two sides disagree
    /// about `transport.tcpMux` or TLS (see `transport::mismatch`).
    #[error("{0}")]
    Mismatch(String),
    /// A v2 frame that breaks the framing rules.
    #[error("bad v2 frame: {0}")]
    Frame(String),
    /// The stream failed or ended.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl DecodeError {
    /// True when the peer simply went away (logged at debug, not as a fault).
    pub fn is_closed(&self) -> bool {
        matches!(self, DecodeError::Io(e) if matches!(e.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionAborted
            // quinn's ConnectionLost / ClosedStream on a QUIC stream
            | std::io::ErrorKind::NotConnected)
            // a stream whose yamux session ended (a keepalive timeout, the connection's error)
            || e.get_ref().is_some_and(|i| i.is::<crate::transport::mux::StreamClosed>()))
    }
}

/// The v1 type byte of a message (frp `pkg/msg/msg.go` `TypeLogin = 'o'` ...).
pub fn type_byte(msg: &Message) -> u8 {
    match msg {
        Message::Login(_) => b'o',
        Message::LoginResp(_) => b'1',
        Message::NewProxy(_) => b'p',
        Message::NewProxyResp(_) => b'2',
        Message::CloseProxy(_) => b'c',
        Message::NewWorkConn(_) => b'w',
        Message::ReqWorkConn(_) => b'r',
        Message::StartWorkConn(_) => b's',
        Message::NewVisitorConn(_) => b'v',
        Message::NewVisitorConnResp(_) => b'3',
        Message::Ping(_) => b'h',
        Message::Pong(_) => b'4',
        Message::UdpPacket(_) => b'u',
        Message::NatHoleVisitor(_) => b'i',
        Message::NatHoleClient(_) => b'n',
        Message::NatHoleResp(_) => b'm',
        Message::NatHoleSid(_) => b'5',
        Message::NatHoleReport(_) => b'6',
    }
}

fn json<T: serde::de::DeserializeOwned>(kind: &'static str, body: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(body).map_err(|error| DecodeError::Json { kind, error })
}

/// Decodes one body given its type byte.
pub fn decode(ty: u8, body: &[u8]) -> Result<Message, DecodeError> {
    Ok(match ty {
        b'o' => Message::Login(json("Login", body)?),
        b'1' => Message::LoginResp(json("LoginResp", body)?),
        b'p' => Message::NewProxy(json("NewProxy", body)?),
        b'2' => Message::NewProxyResp(json("NewProxyResp", body)?),
        b'c' => Message::CloseProxy(json("CloseProxy", body)?),
        b'w' => Message::NewWorkConn(json("NewWorkConn", body)?),
        b'r' => Message::ReqWorkConn(json("ReqWorkConn", body)?),
        b's' => Message::StartWorkConn(json("StartWorkConn", body)?),
        b'v' => Message::NewVisitorConn(json("NewVisitorConn", body)?),
        b'3' => Message::NewVisitorConnResp(json("NewVisitorConnResp", body)?),
        b'h' => Message::Ping(json("Ping", body)?),
        b'4' => Message::Pong(json("Pong", body)?),
        b'u' => Message::UdpPacket(json("UDPPacket", body)?),
        b'i' => Message::NatHoleVisitor(json("NatHoleVisitor", body)?),
        b'n' => Message::NatHoleClient(json("NatHoleClient", body)?),
        b'm' => Message::NatHoleResp(json("NatHoleResp", body)?),
        b'5' => Message::NatHoleSid(json("NatHoleSid", body)?),
        b'6' => Message::NatHoleReport(json("NatHoleReport", body)?),
        other => return Err(DecodeError::UnknownType(other)),
    })
}

fn is_registered(ty: u8) -> bool {
    matches!(
        ty,
        b'o' | b'1'
            | b'p'
            | b'2'
            | b'c'
            | b'w'
            | b'r'
            | b's'
            | b'v'
            | b'3'
            | b'h'
            | b'4'
            | b'u'
            | b'i'
            | b'n'
            | b'm'
            | b'5'
            | b'6'
    )
}

/// Checks a 9-byte header and returns the type byte and body length.
pub fn decode_header(h: &[u8; HEADER_LEN]) -> Result<(u8, usize), DecodeError> {
    let ty = h[0];
    if !is_registered(ty) {
        return Err(DecodeError::UnknownType(ty));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&h[1..]);
    let len = i64::from_be_bytes(len);
    if len < 0 {
        return Err(DecodeError::NegativeLength(len));
    }
    if len > MAX_MSG_LEN as i64 {
        return Err(DecodeError::TooLarge(len));
    }
    Ok((ty, len as usize))
}

fn body_json(msg: &Message) -> serde_json::Result<Vec<u8>> {
    match msg {
        Message::Login(m) => serde_json::to_vec(m),
        Message::LoginResp(m) => serde_json::to_vec(m),
        Message::NewProxy(m) => serde_json::to_vec(m),
        Message::NewProxyResp(m) => serde_json::to_vec(m),
        Message::CloseProxy(m) => serde_json::to_vec(m),
        Message::NewWorkConn(m) => serde_json::to_vec(m),
        Message::ReqWorkConn(m) => serde_json::to_vec(m),
        Message::StartWorkConn(m) => serde_json::to_vec(m),
        Message::NewVisitorConn(m) => serde_json::to_vec(m),
        Message::NewVisitorConnResp(m) => serde_json::to_vec(m),
        Message::Ping(m) => serde_json::to_vec(m),
        Message::Pong(m) => serde_json::to_vec(m),
        Message::UdpPacket(m) => serde_json::to_vec(m),
        Message::NatHoleVisitor(m) => serde_json::to_vec(m),
        Message::NatHoleClient(m) => serde_json::to_vec(m),
        Message::NatHoleResp(m) => serde_json::to_vec(m),
        Message::NatHoleSid(m) => serde_json::to_vec(m),
        Message::NatHoleReport(m) => serde_json::to_vec(m),
    }
}

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The body is over the framing's limit: a Go peer would drop the connection on reading it.
    #[error("{name} is {len} bytes, over frp's {max}-byte message limit")]
    TooLarge {
        name: &'static str,
        len: usize,
        max: usize,
    },
    /// serde_json failed (not expected for our plain structs).
    #[error("cannot encode message as JSON: {0}")]
    Json(serde_json::Error),
}

impl From<EncodeError> for std::io::Error {
    fn from(e: EncodeError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
    }
}

/// A message's JSON body, refused when over `max` bytes (a Go peer would drop the connection).
pub fn encode_body(msg: &Message, max: usize) -> Result<Vec<u8>, EncodeError> {
    let body = body_json(msg).map_err(EncodeError::Json)?;
    if body.len() > max {
        return Err(EncodeError::TooLarge {
            name: msg.name(),
            len: body.len(),
            max,
        });
    }
    Ok(body)
}

/// Appends one whole frame to `out` (header and body, so it goes out in a single write as in Go).
pub fn encode(msg: &Message, out: &mut BytesMut) -> Result<(), EncodeError> {
    let body = encode_body(msg, MAX_MSG_LEN)?;
    out.reserve(HEADER_LEN + body.len());
    out.put_u8(type_byte(msg));
    out.put_i64(body.len() as i64);
    out.put_slice(&body);
    Ok(())
}

/// Encodes to a fresh buffer.
pub fn encode_to_vec(msg: &Message) -> std::io::Result<Vec<u8>> {
    let mut b = BytesMut::new();
    encode(msg, &mut b)?;
    Ok(b.to_vec())
}

/// Reads exactly one frame.
pub async fn read_msg<R: AsyncRead + Unpin + ?Sized>(r: &mut R) -> Result<Message, DecodeError> {
    let mut h = [0u8; HEADER_LEN];
    r.read_exact(&mut h).await?;
    let (ty, len) = decode_header(&h)?;
    let body = read_body(r, len).await?;
    decode(ty, &body)
}

/// Reads one frame whose first `prefix.len()` (< 9) bytes were already read (frps reads 7 bytes
/// to tell v1 from v2 before it knows which framing it has).
pub async fn read_msg_after<R: AsyncRead + Unpin + ?Sized>(
    prefix: &[u8],
    r: &mut R,
) -> Result<Message, DecodeError> {
    let mut h = [0u8; HEADER_LEN];
    let n = prefix.len().min(HEADER_LEN);
    h[..n].copy_from_slice(&prefix[..n]);
    r.read_exact(&mut h[n..]).await?;
    let (ty, len) = decode_header(&h)?;
    let body = read_body(r, len).await?;
    decode(ty, &body)
}

/// Reads a body of `len` bytes into a buffer that grows as they arrive: a peer that announces
/// a large body and sends a byte makes us hold a byte, not the announced length.
pub(crate) async fn read_body<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    len: usize,
) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(len.min(512));
    (&mut *r).take(len as u64).read_to_end(&mut body).await?;
    if body.len() < len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(body)
}

/// Writes one frame with a single `write_all` and flushes.
pub async fn write_msg<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    msg: &Message,
) -> std::io::Result<()> {
    let mut b = BytesMut::new();
    encode(msg, &mut b)?;
    w.write_all(&b).await?;
    w.flush().await
}

#[cfg(test)]
mod tests;
