//! Server plugins: frp's HTTP RPC hooks (frp `pkg/plugin/server/*.go`, `doc/server_plugin.md`;
//! frp-protocol.md §16). [`Plugins`] is all the rest of frps sees: one async call per operation
//! (login, new proxy, ping, work connection, user connection) that returns the content frps must
//! act on or why the operation is refused, and a notification for closed proxies.
//!
//! Each call goes to the plugins registered for its op, in config order: `POST
//! <addr><path>?version=0.1.0&op=<Op>` with `{"version","op","content"}`; an answer of
//! `{"reject","reject_reason","unchange","content"}`. A rejection stops the chain; `unchange =
//! false` replaces the content for the next plugin and for frps. Anything else (no answer in
//! time, a non-200 status, a redirect, an answer that is not that JSON, unknown keys or wrong
//! types) fails the operation; the client sees frp's text, the log, metrics and the dashboard
//! name the plugin and the reason.
//!
//! Not here: what frps does with the content (login checks, proxies), the HTTP connections
//! ([`client`]).

mod client;

use crate::metrics::Metrics;
use bytes::Bytes;
use common::config::HttpPluginOptions;
use common::msg::{CloseProxy, Login, NewProxy, NewWorkConn, Ping};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{info, warn};

pub(crate) use client::Endpoint;

/// frp's plugin API version (`APIVersion`).
const API_VERSION: &str = "0.1.0";
/// Bound on one plugin exchange: connect, TLS, request and the whole answer. Well inside the
/// 10 s a connection has to log in, so a dead Login plugin fails the login rather than the
/// connection timing out.
pub(crate) const PLUGIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The operations a plugin can be called for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Login,
    NewProxy,
    CloseProxy,
    Ping,
    NewWorkConn,
    NewUserConn,
}

impl Op {
    pub(crate) const ALL: [Op; 6] = [
        Op::Login,
        Op::NewProxy,
        Op::CloseProxy,
        Op::Ping,
        Op::NewWorkConn,
        Op::NewUserConn,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Login => "Login",
            Op::NewProxy => "NewProxy",
            Op::CloseProxy => "CloseProxy",
            Op::Ping => "Ping",
            Op::NewWorkConn => "NewWorkConn",
            Op::NewUserConn => "NewUserConn",
        }
    }

    fn from_name(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.name() == s)
    }
}

/// frp's `UserInfo`: who the operation is for (no omitempty; Go writes a nil map as `null`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct UserInfo {
    pub(crate) user: String,
    #[serde(serialize_with = "null_if_empty")]
    pub(crate) metas: BTreeMap<String, String>,
    pub(crate) run_id: String,
}

impl UserInfo {
    pub(crate) fn of(login: &Login, run_id: &str) -> UserInfo {
        UserInfo {
            user: login.user.clone(),
            metas: login.metas.clone(),
            run_id: run_id.to_owned(),
        }
    }
}

fn null_if_empty<S: serde::Serializer>(
    m: &BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    if m.is_empty() {
        s.serialize_none()
    } else {
        m.serialize(s)
    }
}

/// Why an operation did not go ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// A plugin said no; the reason is its `reject_reason`, which the client sees.
    #[error("{reason}")]
    Rejected { plugin: String, reason: String },
    /// A plugin could not be asked or gave no usable answer.
    #[error("send {op} request to plugin [{plugin}] error: {error}")]
    Failed {
        plugin: String,
        op: &'static str,
        error: String,
    },
}

impl Refusal {
    /// What frp tells the client: the reject reason, or `send <Op> request to plugin error`
    /// (the plugin's name and the failure stay in frps's log and dashboard).
    pub(crate) fn client_text(&self) -> String {
        match self {
            Refusal::Rejected { reason, .. } => reason.clone(),
            Refusal::Failed { op, .. } => format!("send {op} request to plugin error"),
        }
    }
}

/// One configured plugin.
struct Plugin {
    name: String,
    ops: Vec<Op>,
    endpoint: Endpoint,
    /// The last failure (call time, op and reason), for the dashboard.
    last_error: Mutex<Option<String>>,
}

