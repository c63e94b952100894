//! frpc's admin API (frp `client/api_router.go`, `client/http/controller.go`; frp-protocol.md
//! §15) on `webServer.addr:port`, served with hyper. `/healthz` is open; everything else needs
//! HTTP Basic auth when `webServer.user` or `password` is set (checked in constant time; a
//! failure waits 200 ms, as frp).
//!
//! `GET /api/reload[?strictConfig=true]` re-reads the config file and applies it through the
//! [`Reloader`] (only changed proxies are touched); `POST /api/stop`; `GET /api/status`;
//! `GET|PUT /api/config`. Errors are frp's `{"Code":..,"Msg":..}`. The admin page (`/`,
//! `/ui/...`) is in `ui.rs`.

use crate::status::StatusBoard;
use crate::store;
use crate::Reloader;
use common::config::{ClientConfig, WebServerConfig};
use common::http::{self, error, reply, BasicAuth, Resp};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// What the handlers need.
#[derive(Debug)]
pub(crate) struct Admin {
    pub(crate) source: Option<crate::reload::ConfigSource>,
    pub(crate) reloader: Reloader,
    pub(crate) status: StatusBoard,
    pub(crate) visitor_status: StatusBoard,
    pub(crate) shutdown: CancellationToken,
    pub(crate) metrics: Arc<crate::metrics::ClientMetrics>,
    pub(crate) web: WebServerConfig,
    /// The host of the frps frpc is logged in to (with `serverAddrs`, the one it is on now).
    pub(crate) server_addr: Arc<std::sync::Mutex<String>>,
}

impl Admin {
    /// How the config file was loaded (store entries are read the same way).
    pub(crate) fn load_options(&self) -> common::config::LoadOptions {
        self.source
            .as_ref()
            .map(|s| s.opts.clone())
            .unwrap_or_default()
    }
}

/// Serves the admin API until `token` is cancelled.
pub(crate) async fn serve(
    listener: http::WebListener,
    admin: Arc<Admin>,
    token: CancellationToken,
) {
    let auth = BasicAuth {
        user: admin.web.user.clone(),
        password: admin.web.password.0.clone(),
    };
    let page = Arc::new(crate::ui::Page::new());
    let assets = Arc::new(common::ui::AssetsDir::new(&admin.web.assets_dir));
    let handler = Arc::new(move |req: Request<Bytes>| {
        let (admin, page, assets) = (admin.clone(), page.clone(), assets.clone());
        async move {
            if let Some(a) = assets.as_ref() {
                if let Some(r) = a.route(req.method(), req.uri().path()).await {
                    return r;
                }
            }
            match crate::ui::route(&admin, &page, &req) {
                Some(r) => r,
                None => handle(admin, req).await,
            }
        }
    });
    http::serve(listener, auth, handler, token).await;
}

