//! frps's metrics (frp `pkg/metrics/prometheus/server.go`, `pkg/metrics/mem`): a Prometheus
//! registry owned by the server (not global) with frp's six series under frp's names and labels,
//! `frp_rs_` extras that frp dashboards ignore, and the per-proxy statistics the dashboard API
//! shows (kept for offline proxies until `DELETE /api/proxies?status=offline`).
//!
//! Bytes are counted by the `Counted` stream layer on each user connection, through [`Traffic`].

use common::io::Count;
use common::msg::NewProxy;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Live counters of one proxy, shared by its connections.
#[derive(Debug)]
pub(crate) struct Traffic {
    /// user -> frps -> frpc, as frp's `traffic_in`.
    pub(crate) bytes_in: AtomicU64,
    /// frpc -> frps -> user.
    pub(crate) bytes_out: AtomicU64,
    pub(crate) conns: AtomicI64,
    /// The proxy's Prometheus series, attached once it has started (a refused proxy has none).
    prom: OnceLock<PromTraffic>,
    totals: Arc<Totals>,
}

/// A proxy's series: `traffic_in`, `traffic_out`, `connection_counts`.
#[derive(Debug)]
struct PromTraffic {
    bytes_in: IntCounter,
    bytes_out: IntCounter,
    conns: IntGauge,
}

#[derive(Debug, Default)]
struct Totals {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    conns: AtomicI64,
}

impl Count for Traffic {
    fn read(&self, n: u64) {
        self.bytes_in.fetch_add(n, Relaxed);
        self.totals.bytes_in.fetch_add(n, Relaxed);
        if let Some(p) = self.prom.get() {
            p.bytes_in.inc_by(n);
        }
    }
    fn written(&self, n: u64) {
        self.bytes_out.fetch_add(n, Relaxed);
        self.totals.bytes_out.fetch_add(n, Relaxed);
        if let Some(p) = self.prom.get() {
            p.bytes_out.inc_by(n);
        }
    }
}

impl Traffic {
    /// A user connection opened (`Drop` of the guard closes it).
    pub(crate) fn conn_opened(self: &Arc<Self>) -> ConnGuard {
        self.conns.fetch_add(1, Relaxed);
        self.totals.conns.fetch_add(1, Relaxed);
        if let Some(p) = self.prom.get() {
            p.conns.inc();
        }
        ConnGuard(self.clone())
    }
}

/// Counts one open user connection until dropped.
#[derive(Debug)]
pub(crate) struct ConnGuard(Arc<Traffic>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.conns.fetch_sub(1, Relaxed);
        self.0.totals.conns.fetch_sub(1, Relaxed);
        if let Some(p) = self.0.prom.get() {
            p.conns.dec();
        }
    }
}

/// A proxy's settings as frps knows them from its NewProxy (frp builds a `ProxyConfigurer` from
/// the message, `pkg/config/v1/proxy.go` `UnmarshalFromMsg` + `Complete`); the dashboard
/// renders it in frp's v1 `conf` and v2 `spec` shapes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ProxyConf {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) annotations: BTreeMap<String, String>,
    pub(crate) metadatas: BTreeMap<String, String>,
    pub(crate) use_encryption: bool,
    pub(crate) use_compression: bool,
    /// As sent (`1MB`), trimmed; "" for none.
    pub(crate) bandwidth_limit: String,
    /// `client` unless the message says otherwise (frp's `Complete`).
    pub(crate) bandwidth_limit_mode: String,
    pub(crate) group: String,
    /// tcp and udp: the port listened on (the real one once bound).
    pub(crate) remote_port: Option<i64>,
    /// The keys of the type's own config (http, https, tcpmux: frp's `DomainConfig`,
    /// `HTTPProxyConfig`, `TCPMuxProxyConfig`), with Go's omitempty rules. Passwords are left
    /// out (frp shows them to dashboard users; we put no secret in API answers).
    pub(crate) type_keys: serde_json::Map<String, serde_json::Value>,
}

