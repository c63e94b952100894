//! frpc: the private side of the tunnel, wire-compatible with frp 0.70's frpc.
//!
//! # Layout
//! - [`Client`] (`service.rs`): log in with backoff, run one session at a time, reconnect.
//! - `connector`: dial frps (TCP, TLS, yamux) and open logical connections.
//! - `control`: one session: control messages, heartbeat, work connections on `ReqWorkConn`.
//! - `health`: tcp/http checks of local services; a failing proxy is closed on frps.
//! - `proxy`: what a work connection is joined to (tcp: local dial + join; udp: datagram relay).
//! - `visitor`: `[[visitors]]` (stcp, sudp): local listeners reaching secret proxies via frps.
//! - [`status`]: the proxies' phases as frp reports them (`wait start`, `running`, ...).
//! - `admin`: the admin API (`webServer`): reload, stop, status, config.
//! - [`reload`]: the pure proxy diff behind hot reload.
//! - [`nathole`]: `frpc nathole discover` (a STUN Binding client and frp's NAT classification).
//! - [`cli`]: the command line.

pub mod admin;
mod auth;
pub mod cli;
mod connector;
mod control;
mod health;
pub mod metrics;
pub mod nathole;
mod plugin;
mod proxy;
pub mod reload;
mod service;
pub mod status;
pub mod store;
mod ui;
mod visitor;
mod watch;
mod xtcp;

pub use admin::ProxyStatusResp;
pub use service::{Client, ClientError, Reloader};

/// The framing frpc speaks (`transport.wireProtocol`).
pub(crate) fn wire(cfg: &common::config::ClientConfig) -> common::msg::Wire {
    if cfg.transport.wire_protocol == "v2" {
        common::msg::Wire::V2
    } else {
        common::msg::Wire::V1
    }
}
