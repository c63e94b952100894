//! Validation after defaults are filled in (frp `pkg/config/v1/validation/*`). Pure functions
//! that return every problem found, not just the first.

use super::addr::{check_dial_host, listen_ip};
use super::files;
use super::load::Problem;
use super::plugin::{plugin_fields, PLUGIN_TYPES};
use super::proxy::{proxy_fields, PROXY_TYPES};
use super::types::{parse_bandwidth, ValueSource};
use super::visitor::VISITOR_TYPES;
use super::{ClientConfig, ServerConfig};
use std::collections::HashSet;
use std::path::Path;

const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];
const SCOPES: &[&str] = &["HeartBeats", "NewWorkConns"];
const PLUGIN_OPS: &[&str] = &[
    "Login",
    "NewProxy",
    "CloseProxy",
    "Ping",
    "NewWorkConn",
    "NewUserConn",
];

/// A server plugin's URL as frp builds it (`addr + path`, `http://` unless the address has a
/// scheme); an error says why frps could not call it.
pub fn plugin_url(addr: &str, path: &str) -> Result<hyper::Uri, String> {
    let mut url = format!("{addr}{path}");
    if !url.starts_with("http://") && !url.starts_with("https://") {
        url = format!("http://{url}");
    }
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL ({e})"))?;
    match uri.authority() {
        None => Err(format!("{url:?} has no host")),
        Some(a) if a.host().is_empty() => Err(format!("{url:?} has no host")),
        Some(a) if a.as_str().contains('@') => Err(format!(
            "{url:?}: user info in the address is not supported"
        )),
        Some(_) => Ok(uri),
    }
}

struct Out<'a> {
    file: &'a Path,
    v: Vec<Problem>,
    /// Whether certificate, key and CA files are opened and parsed. A reload does not: its
    /// global settings are not applied, and the admin API must not make frpc read files.
    read_files: bool,
}

impl Out<'_> {
    fn bad(&mut self, key: impl Into<String>, msg: impl Into<String>) {
        self.v.push(Problem::new(self.file, key, msg));
    }

    fn one_of(&mut self, key: &str, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            self.bad(
                key,
                format!("{value:?} is not one of {}", allowed.join(", ")),
            );
        }
    }

    /// A file the config points at must exist (certificates, keys, token files).
    fn file_exists(&mut self, key: &str, path: &str) {
        if !path.is_empty() && !Path::new(path).exists() {
            self.bad(key, format!("file {path} does not exist"));
        }
    }

    /// `<prefix>.certFile`, `keyFile` and `trustedCaFile` (`ca`: where the table has one): set
    /// together, each file holding what its key says, the key being the certificate's.
    fn tls_files(&mut self, prefix: &str, cert: &str, key: &str, ca: Option<&str>) {
        if cert.is_empty() != key.is_empty() {
            self.bad(prefix, "certFile and keyFile must be set together");
        }
        let check = |o: &mut Self, field: &str, r: Result<(), String>| {
            if let Err(e) = r {
                o.bad(format!("{prefix}.{field}"), e);
            }
        };
        if !self.read_files {
            return;
        }
        let certs = (!cert.is_empty()).then(|| files::certificates(cert));
        let pkey = (!key.is_empty()).then(|| files::private_key(key));
        match (certs, pkey) {
            (Some(Ok(c)), Some(Ok(k))) => check(self, "keyFile", files::pair(c, k, cert, key)),
            (c, k) => {
                if let Some(Err(e)) = c {
                    check(self, "certFile", Err(e));
                }
                if let Some(Err(e)) = k {
                    check(self, "keyFile", Err(e));
                }
            }
        }
        if let Some(ca) = ca.filter(|c| !c.is_empty()) {
            check(self, "trustedCaFile", files::certificates(ca).map(drop));
        }
    }

    /// `webServer.tls`: as frp, a present table needs both files (half of it served plain HTTP).
    fn web_server(&mut self, w: &super::WebServerConfig) {
        if let Some(tls) = &w.tls {
            if tls.cert_file.is_empty() && tls.key_file.is_empty() {
                self.bad(
                    "webServer.tls",
                    "certFile and keyFile are required when webServer.tls is set",
                );
            }
            self.tls_files("webServer.tls", &tls.cert_file, &tls.key_file, None);
        }
    }

    /// A listen address: an IP address or a host name that resolves (see `addr`).
    fn listen(&mut self, key: &str, host: &str) {
        if let Err(e) = listen_ip(host) {
            self.bad(key, e);
        }
    }

    /// A dial address: an IP address or a host name, without a port.
    fn dial(&mut self, key: &str, host: &str, port_key: &str) {
        if let Err(e) = check_dial_host(host, port_key) {
            self.bad(key, e);
        }
    }

    fn value_source(&mut self, key: &str, s: &ValueSource) {
        match s.kind.as_str() {
            "file" => {
                if s.file.path.is_empty() {
                    self.bad(
                        format!("{key}.file.path"),
                        "is required for a file token source",
                    );
                }
                self.file_exists(&format!("{key}.file.path"), &s.file.path);
            }
            "exec" => {
                if s.exec.command.is_empty() {
                    self.bad(
                        format!("{key}.exec.command"),
                        "is required for an exec token source",
                    );
                }
            }
            other => self.bad(
                format!("{key}.type"),
                format!("{other:?} is not one of file, exec"),
            ),
        }
    }
}

