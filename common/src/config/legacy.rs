//! frp's deprecated INI configs (frp `pkg/config/legacy/*`): detected by a `[common]` section,
//! converted into the v1 shape (as a JSON value) and then decoded like any v1 file. Unknown INI
//! keys are ignored, as frp's legacy loader does.

use super::template::parse_number_range;
use serde_json::{json, Map, Value};

/// Which binary the file is for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Side {
    Client,
    Server,
}

/// A conversion error with its line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IniError {
    pub(crate) line: usize,
    pub(crate) msg: String,
}

struct Section {
    name: String,
    line: usize,
    keys: Vec<(String, String, usize)>,
}

impl Section {
    fn get(&self, k: &str) -> Option<&str> {
        self.keys
            .iter()
            .rev()
            .find(|(key, _, _)| key == k)
            .map(|(_, v, _)| v.as_str())
    }
    fn line_of(&self, k: &str) -> usize {
        self.keys
            .iter()
            .find(|(key, _, _)| key == k)
            .map(|(_, _, l)| *l)
            .unwrap_or(self.line)
    }
}

fn parse_ini(text: &str) -> Option<Vec<Section>> {
    let mut out: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if l.starts_with('[') && l.ends_with(']') {
            out.push(Section {
                name: l[1..l.len() - 1].trim().to_owned(),
                line: i + 1,
                keys: Vec::new(),
            });
            continue;
        }
        let sec = out.last_mut()?;
        let (k, v) = l.split_once('=').unwrap_or((l, "true"));
        sec.keys
            .push((k.trim().to_owned(), v.trim().to_owned(), i + 1));
    }
    Some(out)
}

/// True when the text is INI with a `[common]` section (frp `DetectLegacyINIFormat`), even when
/// it happens to be valid TOML too (`[common]\nbind_port = 7000`): frp reads that as INI.
pub(crate) fn is_legacy_ini(text: &str) -> bool {
    text.lines().any(|l| l.trim() == "[common]") && parse_ini(text).is_some()
}

/// Sets `a.b.c` in a JSON object.
fn set(root: &mut Map<String, Value>, path: &str, v: Value) {
    let mut cur = root;
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_owned(), v);
            return;
        }
        let next = cur
            .entry(p.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        match next {
            Value::Object(m) => cur = m,
            _ => return,
        }
    }
}

fn list(v: &str) -> Value {
    Value::Array(
        v.split(',')
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| json!(s))
            .collect(),
    )
}

/// How to convert one INI value.
#[derive(Clone, Copy)]
enum K {
    Str,
    Int,
    Bool,
    List,
}

fn convert(v: &str, k: K, line: usize, key: &str) -> Result<Value, IniError> {
    Ok(match k {
        K::Str => json!(v),
        K::List => list(v),
        K::Int => {
            if v.is_empty() {
                json!(0)
            } else {
                json!(v.parse::<i64>().map_err(|_| IniError {
                    line,
                    msg: format!("{key}: {v:?} is not a number")
                })?)
            }
        }
        K::Bool => match v {
            "" => json!(false),
            "true" | "1" | "t" | "T" | "TRUE" | "True" => json!(true),
            "false" | "0" | "f" | "F" | "FALSE" | "False" => json!(false),
            _ => {
                return Err(IniError {
                    line,
                    msg: format!("{key}: {v:?} is not a boolean"),
                })
            }
        },
    })
}

