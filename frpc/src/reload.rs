//! Hot reload (frp `client/config_manager.go`; frp-protocol.md §15): a pure [`diff`] of the
//! active proxies, applied by the session. Unchanged proxies are not touched, so their live
//! connections keep flowing; changed ones are closed and started again; removed ones closed;
//! added ones started. Global settings keep their running values (frp reads only the new proxy,
//! visitor and `start` lists); a reload that changes one says which ([`globals_changed`]).
//! Token sources are not run again and `includes` are the running ones
//! ([`common::config::Reload`]).

use crate::Reloader;
use common::config::{ClientConfig, LoadOptions, ProxyConfig, Reload, VisitorConfig};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tracing::{debug, info, warn};

/// The config file a running frpc was started from, and how to re-read it: the one place the
/// admin API's `/api/reload` and `--watch` reload from.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub path: PathBuf,
    pub opts: LoadOptions,
}

impl ConfigSource {
    /// Re-reads the file (and the running includes) and applies its proxies and visitors;
    /// says whether anything changed. A result equal to the running config does nothing and
    /// logs nothing above debug; on any error nothing changes and the error is returned.
    pub fn reload(&self, reloader: &Reloader, strict: bool) -> Result<bool, String> {
        let opts = LoadOptions {
            strict,
            reload: Some(Reload {
                includes: reloader.running_includes(),
            }),
            ..self.opts.clone()
        };
        let loaded = common::config::load_client(&self.path, &opts).map_err(|e| e.to_string())?;
        if reloader.file_is(&loaded.config) {
            debug!(file = %self.path.display(), "config unchanged, nothing to reload");
            return Ok(false);
        }
        for w in &loaded.warnings {
            warn!("{w}");
        }
        info!(file = %self.path.display(), "reloading config");
        reloader.apply(loaded.config);
        Ok(true)
    }
}

/// The global (non-proxy) keys whose value differs between the running config and a reloaded
/// one, by their config names (`auth.token`, `transport.wireProtocol`). A reloaded file's token
/// source is not resolved, so with one `auth.token` is compared through `auth.tokenSource`.
pub fn globals_changed(running: &ClientConfig, new: &ClientConfig) -> Vec<String> {
    let globals = |c: &ClientConfig| {
        let mut v = serde_json::to_value(c).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            for k in ["proxies", "visitors", "start"] {
                m.remove(k);
            }
            if new.auth.token_source.is_some() {
                if let Some(a) = m.get_mut("auth").and_then(|a| a.as_object_mut()) {
                    a.remove("token");
                }
            }
        }
        v
    };
    let mut out = Vec::new();
    changed_keys(&globals(running), &globals(new), "", &mut out);
    out
}

fn changed_keys(a: &Value, b: &Value, prefix: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let null = Value::Null;
                changed_keys(
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    &path,
                    out,
                );
            }
        }
        _ if a != b => out.push(prefix.to_owned()),
        _ => {}
    }
}

/// One proxy-level change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Add(String),
    Remove(String),
    Update(String),
}

fn active(c: &ClientConfig) -> BTreeMap<&str, &ProxyConfig> {
    c.active_proxies().map(|p| (p.name.as_str(), p)).collect()
}

/// What must change to go from `old` to `new` (removals first, then updates, then additions,
/// each in name order).
pub fn diff(old: &ClientConfig, new: &ClientConfig) -> Vec<Change> {
    diff_by(&active(old), &active(new))
}

/// [`diff`] for the active visitors: a visitor is diffed like a proxy.
pub fn diff_visitors(old: &ClientConfig, new: &ClientConfig) -> Vec<Change> {
    let active = |c: &ClientConfig| -> BTreeMap<String, VisitorConfig> {
        c.active_visitors()
            .map(|v| (v.name.clone(), v.clone()))
            .collect()
    };
    diff_by(&active(old), &active(new))
}

