//! frp's v1 configuration (frp `pkg/config/v1/*.go`; frp-protocol.md §14).
//!
//! Plain serde data with frp's keys; every default lives in the one `impl Default` of its struct,
//! and `complete()` applies frp's "zero means default". [`load`] is the only loader both binaries
//! use (template -> includes -> TOML/YAML/JSON or legacy INI -> case-insensitive decode with
//! unknown keys collected -> defaults -> validation).
//!
//! Proxies, visitors and plugins are one union struct each, with the keys each `type` accepts
//! listed next to it ([`proxy_fields`], ...); the decoder rejects keys a type does not have.

mod addr;
mod client;
mod de;
mod files;
mod legacy;
mod load;
mod locate;
mod plugin;
mod proxy;
mod server;
mod support;
pub mod template;
mod types;
mod validate;
mod visitor;

pub use addr::{check_dial_host, is_host_name, listen_ip, resolve_listen_ip};
pub use client::*;
/// Go `encoding/json`-like decoding of a parsed document, unknown keys collected (also used for
/// frps's plugin answers).
pub use de::{from_value as decode_like_go, DeError, Unknown};
pub use load::{
    default_client, default_server, load_client, load_client_data, load_client_text, load_server,
    load_server_text, ConfigError, LoadOptions, Loaded, Problem, Reload,
};
pub use plugin::*;
pub use proxy::*;
pub use server::*;
pub use support::{
    client_global_unsupported, client_unsupported, proxy_unsupported, refusal, server_unsupported,
    visitor_unsupported, Effect, Unsupported,
};
pub use types::*;
pub use validate::plugin_url;
pub use visitor::*;
