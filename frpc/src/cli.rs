//! frpc's command line, as frp's (`cmd/frpc/sub`): `frpc -c FILE`, `frpc verify -c FILE`, and
//! the quick-start subcommands (`frpc tcp -s ADDR -P PORT -t TOKEN -l 22 -r 6000 ...`, and
//! `frpc stcp visitor ...`, in `quick`), `reload|status|stop` on the admin API, `--config_dir`
//! and `nathole discover`. Every flag and subcommand is frp's (plus `--watch`); flags parse as
//! pflag's (`common::cli`).

mod quick;

use anyhow::Context;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use common::config::{self, ClientConfig, LoadOptions};
use quick::Quick;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "frpc",
    about = "frpc is the client of frp (https://github.com/fatedier/frp)",
    long_about = "frpc is the client of frp (https://github.com/fatedier/frp): it logs in to \
frps and exposes local services through it.",
    disable_version_flag = true
)]
struct Cli {
    /// config file of frpc
    #[arg(
        short = 'c',
        long = "config",
        default_value = "./frpc.ini",
        global = true,
        value_parser = common::cli::path
    )]
    config: PathBuf,
    /// config directory, run one frpc service for each file in config directory
    #[arg(long = "config-dir", default_value = "", global = true)]
    config_dir: String,
    /// version of frpc
    #[arg(short = 'v', long = "version", global = true)]
    version: bool,
    /// strict config parsing mode, unknown fields will cause an errors
    #[arg(long = "strict-config", default_value_t = true, global = true)]
    strict_config: bool,
    /// allowed unsafe features, one or more of: TokenSourceExec
    #[arg(long = "allow-unsafe", value_delimiter = ',', global = true)]
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
    Reload(AdminFlags),
    /// Overview of all proxies status
    Status(AdminFlags),
    /// Stop the running frpc
    Stop(AdminFlags),
    /// Run frpc with a single tcp proxy
    Tcp(quick::PortCmd),
    /// Run frpc with a single udp proxy
    Udp(quick::PortCmd),
    /// Run frpc with a single http proxy
    Http(quick::HttpCmd),
    /// Run frpc with a single https proxy
    Https(quick::HttpsCmd),
    /// Run frpc with a single tcpmux proxy
    Tcpmux(quick::TcpmuxCmd),
    /// Run frpc with a single stcp proxy
    Stcp(quick::SecretCmd),
    /// Run frpc with a single sudp proxy
    Sudp(quick::SecretCmd),
    /// Run frpc with a single xtcp proxy
    Xtcp(quick::SecretCmd),
    /// Actions about nathole
    Nathole(Nathole),
    #[command(flatten)]
    Tools(common::cli::Tools),
}

/// Examples and the version line at the end of `--help`.
fn after_help() -> String {
    common::cli::after_help(
        "frpc",
        concat!(
            "  frpc -c /etc/frp/frpc.toml           run with a config file (TOML, YAML, JSON or INI)\n",
            "  frpc verify -c /etc/frp/frpc.toml    check a config file, then exit\n",
            "  frpc reload -c /etc/frp/frpc.toml    re-read the config of the running frpc (admin API)\n",
            "  frpc tcp -s frps.example.com -t TOKEN -n ssh -l 22 -r 6000\n",
            "                                       one tcp proxy from flags alone\n",
        ),
    )
}

/// The command line as `main` parses it.
fn command() -> clap::Command {
    common::cli::pflag_style(common::cli::global_heading(
        Cli::command().after_help(after_help()),
    ))
}

/// `frpc reload|status|stop`.
#[derive(Debug, Args)]
struct AdminFlags {
    /// Timeout for admin API calls
    #[arg(long = "api-timeout", default_value = "30s", value_parser = common::cli::go_duration)]
    api_timeout: Duration,
}

/// `frpc nathole` (frp `cmd/frpc/sub/nathole.go`).
#[derive(Debug, Args)]
struct Nathole {
    /// STUN server address for nathole
    #[arg(long = "nat-hole-stun-server", default_value = "", global = true)]
    nat_hole_stun_server: String,
    /// local address to connect STUN server
    #[arg(
        short = 'l',
        long = "nat-hole-local-addr",
        default_value = "",
        global = true
    )]
    nat_hole_local_addr: String,
    #[command(subcommand)]
    command: NatholeCmd,
}

#[derive(Debug, Subcommand)]
enum NatholeCmd {
    /// Discover nathole information from stun server
    Discover,
}

impl Command {
    /// The quick-start proxy or visitor this subcommand runs, if it is one.
    fn quick(&self) -> Option<Quick<'_>> {
        Some(match self {
            Command::Tcp(c) => Quick::Port("tcp", c),
            Command::Udp(c) => Quick::Port("udp", c),
            Command::Http(c) => Quick::Http(c),
            Command::Https(c) => Quick::Https(c),
            Command::Tcpmux(c) => Quick::Tcpmux(c),
            Command::Stcp(c) => Quick::Secret("stcp", c),
            Command::Sudp(c) => Quick::Secret("sudp", c),
            Command::Xtcp(c) => Quick::Secret("xtcp", c),
            _ => return None,
        })
    }
}

