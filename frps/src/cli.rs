//! frps's command line, as frp's (`cmd/frps`, `pkg/config/flags.go`): `frps [-c FILE]`,
//! `frps verify -c FILE`, or flags alone (`--bind_port`, `-t`, ...). Flag names accept `_` or `-`.

use anyhow::Context;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use common::config::{self, LoadOptions, PortsRange, ServerConfig, TlsFilesConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "frps",
    about = "frps is the server of frp (https://github.com/fatedier/frp)",
    long_about = "frps is the server of frp (https://github.com/fatedier/frp): frpc connect to \
it and it exposes their local services on its ports and virtual hosts.",
    disable_version_flag = true
)]
struct Cli {
    /// config file of frps
    #[arg(short = 'c', long = "config", global = true, value_parser = common::cli::path)]
    config: Option<PathBuf>,
    /// version of frps
    #[arg(short = 'v', long = "version", global = true)]
    version: bool,
    /// strict config parsing mode, unknown fields will cause errors
    #[arg(long = "strict-config", default_value_t = true, global = true)]
    strict_config: bool,
    #[command(flatten)]
    flags: ServerFlags,
    /// allowed unsafe features, one or more of: TokenSourceExec
    #[arg(long = "allow-unsafe", value_delimiter = ',', global = true)]
    allow_unsafe: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify that the configures is valid
    Verify,
    #[command(flatten)]
    Tools(common::cli::Tools),
}

/// Examples and the version line at the end of `--help`.
fn after_help() -> String {
    common::cli::after_help(
        "frps",
        concat!(
            "  frps -c /etc/frp/frps.toml           run with a config file (TOML, YAML, JSON or INI)\n",
            "  frps verify -c /etc/frp/frps.toml    check a config file, then exit\n",
            "  frps -p 7000 -t TOKEN                run from flags alone, without a config file\n",
        ),
    )
}

/// The command line as `main` parses it.
fn command() -> clap::Command {
    common::cli::pflag_style(common::cli::global_heading(
        Cli::command().after_help(after_help()),
    ))
}

/// frp `RegisterServerConfigFlags`: persistent, used only without `-c`.
#[derive(Debug, Args)]
struct ServerFlags {
    /// bind address
    #[arg(long = "bind-addr", default_value = "0.0.0.0", global = true)]
    bind_addr: String,
    /// bind port
    #[arg(short = 'p', long = "bind-port", default_value_t = 7000, global = true)]
    bind_port: u16,
    /// kcp bind udp port
    #[arg(long = "kcp-bind-port", default_value_t = 0, global = true)]
    kcp_bind_port: u16,
    /// quic bind udp port
    #[arg(long = "quic-bind-port", default_value_t = 0, global = true)]
    quic_bind_port: u16,
    /// proxy bind address
    #[arg(long = "proxy-bind-addr", default_value = "0.0.0.0", global = true)]
    proxy_bind_addr: String,
    /// vhost http port
    #[arg(long = "vhost-http-port", default_value_t = 0, global = true)]
    vhost_http_port: u16,
    /// vhost https port
    #[arg(long = "vhost-https-port", default_value_t = 0, global = true)]
    vhost_https_port: u16,
    /// vhost http response header timeout
    #[arg(long = "vhost-http-timeout", default_value_t = 60, global = true)]
    vhost_http_timeout: i64,
    /// dashboard address
    #[arg(long = "dashboard-addr", default_value = "0.0.0.0", global = true)]
    dashboard_addr: String,
    /// dashboard port
    #[arg(long = "dashboard-port", default_value_t = 0, global = true)]
    dashboard_port: u16,
    /// dashboard user
    #[arg(long = "dashboard-user", default_value = "admin", global = true)]
    dashboard_user: String,
    /// dashboard password
    #[arg(long = "dashboard-pwd", default_value = "admin", global = true)]
    dashboard_pwd: String,
    /// enable prometheus dashboard
    #[arg(long = "enable-prometheus", global = true)]
    enable_prometheus: bool,
    /// log file
    #[arg(long = "log-file", default_value = "console", global = true)]
    log_file: String,
    /// log level
    #[arg(long = "log-level", default_value = "info", global = true)]
    log_level: String,
    /// log max days
    #[arg(long = "log-max-days", default_value_t = 3, global = true)]
    log_max_days: i64,
    /// disable log color in console
    #[arg(long = "disable-log-color", global = true)]
    disable_log_color: bool,
    /// auth token
    #[arg(short = 't', long = "token", default_value = "", global = true)]
    token: String,
    /// subdomain host
    #[arg(long = "subdomain-host", default_value = "", global = true)]
    subdomain_host: String,
    /// allow ports, e.g. 2000-3000,3001
    #[arg(long = "allow-ports", default_value = "", global = true)]
    allow_ports: String,
    /// max ports per client
    #[arg(long = "max-ports-per-client", default_value_t = 0, global = true)]
    max_ports_per_client: i64,
    /// frps tls only
    #[arg(long = "tls-only", global = true)]
    tls_only: bool,
    /// if enable dashboard tls mode
    #[arg(long = "dashboard-tls-mode", global = true)]
    dashboard_tls_mode: bool,
    /// dashboard tls cert file
    #[arg(long = "dashboard-tls-cert-file", default_value = "", global = true)]
    dashboard_tls_cert_file: String,
    /// dashboard tls key file
    #[arg(long = "dashboard-tls-key-file", default_value = "", global = true)]
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
    let matches = command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            common::errln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(mut cli: Cli) -> anyhow::Result<()> {
    // frp: an empty `-c` is no file.
    cli.config = cli.config.filter(|p| !p.as_os_str().is_empty());
    if cli.version {
        common::outln!("{}", common::FRP_VERSION);
        return Ok(());
    }
    if let Some(Command::Tools(t)) = &cli.command {
        return Ok(t.run(command())?);
    }
    if matches!(cli.command, Some(Command::Verify)) && cli.config.is_none() {
        common::outln!("frps: the configuration file is not specified");
        return Ok(());
    }
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
            common::errln!("warning: {w}");
        }
        let path = cli
            .config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        common::outln!("frps: the configuration file {path} syntax is ok");
        return Ok(());
    }
    common::log::init(&cfg.log).context("set up logging")?;
    match &cli.config {
        Some(path) => tracing::info!("frps uses config file: {}", path.display()),
        None => tracing::info!("frps uses command line arguments for config"),
    }
    for w in warnings {
        tracing::warn!("{w}");
    }
    common::rlimit::raise_open_files_and_log();
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
