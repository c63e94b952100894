//! frp's WebSocket carrier (frp `pkg/util/net/websocket.go`, `dial.go` `DialHookWebsocket`;
//! frp-protocol.md §3.1, §3.4): frpc upgrades `GET /~!frp` with `Origin: http://<host>`, then
//! the connection is a byte stream carried in binary frames (text frames are accepted on
//! read, as x/net/websocket does). frps refuses another path (404) and a missing or unusable
//! `Origin` (403, x/net/websocket's "null origin" rule).

use bytes::{Buf, Bytes};
use futures::{Sink, Stream};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// The path frpc upgrades (frp `FrpWebsocketPath`).
pub const FRP_WEBSOCKET_PATH: &str = "/~!frp";

/// The first bytes of frpc's upgrade request, which frps's bind port recognises (golib
/// `net/mux` matcher at priority 0).
pub const UPGRADE_HEAD: &[u8; 10] = b"GET /~!frp";

/// The largest frame or message either side takes: above yamux's 6 MiB stream window plus a
/// header, far below tungstenite's 64 MiB default (a peer that has not logged in could
/// otherwise make frps hold that much).
const MAX_FRAME: usize = 8 << 20;

/// Writes are cut into frames of at most this much.
const MAX_WRITE: usize = 256 << 10;

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_frame_size(Some(MAX_FRAME))
        .max_message_size(Some(MAX_FRAME))
}

fn io_err(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "websocket closed")
        }
        e => io::Error::new(io::ErrorKind::InvalidData, format!("websocket: {e}")),
    }
}

/// frpc's upgrade on `stream`: `host` is what frp puts in the URL (`host:port` for
/// `websocket`, the TLS server name for `wss`).
pub async fn connect<S>(stream: S, host: &str) -> io::Result<WsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let url = format!("ws://{host}{FRP_WEBSOCKET_PATH}");
    let bad = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| bad(format!("websocket url {url}: {e}")))?;
    // x/net/websocket lowercases the Origin it sends.
    let origin = HeaderValue::from_str(&format!("http://{host}").to_ascii_lowercase())
        .map_err(|e| bad(format!("websocket origin for {host}: {e}")))?;
    req.headers_mut().insert("Origin", origin);
    let (ws, _) = tokio_tungstenite::client_async_with_config(req, stream, Some(config()))
        .await
        .map_err(|e| match e {
            WsError::Http(resp) => io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!(
                    "websocket upgrade refused by the server: HTTP {}",
                    resp.status()
                ),
            ),
            e => io_err(e),
        })?;
    Ok(WsStream::new(ws))
}

/// Why frps refuses an upgrade request, if it does.
fn refusal(req: &Request) -> Option<(StatusCode, String)> {
    if req.uri().path() != FRP_WEBSOCKET_PATH {
        return Some((
            StatusCode::NOT_FOUND,
            format!(
                "websocket upgrade for path {} (not {FRP_WEBSOCKET_PATH})",
                req.uri().path()
            ),
        ));
    }
    let origin = req
        .headers()
        .get("Origin")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let usable = origin
        .parse::<tokio_tungstenite::tungstenite::http::Uri>()
        .is_ok_and(|u| u.scheme().is_some() || origin.starts_with('/'));
    if !usable {
        return Some((
            StatusCode::FORBIDDEN,
            if origin.is_empty() {
                "websocket upgrade without an Origin header".to_owned()
            } else {
                format!("websocket upgrade with an unusable Origin {origin:?}")
            },
        ));
    }
    None
}

/// frps's side of the upgrade. The error names what was wrong with the request.
pub async fn accept<S>(stream: S) -> io::Result<WsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut why = None;
    #[allow(clippy::result_large_err)] // tungstenite's callback type
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        match refusal(req) {
            None => Ok(resp),
            Some((status, reason)) => {
                let mut r = ErrorResponse::new(Some(reason.clone()));
                *r.status_mut() = status;
                why = Some(reason);
                Err(r)
            }
        }
    };
    let r = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config())).await;
    match r {
        Ok(ws) => Ok(WsStream::new(ws)),
        Err(e) => Err(match why {
            Some(why) => io::Error::new(io::ErrorKind::PermissionDenied, why),
            None => io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad websocket upgrade: {e}"),
            ),
        }),
    }
}

/// A WebSocket connection as a byte stream.
#[derive(Debug)]
pub struct WsStream<S> {
    inner: WebSocketStream<S>,
    /// What is left of the last data frame.
    pending: Bytes,
    eof: bool,
}

impl<S> WsStream<S> {
    fn new(inner: WebSocketStream<S>) -> Self {
        WsStream {
            inner,
            pending: Bytes::new(),
            eof: false,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                None | Some(Ok(Message::Close(_))) => this.eof = true,
                Some(Ok(Message::Binary(b))) => this.pending = b,
                Some(Ok(Message::Text(t))) => this.pending = Bytes::from(t),
                Some(Ok(_)) => {}
                Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => this.eof = true,
                Some(Err(e)) => return Poll::Ready(Err(io_err(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut sink = Pin::new(&mut this.inner);
        ready!(sink.as_mut().poll_ready(cx)).map_err(io_err)?;
        let n = buf.len().min(MAX_WRITE);
        sink.as_mut()
            .start_send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
            .map_err(io_err)?;
        // Start sending now; an error shows on the next call.
        let _ = sink.poll_flush(cx);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner)
            .poll_flush(cx)
            .map_err(io_err)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.get_mut().inner).poll_close(cx)) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(io_err(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn upgrade_then_bytes_both_ways() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(async move {
            let mut s = accept(b).await.unwrap();
            let mut buf = vec![0u8; 300_000];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
            s.flush().await.unwrap();
            s.shutdown().await.unwrap();
        });
        let mut c = connect(a, "127.0.0.1:7000").await.unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        c.write_all(&data).await.unwrap();
        c.flush().await.unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, data);
        server.await.unwrap();
    }

    async fn refused(request: &str) -> String {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let server = tokio::spawn(accept(b));
        a.write_all(request.as_bytes()).await.unwrap();
        let mut resp = vec![0u8; 12];
        a.read_exact(&mut resp).await.unwrap();
        let err = server.await.unwrap().err().unwrap();
        format!("{} | {err}", String::from_utf8_lossy(&resp))
    }

    #[tokio::test]
    async fn wrong_path_and_missing_origin_are_refused() {
        let req = |path: &str, origin: &str| {
            format!(
                "GET {path} HTTP/1.1\r\nHost: h:1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{origin}\r\n"
            )
        };
        let r = refused(&req("/~!frpx", "Origin: http://h:1\r\n")).await;
        assert!(
            r.starts_with("HTTP/1.1 404") && r.contains("path /~!frpx"),
            "{r}"
        );
        let r = refused(&req(FRP_WEBSOCKET_PATH, "")).await;
        assert!(
            r.starts_with("HTTP/1.1 403") && r.contains("without an Origin"),
            "{r}"
        );
    }
}
