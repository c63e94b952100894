//! `[[proxies]]` (frp `pkg/config/v1/proxy.go`; frp-protocol.md §14.4).
//!
//! One union struct for every proxy type; [`proxy_fields`] lists the keys Go's struct for each
//! type has, and the decoder treats any other key as unknown, as frp does.

use super::plugin::PluginConfig;
use super::types::{zero_default, HeaderOperations, NameValue, Secret};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every proxy type frp has.
pub const PROXY_TYPES: &[&str] = &[
    "tcp", "udp", "http", "https", "tcpmux", "stcp", "sudp", "xtcp",
];

macro_rules! fields {
    ($($extra:literal),*) => {{
        const F: &[&str] = &concat_fields!($($extra),*);
        F
    }};
}

macro_rules! concat_fields {
    ($($extra:literal),*) => {
        ["name", "type", "enabled", "annotations", "metadatas", "localIP", "localPort", "transport", "loadBalancer",
         "healthCheck", "plugin" $(, $extra)*]
    };
}

/// The keys valid for a proxy of `kind`; `None` for an unknown type.
pub fn proxy_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "tcp" | "udp" => fields!("remotePort"),
        "http" => fields!(
            "customDomains",
            "subdomain",
            "locations",
            "httpUser",
            "httpPassword",
            "hostHeaderRewrite",
            "requestHeaders",
            "responseHeaders",
            "routeByHTTPUser"
        ),
        "https" => fields!("customDomains", "subdomain"),
        "tcpmux" => fields!(
            "customDomains",
            "subdomain",
            "httpUser",
            "httpPassword",
            "routeByHTTPUser",
            "multiplexer"
        ),
        "stcp" | "sudp" => fields!("secretKey", "allowUsers"),
        "xtcp" => fields!("secretKey", "allowUsers", "natTraversal"),
        _ => return None,
    })
}

/// One proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProxyConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// nil = on.
    pub enabled: Option<bool>,
    pub annotations: BTreeMap<String, String>,
    pub metadatas: BTreeMap<String, String>,
    #[serde(rename = "localIP")]
    pub local_ip: String,
    pub local_port: u16,
    pub transport: ProxyTransport,
    pub load_balancer: LoadBalancer,
    pub health_check: HealthCheck,
    pub plugin: Option<PluginConfig>,
    // tcp, udp
    /// 0 = frps picks.
    pub remote_port: u16,
    // http, https, tcpmux
    pub custom_domains: Vec<String>,
    pub subdomain: String,
    pub locations: Vec<String>,
    pub http_user: String,
    pub http_password: Secret,
    pub host_header_rewrite: String,
    pub request_headers: HeaderOperations,
    pub response_headers: HeaderOperations,
    #[serde(rename = "routeByHTTPUser")]
    pub route_by_http_user: String,
    /// tcpmux: "httpconnect".
    pub multiplexer: String,
    // stcp, sudp, xtcp
    pub secret_key: Secret,
    pub allow_users: Vec<String>,
    pub nat_traversal: NatTraversal,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            name: String::new(),
            kind: String::new(),
            enabled: None,
            annotations: BTreeMap::new(),
            metadatas: BTreeMap::new(),
            local_ip: "127.0.0.1".into(),
            local_port: 0,
            transport: ProxyTransport::default(),
            load_balancer: LoadBalancer::default(),
            health_check: HealthCheck::default(),
            plugin: None,
            remote_port: 0,
            custom_domains: Vec::new(),
            subdomain: String::new(),
            locations: Vec::new(),
            http_user: String::new(),
            http_password: Secret::default(),
            host_header_rewrite: String::new(),
            request_headers: HeaderOperations::default(),
            response_headers: HeaderOperations::default(),
            route_by_http_user: String::new(),
            multiplexer: String::new(),
            secret_key: Secret::default(),
            allow_users: Vec::new(),
            nat_traversal: NatTraversal::default(),
        }
    }
}

impl ProxyConfig {
    pub(crate) fn complete(&mut self) {
        zero_default(&mut self.local_ip, "127.0.0.1".into());
        zero_default(&mut self.transport.bandwidth_limit_mode, "client".into());
        if !self.health_check.kind.is_empty() {
            let h = &mut self.health_check;
            zero_default(&mut h.timeout_seconds, 3);
            zero_default(&mut h.max_failed, 1);
            zero_default(&mut h.interval_seconds, 10);
        }
        if self.kind == "tcpmux" {
            zero_default(&mut self.multiplexer, "httpconnect".into());
        }
        if let Some(p) = &mut self.plugin {
            p.complete();
        }
    }
}

/// `[proxies.transport]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProxyTransport {
    pub use_encryption: bool,
    pub use_compression: bool,
    /// "1MB", "512KB"; "" = unlimited.
    pub bandwidth_limit: String,
    /// "client" or "server".
    pub bandwidth_limit_mode: String,
    /// "", "v1" or "v2".
    pub proxy_protocol_version: String,
}

impl Default for ProxyTransport {
    fn default() -> Self {
        ProxyTransport {
            use_encryption: false,
            use_compression: false,
            bandwidth_limit: String::new(),
            bandwidth_limit_mode: "client".into(),
            proxy_protocol_version: String::new(),
        }
    }
}

/// `[proxies.loadBalancer]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LoadBalancer {
    pub group: String,
    pub group_key: Secret,
}

/// `[proxies.healthCheck]` (frp-protocol.md §11). Defaults apply only when `type` is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HealthCheck {
    /// "", "tcp" or "http".
    #[serde(rename = "type")]
    pub kind: String,
    pub timeout_seconds: i64,
    pub max_failed: i64,
    pub interval_seconds: i64,
    pub path: String,
    pub http_headers: Vec<NameValue>,
}

/// `[proxies.natTraversal]` / `[visitors.natTraversal]` (xtcp).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NatTraversal {
    pub disable_assisted_addrs: bool,
}
