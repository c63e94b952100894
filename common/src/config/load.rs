//! The one config loader for both binaries (frp `pkg/config/load.go`; frp-protocol.md §14.1):
//! read -> legacy INI? -> render template -> parse (TOML, YAML or JSON) -> decode (keys
//! case-insensitive, unknown keys collected) -> includes (frpc) -> complete defaults -> validate.
//!
//! Every problem names the file (an included file by its own path), the line and column where
//! known, and the key path; all problems are reported at once.

use super::de::{self, Unknown};
use super::locate::{line_col, suggest, text_locate, toml_locate};
use super::{legacy, template, validate, ClientConfig, ServerConfig};
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};

/// Everything that can be wrong with a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read. The I/O error is part of the message and not a `source()`,
    /// so an error chain printer (`{:#}`) shows it once.
    #[error("read config file {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}", join_lines(.0))]
    Invalid(Vec<Problem>),
}

/// One problem, with where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub line: Option<usize>,
    pub col: Option<usize>,
    /// Key path, e.g. `proxies[1].remotePort`; empty for file-level problems.
    pub key: String,
    pub msg: String,
}

impl Problem {
    pub(crate) fn new(file: &Path, key: impl Into<String>, msg: impl Into<String>) -> Self {
        Problem {
            file: file.to_owned(),
            line: None,
            col: None,
            key: key.into(),
            msg: msg.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.col {
                write!(f, ":{c}")?;
            }
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.msg)
        } else {
            write!(f, ": {}: {}", self.key, self.msg)
        }
    }
}

fn join_lines(v: &[Problem]) -> String {
    v.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// The problems, if this is a validation error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(p) => p,
            ConfigError::Read { .. } => &[],
        }
    }
}

/// A loaded config plus warnings to log once logging is up (deprecated INI, unset variables).
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    pub config: T,
    pub warnings: Vec<String>,
}

/// How to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// frp's `--strict_config` (default true): unknown keys are errors.
    pub strict: bool,
    /// frp's `--allow-unsafe` features, e.g. `TokenSourceExec`.
    pub allow_unsafe: Vec<String>,
    /// Environment for `{{ .Envs.NAME }}`; the process environment by default.
    pub envs: std::collections::BTreeMap<String, String>,
    /// Directory `includes` are resolved against (frp: the process working directory).
    pub cwd: Option<PathBuf>,
    /// Set when a running frpc re-reads its config (admin API reload, `--watch`): see
    /// [`Reload`]. `None` at start-up.
    pub reload: Option<Reload>,
}

/// What a reload may not take from the file (issue 22): a reload never runs a token source's
/// command nor reads its file (they are resolved once, at start-up, as in frp; the running
/// token stays), and reads the start-up `includes`, not the file's (a global setting, which a
/// reload does not change). So nothing written through the admin API makes frpc run a command
/// or read a file outside its config and includes. The file's own values stay in the loaded
/// config, for the caller to compare with the running ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reload {
    /// The running config's `includes`.
    pub includes: Vec<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            strict: true,
            allow_unsafe: Vec::new(),
            envs: template::process_envs(),
            cwd: None,
            reload: None,
        }
    }
}

impl LoadOptions {
    /// Strict or not, process environment.
    pub fn strict(strict: bool) -> Self {
        LoadOptions {
            strict,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Toml,
    Yaml,
    Json,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Toml => "TOML",
            Format::Yaml => "YAML",
            Format::Json => "JSON",
        }
    }
}

/// One source file after rendering and parsing.
struct Doc {
    file: PathBuf,
    text: String,
    format: Format,
    value: Value,
}

/// Reads a config file as UTF-8 text; invalid UTF-8 is a problem at its line and column.
fn read(path: &Path) -> Result<String, ConfigError> {
    let bytes = std::fs::read(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        // Everything before `at` is valid UTF-8.
        let before = String::from_utf8_lossy(&bytes[..at]);
        let (line, col) = line_col(&before, before.len());
        ConfigError::Invalid(vec![Problem {
            file: path.to_owned(),
            line: Some(line),
            col: Some(col),
            key: String::new(),
            msg: format!(
                "the file is not valid UTF-8 (byte {:#04x}); config files must be UTF-8 text",
                bytes.get(at).copied().unwrap_or_default()
            ),
        }])
    })
}

