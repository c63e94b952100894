//! What a connection may cost frps before it has logged in (not a frp file: frp bounds none of
//! this beyond its 10 s first-message deadline).
//!
//! - [`Limits`]: the first-message deadline, connections not yet logged in (at most), yamux
//!   streams per session before login. Defaults in one place; tests shrink them.
//! - [`Gate`]: the server-wide counters behind those limits.
//! - One source address may hold at most [`Limits::pending_per_source`] of those
//!   connections, so a crowd of silent connections from one host cannot take every slot and
//!   hold back everyone else's logins until its deadline (trusted PROXY-protocol balancers,
//!   which speak for many clients, are not counted per address).
//! - A crowd spread over enough addresses still fills every slot; then the oldest connection
//!   that has sent nothing for [`Limits::evict_silent_after`] (a few at a time; failing that,
//!   the oldest that has not logged in for [`Limits::evict_after`]) is closed to make room for
//!   the next ([`Gate::permit`], counted as `evicted`): a well-behaved client sends at once and logs
//!   in within milliseconds, so it is never the oldest for long.
//! - [`Admission`]: one TCP connection's standing until it logs in; its `Drop` gives back what
//!   it held and, if it never logged in, counts it as rejected ([`Reject`]).
//! - Rejected connections are logged at debug one by one and summed up at INFO once per
//!   [`Limits::reject_summary_interval`] ([`Gate::summary`]), and counted in
//!   `frp_rs_server_rejected_connections_total{reason}`.

use common::transport::kcp::{KcpConfig, KcpWindow};
use common::transport::{mux, quic};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// frp's deadline for a new connection to show what it is (`connReadTimeout`, 10 s).
pub const FIRST_MSG_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits on connections that have not logged in yet.
#[derive(Debug, Clone)]
pub struct Limits {
    /// From accept to a completed Login (or a work connection's first message): TLS, yamux and
    /// the first message all fit in it, however the peer keeps itself alive.
    pub first_msg_timeout: Duration,
    /// TCP connections at most that have not logged in (or, without tcpMux, sent their first
    /// message); beyond it frps stops accepting (the kernel's backlog holds the rest).
    pub pending_connections: usize,
    /// Of those, at most this many from one source address; more from it are closed at once
    /// (counted as `busy`) while the others' slots stay free.
    pub pending_per_source: usize,
    /// While every slot is held, the oldest connection that has sent no byte for this long
    /// is closed to make room for a new one.
    pub evict_silent_after: Duration,
    /// While every slot is held and none is silent that long, the oldest connection that has
    /// not logged in for this long is closed to make room.
    pub evict_after: Duration,
    /// yamux streams a session may have open before a Login succeeds on it; more are reset.
    pub pre_login_streams: usize,
    /// Rejected connections are logged at debug one by one, and at INFO as one summary per
    /// period (when there were any).
    pub reject_summary_interval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            first_msg_timeout: FIRST_MSG_TIMEOUT,
            pending_connections: PENDING_CONNECTIONS,
            pending_per_source: PENDING_PER_SOURCE,
            evict_silent_after: EVICT_SILENT_AFTER,
            evict_after: EVICT_AFTER,
            pre_login_streams: PRE_LOGIN_STREAMS,
            reject_summary_interval: REJECT_SUMMARY_INTERVAL,
        }
    }
}

/// Default for [`Limits::pending_connections`]: logins take milliseconds, so this only binds
/// under a flood; each pending connection costs a task, TLS state and (with tcpMux) a yamux
/// session of at most [`PRE_LOGIN_STREAMS`] small streams.
pub const PENDING_CONNECTIONS: usize = 1024;
/// Default for [`Limits::pending_per_source`]: a quarter of [`PENDING_CONNECTIONS`], room for a
/// whole NATed fleet reconnecting at once (who are refused past it retry with backoff).
pub const PENDING_PER_SOURCE: usize = PENDING_CONNECTIONS / 4;
/// Default for [`Limits::evict_silent_after`]: a client sends its first bytes (TLS hello,
/// yamux, Login) as soon as its connection is up, so they arrive with the handshake.
pub const EVICT_SILENT_AFTER: Duration = Duration::from_millis(250);
/// Default for [`Limits::evict_after`]: logins take milliseconds, TLS over a slow link a
/// second or so.
pub const EVICT_AFTER: Duration = Duration::from_secs(2);
/// Default for [`Limits::reject_summary_interval`].
pub const REJECT_SUMMARY_INTERVAL: Duration = Duration::from_secs(60);
/// Streams a yamux session may have open before a Login succeeds on it (Go frpc needs one).
pub const PRE_LOGIN_STREAMS: usize = 4;
/// What a yamux stream may hold unread before login: a v2 frame (64 KiB) and a ClientHello,
/// with room to spare (Go frpc waits for each answer before it sends more).
pub const PRE_LOGIN_BUFFER: usize = 80 * 1024;

