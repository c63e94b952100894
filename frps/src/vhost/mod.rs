//! Virtual hosts on frps: the Host/path/user router ([`router`]), the HTTP reverse proxy on
//! `vhostHTTPPort` ([`http`]) and SNI routing on `vhostHTTPSPort` ([`https`], [`sni`]).
//! Mirrors frp `pkg/util/vhost/`.
//!
//! The interface to proxies is narrow: an `http` proxy registers an [`http::HttpRoute`] per
//! (domain, location) and gets a [`http::RouteGuard`] that removes it on drop; the route holds an
//! [`http::Backend`] that opens a started, wrapped, counted work connection. This module never
//! touches the work-connection pool or the proxy registry itself. An `https` proxy registers an
//! [`StreamBackend`] per domain the same way, and so does a `tcpmux` proxy ([`tcpmux`]).
//!
//! Sharing `bindPort` is decided in `crate::service` (`sniff`). Load-balancing groups register
//! one route for all members: http in `crate::group::http`, https and tcpmux in
//! `crate::group::stream`.

mod framing;
pub(crate) mod http;
pub(crate) mod https;
pub(crate) mod router;
pub(crate) mod sni;
pub(crate) mod tcpmux;

pub(crate) use http::{Backend, HttpRoute, HttpVhost, Work};
pub(crate) use https::HttpsVhost;
pub(crate) use tcpmux::{TcpMuxRoute, TcpMuxVhost};

use common::transport::proxy_protocol::{Trusted, HEADER_TIMEOUT};
use futures::future::BoxFuture;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Where a routed raw connection goes (https, tcpmux): the proxy behind the route.
pub(crate) trait StreamBackend: Send + Sync + std::fmt::Debug {
    /// Relays `user` to a work connection, sending `first` (bytes already read from the user
    /// or meant for the backend) ahead of the rest.
    fn serve(&self, user: TcpStream, peer: SocketAddr, first: Vec<u8>) -> BoxFuture<'_, ()>;
}

/// Accepts users on a vhost listener until `token` is cancelled; each connection runs
/// `conn(tcp, peer, its token)` as a tracked task, dropped when that token is cancelled. With
/// `proxyProtocol` on, the task first takes a trusted balancer's PROXY header (the client's
/// address becomes `peer`) or closes the connection (`Trusted::accept`).
pub(crate) async fn accept_loop<F, Fut>(
    kind: &'static str,
    listener: TcpListener,
    pp: Arc<Trusted>,
    tracker: TaskTracker,
    token: CancellationToken,
    conn: F,
) where
    F: Fn(TcpStream, SocketAddr, CancellationToken) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            r = listener.accept() => match r {
                Ok((mut tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    let span = tracing::debug_span!("vhost", kind, %peer);
                    let token = token.child_token();
                    let (conn, pp) = (conn.clone(), pp.clone());
                    tracker.spawn(async move {
                        let header = tokio::time::timeout(HEADER_TIMEOUT, pp.accept(&mut tcp, peer));
                        let peer = tokio::select! {
                            _ = token.cancelled() => return,
                            r = header => match r {
                                Ok(Ok(p)) => p,
                                Ok(Err(e)) => {
                                    tracing::info!("closing connection: {e}");
                                    return;
                                }
                                Err(_) => {
                                    tracing::info!("closing connection: no complete PROXY header within {HEADER_TIMEOUT:?}");
                                    return;
                                }
                            },
                        };
                        tokio::select! {
                            _ = token.cancelled() => {}
                            _ = conn(tcp, peer, token.clone()) => {}
                        }
                    }.instrument(span));
                }
                Err(e) => {
                    tracing::warn!(kind, error = %e, "vhost accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}
