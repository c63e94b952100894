//! Logging set-up shared by both binaries: frp's `log.level` and `log.to` (console or a file).

use std::io;

/// Installs the global tracing subscriber from `log.*`. `RUST_LOG`, when set, overrides the level.
/// Colours only on a terminal, and never with `log.disablePrintColor`.
pub fn init(cfg: &crate::config::LogConfig) -> io::Result<()> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(frp_level(&cfg.level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let to = cfg.to.as_str();
    let res = if to.is_empty() || to == "console" {
        let ansi = !cfg.disable_print_color && io::stderr().is_terminal();
        builder.with_ansi(ansi).with_writer(io::stderr).try_init()
    } else {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(to)?;
        builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init()
    };
    res.map_err(|e| io::Error::other(e.to_string()))
}

/// Maps frp's level names (trace, debug, info, warn, error) to tracing's.
fn frp_level(level: &str) -> &'static str {
    match level.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "warn" => "warn",
        "error" => "error",
        _ => "info",
    }
}
