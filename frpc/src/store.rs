//! frpc's store (frp `client/config_manager.go` store source; `store.path`): proxies and
//! visitors added through the admin API, persisted as JSON, overriding same-named entries of
//! the config file. Each entry is checked by the same decoder and validation as a config file.

use common::config::{ClientConfig, LoadOptions, ProxyConfig, VisitorConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A store failure; each variant is one HTTP status of the admin API, and its text is frp's
/// (`client/config_manager.go`, `client/http/controller.go`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No store (`store.path` unset or unreadable): the store routes do not exist (404).
    #[error("{0}")]
    Disabled(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Exists(String),
    /// 400.
    #[error("{0}")]
    Invalid(String),
    /// 500.
    #[error("store {path}: {msg}")]
    Io { path: PathBuf, msg: String },
}

/// The persisted form.
#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    #[serde(default)]
    proxies: Vec<ProxyConfig>,
    #[serde(default)]
    visitors: Vec<VisitorConfig>,
}

/// Which list an entry lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Proxy,
    Visitor,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Proxy => "proxy",
            Kind::Visitor => "visitor",
        }
    }
}

/// The store's entries.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    proxies: BTreeMap<String, ProxyConfig>,
    visitors: BTreeMap<String, VisitorConfig>,
}

impl Store {
    /// Opens the store file (missing = empty).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let io = |msg: String| StoreError::Io {
            path: path.to_owned(),
            msg,
        };
        let file: File = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| io(format!("parse: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(e) => return Err(io(e.to_string())),
        };
        Ok(Store {
            path: path.to_owned(),
            proxies: file
                .proxies
                .into_iter()
                .map(|p| (p.name.clone(), p))
                .collect(),
            visitors: file
                .visitors
                .into_iter()
                .map(|v| (v.name.clone(), v))
                .collect(),
        })
    }

    /// Writes the store atomically: a new temporary file (mode 0600, created exclusively, so
    /// a file or symlink planted at its path is never followed), synced, renamed over the
    /// store, and the directory synced.
    fn save(&self) -> Result<(), StoreError> {
        let io = |e: std::io::Error| StoreError::Io {
            path: self.path.clone(),
            msg: e.to_string(),
        };
        let file = File {
            proxies: self.proxies.values().cloned().collect(),
            visitors: self.visitors.values().cloned().collect(),
        };
        let body = serde_json::to_vec_pretty(&file).map_err(|e| StoreError::Io {
            path: self.path.clone(),
            msg: e.to_string(),
        })?;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        write_new(&tmp, &body).map_err(io)?;
        if let Err(e) = std::fs::rename(&tmp, &self.path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        // The rename is durable once the directory is.
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)
    }

    /// `cfg` with the store applied: store entries replace same-named ones, others are added.
    pub fn overlay(&self, mut cfg: ClientConfig) -> ClientConfig {
        cfg.proxies.retain(|p| !self.proxies.contains_key(&p.name));
        cfg.proxies.extend(self.proxies.values().cloned());
        cfg.visitors
            .retain(|v| !self.visitors.contains_key(&v.name));
        cfg.visitors.extend(self.visitors.values().cloned());
        cfg
    }

    pub fn has_proxy(&self, name: &str) -> bool {
        self.proxies.contains_key(name)
    }

    /// Whether a visitor of this name comes from the store.
    pub fn has_visitor(&self, name: &str) -> bool {
        self.visitors.contains_key(name)
    }

    /// Entries as frp's definitions `{name, type, <type>: {...}}`, sorted by name.
    pub fn list(&self, kind: Kind) -> Vec<serde_json::Value> {
        match kind {
            Kind::Proxy => self.proxies.values().map(proxy_definition).collect(),
            Kind::Visitor => self.visitors.values().map(visitor_definition).collect(),
        }
    }

    pub fn get(&self, kind: Kind, name: &str) -> Result<serde_json::Value, StoreError> {
        let found = match kind {
            Kind::Proxy => self.proxies.get(name).map(proxy_definition),
            Kind::Visitor => self.visitors.get(name).map(visitor_definition),
        };
        found.ok_or_else(|| StoreError::NotFound(format!("not found: {} {name:?}", kind.word())))
    }

    /// Creates (`name` None: `POST`) or replaces (`PUT .../{name}`) an entry from a definition;
    /// returns the stored one.
    pub fn put(
        &mut self,
        kind: Kind,
        name: Option<&str>,
        body: &[u8],
        opts: &LoadOptions,
    ) -> Result<serde_json::Value, StoreError> {
        let entry = parse_definition(kind, body, name, opts)?;
        let new_name = entry_name(&entry);
        let exists = match kind {
            Kind::Proxy => self.proxies.contains_key(&new_name),
            Kind::Visitor => self.visitors.contains_key(&new_name),
        };
        let word = kind.word();
        match name {
            None if exists => {
                return Err(StoreError::Exists(format!(
                    "conflict: already exists: {word} {new_name:?}"
                )))
            }
            Some(n) if !exists => {
                return Err(StoreError::NotFound(format!(
                    "not found: not found: {word} {n:?}"
                )))
            }
            _ => {}
        }
        let out = match entry {
            Entry::Proxy(p) => {
                let d = proxy_definition(&p);
                self.proxies.insert(new_name, *p);
                d
            }
            Entry::Visitor(v) => {
                let d = visitor_definition(&v);
                self.visitors.insert(new_name, *v);
                d
            }
        };
        self.save()?;
        Ok(out)
    }

    pub fn delete(&mut self, kind: Kind, name: &str) -> Result<(), StoreError> {
        let removed = match kind {
            Kind::Proxy => self.proxies.remove(name).is_some(),
            Kind::Visitor => self.visitors.remove(name).is_some(),
        };
        if !removed {
            return Err(StoreError::NotFound(format!(
                "not found: not found: {} {name:?}",
                kind.word()
            )));
        }
        self.save()
    }
}