/// What the dashboard shows of a plugin.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PluginStatus {
    pub(crate) name: String,
    pub(crate) addr: String,
    pub(crate) path: String,
    pub(crate) tls_verify: bool,
    pub(crate) ops: Vec<&'static str>,
    pub(crate) last_error: Option<String>,
}

/// The configured plugins and the client they share.
pub(crate) struct Plugins {
    plugins: Vec<Arc<Plugin>>,
    configured: Vec<HttpPluginOptions>,
    client: client::Client,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugins")
            .field("count", &self.plugins.len())
            .finish_non_exhaustive()
    }
}

/// A plugin's answer (frp `Response`); `content` is taken out and decoded on its own.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Answer {
    reject: bool,
    reject_reason: String,
    unchange: bool,
}

impl Plugins {
    /// The plugins of `cfg`, in order. Errors name the plugin whose `addr` or `ops` is bad.
    pub(crate) fn new(cfg: &[HttpPluginOptions], metrics: Arc<Metrics>) -> Result<Plugins, String> {
        let mut plugins = Vec::new();
        for p in cfg {
            let endpoint = Endpoint::parse(&p.addr, &p.path, p.tls_verify)
                .map_err(|e| format!("httpPlugins [{}]: addr: {e}", p.name))?;
            let mut ops = Vec::new();
            for o in &p.ops {
                ops.push(
                    Op::from_name(o)
                        .ok_or_else(|| format!("httpPlugins [{}]: unknown op {o:?}", p.name))?,
                );
            }
            if p.tls_verify && !endpoint.https {
                warn!(plugin = %p.name, "httpPlugins: tlsVerify has no effect on an http:// addr");
            }
            info!(plugin = %p.name, "plugin has been registered");
            plugins.push(Arc::new(Plugin {
                name: p.name.clone(),
                ops,
                endpoint,
                last_error: Mutex::new(None),
            }));
        }
        let tls_err = |e: common::transport::tls::TlsError| format!("httpPlugins TLS: {e}");
        let verified = if plugins.iter().any(|p| p.endpoint.verify) {
            // Go's crypto/x509 reads the CA bundle SSL_CERT_FILE names instead of the system's.
            let ca = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
            Some(
                common::transport::tls::https_client_config(ca.as_deref(), false)
                    .map_err(tls_err)?,
            )
        } else {
            None
        };
        let unverified =
            common::transport::tls::https_client_config(None, true).map_err(tls_err)?;
        Ok(Plugins {
            plugins,
            configured: cfg.to_vec(),
            client: client::Client::new(verified, unverified, PLUGIN_TIMEOUT),
            metrics,
        })
    }

    /// Whether any plugin handles `op` (callers skip building content when none does).
    pub(crate) fn handles(&self, op: Op) -> bool {
        self.plugins.iter().any(|p| p.ops.contains(&op))
    }

    /// The dashboard's view.
    pub(crate) fn status(&self) -> Vec<PluginStatus> {
        self.plugins
            .iter()
            .zip(&self.configured)
            .map(|(p, c)| PluginStatus {
                name: p.name.clone(),
                addr: c.addr.clone(),
                path: c.path.clone(),
                tls_verify: c.tls_verify,
                ops: p.ops.iter().map(|o| o.name()).collect(),
                last_error: p
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            })
            .collect()
    }

    /// Login, before frps checks it: the Login as the plugins left it.
    pub(crate) async fn login(&self, login: Login, client_address: &str) -> Result<Login, Refusal> {
        let content = LoginContent {
            login,
            client_address: client_address.to_owned(),
        };
        Ok(self.chain(Op::Login, content).await?.login)
    }

    /// NewProxy, before frps registers it: the NewProxy frps must act on.
    pub(crate) async fn new_proxy(
        &self,
        user: &UserInfo,
        np: NewProxy,
    ) -> Result<NewProxy, Refusal> {
        Ok(self.chain(Op::NewProxy, WithUser::new(user, np)).await?.msg)
    }

    /// Ping, before frps checks its authentication.
    pub(crate) async fn ping(&self, user: &UserInfo, ping: Ping) -> Result<Ping, Refusal> {
        Ok(self.chain(Op::Ping, WithUser::new(user, ping)).await?.msg)
    }

