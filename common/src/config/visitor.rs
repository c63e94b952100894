//! `[[visitors]]` (frp `pkg/config/v1/visitor.go`; frp-protocol.md §14.5).

use super::proxy::NatTraversal;
use super::types::{zero_default, Secret};
use serde::{Deserialize, Serialize};

/// Every visitor type frp has.
pub const VISITOR_TYPES: &[&str] = &["stcp", "sudp", "xtcp"];

/// The keys valid for a visitor of `kind`.
pub fn visitor_fields(kind: &str) -> Option<&'static [&'static str]> {
    const BASE: &[&str] = &[
        "name",
        "type",
        "enabled",
        "transport",
        "secretKey",
        "serverUser",
        "serverName",
        "bindAddr",
        "bindPort",
        "plugin",
    ];
    const XTCP: &[&str] = &[
        "name",
        "type",
        "enabled",
        "transport",
        "secretKey",
        "serverUser",
        "serverName",
        "bindAddr",
        "bindPort",
        "plugin",
        "protocol",
        "keepTunnelOpen",
        "maxRetriesAnHour",
        "minRetryInterval",
        "fallbackTo",
        "fallbackTimeoutMs",
        "natTraversal",
    ];
    match kind {
        "stcp" | "sudp" => Some(BASE),
        "xtcp" => Some(XTCP),
        _ => None,
    }
}

/// The keys of a visitor plugin.
pub fn visitor_plugin_fields(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "virtual_net" => Some(&["type", "destinationIP"]),
        _ => None,
    }
}

/// One visitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VisitorConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub enabled: Option<bool>,
    pub transport: VisitorTransport,
    pub secret_key: Secret,
    pub server_user: String,
    pub server_name: String,
    pub bind_addr: String,
    /// < 0: no listener (plugin-only visitors).
    pub bind_port: i32,
    pub plugin: Option<VisitorPluginConfig>,
    // xtcp
    pub protocol: String,
    pub keep_tunnel_open: bool,
    pub max_retries_an_hour: i64,
    pub min_retry_interval: i64,
    pub fallback_to: String,
    pub fallback_timeout_ms: i64,
    pub nat_traversal: NatTraversal,
}

impl Default for VisitorConfig {
    fn default() -> Self {
        VisitorConfig {
            name: String::new(),
            kind: String::new(),
            enabled: None,
            transport: VisitorTransport::default(),
            secret_key: Secret::default(),
            server_user: String::new(),
            server_name: String::new(),
            bind_addr: "127.0.0.1".into(),
            bind_port: 0,
            plugin: None,
            protocol: String::new(),
            keep_tunnel_open: false,
            max_retries_an_hour: 0,
            min_retry_interval: 0,
            fallback_to: String::new(),
            fallback_timeout_ms: 0,
            nat_traversal: NatTraversal::default(),
        }
    }
}

impl VisitorConfig {
    pub(crate) fn complete(&mut self) {
        zero_default(&mut self.bind_addr, "127.0.0.1".into());
        if self.kind == "xtcp" {
            zero_default(&mut self.protocol, "quic".into());
            zero_default(&mut self.max_retries_an_hour, 8);
            zero_default(&mut self.min_retry_interval, 90);
            zero_default(&mut self.fallback_timeout_ms, 1000);
        }
    }
}

/// `[visitors.transport]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VisitorTransport {
    pub use_encryption: bool,
    pub use_compression: bool,
}

/// `[visitors.plugin]` (`virtual_net`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VisitorPluginConfig {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "destinationIP")]
    pub destination_ip: String,
}
