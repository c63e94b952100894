//! frpc's command line, as frp's (`cmd/frpc/sub`): `frpc -c FILE`, `frpc verify -c FILE`, and
//! the quick-start subcommands (`frpc tcp -s ADDR -P PORT -t TOKEN -l 22 -r 6000 ...`, and
//! `frpc stcp visitor ...`). Quick-start flags become a v1 config that goes through the same
//! loader and validation as a file. Flag names accept `_` or `-`, as frp's.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use common::config::{self, ClientConfig, LoadOptions};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "frpc", version = common::FRP_VERSION, about = "frpc is the client of frp (https://github.com/fatedier/frp)")]
struct Cli {
    /// config file of frpc
    #[arg(
        short = 'c',
        long = "config",
        default_value = "./frpc.ini",
        global = true
    )]
    config: PathBuf,
    /// strict config parsing mode, unknown fields will cause errors
    #[arg(long = "strict_config", alias = "strict-config", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    strict_config: bool,
    /// unsafe features to allow, e.g. TokenSourceExec
    #[arg(
        long = "allow-unsafe",
        alias = "allow_unsafe",
        value_delimiter = ',',
        global = true
    )]
    allow_unsafe: Vec<String>,
    /// reload when the config file or its includes change (frp-rs; not in frp)
    #[arg(long = "watch")]
    watch: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify that the configures is valid
    Verify,
    /// Hot-Reload frpc configuration
    Reload,
    /// Overview of all proxies status
    Status,
    /// Stop the running frpc
    Stop,
    /// Run frpc with a single tcp proxy
    Tcp(Quick),
    /// Run frpc with a single udp proxy
    Udp(Quick),
    /// Run frpc with a single http proxy
    Http(Quick),
    /// Run frpc with a single https proxy
    Https(Quick),
    /// Run frpc with a single tcpmux proxy
    Tcpmux(Quick),
    /// Run frpc with a single stcp proxy (or `stcp visitor`)
    Stcp(Quick),
    /// Run frpc with a single sudp proxy (or `sudp visitor`)
    Sudp(Quick),
    /// Run frpc with a single xtcp proxy (or `xtcp visitor`)
    Xtcp(Quick),
}

/// frp `RegisterClientCommonConfigFlags`.
#[derive(Debug, Args)]
struct CommonFlags {
    #[arg(
        short = 's',
        long = "server_addr",
        alias = "server-addr",
        default_value = "127.0.0.1",
        global = true
    )]
    server_addr: String,
    #[arg(
        short = 'P',
        long = "server_port",
        alias = "server-port",
        default_value_t = 7000,
        global = true
    )]
    server_port: u16,
    #[arg(short = 'p', long = "protocol", default_value = "tcp", global = true)]
    protocol: String,
    #[arg(
        long = "log_level",
        alias = "log-level",
        default_value = "info",
        global = true
    )]
    log_level: String,
    #[arg(
        long = "log_file",
        alias = "log-file",
        default_value = "console",
        global = true
    )]
    log_file: String,
    #[arg(
        long = "log_max_days",
        alias = "log-max-days",
        default_value_t = 3,
        global = true
    )]
    log_max_days: i64,
    #[arg(long = "disable_log_color", alias = "disable-log-color", global = true)]
    disable_log_color: bool,
    #[arg(
        long = "tls_server_name",
        alias = "tls-server-name",
        default_value = "",
        global = true
    )]
    tls_server_name: String,
    #[arg(
        long = "dns_server",
        alias = "dns-server",
        default_value = "",
        global = true
    )]
    dns_server: String,
    #[arg(long = "tls_enable", alias = "tls-enable", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    tls_enable: bool,
    #[arg(short = 'u', long = "user", default_value = "", global = true)]
    user: String,
    #[arg(short = 't', long = "token", default_value = "", global = true)]
    token: String,
}

