//! What both command lines share to read like frp's (cobra + pflag, `cmd/frps`, `cmd/frpc`):
//! [`pflag_style`] turns a clap command tree into one that parses as pflag does, and the value
//! parsers read Go's spellings of booleans and durations.
//!
//! pflag, as frp sets it up (`config.WordSepNormalizeFunc`), differs from clap's defaults in:
//! - flag names: `_` and `-` are the same (`--server_addr` = `--server-addr`); help shows `-`;
//! - booleans: `--flag` alone means true, `--flag=false` turns a default-true flag off, and
//!   `--flag false` is not a value (a value needs `=`);
//! - the version: `-v` / `--version` print the bare version.

use clap::{Arg, ArgAction, Command};
use std::time::Duration;

/// Applies pflag's conventions to `cmd` and every subcommand: each long name with `-` also
/// answers to its `_` spelling, and every switch (`ArgAction::SetTrue`) becomes a pflag boolean
/// that keeps its declared default (false unless the field says `default_value_t = true`).
pub fn pflag_style(cmd: Command) -> Command {
    cmd.mut_args(pflag_arg).mut_subcommands(pflag_style)
}

/// Puts `cmd`'s global flags under their own heading, as cobra's "Global Flags".
pub fn global_heading(cmd: Command) -> Command {
    cmd.mut_args(|a| {
        if a.is_global_set() {
            a.help_heading("Global Options")
        } else {
            a
        }
    })
}

fn pflag_arg(a: Arg) -> Arg {
    let a = match a
        .get_long()
        .filter(|l| l.contains('-'))
        .map(|l| l.replace('-', "_"))
    {
        Some(alias) => a.alias(alias),
        None => a,
    };
    if !matches!(a.get_action(), ArgAction::SetTrue) {
        // An empty default says nothing in help (pflag shows none either).
        let empty = a.get_default_values().iter().all(|v| v.is_empty());
        return if empty { a.hide_default_value(true) } else { a };
    }
    let default = a
        .get_default_values()
        .first()
        .and_then(|v| v.to_str())
        .map_or("false", |v| {
            if go_bool(v) == Ok(true) {
                "true"
            } else {
                "false"
            }
        });
    a.action(ArgAction::Set)
        .num_args(0..=1)
        .require_equals(true)
        .default_missing_value("true")
        .default_value(default)
        .value_name("true|false")
        .value_parser(go_bool)
}

/// Go's `strconv.ParseBool`.
pub fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("{s:?} is not a boolean (true or false)")),
    }
}

/// Go's `time.ParseDuration`: `30s`, `1m30s`, `1.5h`, `500ms`, `0`.
pub fn go_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (e.g. 30s, 1m30s, 500ms)");
    match s {
        "0" => return Ok(Duration::ZERO),
        "" => return Err(bad()),
        _ => {}
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += n * secs;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// A path, possibly empty (pflag takes `-c ""`; frp reads it as "no file").
pub fn path(s: &str) -> Result<std::path::PathBuf, String> {
    Ok(s.into())
}

/// One `key=value` of a pflag string-to-string flag (`--metadatas a=1,b=2`).
pub fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} must be formatted as key=value"))
}

/// Shells `completion` writes a script for (cobra's `completion` subcommand in frp has the same
/// names).
pub use clap_complete::Shell;

/// The subcommands both binaries have for packaging: `completion SHELL` (as cobra's in frp) and
/// the hidden `man`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Tools {
    /// Print the completion script for a shell (bash, zsh, fish, powershell, elvish)
    Completion {
        /// the shell to complete for
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff): `frps man > /usr/local/share/man/man1/frps.1`
    #[command(hide = true)]
    Man,
}

impl Tools {
    /// Writes the script or page for `cmd` (the command tree as the binary parses it) to stdout.
    pub fn run(&self, mut cmd: Command) -> std::io::Result<()> {
        let mut out = Vec::new();
        match self {
            Tools::Completion { shell } => {
                let name = cmd.get_name().to_owned();
                clap_complete::generate(*shell, &mut cmd, name, &mut out);
            }
            Tools::Man => {
                let version = format!(
                    "frp-rs {} (frp {})",
                    env!("CARGO_PKG_VERSION"),
                    crate::FRP_VERSION
                );
                clap_mangen::Man::new(cmd.version(version)).render(&mut out)?;
            }
        }
        std::io::Write::write_all(&mut std::io::stdout().lock(), &out)
    }
}

/// The end of `bin --help`: `examples` (lines of "command   what it does"), then the versions.
pub fn after_help(bin: &str, examples: &str) -> String {
    format!(
        "Examples:\n{examples}  {bin} completion bash > /etc/bash_completion.d/{bin}\n\n\
         This is frp-rs {}, compatible with frp {} (`{bin} -v` prints that frp version).",
        env!("CARGO_PKG_VERSION"),
        crate::FRP_VERSION
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::{Args, FromArgMatches, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[arg(long = "strict-config", global = true, default_value_t = true)]
        strict_config: bool,
        #[arg(long = "tls-enable")]
        tls_enable: bool,
        #[command(subcommand)]
        sub: Option<Sub>,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Sub {
        Verify(V),
    }

    #[derive(Debug, Args)]
    struct V {
        #[arg(long = "server-addr", default_value = "127.0.0.1")]
        server_addr: String,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let m = pflag_style(<Cli as clap::CommandFactory>::command())
            .try_get_matches_from(std::iter::once("x").chain(args.iter().copied()))?;
        Cli::from_arg_matches(&m)
    }

    #[test]
    fn switches_parse_as_pflag_booleans() {
        let c = parse(&[]).unwrap();
        assert!(c.strict_config && !c.tls_enable);
        let c = parse(&["--strict_config=false", "--tls-enable"]).unwrap();
        assert!(!c.strict_config && c.tls_enable);
        let c = parse(&["--strict-config", "--tls_enable=F"]).unwrap();
        assert!(c.strict_config && !c.tls_enable);
        // A bare switch before a subcommand does not eat it.
        let c = parse(&["--strict_config", "verify", "--server_addr", "h"]).unwrap();
        assert!(c.strict_config);
        assert!(matches!(c.sub, Some(Sub::Verify(V { server_addr })) if server_addr == "h"));
        let c = parse(&["verify", "--strict_config=0"]).unwrap();
        assert!(!c.strict_config);
        assert!(parse(&["--tls_enable=maybe"]).is_err());
    }

    #[test]
    fn go_values() {
        assert_eq!(go_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(go_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(go_duration("0"), Ok(Duration::ZERO));
        assert!(
            go_duration("30").is_err() && go_duration("s").is_err() && go_duration("").is_err()
        );
        assert_eq!(key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(key_value("a").is_err());
    }
}