/// Renders and parses one file's text. `ini_ok`: legacy INI is accepted here.
/// Parses `text` as `format`; a failure as (line, column, message).
fn parse_as(format: Format, text: &str) -> Result<Value, (usize, usize, String)> {
    match format {
        Format::Toml => toml::from_str::<Value>(text).map_err(|e| {
            let (l, c) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            (l, c, format!("TOML: {}", e.message().trim()))
        }),
        Format::Json => serde_json::from_str::<Value>(text)
            .map_err(|e| (e.line(), e.column(), format!("JSON: {e}"))),
        Format::Yaml => serde_norway::from_str::<Value>(text).map_err(|e| {
            let (l, c) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            (l, c, format!("YAML: {e}"))
        }),
    }
}

fn parse_doc(
    text: &str,
    file: &Path,
    opts: &LoadOptions,
    warnings: &mut Vec<String>,
    kind: legacy::Side,
) -> Result<Doc, ConfigError> {
    let bad = |line: Option<usize>, col: Option<usize>, msg: String| {
        ConfigError::Invalid(vec![Problem {
            file: file.to_owned(),
            line,
            col,
            key: String::new(),
            msg,
        }])
    };
    // Windows editors start files with a byte-order mark; no parser should see it (an INI file
    // with one was read as TOML), and positions count from the first real character.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rendered = template::render(text, &opts.envs).map_err(|e| {
        bad(
            (e.line > 0).then_some(e.line),
            None,
            format!("template: {}", e.msg),
        )
    })?;
    let missing = rendered.missing_envs;
    for name in &missing {
        warnings.push(format!(
            "{}: environment variable {name} is not set (false in `if`; printed as <no value>, as frp)",
            file.display()
        ));
    }
    let text = rendered.text;
    if legacy::is_legacy_ini(&text) {
        warnings.push(format!(
            "{}: the INI config format is deprecated and will be removed; please move to TOML, YAML or JSON",
            file.display()
        ));
        let value = legacy::to_v1(&text, kind).map_err(|e| bad(Some(e.line), None, e.msg))?;
        for (line, key) in legacy::unread_keys(&text, kind) {
            warnings.push(format!(
                "{}:{line}: {key}: not an INI key frp-rs reads; ignored",
                file.display()
            ));
        }
        return Ok(Doc {
            file: file.to_owned(),
            text,
            format: Format::Json,
            value,
        });
    }
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    // frp reads a file by its content (TOML, then JSON when it starts with `{`, then YAML),
    // whatever its name; we try the format the extension names first, so that a mistake is
    // reported in that format's words, then the others in frp's order.
    let by_ext = match ext.as_str() {
        "json" => Format::Json,
        "yaml" | "yml" => Format::Yaml,
        _ => Format::Toml,
    };
    let first = parse_as(by_ext, &text);
    let (format, value) = match first {
        Ok(v) => (by_ext, v),
        Err(ext_err) => {
            let json_like = text.trim_start().starts_with('{');
            let other = [Format::Toml, Format::Json, Format::Yaml]
                .into_iter()
                .filter(|f| *f != by_ext && (*f != Format::Json || json_like))
                .find_map(|f| {
                    parse_as(f, &text)
                        .ok()
                        .filter(Value::is_object)
                        .map(|v| (f, v))
                });
            match other {
                Some((f, v)) => {
                    warnings.push(format!(
                        "{}: read as {} (its content), not as its name says; frp reads files by content too",
                        file.display(),
                        f.name()
                    ));
                    (f, v)
                }
                None => {
                    let (l, c, msg) = ext_err;
                    // A variable that was not set is the likely cause of a syntax error.
                    let hint = if missing.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (not set in the environment: {}; the template printed <no value> for it)",
                            missing.join(", ")
                        )
                    };
                    return Err(bad(Some(l), Some(c), format!("{msg}{hint}")));
                }
            }
        }
    };
    let value = match (format, value) {
        // frp drops top-level keys starting with '.' (YAML anchors) in strict mode.
        (Format::Yaml, Value::Object(mut m)) => {
            m.retain(|k, _| !k.starts_with('.'));
            Value::Object(m)
        }
        (_, v) => v,
    };
    // An empty YAML file is null.
    let value = if value.is_null() {
        Value::Object(Default::default())
    } else {
        value
    };
    Ok(Doc {
        file: file.to_owned(),
        text,
        format,
        value,
    })
}

/// Where a key path is in a file (1-based line, column).
fn locate(doc: &Doc, path: &str) -> Option<(usize, usize)> {
    match doc.format {
        Format::Toml => toml_locate(&doc.text, path).map(|o| line_col(&doc.text, o)),
        _ => text_locate(&doc.text, path),
    }
}

