//! frps's config (frp `pkg/config/v1/server.go`).

use super::{AuthConfig, LogConfig, WebServerConfig};
use serde::{Deserialize, Serialize};

/// The whole frps file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServerConfig {
    pub bind_addr: String,
    pub bind_port: u16,
    /// Where proxies listen; defaults to `bindAddr`.
    pub proxy_bind_addr: String,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub web_server: WebServerConfig,
    pub transport: ServerTransport,
    /// Send real errors to frpc (true) or a summary.
    pub detailed_errors_to_client: bool,
    /// 0 = unlimited.
    pub max_ports_per_client: i64,
    /// Seconds to wait for a work connection for a user.
    pub user_conn_timeout: i64,
    pub udp_packet_size: i64,
    pub allow_ports: Vec<PortsRange>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind_addr: "0.0.0.0".into(),
            bind_port: 7000,
            proxy_bind_addr: String::new(),
            auth: AuthConfig::default(),
            log: LogConfig::default(),
            web_server: WebServerConfig::default(),
            transport: ServerTransport::default(),
            detailed_errors_to_client: true,
            max_ports_per_client: 0,
            user_conn_timeout: 10,
            udp_packet_size: 1500,
            allow_ports: Vec::new(),
        }
    }
}

impl ServerConfig {
    pub(crate) fn complete(&mut self) {
        let d = ServerConfig::default();
        if self.bind_addr.is_empty() {
            self.bind_addr = d.bind_addr;
        }
        if self.bind_port == 0 {
            self.bind_port = d.bind_port;
        }
        if self.proxy_bind_addr.is_empty() {
            self.proxy_bind_addr = self.bind_addr.clone();
        }
        if self.user_conn_timeout == 0 {
            self.user_conn_timeout = d.user_conn_timeout;
        }
        if self.udp_packet_size == 0 {
            self.udp_packet_size = d.udp_packet_size;
        }
        let t = &mut self.transport;
        let dt = ServerTransport::default();
        if t.max_pool_count == 0 {
            t.max_pool_count = dt.max_pool_count;
        }
        if t.tcp_mux_keepalive_interval == 0 {
            t.tcp_mux_keepalive_interval = dt.tcp_mux_keepalive_interval;
        }
        if t.tcp_keepalive == 0 {
            t.tcp_keepalive = dt.tcp_keepalive;
        }
        if t.heartbeat_timeout == 0 {
            t.heartbeat_timeout = if t.tcp_mux { -1 } else { 90 };
        }
        if !t.tls.trusted_ca_file.is_empty() {
            t.tls.force = true;
        }
    }

    /// Whether `port` may be used by a proxy (`allowPorts`; empty = any).
    pub fn port_allowed(&self, port: u16) -> bool {
        self.allow_ports.is_empty() || self.allow_ports.iter().any(|r| r.contains(port))
    }
}

/// `transport.*` on frps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServerTransport {
    pub tcp_mux: bool,
    pub tcp_mux_keepalive_interval: i64,
    pub tcp_keepalive: i64,
    /// Cap on the pool size a client asks for.
    pub max_pool_count: i64,
    /// 0 = frp's default: 90 s without tcpMux, disabled with it.
    pub heartbeat_timeout: i64,
    pub tls: ServerTls,
}

impl Default for ServerTransport {
    fn default() -> Self {
        ServerTransport {
            tcp_mux: true,
            tcp_mux_keepalive_interval: 30,
            tcp_keepalive: 7200,
            max_pool_count: 5,
            heartbeat_timeout: 0,
            tls: ServerTls::default(),
        }
    }
}

/// `transport.tls.*` on frps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServerTls {
    /// Refuse plain (non-TLS) clients.
    pub force: bool,
    pub cert_file: String,
    pub key_file: String,
    pub trusted_ca_file: String,
}

/// One `allowPorts` entry: `{ start = 2000, end = 3000 }` or `{ single = 3001 }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortsRange {
    pub start: u16,
    pub end: u16,
    pub single: u16,
}

impl PortsRange {
    pub fn contains(&self, port: u16) -> bool {
        if self.single != 0 {
            port == self.single
        } else {
            self.start <= port && port <= self.end
        }
    }

    /// Every port in the range.
    pub fn ports(&self) -> std::ops::RangeInclusive<u16> {
        if self.single != 0 {
            self.single..=self.single
        } else {
            self.start..=self.end
        }
    }
}
