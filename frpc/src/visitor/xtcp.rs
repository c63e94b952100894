//! The xtcp visitor (frp `client/visitor/xtcp.go`): user connections (local listener, or
//! handed over by another visitor) each become one stream of a tunnel (QUIC, or yamux over
//! KCP with `protocol = "kcp"`) to the proxy's
//! frpc, made by hole punching through frps. The tunnel is kept and reused while it works;
//! when none works, a user connection waits (up to `fallbackTimeoutMs` when `fallbackTo` is
//! set, 20 s otherwise) while one attempt runs, then goes to the `fallbackTo` visitor or is
//! closed. Attempts start at most once per 10 s (frp); `keepTunnelOpen` checks the tunnel
//! every `minRetryInterval` seconds and re-makes it, at most `maxRetriesAnHour` times an hour.

use super::{layers, relay_user, transfer, Ctx, Handoffs, Users};
use crate::metrics::ProxyCounters;
use crate::visitor::target_name;
use crate::xtcp::{self, check_resp, Tunnel};
use common::auth::{auth_key, unix_now};
use common::config::VisitorConfig;
use common::io::{wrap_work_conn, BoxStream};
use common::msg::NatHoleVisitor;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// frp: a user connection waits at most this long for a tunnel.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);
/// frp: between two tries to open a stream.
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// frp: hole-punching attempts start at most this often.
const ATTEMPT_EVERY: Duration = Duration::from_secs(10);

/// The visitor's tunnel and the way to ask for a new one.
struct State {
    tunnel: Mutex<Option<Tunnel>>,
    start: mpsc::Sender<()>,
}

impl State {
    fn tunnel(&self) -> std::sync::MutexGuard<'_, Option<Tunnel>> {
        self.tunnel.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for a hole-punching attempt (one at a time; a pending request is enough).
    fn want_tunnel(&self) {
        let _ = self.start.try_send(());
    }

    /// A stream on the tunnel (frp `getTunnelConn`); without a working tunnel, asks for one.
    async fn open(&self) -> Option<BoxStream> {
        let t = self.tunnel().clone();
        let Some(t) = t else {
            self.want_tunnel();
            return None;
        };
        match t.open().await {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(error = %e, "xtcp tunnel broken, a new one will be made");
                t.close();
                let mut cur = self.tunnel();
                if cur.as_ref().is_some_and(|c| c.same(&t)) {
                    *cur = None;
                }
                drop(cur);
                self.want_tunnel();
                None
            }
        }
    }
}

pub(super) async fn run(
    ctx: Arc<Ctx>,
    v: Arc<VisitorConfig>,
    mut users: Users,
    counters: Arc<ProxyCounters>,
    token: CancellationToken,
    handoffs: Handoffs,
) {
    let (start, mut start_rx) = mpsc::channel(1);
    let state = Arc::new(State {
        tunnel: Mutex::new(None),
        start,
    });
    let attempts = async {
        while start_rx.recv().await.is_some() {
            let began = Instant::now();
            match make_tunnel(&ctx, &v).await {
                Ok(t) => {
                    count(&ctx, &v, "ok");
                    info!(peer = %t.peer(), protocol = %v.protocol, "xtcp tunnel established");
                    if let Some(old) = state.tunnel().replace(t) {
                        old.close();
                    }
                }
                Err((step, e)) => {
                    count(&ctx, &v, step);
                    warn!(error = %e, "xtcp hole punch failed ({step})");
                }
            }
            tokio::time::sleep_until(began + ATTEMPT_EVERY).await;
            // Requests made during the attempt are answered by it.
            while start_rx.try_recv().is_ok() {}
        }
    };
    let keep_open = async {
        if !v.keep_tunnel_open {
            return std::future::pending().await;
        }
        state.want_tunnel();
        let every = Duration::from_secs(v.min_retry_interval.max(1) as u64);
        let mut limiter = Limiter::new(v.max_retries_an_hour.max(1) as f64);
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        loop {
            tick.tick().await;
            debug!("keepTunnelOpen: checking the tunnel");
            match state.open().await {
                Some(s) => drop(s),
                None => {
                    warn!("keepTunnelOpen: no working tunnel, making a new one");
                    limiter.wait().await;
                }
            }
        }
    };
    let accept = async {
        while let Some(user) = users.next().await {
            let fut = user_conn(
                state.clone(),
                v.clone(),
                user,
                counters.clone(),
                token.clone(),
                handoffs.clone(),
            );
            tokio::spawn(fut.in_current_span());
        }
    };
    tokio::select! {
        _ = token.cancelled() => {}
        () = attempts => {}
        () = keep_open => {}
        () = accept => {}
    }
    let last = state.tunnel().take();
    if let Some(t) = last {
        t.close();
    }
}

fn count(ctx: &Ctx, v: &VisitorConfig, result: &str) {
    ctx.metrics
        .punches
        .with_label_values(&["visitor", &v.name, result])
        .inc();
}