/// What a QUIC connection may hold unread before login, over all its streams.
pub const PRE_LOGIN_QUIC_WINDOW: u32 = (PRE_LOGIN_STREAMS * PRE_LOGIN_BUFFER) as u32;

/// What a KCP conversation may hold out of order before it logs in, in segments (of up to
/// 1326 bytes): frp's 1024 at login, until then the least the `kcp` crate allows. An unknown
/// peer filling its window then costs about 170 KB instead of 1.3 MB.
pub const PRE_LOGIN_KCP_WINDOW: u16 = 128;

/// Why a connection was closed before it logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Went away before its first message (port probes, health checks).
    Closed,
    /// Not TLS, yamux or frp: undecodable bytes, an unexpected first message.
    Garbage,
    /// Nothing (or too little) within the first-message deadline.
    Timeout,
    /// The TLS handshake failed.
    Tls,
    /// Plain TCP while `transport.tls.force` is on.
    Plain,
    /// Its first message was refused: a failed Login, a work connection for no client of
    /// its own, a visitor connection.
    Refused,
    /// Its source address already held [`Limits::pending_per_source`] connections.
    Busy,
    /// Closed to make room while every slot was held (see [`Gate::permit`]).
    Evicted,
}

impl Reject {
    const ALL: [Reject; 8] = [
        Reject::Garbage,
        Reject::Timeout,
        Reject::Closed,
        Reject::Tls,
        Reject::Plain,
        Reject::Refused,
        Reject::Busy,
        Reject::Evicted,
    ];