    /// NewWorkConn, before frps checks its authentication.
    pub(crate) async fn new_work_conn(
        &self,
        user: &UserInfo,
        m: NewWorkConn,
    ) -> Result<NewWorkConn, Refusal> {
        Ok(self
            .chain(Op::NewWorkConn, WithUser::new(user, m))
            .await?
            .msg)
    }

    /// A user connection to a proxy, before frps serves it.
    pub(crate) async fn new_user_conn(
        &self,
        user: &UserInfo,
        proxy_name: &str,
        proxy_type: &str,
        remote_addr: std::net::SocketAddr,
    ) -> Result<(), Refusal> {
        let content = NewUserConnContent {
            user: user.clone(),
            proxy_name: proxy_name.to_owned(),
            proxy_type: proxy_type.to_owned(),
            remote_addr: remote_addr.to_string(),
        };
        self.chain(Op::NewUserConn, content).await.map(|_| ())
    }

    /// CloseProxy: a notification sent in the background to every plugin for it; failures are
    /// logged (and shown on the dashboard), nothing waits for them.
    pub(crate) fn close_proxy(self: &Arc<Self>, user: &UserInfo, proxy_name: &str) {
        if !self.handles(Op::CloseProxy) {
            return;
        }
        let content = WithUser::new(
            user,
            CloseProxy {
                proxy_name: proxy_name.to_owned(),
            },
        );
        let this = self.clone();
        tokio::spawn(async move {
            let reqid = request_id();
            for p in this
                .plugins
                .iter()
                .filter(|p| p.ops.contains(&Op::CloseProxy))
            {
                let r = this
                    .call(p, Op::CloseProxy, &reqid, content.to_json())
                    .await;
                let outcome = match r {
                    Ok(_) => "notified",
                    Err(_) => "failed",
                };
                this.metrics
                    .plugin_call(&p.name, Op::CloseProxy.name(), outcome);
            }
        });
    }

    /// Calls the plugins for `op` in order on `content`.
    async fn chain<C: Content>(&self, op: Op, mut content: C) -> Result<C, Refusal> {
        if !self.handles(op) {
            return Ok(content);
        }
        let reqid = request_id();
        for p in self.plugins.iter().filter(|p| p.ops.contains(&op)) {
            let answer = self.call(p, op, &reqid, content.to_json()).await;
            let (answer, new) = match answer {
                Ok(a) => a,
                Err(error) => {
                    self.metrics.plugin_call(&p.name, op.name(), "failed");
                    return Err(Refusal::Failed {
                        plugin: p.name.clone(),
                        op: op.name(),
                        error,
                    });
                }
            };
            if answer.reject {
                self.metrics.plugin_call(&p.name, op.name(), "rejected");
                info!(plugin = %p.name, op = op.name(), reason = %answer.reject_reason, "plugin rejected the operation");
                return Err(Refusal::Rejected {
                    plugin: p.name.clone(),
                    reason: answer.reject_reason,
                });
            }
            if answer.unchange {
                self.metrics.plugin_call(&p.name, op.name(), "unchanged");
                continue;
            }
            if new.is_none() {
                // frp decodes into a zero value of the content, so a missing content empties it.
                warn!(plugin = %p.name, op = op.name(), "plugin answered unchange = false without content; going on with empty content as frp does (answer \"unchange\": true to keep it)");
            }
            match C::from_json(new.unwrap_or(Value::Null), &content) {
                Ok(c) => content = c,
                Err(error) => {
                    let error = format!("bad answer: {error}");
                    self.failed(p, op, &error);
                    self.metrics.plugin_call(&p.name, op.name(), "failed");
                    return Err(Refusal::Failed {
                        plugin: p.name.clone(),
                        op: op.name(),
                        error,
                    });
                }
            }
            self.metrics.plugin_call(&p.name, op.name(), "changed");
        }
        Ok(content)
    }

    /// One exchange with one plugin: its answer and its `content`, if any. Errors are recorded
    /// (log, dashboard) here.
    async fn call(
        &self,
        p: &Plugin,
        op: Op,
        reqid: &str,
        content: Value,
    ) -> Result<(Answer, Option<Value>), String> {
        let body = serde_json::json!({"version": API_VERSION, "op": op.name(), "content": content});
        let body = Bytes::from(body.to_string());
        let query = format!("version={API_VERSION}&op={}", op.name());
        let started = tokio::time::Instant::now();
        let r = self
            .client
            .post(&p.endpoint, &query, &[("X-Frp-Reqid", reqid)], body)
            .await;
        self.metrics.plugin_latency(op.name(), started.elapsed());
        let r = r.and_then(|(status, body)| parse_answer(status, &body));
        if let Err(e) = &r {
            self.failed(p, op, e);
        }
        r
    }

