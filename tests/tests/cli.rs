//! The command lines of the real binaries against frp 0.70's (`cmd/frps`, `cmd/frpc/sub`,
//! `pkg/config/flags.go`): every subcommand, every flag, pflag's spellings, and help that says
//! what each flag does and its default.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use tests::procs::*;
use tests::*;

/// One flag's entry in `--help`: its long name and the text after its spelling.
fn help_entries(help: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let t = line.trim_start();
        let is_flag = line.starts_with("  ") && t.starts_with('-');
        if is_flag {
            let spec_end = t.find("  ").unwrap_or(t.len());
            let long = t[..spec_end]
                .split(['[', '<', ' ', '='])
                .find_map(|w| w.strip_prefix("--"))
                .unwrap_or_default()
                .trim_end_matches(',')
                .to_owned();
            out.push((long, t[spec_end..].trim().to_owned()));
        } else if let Some(last) = out.last_mut() {
            if line.starts_with("  ") && !t.is_empty() {
                last.1.push(' ');
                last.1.push_str(t);
            }
        }
    }
    out
}

/// The subcommands listed in `--help`.
fn help_commands(help: &str) -> BTreeSet<String> {
    help.split("Commands:")
        .nth(1)
        .unwrap_or_default()
        .split("Options:")
        .next()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

async fn help(bin: &str, path: &[&str]) -> String {
    let mut args = path.to_vec();
    args.push("--help");
    let out = run(bin, &args).await;
    assert!(
        out.status.success(),
        "{bin} {path:?} --help: {}",
        stderr(&out)
    );
    stdout(&out)
}

const FRPS_FLAGS: &[&str] = &[
    "config",
    "version",
    "strict-config",
    "allow-unsafe",
    "bind-addr",
    "bind-port",
    "kcp-bind-port",
    "quic-bind-port",
    "proxy-bind-addr",
    "vhost-http-port",
    "vhost-https-port",
    "vhost-http-timeout",
    "dashboard-addr",
    "dashboard-port",
    "dashboard-user",
    "dashboard-pwd",
    "enable-prometheus",
    "log-file",
    "log-level",
    "log-max-days",
    "disable-log-color",
    "token",
    "subdomain-host",
    "allow-ports",
    "max-ports-per-client",
    "tls-only",
    "dashboard-tls-cert-file",
    "dashboard-tls-key-file",
    "dashboard-tls-mode",
];
/// frpc's persistent root flags (every subcommand has them).
const FRPC_ROOT: &[&str] = &[
    "config",
    "config-dir",
    "version",
    "strict-config",
    "allow-unsafe",
];
/// `RegisterClientCommonConfigFlags`: every quick-start subcommand and its visitor.
const FRPC_CLIENT: &[&str] = &[
    "server-addr",
    "server-port",
    "protocol",
    "log-level",
    "log-file",
    "log-max-days",
    "disable-log-color",
    "tls-server-name",
    "dns-server",
    "tls-enable",
    "user",
    "client-id",
    "token",
];
/// `registerProxyBaseConfigFlags`.
const PROXY_BASE: &[&str] = &[
    "proxy-name",
    "metadatas",
    "annotations",
    "local-ip",
    "local-port",
    "ue",
    "uc",
    "bandwidth-limit-mode",
    "bandwidth-limit",
];
const DOMAIN: &[&str] = &["custom-domain", "sd"];
const VISITOR: &[&str] = &[
    "visitor-name",
    "ue",
    "uc",
    "sk",
    "server-name",
    "server-user",
    "bind-addr",
    "bind-port",
];

fn set(parts: &[&[&str]]) -> BTreeSet<String> {
    parts
        .iter()
        .flat_map(|p| p.iter())
        .chain(&["help"])
        .map(|s| s.to_string())
        .collect()
}

/// Every subcommand of both binaries lists exactly frp's flags (plus `--watch` on frpc, ours),
/// each with a line of help; defaults are shown.
#[tokio::test]
async fn every_subcommand_has_frps_flags_and_help_for_each() {
    let cases: Vec<(&str, Vec<&str>, BTreeSet<String>)> = vec![
        ("frps", vec![], set(&[FRPS_FLAGS])),
        ("frps", vec!["verify"], set(&[FRPS_FLAGS])),
        ("frpc", vec![], set(&[FRPC_ROOT, &["watch"]])),
        ("frpc", vec!["verify"], set(&[FRPC_ROOT])),
        ("frpc", vec!["reload"], set(&[FRPC_ROOT, &["api-timeout"]])),
        ("frpc", vec!["status"], set(&[FRPC_ROOT, &["api-timeout"]])),
        ("frpc", vec!["stop"], set(&[FRPC_ROOT, &["api-timeout"]])),
        (
            "frpc",
            vec!["tcp"],
            set(&[FRPC_ROOT, FRPC_CLIENT, PROXY_BASE, &["remote-port"]]),
        ),
        (
            "frpc",
            vec!["udp"],
            set(&[FRPC_ROOT, FRPC_CLIENT, PROXY_BASE, &["remote-port"]]),
        ),
        (
            "frpc",
            vec!["http"],
            set(&[
                FRPC_ROOT,
                FRPC_CLIENT,
                PROXY_BASE,
                DOMAIN,
                &["locations", "http-user", "http-pwd", "host-header-rewrite"],
            ]),
        ),
        (
            "frpc",
            vec!["https"],
            set(&[FRPC_ROOT, FRPC_CLIENT, PROXY_BASE, DOMAIN]),
        ),
        (
            "frpc",
            vec!["tcpmux"],
            set(&[
                FRPC_ROOT,
                FRPC_CLIENT,
                PROXY_BASE,
                DOMAIN,
                &["mux", "http-user", "http-pwd"],
            ]),
        ),
        (
            "frpc",
            vec!["nathole"],
            set(&[FRPC_ROOT, &["nat-hole-stun-server", "nat-hole-local-addr"]]),
        ),
        (
            "frpc",
            vec!["nathole", "discover"],
            set(&[FRPC_ROOT, &["nat-hole-stun-server", "nat-hole-local-addr"]]),
        ),
    ];
    let mut cases = cases;
    for kind in ["stcp", "sudp", "xtcp"] {
        cases.push((
            "frpc",
            vec![kind],
            set(&[FRPC_ROOT, FRPC_CLIENT, PROXY_BASE, &["sk", "allow-users"]]),
        ));
        cases.push((
            "frpc",
            vec![kind, "visitor"],
            set(&[FRPC_ROOT, FRPC_CLIENT, VISITOR]),
        ));
    }
    for (bin, path, want) in cases {
        let text = help(bin, &path).await;
        let entries = help_entries(&text);
        let got: BTreeSet<String> = entries.iter().map(|(l, _)| l.clone()).collect();
        assert_eq!(got, want, "{bin} {path:?} flags:\n{text}");
        for (long, desc) in &entries {
            let words = desc.split("[default").next().unwrap_or_default().trim();
            assert!(
                !words.is_empty(),
                "{bin} {path:?} --{long} has no description:\n{text}"
            );
        }
    }
}

#[tokio::test]
async fn subcommands_are_frps() {
    // `completion` is cobra's default subcommand, which frp has too.
    let frps: BTreeSet<String> = ["verify", "completion", "help"].map(String::from).into();
    assert_eq!(help_commands(&help("frps", &[]).await), frps);
    let frpc: BTreeSet<String> = [
        "verify",
        "reload",
        "status",
        "stop",
        "tcp",
        "udp",
        "http",
        "https",
        "tcpmux",
        "stcp",
        "sudp",
        "xtcp",
        "nathole",
        "completion",
        "help",
    ]
    .map(String::from)
    .into();
    assert_eq!(help_commands(&help("frpc", &[]).await), frpc);
    for kind in ["stcp", "sudp", "xtcp"] {
        let want: BTreeSet<String> = ["visitor", "help"].map(String::from).into();
        assert_eq!(help_commands(&help("frpc", &[kind]).await), want, "{kind}");
    }
}

/// `frpc tcp --help` shows tcp's flags with their defaults and says the proxy name is required.
#[tokio::test]
async fn quick_start_help_shows_defaults_and_the_required_name() {
    let text = help("frpc", &["tcp"]).await;
    let entries: std::collections::BTreeMap<String, String> =
        help_entries(&text).into_iter().collect();
    assert!(entries["proxy-name"].contains("required"), "{text}");
    for (flag, default) in [
        ("server-addr", "127.0.0.1"),
        ("server-port", "7000"),
        ("protocol", "tcp"),
        ("local-ip", "127.0.0.1"),
        ("tls-enable", "true"),
        ("ue", "false"),
        ("log-max-days", "3"),
        ("bandwidth-limit-mode", "client"),
        ("config", "./frpc.ini"),
        ("strict-config", "true"),
    ] {
        assert!(
            entries[flag].contains(&format!("[default: {default}]")),
            "--{flag}: {:?}",
            entries[flag]
        );
    }
    let out = run("frpc", &["tcp", "-l", "22", "-r", "6000"]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--proxy-name"), "{}", stderr(&out));
    let api = help("frpc", &["status"]).await;
    assert!(api.contains("[default: 30s]"), "{api}");
}

#[tokio::test]
async fn version_flags_print_the_version() {
    for bin in ["frps", "frpc"] {
        for flag in ["-v", "--version"] {
            let out = run(bin, &[flag]).await;
            assert!(out.status.success(), "{bin} {flag}: {}", stderr(&out));
            assert_eq!(stdout(&out).trim(), common::FRP_VERSION, "{bin} {flag}");
        }
    }
}

#[tokio::test]
async fn verify_without_a_file_says_so() {
    let out = run("frps", &["verify"]).await;
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).trim(),
        "frps: the configuration file is not specified"
    );
    let out = run("frpc", &["verify", "-c", ""]).await;
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).trim(),
        "frpc: the configuration file is not specified"
    );
}

