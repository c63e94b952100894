//! `[proxies.plugin]` (frp `pkg/config/v1/proxy_plugin.go`; frp-protocol.md §17): one union
//! struct; [`plugin_fields`] lists each plugin type's keys.

use super::types::{HeaderOperations, Secret};
use serde::{Deserialize, Serialize};

/// Every client plugin type frp has.
pub const PLUGIN_TYPES: &[&str] = &[
    "http_proxy",
    "socks5",
    "static_file",
    "unix_domain_socket",
    "http2https",
    "http2http",
    "https2http",
    "https2https",
    "tls2raw",
    "virtual_net",
];

/// The keys valid for a plugin of `kind`; `None` for an unknown type.
pub fn plugin_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "http_proxy" => &["type", "httpUser", "httpPassword"],
        "socks5" => &["type", "username", "password"],
        "static_file" => &[
            "type",
            "localPath",
            "stripPrefix",
            "httpUser",
            "httpPassword",
        ],
        "unix_domain_socket" => &["type", "unixPath"],
        "http2https" | "http2http" => &["type", "localAddr", "hostHeaderRewrite", "requestHeaders"],
        "https2http" | "https2https" => &[
            "type",
            "localAddr",
            "crtPath",
            "keyPath",
            "hostHeaderRewrite",
            "requestHeaders",
            "enableHTTP2",
        ],
        "tls2raw" => &["type", "localAddr", "crtPath", "keyPath"],
        "virtual_net" => &["type"],
        _ => return None,
    })
}

/// One client plugin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PluginConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub http_user: String,
    pub http_password: Secret,
    pub username: String,
    pub password: Secret,
    pub local_path: String,
    pub strip_prefix: String,
    pub unix_path: String,
    pub local_addr: String,
    pub host_header_rewrite: String,
    pub request_headers: HeaderOperations,
    pub crt_path: String,
    pub key_path: String,
    /// https2http / https2https; frp's default is true.
    #[serde(rename = "enableHTTP2")]
    pub enable_http2: Option<bool>,
}

impl PluginConfig {
    pub(crate) fn complete(&mut self) {
        if matches!(self.kind.as_str(), "https2http" | "https2https") && self.enable_http2.is_none()
        {
            self.enable_http2 = Some(true);
        }
    }
}