/// One quick-start proxy (frp `RegisterProxyFlags`), or a visitor with the `visitor` subcommand.
#[derive(Debug, Args)]
struct Quick {
    #[command(flatten)]
    common: CommonFlags,
    #[arg(
        short = 'n',
        long = "proxy_name",
        alias = "proxy-name",
        default_value = ""
    )]
    proxy_name: String,
    #[arg(
        short = 'i',
        long = "local_ip",
        alias = "local-ip",
        default_value = "127.0.0.1"
    )]
    local_ip: String,
    #[arg(
        short = 'l',
        long = "local_port",
        alias = "local-port",
        default_value_t = 0
    )]
    local_port: u16,
    #[arg(
        short = 'r',
        long = "remote_port",
        alias = "remote-port",
        default_value_t = 0
    )]
    remote_port: u16,
    #[arg(long = "ue")]
    ue: bool,
    #[arg(long = "uc")]
    uc: bool,
    #[arg(
        long = "bandwidth_limit",
        alias = "bandwidth-limit",
        default_value = ""
    )]
    bandwidth_limit: String,
    #[arg(
        long = "bandwidth_limit_mode",
        alias = "bandwidth-limit-mode",
        default_value = "client"
    )]
    bandwidth_limit_mode: String,
    #[arg(
        short = 'd',
        long = "custom_domain",
        alias = "custom-domain",
        value_delimiter = ','
    )]
    custom_domain: Vec<String>,
    #[arg(long = "sd", default_value = "")]
    sd: String,
    #[arg(long = "locations", value_delimiter = ',')]
    locations: Vec<String>,
    #[arg(long = "http_user", alias = "http-user", default_value = "")]
    http_user: String,
    #[arg(long = "http_pwd", alias = "http-pwd", default_value = "")]
    http_pwd: String,
    #[arg(
        long = "host_header_rewrite",
        alias = "host-header-rewrite",
        default_value = ""
    )]
    host_header_rewrite: String,
    #[arg(long = "mux", default_value = "")]
    mux: String,
    #[arg(long = "sk", default_value = "")]
    sk: String,
    #[arg(long = "allow_users", alias = "allow-users", value_delimiter = ',')]
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
    #[arg(
        short = 'n',
        long = "visitor_name",
        alias = "visitor-name",
        default_value = ""
    )]
    visitor_name: String,
    #[arg(long = "ue")]
    ue: bool,
    #[arg(long = "uc")]
    uc: bool,
    #[arg(long = "sk", default_value = "")]
    sk: String,
    #[arg(long = "server_name", alias = "server-name", default_value = "")]
    server_name: String,
    #[arg(long = "server-user", alias = "server_user", default_value = "")]
    server_user: String,
    #[arg(long = "bind_addr", alias = "bind-addr", default_value = "")]
    bind_addr: String,
    #[arg(
        long = "bind_port",
        alias = "bind-port",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    bind_port: i32,
}