    fn failed(&self, p: &Plugin, op: Op, error: &str) {
        warn!(plugin = %p.name, op = op.name(), %error, "send {} request to plugin [{}] error", op.name(), p.name);
        let when = crate::metrics::short_time(common::clock::unix_now());
        *p.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(format!("{when} {}: {error}", op.name()));
    }
}

/// Go's `util.RandID`: 8 random bytes in hex.
fn request_id() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

/// Reads a plugin's HTTP answer: 200 and frp's `Response` JSON, nothing else.
fn parse_answer(status: hyper::StatusCode, body: &[u8]) -> Result<(Answer, Option<Value>), String> {
    if status.is_redirection() {
        return Err(format!(
            "do http request error code: {} (redirects are not followed)",
            status.as_u16()
        ));
    }
    if status != hyper::StatusCode::OK {
        return Err(format!("do http request error code: {}", status.as_u16()));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("answer is not JSON: {e}"))?;
    let mut m = match v {
        Value::Object(m) => m,
        other => return Err(format!("answer is not a JSON object but {}", kind(&other))),
    };
    let content = m
        .keys()
        .find(|k| k.eq_ignore_ascii_case("content"))
        .cloned()
        .and_then(|k| m.remove(&k))
        .filter(|c| !c.is_null());
    let (answer, unknown) = common::config::decode_like_go::<Answer>(Value::Object(m))
        .map_err(|e| format!("bad answer: {e}"))?;
    if let Some(u) = unknown.first() {
        return Err(format!("bad answer: unknown key {}", u.path));
    }
    Ok((answer, content))
}

/// The content of one op: how it is sent, and how a plugin's replacement is read.
trait Content: Sized {
    fn to_json(&self) -> Value;
    /// A plugin's new content (`null`: it sent none, read as frp does as all zero); `prev`
    /// supplies what frps does not take from plugins.
    fn from_json(v: Value, prev: &Self) -> Result<Self, String>;
}

/// frp `LoginContent`: the Login's fields and `client_address`.
struct LoginContent {
    login: Login,
    client_address: String,
}

impl Content for LoginContent {
    fn to_json(&self) -> Value {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            login: &'a Login,
            #[serde(skip_serializing_if = "str::is_empty")]
            client_address: &'a str,
        }
        to_value(&Out {
            login: &self.login,
            client_address: &self.client_address,
        })
    }

    fn from_json(v: Value, prev: &Self) -> Result<Self, String> {
        let (login, _) = decode::<Login>(v, &["client_address"])?;
        Ok(LoginContent {
            login,
            client_address: prev.client_address.clone(),
        })
    }
}

/// frp's `NewProxyContent`, `CloseProxyContent`, `PingContent`, `NewWorkConnContent`: `user`
/// beside the message's own fields.
struct WithUser<M> {
    user: UserInfo,
    msg: M,
}

impl<M> WithUser<M> {
    fn new(user: &UserInfo, msg: M) -> Self {
        WithUser {
            user: user.clone(),
            msg,
        }
    }
}

impl<M: Serialize + DeserializeOwned> Content for WithUser<M> {
    fn to_json(&self) -> Value {
        #[derive(Serialize)]
        struct Out<'a, M> {
            user: &'a UserInfo,
            #[serde(flatten)]
            msg: &'a M,
        }
        to_value(&Out {
            user: &self.user,
            msg: &self.msg,
        })
    }

    fn from_json(v: Value, prev: &Self) -> Result<Self, String> {
        let (msg, _) = decode::<M>(v, &["user"])?;
        // frps goes on with the session's own user info, as frp does.
        Ok(WithUser {
            user: prev.user.clone(),
            msg,
        })
    }
}

/// frp `NewUserConnContent`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct NewUserConnContent {
    user: UserInfo,
    proxy_name: String,
    proxy_type: String,
    remote_addr: String,
}