/// One user connection: a stream of the tunnel, or the fallback visitor, or closed.
async fn user_conn(
    state: Arc<State>,
    v: Arc<VisitorConfig>,
    user: BoxStream,
    counters: Arc<ProxyCounters>,
    token: CancellationToken,
    handoffs: Handoffs,
) {
    let limit = if v.fallback_to.is_empty() {
        OPEN_TIMEOUT
    } else {
        Duration::from_millis(v.fallback_timeout_ms.max(0) as u64).min(OPEN_TIMEOUT)
    };
    let open = async {
        loop {
            if let Some(s) = state.open().await {
                return s;
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
    };
    let opened = tokio::select! {
        _ = token.cancelled() => return,
        r = tokio::time::timeout(limit, open) => r.ok(),
    };
    let Some(stream) = opened else {
        if v.fallback_to.is_empty() {
            warn!("open tunnel error: no xtcp tunnel within {limit:?}; user connection closed");
            return;
        }
        info!(fallback = %v.fallback_to, "no xtcp tunnel within {limit:?}: user connection handed to the fallback visitor");
        if let Err(e) = transfer(&handoffs, &v.fallback_to, user) {
            warn!(fallback = %v.fallback_to, error = %e, "transfer connection to the fallback visitor failed");
        }
        return;
    };
    let remote = wrap_work_conn(stream, &layers(&v));
    relay_user(user, remote, counters, &token).await;
}

/// frp `makeNatHole`: pre-check, discovery, NatHoleVisitor, the punch, the tunnel (QUIC, or
/// KCP and yamux, as the visitor's `protocol` says). The error names
/// the step that failed (the metric's `result`).
async fn make_tunnel(ctx: &Ctx, v: &VisitorConfig) -> Result<Tunnel, (&'static str, String)> {
    let name = target_name(&ctx.user, v);
    let tid = common::nathole::new_id();
    let pre = NatHoleVisitor {
        transaction_id: tid.clone(),
        proxy_name: name.clone(),
        pre_check: true,
        ..Default::default()
    };
    let r = ctx
        .nat
        .exchange(pre.into(), &tid, xtcp::PRECHECK_TIMEOUT)
        .await
        .map_err(|e| ("precheck", format!("nathole precheck error: {e}")))?;
    if !r.error.is_empty() {
        return Err(("precheck", format!("nathole precheck error: {}", r.error)));
    }
    let prepared = xtcp::prepare(&ctx.stun_server, v.nat_traversal.disable_assisted_addrs)
        .await
        .map_err(|e| ("stun", e))?;
    let now = unix_now();
    let tid = common::nathole::new_id();
    let m = NatHoleVisitor {
        transaction_id: tid.clone(),
        proxy_name: name,
        pre_check: false,
        protocol: v.protocol.clone(),
        sign_key: auth_key(&v.secret_key.0, now),
        timestamp: now,
        mapped_addrs: prepared.addrs.clone(),
        assisted_addrs: prepared.assisted.clone(),
    };
    let resp = ctx
        .nat
        .exchange(m.into(), &tid, xtcp::EXCHANGE_TIMEOUT)
        .await
        .and_then(check_resp)
        .map_err(|e| ("exchange", format!("nathole exchange info error: {e}")))?;
    debug!(sid = %resp.sid, protocol = %resp.protocol, candidates = ?resp.candidate_addrs, behavior = ?resp.detect_behavior, "get natHoleRespMsg");
    let key = common::nathole::punch_key(&v.secret_key.0);
    let (socket, peer) = xtcp::make_hole(prepared.socket, &resp, &key)
        .await
        .map_err(|e| ("punch", format!("make hole error: {e}")))?;
    info!(sid = %resp.sid, %peer, "establishing nat hole connection successful");
    xtcp::tunnel(socket, peer, &v.protocol, &ctx.quic, true).await
}

/// frp's `rate.Limiter` for keepTunnelOpen: `per_hour` retries an hour, as a burst too.
struct Limiter {
    tokens: f64,
    per_hour: f64,
    at: Instant,
}

impl Limiter {
    fn new(per_hour: f64) -> Self {
        Limiter {
            tokens: per_hour,
            per_hour,
            at: Instant::now(),
        }
    }

    async fn wait(&mut self) {
        let rate = self.per_hour / 3600.0;
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(self.per_hour);
        self.at = now;
        if self.tokens < 1.0 {
            let need = Duration::from_secs_f64((1.0 - self.tokens) / rate);
            tokio::time::sleep(need).await;
            self.tokens = 1.0;
            self.at = Instant::now();
        }
        self.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::Limiter;
    use std::time::Duration;

    /// maxRetriesAnHour as a burst, then one per hour/max.
    #[tokio::test(start_paused = true)]
    async fn limiter_allows_the_burst_then_paces() {
        let mut l = Limiter::new(4.0);
        let t0 = tokio::time::Instant::now();
        for _ in 0..4 {
            l.wait().await;
        }
        assert_eq!(t0.elapsed(), Duration::ZERO);
        l.wait().await;
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_secs(899) && waited <= Duration::from_secs(901));
    }
}
