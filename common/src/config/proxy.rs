//! `[[proxies]]` entries (frp `pkg/config/v1/proxy.go`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One proxy. Type-specific keys are flat here for now; the configuration issue turns this
/// into a `type`-tagged enum.
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
    /// tcp/udp: 0 = frps picks.
    pub remote_port: u16,
    pub transport: ProxyTransport,
    pub load_balancer: LoadBalancer,
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
            remote_port: 0,
            transport: ProxyTransport::default(),
            load_balancer: LoadBalancer::default(),
        }
    }
}

impl ProxyConfig {
    pub(crate) fn complete(&mut self) {
        if self.local_ip.is_empty() {
            self.local_ip = "127.0.0.1".into();
        }
        if self.transport.bandwidth_limit_mode.is_empty() {
            self.transport.bandwidth_limit_mode = "client".into();
        }
    }
}

/// `[proxies.transport]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProxyTransport {
    pub use_encryption: bool,
    pub use_compression: bool,
    pub bandwidth_limit: String,
    pub bandwidth_limit_mode: String,
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
    pub group_key: String,
}