fn diff_by<K: AsRef<str> + Ord, T: PartialEq>(
    o: &BTreeMap<K, T>,
    n: &BTreeMap<K, T>,
) -> Vec<Change> {
    let mut out: Vec<Change> = o
        .keys()
        .filter(|k| !n.contains_key(*k))
        .map(|k| Change::Remove(k.as_ref().to_owned()))
        .collect();
    out.extend(
        o.iter()
            .filter(|(k, p)| n.get(*k).is_some_and(|q| q != *p))
            .map(|(k, _)| Change::Update(k.as_ref().to_owned())),
    );
    out.extend(
        n.keys()
            .filter(|k| !o.contains_key(*k))
            .map(|k| Change::Add(k.as_ref().to_owned())),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::config::{default_client, ProxyConfig};

    fn cfg(proxies: &[(&str, u16)]) -> ClientConfig {
        let mut c = default_client();
        c.proxies = proxies
            .iter()
            .map(|(n, port)| ProxyConfig {
                name: n.to_string(),
                kind: "tcp".into(),
                local_port: *port,
                ..Default::default()
            })
            .collect();
        c
    }

    #[test]
    fn table() {
        use Change::*;
        let cases: Vec<(ClientConfig, ClientConfig, Vec<Change>)> = vec![
            (cfg(&[]), cfg(&[]), vec![]),
            (cfg(&[("a", 1)]), cfg(&[("a", 1)]), vec![]),
            (cfg(&[("a", 1)]), cfg(&[]), vec![Remove("a".into())]),
            (cfg(&[]), cfg(&[("a", 1)]), vec![Add("a".into())]),
            (cfg(&[("a", 1)]), cfg(&[("a", 2)]), vec![Update("a".into())]),
            (
                cfg(&[("a", 1), ("b", 2), ("c", 3)]),
                cfg(&[("b", 2), ("c", 4), ("d", 5)]),
                vec![Remove("a".into()), Update("c".into()), Add("d".into())],
            ),
        ];
        for (i, (old, new, want)) in cases.into_iter().enumerate() {
            assert_eq!(diff(&old, &new), want, "case {i}");
        }
    }

    #[test]
    fn start_list_and_enabled_filter_both_sides() {
        let mut old = cfg(&[("a", 1), ("b", 2)]);
        let mut new = old.clone();
        new.start = vec!["a".into()];
        assert_eq!(diff(&old, &new), vec![Change::Remove("b".into())]);
        old.proxies[0].enabled = Some(false);
        assert_eq!(
            diff(&old, &new),
            vec![Change::Remove("b".into()), Change::Add("a".into())]
        );
    }

    #[test]
    fn reloading_an_unchanged_file_does_nothing() {
        #![allow(clippy::unwrap_used)]
        let dir = std::env::temp_dir().join(format!("frpc-reload-same-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("frpc.toml");
        let text =
            |port: u16| format!("[[proxies]]\nname = \"a\"\ntype = \"tcp\"\nlocalPort = {port}\n");
        std::fs::write(&path, text(1)).unwrap();
        let opts = LoadOptions::default();
        let loaded = common::config::load_client(&path, &opts).unwrap().config;
        let reloader = Reloader::new(loaded);
        let source = ConfigSource {
            path: path.clone(),
            opts,
        };
        assert_eq!(source.reload(&reloader, true), Ok(false), "same file");
        std::fs::write(&path, text(2)).unwrap();
        assert_eq!(source.reload(&reloader, true), Ok(true), "edited");
        assert_eq!(reloader.current().proxies[0].local_port, 2);
        assert_eq!(source.reload(&reloader, true), Ok(false), "same again");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn changed_globals_are_named_proxies_are_not() {
        let old = cfg(&[("a", 1)]);
        let mut new = cfg(&[("b", 2)]);
        new.start = vec!["b".into()];
        assert!(globals_changed(&old, &new).is_empty());
        new.auth.token = "other".into();
        new.transport.wire_protocol = "v2".into();
        new.includes = vec!["x/*.toml".into()];
        assert_eq!(
            globals_changed(&old, &new),
            ["auth.token", "includes", "transport.wireProtocol"]
        );
        // An unresolved token source is compared as a source, not through the token.
        let mut running = old.clone();
        running.auth.token = "from-exec".into();
        running.auth.token_source = Some(Default::default());
        let mut reread = old;
        reread.auth.token_source = Some(Default::default());
        assert!(globals_changed(&running, &reread).is_empty());
        reread.auth.token_source = Some(common::config::ValueSource {
            kind: "exec".into(),
            ..Default::default()
        });
        assert_eq!(
            globals_changed(&running, &reread),
            ["auth.tokenSource.type"]
        );
    }

    #[test]
    fn order_of_proxies_in_the_file_does_not_matter() {
        assert_eq!(
            diff(&cfg(&[("a", 1), ("b", 2)]), &cfg(&[("b", 2), ("a", 1)])),
            vec![]
        );
    }
}
