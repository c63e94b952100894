//! frpc's admin API (frp `client/api_router.go`, `client/http/controller.go`; frp-protocol.md
//! §15) on `webServer.addr:port`, served with hyper. `/healthz` is open; everything else needs
//! HTTP Basic auth when `webServer.user` or `password` is set (checked in constant time; a
//! failure waits 200 ms, as frp).
//!
//! `GET /api/reload[?strictConfig=true]` re-reads the config file and applies it through the
//! [`Reloader`] (only changed proxies are touched); `POST /api/stop`; `GET /api/status`;
//! `GET|PUT /api/config`. Errors are frp's `{"Code":..,"Msg":..}`.

use crate::status::StatusBoard;
use crate::Reloader;
use common::config::{ClientConfig, LoadOptions, WebServerConfig};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// What the handlers need.
#[derive(Debug)]
pub(crate) struct Admin {
    pub(crate) config_path: Option<PathBuf>,
    pub(crate) load: LoadOptions,
    pub(crate) reloader: Reloader,
    pub(crate) status: StatusBoard,
    pub(crate) shutdown: CancellationToken,
    pub(crate) web: WebServerConfig,
    pub(crate) server_addr: String,
}

/// Serves the admin API until `token` is cancelled.
pub(crate) async fn serve(listener: TcpListener, admin: Arc<Admin>, token: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            _ = token.cancelled() => return,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    debug!(error = %e, "admin accept");
                    continue;
                }
            },
        };
        let admin = admin.clone();
        let conn_token = token.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(admin.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn_token.cancelled() => {}
                r = conn => if let Err(e) = r { debug!(error = %e, "admin connection") },
            }
        });
    }
}

type Resp = Response<Full<Bytes>>;

fn reply(code: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = code;
    r
}

/// frp's error body: `{"Code":400,"Msg":"..."}` (its struct has no JSON tags).
fn error(code: StatusCode, msg: &str) -> Resp {
    #[derive(Serialize)]
    struct E<'a> {
        #[serde(rename = "Code")]
        code: u16,
        #[serde(rename = "Msg")]
        msg: &'a str,
    }
    let body = serde_json::to_vec(&E {
        code: code.as_u16(),
        msg,
    })
    .unwrap_or_default();
    let mut r = reply(code, body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn authorized(web: &WebServerConfig, req: &Request<Incoming>) -> bool {
    if web.user.is_empty() && web.password.is_empty() {
        return true;
    }
    let given = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b.trim()).ok()
        })
        .unwrap_or_default();
    let want = format!("{}:{}", web.user, &*web.password);
    subtle::ConstantTimeEq::ct_eq(given.as_slice(), want.as_bytes()).into()
}

async fn handle(a: Arc<Admin>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/healthz" {
        return Ok(reply(StatusCode::OK, ""));
    }
    if !authorized(&a.web, &req) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut r = reply(StatusCode::UNAUTHORIZED, "Unauthorized\n");
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Basic realm=\"Restricted\""),
        );
        return Ok(r);
    }
    let strict = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .any(|kv| kv == "strictConfig=true");
    Ok(match (req.method().clone(), path.as_str()) {
        (Method::GET, "/api/reload") => match reload(&a, strict) {
            Ok(()) => reply(StatusCode::OK, ""),
            Err(e) => error(StatusCode::BAD_REQUEST, &e),
        },
        (Method::POST, "/api/stop") => {
            info!("stop requested through the admin API");
            let t = a.shutdown.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                t.cancel();
            });
            reply(StatusCode::OK, "")
        }
        (Method::GET, "/api/status") => {
            let mut r = reply(
                StatusCode::OK,
                serde_json::to_vec(&status(&a)).unwrap_or_default(),
            );
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            r
        }
        (Method::GET, "/api/config") => match &a.config_path {
            Some(p) => match std::fs::read(p) {
                Ok(text) => reply(StatusCode::OK, text),
                Err(e) => error(
                    StatusCode::BAD_REQUEST,
                    &format!("read config file {}: {e}", p.display()),
                ),
            },
            None => error(
                StatusCode::BAD_REQUEST,
                "frpc was started without a config file",
            ),
        },
        (Method::PUT, "/api/config") => {
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return Ok(error(StatusCode::BAD_REQUEST, &e.to_string())),
            };
            match (&a.config_path, body.is_empty()) {
                (_, true) => error(StatusCode::BAD_REQUEST, "body can't be empty"),
                (None, _) => error(
                    StatusCode::BAD_REQUEST,
                    "frpc was started without a config file",
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
        _ => reply(StatusCode::NOT_FOUND, "404 page not found\n"),
    })
}

fn write_private(p: &std::path::Path, body: &[u8]) -> std::io::Result<()> {
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
    let path = a
        .config_path
        .as_ref()
        .ok_or("frpc was started without a config file")?;
    let opts = LoadOptions {
        strict,
        ..a.load.clone()
    };
    let loaded = common::config::load_client(path, &opts).map_err(|e| e.to_string())?;
    for w in &loaded.warnings {
        warn!("{w}");
    }
    info!(file = %path.display(), "reloading config");
    a.reloader.apply(loaded.config);
    Ok(())
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
}

/// `/api/status`: proxies grouped by type, sorted by name.
fn status(a: &Admin) -> BTreeMap<String, Vec<ProxyStatusResp>> {
    let cfg: Arc<ClientConfig> = a.reloader.current();
    let mut out: BTreeMap<String, Vec<ProxyStatusResp>> = BTreeMap::new();
    for s in a.status.all() {
        let p = cfg.proxies.iter().find(|p| p.name == s.name);
        let plugin = p
            .and_then(|p| p.plugin.as_ref())
            .map(|pl| pl.kind.clone())
            .unwrap_or_default();
        let local_addr = match p {
            Some(p) if plugin.is_empty() => format!("{}:{}", p.local_ip, p.local_port),
            _ => String::new(),
        };
        let remote_addr = if matches!(s.kind.as_str(), "tcp" | "udp") && !s.remote_addr.is_empty() {
            format!("{}{}", a.server_addr, s.remote_addr)
        } else {
            s.remote_addr.clone()
        };
        out.entry(s.kind.clone())
            .or_default()
            .push(ProxyStatusResp {
                name: s.name.clone(),
                kind: s.kind.clone(),
                status: s.phase.as_str().to_owned(),
                err: s.error.clone(),
                local_addr,
                plugin,
                remote_addr,
            });
    }
    for v in out.values_mut() {
        v.sort_by(|x, y| x.name.cmp(&y.name));
    }
    out
}

/// The client side of `frpc reload|status|stop`: one request to the admin API.
pub async fn request(
    web: &WebServerConfig,
    method: Method,
    path: &str,
) -> std::io::Result<(StatusCode, String)> {
    let io = |e: hyper::Error| std::io::Error::other(e.to_string());
    let addr = format!(
        "{}:{}",
        if web.addr.is_empty() || web.addr == "0.0.0.0" {
            "127.0.0.1"
        } else {
            &web.addr
        },
        web.port
    );
    let stream = tokio::net::TcpStream::connect(&addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(io)?;
    let conn_task = tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr.as_str());
    if !web.user.is_empty() || !web.password.is_empty() {
        let cred = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", web.user, &*web.password),
        );
        req = req.header(hyper::header::AUTHORIZATION, format!("Basic {cred}"));
    }
    let req = req
        .body(Full::new(Bytes::new()))
        .map_err(std::io::Error::other)?;
    let resp = sender.send_request(req).await.map_err(io)?;
    let code = resp.status();
    let body = resp.into_body().collect().await.map_err(io)?.to_bytes();
    conn_task.abort();
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}