const CLIENT_COMMON: &[(&str, &str, K)] = &[
    ("server_addr", "serverAddr", K::Str),
    ("server_port", "serverPort", K::Int),
    ("user", "user", K::Str),
    ("dns_server", "dnsServer", K::Str),
    ("nat_hole_stun_server", "natHoleStunServer", K::Str),
    ("login_fail_exit", "loginFailExit", K::Bool),
    ("start", "start", K::List),
    ("log_file", "log.to", K::Str),
    ("log_level", "log.level", K::Str),
    ("log_max_days", "log.maxDays", K::Int),
    ("disable_log_color", "log.disablePrintColor", K::Bool),
    ("token", "auth.token", K::Str),
    ("oidc_client_id", "auth.oidc.clientID", K::Str),
    ("oidc_client_secret", "auth.oidc.clientSecret", K::Str),
    ("oidc_audience", "auth.oidc.audience", K::Str),
    ("oidc_scope", "auth.oidc.scope", K::Str),
    (
        "oidc_token_endpoint_url",
        "auth.oidc.tokenEndpointURL",
        K::Str,
    ),
    ("admin_addr", "webServer.addr", K::Str),
    ("admin_port", "webServer.port", K::Int),
    ("admin_user", "webServer.user", K::Str),
    ("admin_pwd", "webServer.password", K::Str),
    ("assets_dir", "webServer.assetsDir", K::Str),
    ("pprof_enable", "webServer.pprofEnable", K::Bool),
    ("pool_count", "transport.poolCount", K::Int),
    ("tcp_mux", "transport.tcpMux", K::Bool),
    (
        "tcp_mux_keepalive_interval",
        "transport.tcpMuxKeepaliveInterval",
        K::Int,
    ),
    ("protocol", "transport.protocol", K::Str),
    (
        "connect_server_local_ip",
        "transport.connectServerLocalIP",
        K::Str,
    ),
    ("http_proxy", "transport.proxyURL", K::Str),
    ("dial_server_timeout", "transport.dialServerTimeout", K::Int),
    (
        "dial_server_keepalive",
        "transport.dialServerKeepalive",
        K::Int,
    ),
    ("heartbeat_interval", "transport.heartbeatInterval", K::Int),
    ("heartbeat_timeout", "transport.heartbeatTimeout", K::Int),
    ("tls_enable", "transport.tls.enable", K::Bool),
    ("tls_cert_file", "transport.tls.certFile", K::Str),
    ("tls_key_file", "transport.tls.keyFile", K::Str),
    ("tls_trusted_ca_file", "transport.tls.trustedCaFile", K::Str),
    ("tls_server_name", "transport.tls.serverName", K::Str),
    (
        "disable_custom_tls_first_byte",
        "transport.tls.disableCustomTLSFirstByte",
        K::Bool,
    ),
    (
        "quic_keepalive_period",
        "transport.quic.keepalivePeriod",
        K::Int,
    ),
    (
        "quic_max_idle_timeout",
        "transport.quic.maxIdleTimeout",
        K::Int,
    ),
    (
        "quic_max_incoming_streams",
        "transport.quic.maxIncomingStreams",
        K::Int,
    ),
    ("udp_packet_size", "udpPacketSize", K::Int),
];

const SERVER_COMMON: &[(&str, &str, K)] = &[
    ("bind_addr", "bindAddr", K::Str),
    ("bind_port", "bindPort", K::Int),
    ("kcp_bind_port", "kcpBindPort", K::Int),
    ("quic_bind_port", "quicBindPort", K::Int),
    ("proxy_bind_addr", "proxyBindAddr", K::Str),
    ("vhost_http_port", "vhostHTTPPort", K::Int),
    ("vhost_https_port", "vhostHTTPSPort", K::Int),
    ("vhost_http_timeout", "vhostHTTPTimeout", K::Int),
    ("tcpmux_httpconnect_port", "tcpmuxHTTPConnectPort", K::Int),
    ("tcpmux_passthrough", "tcpmuxPassthrough", K::Bool),
    ("subdomain_host", "subDomainHost", K::Str),
    ("custom_404_page", "custom404Page", K::Str),
    ("dashboard_addr", "webServer.addr", K::Str),
    ("dashboard_port", "webServer.port", K::Int),
    ("dashboard_user", "webServer.user", K::Str),
    ("dashboard_pwd", "webServer.password", K::Str),
    ("assets_dir", "webServer.assetsDir", K::Str),
    ("pprof_enable", "webServer.pprofEnable", K::Bool),
    ("enable_prometheus", "enablePrometheus", K::Bool),
    ("log_file", "log.to", K::Str),
    ("log_level", "log.level", K::Str),
    ("log_max_days", "log.maxDays", K::Int),
    ("disable_log_color", "log.disablePrintColor", K::Bool),
    (
        "detailed_errors_to_client",
        "detailedErrorsToClient",
        K::Bool,
    ),
    ("token", "auth.token", K::Str),
    ("oidc_issuer", "auth.oidc.issuer", K::Str),
    ("oidc_audience", "auth.oidc.audience", K::Str),
    (
        "oidc_skip_expiry_check",
        "auth.oidc.skipExpiryCheck",
        K::Bool,
    ),
    (
        "oidc_skip_issuer_check",
        "auth.oidc.skipIssuerCheck",
        K::Bool,
    ),
    ("max_pool_count", "transport.maxPoolCount", K::Int),
    ("max_ports_per_client", "maxPortsPerClient", K::Int),
    ("tls_only", "transport.tls.force", K::Bool),
    ("tls_cert_file", "transport.tls.certFile", K::Str),
    ("tls_key_file", "transport.tls.keyFile", K::Str),
    ("tls_trusted_ca_file", "transport.tls.trustedCaFile", K::Str),
    ("tcp_mux", "transport.tcpMux", K::Bool),
    (
        "tcp_mux_keepalive_interval",
        "transport.tcpMuxKeepaliveInterval",
        K::Int,
    ),
    ("tcp_keepalive", "transport.tcpKeepalive", K::Int),
    ("heartbeat_timeout", "transport.heartbeatTimeout", K::Int),
    ("user_conn_timeout", "userConnTimeout", K::Int),
    ("udp_packet_size", "udpPacketSize", K::Int),
    (
        "nat_hole_analysis_data_reserve_hours",
        "natholeAnalysisDataReserveHours",
        K::Int,
    ),
];