fn unknown_problem(doc: &Doc, u: &Unknown) -> Problem {
    let (line, col) = locate(doc, &u.path)
        .map(|(l, c)| (Some(l), Some(c)))
        .unwrap_or((None, None));
    let mut msg = format!("unknown field {:?}", u.key);
    if let Some(s) = suggest(&u.key, &u.valid) {
        msg.push_str(&format!(", did you mean {s:?}?"));
    }
    Problem {
        file: doc.file.clone(),
        line,
        col,
        key: u.path.clone(),
        msg,
    }
}

/// A file with more bad values than this is reported up to here.
const MAX_DECODE_ERRORS: usize = 100;

/// Decodes a parsed document, reporting every bad value (each is replaced by a stand-in of
/// the right kind and decoding goes on; its key is added to `bad_keys`) and every unknown key:
/// a problem in strict mode, else a warning (frp's `--strict_config=false` accepts them; they
/// are still named). `None` when nothing usable could be decoded.
fn decode<T: serde::de::DeserializeOwned>(
    doc: &Doc,
    strict: bool,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
    bad_keys: &mut Vec<String>,
) -> Option<T> {
    let mut value = doc.value.clone();
    let mut bad: Vec<de::KeyPath> = Vec::new();
    while bad.len() <= MAX_DECODE_ERRORS {
        let e = match de::from_value::<T>(value.clone()) {
            Ok((t, unknown)) => {
                let unknown = unknown.iter().map(|u| unknown_problem(doc, u));
                if strict {
                    problems.extend(unknown);
                } else {
                    warnings.extend(unknown.map(|p| format!("{p}; ignored (not strict)")));
                }
                return Some(t);
            }
            Err(e) => e,
        };
        // A stand-in that failed again (or an error with none) is taken out instead.
        let again = bad.contains(&e.path);
        let with = e.expected.filter(|_| !again).map(de::Expected::stand_in);
        if !again {
            let key = e.path.to_string();
            let (line, col) = locate(doc, &key)
                .map(|(l, c)| (Some(l), Some(c)))
                .unwrap_or((None, None));
            bad_keys.push(key.clone());
            problems.push(Problem {
                file: doc.file.clone(),
                line,
                col,
                key,
                msg: e.msg,
            });
        }
        if !de::replace(&mut value, &e.path, with)
            || bad.iter().filter(|p| **p == e.path).count() > 1
        {
            return None;
        }
        bad.push(e.path);
    }
    None
}

/// Validation problems at, inside or around a bad value already reported would only repeat
/// it: the stand-in put there fails validation too ("bindPort is required").
/// The rest get the position of their key, where the file has it.
fn add_validation(
    doc: &Doc,
    problems: &mut Vec<Problem>,
    bad_keys: &[String],
    found: Vec<Problem>,
) {
    let under = |key: &str, at: &str| {
        !at.is_empty()
            && key
                .strip_prefix(at)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    };
    let found = found.into_iter().filter(|p| {
        !bad_keys
            .iter()
            .any(|b| under(&p.key, b) || under(b, &p.key))
    });
    problems.extend(found.map(|mut p| {
        if p.line.is_none() && p.file == doc.file && !p.key.is_empty() {
            if let Some((l, c)) = locate(doc, &p.key) {
                (p.line, p.col) = (Some(l), Some(c));
            }
        }
        p
    }));
}

/// Warnings for the unsupported keys a config uses, with their positions.
fn unsupported_warnings(doc: &Doc, found: Vec<super::Unsupported>, warnings: &mut Vec<String>) {
    for u in found {
        let at = match locate(doc, &u.key) {
            Some((l, c)) => format!("{}:{l}:{c}", doc.file.display()),
            None => doc.file.display().to_string(),
        };
        warnings.push(format!("{at}: {u}"));
    }
}

fn finish<T>(
    config: Option<T>,
    problems: Vec<Problem>,
    warnings: Vec<String>,
) -> Result<Loaded<T>, ConfigError> {
    match config {
        Some(config) if problems.is_empty() => Ok(Loaded { config, warnings }),
        _ => Err(ConfigError::Invalid(problems)),
    }
}

/// Loads an frpc config from text (`file` names it in messages and anchors nothing else).
pub fn load_client_text(
    text: &str,
    file: &Path,
    opts: &LoadOptions,
) -> Result<Loaded<ClientConfig>, ConfigError> {
    let mut warnings = Vec::new();
    let doc = parse_doc(text, file, opts, &mut warnings, legacy::Side::Client)?;
    client_from_doc(&doc, file, opts, warnings)
}

