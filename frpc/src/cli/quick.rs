//! frpc's quick-start subcommands (frp `cmd/frpc/sub/proxy.go`, `pkg/config/flags.go`): one
//! proxy, or one visitor with `stcp|sudp|xtcp visitor`, from flags alone. Each subcommand has
//! exactly the flags frp registers for its type; they become a v1 config that goes through the
//! same loader and validation as a file.

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

/// frp `RegisterClientCommonConfigFlags`: persistent, so `stcp visitor` has them too.
#[derive(Debug, Args)]
pub(super) struct ClientFlags {
    /// frp server's address
    #[arg(
        short = 's',
        long = "server-addr",
        default_value = "127.0.0.1",
        global = true
    )]
    server_addr: String,
    /// frp server's port
    #[arg(
        short = 'P',
        long = "server-port",
        default_value_t = 7000,
        global = true
    )]
    server_port: u16,
    /// optional values are [tcp kcp quic websocket wss]
    #[arg(short = 'p', long = "protocol", default_value = "tcp", global = true)]
    protocol: String,
    /// log level
    #[arg(long = "log-level", default_value = "info", global = true)]
    log_level: String,
    /// console or file path
    #[arg(long = "log-file", default_value = "console", global = true)]
    log_file: String,
    /// log file reversed days
    #[arg(long = "log-max-days", default_value_t = 3, global = true)]
    log_max_days: i64,
    /// disable log color in console
    #[arg(long = "disable-log-color", global = true)]
    disable_log_color: bool,
    /// specify the custom server name of tls certificate
    #[arg(long = "tls-server-name", default_value = "", global = true)]
    tls_server_name: String,
    /// specify dns server instead of using system default one
    #[arg(long = "dns-server", default_value = "", global = true)]
    dns_server: String,
    /// enable frpc tls
    #[arg(long = "tls-enable", default_value_t = true, global = true)]
    tls_enable: bool,
    /// user
    #[arg(short = 'u', long = "user", default_value = "", global = true)]
    user: String,
    /// unique identifier for this frpc instance
    #[arg(long = "client-id", default_value = "", global = true)]
    client_id: String,
    /// auth token
    #[arg(short = 't', long = "token", default_value = "", global = true)]
    token: String,
}

/// frp `registerProxyBaseConfigFlags`.
#[derive(Debug, Args)]
struct ProxyBase {
    /// proxy name (required)
    #[arg(short = 'n', long = "proxy-name", required = true, default_value = "")]
    proxy_name: String,
    /// metadata key-value pairs (e.g., key1=value1,key2=value2)
    #[arg(long = "metadatas", value_delimiter = ',', value_parser = common::cli::key_value)]
    metadatas: Vec<(String, String)>,
    /// annotation key-value pairs (e.g., key1=value1,key2=value2)
    #[arg(long = "annotations", value_delimiter = ',', value_parser = common::cli::key_value)]
    annotations: Vec<(String, String)>,
    /// local ip
    #[arg(short = 'i', long = "local-ip", default_value = "127.0.0.1")]
    local_ip: String,
    /// local port
    #[arg(short = 'l', long = "local-port", default_value_t = 0)]
    local_port: u16,
    /// use encryption
    #[arg(long = "ue")]
    ue: bool,
    /// use compression
    #[arg(long = "uc")]
    uc: bool,
    /// bandwidth limit mode
    #[arg(long = "bandwidth-limit-mode", default_value = "client")]
    bandwidth_limit_mode: String,
    /// bandwidth limit (e.g. 100KB or 1MB)
    #[arg(long = "bandwidth-limit", default_value = "")]
    bandwidth_limit: String,
}

/// frp `registerProxyDomainConfigFlags`.
#[derive(Debug, Args)]
struct Domain {
    /// custom domains
    #[arg(short = 'd', long = "custom-domain", value_delimiter = ',')]
    custom_domain: Vec<String>,
    /// sub domain
    #[arg(long = "sd", default_value = "")]
    sd: String,
}