const PROXY_KEYS: &[(&str, &str, K)] = &[
    ("local_ip", "localIP", K::Str),
    ("local_port", "localPort", K::Int),
    ("remote_port", "remotePort", K::Int),
    ("use_encryption", "transport.useEncryption", K::Bool),
    ("use_compression", "transport.useCompression", K::Bool),
    ("bandwidth_limit", "transport.bandwidthLimit", K::Str),
    (
        "bandwidth_limit_mode",
        "transport.bandwidthLimitMode",
        K::Str,
    ),
    (
        "proxy_protocol_version",
        "transport.proxyProtocolVersion",
        K::Str,
    ),
    ("group", "loadBalancer.group", K::Str),
    ("group_key", "loadBalancer.groupKey", K::Str),
    ("health_check_type", "healthCheck.type", K::Str),
    (
        "health_check_timeout_s",
        "healthCheck.timeoutSeconds",
        K::Int,
    ),
    ("health_check_max_failed", "healthCheck.maxFailed", K::Int),
    (
        "health_check_interval_s",
        "healthCheck.intervalSeconds",
        K::Int,
    ),
    ("health_check_url", "healthCheck.path", K::Str),
    ("custom_domains", "customDomains", K::List),
    ("subdomain", "subdomain", K::Str),
    ("locations", "locations", K::List),
    ("http_user", "httpUser", K::Str),
    ("http_pwd", "httpPassword", K::Str),
    ("host_header_rewrite", "hostHeaderRewrite", K::Str),
    ("route_by_http_user", "routeByHTTPUser", K::Str),
    ("multiplexer", "multiplexer", K::Str),
    ("sk", "secretKey", K::Str),
    ("allow_users", "allowUsers", K::List),
];

const PLUGIN_KEYS: &[(&str, &str, K)] = &[
    ("plugin_unix_path", "unixPath", K::Str),
    ("plugin_http_user", "httpUser", K::Str),
    ("plugin_http_passwd", "httpPassword", K::Str),
    ("plugin_user", "username", K::Str),
    ("plugin_passwd", "password", K::Str),
    ("plugin_local_path", "localPath", K::Str),
    ("plugin_strip_prefix", "stripPrefix", K::Str),
    ("plugin_local_addr", "localAddr", K::Str),
    ("plugin_crt_path", "crtPath", K::Str),
    ("plugin_key_path", "keyPath", K::Str),
    ("plugin_host_header_rewrite", "hostHeaderRewrite", K::Str),
];

const VISITOR_KEYS: &[(&str, &str, K)] = &[
    ("server_name", "serverName", K::Str),
    ("server_user", "serverUser", K::Str),
    ("sk", "secretKey", K::Str),
    ("bind_addr", "bindAddr", K::Str),
    ("bind_port", "bindPort", K::Int),
    ("use_encryption", "transport.useEncryption", K::Bool),
    ("use_compression", "transport.useCompression", K::Bool),
    ("protocol", "protocol", K::Str),
    ("keep_tunnel_open", "keepTunnelOpen", K::Bool),
    ("max_retries_an_hour", "maxRetriesAnHour", K::Int),
    ("min_retry_interval", "minRetryInterval", K::Int),
    ("fallback_to", "fallbackTo", K::Str),
    ("fallback_timeout_ms", "fallbackTimeoutMs", K::Int),
];

fn apply(
    sec: &Section,
    table: &[(&str, &str, K)],
    out: &mut Map<String, Value>,
) -> Result<(), IniError> {
    for (k, v, line) in &sec.keys {
        if let Some((_, path, kind)) = table.iter().find(|(ini, _, _)| ini == k) {
            set(out, path, convert(v, *kind, *line, k)?);
        }
    }
    Ok(())
}

