//! frps's dashboard API and Prometheus endpoint (frp `server/api_router.go`; frp-protocol.md
//! §18) on `webServer.addr:port`, behind its Basic auth except `/healthz`.
//!
//! Served: `/metrics` (with `enablePrometheus`), the legacy API (`/api/serverinfo`,
//! `/api/proxy/{type}[/{name}]`, `/api/proxies/{name}`, `/api/traffic/{name}`,
//! `/api/clients[/{key}]`, `DELETE /api/proxies?status=offline`; errors as frp's
//! `{"Code":..,"Msg":..}`) and API v2 (`/api/v2/...`, in the `{"code","msg","data"}` envelope,
//! paginated with `page`/`pageSize`), with frp's field names. Beyond frp: `/api/plugins` (the
//! server plugins and their last errors). The dashboard page itself (`/`, `/ui/...`) is in
//! `ui.rs`. Per-proxy traffic is kept per
//! day for 7 days.

use crate::clients::ClientRecord;
use crate::metrics::{short_time, today, ProxyConf, ProxyRecord};
use crate::service::Shared;
use common::http::{self, reply, BasicAuth, Resp};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Serves the dashboard until `token` is cancelled; `bind_port` is the port frps listens on
/// (the page shows it; `bindPort = 0` picks one).
pub(crate) async fn serve(
    listener: http::WebListener,
    shared: Arc<Shared>,
    bind_port: Option<u16>,
    token: CancellationToken,
) {
    let web = &shared.cfg.web_server;
    let auth = BasicAuth {
        user: web.user.clone(),
        password: web.password.0.clone(),
    };
    // Day boundaries for the per-day traffic figures.
    let roll = {
        let (shared, token) = (shared.clone(), token.clone());
        async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tick.tick() => shared.metrics.roll_days(),
                }
            }
        }
    };
    let page = Arc::new(crate::ui::Page::new(bind_port));
    let assets = Arc::new(common::ui::AssetsDir::new(&web.assets_dir));
    let handler = Arc::new(move |req: Request<Bytes>| {
        let (shared, page, assets) = (shared.clone(), page.clone(), assets.clone());
        async move {
            if let Some(a) = assets.as_ref() {
                if let Some(r) = a.route(req.method(), req.uri().path()).await {
                    return r;
                }
            }
            crate::ui::route(&shared, &page, &req).unwrap_or_else(|| handle(&shared, req))
        }
    });
    tokio::join!(http::serve(listener, auth, handler, token), roll);
}

/// frp `ProxyStatsInfo` / `GetProxyStatsResp`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProxyStats {
    name: String,
    conf: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    user: String,
    #[serde(rename = "clientID", skip_serializing_if = "String::is_empty")]
    client_id: String,
    today_traffic_in: u64,
    today_traffic_out: u64,
    cur_conns: i64,
    last_start_time: String,
    last_close_time: String,
    status: &'static str,
}

fn status(r: &ProxyRecord) -> &'static str {
    if r.online {
        "online"
    } else {
        "offline"
    }
}

/// frp's v1 `conf` of a tcp or udp proxy (`model.TCPOutConf`/`UDPOutConf`: the
/// `ProxyBaseConfig` frps built from NewProxy, plus `remotePort`), with Go's omitempty rules.
/// `loadBalancer.groupKey` is left out on purpose: it is a secret.
fn v1_conf(c: &ProxyConf) -> serde_json::Value {
    let mut transport = serde_json::json!({
        "bandwidthLimit": c.bandwidth_limit,
        "bandwidthLimitMode": c.bandwidth_limit_mode,
    });
    if c.use_encryption {
        transport["useEncryption"] = true.into();
    }
    if c.use_compression {
        transport["useCompression"] = true.into();
    }
    let mut v = serde_json::json!({
        "name": c.name,
        "type": c.kind,
        "transport": transport,
        "loadBalancer": {"group": c.group},
        // Not in NewProxy: frp shows its zero values (and Complete's localIP default).
        "healthCheck": {"type": "", "intervalSeconds": 0},
        "localIP": "127.0.0.1",
        "plugin": null,
    });
    put_maps_and_port(&mut v, c);
    v
}