/// `--strict_config` and `--tls_enable` are pflag booleans: bare, `=true`, `=false`, and
/// either spelling of the name.
#[tokio::test]
async fn boolean_flags_work_bare_and_with_values() {
    let dir = tempdir("cli-bool");
    let loose = write(&dir, "frps.toml", "bindPort = 7000\nnoSuchKey = 1\n");
    for (bin, args, ok) in [
        ("frps", vec!["verify", "-c", &loose], false),
        (
            "frps",
            vec!["verify", "-c", &loose, "--strict_config"],
            false,
        ),
        (
            "frps",
            vec!["--strict_config", "verify", "-c", &loose],
            false,
        ),
        (
            "frps",
            vec!["verify", "-c", &loose, "--strict_config=true"],
            false,
        ),
        (
            "frps",
            vec!["verify", "-c", &loose, "--strict_config=false"],
            true,
        ),
        (
            "frps",
            vec!["verify", "-c", &loose, "--strict-config=false"],
            true,
        ),
        (
            "frpc",
            vec!["verify", "-c", &loose, "--strict_config=false"],
            true,
        ),
        (
            "frpc",
            vec!["verify", "-c", &loose, "--strict_config"],
            false,
        ),
    ] {
        let out = run(bin, &args).await;
        assert_eq!(out.status.success(), ok, "{bin} {args:?}: {}", stderr(&out));
    }

    // --tls_enable against an frps that takes TLS only: bare switch logs in, =false is refused.
    let (_frps, bind) = start_frps(&dir, "auth.token = \"t\"\ntransport.tls.force = true\n").await;
    let echo = echo_tcp().await;
    let remote = free_port().await;
    let (b, l, r) = (
        bind.to_string(),
        echo.port().to_string(),
        remote.to_string(),
    );
    let quick = |tls: &'static str| {
        vec![
            "tcp",
            "-s",
            "127.0.0.1",
            "-P",
            &b,
            "-t",
            "t",
            "-n",
            "q",
            "-l",
            &l,
            "-r",
            &r,
            tls,
        ]
    };
    let out = run("frpc", &quick("--tls_enable=false")).await;
    assert!(!out.status.success(), "plain login refused");
    let _frpc = spawn("frpc", &quick("--tls_enable"));
    wait_tunnel(([127, 0, 0, 1], remote).into()).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// `--config_dir`: one frpc service per file in the directory, as frp.
