//! frpc's command line, as frp's (`cmd/frpc`): `frpc -c FILE`, `frpc verify -c FILE`.
//! (`reload`, `status`, `stop` come with the admin API.)

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
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
    #[arg(long = "strict_config", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    strict_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify that the configures is valid
    Verify,
}

/// Entry point of the `frpc` binary.
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

fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg = common::config::load_client(&cli.config, cli.strict_config)?;
    if let Some(Command::Verify) = cli.command {
        println!(
            "frpc: the configuration file {} syntax is ok",
            cli.config.display()
        );
        return Ok(());
    }
    common::log::init(&cfg.log).context("set up logging")?;
    let rt = tokio::runtime::Runtime::new().context("start tokio runtime")?;
    rt.block_on(async move {
        let token = CancellationToken::new();
        tokio::spawn(common::signal::cancel_on_signal(token.clone()));
        crate::Client::new(cfg).run(token).await?;
        Ok(())
    })
}
