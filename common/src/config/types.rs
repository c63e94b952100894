//! Small config value types shared by both sides.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A secret string (token, password, secret key): prints as `***` in `Debug`, so configs can
/// be logged and shown by `verify` without leaking it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl std::ops::Deref for Secret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// `{ name, value }` pairs (health-check headers, tokenSource exec env).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

/// `requestHeaders` / `responseHeaders`: `{ set = { k = v } }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeaderOperations {
    pub set: BTreeMap<String, String>,
}

/// `auth.tokenSource` / `auth.oidc.tokenSource` (frp `pkg/config/v1/value_source.go`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ValueSource {
    /// "file" or "exec".
    #[serde(rename = "type")]
    pub kind: String,
    pub file: FileSource,
    pub exec: ExecSource,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FileSource {
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecSource {
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<NameValue>,
}

/// `log.*` on both sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LogConfig {
    /// "console" or a file path.
    pub to: String,
    pub level: String,
    pub max_days: i64,
    pub disable_print_color: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        // frp pkg/config/v1/common.go LogConfig.Complete.
        LogConfig {
            to: "console".into(),
            level: "info".into(),
            max_days: 3,
            disable_print_color: false,
        }
    }
}

/// `webServer.*`: frps dashboard or frpc admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WebServerConfig {
    pub addr: String,
    /// 0 = disabled.
    pub port: u16,
    pub user: String,
    pub password: Secret,
    pub assets_dir: String,
    pub pprof_enable: bool,
    pub tls: Option<TlsFilesConfig>,
}

impl Default for WebServerConfig {
    fn default() -> Self {
        WebServerConfig {
            addr: "127.0.0.1".into(),
            port: 0,
            user: String::new(),
            password: Secret::default(),
            assets_dir: String::new(),
            pprof_enable: false,
            tls: None,
        }
    }
}

/// `certFile` / `keyFile` / `trustedCaFile`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TlsFilesConfig {
    pub cert_file: String,
    pub key_file: String,
    pub trusted_ca_file: String,
}

/// `transport.quic.*` on both sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct QuicConfig {
    pub keepalive_period: i64,
    pub max_idle_timeout: i64,
    pub max_incoming_streams: i64,
}

impl Default for QuicConfig {
    fn default() -> Self {
        QuicConfig {
            keepalive_period: 10,
            max_idle_timeout: 30,
            max_incoming_streams: 100_000,
        }
    }
}

impl QuicConfig {
    pub(crate) fn complete(&mut self) {
        let d = QuicConfig::default();
        zero_default(&mut self.keepalive_period, d.keepalive_period);
        zero_default(&mut self.max_idle_timeout, d.max_idle_timeout);
        zero_default(&mut self.max_incoming_streams, d.max_incoming_streams);
    }
}

/// frp's `EmptyOr`: a zero value means "use the default".
pub(crate) fn zero_default<T: Default + PartialEq>(v: &mut T, d: T) {
    if *v == T::default() {
        *v = d;
    }
}

/// A bandwidth like "1MB" or "512KB" (frp `pkg/config/types` `BandwidthQuantity`): MB = 1048576,
/// KB = 1024, case-sensitive suffix, surrounding spaces trimmed; "" = unlimited.
pub fn parse_bandwidth(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(0);
    }
    let (num, base) = if let Some(n) = t.strip_suffix("MB") {
        (n, 1_048_576f64)
    } else if let Some(n) = t.strip_suffix("KB") {
        (n, 1024f64)
    } else {
        return Err(format!(
            "unit not support: {s:?} (use KB or MB, e.g. \"512KB\")"
        ));
    };
    let f: f64 = num
        .parse()
        .map_err(|_| format!("invalid bandwidth {s:?}"))?;
    if f < 0.0 {
        return Err(format!("invalid bandwidth {s:?}"));
    }
    Ok((f * base) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth() {
        assert_eq!(parse_bandwidth("1MB"), Ok(1_048_576));
        assert_eq!(parse_bandwidth(" 0.5KB "), Ok(512));
        assert_eq!(parse_bandwidth(""), Ok(0));
        assert!(parse_bandwidth("1mb").is_err());
        assert!(parse_bandwidth("1GB").is_err());
    }

    #[test]
    fn secret_is_masked() {
        assert_eq!(format!("{:?}", Secret::from("abc")), "\"***\"");
        assert_eq!(&*Secret::from("abc"), "abc");
    }
}