#[tokio::test]
async fn config_dir_runs_one_service_per_file() {
    let dir = tempdir("cli-confdir");
    let (_frps, bind) = start_frps(&dir, "").await;
    let confs = dir.join("frpc.d");
    std::fs::create_dir_all(&confs).unwrap();
    let echo = echo_tcp().await;
    let mut remotes = Vec::new();
    for name in ["a", "b"] {
        let remote = free_port().await;
        remotes.push(remote);
        write(
            &confs,
            &format!("{name}.toml"),
            &format!(
                "serverAddr = \"127.0.0.1\"\nserverPort = {bind}\n[[proxies]]\nname = \"{name}\"\ntype = \"tcp\"\nlocalPort = {}\nremotePort = {remote}\n",
                echo.port()
            ),
        );
    }
    let _frpc = spawn("frpc", &["--config_dir", &confs.display().to_string()]);
    for remote in remotes {
        wait_tunnel(([127, 0, 0, 1], remote).into()).await;
    }
    // A directory with no config in it is an error that names it (frp exits 0 silently).
    let empty = dir.join("empty.d");
    std::fs::create_dir_all(&empty).unwrap();
    let out = run("frpc", &["--config_dir", &empty.display().to_string()]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("no config file could be loaded from"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `frpc nathole discover` asks the STUN server and its other address, and reports as frp.
#[tokio::test]
async fn nathole_discover_reports_the_nat() {
    let second = stun_server(None).await;
    let first = stun_server(Some(second)).await;
    let local = free_port().await;
    let out = run(
        "frpc",
        &[
            "nathole",
            "discover",
            "-c",
            "/nonexistent/frpc.toml",
            "--nat_hole_stun_server",
            &first.to_string(),
            "-l",
            &format!("127.0.0.1:{local}"),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let me = format!("127.0.0.1:{local}");
    assert_eq!(
        stdout(&out),
        format!(
            "STUN server: {first}\nYour NAT type is: EasyNAT\nBehavior is: BehaviorNoChange\nExternal address is: [{me} {me}]\nLocal address is: {me}\nPublic Network: false\n"
        )
    );
    let out = run(
        "frpc",
        &[
            "nathole",
            "discover",
            "--nat_hole_stun_server",
            &second.to_string(),
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        stdout(&out).is_empty() && stderr(&out).contains("can not get enough addresses, need 2"),
        "{}",
        stderr(&out)
    );
}

/// `completion SHELL` writes a script each shell accepts (checked with the shell when it is
/// installed) that knows the subcommands and flags; the hidden `man` writes a man page that
/// names the frp version; `--help` ends with examples and that version.
#[tokio::test]
async fn completions_man_pages_and_help_for_both_binaries() {
    for bin in ["frps", "frpc"] {
        for (shell, marker, check) in [
            ("bash", format!("_{bin}()"), Some(("bash", "-n"))),
            ("zsh", format!("#compdef {bin}"), Some(("zsh", "-n"))),
            (
                "fish",
                format!("complete -c {bin}"),
                Some(("fish", "--no-execute")),
            ),
        ] {
            let out = tests::run_bin(bin, &["completion", shell]).await;
            assert!(out.status.success(), "{bin} completion {shell}");
            let script = String::from_utf8(out.stdout).unwrap();
            assert!(script.contains(&marker), "{bin} {shell}: {marker}");
            for word in ["verify", "completion", "config", "strict-config"] {
                assert!(script.contains(word), "{bin} {shell} completes {word}");
            }
            let Some((sh, flag)) = check else { continue };
            let path = std::env::temp_dir().join(format!(
                "frp-rs-completion-{}-{bin}.{shell}",
                std::process::id()
            ));
            std::fs::write(&path, &script).unwrap();
            match std::process::Command::new(sh).arg(flag).arg(&path).output() {
                Ok(o) => assert!(
                    o.status.success(),
                    "{sh} rejects {bin}'s script: {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(_) => eprintln!("{sh} is not installed: {bin}'s {shell} script not run"),
            }
            let _ = std::fs::remove_file(&path);
        }
        let out = tests::run_bin(bin, &["completion", "tcsh"]).await;
        assert!(!out.status.success(), "an unknown shell is an error");

        let out = tests::run_bin(bin, &["man"]).await;
        assert!(out.status.success());
        let man = String::from_utf8(out.stdout).unwrap();
        assert!(man.contains(&format!(".TH {bin} 1")), "{man}");
        assert!(
            man.contains(common::FRP_VERSION),
            "the man page names the frp version"
        );
        for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH SUBCOMMANDS"] {
            assert!(man.contains(section), "{bin} man: {section}");
        }

        let text = help(bin, &[]).await;
        assert!(text.contains("Examples:"), "{text}");
        assert!(
            text.contains(&format!("compatible with frp {}", common::FRP_VERSION)),
            "{text}"
        );
        let v = tests::run_bin(bin, &["--version"]).await;
        assert_eq!(
            String::from_utf8_lossy(&v.stdout).trim(),
            common::FRP_VERSION
        );
    }
}