/// frpc's rules.
/// With `read_files` false (a reload) no certificate, key or CA file is read.
pub fn client(c: &ClientConfig, file: &Path, read_files: bool) -> Vec<Problem> {
    let mut o = Out {
        file,
        v: Vec::new(),
        read_files,
    };
    o.one_of("auth.method", &c.auth.method, &["token", "oidc"]);
    for (i, s) in c.auth.additional_scopes.iter().enumerate() {
        o.one_of(&format!("auth.additionalScopes[{i}]"), s, SCOPES);
    }
    if let Some(ts) = &c.auth.token_source {
        if !c.auth.token.is_empty() {
            o.bad(
                "auth.tokenSource",
                "cannot be used together with auth.token",
            );
        }
        o.value_source("auth.tokenSource", ts);
    }
    if c.auth.method == "oidc" && c.auth.oidc.token_source.is_none() {
        if c.auth.oidc.client_id.is_empty() {
            o.bad(
                "auth.oidc.clientID",
                "is required with auth.method = \"oidc\"",
            );
        }
        if c.auth.oidc.token_endpoint_url.is_empty() {
            o.bad(
                "auth.oidc.tokenEndpointURL",
                "is required with auth.method = \"oidc\"",
            );
        }
    }
    if o.read_files && !c.auth.oidc.trusted_ca_file.is_empty() {
        if let Err(e) = files::certificates(&c.auth.oidc.trusted_ca_file) {
            o.bad("auth.oidc.trustedCaFile", e);
        }
    }
    o.one_of("log.level", &c.log.level, LOG_LEVELS);
    o.dial("serverAddr", &c.server_addr, "serverPort");
    if !c.server_addrs.is_empty() {
        let d = ClientConfig::default();
        if c.server_addr != d.server_addr || c.server_port != d.server_port {
            o.bad(
                "serverAddrs",
                "cannot be used together with serverAddr or serverPort (which frps would \
                 come first?): list every frps as host:port in serverAddrs",
            );
        }
        for (i, a) in c.server_addrs.iter().enumerate() {
            match super::client::split_host_port(a) {
                Some((h, _)) => o.dial(&format!("serverAddrs[{i}]"), h, "the port after ':'"),
                None => o.bad(
                    format!("serverAddrs[{i}]"),
                    match a.rsplit_once(':').map(|(_, p)| p.parse::<u64>()) {
                        Some(Ok(p)) if p == 0 || p > 65535 => {
                            format!("{a:?}: port {p} is out of range (1-65535)")
                        }
                        _ => format!("{a:?} is not host:port (an IPv6 address as [addr]:port)"),
                    },
                ),
            }
        }
    }
    o.listen("webServer.addr", &c.web_server.addr);
    if !c.transport.connect_server_local_ip.is_empty() {
        o.listen(
            "transport.connectServerLocalIP",
            &c.transport.connect_server_local_ip,
        );
    }
    let t = &c.transport;
    o.one_of(
        "transport.protocol",
        &t.protocol,
        &["tcp", "kcp", "quic", "websocket", "wss"],
    );
    o.one_of("transport.wireProtocol", &t.wire_protocol, &["v1", "v2"]);
    if !c.dns_server.is_empty() {
        if let Err(e) = crate::dns::parse_server(&c.dns_server) {
            o.bad("dnsServer", e.to_string());
        }
    }
    if t.heartbeat_interval > 0
        && t.heartbeat_timeout > 0
        && t.heartbeat_timeout < t.heartbeat_interval
    {
        o.bad(
            "transport.heartbeatTimeout",
            "invalid heartbeatTimeout, heartbeatTimeout is less than heartbeatInterval",
        );
    }
    o.tls_files(
        "transport.tls",
        &t.tls.cert_file,
        &t.tls.key_file,
        Some(&t.tls.trusted_ca_file),
    );
    o.web_server(&c.web_server);
    for gate in c.feature_gates.keys() {
        o.one_of(&format!("featureGates.{gate}"), gate, &["VirtualNet"]);
    }
    if !c.virtual_net.address.is_empty()
        && !c.feature_gates.get("VirtualNet").copied().unwrap_or(false)
    {
        o.bad(
            "virtualNet.address",
            "needs featureGates = { VirtualNet = true }",
        );
    }

    let mut names = HashSet::new();
    for (i, p) in c.proxies.iter().enumerate() {
        let k = |f: &str| format!("proxies[{i}].{f}");
        if p.name.is_empty() {
            o.bad(k("name"), "name should not be empty");
        } else if !names.insert(p.name.as_str()) {
            o.bad(k("name"), format!("proxy name [{}] is duplicated", p.name));
        }
        if proxy_fields(&p.kind).is_none() {
            o.bad(
                k("type"),
                format!(
                    "unknown proxy type {:?}, expected one of {}",
                    p.kind,
                    PROXY_TYPES.join(", ")
                ),
            );
        }
        o.dial(&k("localIP"), &p.local_ip, "localPort");
        o.one_of(
            &k("transport.bandwidthLimitMode"),
            &p.transport.bandwidth_limit_mode,
            &["client", "server"],
        );
        if let Err(e) = parse_bandwidth(&p.transport.bandwidth_limit) {
            o.bad(k("transport.bandwidthLimit"), e);
        }
        o.one_of(
            &k("transport.proxyProtocolVersion"),
            &p.transport.proxy_protocol_version,
            &["", "v1", "v2"],
        );
        o.one_of(
            &k("healthCheck.type"),
            &p.health_check.kind,
            &["", "tcp", "http"],
        );
        if p.health_check.kind == "http" && p.health_check.path.is_empty() {
            o.bad(
                k("healthCheck.path"),
                "is required for an http health check",
            );
        }
        if matches!(p.kind.as_str(), "http" | "https" | "tcpmux")
            && p.custom_domains.is_empty()
            && p.subdomain.is_empty()
        {
            o.bad(
                k("customDomains"),
                "custom domains and subdomain should set at least one of them",
            );
        }
        if p.kind == "tcpmux" {
            o.one_of(&k("multiplexer"), &p.multiplexer, &["httpconnect"]);
        }
        if let Some(pl) = &p.plugin {
            if plugin_fields(&pl.kind).is_none() {
                o.bad(
                    k("plugin.type"),
                    format!(
                        "unknown plugin type {:?}, expected one of {}",
                        pl.kind,
                        PLUGIN_TYPES.join(", ")
                    ),
                );
            }
            let need = |o: &mut Out<'_>, f: &str, v: &str| {
                if v.is_empty() {
                    o.bad(
                        k(&format!("plugin.{f}")),
                        format!("is required for plugin {}", pl.kind),
                    );
                }
            };
            match pl.kind.as_str() {
                "unix_domain_socket" => need(&mut o, "unixPath", &pl.unix_path),
                "static_file" => need(&mut o, "localPath", &pl.local_path),
                "http2https" | "http2http" | "https2http" | "https2https" | "tls2raw" => {
                    need(&mut o, "localAddr", &pl.local_addr)
                }
                _ => {}
            }
        }
    }
    for (i, v) in c.visitors.iter().enumerate() {
        let k = |f: &str| format!("visitors[{i}].{f}");
        if v.name.is_empty() {
            o.bad(k("name"), "name should not be empty");
        } else if !names.insert(v.name.as_str()) {
            o.bad(
                k("name"),
                format!("visitor name [{}] is duplicated", v.name),
            );
        }
        if !VISITOR_TYPES.contains(&v.kind.as_str()) {
            o.bad(
                k("type"),
                format!(
                    "unknown visitor type {:?}, expected one of {}",
                    v.kind,
                    VISITOR_TYPES.join(", ")
                ),
            );
        }
        o.listen(&k("bindAddr"), &v.bind_addr);
        if v.server_name.is_empty() {
            o.bad(k("serverName"), "serverName is required");
        }
        if v.bind_port == 0 {
            o.bad(
                k("bindPort"),
                "bindPort is required (a negative value means no listener)",
            );
        }
        if v.bind_port > 65535 {
            o.bad(k("bindPort"), "bindPort should be at most 65535");
        }
        if v.kind == "xtcp" {
            o.one_of(&k("protocol"), &v.protocol, &["quic", "kcp"]);
        }
    }
    o.v
}

