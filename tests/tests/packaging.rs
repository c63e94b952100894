//! What operators install (issue 20): the annotated example configs, the systemd units, the
//! container image definition, the Kubernetes manifests, the Grafana dashboard. Each is
//! checked against the code so it cannot drift.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::config::{self, LoadOptions};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tests::procs::repo_root;

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every key path in `v`: `transport.tls.certFile`, `proxies[].name` (the union over a list's
/// tables). An empty table, an empty list and null are keys themselves.
fn key_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                key_paths(v, &p, out);
            }
        }
        Value::Array(a) if a.first().is_some_and(Value::is_object) => {
            for e in a {
                key_paths(e, &format!("{prefix}[]"), out);
            }
        }
        _ => {
            out.insert(prefix.to_owned());
        }
    }
}

fn keys_of(v: &impl serde::Serialize) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    key_paths(&serde_json::to_value(v).unwrap(), "", &mut out);
    out
}

/// Each key of `want` is in the example (itself, or a table or list under it); a key whose
/// default is null (an optional table such as `auth.tokenSource`) is at least explained in a
/// comment that names it.
fn assert_names_every_key(file: &str, want: &BTreeSet<String>, nulls: &BTreeSet<String>) {
    let text = read(file);
    let doc: toml::Table = toml::from_str(&text).unwrap();
    let have = keys_of(&doc);
    let missing: Vec<&String> = want
        .iter()
        .filter(|k| {
            let under = |h: &String| {
                h == *k
                    || h.strip_prefix(k.as_str())
                        .is_some_and(|r| r.starts_with(['.', '[']))
            };
            if have.iter().any(under) {
                return false;
            }
            let leaf = k.rsplit(['.', ']']).next().unwrap_or(k);
            !(nulls.contains(*k) && text.contains(leaf))
        })
        .collect();
    assert!(missing.is_empty(), "{file} does not name {missing:#?}");
}

fn nulls_of(v: &impl serde::Serialize) -> BTreeSet<String> {
    fn walk(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        match v {
            Value::Null => {
                out.insert(prefix.to_owned());
            }
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(v, &p, out);
                }
            }
            Value::Array(a) => {
                for e in a {
                    walk(e, &format!("{prefix}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(&serde_json::to_value(v).unwrap(), "", &mut out);
    out
}

#[test]
fn frps_full_example_names_every_key_at_its_default() {
    let file = "conf/frps_full_example.toml";
    let loaded = config::load_server(&repo_root().join(file), &LoadOptions::default()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded.config,
        config::default_server(),
        "every value in {file} is the default"
    );
    assert_names_every_key(file, &keys_of(&config::default_server()), &{
        let mut n = nulls_of(&config::default_server());
        n.extend(["auth.tokenSource".to_owned(), "webServer.tls".to_owned()]);
        n
    });
}

#[test]
fn frpc_full_example_names_every_key_with_defaults_for_globals() {
    let file = "conf/frpc_full_example.toml";
    let loaded = config::load_client(&repo_root().join(file), &LoadOptions::default()).unwrap();
    // Only what frp-rs cannot run yet is reported: the xtcp proxy and the visitors.
    for w in &loaded.warnings {
        assert!(
            w.contains("proxies[6]") || w.contains("visitors["),
            "unexpected warning: {w}"
        );
    }
    let mut globals = loaded.config.clone();
    globals.proxies.clear();
    globals.visitors.clear();
    assert_eq!(
        globals,
        config::default_client(),
        "every global value in {file} is the default"
    );
    // Every kind of proxy frp has, each key of a proxy and of a visitor somewhere.
    let kinds: BTreeSet<&str> = loaded
        .config
        .proxies
        .iter()
        .map(|p| p.kind.as_str())
        .collect();
    for k in ["tcp", "udp", "http", "https", "tcpmux", "stcp", "xtcp"] {
        assert!(kinds.contains(k), "{file} has no {k} proxy");
    }
    let mut shape = config::default_client();
    shape.proxies.push(Default::default());
    shape.visitors.push(Default::default());
    let mut nulls = nulls_of(&shape);
    nulls.extend([
        "auth.tokenSource".to_owned(),
        "auth.oidc.tokenSource".to_owned(),
        "webServer.tls".to_owned(),
    ]);
    assert_names_every_key(file, &keys_of(&shape), &nulls);
}

/// The units, with the binaries at `bin` instead of /usr/bin.
fn units_in(dir: &Path, bin: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for unit in ["frps.service", "frpc.service", "frpc@.service"] {
        let text = read(&format!("conf/systemd/{unit}"))
            .replace("/usr/bin/", &format!("{}/", bin.display()));
        std::fs::write(dir.join(unit), text).unwrap();
    }
    // A template is verified as an instance of it.
    std::os::unix::fs::symlink("frpc@.service", dir.join("frpc@office.service")).unwrap();
    for unit in ["frps.service", "frpc.service", "frpc@office.service"] {
        out.push(dir.join(unit));
    }
    out
}

#[test]
fn systemd_units_are_hardened_and_reload_frpc() {
    for unit in ["frps.service", "frpc.service", "frpc@.service"] {
        let text = read(&format!("conf/systemd/{unit}"));
        let has = |l: &str| text.lines().any(|t| t.trim() == l);
        for line in [
            "DynamicUser=yes",
            "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
            "AmbientCapabilities=CAP_NET_BIND_SERVICE",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "PrivateDevices=yes",
            "Restart=on-failure",
        ] {
            assert!(has(line), "{unit}: no {line}");
        }
        let bin = if unit.starts_with("frps") {
            "frps"
        } else {
            "frpc"
        };
        let cfg = if unit == "frpc@.service" {
            "/etc/frp/%i.toml".to_owned()
        } else {
            format!("/etc/frp/{bin}.toml")
        };
        assert!(has(&format!("ExecStart=/usr/bin/{bin} -c {cfg}")), "{unit}");
        if bin == "frpc" {
            assert!(
                has(&format!("ExecReload=/usr/bin/frpc reload -c {cfg}")),
                "{unit}"
            );
        } else {
            // frps has no reload; a unit that claimed one would lie.
            assert!(!text.contains("ExecReload="), "{unit}");
        }
    }
}

/// `systemd-analyze verify` accepts the units with the binaries of this build; it reports
/// problems on stderr (and often still exits 0), so any output fails.
#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    assert!(out.status.success());
    let dir = tests::procs::tempdir("units");
    let bin = tests::bin("frps");
    let units = units_in(&dir, bin.parent().unwrap());
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .current_dir(&dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.trim().is_empty(), "{text}");
    // The check itself catches a bad directive.
    let bad = dir.join("bad.service");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&units[0])
            .unwrap()
            .replace("ProtectSystem=strict", "ProtectSystem=nonsense"),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.stderr.is_empty(), "a bad unit is reported");
}