/// http and tcpmux's basic auth.
#[derive(Debug, Args)]
struct HttpAuth {
    /// http auth user
    #[arg(long = "http-user", default_value = "")]
    http_user: String,
    /// http auth password
    #[arg(long = "http-pwd", default_value = "")]
    http_pwd: String,
}

/// `frpc tcp` and `frpc udp`.
#[derive(Debug, Args)]
pub(super) struct PortCmd {
    #[command(flatten)]
    client: ClientFlags,
    #[command(flatten)]
    base: ProxyBase,
    /// remote port
    #[arg(short = 'r', long = "remote-port", default_value_t = 0)]
    remote_port: u16,
}

/// `frpc http`.
#[derive(Debug, Args)]
pub(super) struct HttpCmd {
    #[command(flatten)]
    client: ClientFlags,
    #[command(flatten)]
    base: ProxyBase,
    #[command(flatten)]
    domain: Domain,
    /// locations
    #[arg(long = "locations", value_delimiter = ',')]
    locations: Vec<String>,
    #[command(flatten)]
    auth: HttpAuth,
    /// host header rewrite
    #[arg(long = "host-header-rewrite", default_value = "")]
    host_header_rewrite: String,
}

/// `frpc https`.
#[derive(Debug, Args)]
pub(super) struct HttpsCmd {
    #[command(flatten)]
    client: ClientFlags,
    #[command(flatten)]
    base: ProxyBase,
    #[command(flatten)]
    domain: Domain,
}

/// `frpc tcpmux`.
#[derive(Debug, Args)]
pub(super) struct TcpmuxCmd {
    #[command(flatten)]
    client: ClientFlags,
    #[command(flatten)]
    base: ProxyBase,
    #[command(flatten)]
    domain: Domain,
    /// multiplexer
    #[arg(long = "mux", default_value = "")]
    mux: String,
    #[command(flatten)]
    auth: HttpAuth,
}

/// `frpc stcp|sudp|xtcp`, or their `visitor`.
#[derive(Debug, Args)]
#[command(subcommand_negates_reqs = true)]
pub(super) struct SecretCmd {
    #[command(flatten)]
    client: ClientFlags,
    #[command(flatten)]
    base: ProxyBase,
    /// secret key
    #[arg(long = "sk", default_value = "")]
    sk: String,
    /// allow visitor users
    #[arg(long = "allow-users", value_delimiter = ',')]
    allow_users: Vec<String>,
    #[command(subcommand)]
    visitor: Option<VisitorCmd>,
}

#[derive(Debug, Subcommand)]
enum VisitorCmd {
    /// Run frpc with a single visitor of this type
    Visitor(VisitorFlags),
}

/// frp `registerVisitorBaseConfigFlags`.
#[derive(Debug, Args)]
struct VisitorFlags {
    /// visitor name (required)
    #[arg(
        short = 'n',
        long = "visitor-name",
        required = true,
        default_value = ""
    )]
    visitor_name: String,
    /// use encryption
    #[arg(long = "ue")]
    ue: bool,
    /// use compression
    #[arg(long = "uc")]
    uc: bool,
    /// secret key
    #[arg(long = "sk", default_value = "")]
    sk: String,
    /// server name
    #[arg(long = "server-name", default_value = "")]
    server_name: String,
    /// server user
    #[arg(long = "server-user", default_value = "")]
    server_user: String,
    /// bind addr
    #[arg(long = "bind-addr", default_value = "")]
    bind_addr: String,
    /// bind port
    #[arg(long = "bind-port", default_value_t = 0, allow_negative_numbers = true)]
    bind_port: i32,
}

