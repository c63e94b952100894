//! frpc's config (frp `pkg/config/v1/client.go`, `common.go`; frp-protocol.md §14.2).

use super::types::{zero_default, LogConfig, QuicConfig, Secret, ValueSource, WebServerConfig};
use super::{ProxyConfig, VisitorConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole frpc file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClientConfig {
    /// Accepted and ignored, as frp's `APIMetadata`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    pub user: String,
    #[serde(rename = "clientID")]
    pub client_id: String,
    pub server_addr: String,
    pub server_port: u16,
    /// frp-rs: several frps as `host:port`, tried in order; frpc logs in to the next when one
    /// is down and registers its proxies there. Not together with `serverAddr`/`serverPort`.
    pub server_addrs: Vec<String>,
    pub nat_hole_stun_server: String,
    pub dns_server: String,
    /// Exit on the first failed login instead of retrying.
    pub login_fail_exit: bool,
    /// Allowlist of proxy and visitor names to start; empty = all.
    pub start: Vec<String>,
    pub log: LogConfig,
    pub web_server: WebServerConfig,
    pub transport: ClientTransport,
    pub virtual_net: VirtualNetConfig,
    pub feature_gates: BTreeMap<String, bool>,
    pub udp_packet_size: i64,
    pub metadatas: BTreeMap<String, String>,
    pub includes: Vec<String>,
    pub store: StoreConfig,
    pub auth: ClientAuth,
    pub proxies: Vec<ProxyConfig>,
    pub visitors: Vec<VisitorConfig>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            version: String::new(),
            user: String::new(),
            client_id: String::new(),
            server_addr: "0.0.0.0".into(),
            server_port: 7000,
            server_addrs: Vec::new(),
            nat_hole_stun_server: "stun.easyvoip.com:3478".into(),
            dns_server: String::new(),
            login_fail_exit: true,
            start: Vec::new(),
            log: LogConfig::default(),
            web_server: WebServerConfig::default(),
            transport: ClientTransport::default(),
            virtual_net: VirtualNetConfig::default(),
            feature_gates: BTreeMap::new(),
            udp_packet_size: 1500,
            metadatas: BTreeMap::new(),
            includes: Vec::new(),
            store: StoreConfig::default(),
            auth: ClientAuth::default(),
            proxies: Vec::new(),
            visitors: Vec::new(),
        }
    }
}

impl ClientConfig {
    /// frp's `Complete()`: zero values mean "default".
    pub(crate) fn complete(&mut self) {
        let d = ClientConfig::default();
        zero_default(&mut self.server_addr, d.server_addr);
        zero_default(&mut self.server_port, d.server_port);
        zero_default(&mut self.nat_hole_stun_server, d.nat_hole_stun_server);
        zero_default(&mut self.udp_packet_size, d.udp_packet_size);
        zero_default(&mut self.web_server.addr, "127.0.0.1".into());
        self.log.complete();
        self.auth.complete();
        self.transport.complete();
        for p in &mut self.proxies {
            p.complete();
        }
        for v in &mut self.visitors {
            v.complete();
        }
    }

    /// The frps to try, in order: `serverAddrs`, else `serverAddr:serverPort`. An entry
    /// without a port (refused by the validation) gets `serverPort`.
    pub fn servers(&self) -> Vec<(String, u16)> {
        if self.server_addrs.is_empty() {
            return vec![(self.server_addr.clone(), self.server_port)];
        }
        self.server_addrs
            .iter()
            .map(|a| match split_host_port(a) {
                Some((h, p)) => (h.to_owned(), p),
                None => (a.clone(), self.server_port),
            })
            .collect()
    }

    /// Proxies to run: `enabled != false` and, when `start` is set, named there.
    pub fn active_proxies(&self) -> impl Iterator<Item = &ProxyConfig> {
        self.proxies
            .iter()
            .filter(|p| p.enabled.unwrap_or(true))
            .filter(|p| self.start.is_empty() || self.start.contains(&p.name))
    }

