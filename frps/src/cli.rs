//! frps's command line, as frp's (`cmd/frps`): `frps [-c FILE]`, `frps verify -c FILE`, and
//! flags for running without a file.

use anyhow::Context;
use clap::{Parser, Subcommand};
use common::config::{self, ServerConfig};
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
    #[arg(long = "strict_config", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    strict_config: bool,
    /// bind address
    #[arg(long = "bind_addr")]
    bind_addr: Option<String>,
    /// bind port
    #[arg(short = 'p', long = "bind_port")]
    bind_port: Option<u16>,
    /// auth token
    #[arg(short = 't', long = "token")]
    token: Option<String>,
    /// log level
    #[arg(long = "log_level")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify that the configures is valid
    Verify,
}

/// Entry point of the `frps` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(cli: &Cli) -> anyhow::Result<ServerConfig> {
    let mut cfg = match &cli.config {
        Some(path) => config::load_server(path, cli.strict_config)?,
        None => config::parse_server("", std::path::Path::new("<flags>"), true)?,
    };
    if cli.config.is_none() {
        if let Some(a) = &cli.bind_addr {
            cfg.bind_addr = a.clone();
            cfg.proxy_bind_addr = a.clone();
        }
        if let Some(p) = cli.bind_port {
            cfg.bind_port = p;
        }
        if let Some(t) = &cli.token {
            cfg.auth.token = t.clone();
        }
        if let Some(l) = &cli.log_level {
            cfg.log.level = l.clone();
        }
    }
    Ok(cfg)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg = load(&cli)?;
    if let Some(Command::Verify) = cli.command {
        let path = cli
            .config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        println!("frps: the configuration file {path} syntax is ok");
        return Ok(());
    }
    common::log::init(&cfg.log).context("set up logging")?;
    let rt = tokio::runtime::Runtime::new().context("start tokio runtime")?;
    rt.block_on(async move {
        let server = crate::Server::bind(cfg).await?;
        let token = CancellationToken::new();
        tokio::spawn(common::signal::cancel_on_signal(token.clone()));
        server.run(token).await;
        Ok(())
    })
}
