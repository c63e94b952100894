//! The one config loader: read -> parse TOML -> strict key check -> complete -> validate.
//! Errors name the file, and the line and column where the parser or key check knows them.

use super::{ClientConfig, ServerConfig};
use serde::de::DeserializeOwned;
use std::fmt;
use std::path::{Path, PathBuf};

/// Everything that can be wrong with a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{col}: {msg}")]
    Parse {
        path: PathBuf,
        line: usize,
        col: usize,
        msg: String,
    },
    #[error("{}", join_lines(.0))]
    Invalid(Vec<Problem>),
}

/// One problem found by the strict key check or validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Key path, e.g. `proxies[1].remotePort`.
    pub key: String,
    pub msg: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(
                f,
                "{}:{}: {}: {}",
                self.path.display(),
                l,
                self.key,
                self.msg
            ),
            None => write!(f, "{}: {}: {}", self.path.display(), self.key, self.msg),
        }
    }
}

fn join_lines(v: &[Problem]) -> String {
    v.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

/// serde_ignored paths look like `proxies.0.foo`; show them as `proxies[0].foo`.
fn key_path(p: &str) -> String {
    let mut out = String::new();
    for seg in p.split('.') {
        if seg.parse::<usize>().is_ok() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

/// Best-effort line of an unknown key: the first line that assigns its last segment.
fn find_key_line(text: &str, key: &str) -> Option<usize> {
    let last = key.rsplit(['.', ']']).next()?;
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            t.strip_prefix(last)
                .is_some_and(|rest| rest.trim_start().starts_with('=') || rest.starts_with('.'))
        })
        .map(|i| i + 1)
}

fn parse<T: DeserializeOwned>(text: &str, path: &Path, strict: bool) -> Result<T, ConfigError> {
    let mut unknown = Vec::new();
    let de = toml::Deserializer::new(text);
    let value: T = serde_ignored::deserialize(de, |p| unknown.push(p.to_string())).map_err(
        |e: toml::de::Error| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                col,
                msg: e.message().trim().to_owned(),
            }
        },
    )?;
    if strict && !unknown.is_empty() {
        let problems = unknown
            .iter()
            .map(|k| {
                let key = key_path(k);
                Problem {
                    path: path.to_owned(),
                    line: find_key_line(text, &key),
                    msg: "unknown field".into(),
                    key,
                }
            })
            .collect();
        return Err(ConfigError::Invalid(problems));
    }
    Ok(value)
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Parses frpc config text (`path` is for messages).
pub fn parse_client(text: &str, path: &Path, strict: bool) -> Result<ClientConfig, ConfigError> {
    let mut c: ClientConfig = parse(text, path, strict)?;
    c.complete();
    let problems = validate_client(&c, path);
    if problems.is_empty() {
        Ok(c)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// Parses frps config text.
pub fn parse_server(text: &str, path: &Path, strict: bool) -> Result<ServerConfig, ConfigError> {
    let mut c: ServerConfig = parse(text, path, strict)?;
    c.complete();
    let problems = validate_server(&c, path);
    if problems.is_empty() {
        Ok(c)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// Loads an frpc config file.
pub fn load_client(path: &Path, strict: bool) -> Result<ClientConfig, ConfigError> {
    parse_client(&read(path)?, path, strict)
}

/// Loads an frps config file.
pub fn load_server(path: &Path, strict: bool) -> Result<ServerConfig, ConfigError> {
    parse_server(&read(path)?, path, strict)
}

const PROXY_TYPES: &[&str] = &[
    "tcp", "udp", "http", "https", "tcpmux", "stcp", "sudp", "xtcp",
];

fn validate_client(c: &ClientConfig, path: &Path) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut bad = |key: String, msg: String| {
        out.push(Problem {
            path: path.to_owned(),
            line: None,
            key,
            msg,
        })
    };
    let t = &c.transport;
    if t.heartbeat_interval > 0
        && t.heartbeat_timeout > 0
        && t.heartbeat_timeout < t.heartbeat_interval
    {
        bad(
            "transport.heartbeatTimeout".into(),
            "invalid heartbeatTimeout, heartbeatTimeout is less than heartbeatInterval".into(),
        );
    }
    if !matches!(c.auth.method.as_str(), "token" | "oidc") {
        bad(
            "auth.method".into(),
            format!(
                "invalid auth method {:?}, optional values are token, oidc",
                c.auth.method
            ),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, p) in c.proxies.iter().enumerate() {
        let k = |f: &str| format!("proxies[{i}].{f}");
        if p.name.is_empty() {
            bad(k("name"), "name should not be empty".into());
        } else if !seen.insert(p.name.as_str()) {
            bad(k("name"), format!("proxy name [{}] is duplicated", p.name));
        }
        if !PROXY_TYPES.contains(&p.kind.as_str()) {
            bad(
                k("type"),
                format!(
                    "unknown proxy type {:?}, expected one of {}",
                    p.kind,
                    PROXY_TYPES.join(", ")
                ),
            );
        }
        if !matches!(
            p.transport.bandwidth_limit_mode.as_str(),
            "client" | "server"
        ) {
            bad(
                k("transport.bandwidthLimitMode"),
                "bandwidthLimitMode should be client or server".into(),
            );
        }
        if !matches!(
            p.transport.proxy_protocol_version.as_str(),
            "" | "v1" | "v2"
        ) {
            bad(
                k("transport.proxyProtocolVersion"),
                "proxyProtocolVersion only support v1 and v2".into(),
            );
        }
    }
    out
}

fn validate_server(c: &ServerConfig, path: &Path) -> Vec<Problem> {
    let mut out = Vec::new();
    if !matches!(c.auth.method.as_str(), "token" | "oidc") {
        out.push(Problem {
            path: path.to_owned(),
            line: None,
            key: "auth.method".into(),
            msg: format!(
                "invalid auth method {:?}, optional values are token, oidc",
                c.auth.method
            ),
        });
    }
    for (i, r) in c.allow_ports.iter().enumerate() {
        if r.single == 0 && (r.start == 0 || r.end < r.start) {
            out.push(Problem {
                path: path.to_owned(),
                line: None,
                key: format!("allowPorts[{i}]"),
                msg: "expected { single = N } or { start = A, end = B } with 0 < A <= B".into(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(text: &str) -> Result<ClientConfig, ConfigError> {
        parse_client(text, Path::new("frpc.toml"), true)
    }

    #[test]
    fn defaults_match_frp() {
        let c = client("").unwrap();
        assert_eq!(
            (c.server_addr.as_str(), c.server_port, c.login_fail_exit),
            ("0.0.0.0", 7000, true)
        );
        assert_eq!(c.transport.pool_count, 1);
        assert!(
            c.transport.tcp_mux
                && c.transport.tls.enable
                && c.transport.tls.disable_custom_tls_first_byte
        );
        assert_eq!(
            (
                c.transport.heartbeat_interval,
                c.transport.heartbeat_timeout
            ),
            (-1, -1)
        );
        assert_eq!(c.transport.dial_server_timeout, 10);
        assert_eq!(c.log.level, "info");
        let c = client("transport.tcpMux = false").unwrap();
        assert_eq!(
            (
                c.transport.heartbeat_interval,
                c.transport.heartbeat_timeout
            ),
            (30, 90)
        );

        let s = parse_server("", Path::new("frps.toml"), true).unwrap();
        assert_eq!(
            (
                s.bind_addr.as_str(),
                s.bind_port,
                s.proxy_bind_addr.as_str()
            ),
            ("0.0.0.0", 7000, "0.0.0.0")
        );
        assert_eq!(
            (
                s.transport.max_pool_count,
                s.user_conn_timeout,
                s.transport.heartbeat_timeout
            ),
            (5, 10, -1)
        );
        assert!(s.detailed_errors_to_client && s.transport.tcp_mux);
    }

    #[test]
    fn zero_means_default() {
        let c = client("serverPort = 0\n[transport]\npoolCount = 0").unwrap();
        assert_eq!((c.server_port, c.transport.pool_count), (7000, 1));
    }

    #[test]
    fn proxies_parse() {
        let c = client(
            "user = \"u\"\n[[proxies]]\nname = \"ssh\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 6000\ntransport.useEncryption = true\n",
        )
        .unwrap();
        let p = &c.proxies[0];
        assert_eq!(
            (p.local_ip.as_str(), p.local_port, p.remote_port),
            ("127.0.0.1", 22, 6000)
        );
        assert!(p.transport.use_encryption);
        assert_eq!(c.wire_name("ssh"), "u.ssh");
    }

    #[test]
    fn unknown_key_names_file_line_and_path() {
        let err = client(
            "serverPort = 7000\n\n[[proxies]]\nname = \"a\"\ntype = \"tcp\"\nlocalPrt = 1\n",
        )
        .unwrap_err();
        let s = err.to_string();
        assert!(
            s.contains("frpc.toml:6: proxies[0].localPrt: unknown field"),
            "{s}"
        );
        let err = parse_client("serverPort = 1\nbogus = 2\n", Path::new("x.toml"), false);
        assert!(err.is_ok(), "non-strict mode accepts unknown keys");
    }

    #[test]
    fn parse_error_has_line_and_column() {
        let err = client("serverPort = 7000\nserverAddr = \n").unwrap_err();
        match err {
            ConfigError::Parse { line, .. } => assert_eq!(line, 2),
            e => panic!("{e}"),
        }
        let err = client("serverPort = \"x\"\n").unwrap_err().to_string();
        assert!(err.starts_with("frpc.toml:1:"), "{err}");
    }

    #[test]
    fn validation_reports_all_problems() {
        let err = client("[[proxies]]\nname = \"a\"\ntype = \"nope\"\n[[proxies]]\nname = \"a\"\ntype = \"tcp\"\n").unwrap_err();
        let ConfigError::Invalid(p) = err else {
            panic!()
        };
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn allow_ports() {
        let s = parse_server(
            "allowPorts = [{ start = 2000, end = 3000 }, { single = 3001 }]",
            Path::new("s"),
            true,
        )
        .unwrap();
        assert!(
            s.port_allowed(2000)
                && s.port_allowed(3001)
                && !s.port_allowed(3002)
                && !s.port_allowed(1999)
        );
    }

    #[test]
    fn secrets_not_in_debug() {
        let c = client("auth.token = \"supersecret\"").unwrap();
        assert!(!format!("{c:?}").contains("supersecret"));
    }
}