/// Entry point of the `frpc` binary.
pub fn main() -> ExitCode {
    let matches = command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            common::errln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The config a quick-start subcommand describes, loaded as plain JSON data (as frp builds it
/// from its flags: no template is rendered in a flag's value, and no file-format guess).
fn quick_config(q: &Quick<'_>, opts: &LoadOptions) -> anyhow::Result<config::Loaded<ClientConfig>> {
    let text = serde_json::to_string(&q.to_v1())?;
    Ok(config::load_client_data(
        &text,
        Path::new("<command line>"),
        opts,
    )?)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let opts = LoadOptions {
        strict: cli.strict_config,
        allow_unsafe: cli.allow_unsafe.clone(),
        ..Default::default()
    };
    let file = &cli.config;
    match &cli.command {
        None if cli.version => {
            common::outln!("{}", common::FRP_VERSION);
            Ok(())
        }
        None if !cli.config_dir.is_empty() => {
            serve(config_dir(Path::new(&cli.config_dir), &opts)?, false, opts)
        }
        None => {
            let loaded = config::load_client(file, &opts)?;
            serve(vec![(loaded, Some(file.clone()))], cli.watch, opts)
        }
        Some(Command::Verify) if file.as_os_str().is_empty() => {
            common::outln!("frpc: the configuration file is not specified");
            Ok(())
        }
        Some(Command::Verify) => {
            for w in &config::load_client(file, &opts)?.warnings {
                common::errln!("warning: {w}");
            }
            common::outln!(
                "frpc: the configuration file {} syntax is ok",
                file.display()
            );
            Ok(())
        }
        Some(cmd @ (Command::Reload(a) | Command::Status(a) | Command::Stop(a))) => {
            // Only webServer is needed: read as a reload reads (no token command run, no
            // certificate read; the running frpc resolved its token at its start).
            let opts = LoadOptions {
                reload: Some(config::Reload {
                    includes: Vec::new(),
                }),
                ..opts
            };
            let loaded = config::load_client(file, &opts)?;
            admin_command(
                cmd,
                &loaded.config.web_server,
                file,
                a.api_timeout,
                opts.strict,
            )
        }
        Some(Command::Nathole(n)) => nathole(n, file, &opts),
        Some(Command::Tools(t)) => Ok(t.run(command())?),
        Some(cmd) => match cmd.quick() {
            Some(q) => serve(vec![(quick_config(&q, &opts)?, None)], false, opts),
            None => anyhow::bail!("unknown command"),
        },
    }
}

/// `--config_dir`: every file under `dir` (frp walks it recursively) loaded as a config; one
/// that fails to load is reported and skipped, as frp does ("only designed for testing").
fn config_dir(
    dir: &Path,
    opts: &LoadOptions,
) -> anyhow::Result<Vec<(config::Loaded<ClientConfig>, Option<PathBuf>)>> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d)
            .with_context(|| format!("read config directory {}", d.display()))?
        {
            let p = e?.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let loaded: Vec<_> = files
        .into_iter()
        .filter_map(|p| match config::load_client(&p, opts) {
            Ok(l) => Some((l, Some(p))),
            Err(e) => {
                common::errln!("frpc service error for config file [{}]: {e}", p.display());
                None
            }
        })
        .collect();
    // frp exits 0 without a word here; a user who pointed at the wrong directory should know.
    if loaded.is_empty() {
        anyhow::bail!("no config file could be loaded from {}", dir.display());
    }
    Ok(loaded)
}

/// Runs one frpc service per config (each with the file it came from, for reload), until a
/// signal or every service has ended. Logging is set up from the first config.
fn serve(
    configs: Vec<(config::Loaded<ClientConfig>, Option<PathBuf>)>,
    watch: bool,
    load_opts: LoadOptions,
) -> anyhow::Result<()> {
    let Some((first, _)) = configs.first() else {
        return Ok(());
    };
    common::log::init(&first.config.log).context("set up logging")?;
    common::rlimit::raise_open_files_and_log();
    let rt = tokio::runtime::Runtime::new().context("start tokio runtime")?;
    // The service runs as a task on the worker threads, not inside `block_on` on the main
    // thread: there, every message between it and the tasks it drives crossed threads (a
    // futex wake-up per work connection in the profile).
    let service = rt.spawn(async move {
        let token = CancellationToken::new();
        tokio::spawn(common::signal::cancel_on_signal(token.clone()));
        let mut services = tokio::task::JoinSet::new();
        for (loaded, path) in configs {
            for w in loaded.warnings {
                tracing::warn!("{w}");
            }
            let mut client = crate::Client::new(loaded.config);
            if let Some(p) = path {
                tracing::info!("start frpc service for config file [{}]", p.display());
                client = client.with_config_path(p, load_opts.clone());
                if watch {
                    client.watch_config(&token)?;
                }
            }
            services.spawn(client.run(token.clone()));
        }
        let mut result = Ok(());
        while let Some(r) = services.join_next().await {
            if let Err(e) = r.context("frpc service task").and_then(|r| Ok(r?)) {
                result = Err(e);
            }
        }
        result
    });
    rt.block_on(service).context("frpc service task")?
}

/// `frpc nathole discover`: the STUN server from the flag, else from the config file (which may
/// be absent: frp then uses the defaults).
fn nathole(n: &Nathole, file: &Path, opts: &LoadOptions) -> anyhow::Result<()> {
    let NatholeCmd::Discover = n.command;
    let server = if n.nat_hole_stun_server.is_empty() {
        config::load_client(file, opts)
            .map(|l| l.config.nat_hole_stun_server)
            .unwrap_or_else(|_| config::default_client().nat_hole_stun_server)
    } else {
        n.nat_hole_stun_server.clone()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt
        .block_on(crate::nathole::report(&server, &n.nat_hole_local_addr))
        .map_err(anyhow::Error::msg)?;
    common::outln!("{}", report.trim_end_matches('\n'));
    Ok(())
}

/// `frpc reload|status|stop`: one call to the running frpc's admin API. `reload` names the file
/// it asks for (`configFile`, absolute); our frpc refuses when it runs another one and answers
/// which it reloaded ([`crate::admin::CONFIG_FILE_HEADER`]). A Go frpc ignores the parameter and
/// says nothing, so then only the file asked for is named.
fn admin_command(
    cmd: &Command,
    web: &common::config::WebServerConfig,
    config: &Path,
    timeout: Duration,
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
        Command::Reload(_) => (hyper::Method::GET, reload.as_str()),
        Command::Status(_) => (hyper::Method::GET, "/api/status"),
        _ => (hyper::Method::POST, "/api/stop"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let addr = crate::admin::api_addr(web);
    let answer = rt.block_on(async {
        tokio::time::timeout(timeout, crate::admin::call(web, method, path))
            .await
            .map_err(|_| anyhow::anyhow!("frpc's admin API at {addr} did not answer within {timeout:?}"))?
            .with_context(|| format!("cannot reach frpc's admin API at {addr} (frpc may not be running, or webServer may be off in the running frpc's config)"))
    })?;
    if answer.code == hyper::StatusCode::UNAUTHORIZED {
        anyhow::bail!(
            "frpc's admin API at {addr} refused the credentials: check webServer.user and webServer.password in {}",
            config.display()
        );
    }
    if !answer.code.is_success() {
        let msg = serde_json::from_str::<Value>(&answer.body)
            .ok()
            .and_then(|v| v["Msg"].as_str().map(str::to_owned));
        match msg {
            Some(msg) => anyhow::bail!("{msg}"),
            // Not frp's JSON error: say what answered instead of printing a whole page.
            None if answer.body.trim_start().starts_with('<') || answer.body.len() > 512 => {
                anyhow::bail!(
                    "{addr} answered {} with a page that is not frpc's: is webServer.port in {} the running frpc's admin port?",
                    answer.code,
                    config.display()
                )
            }
            None => anyhow::bail!("{}", answer.body.trim()),
        }
    }
    match cmd {
        Command::Reload(_) => match crate::admin::reported_config_file(&answer.headers) {
            Some(f) => common::outln!("reload success: {f}"),
            None => common::outln!(
                "reload success (asked to reload {}; the running frpc does not say which config file it reloaded)",
                asked.display()
            ),
        },
        Command::Stop(_) => common::outln!("stop success"),
        _ => print_status(&serde_json::from_str(&answer.body).context("parse status")?),
    }
    Ok(())
}

/// Prints `/api/status` as frp's `frpc status` does: one table per proxy type; then the
/// visitors (with their type where proxies have their plugin).
fn print_status(res: &std::collections::BTreeMap<String, Vec<crate::ProxyStatusResp>>) {
    common::outln!("Proxy Status...\n");
    for kind in [
        "tcp",
        "udp",
        "tcpmux",
        "http",
        "https",
        "stcp",
        "sudp",
        "xtcp",
        crate::admin::VISITORS_KEY,
    ] {
        let Some(rows) = res.get(kind).filter(|r| !r.is_empty()) else {
            continue;
        };
        let visitors = kind == crate::admin::VISITORS_KEY;
        common::outln!("{}", kind.to_uppercase());
        let mut table = vec![[
            "Name",
            "Status",
            "LocalAddr",
            if visitors { "Type" } else { "Plugin" },
            "RemoteAddr",
            "Error",
        ]
        .map(str::to_owned)];
        for r in rows {
            table.push([
                r.name.clone(),
                r.status.clone(),
                r.local_addr.clone(),
                if visitors {
                    r.kind.clone()
                } else {
                    r.plugin.clone()
                },
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
            common::outln!("{}", line.join("  ").trim_end());
        }
        common::outln!("");
    }
}