/// frp's routes (`client/api_router.go`, gorilla/mux): a known path with another method is 405
/// with an empty body; an unknown path is net/http's 404 page; the store routes exist only
/// with a store.
async fn handle(a: Arc<Admin>, req: Request<Bytes>) -> Resp {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let allowed: &[Method] = match parts.as_slice() {
        ["api", "reload" | "status"] | ["metrics"] => &[Method::GET],
        ["api", "stop"] => &[Method::POST],
        ["api", "config"] => &[Method::GET, Method::PUT],
        ["api", "proxy" | "visitor", n, "config"] if !n.is_empty() => &[Method::GET],
        ["api", "store", "proxies" | "visitors"] if store_on(&a) => &[Method::GET, Method::POST],
        ["api", "store", "proxies" | "visitors", n] if store_on(&a) && !n.is_empty() => {
            &[Method::GET, Method::PUT, Method::DELETE]
        }
        _ => return not_found(),
    };
    if !allowed.contains(&method) {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "");
    }
    if method != Method::GET || parts == ["api", "reload"] {
        if let Some(refused) = http::refuse_cross_site(&req).or_else(|| media_type(&req, &parts)) {
            return refused;
        }
    }
    match parts.as_slice() {
        ["api", "reload"] => {
            let query = http::query(&req);
            let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v);
            let strict = param("strictConfig").is_some_and(|v| v == "true");
            let running = a.source.as_ref().map(|s| canonical(&s.path));
            let mut r = match (param("configFile"), &running) {
                (Some(asked), Some(running)) if canonical(Path::new(asked)) != *running => error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "this frpc runs with config file {}, not {asked}; nothing was reloaded",
                        running.display()
                    ),
                ),
                _ => match reload(&a, strict) {
                    Ok(()) => reply(StatusCode::OK, ""),
                    Err(e) => {
                        // Logged here too, as frp: whoever runs frpc sees why its config did
                        // not change.
                        warn!(error = %e, "reload failed; the running config stays");
                        error(StatusCode::BAD_REQUEST, &e)
                    }
                },
            };
            if let Some(v) = running.and_then(|p| {
                hyper::header::HeaderValue::from_str(&http::query_escape(&p.display().to_string()))
                    .ok()
            }) {
                r.headers_mut().insert(CONFIG_FILE_HEADER, v);
            }
            r
        }
        ["api", "stop"] => {
            info!("stop requested through the admin API");
            let t = a.shutdown.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                t.cancel();
            });
            reply(StatusCode::OK, "")
        }
        ["api", "status"] => http::json(StatusCode::OK, &status(&a)),
        ["metrics"] => a.metrics.reply(),
        ["api", "store", ..] => store_api(&a, req).await,
        ["api", ..] if method == Method::GET && parts[1] != "config" => {
            definition(&a.reloader.current(), &path)
        }
        _ if method == Method::GET => match a.source.as_ref().map(|s| &s.path) {
            Some(p) => match std::fs::read(p) {
                Ok(text) => {
                    let mut r = reply(StatusCode::OK, text);
                    r.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                    r
                }
                Err(e) => error(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid argument: read config file {}: {e}", p.display()),
                ),
            },
            None => error(StatusCode::BAD_REQUEST, NO_FILE),
        },
        _ => {
            let body = req.into_body();
            match (a.source.as_ref().map(|s| &s.path), body.is_empty()) {
                (_, true) => error(StatusCode::BAD_REQUEST, "body can't be empty"),
                (None, _) => error(StatusCode::INTERNAL_SERVER_ERROR, NO_FILE),
                (Some(p), false) if changes_token_sources(&a, &body).is_some() => error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "{} cannot be changed through the admin API: the command or file it names \
                         would run or be read at frpc's next start; edit {} on the host",
                        changes_token_sources(&a, &body).unwrap_or_default(),
                        p.display()
                    ),
                ),
                (Some(p), false) => match write_private(p, &body) {
                    Ok(()) => reply(StatusCode::OK, ""),
                    Err(e) => error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &format!("write config file {}: {e}", p.display()),
                    ),
                },
            }
        }
    }
}

/// Which token source (`auth.tokenSource`, `auth.oidc.tokenSource`) a config sent to
/// `PUT /api/config` sets differently from the running file: frpc would run that command or
/// read that file at its next start, so the admin API refuses it (issue 22 item 1). The text is
/// read as a reload reads a file (no command run, no certificate read); text that does not
/// load is written as frp writes it, since a start-up load would refuse it too.
pub(crate) fn changes_token_sources(a: &Admin, body: &[u8]) -> Option<&'static str> {
    let source = a.source.as_ref()?;
    let text = std::str::from_utf8(body).ok()?;
    let opts = common::config::LoadOptions {
        reload: Some(common::config::Reload {
            includes: a.reloader.running_includes(),
        }),
        ..source.opts.clone()
    };
    let new = common::config::load_client_text(text, &source.path, &opts)
        .ok()?
        .config;
    let running = a.reloader.running_file();
    if new.auth.token_source != running.auth.token_source {
        Some("auth.tokenSource")
    } else if new.auth.oidc.token_source != running.auth.oidc.token_source {
        Some("auth.oidc.tokenSource")
    } else {
        None
    }
}

/// A body of another type than the endpoint takes is refused (415): store entries are JSON
/// (`application/json`, as frp's web UI sends them); a config may come as any text, TOML, YAML
/// or JSON, or without a type (frp's `frpc` SDK sends none), but never as a form, which any web
/// page can post without asking.
fn media_type(req: &Request<Bytes>, parts: &[&str]) -> Option<Resp> {
    let ct = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase());
    let essence = ct
        .as_deref()
        .map(|c| c.split(';').next().unwrap_or("").trim().to_owned());
    let ok = match (parts, req.method(), essence.as_deref()) {
        (["api", "store", ..], &Method::POST | &Method::PUT, Some(e)) => {
            e == "application/json" || e.ends_with("+json")
        }
        (["api", "store", ..], &Method::POST | &Method::PUT, None) => false,
        (["api", "config"], _, Some(e)) => {
            e != "application/x-www-form-urlencoded" && !e.starts_with("multipart/")
        }
        _ => true,
    };
    (!ok).then(|| {
        let want = if parts.get(1) == Some(&"store") {
            "application/json"
        } else {
            "text/plain, application/toml, application/yaml or application/json"
        };
        error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!(
                "Content-Type {} is not accepted here; send {want}",
                ct.as_deref().unwrap_or("(none)")
            ),
        )
    })
}

