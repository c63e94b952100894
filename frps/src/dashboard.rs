//! frps's dashboard API and Prometheus endpoint (frp `server/api_router.go`; frp-protocol.md
//! §18) on `webServer.addr:port`, behind its Basic auth except `/healthz`.
//!
//! Served: `/metrics` (with `enablePrometheus`), `/api/serverinfo`, `/api/proxy/{type}`,
//! `/api/proxy/{type}/{name}`, `/api/traffic/{name}`, `DELETE /api/proxies?status=offline`,
//! with frp's field names. Traffic is counted since the proxy first registered (frp keeps
//! per-day figures for 7 days); `/api/traffic` reports it as today's value.

use crate::service::Shared;
use common::http::{self, reply, BasicAuth, Resp};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves the dashboard until `token` is cancelled.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, token: CancellationToken) {
    let web = &shared.cfg.web_server;
    let auth = BasicAuth {
        user: web.user.clone(),
        password: web.password.0.clone(),
    };
    let handler = Arc::new(move |req: Request<Incoming>| {
        let shared = shared.clone();
        async move { handle(&shared, req) }
    });
    http::serve(listener, auth, handler, token).await;
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerInfo {
    version: &'static str,
    bind_port: u16,
    #[serde(rename = "vhostHTTPPort")]
    vhost_http_port: u16,
    #[serde(rename = "vhostHTTPSPort")]
    vhost_https_port: u16,
    #[serde(rename = "tcpmuxHTTPConnectPort")]
    tcpmux_http_connect_port: u16,
    kcp_bind_port: u16,
    quic_bind_port: u16,
    subdomain_host: String,
    max_pool_count: i64,
    max_ports_per_client: i64,
    heartbeat_timeout: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    allow_ports_str: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tls_force: bool,
    total_traffic_in: u64,
    total_traffic_out: u64,
    cur_conns: i64,
    client_counts: i64,
    proxy_type_count: BTreeMap<String, i64>,
}

/// frp `ProxyStatsInfo` / `GetProxyStatsResp`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProxyStats {
    name: String,
    conf: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    client_version: String,
    today_traffic_in: u64,
    today_traffic_out: u64,
    cur_conns: i64,
    last_start_time: String,
    last_close_time: String,
    status: &'static str,
}

fn stats(name: &str, r: &crate::metrics::ProxyRecord) -> ProxyStats {
    ProxyStats {
        name: name.to_owned(),
        conf: r.online.then(|| r.conf.clone()),
        client_version: if r.online {
            r.client_version.clone()
        } else {
            String::new()
        },
        today_traffic_in: r.traffic.bytes_in.load(Relaxed),
        today_traffic_out: r.traffic.bytes_out.load(Relaxed),
        cur_conns: r.traffic.conns.load(Relaxed).max(0),
        last_start_time: r.last_start.clone(),
        last_close_time: r.last_close.clone(),
        status: if r.online { "online" } else { "offline" },
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

fn handle(shared: &Shared, req: Request<Incoming>) -> Resp {
    let m = &shared.metrics;
    let path = req.uri().path().to_owned();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method(), parts.as_slice()) {
        (&Method::GET, ["metrics"]) if shared.cfg.enable_prometheus => {
            let mut r = reply(StatusCode::OK, m.render());
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        (&Method::GET, ["api", "serverinfo"]) => {
            let (tin, tout, conns, clients) = m.totals();
            let mut types = BTreeMap::new();
            for (_, r) in m.proxies().iter().filter(|(_, r)| r.online) {
                *types.entry(r.kind.clone()).or_insert(0) += 1;
            }
            let c = &shared.cfg;
            http::json(
                StatusCode::OK,
                &ServerInfo {
                    version: common::FRP_VERSION,
                    bind_port: c.bind_port,
                    vhost_http_port: c.vhost_http_port,
                    vhost_https_port: c.vhost_https_port,
                    tcpmux_http_connect_port: c.tcpmux_http_connect_port,
                    kcp_bind_port: c.kcp_bind_port,
                    quic_bind_port: c.quic_bind_port,
                    subdomain_host: c.sub_domain_host.clone(),
                    max_pool_count: c.transport.max_pool_count,
                    max_ports_per_client: c.max_ports_per_client,
                    heartbeat_timeout: c.transport.heartbeat_timeout,
                    allow_ports_str: allow_ports_str(shared),
                    tls_force: c.transport.tls.force,
                    total_traffic_in: tin,
                    total_traffic_out: tout,
                    cur_conns: conns,
                    client_counts: clients,
                    proxy_type_count: types,
                },
            )
        }
        (&Method::GET, ["api", "proxy", kind]) => {
            #[derive(Serialize)]
            struct List {
                proxies: Vec<ProxyStats>,
            }
            let proxies = m
                .proxies()
                .iter()
                .filter(|(_, r)| r.kind == *kind)
                .map(|(n, r)| stats(n, r))
                .collect();
            http::json(StatusCode::OK, &List { proxies })
        }
        (&Method::GET, ["api", "proxy", kind, name]) => {
            match m.proxy(name).filter(|r| r.kind == *kind) {
                Some(r) => http::json(StatusCode::OK, &stats(name, &r)),
                None => reply(StatusCode::NOT_FOUND, "no proxy info found"),
            }
        }
        (&Method::GET, ["api", "traffic", name]) => match m.proxy(name) {
            Some(r) => {
                #[derive(Serialize)]
                #[serde(rename_all = "camelCase")]
                struct Traffic {
                    name: String,
                    traffic_in: Vec<u64>,
                    traffic_out: Vec<u64>,
                }
                let mut tin = vec![0u64; 7];
                let mut tout = vec![0u64; 7];
                tin[0] = r.traffic.bytes_in.load(Relaxed);
                tout[0] = r.traffic.bytes_out.load(Relaxed);
                http::json(
                    StatusCode::OK,
                    &Traffic {
                        name: (*name).to_owned(),
                        traffic_in: tin,
                        traffic_out: tout,
                    },
                )
            }
            None => reply(StatusCode::NOT_FOUND, "no proxy info found"),
        },
        (&Method::DELETE, ["api", "proxies"]) => {
            if req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .any(|kv| kv == "status=offline")
            {
                let (cleared, total) = m.clear_offline();
                tracing::info!(cleared, total, "cleared offline proxies");
                reply(StatusCode::OK, "")
            } else {
                reply(StatusCode::BAD_REQUEST, "status only support offline")
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "404 page not found\n"),
    }
}