impl Content for NewUserConnContent {
    fn to_json(&self) -> Value {
        to_value(self)
    }

    fn from_json(v: Value, _prev: &Self) -> Result<Self, String> {
        let (c, _) = decode::<NewUserConnContent>(v, &[])?;
        Ok(c)
    }
}

fn to_value<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// Decodes a plugin's `content` as `M` (Go's rules: keys match case-insensitively, missing ones
/// are zero), after taking out the `extra` keys the content has beside `M`'s (checked to be
/// what frp sends: `user` an object, the others strings). Unknown keys and wrong types fail.
fn decode<M: DeserializeOwned>(
    v: Value,
    extra: &[&str],
) -> Result<(M, Map<String, Value>), String> {
    let mut m = match v {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => return Err(format!("content is not an object but {}", kind(&other))),
    };
    let mut taken = Map::new();
    for key in extra {
        if let Some(k) = m.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned() {
            if let Some(x) = m.remove(&k) {
                taken.insert((*key).to_owned(), x);
            }
        }
    }
    for (k, x) in &taken {
        if k == "user" {
            let (_, unknown) = common::config::decode_like_go::<UserInfo>(x.clone())
                .map_err(|e| format!("content.user.{e}"))?;
            if let Some(u) = unknown.first() {
                return Err(format!("unknown key content.user.{}", u.path));
            }
        } else if !x.is_string() {
            return Err(format!("content.{k}: expected a string, found {}", kind(x)));
        }
    }
    let (msg, unknown) = common::config::decode_like_go::<M>(Value::Object(m))
        .map_err(|e| format!("content.{e}"))?;
    if let Some(u) = unknown.first() {
        return Err(format!("unknown key content.{}", u.path));
    }
    Ok((msg, taken))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;

    #[test]
    fn answers_are_read_as_go_reads_them() {
        let (a, c) = parse_answer(StatusCode::OK, br#"{"Reject":true,"reject_reason":"no"}"#)
            .expect("case-insensitive keys, as encoding/json");
        assert!(a.reject && c.is_none());
        assert_eq!(a.reject_reason, "no");
        let (a, c) = parse_answer(StatusCode::OK, br#"{"unchange":false,"content":null}"#)
            .expect("null content");
        assert!(!a.unchange && c.is_none());
        for (status, body, why) in [
            (StatusCode::OK, &b"nope"[..], "not JSON"),
            (StatusCode::OK, b"[1]", "not a JSON object"),
            (
                StatusCode::OK,
                br#"{"unchange":"false"}"#,
                "unchange: expected",
            ),
            (StatusCode::OK, br#"{"extra":1}"#, "unknown key extra"),
            (StatusCode::FOUND, b"{}", "redirects are not followed"),
            (StatusCode::INTERNAL_SERVER_ERROR, b"{}", "error code: 500"),
        ] {
            let e = parse_answer(status, body).expect_err(why);
            assert!(e.contains(why), "{why}: {e}");
        }
    }

    #[test]
    fn content_round_trips_with_frps_field_names() {
        let user = UserInfo {
            user: "u".into(),
            metas: BTreeMap::new(),
            run_id: "r".into(),
        };
        let np = NewProxy {
            proxy_name: "p".into(),
            proxy_type: "tcp".into(),
            remote_port: 6000,
            ..Default::default()
        };
        let c = WithUser::new(&user, np.clone());
        let v = c.to_json();
        assert_eq!(
            v["user"],
            serde_json::json!({"user": "u", "metas": null, "run_id": "r"})
        );
        assert_eq!(v["remote_port"], 6000);
        let back = WithUser::<NewProxy>::from_json(v, &c).expect("own content reads back");
        assert_eq!(back.msg, np);
        // A missing content is all zero, as in frp.
        let zero = WithUser::<NewProxy>::from_json(Value::Null, &c).expect("null");
        assert_eq!(zero.msg, NewProxy::default());
        let bad = WithUser::<NewProxy>::from_json(serde_json::json!({"remote_port": "x"}), &c);
        assert!(bad.is_err_and(|e| e.contains("content.remote_port")));
        let bad = WithUser::<NewProxy>::from_json(serde_json::json!({"user": []}), &c);
        assert!(bad.is_err_and(|e| e.contains("content.user")));
    }
}
