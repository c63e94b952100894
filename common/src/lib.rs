//! Pieces shared by `frps` and `frpc`.
//!
//! # Layout
//! - [`msg`]: frp's wire messages and the v1 codec. No sockets; async helpers only read/write whole frames.
//! - [`crypto`]: key derivation and the AES-128-CFB stream state. No IO.
//! - [`auth`]: token signing and constant-time verification.
//! - [`io`]: stream layers (`BoxStream`, encryption wrapper, join). The only place that orders layers.
//! - [`transport`]: TLS and yamux set-up with frp's parameters.
//! - [`config`]: frp v1 TOML config for both binaries.
//! - [`nathole`]: xtcp's NAT classification and punch datagrams (no IO).
//! - [`http`]: the small HTTP server (and client) behind the dashboard and the admin API.
//! - [`ui`]: what the frps dashboard and frpc admin pages share (layout, assets, charts, form tokens).
//! - [`backoff`], [`log`], [`signal`], [`stdio`], [`rlimit`]: small helpers used by both binaries.

pub mod auth;
pub mod backoff;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod dns;
pub mod http;
pub mod io;
pub mod log;
pub mod msg;
pub mod nathole;
pub mod oidc;
pub mod rlimit;
pub mod signal;
pub mod stdio;
pub mod transport;
pub mod ui;

/// `impl From<$from> for $to` as `$to::$variant(e)`: for error variants that show their cause in
/// their message, where `#[from]` would also make it the `source()` and `{:#}` would print it
/// twice (tests/tests/error_chains.rs checks this).
#[macro_export]
macro_rules! from_cause {
    ($from:ty => $to:ident::$variant:ident) => {
        impl From<$from> for $to {
            fn from(e: $from) -> Self {
                $to::$variant(e)
            }
        }
    };
}

/// The frp version we speak and announce (`Login.version`, `LoginResp.version`).
pub const FRP_VERSION: &str = "0.70.1";
