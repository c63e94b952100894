//! frp's v1 configuration (frp `pkg/config/v1/*.go`; frp-protocol.md §14).
//!
//! Plain serde data with frp's camelCase keys; every default lives in the one `impl Default` of
//! its struct. [`load`] is the only loader both binaries use: read -> parse -> strict key check
//! -> complete (frp's zero-means-default) -> validate (all errors at once).
//!
//! Still to come (configuration issue): templates, includes, YAML/JSON, case-insensitive keys,
//! legacy INI, every remaining key.

mod client;
mod load;
mod proxy;
mod server;

pub use client::*;
pub use load::{load_client, load_server, parse_client, parse_server, ConfigError};
pub use proxy::*;
pub use server::*;

use serde::{Deserialize, Serialize};

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

/// `auth.*` (token method; OIDC comes with the security issue).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AuthConfig {
    /// "token" or "oidc".
    pub method: String,
    pub token: String,
    /// `HeartBeats`, `NewWorkConns`.
    pub additional_scopes: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            method: "token".into(),
            token: String::new(),
            additional_scopes: Vec::new(),
        }
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("method", &self.method)
            .field("token", &if self.token.is_empty() { "" } else { "***" })
            .field("additional_scopes", &self.additional_scopes)
            .finish()
    }
}

impl AuthConfig {
    /// Whether an additional scope (`HeartBeats`, `NewWorkConns`) is on.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.additional_scopes.iter().any(|s| s == scope)
    }
}

/// `webServer.*` (dashboard on frps, admin API on frpc; served by the operations issue).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WebServerConfig {
    pub addr: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub assets_dir: String,
    pub pprof_enable: bool,
}

impl Default for WebServerConfig {
    fn default() -> Self {
        WebServerConfig {
            addr: "127.0.0.1".into(),
            port: 0,
            user: String::new(),
            password: String::new(),
            assets_dir: String::new(),
            pprof_enable: false,
        }
    }
}

impl std::fmt::Debug for WebServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebServerConfig")
            .field("addr", &self.addr)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}
