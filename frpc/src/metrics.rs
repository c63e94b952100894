//! frpc's metrics, served at `/metrics` on the admin listener (frp has none on the client).
//! All under `frp_rs_client_` so they never clash with frp's series. The registry belongs to
//! the [`Client`](crate::Client); bytes are counted by the `Counted` stream layer around the
//! local connection.

use common::io::Count;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use std::sync::Arc;

/// The client's metrics.
#[derive(Debug)]
pub struct ClientMetrics {
    registry: Registry,
    /// Sessions started after the first (the server connection was lost and re-made).
    pub(crate) reconnects: IntCounter,
    /// Failed logins by reason (`connect`, `refused`, `protocol`, `tls`).
    pub(crate) login_failures: IntCounterVec,
    /// Time to connect to a local service.
    pub(crate) local_dial: Histogram,
    /// Failed local dials by proxy and reason (`refused`, `timeout`, `other`).
    pub(crate) dial_failures: IntCounterVec,
    /// Work connections handed to proxies.
    pub(crate) work_conns: IntCounter,
    /// Connections relayed zero-copy with splice(2).
    pub(crate) spliced: IntCounter,
    conns: IntGaugeVec,
    bytes: IntCounterVec,
    /// Visitor connections to frps by visitor and result (`ok`, `refused`, `error`).
    pub(crate) visitor_dials: IntCounterVec,
    visitor_conns: IntGaugeVec,
    visitor_bytes: IntCounterVec,
    /// xtcp hole punches by side (`visitor` or `proxy`), visitor/proxy name and result
    /// (`ok`, or the step that failed: `precheck`, `stun`, `exchange`, `punch`, `quic`).
    pub(crate) punches: IntCounterVec,
}

impl ClientMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let opts = |n: &str, h: &str| Opts::new(n, h).namespace("frp_rs").subsystem("client");
        let reconnects = IntCounter::with_opts(opts(
            "reconnects_total",
            "Sessions re-established after the server connection was lost",
        ))?;
        let login_failures = IntCounterVec::new(
            opts("login_failures_total", "Failed logins by reason"),
            &["reason"],
        )?;
        let local_dial = Histogram::with_opts(
            HistogramOpts::new(
                "frp_rs_client_local_dial_seconds",
                "Time to connect to the local service",
            )
            .buckets(vec![
                0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
            ]),
        )?;
        let dial_failures = IntCounterVec::new(
            opts(
                "local_dial_failures_total",
                "Failed connections to local services by proxy and reason",
            ),
            &["name", "reason"],
        )?;
        let work_conns = IntCounter::with_opts(opts(
            "work_conns_total",
            "Work connections handed to proxies",
        ))?;
        let conns = IntGaugeVec::new(
            opts("proxy_connections", "Open user connections per proxy"),
            &["name", "type"],
        )?;
        let bytes = IntCounterVec::new(
            opts(
                "proxy_bytes_total",
                "Bytes per proxy: direction=in is server to local service, out is back",
            ),
            &["name", "type", "direction"],
        )?;
        registry.register(Box::new(reconnects.clone()))?;
        registry.register(Box::new(login_failures.clone()))?;
        registry.register(Box::new(local_dial.clone()))?;
        registry.register(Box::new(dial_failures.clone()))?;
        let spliced = IntCounter::with_opts(opts(
            "spliced_connections_total",
            "Connections relayed zero-copy with splice(2)",
        ))?;
        registry.register(Box::new(work_conns.clone()))?;
        registry.register(Box::new(spliced.clone()))?;
        registry.register(Box::new(conns.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        let visitor_dials = IntCounterVec::new(
            opts(
                "visitor_dials_total",
                "Visitor connections opened to frps by visitor, type and result (ok, refused, error)",
            ),
            &["name", "type", "result"],
        )?;
        let visitor_conns = IntGaugeVec::new(
            opts(
                "visitor_connections",
                "Open visitor connections (stcp users, sudp tunnels) per visitor",
            ),
            &["name", "type"],
        )?;
        let visitor_bytes = IntCounterVec::new(
            opts(
                "visitor_bytes_total",
                "Bytes per visitor: direction=in is server to local user, out is back",
            ),
            &["name", "type", "direction"],
        )?;
        registry.register(Box::new(visitor_dials.clone()))?;
        registry.register(Box::new(visitor_conns.clone()))?;
        registry.register(Box::new(visitor_bytes.clone()))?;
        let punches = IntCounterVec::new(
            opts(
                "xtcp_punches_total",
                "xtcp hole punches by side (visitor, proxy), name and result (ok, or the step that failed)",
            ),
            &["side", "name", "result"],
        )?;
        registry.register(Box::new(punches.clone()))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(ClientMetrics {
            registry,
            reconnects,
            login_failures,
            local_dial,
            dial_failures,
            work_conns,
            spliced,
            conns,
            bytes,
            visitor_dials,
            visitor_conns,
            visitor_bytes,
            punches,
        })
    }

    /// One proxy's open connections and bytes to and from its local service (for the admin
    /// page); zeros for a proxy that has none yet.
    pub(crate) fn proxy_figures(&self, name: &str, kind: &str) -> (i64, u64, u64) {
        let bytes = |dir: &str| {
            self.bytes
                .get_metric_with_label_values(&[name, kind, dir])
                .map(|c| c.get())
                .unwrap_or(0)
        };
        let conns = self
            .conns
            .get_metric_with_label_values(&[name, kind])
            .map(|g| g.get())
            .unwrap_or(0);
        (conns, bytes("in"), bytes("out"))
    }

    /// The counters of one proxy.
    pub(crate) fn proxy(&self, name: &str, kind: &str) -> Arc<ProxyCounters> {
        Arc::new(ProxyCounters {
            to_local: self.bytes.with_label_values(&[name, kind, "in"]),
            to_server: self.bytes.with_label_values(&[name, kind, "out"]),
            conns: self.conns.with_label_values(&[name, kind]),
        })
    }

    /// The counters of one visitor (same shape as a proxy's: the local side is the user).
    pub(crate) fn visitor(&self, name: &str, kind: &str) -> Arc<ProxyCounters> {
        Arc::new(ProxyCounters {
            to_local: self.visitor_bytes.with_label_values(&[name, kind, "in"]),
            to_server: self.visitor_bytes.with_label_values(&[name, kind, "out"]),
            conns: self.visitor_conns.with_label_values(&[name, kind]),
        })
    }

    /// Prometheus text format.
    pub fn render(&self) -> String {
        common::http::metrics_text(&self.registry)
    }

    /// The `/metrics` response.
    pub(crate) fn reply(&self) -> common::http::Resp {
        common::http::metrics(&self.registry)
    }
}

/// Per-proxy counters, fed by a `Counted` wrapper around the local connection.
#[derive(Debug)]
pub(crate) struct ProxyCounters {
    to_local: IntCounter,
    to_server: IntCounter,
    conns: IntGauge,
}

impl Count for ProxyCounters {
    /// Read from the local service: going back to the server.
    fn read(&self, n: u64) {
        self.to_server.inc_by(n);
    }
    fn written(&self, n: u64) {
        self.to_local.inc_by(n);
    }
}

impl ProxyCounters {
    /// Counts one open connection until the guard drops.
    pub(crate) fn conn_opened(self: &Arc<Self>) -> ConnGuard {
        self.conns.inc();
        ConnGuard(self.clone())
    }
}

/// Decrements the proxy's open connections on drop.
#[derive(Debug)]
pub(crate) struct ConnGuard(Arc<ProxyCounters>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.conns.dec();
    }
}