impl Quick {
    /// The v1 config these flags describe.
    fn to_v1(&self, kind: &str) -> Value {
        let c = &self.common;
        let mut root = json!({
            "serverAddr": c.server_addr, "serverPort": c.server_port, "user": c.user, "dnsServer": c.dns_server,
            "auth": { "token": c.token },
            "log": { "level": c.log_level, "to": c.log_file, "maxDays": c.log_max_days, "disablePrintColor": c.disable_log_color },
            "transport": { "protocol": c.protocol, "tls": { "enable": c.tls_enable, "serverName": c.tls_server_name } },
        });
        if let Some(VisitorCmd::Visitor(v)) = &self.visitor {
            let mut vis = json!({
                "name": v.visitor_name, "type": kind, "secretKey": v.sk, "serverName": v.server_name, "serverUser": v.server_user,
                "bindAddr": v.bind_addr, "bindPort": v.bind_port, "transport": { "useEncryption": v.ue, "useCompression": v.uc },
            });
            if let Value::Object(m) = &mut vis {
                m.retain(|_, v| v != &json!(""));
            }
            root["visitors"] = json!([vis]);
            return root;
        }
        let mut p = Map::new();
        let mut put = |k: &str, v: Value| {
            p.insert(k.into(), v);
        };
        put("name", json!(self.proxy_name));
        put("type", json!(kind));
        put("localIP", json!(self.local_ip));
        put("localPort", json!(self.local_port));
        put(
            "transport",
            json!({ "useEncryption": self.ue, "useCompression": self.uc, "bandwidthLimit": self.bandwidth_limit, "bandwidthLimitMode": self.bandwidth_limit_mode }),
        );
        match kind {
            "tcp" | "udp" => put("remotePort", json!(self.remote_port)),
            "http" | "https" | "tcpmux" => {
                put("customDomains", json!(self.custom_domain));
                put("subdomain", json!(self.sd));
                if kind == "http" {
                    put("locations", json!(self.locations));
                    put("hostHeaderRewrite", json!(self.host_header_rewrite));
                }
                if kind != "https" {
                    put("httpUser", json!(self.http_user));
                    put("httpPassword", json!(self.http_pwd));
                }
                if kind == "tcpmux" {
                    put("multiplexer", json!(self.mux));
                }
            }
            _ => {
                put("secretKey", json!(self.sk));
                put("allowUsers", json!(self.allow_users));
            }
        }
        root["proxies"] = json!([Value::Object(p)]);
        root
    }
}

/// Entry point of the `frpc` binary.
pub fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            common::errln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn quick(
    kind: &str,
    q: &Quick,
    strict: bool,
    allow_unsafe: &[String],
) -> anyhow::Result<config::Loaded<ClientConfig>> {
    let text = serde_json::to_string(&q.to_v1(kind))?;
    Ok(config::load_client_text(
        &text,
        Path::new("<command line>"),
        &LoadOptions {
            strict,
            allow_unsafe: allow_unsafe.to_vec(),
            ..Default::default()
        },
    )?)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let strict = cli.strict_config;
    let allow_unsafe = &cli.allow_unsafe;
    let loaded = match &cli.command {
        Some(Command::Tcp(q)) => quick("tcp", q, strict, allow_unsafe)?,
        Some(Command::Udp(q)) => quick("udp", q, strict, allow_unsafe)?,
        Some(Command::Http(q)) => quick("http", q, strict, allow_unsafe)?,
        Some(Command::Https(q)) => quick("https", q, strict, allow_unsafe)?,
        Some(Command::Tcpmux(q)) => quick("tcpmux", q, strict, allow_unsafe)?,
        Some(Command::Stcp(q)) => quick("stcp", q, strict, allow_unsafe)?,
        Some(Command::Sudp(q)) => quick("sudp", q, strict, allow_unsafe)?,
        Some(Command::Xtcp(q)) => quick("xtcp", q, strict, allow_unsafe)?,
        Some(Command::Verify | Command::Reload | Command::Status | Command::Stop) | None => {
            config::load_client(
                &cli.config,
                &LoadOptions {
                    strict,
                    allow_unsafe: allow_unsafe.to_vec(),
                    ..Default::default()
                },
            )?
        }
    };
    if let Some(Command::Verify) = cli.command {
        for w in &loaded.warnings {
            common::errln!("warning: {w}");
        }
        common::outln!(
            "frpc: the configuration file {} syntax is ok",
            cli.config.display()
        );
        return Ok(());
    }
    if let Some(cmd @ (Command::Reload | Command::Status | Command::Stop)) = &cli.command {
        return admin_command(cmd, &loaded.config.web_server, &cli.config, strict);
    }
    let load_opts = LoadOptions {
        strict,
        allow_unsafe: allow_unsafe.to_vec(),
        ..Default::default()
    };
    let config_path = cli.command.is_none().then(|| cli.config.clone());
    let watch = cli.watch;
    let cfg = loaded.config;
    common::log::init(&cfg.log).context("set up logging")?;
    for w in loaded.warnings {
        tracing::warn!("{w}");
    }
    common::rlimit::raise_open_files_and_log();
    let rt = tokio::runtime::Runtime::new().context("start tokio runtime")?;
    // The service runs as a task on the worker threads, not inside `block_on` on the main
    // thread: there, every message between it and the tasks it drives crossed threads (a
    // futex wake-up per work connection in the profile).
    let service = rt.spawn(async move {
        let token = CancellationToken::new();
        tokio::spawn(common::signal::cancel_on_signal(token.clone()));
        let mut client = crate::Client::new(cfg);
        if let Some(p) = config_path {
            client = client.with_config_path(p, load_opts);
            if watch {
                client.watch_config(&token)?;
            }
        }
        client.run(token).await?;
        anyhow::Ok(())
    });
    rt.block_on(service).context("frpc service task")?
}