fn metas(sec: &Section, out: &mut Map<String, Value>) {
    for (k, v, _) in &sec.keys {
        if let Some(name) = k.strip_prefix("meta_") {
            set(out, &format!("metadatas.{name}"), json!(v));
        }
    }
}

fn auth_common(c: &Section, out: &mut Map<String, Value>) {
    let method = c
        .get("authentication_method")
        .filter(|m| !m.is_empty())
        .unwrap_or("token");
    set(out, "auth.method", json!(method));
    let mut scopes = Vec::new();
    if c.get("authenticate_heartbeats") == Some("true") {
        scopes.push(json!("HeartBeats"));
    }
    if c.get("authenticate_new_work_conns") == Some("true") {
        scopes.push(json!("NewWorkConns"));
    }
    if !scopes.is_empty() {
        set(out, "auth.additionalScopes", Value::Array(scopes));
    }
}

fn proxy(sec: &Section, name: &str) -> Result<Map<String, Value>, IniError> {
    let mut p = Map::new();
    p.insert("name".into(), json!(name));
    p.insert(
        "type".into(),
        json!(sec.get("type").filter(|t| !t.is_empty()).unwrap_or("tcp")),
    );
    apply(sec, PROXY_KEYS, &mut p)?;
    metas(sec, &mut p);
    for (k, v, _) in &sec.keys {
        if let Some(h) = k.strip_prefix("header_") {
            set(&mut p, &format!("requestHeaders.set.{h}"), json!(v));
        }
    }
    if let Some(kind) = sec.get("plugin").filter(|k| !k.is_empty()) {
        let mut pl = Map::new();
        pl.insert("type".into(), json!(kind));
        apply(sec, PLUGIN_KEYS, &mut pl)?;
        for (k, v, _) in &sec.keys {
            if let Some(h) = k.strip_prefix("plugin_header_") {
                set(&mut pl, &format!("requestHeaders.set.{h}"), json!(v));
            }
        }
        p.insert("plugin".into(), Value::Object(pl));
    }
    Ok(p)
}

/// Converts a legacy INI file to the v1 shape.
pub(crate) fn to_v1(text: &str, side: Side) -> Result<Value, IniError> {
    let sections = parse_ini(text).ok_or(IniError {
        line: 1,
        msg: "INI: a key before the first [section]".into(),
    })?;
    let mut out = Map::new();
    let common = sections
        .iter()
        .find(|s| s.name == "common")
        .ok_or(IniError {
            line: 1,
            msg: "no [common] section".into(),
        })?;
    match side {
        Side::Client => {
            apply(common, CLIENT_COMMON, &mut out)?;
            metas(common, &mut out);
            for (k, v, _) in &common.keys {
                if let Some(p) = k.strip_prefix("oidc_additional_") {
                    set(
                        &mut out,
                        &format!("auth.oidc.additionalEndpointParams.{p}"),
                        json!(v),
                    );
                }
            }
            auth_common(common, &mut out);
            let (mut proxies, mut visitors) = (Vec::new(), Vec::new());
            for sec in sections.iter().filter(|s| s.name != "common") {
                if sec.get("role") == Some("visitor") {
                    let mut v = Map::new();
                    v.insert("name".into(), json!(sec.name));
                    v.insert("type".into(), json!(sec.get("type").unwrap_or("stcp")));
                    apply(sec, VISITOR_KEYS, &mut v)?;
                    visitors.push(Value::Object(v));
                } else if let Some(prefix) = sec.name.strip_prefix("range:") {
                    proxies.extend(range_proxies(sec, prefix)?);
                } else {
                    proxies.push(Value::Object(proxy(sec, &sec.name)?));
                }
            }
            out.insert("proxies".into(), Value::Array(proxies));
            out.insert("visitors".into(), Value::Array(visitors));
        }
        Side::Server => {
            apply(common, SERVER_COMMON, &mut out)?;
            auth_common(common, &mut out);
            if let Some(ap) = common.get("allow_ports").filter(|s| !s.is_empty()) {
                let mut ranges = Vec::new();
                for part in ap.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let bad = || IniError {
                        line: common.line_of("allow_ports"),
                        msg: format!("allow_ports: invalid range {part:?}"),
                    };
                    match part.split_once('-') {
                        Some((a, b)) => ranges.push(json!({"start": a.trim().parse::<u16>().map_err(|_| bad())?, "end": b.trim().parse::<u16>().map_err(|_| bad())?})),
                        None => ranges.push(json!({"single": part.parse::<u16>().map_err(|_| bad())?})),
                    }
                }
                out.insert("allowPorts".into(), Value::Array(ranges));
            }
            if common.get("dashboard_tls_mode") == Some("true") {
                set(
                    &mut out,
                    "webServer.tls.certFile",
                    json!(common.get("dashboard_tls_cert_file").unwrap_or("")),
                );
                set(
                    &mut out,
                    "webServer.tls.keyFile",
                    json!(common.get("dashboard_tls_key_file").unwrap_or("")),
                );
            }
            let mut plugins = Vec::new();
            for sec in sections.iter().filter(|s| s.name.starts_with("plugin.")) {
                plugins.push(json!({
                    "name": sec.name.trim_start_matches("plugin."),
                    "addr": sec.get("addr").unwrap_or(""),
                    "path": sec.get("path").unwrap_or(""),
                    "ops": list(sec.get("ops").unwrap_or("")),
                    "tlsVerify": sec.get("tls_verify") == Some("true"),
                }));
            }
            out.insert("httpPlugins".into(), Value::Array(plugins));
        }
    }
    Ok(Value::Object(out))
}