/// One quick-start subcommand, parsed.
#[derive(Debug)]
pub(super) enum Quick<'a> {
    Port(&'a str, &'a PortCmd),
    Http(&'a HttpCmd),
    Https(&'a HttpsCmd),
    Tcpmux(&'a TcpmuxCmd),
    Secret(&'a str, &'a SecretCmd),
}

impl ClientFlags {
    fn to_v1(&self) -> Value {
        json!({
            "serverAddr": self.server_addr, "serverPort": self.server_port, "user": self.user,
            "clientID": self.client_id, "dnsServer": self.dns_server,
            "auth": { "token": self.token },
            "log": { "level": self.log_level, "to": self.log_file, "maxDays": self.log_max_days, "disablePrintColor": self.disable_log_color },
            "transport": { "protocol": self.protocol, "tls": { "enable": self.tls_enable, "serverName": self.tls_server_name } },
        })
    }
}

impl ProxyBase {
    fn to_v1(&self, kind: &str) -> Map<String, Value> {
        let pairs = |kv: &[(String, String)]| -> Map<String, Value> {
            kv.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
        };
        let v = json!({
            "name": self.proxy_name, "type": kind, "localIP": self.local_ip, "localPort": self.local_port,
            "metadatas": pairs(&self.metadatas), "annotations": pairs(&self.annotations),
            "transport": { "useEncryption": self.ue, "useCompression": self.uc, "bandwidthLimit": self.bandwidth_limit, "bandwidthLimitMode": self.bandwidth_limit_mode },
        });
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

impl Domain {
    fn put(&self, p: &mut Map<String, Value>) {
        p.insert("customDomains".into(), json!(self.custom_domain));
        p.insert("subdomain".into(), json!(self.sd));
    }
}

impl HttpAuth {
    fn put(&self, p: &mut Map<String, Value>) {
        p.insert("httpUser".into(), json!(self.http_user));
        p.insert("httpPassword".into(), json!(self.http_pwd));
    }
}

impl VisitorFlags {
    fn to_v1(&self, kind: &str) -> Value {
        let mut v = json!({
            "name": self.visitor_name, "type": kind, "secretKey": self.sk, "serverName": self.server_name,
            "serverUser": self.server_user, "bindAddr": self.bind_addr, "bindPort": self.bind_port,
            "transport": { "useEncryption": self.ue, "useCompression": self.uc },
        });
        if let Value::Object(m) = &mut v {
            m.retain(|_, v| v != &json!(""));
        }
        v
    }
}

impl Quick<'_> {
    /// The v1 config these flags describe.
    pub(super) fn to_v1(&self) -> Value {
        let (client, base, kind) = match self {
            Quick::Port(kind, c) => (&c.client, &c.base, *kind),
            Quick::Http(c) => (&c.client, &c.base, "http"),
            Quick::Https(c) => (&c.client, &c.base, "https"),
            Quick::Tcpmux(c) => (&c.client, &c.base, "tcpmux"),
            Quick::Secret(kind, c) => (&c.client, &c.base, *kind),
        };
        let mut root = client.to_v1();
        if let Quick::Secret(
            kind,
            SecretCmd {
                visitor: Some(VisitorCmd::Visitor(v)),
                ..
            },
        ) = self
        {
            root["visitors"] = json!([v.to_v1(kind)]);
            return root;
        }
        let mut p = base.to_v1(kind);
        match self {
            Quick::Port(_, c) => {
                p.insert("remotePort".into(), json!(c.remote_port));
            }
            Quick::Http(c) => {
                c.domain.put(&mut p);
                c.auth.put(&mut p);
                p.insert("locations".into(), json!(c.locations));
                p.insert("hostHeaderRewrite".into(), json!(c.host_header_rewrite));
            }
            Quick::Https(c) => c.domain.put(&mut p),
            Quick::Tcpmux(c) => {
                c.domain.put(&mut p);
                c.auth.put(&mut p);
                p.insert("multiplexer".into(), json!(c.mux));
            }
            Quick::Secret(_, c) => {
                p.insert("secretKey".into(), json!(c.sk));
                p.insert("allowUsers".into(), json!(c.allow_users));
            }
        }
        root["proxies"] = json!([Value::Object(p)]);
        root
    }
}
