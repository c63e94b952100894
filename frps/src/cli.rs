//! frps's command line, as frp's (`cmd/frps`, `pkg/config/flags.go`): `frps [-c FILE]`,
//! `frps verify -c FILE`, or flags alone (`--bind_port`, `-t`, ...). Flag names accept `_` or `-`.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use common::config::{self, LoadOptions, PortsRange, ServerConfig, TlsFilesConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "frps", version = common::FRP_VERSION, about = "frps is the server of frp (https://github.com/fatedier/frp)")]
struct Cli {
    /// config file of frps
    #[arg(short = 'c', long = "config", global = true)]
    config: Option<PathBuf>,
    /// strict config parsing mode, unknown fields will cause an errors
    #[arg(long = "strict_config", alias = "strict-config", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    strict_config: bool,
    #[command(flatten)]
    flags: ServerFlags,
    /// unsafe features to allow, e.g. TokenSourceExec
    #[arg(
        long = "allow-unsafe",
        alias = "allow_unsafe",
        value_delimiter = ',',
        global = true
    )]
    allow_unsafe: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify that the configures is valid
    Verify,
}

/// frp `RegisterServerConfigFlags`; used only without `-c`.
#[derive(Debug, Args)]
struct ServerFlags {
    #[arg(long = "bind_addr", alias = "bind-addr", default_value = "0.0.0.0")]
    bind_addr: String,
    #[arg(
        short = 'p',
        long = "bind_port",
        alias = "bind-port",
        default_value_t = 7000
    )]
    bind_port: u16,
    #[arg(long = "kcp_bind_port", alias = "kcp-bind-port", default_value_t = 0)]
    kcp_bind_port: u16,
    #[arg(long = "quic_bind_port", alias = "quic-bind-port", default_value_t = 0)]
    quic_bind_port: u16,
    #[arg(
        long = "proxy_bind_addr",
        alias = "proxy-bind-addr",
        default_value = "0.0.0.0"
    )]
    proxy_bind_addr: String,
    #[arg(
        long = "vhost_http_port",
        alias = "vhost-http-port",
        default_value_t = 0
    )]
    vhost_http_port: u16,
    #[arg(
        long = "vhost_https_port",
        alias = "vhost-https-port",
        default_value_t = 0
    )]
    vhost_https_port: u16,
    #[arg(
        long = "vhost_http_timeout",
        alias = "vhost-http-timeout",
        default_value_t = 60
    )]
    vhost_http_timeout: i64,
    #[arg(
        long = "dashboard_addr",
        alias = "dashboard-addr",
        default_value = "0.0.0.0"
    )]
    dashboard_addr: String,
    #[arg(long = "dashboard_port", alias = "dashboard-port", default_value_t = 0)]
    dashboard_port: u16,
    #[arg(
        long = "dashboard_user",
        alias = "dashboard-user",
        default_value = "admin"
    )]
    dashboard_user: String,
    #[arg(
        long = "dashboard_pwd",
        alias = "dashboard-pwd",
        default_value = "admin"
    )]
    dashboard_pwd: String,
    #[arg(long = "enable_prometheus", alias = "enable-prometheus")]
    enable_prometheus: bool,
    #[arg(long = "log_file", alias = "log-file", default_value = "console")]
    log_file: String,
    #[arg(long = "log_level", alias = "log-level", default_value = "info")]
    log_level: String,
    #[arg(long = "log_max_days", alias = "log-max-days", default_value_t = 3)]
    log_max_days: i64,
    #[arg(long = "disable_log_color", alias = "disable-log-color")]
    disable_log_color: bool,
    /// auth token
    #[arg(short = 't', long = "token", default_value = "")]
    token: String,
    #[arg(long = "subdomain_host", alias = "subdomain-host", default_value = "")]
    subdomain_host: String,
    /// e.g. 2000-3000,3001
    #[arg(long = "allow_ports", alias = "allow-ports", default_value = "")]
    allow_ports: String,
    #[arg(
        long = "max_ports_per_client",
        alias = "max-ports-per-client",
        default_value_t = 0
    )]
    max_ports_per_client: i64,
    #[arg(long = "tls_only", alias = "tls-only")]
    tls_only: bool,
    #[arg(long = "dashboard_tls_mode", alias = "dashboard-tls-mode")]
    dashboard_tls_mode: bool,
    #[arg(
        long = "dashboard_tls_cert_file",
        alias = "dashboard-tls-cert-file",
        default_value = ""
    )]
    dashboard_tls_cert_file: String,
    #[arg(
        long = "dashboard_tls_key_file",
        alias = "dashboard-tls-key-file",
        default_value = ""
    )]
    dashboard_tls_key_file: String,
}