/// frps's rules.
pub fn server(c: &ServerConfig, file: &Path) -> Vec<Problem> {
    let mut o = Out {
        file,
        v: Vec::new(),
        read_files: true,
    };
    o.one_of("auth.method", &c.auth.method, &["token", "oidc"]);
    for (i, s) in c.auth.additional_scopes.iter().enumerate() {
        o.one_of(&format!("auth.additionalScopes[{i}]"), s, SCOPES);
    }
    if let Some(ts) = &c.auth.token_source {
        if !c.auth.token.is_empty() {
            o.bad(
                "auth.tokenSource",
                "cannot be used together with auth.token",
            );
        }
        o.value_source("auth.tokenSource", ts);
    }
    o.one_of("log.level", &c.log.level, LOG_LEVELS);
    o.listen("bindAddr", &c.bind_addr);
    o.listen("proxyBindAddr", &c.proxy_bind_addr);
    o.listen("webServer.addr", &c.web_server.addr);
    let t = &c.transport.tls;
    o.tls_files(
        "transport.tls",
        &t.cert_file,
        &t.key_file,
        Some(&t.trusted_ca_file),
    );
    o.web_server(&c.web_server);
    for (i, a) in c.proxy_protocol.trusted_addrs.iter().enumerate() {
        if let Err(e) = a.parse::<crate::transport::proxy_protocol::Cidr>() {
            o.bad(format!("proxyProtocol.trustedAddrs[{i}]"), e);
        }
    }
    for (i, r) in c.allow_ports.iter().enumerate() {
        if r.single == 0 && (r.start == 0 || r.end < r.start) {
            o.bad(
                format!("allowPorts[{i}]"),
                "expected { single = N } or { start = A, end = B } with 0 < A <= B",
            );
        }
    }
    for (i, p) in c.http_plugins.iter().enumerate() {
        if p.name.is_empty() {
            o.bad(format!("httpPlugins[{i}].name"), "is required");
        }
        if p.addr.is_empty() {
            o.bad(format!("httpPlugins[{i}].addr"), "is required");
        } else if let Err(e) = plugin_url(&p.addr, &p.path) {
            o.bad(format!("httpPlugins[{i}].addr"), e);
        }
        for (j, op) in p.ops.iter().enumerate() {
            o.one_of(&format!("httpPlugins[{i}].ops[{j}]"), op, PLUGIN_OPS);
        }
    }
    o.v
}
