//! Virtual hosts on frps: the Host/path/user router ([`router`]), the HTTP reverse proxy on
//! `vhostHTTPPort` ([`http`]) and SNI routing on `vhostHTTPSPort` ([`https`], [`sni`]).
//! Mirrors frp `pkg/util/vhost/`.
//!
//! The interface to proxies is narrow: an `http` proxy registers an [`http::HttpRoute`] per
//! (domain, location) and gets a [`http::RouteGuard`] that removes it on drop; the route holds an
//! [`http::Backend`] that opens a started, wrapped, counted work connection. This module never
//! touches the work-connection pool or the proxy registry itself. An `https` proxy registers an
//! [`https::SniBackend`] per domain the same way.
//!
//! Not here yet: `tcpmuxHTTPConnectPort`, sharing `bindPort`, http/https load-balancing groups,
//! CONNECT through the HTTP vhost (answered 405).

mod framing;
pub(crate) mod http;
pub(crate) mod https;
pub(crate) mod router;
pub(crate) mod sni;

pub(crate) use http::{Backend, HttpRoute, HttpVhost, Work};
pub(crate) use https::{HttpsVhost, SniBackend};