/// The keys v1 `conf` and the v2 spec block share: `annotations` and `metadatas` (omitted when
/// empty), `remotePort`, and the type's own keys (domains, locations, ...).
fn put_maps_and_port(v: &mut serde_json::Value, c: &ProxyConf) {
    if !c.annotations.is_empty() {
        v["annotations"] = serde_json::json!(c.annotations);
    }
    if !c.metadatas.is_empty() {
        v["metadatas"] = serde_json::json!(c.metadatas);
    }
    if let Some(p) = c.remote_port {
        v["remotePort"] = p.into();
    }
    for (k, x) in &c.type_keys {
        v[k] = x.clone();
    }
}

/// frp's v2 `spec` (`model.V2ProxySpec`): the type, and a block under the type's name that is
/// empty while the proxy is offline (`buildV2ProxySpec` with no configurer).
fn v2_spec(kind: &str, conf: Option<&ProxyConf>) -> serde_json::Value {
    let block = match conf {
        None => serde_json::json!({}),
        Some(c) => {
            let mut b = serde_json::json!({
                "transport": {
                    "useEncryption": c.use_encryption,
                    "useCompression": c.use_compression,
                    "bandwidthLimit": c.bandwidth_limit,
                    "bandwidthLimitMode": c.bandwidth_limit_mode,
                },
                "loadBalancer": {"group": c.group},
            });
            put_maps_and_port(&mut b, c);
            b
        }
    };
    let mut spec = serde_json::json!({ "type": kind });
    spec[kind] = block;
    spec
}

fn stats(name: &str, r: &ProxyRecord) -> ProxyStats {
    let (tin, tout) = r.daily(today());
    ProxyStats {
        name: name.to_owned(),
        conf: r.online.then(|| v1_conf(&r.conf)),
        user: r.user.clone(),
        client_id: r.client_id.clone(),
        today_traffic_in: tin[0],
        today_traffic_out: tout[0],
        cur_conns: r.traffic.conns.load(Relaxed).max(0),
        last_start_time: short_time(r.last_start),
        last_close_time: short_time(r.last_close),
        status: status(r),
    }
}

/// frp `V2ProxyResp`.
#[derive(Serialize)]
struct V2Proxy {
    name: String,
    user: String,
    #[serde(rename = "clientID")]
    client_id: String,
    spec: serde_json::Value,
    status: V2ProxyStatus,
    /// The spec's type (for sorting).
    #[serde(skip)]
    kind: String,
    /// What `q` searches besides the names (frp `matchV2ProxyQuery`: the remote port of tcp
    /// and udp proxies).
    #[serde(skip)]
    words: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct V2ProxyStatus {
    phase: &'static str,
    today_traffic_in: u64,
    today_traffic_out: u64,
    cur_conns: i64,
    #[serde(skip_serializing_if = "common::msg::is_zero")]
    last_start_at: i64,
    #[serde(skip_serializing_if = "common::msg::is_zero")]
    last_close_at: i64,
}

fn v2_proxy(name: &str, r: &ProxyRecord) -> V2Proxy {
    let s = stats(name, r);
    let conf = r.online.then_some(&r.conf);
    V2Proxy {
        name: name.to_owned(),
        kind: r.kind.clone(),
        user: r.user.clone(),
        client_id: r.client_id.clone(),
        spec: v2_spec(&r.kind, conf),
        words: conf
            .and_then(|c| c.remote_port)
            .map(|p| p.to_string())
            .into_iter()
            .collect(),
        status: V2ProxyStatus {
            phase: s.status,
            today_traffic_in: s.today_traffic_in,
            today_traffic_out: s.today_traffic_out,
            cur_conns: s.cur_conns,
            last_start_at: r.last_start,
            last_close_at: r.last_close,
        },
    }
}

fn allow_ports_str(shared: &Shared) -> String {
    let parts: Vec<String> = shared
        .cfg
        .allow_ports
        .iter()
        .map(|r| {
            if r.single != 0 {
                r.single.to_string()
            } else {
                format!("{}-{}", r.start, r.end)
            }
        })
        .collect();
    parts.join(",")
}

/// A handler's failure: status and message, rendered in the API version's error shape.
struct ApiError(StatusCode, String);

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, msg.into())
}

type ApiResult = Result<serde_json::Value, ApiError>;

fn to_value<T: Serialize>(v: T) -> ApiResult {
    serde_json::to_value(v).map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// The query, looked up by exact key (first value).
struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn str(&self, key: &str) -> &str {
        self.get(key).unwrap_or("")
    }
}

