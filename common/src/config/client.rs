//! frpc's top-level config (frp `pkg/config/v1/client.go`).

use super::{AuthConfig, LogConfig, ProxyConfig, WebServerConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole frpc file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClientConfig {
    pub user: String,
    #[serde(rename = "clientID")]
    pub client_id: String,
    pub server_addr: String,
    pub server_port: u16,
    /// Exit on the first failed login instead of retrying.
    pub login_fail_exit: bool,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub web_server: WebServerConfig,
    pub transport: ClientTransport,
    pub udp_packet_size: i64,
    pub metadatas: BTreeMap<String, String>,
    /// Allowlist of proxy names to start; empty = all.
    pub start: Vec<String>,
    pub includes: Vec<String>,
    pub proxies: Vec<ProxyConfig>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            user: String::new(),
            client_id: String::new(),
            server_addr: "0.0.0.0".into(),
            server_port: 7000,
            login_fail_exit: true,
            auth: AuthConfig::default(),
            log: LogConfig::default(),
            web_server: WebServerConfig::default(),
            transport: ClientTransport::default(),
            udp_packet_size: 1500,
            metadatas: BTreeMap::new(),
            start: Vec::new(),
            includes: Vec::new(),
            proxies: Vec::new(),
        }
    }
}

impl ClientConfig {
    /// frp's `Complete()`: zero values mean "default".
    pub(crate) fn complete(&mut self) {
        let d = ClientConfig::default();
        if self.server_addr.is_empty() {
            self.server_addr = d.server_addr;
        }
        if self.server_port == 0 {
            self.server_port = d.server_port;
        }
        if self.udp_packet_size == 0 {
            self.udp_packet_size = d.udp_packet_size;
        }
        self.transport.complete();
        for p in &mut self.proxies {
            p.complete();
        }
    }

    /// Proxies to run: `enabled != false` and, when `start` is set, named there.
    pub fn active_proxies(&self) -> impl Iterator<Item = &ProxyConfig> {
        self.proxies
            .iter()
            .filter(|p| p.enabled.unwrap_or(true))
            .filter(|p| self.start.is_empty() || self.start.iter().any(|s| s == &p.name))
    }

    /// The wire name of a proxy: `user.name` when `user` is set (frp `pkg/naming`).
    pub fn wire_name(&self, name: &str) -> String {
        if self.user.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{}", self.user, name)
        }
    }
}

/// `transport.*` on frpc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClientTransport {
    /// tcp (kcp, quic, websocket, wss come later).
    pub protocol: String,
    /// v1 (v2 comes with the security issue).
    pub wire_protocol: String,
    pub dial_server_timeout: i64,
    pub dial_server_keepalive: i64,
    #[serde(rename = "connectServerLocalIP")]
    pub connect_server_local_ip: String,
    #[serde(rename = "proxyURL")]
    pub proxy_url: String,
    pub pool_count: i64,
    pub tcp_mux: bool,
    pub tcp_mux_keepalive_interval: i64,
    /// 0 = frp's default: 30 s without tcpMux, disabled (-1) with it.
    pub heartbeat_interval: i64,
    /// 0 = frp's default: 90 s without tcpMux, disabled (-1) with it.
    pub heartbeat_timeout: i64,
    pub tls: ClientTls,
}

impl Default for ClientTransport {
    fn default() -> Self {
        ClientTransport {
            protocol: "tcp".into(),
            wire_protocol: "v1".into(),
            dial_server_timeout: 10,
            dial_server_keepalive: 7200,
            connect_server_local_ip: String::new(),
            proxy_url: String::new(),
            pool_count: 1,
            tcp_mux: true,
            tcp_mux_keepalive_interval: 30,
            heartbeat_interval: 0,
            heartbeat_timeout: 0,
            tls: ClientTls::default(),
        }
    }
}

impl ClientTransport {
    fn complete(&mut self) {
        let d = ClientTransport::default();
        if self.protocol.is_empty() {
            self.protocol = d.protocol;
        }
        if self.wire_protocol.is_empty() {
            self.wire_protocol = d.wire_protocol;
        }
        if self.dial_server_timeout == 0 {
            self.dial_server_timeout = d.dial_server_timeout;
        }
        if self.dial_server_keepalive == 0 {
            self.dial_server_keepalive = d.dial_server_keepalive;
        }
        if self.pool_count <= 0 {
            self.pool_count = d.pool_count;
        }
        if self.tcp_mux_keepalive_interval == 0 {
            self.tcp_mux_keepalive_interval = d.tcp_mux_keepalive_interval;
        }
        let (hi, ht) = if self.tcp_mux { (-1, -1) } else { (30, 90) };
        if self.heartbeat_interval == 0 {
            self.heartbeat_interval = hi;
        }
        if self.heartbeat_timeout == 0 {
            self.heartbeat_timeout = ht;
        }
    }
}

/// `transport.tls.*` on frpc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClientTls {
    /// On by default since frp 0.50.
    pub enable: bool,
    /// true (default): plain ClientHello; false: send 0x17 first.
    #[serde(rename = "disableCustomTLSFirstByte")]
    pub disable_custom_tls_first_byte: bool,
    pub cert_file: String,
    pub key_file: String,
    pub trusted_ca_file: String,
    pub server_name: String,
}

impl Default for ClientTls {
    fn default() -> Self {
        ClientTls {
            enable: true,
            disable_custom_tls_first_byte: true,
            cert_file: String::new(),
            key_file: String::new(),
            trusted_ca_file: String::new(),
            server_name: String::new(),
        }
    }
}