impl ProxyConf {
    fn from_msg(np: &NewProxy) -> Self {
        ProxyConf {
            name: np.proxy_name.clone(),
            kind: np.proxy_type.clone(),
            annotations: np.annotations.clone(),
            metadatas: np.metas.clone(),
            use_encryption: np.use_encryption,
            use_compression: np.use_compression,
            bandwidth_limit: np.bandwidth_limit.trim().to_owned(),
            bandwidth_limit_mode: if np.bandwidth_limit_mode.is_empty() {
                "client".into()
            } else {
                np.bandwidth_limit_mode.clone()
            },
            group: np.group.clone(),
            remote_port: matches!(np.proxy_type.as_str(), "tcp" | "udp").then_some(np.remote_port),
            type_keys: type_keys(np),
        }
    }
}

fn type_keys(np: &NewProxy) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value, empty: bool| {
        if !empty {
            m.insert(k.to_owned(), v);
        }
    };
    let kind = np.proxy_type.as_str();
    if matches!(kind, "http" | "https" | "tcpmux") {
        put(
            "customDomains",
            json!(np.custom_domains),
            np.custom_domains.is_empty(),
        );
        put("subdomain", json!(np.subdomain), np.subdomain.is_empty());
    }
    if matches!(kind, "http" | "tcpmux") {
        put("httpUser", json!(np.http_user), np.http_user.is_empty());
        put(
            "routeByHTTPUser",
            json!(np.route_by_http_user),
            np.route_by_http_user.is_empty(),
        );
    }
    if kind == "http" {
        put("locations", json!(np.locations), np.locations.is_empty());
        put(
            "hostHeaderRewrite",
            json!(np.host_header_rewrite),
            np.host_header_rewrite.is_empty(),
        );
        let set = |h: &BTreeMap<String, String>| {
            if h.is_empty() {
                json!({})
            } else {
                json!({ "set": h })
            }
        };
        put("requestHeaders", set(&np.headers), false);
        put("responseHeaders", set(&np.response_headers), false);
    }
    if matches!(kind, "stcp" | "sudp" | "xtcp") {
        // frp also shows secretKey; no secret goes into API answers here.
        put(
            "allowUsers",
            json!(np.allow_users),
            np.allow_users.is_empty(),
        );
    }
    if kind == "tcpmux" {
        put(
            "multiplexer",
            json!(np.multiplexer),
            np.multiplexer.is_empty(),
        );
    }
    m
}

/// What the dashboard shows of a proxy, online or not.
#[derive(Debug, Clone)]
pub(crate) struct ProxyRecord {
    pub(crate) kind: String,
    pub(crate) conf: ProxyConf,
    pub(crate) user: String,
    pub(crate) client_id: String,
    pub(crate) online: bool,
    /// Unix seconds; 0 = never.
    pub(crate) last_start: i64,
    pub(crate) last_close: i64,
    pub(crate) traffic: Arc<Traffic>,
    /// Counter values at the start of each recent day: (day number, in, out), oldest first.
    day_marks: std::collections::VecDeque<(i64, u64, u64)>,
}

/// frp keeps 7 days of per-proxy traffic.
pub(crate) const RESERVE_DAYS: usize = 7;

impl ProxyRecord {
    fn mark_day(&mut self, day: i64) {
        if self.day_marks.back().is_some_and(|m| m.0 >= day) {
            return;
        }
        self.day_marks.push_back((
            day,
            self.traffic.bytes_in.load(Relaxed),
            self.traffic.bytes_out.load(Relaxed),
        ));
        while self.day_marks.len() > RESERVE_DAYS {
            self.day_marks.pop_front();
        }
    }

    /// Bytes (in, out) per day for the last 7 days, today first (frp's `/api/traffic` order).
    pub(crate) fn daily(&self, today: i64) -> (Vec<u64>, Vec<u64>) {
        let (mut tin, mut tout) = (vec![0; RESERVE_DAYS], vec![0; RESERVE_DAYS]);
        let mut end = (
            self.traffic.bytes_in.load(Relaxed),
            self.traffic.bytes_out.load(Relaxed),
        );
        for &(day, i, o) in self.day_marks.iter().rev() {
            let age = today - day;
            if (0..RESERVE_DAYS as i64).contains(&age) {
                tin[age as usize] = end.0.saturating_sub(i);
                tout[age as usize] = end.1.saturating_sub(o);
            }
            end = (i, o);
        }
        (tin, tout)
    }
}

/// Who a proxy belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner<'a> {
    pub(crate) user: &'a str,
    pub(crate) client_id: &'a str,
}