/// Loads frpc entries sent as data (the admin API's store bodies): plain JSON, never rendered
/// as a template, so `{{ .Envs.X }}` stays as written (frp parses store bodies as plain JSON).
pub fn load_client_data(
    text: &str,
    file: &Path,
    opts: &LoadOptions,
) -> Result<Loaded<ClientConfig>, ConfigError> {
    let value = serde_json::from_str::<Value>(text).map_err(|e| {
        ConfigError::Invalid(vec![Problem {
            file: file.to_owned(),
            line: Some(e.line()),
            col: Some(e.column()),
            key: String::new(),
            msg: format!("JSON: {e}"),
        }])
    })?;
    let doc = Doc {
        file: file.to_owned(),
        text: text.to_owned(),
        format: Format::Json,
        value,
    };
    client_from_doc(&doc, file, opts, Vec::new())
}

/// Decode, includes, defaults, validation and token sources of a parsed frpc document.
fn client_from_doc(
    doc: &Doc,
    file: &Path,
    opts: &LoadOptions,
    mut warnings: Vec<String>,
) -> Result<Loaded<ClientConfig>, ConfigError> {
    let mut problems = Vec::new();
    let mut bad_keys = Vec::new();
    let mut cfg: Option<ClientConfig> = decode(
        doc,
        opts.strict,
        &mut problems,
        &mut warnings,
        &mut bad_keys,
    );
    if let Some(c) = cfg.as_mut() {
        load_includes(c, file, opts, &mut warnings, &mut problems);
        c.complete();
        // frp's default proxyURL is the http_proxy variable.
        if let Some(p) = opts.envs.get("http_proxy").filter(|p| !p.is_empty()) {
            if c.transport.proxy_url.is_empty() {
                c.transport.proxy_url = p.clone();
            }
        }
        add_validation(
            doc,
            &mut problems,
            &bad_keys,
            validate::client(c, file, opts.reload.is_none()),
        );
        unsupported_warnings(doc, super::client_unsupported(c), &mut warnings);
        // The sources stay in the config (a reload compares them with the running ones).
        if problems.is_empty() && opts.reload.is_none() {
            if let Some(src) = c.auth.token_source.clone() {
                resolve_token(
                    &src,
                    "auth.tokenSource",
                    file,
                    opts,
                    &mut c.auth.token,
                    &mut problems,
                );
            }
            if let Some(src) = c.auth.oidc.token_source.clone() {
                let mut t = super::Secret::default();
                resolve_token(
                    &src,
                    "auth.oidc.tokenSource",
                    file,
                    opts,
                    &mut t,
                    &mut problems,
                );
                c.auth.oidc.source_token = Some(t);
            }
        }
    }
    finish(cfg, problems, warnings)
}

/// Loads an frps config from text.
pub fn load_server_text(
    text: &str,
    file: &Path,
    opts: &LoadOptions,
) -> Result<Loaded<ServerConfig>, ConfigError> {
    let mut warnings = Vec::new();
    let doc = parse_doc(text, file, opts, &mut warnings, legacy::Side::Server)?;
    let mut problems = Vec::new();
    let mut bad_keys = Vec::new();
    let mut cfg: Option<ServerConfig> = decode(
        &doc,
        opts.strict,
        &mut problems,
        &mut warnings,
        &mut bad_keys,
    );
    if let Some(c) = cfg.as_mut() {
        c.complete();
        add_validation(&doc, &mut problems, &bad_keys, validate::server(c, file));
        unsupported_warnings(&doc, super::server_unsupported(c), &mut warnings);
        if problems.is_empty() {
            if let Some(src) = c.auth.token_source.take() {
                resolve_token(
                    &src,
                    "auth.tokenSource",
                    file,
                    opts,
                    &mut c.auth.token,
                    &mut problems,
                );
            }
        }
    }
    finish(cfg, problems, warnings)
}

/// Loads an frpc config file.
pub fn load_client(path: &Path, opts: &LoadOptions) -> Result<Loaded<ClientConfig>, ConfigError> {
    load_client_text(&read(path)?, path, opts)
}

/// Loads an frps config file.
pub fn load_server(path: &Path, opts: &LoadOptions) -> Result<Loaded<ServerConfig>, ConfigError> {
    load_server_text(&read(path)?, path, opts)
}