/// The header in which `/api/reload` names the config file this frpc runs with (absolute,
/// percent-encoded), so `frpc reload` can say which file was reloaded (beyond frp).
pub const CONFIG_FILE_HEADER: &str = "x-frp-rs-config-file";

/// The config file a `/api/reload` answer names, if the frpc that answered names one.
pub fn reported_config_file(headers: &hyper::HeaderMap) -> Option<String> {
    let v = headers.get(CONFIG_FILE_HEADER)?.to_str().ok()?;
    Some(http::percent_decode(v))
}

/// A path as the running frpc and `frpc reload` both see it: absolute, links resolved.
fn canonical(p: &Path) -> std::path::PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned())
}

/// frp's answer when frpc runs without a config file.
pub(crate) const NO_FILE: &str = "invalid argument: frpc has no config file path";

/// net/http's `NotFound`.
fn not_found() -> Resp {
    let mut r = reply(StatusCode::NOT_FOUND, "404 page not found\n");
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Whether the store (and so its routes) exists.
fn store_on(a: &Admin) -> bool {
    a.reloader.read_store(|_| ()).is_ok()
}

/// `GET /api/proxy/{name}/config` and `/api/visitor/{name}/config`: frp's typed definition
/// `{name, type, <type>: {...}}` of the entry in the running config.
fn definition(cfg: &ClientConfig, path: &str) -> Resp {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let found = match parts.as_slice() {
        ["api", "proxy", name, "config"] => cfg
            .proxies
            .iter()
            .find(|p| p.name == *name)
            .map(store::proxy_definition)
            .ok_or(("proxy", name)),
        ["api", "visitor", name, "config"] => cfg
            .visitors
            .iter()
            .find(|v| v.name == *name)
            .map(store::visitor_definition)
            .ok_or(("visitor", name)),
        _ => return not_found(),
    };
    match found {
        Ok(d) => http::json(StatusCode::OK, &d),
        Err((what, name)) => error(StatusCode::NOT_FOUND, &format!("{what} {name:?} not found")),
    }
}

/// `/api/store/proxies[/{name}]` and `/api/store/visitors[/{name}]` (frp's store API); the
/// route and method are already checked.
async fn store_api(a: &Admin, req: Request<Bytes>) -> Resp {
    let path = req.uri().path().to_owned();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (kind, list_key) = if parts[2] == "proxies" {
        (store::Kind::Proxy, "proxies")
    } else {
        (store::Kind::Visitor, "visitors")
    };
    let name = parts.get(3).copied();
    let method = req.method().clone();
    let body = req.into_body();
    let opts = a.load_options();
    let r = &a.reloader;
    let result = match (method, name) {
        (Method::GET, None) => r
            .read_store(|s| serde_json::json!({ list_key: s.list(kind) }))
            .map(Some),
        (Method::GET, Some(n)) => r.read_store(|s| s.get(kind, n)).and_then(|x| x).map(Some),
        (Method::POST, None) => r.with_store(|s| s.put(kind, None, &body, &opts)).map(Some),
        (Method::PUT, Some(n)) => r
            .with_store(|s| s.put(kind, Some(n), &body, &opts))
            .map(Some),
        (_, Some(n)) => r.with_store(|s| s.delete(kind, n)).map(|()| None),
        (_, None) => return reply(StatusCode::METHOD_NOT_ALLOWED, ""),
    };
    match result {
        Ok(Some(v)) => http::json(StatusCode::OK, &v),
        // frp answers a delete with 200 and no body.
        Ok(None) => reply(StatusCode::OK, ""),
        Err(store::StoreError::Disabled(_)) => not_found(),
        Err(e) => {
            let code = match e {
                store::StoreError::NotFound(_) | store::StoreError::Disabled(_) => {
                    StatusCode::NOT_FOUND
                }
                store::StoreError::Exists(_) => StatusCode::CONFLICT,
                store::StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
                store::StoreError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(code, &e.to_string())
        }
    }
}

pub(crate) fn write_private(p: &std::path::Path, body: &[u8]) -> std::io::Result<()> {
    std::fs::write(p, body)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Re-reads the config file and applies it; a config that fails to load changes nothing.
fn reload(a: &Admin, strict: bool) -> Result<(), String> {
    a.source
        .as_ref()
        .ok_or(NO_FILE)?
        .reload(&a.reloader, strict)
        .map(drop)
        .map_err(|e| format!("invalid argument: {e}"))
}

/// One row of `/api/status` (frp `ProxyStatusResp`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ProxyStatusResp {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub err: String,
    pub local_addr: String,
    pub plugin: String,
    pub remote_addr: String,
    /// `store` for proxies from the store (frp 0.70).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// `/api/status`: proxies grouped by type, sorted by name.
pub(crate) fn status(a: &Admin) -> BTreeMap<String, Vec<ProxyStatusResp>> {
    let cfg: Arc<ClientConfig> = a.reloader.current();
    let mut out: BTreeMap<String, Vec<ProxyStatusResp>> = BTreeMap::new();
    for s in a.status.all() {
        let p = cfg.proxies.iter().find(|p| p.name == s.name);
        let plugin = p
            .and_then(|p| p.plugin.as_ref())
            .map(|pl| pl.kind.clone())
            .unwrap_or_default();
        let local_addr = match p {
            // frp: shown whenever localPort is set, plugin or not.
            Some(p) if p.local_port != 0 => format!("{}:{}", p.local_ip, p.local_port),
            _ => String::new(),
        };
        let remote_addr = if matches!(s.kind.as_str(), "tcp" | "udp") && !s.remote_addr.is_empty() {
            let host = a
                .server_addr
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            format!("{host}{}", s.remote_addr)
        } else {
            s.remote_addr.clone()
        };
        let stored = a.reloader.read_store(|st| st.has_proxy(&s.name));
        let row = status_row(&s, local_addr, plugin, remote_addr, stored.unwrap_or(false));
        out.entry(s.kind.clone()).or_default().push(row);
    }
    // frp lists proxies only; visitors come under their own key (no proxy type is named so),
    // with their listen address as `local_addr`.
    for s in a.visitor_status.all() {
        let local_addr = cfg
            .visitors
            .iter()
            .find(|v| v.name == s.name && v.bind_port > 0)
            .map(|v| format!("{}:{}", v.bind_addr, v.bind_port))
            .unwrap_or_default();
        let stored = a.reloader.read_store(|st| st.has_visitor(&s.name));
        let row = status_row(
            &s,
            local_addr,
            String::new(),
            String::new(),
            stored.unwrap_or(false),
        );
        out.entry(VISITORS_KEY.to_owned()).or_default().push(row);
    }
    for v in out.values_mut() {
        v.sort_by(|x, y| x.name.cmp(&y.name));
    }
    out
}

/// One row of `/api/status`.
fn status_row(
    s: &crate::status::ProxyStatus,
    local_addr: String,
    plugin: String,
    remote_addr: String,
    from_store: bool,
) -> ProxyStatusResp {
    ProxyStatusResp {
        name: s.name.clone(),
        kind: s.kind.clone(),
        status: s.phase.as_str().to_owned(),
        err: s.error.clone(),
        local_addr,
        plugin,
        remote_addr,
        source: from_store.then(|| "store".to_owned()),
    }
}

/// The `/api/status` key of the visitors' rows.
pub const VISITORS_KEY: &str = "visitors";

/// Where `frpc reload|status|stop` reach the admin API of `web` (its address, or 127.0.0.1
/// when it listens on every interface).
pub fn api_addr(web: &WebServerConfig) -> String {
    let host = if web.addr.is_empty() || web.addr == "0.0.0.0" {
        "127.0.0.1"
    } else {
        &web.addr
    };
    format!("{host}:{}", web.port)
}

/// The client side of `frpc reload|status|stop`: one request to the admin API.
pub async fn request(
    web: &WebServerConfig,
    method: Method,
    path: &str,
) -> std::io::Result<(StatusCode, String)> {
    let a = call(web, method, path).await?;
    Ok((a.code, a.body))
}

/// [`request`] with the answer's headers.
pub async fn call(
    web: &WebServerConfig,
    method: Method,
    path: &str,
) -> std::io::Result<http::Answer> {
    let auth = BasicAuth {
        user: web.user.clone(),
        password: web.password.0.clone(),
    };
    http::request_with(&api_addr(web), &auth, method, path, &[], Bytes::new()).await
}