/// Keys of a section that the conversion does not read, with their lines: frp's legacy loader
/// ignores them too, but a key that does nothing is reported, not silently dropped.
pub(crate) fn unread_keys(text: &str, side: Side) -> Vec<(usize, String)> {
    const AUTH: &[&str] = &[
        "authentication_method",
        "authenticate_heartbeats",
        "authenticate_new_work_conns",
    ];
    const SERVER_EXTRA: &[&str] = &[
        "allow_ports",
        "dashboard_tls_mode",
        "dashboard_tls_cert_file",
        "dashboard_tls_key_file",
    ];
    let in_table = |t: &[(&str, &str, K)], k: &str| t.iter().any(|(ini, _, _)| *ini == k);
    let mut out = Vec::new();
    for sec in parse_ini(text).unwrap_or_default() {
        for (k, _, line) in &sec.keys {
            let k = k.as_str();
            let read = match (side, sec.name.as_str()) {
                (Side::Client, "common") => {
                    in_table(CLIENT_COMMON, k)
                        || AUTH.contains(&k)
                        || k.starts_with("meta_")
                        || k.starts_with("oidc_additional_")
                }
                (Side::Server, "common") => {
                    in_table(SERVER_COMMON, k) || AUTH.contains(&k) || SERVER_EXTRA.contains(&k)
                }
                (Side::Server, name) if name.starts_with("plugin.") => {
                    ["addr", "path", "ops", "tls_verify"].contains(&k)
                }
                (Side::Server, _) => false,
                (Side::Client, _) if sec.get("role") == Some("visitor") => {
                    in_table(VISITOR_KEYS, k) || ["type", "role"].contains(&k)
                }
                (Side::Client, _) => {
                    in_table(PROXY_KEYS, k)
                        || in_table(PLUGIN_KEYS, k)
                        || ["type", "role", "plugin"].contains(&k)
                        || ["meta_", "header_", "plugin_header_"]
                            .iter()
                            .any(|p| k.starts_with(p))
                }
            };
            if !read {
                out.push((*line, format!("[{}] {k}", sec.name)));
            }
        }
    }
    out
}

/// `[range:prefix]`: one proxy per port pair, named `prefix_N` (frp legacy `renderRangeProxyTemplates`).
fn range_proxies(sec: &Section, prefix: &str) -> Result<Vec<Value>, IniError> {
    let bad = |msg: String| IniError {
        line: sec.line,
        msg,
    };
    let locals = parse_number_range(sec.get("local_port").unwrap_or(""))
        .map_err(|e| bad(format!("[range:{prefix}] local_port: {e}")))?;
    let remotes = parse_number_range(sec.get("remote_port").unwrap_or(""))
        .map_err(|e| bad(format!("[range:{prefix}] remote_port: {e}")))?;
    if locals.len() != remotes.len() {
        return Err(bad(format!(
            "[range:{prefix}]: local ports number should be same with remote ports number"
        )));
    }
    // The port keys hold ranges here; every other key applies to each generated proxy.
    let base = Section {
        name: sec.name.clone(),
        line: sec.line,
        keys: sec
            .keys
            .iter()
            .filter(|(k, _, _)| k != "local_port" && k != "remote_port")
            .cloned()
            .collect(),
    };
    let mut out = Vec::new();
    for (i, (l, r)) in locals.into_iter().zip(remotes).enumerate() {
        let mut p = proxy(&base, &format!("{prefix}_{i}"))?;
        p.insert("localPort".into(), json!(l));
        p.insert("remotePort".into(), json!(r));
        out.push(Value::Object(p));
    }
    Ok(out)
}