impl ServerFlags {
    fn to_config(&self) -> anyhow::Result<ServerConfig> {
        let mut c = config::default_server();
        c.bind_addr = self.bind_addr.clone();
        c.bind_port = self.bind_port;
        c.kcp_bind_port = self.kcp_bind_port;
        c.quic_bind_port = self.quic_bind_port;
        c.proxy_bind_addr = self.proxy_bind_addr.clone();
        c.vhost_http_port = self.vhost_http_port;
        c.vhost_https_port = self.vhost_https_port;
        c.vhost_http_timeout = self.vhost_http_timeout;
        c.web_server.addr = self.dashboard_addr.clone();
        c.web_server.port = self.dashboard_port;
        c.web_server.user = self.dashboard_user.clone();
        c.web_server.password = self.dashboard_pwd.as_str().into();
        if self.dashboard_tls_mode {
            c.web_server.tls = Some(TlsFilesConfig {
                cert_file: self.dashboard_tls_cert_file.clone(),
                key_file: self.dashboard_tls_key_file.clone(),
                trusted_ca_file: String::new(),
            });
        }
        c.enable_prometheus = self.enable_prometheus;
        c.log.to = self.log_file.clone();
        c.log.level = self.log_level.clone();
        c.log.max_days = self.log_max_days;
        c.log.disable_print_color = self.disable_log_color;
        c.auth.token = self.token.as_str().into();
        c.sub_domain_host = self.subdomain_host.clone();
        c.max_ports_per_client = self.max_ports_per_client;
        c.transport.tls.force = self.tls_only;
        for r in common::config::template::parse_number_range(&self.allow_ports)
            .map_err(anyhow::Error::msg)?
        {
            let p = u16::try_from(r).context("allow_ports: port out of range")?;
            c.allow_ports.push(PortsRange {
                single: p,
                ..Default::default()
            });
        }
        Ok(c)
    }
}

/// Entry point of the `frps` binary.
pub fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let (cfg, warnings) = match &cli.config {
        Some(path) => {
            let l = config::load_server(
                path,
                &LoadOptions {
                    strict: cli.strict_config,
                    allow_unsafe: cli.allow_unsafe.clone(),
                    ..Default::default()
                },
            )?;
            (l.config, l.warnings)
        }
        None => {
            let c = cli.flags.to_config()?;
            // Flags can set keys frp-rs does not act on yet (--vhost_http_port, ...): say so.
            let w = config::server_unsupported(&c)
                .iter()
                .map(|u| format!("command line: {u}"))
                .collect();
            (c, w)
        }
    };
    if let Some(Command::Verify) = cli.command {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        let path = cli
            .config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        println!("frps: the configuration file {path} syntax is ok");
        return Ok(());
    }
    common::log::init(&cfg.log).context("set up logging")?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    let rt = tokio::runtime::Runtime::new().context("start tokio runtime")?;
    // On a worker thread, not in `block_on` on the main thread (see frpc's `run`).
    let service = rt.spawn(async move {
        let server = crate::Server::bind(cfg).await?;
        let token = CancellationToken::new();
        tokio::spawn(common::signal::cancel_on_signal(token.clone()));
        server.run(token).await;
        anyhow::Ok(())
    });
    rt.block_on(service).context("frps service task")?
}