    /// Visitors to run, filtered as proxies are.
    pub fn active_visitors(&self) -> impl Iterator<Item = &VisitorConfig> {
        self.visitors
            .iter()
            .filter(|v| v.enabled.unwrap_or(true))
            .filter(|v| self.start.is_empty() || self.start.contains(&v.name))
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

impl super::types::LogConfig {
    pub(crate) fn complete(&mut self) {
        let d = LogConfig::default();
        zero_default(&mut self.to, d.to);
        zero_default(&mut self.level, d.level);
        zero_default(&mut self.max_days, d.max_days);
    }
}

/// `auth.*` on frpc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClientAuth {
    /// "token" or "oidc".
    pub method: String,
    /// `HeartBeats`, `NewWorkConns`.
    pub additional_scopes: Vec<String>,
    pub token: Secret,
    pub token_source: Option<ValueSource>,
    pub oidc: ClientOidc,
}

impl Default for ClientAuth {
    fn default() -> Self {
        ClientAuth {
            method: "token".into(),
            additional_scopes: Vec::new(),
            token: Secret::default(),
            token_source: None,
            oidc: ClientOidc::default(),
        }
    }
}

impl ClientAuth {
    fn complete(&mut self) {
        zero_default(&mut self.method, "token".into());
    }

    /// Whether an additional scope (`HeartBeats`, `NewWorkConns`) is on.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.additional_scopes.iter().any(|s| s == scope)
    }
}

/// `auth.oidc.*` on frpc.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClientOidc {
    #[serde(rename = "clientID")]
    pub client_id: String,
    pub client_secret: Secret,
    pub audience: String,
    pub scope: String,
    #[serde(rename = "tokenEndpointURL")]
    pub token_endpoint_url: String,
    pub additional_endpoint_params: BTreeMap<String, String>,
    pub trusted_ca_file: String,
    pub insecure_skip_verify: bool,
    #[serde(rename = "proxyURL")]
    pub proxy_url: String,
    pub token_source: Option<ValueSource>,
    /// The token read from `tokenSource` at load time (not a config key).
    #[serde(skip)]
    pub source_token: Option<Secret>,
}

/// `transport.*` on frpc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClientTransport {
    /// tcp, kcp, quic, websocket, wss.
    pub protocol: String,
    /// v1 or v2.
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
    pub quic: QuicConfig,
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
            quic: QuicConfig::default(),
            heartbeat_interval: 0,
            heartbeat_timeout: 0,
            tls: ClientTls::default(),
        }
    }
}

impl ClientTransport {
    fn complete(&mut self) {
        let d = ClientTransport::default();
        zero_default(&mut self.protocol, d.protocol);
        zero_default(&mut self.wire_protocol, d.wire_protocol);
        zero_default(&mut self.dial_server_timeout, d.dial_server_timeout);
        zero_default(&mut self.dial_server_keepalive, d.dial_server_keepalive);
        // frp defaults this to the `http_proxy` environment variable; frp-rs cannot connect
        // through a proxy yet, so the loader warns about the variable instead (see `load`).
        if self.pool_count <= 0 {
            self.pool_count = d.pool_count;
        }
        zero_default(
            &mut self.tcp_mux_keepalive_interval,
            d.tcp_mux_keepalive_interval,
        );
        self.quic.complete();
        let (hi, ht) = if self.tcp_mux { (-1, -1) } else { (30, 90) };
        zero_default(&mut self.heartbeat_interval, hi);
        zero_default(&mut self.heartbeat_timeout, ht);
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

/// `virtualNet.*` (needs `featureGates = { VirtualNet = true }`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VirtualNetConfig {
    /// CIDR.
    pub address: String,
}

/// `store.*`: persistent proxies/visitors added through the admin API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StoreConfig {
    pub path: String,
}

/// `host:port` or `[v6]:port`.
pub(crate) fn split_host_port(a: &str) -> Option<(&str, u16)> {
    let (h, p) = a.rsplit_once(':')?;
    let port = p.parse().ok().filter(|p| *p != 0)?;
    let h = match h.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']')?,
        None if h.contains(':') => return None,
        None => h,
    };
    (!h.is_empty()).then_some((h, port))
}
