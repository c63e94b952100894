//! Virtual hosts on frps: the Host/path/user router ([`router`]) and the HTTP reverse proxy on
//! `vhostHTTPPort` ([`http`]). Mirrors frp `pkg/util/vhost/`.
//!
//! The interface to proxies is narrow: an `http` proxy registers an [`http::HttpRoute`] per
//! (domain, location) and gets a [`http::RouteGuard`] that removes it on drop; the route holds an
//! [`http::Backend`] that opens a started, wrapped, counted work connection. This module never
//! touches the work-connection pool or the proxy registry itself.
//!
//! Not here yet: `vhostHTTPSPort` (SNI routing), `tcpmuxHTTPConnectPort`, sharing `bindPort`,
//! http load-balancing groups, CONNECT through the HTTP vhost (answered 405).

pub(crate) mod http;
pub(crate) mod router;

pub(crate) use http::{Backend, HttpRoute, HttpVhost, Work};
