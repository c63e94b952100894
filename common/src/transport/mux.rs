//! yamux with frp's parameters (frp `client/connector.go`, `server/service.go`; frp-protocol.md §3.6).
//!
//! We use the `tokio-yamux` crate, a port of hashicorp/yamux (frp's fork is wire-identical).
//! Checked against the spec's interop list: a new stream is opened with a WindowUpdate|SYN carrying
//! the 6 MiB - 256 KiB window growth, an inbound stream is ACKed at once with the same growth (not
//! lazily on first write, which would make Go kill the session after 75 s), and pings are answered
//! with the peer's opaque value.

use std::time::Duration;

/// frp sets `MaxStreamWindowSize = 6 MiB`.
pub const MAX_STREAM_WINDOW: u32 = 6 * 1024 * 1024;

/// The yamux config for one session. `keepalive_secs` is `transport.tcpMuxKeepaliveInterval`.
pub fn config(keepalive_secs: i64) -> tokio_yamux::Config {
    tokio_yamux::Config {
        accept_backlog: 256,
        enable_keepalive: keepalive_secs > 0,
        keepalive_interval: Duration::from_secs(keepalive_secs.max(1) as u64),
        connection_write_timeout: Duration::from_secs(10),
        max_stream_count: 65535,
        max_stream_window_size: MAX_STREAM_WINDOW,
    }
}

pub use tokio_yamux::{Control, Session, StreamHandle};
