//! frps's config (frp `pkg/config/v1/server.go`; frp-protocol.md §14.3).

use super::types::{zero_default, LogConfig, QuicConfig, Secret, ValueSource, WebServerConfig};
use serde::{Deserialize, Serialize};

/// The whole frps file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServerConfig {
    /// Accepted and ignored, as frp's `APIMetadata`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    pub auth: ServerAuth,
    pub bind_addr: String,
    pub bind_port: u16,
    /// UDP port for KCP; 0 = off.
    pub kcp_bind_port: u16,
    /// UDP port for QUIC; 0 = off.
    pub quic_bind_port: u16,
    /// Where proxies listen; defaults to `bindAddr`.
    pub proxy_bind_addr: String,
    #[serde(rename = "vhostHTTPPort")]
    pub vhost_http_port: u16,
    /// Seconds.
    #[serde(rename = "vhostHTTPTimeout")]
    pub vhost_http_timeout: i64,
    #[serde(rename = "vhostHTTPSPort")]
    pub vhost_https_port: u16,
    #[serde(rename = "tcpmuxHTTPConnectPort")]
    pub tcpmux_http_connect_port: u16,
    pub tcpmux_passthrough: bool,
    pub sub_domain_host: String,
    pub custom404_page: String,
    pub ssh_tunnel_gateway: SshTunnelGateway,
    pub web_server: WebServerConfig,
    pub enable_prometheus: bool,
    pub log: LogConfig,
    pub transport: ServerTransport,
    /// Send real errors to frpc (true) or a summary.
    pub detailed_errors_to_client: bool,
    /// 0 = unlimited.
    pub max_ports_per_client: i64,
    /// Seconds to wait for a work connection for a user.
    pub user_conn_timeout: i64,
    pub udp_packet_size: i64,
    pub nathole_analysis_data_reserve_hours: i64,
    pub allow_ports: Vec<PortsRange>,
    pub http_plugins: Vec<HttpPluginOptions>,
    /// frp-rs: PROXY protocol from load balancers in front of `bindPort` and the vhost ports.
    pub proxy_protocol: ProxyProtocolConfig,
}

/// `proxyProtocol.*` (frp-rs; frp has no such key): which senders' PROXY protocol v1/v2
/// headers frps believes. Empty (the default): off, nothing is read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProxyProtocolConfig {
    /// Addresses or CIDR blocks (`10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`). A connection
    /// from one of them must start with a header, whose source address frps then uses; a
    /// header from any other address is refused.
    pub trusted_addrs: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            version: String::new(),
            auth: ServerAuth::default(),
            bind_addr: "0.0.0.0".into(),
            bind_port: 7000,
            kcp_bind_port: 0,
            quic_bind_port: 0,
            proxy_bind_addr: String::new(),
            vhost_http_port: 0,
            vhost_http_timeout: 60,
            vhost_https_port: 0,
            tcpmux_http_connect_port: 0,
            tcpmux_passthrough: false,
            sub_domain_host: String::new(),
            custom404_page: String::new(),
            ssh_tunnel_gateway: SshTunnelGateway::default(),
            web_server: WebServerConfig::default(),
            enable_prometheus: false,
            log: LogConfig::default(),
            transport: ServerTransport::default(),
            detailed_errors_to_client: true,
            max_ports_per_client: 0,
            user_conn_timeout: 10,
            udp_packet_size: 1500,
            nathole_analysis_data_reserve_hours: 168,
            allow_ports: Vec::new(),
            http_plugins: Vec::new(),
            proxy_protocol: ProxyProtocolConfig::default(),
        }
    }
}

impl ServerConfig {
    pub(crate) fn complete(&mut self) {
        let d = ServerConfig::default();
        zero_default(&mut self.bind_addr, d.bind_addr);
        zero_default(&mut self.bind_port, d.bind_port);
        if self.proxy_bind_addr.is_empty() {
            self.proxy_bind_addr = self.bind_addr.clone();
        }
        zero_default(&mut self.vhost_http_timeout, d.vhost_http_timeout);
        zero_default(&mut self.user_conn_timeout, d.user_conn_timeout);
        zero_default(&mut self.udp_packet_size, d.udp_packet_size);
        zero_default(
            &mut self.nathole_analysis_data_reserve_hours,
            d.nathole_analysis_data_reserve_hours,
        );
        zero_default(&mut self.web_server.addr, "127.0.0.1".into());
        zero_default(&mut self.auth.method, "token".into());
        zero_default(
            &mut self.ssh_tunnel_gateway.auto_gen_private_key_path,
            "./.autogen_ssh_key".into(),
        );
        self.log.complete();
        let t = &mut self.transport;
        let dt = ServerTransport::default();
        zero_default(&mut t.max_pool_count, dt.max_pool_count);
        zero_default(
            &mut t.tcp_mux_keepalive_interval,
            dt.tcp_mux_keepalive_interval,
        );
        zero_default(&mut t.tcp_keepalive, dt.tcp_keepalive);
        t.quic.complete();
        if t.heartbeat_timeout == 0 {
            t.heartbeat_timeout = if t.tcp_mux { -1 } else { 90 };
        }
        if !t.tls.trusted_ca_file.is_empty() {
            t.tls.force = true;
        }
        for p in &mut self.http_plugins {
            zero_default(&mut p.path, "/".into());
        }
    }

    /// Whether `port` may be used by a proxy (`allowPorts`; empty = any).
    pub fn port_allowed(&self, port: u16) -> bool {
        self.allow_ports.is_empty() || self.allow_ports.iter().any(|r| r.contains(port))
    }
}

/// `auth.*` on frps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServerAuth {
    pub method: String,
    pub additional_scopes: Vec<String>,
    pub token: Secret,
    pub token_source: Option<ValueSource>,
    pub oidc: ServerOidc,
}

impl Default for ServerAuth {
    fn default() -> Self {
        ServerAuth {
            method: "token".into(),
            additional_scopes: Vec::new(),
            token: Secret::default(),
            token_source: None,
            oidc: ServerOidc::default(),
        }
    }
}

impl ServerAuth {
    /// Whether an additional scope (`HeartBeats`, `NewWorkConns`) is on.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.additional_scopes.iter().any(|s| s == scope)
    }
}

/// `auth.oidc.*` on frps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServerOidc {
    pub issuer: String,
    pub audience: String,
    pub skip_expiry_check: bool,
    pub skip_issuer_check: bool,
}

/// `sshTunnelGateway.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SshTunnelGateway {
    pub bind_port: u16,
    pub private_key_file: String,
    pub auto_gen_private_key_path: String,
    pub authorized_keys_file: String,
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
    pub quic: QuicConfig,
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
            quic: QuicConfig::default(),
            tls: ServerTls::default(),
        }
    }
}

/// `transport.tls.*` on frps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServerTls {
    /// Refuse plain (non-TLS) clients; forced on by `trustedCaFile`.
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

/// One `[[httpPlugins]]` entry (server plugin over HTTP RPC).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpPluginOptions {
    pub name: String,
    pub addr: String,
    pub path: String,
    pub ops: Vec<String>,
    pub tls_verify: bool,
}
