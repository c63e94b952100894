//! An HTTP backend and client for the vhost tests: hyper on 127.0.0.1 port 0.
//!
//! The backend answers every request with what it saw, so tests can check routing and header
//! rewriting from the outside: `GET /...` -> 200 with body `id\nMETHOD URI\nname: value\n...`;
//! `/upload` reads the body as it streams and answers `len=N sum=S`; `/download` streams
//! 10 MiB of [`crate::pattern`] chunked; `/ws` answers an Upgrade with 101 and then echoes
//! bytes, and so does a CONNECT after its 200; `/hang` never answers.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// Size of `/download` and of the tests' uploads.
pub const BIG: usize = 10 * 1024 * 1024;

type Body = BoxBody<Bytes, hyper::Error>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|n: Infallible| match n {})
        .boxed()
}

/// Adler-style checksum of a byte stream (what `/upload` reports).
pub fn checksum(data: &[u8]) -> u64 {
    let mut s = 0u64;
    for (i, b) in data.iter().enumerate() {
        s = s
            .wrapping_mul(31)
            .wrapping_add(u64::from(*b) ^ (i as u64 & 0xff));
    }
    s
}

/// Starts the backend; `id` is the first line of every answer and the `x-backend` header.
pub async fn start(id: &'static str) -> SocketAddr {
    start_counted(id).await.0
}

/// [`start`], also counting the connections the backend accepts.
pub async fn start_counted(id: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let (addr, accepted, _) = start_at(id, ([127, 0, 0, 1], 0).into()).await;
    (addr, accepted)
}

/// [`start_counted`] on `addr` (port 0: any); aborting the returned task stops listening, so
/// the backend can be started again on the same address.
pub async fn start_at(
    id: &'static str,
    addr: SocketAddr,
) -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind(addr).await.expect("bind backend");
    let addr = l.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(id, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (addr, accepted, task)
}

/// [`start`] behind TLS (a self-signed certificate; HTTP/1.1 only).
pub async fn start_tls(id: &'static str) -> SocketAddr {
    crate::tls_server(move |tls| async move {
        let svc = hyper::service::service_fn(move |req| handle(id, req));
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tls), svc)
            .with_upgrades()
            .await;
    })
    .await
}

async fn handle(
    id: &'static str,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let mut resp = if path.starts_with("/upload") {
        let mut body = req.into_body();
        let (mut len, mut sum, mut i) = (0usize, 0u64, 0u64);
        while let Some(f) = body.frame().await {
            let Ok(f) = f else { break };
            if let Some(d) = f.data_ref() {
                for b in d.iter() {
                    sum = sum
                        .wrapping_mul(31)
                        .wrapping_add(u64::from(*b) ^ (i & 0xff));
                    i += 1;
                }
                len += d.len();
            }
        }
        Response::new(full(format!("len={len} sum={sum}")))
    } else if path.starts_with("/download") {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(4);
        tokio::spawn(async move {
            let data = crate::pattern(BIG, 7);
            for c in data.chunks(64 * 1024) {
                if tx
                    .send(Ok(Frame::data(Bytes::copy_from_slice(c))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
        Response::new(BodyExt::boxed(StreamBody::new(stream)))
    } else if req.method() == hyper::Method::CONNECT {
        // A tunnel: 200, then echo.
        echo_after_upgrade(hyper::upgrade::on(&mut req));
        Response::new(full(""))
    } else if path.starts_with("/ws") && req.headers().contains_key(hyper::header::UPGRADE) {
        echo_after_upgrade(hyper::upgrade::on(&mut req));
        let mut r = Response::new(full(""));
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut()
            .insert(hyper::header::UPGRADE, "websocket".parse().expect("value"));
        r.headers_mut()
            .insert(hyper::header::CONNECTION, "Upgrade".parse().expect("value"));
        r
    } else if path.starts_with("/hang") {
        std::future::pending::<()>().await;
        unreachable!()
    } else {
        let mut text = format!("{id}\n{} {}\n", req.method(), req.uri());
        for (k, v) in req.headers() {
            text.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
        }
        Response::new(full(text))
    };
    resp.headers_mut()
        .insert("x-backend", id.parse().expect("value"));
    Ok(resp)
}

/// Echoes on the connection once the answer has turned it into a tunnel.
fn echo_after_upgrade(on: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        if let Ok(up) = on.await {
            let mut io = TokioIo::new(up);
            let (mut r, mut w) = tokio::io::split(&mut io);
            let _ = tokio::io::copy(&mut r, &mut w).await;
        }
    });
}

/// A hyper client connection to `addr` (the vhost port).
pub async fn connect(
    addr: SocketAddr,
) -> hyper::client::conn::http1::SendRequest<BoxBody<Bytes, std::io::Error>> {
    let s = TcpStream::connect(addr).await.expect("connect vhost");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .expect("handshake");
    tokio::spawn(conn.with_upgrades());
    sender
}

/// A response with its whole body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `req` on `sender` and reads the whole answer, within [`crate::PATIENCE`].
pub async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<BoxBody<Bytes, std::io::Error>>,
    req: Request<BoxBody<Bytes, std::io::Error>>,
) -> Answer {
    let go = async {
        sender.ready().await.expect("ready");
        let resp = sender.send_request(req).await.expect("response");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    };
    tokio::time::timeout(crate::PATIENCE, go)
        .await
        .expect("answer in time")
}

/// An empty request body.
pub fn empty() -> BoxBody<Bytes, std::io::Error> {
    Full::new(Bytes::new())
        .map_err(|n: Infallible| match n {})
        .boxed()
}

/// `GET uri` with `Host: host` and extra headers, on a new connection.
pub async fn get(addr: SocketAddr, host: &str, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut b = Request::get(uri).header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut sender = connect(addr).await;
    send(&mut sender, b.body(empty()).expect("request")).await
}

/// Basic credentials as a header value.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