fn handle(shared: &Shared, req: Request<Bytes>) -> Resp {
    let path = req.uri().path().to_owned();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let q = Query(http::query(&req));
    let method = req.method().clone();
    // POST and DELETE change state (prune, clear offline): not for another site's page that
    // rides on the browser's cached credentials.
    if method != Method::GET && method != Method::HEAD {
        if let Some(refused) = http::refuse_cross_site(&req) {
            return refused;
        }
    }
    if let ["api", "v2", rest @ ..] = parts.as_slice() {
        return match v2(shared, &method, rest, &q) {
            Some(Ok(data)) => http::json(
                StatusCode::OK,
                &serde_json::json!({"code": 200, "msg": "success", "data": data}),
            ),
            Some(Err(ApiError(code, msg))) => {
                tracing::warn!(%path, error = %msg, "dashboard api error");
                http::json(
                    code,
                    &serde_json::json!({"code": code.as_u16(), "msg": msg, "data": null}),
                )
            }
            None => reply(StatusCode::NOT_FOUND, "404 page not found\n"),
        };
    }
    if method == Method::GET && parts == ["metrics"] && shared.cfg.enable_prometheus {
        shared
            .metrics
            .pooled_work_conns
            .set(shared.registry.pooled_work_conns() as i64);
        return http::metrics(&shared.metrics.registry);
    }
    match v1(shared, &method, &parts, &q) {
        Some(Ok(v)) => http::json(StatusCode::OK, &v),
        Some(Err(ApiError(code, msg))) => {
            tracing::warn!(%path, error = %msg, "dashboard api error");
            http::error(code, &msg)
        }
        None => reply(StatusCode::NOT_FOUND, "404 page not found\n"),
    }
}

fn server_info(shared: &Shared) -> (serde_json::Value, serde_json::Value) {
    let m = &shared.metrics;
    let (tin, tout, conns, clients) = m.totals();
    let types = m.type_counts();
    let c = &shared.cfg;
    let config = serde_json::json!({
        "bindPort": c.bind_port,
        "vhostHTTPPort": c.vhost_http_port,
        "vhostHTTPSPort": c.vhost_https_port,
        "tcpmuxHTTPConnectPort": c.tcpmux_http_connect_port,
        "kcpBindPort": c.kcp_bind_port,
        "quicBindPort": c.quic_bind_port,
        "subdomainHost": c.sub_domain_host,
        "maxPoolCount": c.transport.max_pool_count,
        "maxPortsPerClient": c.max_ports_per_client,
        "heartbeatTimeout": c.transport.heartbeat_timeout,
        "allowPortsStr": allow_ports_str(shared),
        "tlsForce": c.transport.tls.force,
    });
    let status = serde_json::json!({
        "totalTrafficIn": tin,
        "totalTrafficOut": tout,
        "curConns": conns,
        "clientCounts": clients,
        "proxyTypeCount": types,
    });
    (config, status)
}

/// The legacy API.
fn v1(shared: &Shared, method: &Method, parts: &[&str], q: &Query) -> Option<ApiResult> {
    let m = &shared.metrics;
    let get = method == Method::GET;
    Some(match parts {
        // frp-rs only: the server plugins, in call order, with each one's last failure.
        ["api", "plugins"] if get => Ok(serde_json::json!({"plugins": shared.plugins.status()})),
        ["api", "serverinfo"] if get => {
            let (config, status) = server_info(shared);
            let mut info = serde_json::Map::new();
            info.insert("version".into(), common::FRP_VERSION.into());
            for (k, v) in config.as_object()?.iter().chain(status.as_object()?) {
                info.insert(k.clone(), v.clone());
            }
            // omitempty, as frp's ServerInfoResp.
            if info.get("allowPortsStr").is_some_and(|v| v == "") {
                info.remove("allowPortsStr");
            }
            if info.get("tlsForce").is_some_and(|v| v == false) {
                info.remove("tlsForce");
            }
            Ok(info.into())
        }
        ["api", "proxy", kind] if get => {
            let proxies: Vec<ProxyStats> = m
                .proxies()
                .iter()
                .filter(|(_, r)| r.kind == *kind)
                .map(|(n, r)| stats(n, r))
                .collect();
            to_value(serde_json::json!({ "proxies": proxies }))
        }
        ["api", "proxy", kind, name] if get => match m.proxy(name).filter(|r| r.kind == *kind) {
            Some(r) => to_value(stats(name, &r)),
            None => Err(not_found("no proxy info found")),
        },
        ["api", "proxies", name] if get => match m.proxy(name) {
            Some(r) => to_value(stats(name, &r)),
            None => Err(not_found("no proxy info found")),
        },
        ["api", "traffic", name] if get => match m.proxy(name) {
            Some(r) => {
                let (tin, tout) = r.daily(today());
                to_value(serde_json::json!({"name": name, "trafficIn": tin, "trafficOut": tout}))
            }
            None => Err(not_found("no proxy info found")),
        },
        ["api", "clients"] if get => {
            let status = q.str("status").to_ascii_lowercase();
            let items: Vec<ClientRecord> = m
                .clients
                .list()
                .into_iter()
                .filter(|c| {
                    (q.str("user").is_empty() || c.user == q.str("user"))
                        && (q.str("clientId").is_empty() || c.client_id == q.str("clientId"))
                        && (q.str("runId").is_empty() || c.run_id == q.str("runId"))
                        && match_status(c.online, &status)
                })
                .collect();
            to_value(items)
        }
        ["api", "clients", key] if get => client(shared, key),
        ["api", "proxies"] if method == Method::DELETE => {
            if q.get("status") != Some("offline") {
                return Some(Err(bad("status only support offline")));
            }
            let (cleared, total) = m.clear_offline();
            tracing::info!("cleared [{cleared}] offline proxies, total [{total}] proxies");
            to_value(serde_json::json!({"Code": 200, "Msg": "success"}))
        }
        _ => return None,
    })
}