/// Creates `path` exclusively (mode 0600), writes `body` and syncs it. Whatever is already at
/// `path` (a stale temporary, or a symlink someone planted) is removed, not followed; if
/// something appears there again before the create, the save fails.
fn write_new(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let open = || {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        o.open(path)
    };
    let mut f = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(path)?;
            open()?
        }
        r => r?,
    };
    let written = f.write_all(body).and_then(|()| f.sync_all());
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

enum Entry {
    Proxy(Box<ProxyConfig>),
    Visitor(Box<VisitorConfig>),
}

fn entry_name(e: &Entry) -> String {
    match e {
        Entry::Proxy(p) => p.name.clone(),
        Entry::Visitor(v) => v.name.clone(),
    }
}

/// A key of a JSON object as Go's `encoding/json` finds it: the exact name, else any case.
fn field<'a>(
    m: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Option<&'a serde_json::Value> {
    m.get(key)
        .or_else(|| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

/// `{name, type, <type>: {...}}` -> a checked entry. First frp's `ProxyDefinition.Validate`
/// (`client/http/model`: a name, a known type, the URL's name, exactly one type block and
/// that of `type`), then the config loader as if it were the only entry of a config file
/// (strict keys, frp's defaults, validation). The body is data: never rendered as a template.
fn parse_definition(
    kind: Kind,
    body: &[u8],
    url_name: Option<&str>,
    opts: &LoadOptions,
) -> Result<Entry, StoreError> {
    let bad = |m: String| StoreError::Invalid(m);
    let word = kind.word();
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("parse JSON error: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("parse JSON error: the body is not a JSON object".into()))?;
    let text = |key: &str| match field(obj, key) {
        None => Ok(String::new()),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(bad(format!("parse JSON error: {key} must be a string"))),
    };
    let (name, ty) = (text("name")?, text("type")?);
    let types = match kind {
        Kind::Proxy => common::config::PROXY_TYPES,
        Kind::Visitor => common::config::VISITOR_TYPES,
    };
    if name.trim().is_empty() {
        return Err(bad(format!("{word} name is required")));
    }
    if !types.contains(&ty.as_str()) {
        return Err(bad(format!("invalid {word} type: {ty}")));
    }
    if url_name.is_some_and(|n| n != name) {
        return Err(bad(format!("{word} name in URL must match name in body")));
    }
    let blocks: Vec<(&str, &serde_json::Value)> = types
        .iter()
        .filter_map(|t| field(obj, t).map(|b| (*t, b)))
        .collect();
    let [(block_type, block)] = blocks.as_slice() else {
        return Err(bad(format!("exactly one {word} type block is required")));
    };
    if *block_type != ty {
        return Err(bad(format!(
            "{word} type block {block_type:?} does not match type {ty:?}"
        )));
    }
    let mut inner = block
        .as_object()
        .cloned()
        .ok_or_else(|| bad(format!("parse JSON error: {ty} must be an object")))?;
    inner.insert("name".into(), name.into());
    inner.insert("type".into(), ty.into());
    let list = match kind {
        Kind::Proxy => "proxies",
        Kind::Visitor => "visitors",
    };
    let doc = serde_json::json!({ list: [inner] }).to_string();
    let opts = LoadOptions {
        strict: true,
        ..opts.clone()
    };
    let mut loaded = common::config::load_client_data(&doc, Path::new("store.json"), &opts)
        .map_err(|e| bad(format!("invalid argument: validation error: {e}")))?;
    Ok(match kind {
        Kind::Proxy => Entry::Proxy(Box::new(loaded.config.proxies.remove(0))),
        Kind::Visitor => Entry::Visitor(Box::new(loaded.config.visitors.remove(0))),
    })
}

/// frp's `ProxyDefinition`: `{name, type, <type>: {...}}` with the keys valid for the type.
pub fn proxy_definition(p: &ProxyConfig) -> serde_json::Value {
    definition(
        &p.name,
        &p.kind,
        serde_json::to_value(p),
        common::config::proxy_fields(&p.kind),
    )
}

/// frp's `VisitorDefinition`.
pub fn visitor_definition(v: &VisitorConfig) -> serde_json::Value {
    definition(
        &v.name,
        &v.kind,
        serde_json::to_value(v),
        common::config::visitor_fields(&v.kind),
    )
}

fn definition(
    name: &str,
    kind: &str,
    value: serde_json::Result<serde_json::Value>,
    fields: Option<&[&str]>,
) -> serde_json::Value {
    let mut value = value.unwrap_or_default();
    if let (Some(obj), Some(fields)) = (value.as_object_mut(), fields) {
        obj.retain(|k, v| fields.contains(&k.as_str()) && !v.is_null());
    }
    // frp's plugin options are one struct per type, every field `omitempty`.
    if let Some(pl) = value.get_mut("plugin").and_then(|v| v.as_object_mut()) {
        let kind = pl
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_owned();
        let keep = common::config::plugin_fields(&kind).unwrap_or(&[]);
        pl.retain(|k, v| keep.contains(&k.as_str()) && !v.is_null() && *v != "");
    }
    let mut out = serde_json::Map::new();
    out.insert("name".into(), name.into());
    out.insert("type".into(), kind.into());
    out.insert(kind.into(), value);
    out.into()
}