/// `frpc reload|status|stop`: one call to the running frpc's admin API. `reload` names the file
/// it asks for (`configFile`, absolute); our frpc refuses when it runs another one and answers
/// which it reloaded ([`crate::admin::CONFIG_FILE_HEADER`]). A Go frpc ignores the parameter and
/// says nothing, so then only the file asked for is named.
fn admin_command(
    cmd: &Command,
    web: &common::config::WebServerConfig,
    config: &Path,
    strict: bool,
) -> anyhow::Result<()> {
    if web.port == 0 {
        anyhow::bail!("the admin API is off: set webServer.port in the config");
    }
    let asked = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_owned());
    let reload = format!(
        "/api/reload?{}",
        common::http::form_encode(&[
            ("strictConfig", if strict { "true" } else { "false" }),
            ("configFile", &asked.display().to_string()),
        ])
    );
    let (method, path) = match cmd {
        Command::Reload => (hyper::Method::GET, reload.as_str()),
        Command::Status => (hyper::Method::GET, "/api/status"),
        _ => (hyper::Method::POST, "/api/stop"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = rt.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            crate::admin::call(web, method, path),
        )
        .await
        .map_err(|_| anyhow::anyhow!("admin API did not answer within 30s"))?
        .context("call the admin API")
    })?;
    if !answer.code.is_success() {
        let msg = serde_json::from_str::<Value>(&answer.body)
            .ok()
            .and_then(|v| v["Msg"].as_str().map(str::to_owned))
            .unwrap_or(answer.body);
        anyhow::bail!("{msg}");
    }
    match cmd {
        Command::Reload => match crate::admin::reported_config_file(&answer.headers) {
            Some(f) => common::outln!("reload success: {f}"),
            None => common::outln!(
                "reload success (asked to reload {}; the running frpc does not say which config file it reloaded)",
                asked.display()
            ),
        },
        Command::Stop => common::outln!("stop success"),
        _ => print_status(&serde_json::from_str(&answer.body).context("parse status")?),
    }
    Ok(())
}

/// Prints `/api/status` as frp's `frpc status` does: one table per proxy type.
fn print_status(res: &std::collections::BTreeMap<String, Vec<crate::ProxyStatusResp>>) {
    let mut out = String::from("Proxy Status...\n");
    for kind in [
        "tcp", "udp", "tcpmux", "http", "https", "stcp", "sudp", "xtcp",
    ] {
        let Some(rows) = res.get(kind).filter(|r| !r.is_empty()) else {
            continue;
        };
        out.push('\n');
        out.push_str(&kind.to_uppercase());
        out.push('\n');
        let mut table = vec![[
            "Name",
            "Status",
            "LocalAddr",
            "Plugin",
            "RemoteAddr",
            "Error",
        ]
        .map(str::to_owned)];
        for r in rows {
            table.push([
                r.name.clone(),
                r.status.clone(),
                r.local_addr.clone(),
                r.plugin.clone(),
                r.remote_addr.clone(),
                r.err.clone(),
            ]);
        }
        let widths: Vec<usize> = (0..6)
            .map(|i| table.iter().map(|r| r[i].len()).max().unwrap_or(0))
            .collect();
        for r in &table {
            let line: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
    }
    common::outln!("{out}");
}