/// The server's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) registry: Registry,
    client_counts: IntGauge,
    proxy_counts: IntGaugeVec,
    proxy_counts_detailed: IntGaugeVec,
    connection_counts: IntGaugeVec,
    traffic_in: IntCounterVec,
    traffic_out: IntCounterVec,
    /// frp_rs: time users wait for a work connection.
    pub(crate) work_conn_wait: Histogram,
    /// frp_rs: work connections handed to users, by source (pool or requested).
    pub(crate) work_conns_handed_out: IntCounterVec,
    /// frp_rs: user connections relayed with splice(2) (no copy through user space).
    pub(crate) spliced: IntCounter,
    /// frp_rs: idle work connections waiting in all pools (set at scrape time).
    pub(crate) pooled_work_conns: IntGauge,
    /// frp_rs: refused logins, proxies and work connections, by reason.
    pub(crate) refusals: IntCounterVec,
    /// frp_rs: connections closed before they logged in, by reason (`admission::Reject`).
    pub(crate) rejected_connections: IntCounterVec,
    /// frp_rs: server-plugin calls by plugin, op and outcome.
    plugin_calls: IntCounterVec,
    /// frp_rs: server-plugin call latency by op.
    plugin_seconds: HistogramVec,
    totals: Arc<Totals>,
    /// Totals at the start of the current day: (day, in, out); frp reports today's traffic.
    totals_day: Mutex<(i64, u64, u64)>,
    /// Registered proxies by type; a type once seen stays, at 0 (frp's `ProxyTypeCounts`).
    type_counts: Mutex<BTreeMap<String, i64>>,
    proxies: Mutex<BTreeMap<String, ProxyRecord>>,
    /// Offline proxy records kept at most ([`MAX_OFFLINE_PROXIES`]; smaller in tests).
    max_offline_proxies: usize,
    /// Client records for the dashboard.
    pub(crate) clients: crate::clients::ClientBook,
}

