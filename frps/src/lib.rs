//! frps: the public side of the tunnel, wire-compatible with frp 0.70's frps.
//!
//! # Layout
//! - [`admission`]: what a connection may cost before it logs in ([`admission::Limits`]).
//! - [`service`]: [`Server`] binds `bindPort`, sniffs TLS, runs yamux, and routes each logical
//!   connection by its first message (Login, NewWorkConn, NewVisitorConn).
//! - `control`: one task per logged-in frpc: control messages, heartbeat, its proxies.
//! - `pool`: the work-connection pool fed by `ReqWorkConn`.
//! - `proxy`: proxy types; shared user-connection handling lives in `proxy/mod.rs`.
//! - `group`: load-balancing groups (shared listener, members in turn).
//! - `plugin`: server plugins (`httpPlugins`): frp's HTTP RPC hooks and the client they share.
//! - `metrics`: Prometheus registry (frp's series and `frp_rs_` extras) and proxy statistics.
//! - `dashboard`: the dashboard API and `/metrics` on `webServer`.
//! - `ports`: `allowPorts`, port allocation.
//! - `visitor`: the visitor manager: secret proxies (stcp, sudp) and NewVisitorConn checks.
//! - `vhost`: the HTTP virtual-host server on `vhostHTTPPort` and its router.
//! - [`cli`]: the command line (the binary's `main` only calls it).

pub mod admission;
mod auth;
pub mod cli;
mod clients;
mod control;
mod dashboard;
mod group;
mod metrics;
mod nathole;
mod plugin;
mod pool;
mod ports;
mod proxy;
mod registry;
mod service;
mod ui;
mod vhost;
mod visitor;

pub use admission::Limits;
pub use service::{Server, ServerError, ServerStats};
