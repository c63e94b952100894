//! Health checks of local services (frp `client/health/health.go`; frp-protocol.md §11).
//!
//! One monitor task per checked proxy reports state changes: healthy after a good check,
//! unhealthy after `maxFailed` failures in a row. Every failed check is logged with its reason
//! (as frp's "do one health check failed"), and the reason goes into the proxy's status. Unlike
//! frp, whose failure counter never resets, a success resets it, so a service that blips once a
//! day is not taken out by a single later failure (README, compatibility notes).

use common::config::HealthCheck;
use http_body_util::Empty;
use hyper::body::Bytes;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// What one check needs.
#[derive(Debug, Clone)]
pub(crate) struct HealthSpec {
    pub(crate) name: String,
    pub(crate) check: HealthCheck,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// A state change of one proxy's local service.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HealthEvent {
    pub(crate) name: String,
    pub(crate) healthy: bool,
    /// Why the last check failed (`connect to 127.0.0.1:80: Connection refused`, `no answer
    /// within 3s`, `HTTP status 503 Service Unavailable`); empty when healthy.
    pub(crate) reason: String,
}

/// Runs checks every `intervalSeconds` until `token` is cancelled; sends only changes (the first
/// result is always sent).
pub(crate) async fn monitor(
    spec: HealthSpec,
    tx: mpsc::Sender<HealthEvent>,
    token: CancellationToken,
) {
    let interval = Duration::from_secs(spec.check.interval_seconds.max(1) as u64);
    let timeout = Duration::from_secs(spec.check.timeout_seconds.max(1) as u64);
    let max_failed = spec.check.max_failed.max(1);
    let mut failed = 0i64;
    let mut state: Option<bool> = None;
    loop {
        let result = tokio::select! {
            _ = token.cancelled() => return,
            r = tokio::time::timeout(timeout, check(&spec)) => r.unwrap_or_else(|_| Err(format!("no answer within {}s", timeout.as_secs()))),
        };
        let change = match &result {
            Ok(()) => {
                failed = 0;
                (state != Some(true)).then_some(true)
            }
            Err(reason) => {
                // Every failed check, as frp ("do one health check failed: ...").
                warn!(proxy = %spec.name, reason = %reason, "health check failed");
                failed += 1;
                (failed >= max_failed && state != Some(false)).then_some(false)
            }
        };
        if let Some(healthy) = change {
            state = Some(healthy);
            debug!(proxy = %spec.name, healthy, "health state changed");
            if tx
                .send(HealthEvent {
                    name: spec.name.clone(),
                    healthy,
                    reason: result.err().unwrap_or_default(),
                })
                .await
                .is_err()
            {
                return;
            }
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// One check: TCP connect, or `GET http://host:port/path` answered with 2xx. The error says
/// why the check failed, for the log and the proxy's status.
async fn check(spec: &HealthSpec) -> Result<(), String> {
    let stream = common::dns::connect(&spec.host, spec.port)
        .await
        .map_err(|e| format!("connect to {}:{}: {e}", spec.host, spec.port))?;
    if spec.check.kind != "http" {
        return Ok(());
    }
    let http_err = |e: hyper::Error| format!("HTTP request: {e}");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(http_err)?;
    let conn_task = tokio::spawn(conn);
    let path = if spec.check.path.starts_with('/') {
        spec.check.path.clone()
    } else {
        format!("/{}", spec.check.path)
    };
    let mut req = hyper::Request::get(path)
        .header(hyper::header::HOST, format!("{}:{}", spec.host, spec.port));
    for h in &spec.check.http_headers {
        // A configured Host header replaces the default, as in frp.
        if let Some(headers) = req.headers_mut() {
            let (Ok(name), Ok(value)) = (
                hyper::header::HeaderName::from_bytes(h.name.as_bytes()),
                hyper::header::HeaderValue::from_str(&h.value),
            ) else {
                continue;
            };
            headers.insert(name, value);
        }
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("HTTP request: {e}"))?;
    let resp = sender.send_request(req).await.map_err(http_err);
    conn_task.abort();
    let status = resp?.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP status {status} (want 2xx)"))
    }
}