/// Offline proxy records kept for the dashboard at most; the oldest go first. frp keeps them
/// all until cleared; a client registering and closing new names would grow them without end.
pub(crate) const MAX_OFFLINE_PROXIES: usize = 10_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    pub(crate) fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let ns = |n: &str, h: &str| Opts::new(n, h).namespace("frp").subsystem("server");
        let client_counts =
            IntGauge::with_opts(ns("client_counts", "The current client counts of frps"))?;
        let proxy_counts =
            IntGaugeVec::new(ns("proxy_counts", "The current proxy counts"), &["type"])?;
        let proxy_counts_detailed = IntGaugeVec::new(
            ns(
                "proxy_counts_detailed",
                "The current number of proxies grouped by type and name",
            ),
            &["type", "name"],
        )?;
        let connection_counts = IntGaugeVec::new(
            ns("connection_counts", "The current connection counts"),
            &["name", "type"],
        )?;
        let traffic_in =
            IntCounterVec::new(ns("traffic_in", "The total in traffic"), &["name", "type"])?;
        let traffic_out = IntCounterVec::new(
            ns("traffic_out", "The total out traffic"),
            &["name", "type"],
        )?;
        let work_conn_wait = Histogram::with_opts(
            HistogramOpts::new(
                "frp_rs_server_work_conn_wait_seconds",
                "Time a user connection waited for a work connection",
            )
            .buckets(vec![
                0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
            ]),
        )?;
        let refusals = IntCounterVec::new(
            Opts::new(
                "frp_rs_server_refusals_total",
                "Refused logins, proxies and work connections by reason",
            ),
            &["what", "reason"],
        )?;
        registry.register(Box::new(client_counts.clone()))?;
        registry.register(Box::new(proxy_counts.clone()))?;
        registry.register(Box::new(proxy_counts_detailed.clone()))?;
        registry.register(Box::new(connection_counts.clone()))?;
        registry.register(Box::new(traffic_in.clone()))?;
        registry.register(Box::new(traffic_out.clone()))?;
        let work_conns_handed_out = IntCounterVec::new(
            Opts::new(
                "frp_rs_server_work_conns_handed_out_total",
                "Work connections handed to users: from the pool, or requested and waited for",
            ),
            &["source"],
        )?;
        let pooled_work_conns = IntGauge::with_opts(Opts::new(
            "frp_rs_server_pooled_work_conns",
            "Idle work connections waiting in the pools of all clients",
        ))?;
        registry.register(Box::new(work_conn_wait.clone()))?;
        let spliced = IntCounter::with_opts(Opts::new(
            "frp_rs_server_spliced_connections_total",
            "User connections relayed zero-copy with splice(2)",
        ))?;
        registry.register(Box::new(spliced.clone()))?;
        registry.register(Box::new(work_conns_handed_out.clone()))?;
        registry.register(Box::new(pooled_work_conns.clone()))?;
        registry.register(Box::new(refusals.clone()))?;
        let rejected_connections = IntCounterVec::new(
            Opts::new(
                "frp_rs_server_rejected_connections_total",
                "Connections closed before they logged in: probes, garbage, timeouts, TLS failures, refused first messages",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(rejected_connections.clone()))?;
        let plugin_calls = IntCounterVec::new(
            Opts::new(
                "frp_rs_server_plugin_calls_total",
                "Server-plugin calls by plugin, op and outcome (unchanged, changed, rejected, failed, notified)",
            ),
            &["plugin", "op", "outcome"],
        )?;
        registry.register(Box::new(plugin_calls.clone()))?;
        let plugin_seconds = HistogramVec::new(
            HistogramOpts::new(
                "frp_rs_server_plugin_call_seconds",
                "Time a server-plugin call took, answer read (or failure) included",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0]),
            &["op"],
        )?;
        registry.register(Box::new(plugin_seconds.clone()))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Metrics {
            registry,
            client_counts,
            proxy_counts,
            proxy_counts_detailed,
            connection_counts,
            traffic_in,
            traffic_out,
            work_conn_wait,
            work_conns_handed_out,
            pooled_work_conns,
            spliced,
            refusals,
            rejected_connections,
            plugin_calls,
            plugin_seconds,
            totals: Arc::new(Totals::default()),
            totals_day: Mutex::new((today(), 0, 0)),
            type_counts: Mutex::new(BTreeMap::new()),
            proxies: Mutex::new(BTreeMap::new()),
            max_offline_proxies: MAX_OFFLINE_PROXIES,
            clients: Default::default(),
        })
    }

    /// A client logged in: returns its dashboard key.
    pub(crate) fn client_opened(&self, login: crate::clients::Login<'_>) -> String {
        self.client_counts.inc();
        self.clients.online(login)
    }

    pub(crate) fn client_closed(&self, run_id: &str, control_id: u64) {
        self.client_counts.dec();
        self.clients.offline(run_id, control_id);
    }

    /// One server-plugin call ended with `outcome`.
    pub(crate) fn plugin_call(&self, plugin: &str, op: &str, outcome: &str) {
        self.plugin_calls
            .with_label_values(&[plugin, op, outcome])
            .inc();
    }

    /// How long one server-plugin exchange took.
    pub(crate) fn plugin_latency(&self, op: &str, took: std::time::Duration) {
        self.plugin_seconds
            .with_label_values(&[op])
            .observe(took.as_secs_f64());
    }

    pub(crate) fn refused(&self, what: &str, reason: &str) {
        self.refusals.with_label_values(&[what, reason]).inc();
    }

    /// The counters a proxy about to start will use: those its name had before with the same
    /// type (frp continues them), else fresh ones. Nothing is recorded until it has started.
    pub(crate) fn traffic_for(&self, name: &str, kind: &str) -> Arc<Traffic> {
        match lock(&self.proxies).get(name) {
            Some(r) if r.kind == kind => r.traffic.clone(),
            _ => Arc::new(Traffic {
                bytes_in: AtomicU64::new(0),
                bytes_out: AtomicU64::new(0),
                conns: AtomicI64::new(0),
                prom: OnceLock::new(),
                totals: self.totals.clone(),
            }),
        }
    }

    /// A proxy started: its dashboard record (replacing any under its name) and its series.
    /// `remote_addr` is where it listens (frps may have picked the port).
    pub(crate) fn proxy_started(
        &self,
        np: &NewProxy,
        owner: Owner<'_>,
        traffic: &Arc<Traffic>,
        remote_addr: &str,
    ) {
        let (name, kind) = (np.proxy_name.as_str(), np.proxy_type.as_str());
        self.proxy_counts.with_label_values(&[kind]).inc();
        self.proxy_counts_detailed
            .with_label_values(&[kind, name])
            .set(1);
        let _ = traffic.prom.get_or_init(|| PromTraffic {
            bytes_in: self.traffic_in.with_label_values(&[name, kind]),
            bytes_out: self.traffic_out.with_label_values(&[name, kind]),
            conns: self.connection_counts.with_label_values(&[name, kind]),
        });
        *lock(&self.type_counts).entry(kind.to_owned()).or_default() += 1;
        let mut conf = ProxyConf::from_msg(np);
        let port = remote_addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok());
        if let (Some(port), Some(_)) = (port, conf.remote_port) {
            conf.remote_port = Some(i64::from(port));
        }
        let mut proxies = lock(&self.proxies);
        let (last_close, day_marks) = proxies
            .get(name)
            .filter(|r| Arc::ptr_eq(&r.traffic, traffic))
            .map(|r| (r.last_close, r.day_marks.clone()))
            .unwrap_or_default();
        if let Some(old) = proxies
            .get(name)
            .filter(|r| !Arc::ptr_eq(&r.traffic, traffic))
        {
            // Another type under this name before: its series go with its record.
            self.remove_series(name, &old.kind);
        }
        let mut r = ProxyRecord {
            kind: kind.to_owned(),
            conf,
            user: owner.user.to_owned(),
            client_id: owner.client_id.to_owned(),
            online: true,
            last_start: unix_now(),
            last_close,
            traffic: traffic.clone(),
            day_marks,
        };
        r.mark_day(today());
        proxies.insert(name.to_owned(), r);
    }

    /// A started proxy closed: its record stays (offline) for the dashboard, the oldest
    /// offline ones beyond [`MAX_OFFLINE_PROXIES`] go.
    pub(crate) fn proxy_closed(&self, name: &str, kind: &str) {
        self.proxy_counts.with_label_values(&[kind]).dec();
        if let Some(n) = lock(&self.type_counts).get_mut(kind) {
            *n -= 1;
        }
        let _ = self
            .proxy_counts_detailed
            .remove_label_values(&[kind, name]);
        let mut proxies = lock(&self.proxies);
        if let Some(r) = proxies.get_mut(name) {
            r.online = false;
            r.last_close = unix_now();
        }
        let offline = proxies.values().filter(|r| !r.online).count();
        for _ in self.max_offline_proxies..offline {
            let oldest = proxies
                .iter()
                .filter(|(_, r)| !r.online)
                .min_by_key(|(_, r)| r.last_close)
                .map(|(n, r)| (n.clone(), r.kind.clone()));
            if let Some((n, k)) = oldest {
                proxies.remove(&n);
                self.remove_series(&n, &k);
            }
        }
    }

    /// Drops the traffic series of a proxy whose record is gone.
    fn remove_series(&self, name: &str, kind: &str) {
        let _ = self.traffic_in.remove_label_values(&[name, kind]);
        let _ = self.traffic_out.remove_label_values(&[name, kind]);
        let _ = self.connection_counts.remove_label_values(&[name, kind]);
    }

    pub(crate) fn proxy(&self, name: &str) -> Option<ProxyRecord> {
        lock(&self.proxies).get(name).cloned()
    }

    pub(crate) fn proxies(&self) -> Vec<(String, ProxyRecord)> {
        lock(&self.proxies)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Starts a new day's traffic figures when the date changed (called every minute).
    pub(crate) fn roll_days(&self) {
        let day = today();
        {
            let mut d = lock(&self.totals_day);
            if d.0 < day {
                *d = (
                    day,
                    self.totals.bytes_in.load(Relaxed),
                    self.totals.bytes_out.load(Relaxed),
                );
            }
        }
        for r in lock(&self.proxies).values_mut() {
            r.mark_day(day);
        }
    }

    /// `DELETE /api/proxies?status=offline`: returns (cleared, total before).
    pub(crate) fn clear_offline(&self) -> (usize, usize) {
        let mut p = lock(&self.proxies);
        let total = p.len();
        p.retain(|name, r| {
            if !r.online {
                self.remove_series(name, &r.kind);
            }
            r.online
        });
        (total - p.len(), total)
    }

    /// (today's traffic in, today's traffic out, current connections, clients), as frp's
    /// `GetServer`.
    pub(crate) fn totals(&self) -> (u64, u64, i64, i64) {
        let (_, day_in, day_out) = *lock(&self.totals_day);
        (
            self.totals.bytes_in.load(Relaxed).saturating_sub(day_in),
            self.totals.bytes_out.load(Relaxed).saturating_sub(day_out),
            self.totals.conns.load(Relaxed),
            self.client_counts.get(),
        )
    }

    /// Registered proxies per type, with 0 for types seen before.
    pub(crate) fn type_counts(&self) -> BTreeMap<String, i64> {
        lock(&self.type_counts).clone()
    }

    /// Prometheus text format.
    pub(crate) fn render(&self) -> String {
        common::http::metrics_text(&self.registry)
    }
}

