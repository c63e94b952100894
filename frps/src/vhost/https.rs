//! The HTTPS vhost on `vhostHTTPSPort` (frp `pkg/util/vhost/https.go`, `server/proxy/https.go`):
//! routes a TLS connection by the server name in its ClientHello without terminating TLS. The
//! ClientHello bytes read to find the name are handed to the backend, which replays them to the
//! work connection before relaying the rest.
//!
//! Unknown or missing server names, and anything that is not a ClientHello, are closed (frp
//! answers with a TLS alert from an empty config first).

use super::router::{Conflict, RouteGuard, Table};
use super::sni::{self, Hello};
use super::StreamBackend;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// frp's deadline for the ClientHello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// Routes of the HTTPS vhost (domain only: no location, no user).
#[derive(Debug, Default)]
pub(crate) struct HttpsVhost {
    routes: Table<Arc<dyn StreamBackend>>,
}

impl HttpsVhost {
    pub(crate) fn register(
        &self,
        domain: &str,
        backend: Arc<dyn StreamBackend>,
    ) -> Result<RouteGuard<Arc<dyn StreamBackend>>, Conflict> {
        self.routes.register(domain, "", "", backend)
    }
}

/// Serves TLS users on `listener` until `token` is cancelled.
pub(crate) async fn serve(
    vhost: Arc<HttpsVhost>,
    listener: TcpListener,
    pp: Arc<common::transport::proxy_protocol::Trusted>,
    tracker: TaskTracker,
    token: CancellationToken,
) {
    super::accept_loop(
        "https",
        listener,
        pp,
        tracker,
        token,
        move |tcp, peer, _| {
            let vhost = vhost.clone();
            async move { serve_conn(&vhost, tcp, peer).await }
        },
    )
    .await
}

pub(crate) async fn serve_conn(vhost: &HttpsVhost, mut tcp: TcpStream, peer: SocketAddr) {
    let read = tokio::time::timeout(HELLO_TIMEOUT, read_hello(&mut tcp)).await;
    let (hello, buf) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            debug!(error = %e, "closing https connection before its ClientHello");
            return;
        }
        Err(_) => {
            debug!("closing https connection: no ClientHello within {HELLO_TIMEOUT:?}");
            return;
        }
    };
    let name = match hello {
        Hello::Sni(n) => n,
        other => {
            debug!(?other, "closing https connection: no usable server name");
            return;
        }
    };
    let Some(backend) = vhost.routes.lookup(&name, "", "") else {
        debug!(sni = %name, "closing https connection: no route");
        return;
    };
    backend.serve(tcp, peer, buf).await;
}

/// Reads until the ClientHello is complete (or clearly not one), at most [`sni::MAX_HELLO`]
/// plus record headers.
async fn read_hello(tcp: &mut TcpStream) -> std::io::Result<(Hello, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let limit = sni::MAX_HELLO + 5 * 64;
    loop {
        if buf.len() >= limit {
            return Ok((Hello::Bad, buf));
        }
        let mut chunk = [0u8; 4096];
        let want = chunk.len().min(limit - buf.len());
        let n = tcp.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        match sni::parse(&buf) {
            Hello::More => continue,
            h => return Ok((h, buf)),
        }
    }
}