fn client(shared: &Shared, key: &str) -> ApiResult {
    match shared.metrics.clients.get(key) {
        Some(c) => to_value(c),
        None => Err(not_found(format!("client {key} not found"))),
    }
}

/// frp `V2ClientDetailResp`: the client plus its proxies' state (`buildV2ClientStatus`).
fn v2_client(shared: &Shared, key: &str) -> ApiResult {
    let Some(c) = shared.metrics.clients.get(key) else {
        return Err(not_found(format!("client {key} not found")));
    };
    let (mut conns, mut count) = (0i64, 0usize);
    for (_, r) in shared.metrics.proxies() {
        if r.user == c.user
            && r.client_id == c.client_id
            && V2_PROXY_TYPES.contains(&r.kind.as_str())
        {
            conns += r.traffic.conns.load(Relaxed).max(0);
            count += 1;
        }
    }
    let phase = if c.online { "online" } else { "offline" };
    let mut v = to_value(c)?;
    v["status"] = serde_json::json!({"phase": phase, "curConns": conns, "proxyCount": count});
    Ok(v)
}

fn match_status(online: bool, filter: &str) -> bool {
    match filter {
        "online" => online,
        "offline" => !online,
        _ => true,
    }
}

const V2_PROXY_TYPES: [&str; 8] = [
    "tcp", "udp", "http", "https", "tcpmux", "stcp", "xtcp", "sudp",
];

fn positive(q: &Query, key: &str, default: usize) -> Result<usize, ApiError> {
    match q.get(key) {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| bad(format!("{key} must be a positive integer"))),
    }
}

/// frp's v2 page: `{total, page, pageSize, items}`.
fn page<T: Serialize>(items: Vec<T>, q: &Query) -> ApiResult {
    let page = positive(q, "page", 1)?;
    let size = positive(q, "pageSize", 50)?;
    if size > 200 {
        return Err(bad("pageSize must be between 1 and 200"));
    }
    // Go's int is 64 bits: frp refuses a page whose offset would overflow it.
    if page > i64::MAX as usize / size {
        return Err(bad("page is too large"));
    }
    let total = items.len();
    let start = (page - 1).saturating_mul(size);
    let items: Vec<T> = items.into_iter().skip(start).take(size).collect();
    to_value(serde_json::json!({
        "total": total, "page": page, "pageSize": size,
        "items": serde_json::to_value(items).unwrap_or_default(),
    }))
}

fn v2_status(q: &Query) -> Result<String, ApiError> {
    let s = q.str("status").to_ascii_lowercase();
    match s.as_str() {
        "" | "all" | "online" | "offline" => Ok(s),
        _ => Err(bad("status must be one of all, online, offline")),
    }
}

fn contains(q: &str, values: &[&str]) -> bool {
    q.is_empty() || values.iter().any(|v| v.to_lowercase().contains(q))
}