/// `auth.tokenSource` (frp `pkg/config/v1/value_source.go`): read once at start-up, trimmed.
/// `exec` runs only with `--allow-unsafe TokenSourceExec`, as in frp.
fn resolve_token(
    src: &super::ValueSource,
    key: &str,
    file: &Path,
    opts: &LoadOptions,
    token: &mut super::Secret,
    problems: &mut Vec<Problem>,
) {
    let value = match src.kind.as_str() {
        "file" => std::fs::read_to_string(&src.file.path)
            .map_err(|e| format!("read token file {}: {e}", src.file.path)),
        "exec" if !opts.allow_unsafe.iter().any(|f| f == "TokenSourceExec") => {
            Err("exec token source needs --allow-unsafe TokenSourceExec".to_owned())
        }
        "exec" => std::process::Command::new(&src.exec.command)
            .args(&src.exec.args)
            .envs(
                src.exec
                    .env
                    .iter()
                    .map(|e| (e.name.clone(), e.value.clone())),
            )
            .output()
            .map_err(|e| format!("run token command {}: {e}", src.exec.command))
            .and_then(|o| {
                if o.status.success() {
                    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
                } else {
                    Err(format!(
                        "token command {} exited with {}",
                        src.exec.command, o.status
                    ))
                }
            }),
        other => Err(format!("unknown token source type {other:?}")),
    };
    match value {
        Ok(v) => *token = super::Secret(v.trim().to_owned()),
        Err(msg) => problems.push(Problem::new(file, key, msg)),
    }
}

/// frp's defaults, completed, as if from an empty file.
pub fn default_client() -> ClientConfig {
    let mut c = ClientConfig::default();
    c.complete();
    c
}

/// frps's embedded defaults (what `frps` runs on without `-c`).
pub fn default_server() -> ServerConfig {
    let mut c = ServerConfig::default();
    c.complete();
    c
}

/// frp `LoadAdditionalClientConfigs`: each entry's directory is resolved against the working
/// directory, its last component may be a glob; only proxies and visitors are taken.
fn load_includes(
    c: &mut ClientConfig,
    file: &Path,
    opts: &LoadOptions,
    warnings: &mut Vec<String>,
    problems: &mut Vec<Problem>,
) {
    let cwd = opts
        .cwd
        .clone()
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    let includes = match &opts.reload {
        Some(r) => r.includes.clone(),
        None => c.includes.clone(),
    };
    for (i, entry) in includes.iter().enumerate() {
        let key = format!("includes[{i}]");
        // Without `.` components, so messages show the directory as a user would write it.
        let p: PathBuf = cwd.join(entry).components().collect();
        let (dir, pattern) = match (p.parent(), p.file_name().and_then(|f| f.to_str())) {
            (Some(d), Some(f)) => (d.to_owned(), f.to_owned()),
            _ => {
                problems.push(Problem::new(
                    file,
                    key,
                    format!("include path {entry:?} has no file name"),
                ));
                continue;
            }
        };
        let read_dir = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) => {
                problems.push(Problem::new(
                    file,
                    key,
                    format!("include directory {}: {e}", dir.display()),
                ));
                continue;
            }
        };
        let pat = match glob::Pattern::new(&pattern) {
            Ok(p) => p,
            Err(e) => {
                problems.push(Problem::new(
                    file,
                    key,
                    format!("bad include pattern {pattern:?}: {e}"),
                ));
                continue;
            }
        };
        let mut files: Vec<PathBuf> = read_dir
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| !t.is_dir()).unwrap_or(false))
            .filter(|e| e.file_name().to_str().is_some_and(|n| pat.matches(n)))
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files {
            let text = match read(&f) {
                Ok(t) => t,
                Err(ConfigError::Invalid(p)) => {
                    problems.extend(p);
                    continue;
                }
                Err(e) => {
                    problems.push(Problem::new(&f, key.clone(), e.to_string()));
                    continue;
                }
            };
            let doc = match parse_doc(&text, &f, opts, warnings, legacy::Side::Client) {
                Ok(d) => d,
                Err(e) => {
                    problems.extend(e.problems().iter().cloned());
                    continue;
                }
            };
            let inc =
                decode::<ClientConfig>(&doc, opts.strict, problems, warnings, &mut Vec::new());
            if let Some(inc) = inc {
                c.proxies.extend(inc.proxies);
                c.visitors.extend(inc.visitors);
            }
        }
    }
}

#[cfg(test)]
mod addr_tests;
#[cfg(test)]
mod decode_tests;
#[cfg(test)]
mod encoding_tests;
#[cfg(test)]
mod files_tests;
#[cfg(test)]
mod keys_tests;
#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;