pub(crate) use common::clock::{civil, unix_now, utc_day as today};

/// frp shows times as `01-02 15:04:05` (local time); we use UTC. 0 (never) is "".
pub(crate) fn short_time(secs: i64) -> String {
    if secs <= 0 {
        return String::new();
    }
    let (days, rem) = (secs / 86400, secs % 86400);
    let (y, m, d) = civil(days);
    let _ = y;
    format!(
        "{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn http_conf_has_frps_keys_and_no_password() {
        let np = NewProxy {
            proxy_name: "web".into(),
            proxy_type: "http".into(),
            custom_domains: vec!["a.example.com".into()],
            subdomain: "app".into(),
            locations: vec!["/api".into()],
            http_user: "u".into(),
            http_pwd: "secret-pw".into(),
            route_by_http_user: "u".into(),
            ..Default::default()
        };
        let c = serde_json::Value::Object(type_keys(&np));
        assert_eq!(c["customDomains"][0], "a.example.com");
        assert_eq!(c["subdomain"], "app");
        assert_eq!(c["locations"][0], "/api");
        assert_eq!(c["routeByHTTPUser"], "u");
        assert!(!c.to_string().contains("secret-pw"));
    }

    #[test]
    fn daily_traffic_splits_at_day_marks() {
        let m = Metrics::new().unwrap();
        let np = NewProxy {
            proxy_name: "p".into(),
            proxy_type: "tcp".into(),
            ..Default::default()
        };
        let owner = Owner {
            user: "",
            client_id: "",
        };
        let t = m.traffic_for("p", "tcp");
        m.proxy_started(&np, owner, &t, ":1");
        let today = super::today();
        {
            let mut proxies = lock(&m.proxies);
            let r = proxies.get_mut("p").unwrap();
            // Pretend the proxy started two days ago with 0 bytes, and 100 came in yesterday.
            r.day_marks.clear();
            r.mark_day(today - 2);
            t.read(100);
            r.mark_day(today - 1);
            t.read(30);
            t.written(5);
            r.mark_day(today);
        }
        t.read(7);
        let (tin, tout) = m.proxy("p").unwrap().daily(today);
        assert_eq!(tin, [7, 30, 100, 0, 0, 0, 0]);
        assert_eq!(tout, [0, 5, 0, 0, 0, 0, 0]);
    }

    /// Offline records are bounded: the oldest go, with their series; online ones never.
    #[test]
    fn offline_proxy_records_are_bounded() {
        let mut m = Metrics::new().unwrap();
        m.max_offline_proxies = 3;
        let owner = Owner {
            user: "",
            client_id: "",
        };
        for i in 0..6 {
            let np = NewProxy {
                proxy_name: format!("p{i}"),
                proxy_type: "tcp".into(),
                ..Default::default()
            };
            let t = m.traffic_for(&np.proxy_name, "tcp");
            m.proxy_started(&np, owner, &t, ":1");
            if i > 0 {
                m.proxy_closed(&np.proxy_name, "tcp");
                // Make closing order visible to the eviction (same-second closes tie).
                lock(&m.proxies).get_mut(&np.proxy_name).unwrap().last_close = i;
            }
        }
        let names: Vec<String> = m.proxies().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["p0", "p3", "p4", "p5"]);
        let text = m.render();
        assert!(
            !text.contains("\"p1\"") && !text.contains("\"p2\""),
            "{text}"
        );
        assert!(text.contains("\"p5\""), "{text}");
    }
}