/// API v2 (`/api/v2/...`); `parts` excludes the prefix.
fn v2(shared: &Shared, method: &Method, parts: &[&str], q: &Query) -> Option<ApiResult> {
    let m = &shared.metrics;
    let get = method == Method::GET;
    let search = q.str("q").to_lowercase();
    Some(match parts {
        ["system", "info"] if get => {
            let (config, status) = server_info(shared);
            to_value(serde_json::json!({
                "version": common::FRP_VERSION, "config": config, "status": status,
            }))
        }
        ["system", "prune"] if method == Method::POST => {
            let kind = q.str("type").to_ascii_lowercase();
            let (cleared, total) = match kind.as_str() {
                "" => return Some(Err(bad("type is required"))),
                "offline_proxies" => m.clear_offline(),
                // Ours: frp has no way to forget offline clients.
                "offline_clients" => m.clients.clear_offline(),
                _ => {
                    return Some(Err(bad(
                        "type must be one of offline_proxies, offline_clients",
                    )))
                }
            };
            to_value(serde_json::json!({"type": kind, "cleared": cleared, "total": total}))
        }
        ["users"] if get => {
            let mut users: BTreeMap<String, (usize, usize)> = BTreeMap::new();
            for c in m.clients.list() {
                users.entry(c.user).or_default().0 += 1;
            }
            for (_, r) in m.proxies() {
                users.entry(r.user).or_default().1 += 1;
            }
            let items: Vec<serde_json::Value> = users
                .into_iter()
                .filter(|(u, _)| contains(&search, &[u]))
                .map(|(user, (c, p))| {
                    serde_json::json!({"user": user, "clientCount": c, "proxyCount": p})
                })
                .collect();
            page(items, q)
        }
        ["clients"] if get => {
            let status = match v2_status(q) {
                Ok(s) => s,
                Err(e) => return Some(Err(e)),
            };
            let user = q.get("user");
            let items: Vec<ClientRecord> = m
                .clients
                .list()
                .into_iter()
                .filter(|c| {
                    user.is_none_or(|u| c.user == u)
                        && (q.str("clientID").is_empty() || c.client_id == q.str("clientID"))
                        && (q.str("runID").is_empty() || c.run_id == q.str("runID"))
                        && match_status(c.online, &status)
                        && contains(
                            &search,
                            &[
                                &c.key,
                                &c.user,
                                &c.client_id,
                                &c.run_id,
                                &c.version,
                                &c.wire_protocol,
                                &c.hostname,
                                &c.client_ip,
                            ],
                        )
                })
                .collect();
            page(items, q)
        }
        ["clients", key] if get => v2_client(shared, key),
        ["proxies"] if get => {
            let status = match v2_status(q) {
                Ok(s) => s,
                Err(e) => return Some(Err(e)),
            };
            let kind = q.str("type").to_ascii_lowercase();
            if !kind.is_empty() && !V2_PROXY_TYPES.contains(&kind.as_str()) {
                return Some(Err(bad(
                    "type must be one of tcp, udp, http, https, tcpmux, stcp, xtcp, sudp",
                )));
            }
            let user = q.get("user");
            let mut items: Vec<V2Proxy> = m
                .proxies()
                .iter()
                .filter(|(_, r)| {
                    (kind.is_empty() || r.kind == kind) && V2_PROXY_TYPES.contains(&r.kind.as_str())
                })
                .map(|(n, r)| v2_proxy(n, r))
                .filter(|p| {
                    let mut words: Vec<&str> =
                        vec![&p.name, &p.kind, &p.user, &p.client_id, p.status.phase];
                    words.extend(p.words.iter().map(String::as_str));
                    user.is_none_or(|u| p.user == u)
                        && (q.str("clientID").is_empty() || p.client_id == q.str("clientID"))
                        && match_status(p.status.phase == "online", &status)
                        && contains(&search, &words)
                })
                .collect();
            items.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
            page(items, q)
        }
        ["proxies", name] if get => match m.proxy(name) {
            Some(r) => to_value(v2_proxy(name, &r)),
            None => Err(not_found("no proxy info found")),
        },
        ["proxies", name, "traffic"] if get => match m.proxy(name) {
            Some(r) => {
                let (tin, tout) = r.daily(today());
                // Oldest first, today last (frp `buildV2ProxyTrafficResp`).
                let history: Vec<serde_json::Value> = (0..tin.len())
                    .rev()
                    .map(|age| {
                        let (y, mo, d) = crate::metrics::civil(today() - age as i64);
                        serde_json::json!({
                            "date": format!("{y:04}-{mo:02}-{d:02}"),
                            "trafficIn": tin[age], "trafficOut": tout[age],
                        })
                    })
                    .collect();
                to_value(serde_json::json!({
                    "name": name, "unit": "bytes", "granularity": "day", "history": history,
                }))
            }
            None => Err(not_found("no proxy info found")),
        },
        _ => return None,
    })
}