    /// The metric label and the word in the summary.
    fn label(self) -> &'static str {
        match self {
            Reject::Closed => "closed",
            Reject::Garbage => "garbage",
            Reject::Timeout => "timeout",
            Reject::Tls => "tls",
            Reject::Plain => "plain",
            Reject::Refused => "refused",
            Reject::Busy => "busy",
            Reject::Evicted => "evicted",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Server-wide counts of connections that have not logged in.
#[derive(Debug)]
pub(crate) struct Gate {
    pub(crate) limits: Limits,
    /// One permit per connection not logged in: [`Limits::pending_connections`].
    permits: Arc<Semaphore>,
    /// TCP connections accepted and not yet logged in.
    unauthenticated: AtomicUsize,
    /// Logical connections (yamux streams, or connections without tcpMux) still waiting for
    /// their first message.
    awaiting_first: AtomicUsize,
    /// Rejections since the last summary, by [`Reject::index`].
    window: [AtomicU64; 8],
    /// Connections not logged in, by source address (only addresses with some).
    per_source: Mutex<HashMap<IpAddr, usize>>,
    /// Connections not logged in, oldest first (by admission number), for eviction.
    queue: Mutex<BTreeMap<u64, Queued>>,
    next_seq: AtomicU64,
    /// `frp_rs_server_rejected_connections_total{reason}`.
    rejected: prometheus::IntCounterVec,
}

impl Gate {
    pub(crate) fn new(limits: Limits, rejected: prometheus::IntCounterVec) -> Gate {
        Gate {
            permits: Arc::new(Semaphore::new(limits.pending_connections.max(1))),
            limits,
            unauthenticated: AtomicUsize::new(0),
            awaiting_first: AtomicUsize::new(0),
            window: Default::default(),
            per_source: Mutex::default(),
            queue: Mutex::default(),
            next_seq: AtomicU64::new(0),
            rejected,
        }
    }

    fn count_rejected(&self, r: Reject) {
        self.window[r.index()].fetch_add(1, Ordering::Relaxed);
        self.rejected.with_label_values(&[r.label()]).inc();
    }

    /// The INFO line for the rejections since the last call, if there were any, e.g.
    /// `rejected 1445 connections in the last 60s: 1200 garbage, 245 timeout`.
    pub(crate) fn summary(&self) -> Option<String> {
        let counts: Vec<(Reject, u64)> = Reject::ALL
            .iter()
            .map(|r| (*r, self.window[r.index()].swap(0, Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let total: u64 = counts.iter().map(|(_, n)| n).sum();
        if total == 0 {
            return None;
        }
        let parts: Vec<String> = counts
            .iter()
            .map(|(r, n)| format!("{n} {}", r.label()))
            .collect();
        Some(format!(
            "rejected {total} connections in the last {:?}: {}",
            self.limits.reject_summary_interval,
            parts.join(", ")
        ))
    }

    /// TCP connections accepted and not yet logged in.
    pub(crate) fn unauthenticated(&self) -> usize {
        self.unauthenticated.load(Ordering::Relaxed)
    }

    /// Logical connections waiting for their first message.
    pub(crate) fn awaiting_first(&self) -> usize {
        self.awaiting_first.load(Ordering::Relaxed)
    }

    /// Room for one more connection that has not logged in. While every slot is held, the
    /// oldest connection that has sent nothing for [`Limits::evict_silent_after`], or else the
    /// oldest pending for [`Limits::evict_after`], is closed to make room; until one qualifies,
    /// this waits (and the kernel's backlog holds the newcomers).
    pub(crate) async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        loop {
            match self.permits.clone().try_acquire_owned() {
                Ok(p) => return Some(p),
                Err(tokio::sync::TryAcquireError::Closed) => return None,
                Err(tokio::sync::TryAcquireError::NoPermits) => {}
            }
            // Evicted: its slot comes back as soon as its task has seen the cancellation.
            let retry = self
                .evict(Instant::now())
                .unwrap_or_else(|| Instant::now() + self.limits.evict_after);
            tokio::select! {
                p = self.permits.clone().acquire_owned() => return p.ok(),
                _ = tokio::time::sleep_until(retry) => {}
            }
        }
    }

    /// Closes the connections [`Gate::permit`] may evict now, if any (`None`), or says when to
    /// look again: up to 1/64 of the slots at once among the silent ones, oldest first (one
    /// at a time, a crowd's backlog would cost a trip through the scheduler per accept), else
    /// the oldest pending one.
    fn evict(&self, now: Instant) -> Option<Instant> {
        let (silent_age, age) = (self.limits.evict_silent_after, self.limits.evict_after);
        let batch = (self.limits.pending_connections / 64).max(1);
        let victims: Vec<Queued> = {
            let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            // Those evicted already are on their way out.
            let live = || queue.values().filter(|q| !q.token.is_cancelled());
            let silent = |q: &&Queued| !q.spoke.load(Ordering::Relaxed);
            let oldest = live().next()?;
            let ripe: Vec<Queued> = live()
                .filter(|q| silent(q) && now >= q.since + silent_age)
                .take(batch)
                .cloned()
                .collect();
            if !ripe.is_empty() {
                ripe
            } else if now >= oldest.since + age {
                vec![oldest.clone()]
            } else {
                let stalled = oldest.since + age;
                let next_silent = live().find(silent).map(|q| q.since + silent_age);
                return Some(next_silent.map_or(stalled, |t| t.min(stalled)));
            }
        };
        debug!(
            count = victims.len(),
            silent = !victims.iter().any(|q| q.spoke.load(Ordering::Relaxed)),
            "every slot for connections that have not logged in is held: the oldest are closed"
        );
        for victim in victims {
            if let Some(a) = victim.admission.upgrade() {
                a.reject(Reject::Evicted);
            }
            victim.token.cancel();
        }
        None
    }

    /// A new connection holding `permit`, from `source` (`None`: not counted per address, a
    /// trusted balancer): counted as unauthenticated until it logs in or closes; cancelling
    /// `token` must close it (eviction). `None` when `source` already holds
    /// [`Limits::pending_per_source`] connections: the caller closes it (the permit goes back
    /// at once, and it is counted as [`Reject::Busy`]).
    pub(crate) fn admission(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        source: Option<IpAddr>,
        token: CancellationToken,
    ) -> Option<Arc<Admission>> {
        if let Some(ip) = source {
            let mut per = self.per_source.lock().unwrap_or_else(|p| p.into_inner());
            let n = per.entry(ip).or_default();
            if *n >= self.limits.pending_per_source.max(1) {
                drop(per);
                self.count_rejected(Reject::Busy);
                return None;
            }
            *n += 1;
        }
        self.unauthenticated.fetch_add(1, Ordering::Relaxed);
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let spoke = Arc::new(AtomicBool::new(false));
        let admission = Arc::new(Admission {
            gate: self.clone(),
            spoke: spoke.clone(),
            pending: Mutex::new(Some(Pending {
                _permit: permit,
                source,
                seq,
                session: None,
                quic: None,
                kcp: None,
                reason: None,
            })),
        });
        let queued = Queued {
            since: Instant::now(),
            spoke,
            token,
            admission: Arc::downgrade(&admission),
        };
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(seq, queued);
        Some(admission)
    }

    /// `source` no longer holds a connection that has not logged in.
    fn release(&self, source: Option<IpAddr>, seq: u64) {
        self.unauthenticated.fetch_sub(1, Ordering::Relaxed);
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&seq);
        let Some(ip) = source else { return };
        let mut per = self.per_source.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                per.remove(&ip);
            }
        }
    }

    /// The yamux config of a session that has not logged in (lifted by [`Admission::admit`]).
    pub(crate) fn mux_config(&self, keepalive_secs: i64) -> mux::Config {
        mux::Config {
            restricted: Some(mux::Restriction {
                max_streams: self.limits.pre_login_streams.max(1),
                max_buffered: PRE_LOGIN_BUFFER,
            }),
            quiet_keepalive: true,
            ..mux::config(keepalive_secs)
        }
    }

    /// A logical connection waits for its first message until the guard drops.
    pub(crate) fn awaiting(self: &Arc<Self>) -> AwaitingFirst {
        self.awaiting_first.fetch_add(1, Ordering::Relaxed);
        AwaitingFirst(self.clone())
    }
}

/// Counts one logical connection waiting for its first message.
#[derive(Debug)]
pub(crate) struct AwaitingFirst(Arc<Gate>);

impl Drop for AwaitingFirst {
    fn drop(&mut self) {
        self.0.awaiting_first.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection not logged in, as [`Gate::permit`] sees it when it looks for one to evict.
#[derive(Debug, Clone)]
struct Queued {
    since: Instant,
    /// Whether it has sent anything yet ([`Admission::spoke`]).
    spoke: Arc<AtomicBool>,
    /// Cancelling it closes the connection.
    token: CancellationToken,
    admission: std::sync::Weak<Admission>,
}

/// One TCP connection's standing before login; shared by its logical connections.
#[derive(Debug)]
pub(crate) struct Admission {
    gate: Arc<Gate>,
    /// Set once the connection has sent something.
    spoke: Arc<AtomicBool>,
    /// What it holds until it logs in; `None` once it has.
    pending: Mutex<Option<Pending>>,
}

#[derive(Debug)]
struct Pending {
    _permit: OwnedSemaphorePermit,
    /// Where it came from, as counted against [`Limits::pending_per_source`].
    source: Option<IpAddr>,
    /// Its place in [`Gate::queue`].
    seq: u64,
    /// Its yamux session's restriction (tcpMux), lifted at login.
    session: Option<mux::SessionLimits>,
    /// Its QUIC connection, whose receive window is raised at login.
    quic: Option<quinn::Connection>,
    /// Its KCP conversation, whose receive window is raised at login.
    kcp: Option<KcpWindow>,
    /// The first reason it was found wanting; [`Reject::Closed`] if none when it goes.
    reason: Option<Reject>,
}

impl Admission {
    fn pending(&self) -> std::sync::MutexGuard<'_, Option<Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection has sent something: no longer the first to go when every slot is held.
    pub(crate) fn spoke(&self) {
        self.spoke.store(true, Ordering::Relaxed);
    }

    /// The connection's yamux session, to lift its restriction at login.
    pub(crate) fn set_session(&self, limits: mux::SessionLimits) {
        match self.pending().as_mut() {
            Some(p) => p.session = Some(limits),
            None => limits.lift(),
        }
    }

    /// The connection is QUIC: its receive window stays [`PRE_LOGIN_QUIC_WINDOW`] until login.
    pub(crate) fn set_quic(&self, conn: quinn::Connection) {
        match self.pending().as_mut() {
            Some(p) => p.quic = Some(conn),
            None => conn.set_receive_window(quic::CONN_WINDOW.into()),
        }
    }

    /// The connection is KCP: its receive window stays [`PRE_LOGIN_KCP_WINDOW`] until login.
    pub(crate) fn set_kcp(&self, w: KcpWindow) {
        match self.pending().as_mut() {
            Some(p) => p.kcp = Some(w),
            None => w.open(KcpConfig::server().rcv_wnd),
        }
    }

    /// A Login succeeded on this connection: it gives back its permit, its yamux session's
    /// restriction is lifted (or its QUIC window raised), and it no longer counts as
    /// unauthenticated.
    pub(crate) fn admit(&self) {
        let Some(p) = self.pending().take() else {
            return;
        };
        self.gate.release(p.source, p.seq);
        if let Some(s) = p.session {
            s.lift();
        }
        if let Some(c) = p.quic {
            c.set_receive_window(quic::CONN_WINDOW.into());
        }
        if let Some(w) = p.kcp {
            w.open(KcpConfig::server().rcv_wnd);
        }
    }

    pub(crate) fn is_admitted(&self) -> bool {
        self.pending().is_none()
    }

    /// Notes why the connection (or one of its streams) is being closed; the first reason
    /// counts when the connection goes. False once the connection has logged in (then it is
    /// no rejection).
    pub(crate) fn reject(&self, r: Reject) -> bool {
        match self.pending().as_mut() {
            Some(p) => {
                p.reason.get_or_insert(r);
                true
            }
            None => false,
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(p) = self.pending().take() {
            self.gate.release(p.source, p.seq);
            self.gate.count_rejected(p.reason.unwrap_or(Reject::Closed));
        }
    }
}

/// Logs the rejected connections of each period as one INFO line (one line per connection
/// would let anyone flood the log).
pub(crate) async fn summarise_rejections(gate: Arc<Gate>, shutdown: CancellationToken) {
    let period = gate.limits.reject_summary_interval;
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Some(line) = gate.summary() {
            info!("{line}");
        }
    }
    if let Some(line) = gate.summary() {
        info!("{line}");
    }
}

/// Logs why a connection (or stream) is closed and notes it in its admission: at debug while
/// the connection has not logged in (the summary counts it), at info once it has.
pub(crate) fn closing(admission: &Admission, reason: Reject, why: std::fmt::Arguments<'_>) {
    if admission.reject(reason) {
        debug!("closing connection: {why}");
    } else {
        info!("closing connection: {why}");
    }
}

/// Why a failed TLS sniff or handshake closes a connection.
pub(crate) fn tls_reject(e: &std::io::Error) -> Reject {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::UnexpectedEof | K::ConnectionReset | K::BrokenPipe | K::ConnectionAborted => {
            Reject::Closed
        }
        K::PermissionDenied => Reject::Plain,
        _ => Reject::Tls,
    }
}

#[cfg(test)]
impl Gate {
    /// An admission with a permit taken at once (tests of other modules).
    pub(crate) fn test_admission() -> Arc<Admission> {
        let rejected = prometheus::IntCounterVec::new(prometheus::Opts::new("t", "t"), &["reason"])
            .expect("metric");
        let gate = Arc::new(Gate::new(Limits::default(), rejected));
        let permit = gate
            .permits
            .clone()
            .try_acquire_owned()
            .expect("a fresh gate has permits");
        gate.admission(permit, None, CancellationToken::new())
            .expect("not counted per source")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_by_reason_once() {
        let rejected = prometheus::IntCounterVec::new(prometheus::Opts::new("t", "t"), &["reason"])
            .expect("metric");
        let gate = Gate::new(Limits::default(), rejected.clone());
        assert_eq!(gate.summary(), None);
        for _ in 0..3 {
            gate.count_rejected(Reject::Garbage);
        }
        gate.count_rejected(Reject::Timeout);
        assert_eq!(
            gate.summary().as_deref(),
            Some("rejected 4 connections in the last 60s: 3 garbage, 1 timeout")
        );
        assert_eq!(gate.summary(), None, "each rejection is summed up once");
        assert_eq!(rejected.with_label_values(&["garbage"]).get(), 3);
    }

    /// When every slot is held, the oldest connection that has sent nothing goes first (not
    /// the older one that spoke), then, with no silent one left, the oldest once it has been
    /// pending for `evict_after`; the evicted are counted as such when they close.
    #[tokio::test]
    async fn eviction_takes_the_oldest_silent_connection_first() {
        let rejected = prometheus::IntCounterVec::new(prometheus::Opts::new("t", "t"), &["reason"])
            .expect("metric");
        let limits = Limits {
            pending_connections: 3,
            ..Limits::default()
        };
        let gate = Arc::new(Gate::new(limits, rejected.clone()));
        let admit = || {
            let permit = gate.permits.clone().try_acquire_owned().expect("permit");
            let token = CancellationToken::new();
            let a = gate
                .admission(permit, None, token.clone())
                .expect("admitted");
            (a, token)
        };
        let t0 = Instant::now();
        let (talker, talker_token) = admit();
        talker.spoke();
        let (silent1, token1) = admit();
        let (silent2, token2) = admit();
        assert!(gate.evict(t0).is_some(), "nobody is old enough yet");
        let later = t0 + EVICT_SILENT_AFTER + Duration::from_millis(50);
        assert_eq!(gate.evict(later), None);
        assert!(token1.is_cancelled() && !talker_token.is_cancelled() && !token2.is_cancelled());
        drop(silent1);
        assert_eq!(gate.evict(later), None);
        assert!(token2.is_cancelled() && !talker_token.is_cancelled());
        drop(silent2);
        assert!(gate.evict(later).is_some(), "the one that spoke is young");
        assert_eq!(
            gate.evict(t0 + EVICT_AFTER + Duration::from_millis(50)),
            None
        );
        assert!(talker_token.is_cancelled());
        drop(talker);
        assert_eq!(rejected.with_label_values(&["evicted"]).get(), 3);
        assert!(gate.queue.lock().expect("lock").is_empty());
    }

    #[test]
    fn one_source_holds_at_most_its_share() {
        let rejected = prometheus::IntCounterVec::new(prometheus::Opts::new("t", "t"), &["reason"])
            .expect("metric");
        let limits = Limits {
            pending_connections: 8,
            pending_per_source: 2,
            ..Limits::default()
        };
        let gate = Arc::new(Gate::new(limits, rejected.clone()));
        let permit = || gate.permits.clone().try_acquire_owned().expect("permit");
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let a1 = gate
            .admission(permit(), Some(a), CancellationToken::new())
            .expect("first from a");
        let a2 = gate
            .admission(permit(), Some(a), CancellationToken::new())
            .expect("second from a");
        assert!(
            gate.admission(permit(), Some(a), CancellationToken::new())
                .is_none(),
            "a's share is full"
        );
        assert_eq!(rejected.with_label_values(&["busy"]).get(), 1);
        assert_eq!(
            gate.permits.available_permits(),
            6,
            "the refused one's permit is back"
        );
        let b1 = gate
            .admission(permit(), Some(b), CancellationToken::new())
            .expect("b has its own share");
        // Unlimited when not counted per source (a trusted balancer).
        let lb: Vec<_> = (0..3)
            .map(|_| {
                gate.admission(permit(), None, CancellationToken::new())
                    .expect("balancer")
            })
            .collect();
        // Logging in and closing both give the slot back.
        a1.admit();
        let a3 = gate
            .admission(permit(), Some(a), CancellationToken::new())
            .expect("a logged in one");
        drop(a2);
        let a4 = gate
            .admission(permit(), Some(a), CancellationToken::new())
            .expect("a closed one");
        assert!(gate
            .admission(permit(), Some(a), CancellationToken::new())
            .is_none());
        drop((a1, a3, a4, b1, lb));
        assert!(
            gate.per_source.lock().expect("lock").is_empty(),
            "nothing kept per address"
        );
        assert_eq!(gate.unauthenticated(), 0);
    }
}
