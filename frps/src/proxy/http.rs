//! http proxy: routes on the vhost HTTP server (frp `server/proxy/http.go`). This file only
//! turns NewProxy into routes and opens work connections for them; serving is `crate::vhost`.

use super::{start_work, ProxyCtx, ProxyError, Traffic};
use crate::metrics::ConnGuard;
use crate::service::Shared;
use crate::vhost::{Backend, HttpRoute, Work};
use common::io::{wrap_work_conn, Count, Counted};
use common::msg::NewProxy;
use futures::future::BoxFuture;
use hyper::header::{HeaderName, HeaderValue};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tracing::info;

pub(super) async fn start(
    np: &NewProxy,
    ctx: ProxyCtx,
    traffic: Arc<Traffic>,
) -> Result<(JoinHandle<()>, String), ProxyError> {
    let shared = ctx.shared.clone();
    let token = ctx.token.clone();
    let vhost = shared.vhost_http.clone();
    let (vhost, domains) = check_vhost(np, &shared, vhost, &unset("http"))?;
    let route = Arc::new(HttpRoute {
        auth: (!np.http_user.is_empty() || !np.http_pwd.is_empty())
            .then(|| (np.http_user.clone(), np.http_pwd.clone())),
        host_rewrite: (!np.host_header_rewrite.is_empty())
            .then(|| header_value("hostHeaderRewrite", &np.host_header_rewrite))
            .transpose()?,
        request_headers: headers("requestHeaders.set", &np.headers)?,
        response_headers: headers("responseHeaders.set", &np.response_headers)?,
        backend: Arc::new(WorkBackend {
            ctx: Arc::new(ctx),
            traffic,
        }),
    });
    let locations = if np.locations.is_empty() {
        vec![String::new()]
    } else {
        np.locations.clone()
    };
    let port = shared.cfg.vhost_http_port;
    // Route guards or group memberships; an error drops those taken so far, so nothing stays
    // registered.
    let mut held: Vec<Box<dyn Send>> = Vec::new();
    let mut addrs = Vec::new();
    for d in &domains {
        for l in &locations {
            let user = &np.route_by_http_user;
            if np.group.is_empty() {
                held.push(Box::new(vhost.register(d, l, user, route.clone())?));
            } else {
                let key = (d.clone(), l.clone(), user.clone());
                held.push(Box::new(crate::group::http::join(
                    &shared,
                    &vhost,
                    &np.group,
                    &np.group_key,
                    key,
                    &np.proxy_name,
                    &route,
                )?));
            }
            addrs.push(canonical_addr(d, port));
            info!(proxy = %np.proxy_name, domain = %d, location = %l, route_by_http_user = %np.route_by_http_user, "http proxy route registered");
        }
    }
    Ok((hold_routes(&shared, token, held), addrs.join(",")))
}

/// frp's error for an http or https proxy when frps has no port for it.
pub(super) fn unset(kind: &str) -> String {
    format!("type [{kind}] not supported when vhost {kind} port is not set")
}

/// What vhost proxies check first (frp `ValidateProxyConfigurerForServer`): the vhost port is
/// set (`vhost`, else the error `unset`) and the domains; returns the vhost and the domains.
pub(super) fn check_vhost<V>(
    np: &NewProxy,
    shared: &Shared,
    vhost: Option<V>,
    unset: &str,
) -> Result<(V, Vec<String>), ProxyError> {
    let Some(vhost) = vhost else {
        return Err(ProxyError::Invalid(unset.to_owned()));
    };
    Ok((vhost, domains(np, shared)?))
}

/// The proxy's task: keeps its routes registered until the proxy closes.
pub(super) fn hold_routes<G: Send + 'static>(
    shared: &Shared,
    token: tokio_util::sync::CancellationToken,
    guards: Vec<G>,
) -> JoinHandle<()> {
    shared.tracker.spawn(async move {
        token.cancelled().await;
        drop(guards);
    })
}

/// `customDomains` plus `subdomain.subDomainHost`, lowercased, checked as frp
/// (`validateDomainConfigForServer`).
fn domains(np: &NewProxy, shared: &Shared) -> Result<Vec<String>, ProxyError> {
    let host = shared.cfg.sub_domain_host.to_lowercase();
    let mut out = Vec::new();
    for d in np.custom_domains.iter().filter(|d| !d.is_empty()) {
        let d = d.to_lowercase();
        if !host.is_empty() && host.split('.').count() < d.split('.').count() && d.contains(&host) {
            return Err(ProxyError::Invalid(format!(
                "custom domain [{d}] should not belong to subdomain host [{}]",
                shared.cfg.sub_domain_host
            )));
        }
        out.push(d);
    }
    if !np.subdomain.is_empty() {
        if host.is_empty() {
            return Err(ProxyError::Invalid(
                "subdomain is not supported because this feature is not enabled in server".into(),
            ));
        }
        if np.subdomain.contains('.') || np.subdomain.contains('*') {
            return Err(ProxyError::Invalid(
                "'.' and '*' are not supported in subdomain".into(),
            ));
        }
        out.push(format!("{}.{host}", np.subdomain.to_lowercase()));
    }
    if out.is_empty() {
        return Err(ProxyError::Invalid(
            "custom domains and subdomain should set at least one of them".into(),
        ));
    }
    Ok(out)
}

/// frp `util.CanonicalAddr`: `host` for ports 80 and 443, else `host:port`.
pub(super) fn canonical_addr(host: &str, port: u16) -> String {
    if port == 80 || port == 443 {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    }
}

fn header_value(key: &str, v: &str) -> Result<HeaderValue, ProxyError> {
    HeaderValue::from_str(v)
        .map_err(|_| ProxyError::Invalid(format!("{key}: invalid header value {v:?}")))
}

fn headers(
    key: &str,
    m: &BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, ProxyError> {
    m.iter()
        .map(|(k, v)| {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| ProxyError::Invalid(format!("{key}: invalid header name {k:?}")))?;
            Ok((name, header_value(key, v)?))
        })
        .collect()
}

/// Opens work connections of one http proxy through the shared path.
#[derive(Debug)]
struct WorkBackend {
    ctx: Arc<ProxyCtx>,
    traffic: Arc<Traffic>,
}

impl Backend for WorkBackend {
    fn connect(&self, peer: SocketAddr) -> BoxFuture<'_, Result<Work, String>> {
        Box::pin(async move {
            // frp's http proxy sends only the user's address (no dst) in StartWorkConn.
            let work = start_work(&self.ctx, peer, None)
                .await
                .map_err(|e| e.to_string())?;
            let work = wrap_work_conn(work, &self.ctx.wrap);
            let count = WorkCount {
                _open: self.traffic.conn_opened(),
                traffic: self.traffic.clone(),
            };
            Ok(Work {
                stream: Box::new(Counted::new(work, count)),
                token: self.ctx.token.clone(),
            })
        })
    }

    fn name(&self) -> &str {
        &self.ctx.name
    }
}

/// Counts on the work side of an upstream connection: what we write to it came from the user
/// (traffic in), what we read from it goes to the user (traffic out). Holds the connection open
/// in the metrics while the upstream connection lives.
struct WorkCount {
    traffic: Arc<Traffic>,
    _open: ConnGuard,
}

impl Count for WorkCount {
    fn read(&self, n: u64) {
        self.traffic.written(n);
    }
    fn written(&self, n: u64) {
        self.traffic.read(n);
    }
}
