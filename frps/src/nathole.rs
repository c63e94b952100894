//! The NAT hole controller (frp `pkg/nathole/controller.go`, `analysis.go`; frp-protocol.md
//! §10.2): xtcp proxies register their key and allowed users; a visitor's NatHoleVisitor
//! (pre-check, then the real request) gets a session id that goes to the proxy's frpc on a
//! work connection ([`proxy::xtcp`](crate::proxy)); that frpc answers with NatHoleClient on
//! its control; frps then classifies both NATs, picks punching behaviours as frp does and
//! sends each side its NatHoleResp (the sender's one second late). NatHoleReport scores the
//! behaviour that worked.
//!
//! Narrow interface: [`NatHoleController::listen`] (the proxy), [`NatHoleController::handle_visitor`],
//! [`NatHoleController::handle_client`] and [`NatHoleController::handle_report`] (the
//! controls). Every pending session is bounded ([`MAX_SESSIONS`]; per proxy [`SID_QUEUE`]
//! waiting and [`MAX_PROXY_SESSIONS`] in all)
//! and removed when its wait ends, times out or the visitor's control closes.

use crate::control::Queued;
use common::msg::{
    Message, NatHoleClient, NatHoleDetectBehavior, NatHoleReport, NatHoleResp, NatHoleVisitor,
    PortsRange,
};
use common::nathole::{classify_strings, NatFeature};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// frp `NatHoleTimeout`: how long a visitor's session waits for the proxy's NatHoleClient.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Sessions waiting or answered (kept for their report) at once; more visitors are refused.
pub(crate) const MAX_SESSIONS: usize = 1024;
/// Sessions waiting for one proxy's frpc (its NatHoleClient); more visitors of it are refused.
pub(crate) const SID_QUEUE: usize = 16;
/// Sessions of one proxy at once, waiting or answered (an answered one is kept ~40 s for its
/// report): whoever holds one proxy's key can take at most this share of [`MAX_SESSIONS`],
/// so xtcp to every other proxy keeps working (frp has no limit).
pub(crate) const MAX_PROXY_SESSIONS: usize = 64;
/// The sender role's answer goes this much later, so the receiver has punched first.
const SENDER_DELAY: Duration = Duration::from_secs(1);
/// How long an answered session is kept for NatHoleReport, beyond the punch's read timeout
/// (frp: read timeout + 30 s).
const REPORT_GRACE: Duration = Duration::from_secs(30);
/// Analysis records kept (one per pair of NAT kinds and addresses); the oldest go first.
const MAX_RECORDS: usize = 10_000;
/// Candidate and assisted addresses passed on to the other side, each (frp passes them all):
/// the other frpc sends punch datagrams to each, so a peer listing hundreds of addresses
/// would make it spray third parties. frpc finds 2 from its STUN server, and a few of its own.
const MAX_PASSED_ADDRS: usize = 16;
/// How long writing a NatHoleResp into a control's queue may wait.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Refused xtcp visitors are logged at most once per this period.
static REFUSED_LOG: common::log::Throttle = common::log::Throttle::new(Duration::from_secs(10));

/// A control's send queue.
pub(crate) type Transporter = mpsc::Sender<Queued>;

/// Why a visitor's request is refused (frp's texts where it has the case).
#[derive(Debug, thiserror::Error)]
pub(crate) enum NatHoleError {
    #[error("xtcp server for [{0}] doesn't exist")]
    NoServer(String),
    #[error("xtcp visitor user [{1}] not allowed for [{0}]")]
    NotAllowed(String, String),
    #[error("xtcp connection of [{0}] auth failed")]
    AuthFailed(String),
    #[error("xtcp connection of [{0}] timestamp is more than {w}s away from the server's clock", w = crate::visitor::TIME_WINDOW_SECS)]
    Stale(String),
    #[error("xtcp connection of [{0}] refused: too many hole punches in progress")]
    Busy(String),
}

impl NatHoleError {
    /// A short label for metrics (as the visitor manager's).
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            NatHoleError::NoServer(_) => "unknown_proxy",
            NatHoleError::NotAllowed(..) => "user_not_allowed",
            NatHoleError::AuthFailed(_) => "auth",
            NatHoleError::Stale(_) => "stale_timestamp",
            NatHoleError::Busy(_) => "busy",
        }
    }
}

struct ClientCfg {
    id: u64,
    sk: String,
    allow_users: Vec<String>,
    sid_tx: mpsc::Sender<String>,
}

/// What the proxy side's control sends back for a session.
type ClientHello = (NatHoleClient, Transporter);

struct Session {
    /// The proxy's wire name: only its owner's control may answer or report for the session.
    proxy: String,
    /// Taken by the first NatHoleClient for this sid.
    client: Option<oneshot::Sender<ClientHello>>,
    /// (analysis key, mode, index) once the behaviours are picked (for the report).
    picked: Option<(String, usize, usize)>,
}

#[derive(Default)]
struct State {
    clients: HashMap<String, ClientCfg>,
    sessions: HashMap<String, Session>,
}

/// frps's NAT hole controller.
#[derive(Default)]
pub(crate) struct NatHoleController {
    state: Mutex<State>,
    analyzer: Mutex<Analyzer>,
    next_id: AtomicU64,
    /// `natholeAnalysisDataReserveHours`.
    reserve: Duration,
}

impl std::fmt::Debug for NatHoleController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatHoleController").finish_non_exhaustive()
    }
}

/// An xtcp proxy's registration; removes it on drop.
pub(crate) struct Registration {
    ctl: Arc<NatHoleController>,
    name: String,
    id: u64,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("nathole::Registration")
            .field("name", &self.name)
            .finish()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut st = self.ctl.lock();
        if st.clients.get(&self.name).is_some_and(|c| c.id == self.id) {
            st.clients.remove(&self.name);
        }
    }
}

/// Removes its session when the visitor's handling ends, however it ends.
struct SessionGuard<'a> {
    ctl: &'a NatHoleController,
    sid: String,
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        self.ctl.lock().sessions.remove(&self.sid);
    }
}

fn resp(transaction_id: &str, error: String) -> NatHoleResp {
    NatHoleResp {
        transaction_id: transaction_id.into(),
        error,
        ..Default::default()
    }
}

async fn send(tx: &Transporter, m: NatHoleResp) {
    let _ = tokio::time::timeout(SEND_TIMEOUT, tx.send(Box::new(Message::NatHoleResp(m)))).await;
}

impl NatHoleController {
    pub(crate) fn new(reserve_hours: i64) -> Self {
        NatHoleController {
            reserve: Duration::from_secs(reserve_hours.max(0) as u64 * 3600),
            ..Default::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an xtcp proxy (frp `ListenClient`); `None` when the name is taken. Session
    /// ids for it arrive on the receiver.
    pub(crate) fn listen(
        self: &Arc<Self>,
        name: &str,
        sk: &str,
        allow_users: Vec<String>,
    ) -> Option<(Registration, mpsc::Receiver<String>)> {
        let (sid_tx, rx) = mpsc::channel(SID_QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        if st.clients.contains_key(name) {
            return None;
        }
        st.clients.insert(
            name.to_owned(),
            ClientCfg {
                id,
                sk: sk.to_owned(),
                allow_users,
                sid_tx,
            },
        );
        Some((
            Registration {
                ctl: self.clone(),
                name: name.to_owned(),
                id,
            },
            rx,
        ))
    }

    /// Sessions pending or kept for their report.
    pub(crate) fn sessions(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Registered xtcp proxies.
    pub(crate) fn proxies(&self) -> usize {
        self.lock().clients.len()
    }

    /// The checks of a request and, for a real one, its new session (under one lock).
    fn open(
        &self,
        m: &NatHoleVisitor,
        user: &str,
        now: i64,
    ) -> Result<Option<(String, oneshot::Receiver<ClientHello>)>, NatHoleError> {
        let name = &m.proxy_name;
        let mut st = self.lock();
        let c = st
            .clients
            .get(name)
            .ok_or_else(|| NatHoleError::NoServer(name.clone()))?;
        // frp checks the users at pre-check only; a visitor skipping it would pass, so they
        // are checked on both requests here.
        if !c.allow_users.iter().any(|u| u == user || u == "*") {
            return Err(NatHoleError::NotAllowed(name.clone(), user.into()));
        }
        if m.pre_check {
            return Ok(None);
        }
        if !common::auth::verify_auth_key(&c.sk, m.timestamp, &m.sign_key) {
            return Err(NatHoleError::AuthFailed(name.clone()));
        }
        if m.timestamp.abs_diff(now) > crate::visitor::TIME_WINDOW_SECS as u64 {
            return Err(NatHoleError::Stale(name.clone()));
        }
        let (mut waiting, mut of_proxy) = (0, 0);
        for s in st.sessions.values().filter(|s| s.proxy == *name) {
            of_proxy += 1;
            waiting += usize::from(s.client.is_some());
        }
        if st.sessions.len() >= MAX_SESSIONS
            || waiting >= SID_QUEUE
            || of_proxy >= MAX_PROXY_SESSIONS
        {
            return Err(NatHoleError::Busy(name.clone()));
        }
        let sid = common::nathole::new_id();
        c.sid_tx
            .try_send(sid.clone())
            .map_err(|_| NatHoleError::Busy(name.clone()))?;
        let (tx, rx) = oneshot::channel();
        st.sessions.insert(
            sid.clone(),
            Session {
                proxy: name.clone(),
                client: Some(tx),
                picked: None,
            },
        );
        Ok(Some((sid, rx)))
    }

    /// A visitor's NatHoleVisitor (frp `HandleVisitor`): answers a pre-check at once; for a
    /// real request, waits for the proxy side's NatHoleClient (up to [`CLIENT_TIMEOUT`], or
    /// until `token`, the visitor control's, is cancelled), then answers both sides. Returns
    /// once the session is over (its report window included), with the refusal's metric
    /// label if the request was refused.
    pub(crate) async fn handle_visitor(
        &self,
        m: NatHoleVisitor,
        visitor: Transporter,
        user: &str,
        token: CancellationToken,
    ) -> Option<&'static str> {
        let tid = m.transaction_id.clone();
        let (sid, rx) = match self.open(&m, user, common::auth::unix_now()) {
            Ok(Some(s)) => s,
            Ok(None) => {
                send(&visitor, resp(&tid, String::new())).await;
                return None;
            }
            Err(e) => {
                let shown = common::log::printable(&e.to_string(), 200);
                debug!(error = %shown, "xtcp visitor refused");
                if let Some(held) = REFUSED_LOG.ready() {
                    warn!(error = %shown, similar_held_back = held, "xtcp visitor refused");
                }
                send(&visitor, resp(&tid, e.to_string())).await;
                return Some(e.reason());
            }
        };
        self.run_session(&m, sid, rx, visitor, token).await;
        None
    }

    /// Refuses a request that finds its control's requests all in flight: answered only if
    /// the control's queue has room (the client is not reading it otherwise), logged at most
    /// once per period.
    pub(crate) fn refuse_busy(&self, m: &NatHoleVisitor, visitor: &Transporter) {
        let e = NatHoleError::Busy(m.proxy_name.clone());
        let shown = common::log::printable(&e.to_string(), 200);
        if let Some(held) = REFUSED_LOG.ready() {
            warn!(error = %shown, similar_held_back = held, "xtcp visitor refused: too many requests of this client in flight");
        }
        let r = resp(&m.transaction_id, e.to_string());
        let _ = visitor.try_send(Box::new(Message::NatHoleResp(r)));
    }

    /// A real request's session, from its wait for the proxy side to its report window.
    async fn run_session(
        &self,
        m: &NatHoleVisitor,
        sid: String,
        rx: oneshot::Receiver<ClientHello>,
        visitor: Transporter,
        token: CancellationToken,
    ) {
        let tid = m.transaction_id.clone();
        let _guard = SessionGuard {
            ctl: self,
            sid: sid.clone(),
        };
        debug!(%sid, proxy = %m.proxy_name, "xtcp visitor session opened");
        let hello = tokio::select! {
            _ = token.cancelled() => {
                debug!(%sid, "visitor control closed before the proxy side answered");
                return;
            }
            r = tokio::time::timeout(CLIENT_TIMEOUT, rx) => r,
        };
        let Ok(Ok((cm, client))) = hello else {
            info!(%sid, proxy = %m.proxy_name, "no NatHoleClient from the proxy side within {CLIENT_TIMEOUT:?}");
            return;
        };
        let (v_resp, c_resp) = match self.analysis(&sid, m, &cm) {
            Ok(r) => r,
            Err(e) => {
                debug!(%sid, error = %e, "xtcp analysis error");
                (resp(&tid, e.clone()), resp(&cm.transaction_id, e))
            }
        };
        let read_timeout = c_resp.detect_behavior.read_timeout.max(0) as u64;
        let deliver = |tx: Transporter, r: NatHoleResp| async move {
            if r.detect_behavior.role == "sender" {
                tokio::time::sleep(SENDER_DELAY).await;
            }
            send(&tx, r).await;
        };
        tokio::select! {
            _ = token.cancelled() => return,
            _ = futures::future::join(deliver(visitor, v_resp), deliver(client, c_resp)) => {}
        }
        // Kept for NatHoleReport while both sides punch.
        tokio::select! {
            _ = token.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(read_timeout) + REPORT_GRACE) => {}
        }
    }

    /// The proxy side's NatHoleClient (frp `HandleClient`). `owns` tells whether the sending
    /// control has the named proxy: frp takes a NatHoleClient for any sid from any client;
    /// here only the proxy's owner answers its sessions. Anything else is dropped.
    pub(crate) fn handle_client(
        &self,
        m: NatHoleClient,
        client: Transporter,
        owns: impl Fn(&str) -> bool,
    ) {
        let tx = if owns(&m.proxy_name) {
            self.lock()
                .sessions
                .get_mut(&m.sid)
                .filter(|s| s.proxy == m.proxy_name)
                .and_then(|s| s.client.take())
        } else {
            None
        };
        match tx {
            Some(tx) => {
                let _ = tx.send((m, client));
            }
            None => {
                debug!(sid = %common::log::printable(&m.sid, 64), proxy = %common::log::printable(&m.proxy_name, 64), "NatHoleClient for no session of this client's proxies dropped")
            }
        }
    }

    /// NatHoleReport (frp `HandleReport`): a success scores the behaviour used. Only a client
    /// with the session's proxy (`owns`) is heard (frp hears anyone).
    pub(crate) fn handle_report(&self, m: &NatHoleReport, owns: impl Fn(&str) -> bool) {
        let picked = self
            .lock()
            .sessions
            .get(&m.sid)
            .filter(|s| owns(&s.proxy))
            .and_then(|s| s.picked.clone());
        let sid = common::log::printable(&m.sid, 64);
        let Some((key, mode, index)) = picked else {
            debug!(%sid, success = m.success, "hole punch report for no session of this client");
            return;
        };
        if m.success {
            self.analyzer().report_success(&key, mode, index);
        }
        info!(%sid, success = m.success, mode, index, "hole punch report");
    }

    fn analyzer(&self) -> MutexGuard<'_, Analyzer> {
        self.analyzer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// frp `analysis`: both NATs classified, behaviours picked, both answers built.
    fn analysis(
        &self,
        sid: &str,
        vm: &NatHoleVisitor,
        cm: &NatHoleClient,
    ) -> Result<(NatHoleResp, NatHoleResp), String> {
        let c = classify_strings(&cm.mapped_addrs, &cm.assisted_addrs)
            .map_err(|e| format!("classify client nat feature error: {e}"))?;
        let v = classify_strings(&vm.mapped_addrs, &vm.assisted_addrs)
            .map_err(|e| format!("classify visitor nat feature error: {e}"))?;
        let key = format!(
            "{}|{}|{}|{}|{}|{}|{}|{}",
            first_ip(&vm.mapped_addrs),
            v.nat_type,
            v.behavior,
            v.regular_ports_change,
            first_ip(&cm.mapped_addrs),
            c.nat_type,
            c.behavior,
            c.regular_ports_change
        );
        let (mode, index, cb, vb) = self.analyzer().recommend(&key, &c, &v, self.reserve);
        if let Some(s) = self.lock().sessions.get_mut(sid) {
            s.picked = Some((key, mode, index));
        }
        let mut timeout_ms = cb.send_delay_ms.max(vb.send_delay_ms) + 5000;
        if cb.listen_random_ports > 0 || vb.listen_random_ports > 0 {
            timeout_ms += 30000;
        }
        let build = |tid: &str, to: (&[String], &[String]), b: &Behavior, diff: u32| {
            let mut candidates = to.0.to_vec();
            candidates.dedup();
            candidates.truncate(MAX_PASSED_ADDRS);
            let mut assisted = to.1.to_vec();
            assisted.dedup();
            assisted.truncate(MAX_PASSED_ADDRS);
            NatHoleResp {
                transaction_id: tid.into(),
                sid: sid.into(),
                protocol: vm.protocol.clone(),
                candidate_addrs: candidates,
                assisted_addrs: assisted,
                detect_behavior: NatHoleDetectBehavior {
                    role: b.role.into(),
                    mode: mode as i64,
                    ttl: b.ttl,
                    send_delay_ms: b.send_delay_ms,
                    read_timeout: timeout_ms - b.send_delay_ms,
                    candidate_ports: range_ports(to.0, i64::from(diff), b.ports_range_number),
                    send_random_ports: b.ports_random_number,
                    listen_random_ports: b.listen_random_ports,
                },
                error: String::new(),
            }
        };
        let v_resp = build(
            &vm.transaction_id,
            (&cm.mapped_addrs, &cm.assisted_addrs),
            &vb,
            c.ports_difference,
        );
        let c_resp = build(
            &cm.transaction_id,
            (&vm.mapped_addrs, &vm.assisted_addrs),
            &cb,
            v.ports_difference,
        );
        debug!(%sid, visitor = ?v, client = ?c, mode, index, "xtcp behaviours picked");
        Ok((v_resp, c_resp))
    }
}

fn first_ip(addrs: &[String]) -> String {
    addrs
        .first()
        .and_then(|a| a.rsplit_once(':'))
        .map(|(ip, _)| ip.to_owned())
        .unwrap_or_default()
}

/// frp `getRangePorts`: ports around the last candidate's.
fn range_ports(addrs: &[String], difference: i64, max_number: i64) -> Vec<PortsRange> {
    if max_number <= 0 {
        return Vec::new();
    }
    let Some(port) = addrs
        .last()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .map(|a| i64::from(a.port()))
    else {
        return Vec::new();
    };
    vec![PortsRange {
        from: (port - difference - 5).max(port - max_number).max(1),
        to: (port + difference + 5).min(port + max_number).min(65535),
    }]
}

/// frp `RecommandBehavior`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Behavior {
    pub(crate) role: &'static str,
    pub(crate) ttl: i64,
    pub(crate) send_delay_ms: i64,
    pub(crate) ports_range_number: i64,
    pub(crate) ports_random_number: i64,
    pub(crate) listen_random_ports: i64,
}

const fn sender(send_delay_ms: i64, ports_range_number: i64, ports_random_number: i64) -> Behavior {
    Behavior {
        role: "sender",
        ttl: 0,
        send_delay_ms,
        ports_range_number,
        ports_random_number,
        listen_random_ports: 0,
    }
}

const fn receiver(ttl: i64, ports_range_number: i64, listen_random_ports: i64) -> Behavior {
    Behavior {
        role: "receiver",
        ttl,
        send_delay_ms: 0,
        ports_range_number,
        ports_random_number: 0,
        listen_random_ports,
    }
}

/// frp's behaviour tables, (client, visitor) per index, by mode.
const MODE0: &[(Behavior, Behavior)] = &[
    (sender(0, 0, 0), receiver(7, 0, 0)),
    (receiver(7, 0, 0), sender(0, 0, 0)),
    (sender(0, 0, 0), receiver(4, 0, 0)),
    (receiver(4, 0, 0), sender(0, 0, 0)),
    (sender(0, 0, 0), receiver(0, 0, 0)),
    (receiver(0, 0, 0), sender(0, 0, 0)),
    (sender(5000, 0, 0), receiver(0, 0, 0)),
    (sender(10000, 0, 0), receiver(0, 0, 0)),
    (receiver(0, 0, 0), sender(5000, 0, 0)),
    (receiver(0, 0, 0), sender(10000, 0, 0)),
];
const MODE1: &[(Behavior, Behavior)] = &[
    (sender(0, 0, 0), receiver(7, 10, 0)),
    (sender(2000, 0, 0), receiver(7, 10, 0)),
    (sender(0, 0, 0), receiver(4, 10, 0)),
    (sender(2000, 0, 0), receiver(4, 10, 0)),
    (sender(0, 0, 0), receiver(0, 10, 0)),
    (sender(2000, 0, 0), receiver(0, 10, 0)),
];
const MODE2: &[(Behavior, Behavior)] = &[
    (sender(3000, 0, 1000), receiver(7, 0, 256)),
    (sender(3000, 0, 1000), receiver(4, 0, 256)),
    (sender(3000, 0, 1000), receiver(0, 0, 256)),
];
const MODE3: &[(Behavior, Behavior)] = &[
    (sender(0, 10, 0), receiver(7, 10, 0)),
    (sender(0, 10, 0), receiver(4, 10, 0)),
    (sender(0, 10, 0), receiver(0, 10, 0)),
    (receiver(7, 10, 0), sender(0, 10, 0)),
    (receiver(4, 10, 0), sender(0, 10, 0)),
    (receiver(0, 10, 0), sender(0, 10, 0)),
];
const MODE4: &[(Behavior, Behavior)] = &[
    (sender(3000, 0, 1000), receiver(7, 2, 256)),
    (sender(3000, 0, 1000), receiver(4, 2, 256)),
    (sender(3000, 0, 1000), receiver(0, 2, 256)),
];

fn behaviors(mode: usize) -> &'static [(Behavior, Behavior)] {
    match mode {
        1 => MODE1,
        2 => MODE2,
        3 => MODE3,
        4 => MODE4,
        _ => MODE0,
    }
}

#[derive(Debug, Clone, Copy)]
struct Score {
    mode: usize,
    index: usize,
    score: i64,
}

fn scores(mode: usize, sender_score: i64, receiver_score: i64) -> impl Iterator<Item = Score> {
    behaviors(mode)
        .iter()
        .enumerate()
        .map(move |(index, (a, _))| Score {
            mode,
            index,
            score: if a.role == "sender" {
                sender_score
            } else {
                receiver_score
            },
        })
}

struct Records {
    scores: Vec<Score>,
    last_update: Instant,
}

impl Records {
    /// frp `newMakeHoleRecords`.
    fn new(c: &NatFeature, v: &NatFeature) -> Self {
        let easy = [c, v].iter().filter(|f| f.is_easy()).count();
        let hard = 2 - easy;
        let regular = [c, v]
            .iter()
            .filter(|f| !f.is_easy() && f.regular_ports_change)
            .count();
        let mut s: Vec<Score> = Vec::new();
        let mode0 = |s: &mut Vec<Score>| {
            if c.public_network {
                s.extend(scores(0, 0, 1));
            } else if v.public_network {
                s.extend(scores(0, 1, 0));
            } else {
                s.extend(scores(0, 0, 0));
            }
        };
        match (easy, hard, regular) {
            (2, _, _) => mode0(&mut s),
            (_, 1, 1) => {
                s.extend(scores(1, 0, 0));
                s.extend(scores(2, 0, 0));
                mode0(&mut s);
            }
            (_, 1, 0) => {
                s.extend(scores(2, 0, 0));
                s.extend(scores(1, 0, 0));
                mode0(&mut s);
            }
            (_, 2, 2) => {
                s.extend(scores(3, 0, 0));
                s.extend(scores(4, 0, 0));
            }
            (_, 2, 1) => s.extend(scores(4, 0, 0)),
            _ => {
                s.extend(scores(0, 1, 1));
                s.extend(scores(1, 1, 1));
                s.extend(scores(3, 1, 1));
            }
        }
        Records {
            scores: s,
            last_update: Instant::now(),
        }
    }

    /// frp `recommand`: the first best score, which then loses a point.
    fn recommend(&mut self) -> (usize, usize) {
        self.last_update = Instant::now();
        let mut best: Option<&mut Score> = None;
        for s in &mut self.scores {
            if best.as_ref().is_none_or(|b| s.score > b.score) {
                best = Some(s);
            }
        }
        match best {
            Some(b) => {
                b.score -= 1;
                (b.mode, b.index)
            }
            None => (0, 0),
        }
    }

    fn report_success(&mut self, mode: usize, index: usize) {
        self.last_update = Instant::now();
        if let Some(s) = self
            .scores
            .iter_mut()
            .find(|s| s.mode == mode && s.index == index)
        {
            s.score = (s.score + 2).min(10);
        }
    }
}

/// frp `Analyzer`: what worked before for a pair of NATs.
#[derive(Default)]
struct Analyzer {
    records: HashMap<String, Records>,
    last_clean: Option<Instant>,
}

impl Analyzer {
    /// frp `GetRecommandBehaviors`: (mode, index, client's behaviour, visitor's).
    fn recommend(
        &mut self,
        key: &str,
        c: &NatFeature,
        v: &NatFeature,
        reserve: Duration,
    ) -> (usize, usize, Behavior, Behavior) {
        self.clean(reserve);
        if !self.records.contains_key(key) && self.records.len() >= MAX_RECORDS {
            let oldest = self
                .records
                .iter()
                .min_by_key(|(_, r)| r.last_update)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.records.remove(&k);
            }
        }
        let records = self
            .records
            .entry(key.to_owned())
            .or_insert_with(|| Records::new(c, v));
        let (mode, index) = records.recommend();
        let (mut cb, mut vb) = behaviors(mode).get(index).copied().unwrap_or_default();
        let swap = match mode {
            // The hard NAT always sends.
            1 => c.is_easy(),
            // The hard NAT always receives.
            2 => !c.is_easy(),
            // Regular port changes send.
            4 => !c.regular_ports_change,
            _ => false,
        };
        if swap {
            std::mem::swap(&mut cb, &mut vb);
        }
        (mode, index, cb, vb)
    }

    fn report_success(&mut self, key: &str, mode: usize, index: usize) {
        if let Some(r) = self.records.get_mut(key) {
            r.report_success(mode, index);
        }
    }

    /// frp's hourly clean: records unused for `reserve` go.
    fn clean(&mut self, reserve: Duration) {
        let now = Instant::now();
        if self
            .last_clean
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(3600))
        {
            return;
        }
        self.last_clean = Some(now);
        self.records
            .retain(|_, r| now.duration_since(r.last_update) <= reserve);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use common::auth::{auth_key, unix_now};

    fn feature(addrs: &[&str]) -> NatFeature {
        let a: Vec<String> = addrs.iter().map(|s| s.to_string()).collect();
        classify_strings(&a, &[]).unwrap()
    }

    /// Two easy NATs: mode 0, index 0 first (client sends, visitor receives with TTL 7), then
    /// the next index once that one lost its point, and a reported success wins it back.
    #[test]
    fn picks_behaviours_as_frp() {
        let easy = feature(&["1.2.3.4:1000", "1.2.3.4:1000"]);
        let mut a = Analyzer::default();
        let r = a.recommend("k", &easy, &easy, Duration::from_secs(3600));
        assert_eq!((r.0, r.1), (0, 0));
        assert_eq!((r.2.role, r.3.role, r.3.ttl), ("sender", "receiver", 7));
        let r = a.recommend("k", &easy, &easy, Duration::from_secs(3600));
        assert_eq!((r.0, r.1), (0, 1));
        a.report_success("k", 0, 0);
        let r = a.recommend("k", &easy, &easy, Duration::from_secs(3600));
        assert_eq!((r.0, r.1), (0, 0));
        // A hard NAT with regular port changes and an easy one: mode 1, the hard one sends.
        let hard = feature(&["1.2.3.4:1000", "1.2.3.4:1003"]);
        let r = a.recommend("h", &easy, &hard, Duration::from_secs(3600));
        assert_eq!(r.0, 1);
        assert_eq!((r.2.role, r.3.role), ("receiver", "sender"));
        assert_eq!(r.2.ports_range_number, 10);
    }

    /// natholeAnalysisDataReserveHours: records unused for longer are dropped, so what was
    /// learnt (here: index 0 lost its point) starts over.
    #[tokio::test(start_paused = true)]
    async fn analysis_records_expire_after_the_reserve() {
        let easy = feature(&["1.2.3.4:1000", "1.2.3.4:1000"]);
        let hour = Duration::from_secs(3600);
        let mut a = Analyzer::default();
        assert_eq!(a.recommend("k", &easy, &easy, hour).1, 0);
        assert_eq!(
            a.recommend("k", &easy, &easy, hour).1,
            1,
            "kept within the reserve"
        );
        a.last_clean = None;
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            a.recommend("k", &easy, &easy, Duration::ZERO).1,
            0,
            "dropped after it"
        );
        assert_eq!(
            NatHoleController::new(24).reserve,
            Duration::from_secs(24 * 3600)
        );
    }

    #[test]
    fn range_ports_as_frp() {
        let a = vec!["1.2.3.4:1000".to_string()];
        assert_eq!(
            range_ports(&a, 3, 10),
            vec![PortsRange {
                from: 992,
                to: 1008
            }]
        );
        assert!(range_ports(&a, 3, 0).is_empty());
        assert_eq!(range_ports(&["1.2.3.4:2".to_string()], 0, 10)[0].from, 1);
    }

    fn visitor_msg(name: &str, sk: &str, pre_check: bool) -> NatHoleVisitor {
        let ts = unix_now();
        NatHoleVisitor {
            transaction_id: "t1".into(),
            proxy_name: name.into(),
            pre_check,
            protocol: "quic".into(),
            sign_key: auth_key(sk, ts),
            timestamp: ts,
            mapped_addrs: vec!["127.0.0.1:1000".into(), "127.0.0.1:1000".into()],
            assisted_addrs: vec![],
        }
    }

    async fn answer(rx: &mut mpsc::Receiver<Queued>) -> NatHoleResp {
        match *tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Message::NatHoleResp(r) => r,
            other => panic!("{other:?}"),
        }
    }

    /// Pre-check and request refusals carry frp's texts; nothing is left pending.
    #[tokio::test]
    async fn refusals() {
        let ctl = Arc::new(NatHoleController::new(1));
        let (_reg, _sids) = ctl.listen("alice.p", "sk", vec!["alice".into()]).unwrap();
        assert!(ctl.listen("alice.p", "sk", vec![]).is_none());
        let (tx, mut rx) = mpsc::channel(8);
        let t = CancellationToken::new();
        for (m, user, want) in [
            (
                visitor_msg("bob.p", "sk", true),
                "alice",
                "xtcp server for [bob.p] doesn't exist",
            ),
            (
                visitor_msg("alice.p", "sk", true),
                "carol",
                "xtcp visitor user [carol] not allowed for [alice.p]",
            ),
            (
                visitor_msg("alice.p", "sk", false),
                "carol",
                "xtcp visitor user [carol] not allowed for [alice.p]",
            ),
            (
                visitor_msg("alice.p", "bad", false),
                "alice",
                "xtcp connection of [alice.p] auth failed",
            ),
            (visitor_msg("alice.p", "sk", true), "alice", ""),
        ] {
            ctl.handle_visitor(m, tx.clone(), user, t.clone()).await;
            assert_eq!(answer(&mut rx).await.error, want);
        }
        assert_eq!(ctl.sessions(), 0);
    }

    /// A proxy whose frpc never answers: sessions waiting for it are bounded, and end at once
    /// when the visitor's control closes.
    #[tokio::test(start_paused = true)]
    async fn pending_sessions_end_and_are_bounded() {
        let ctl = Arc::new(NatHoleController::new(1));
        let (_reg, mut sids) = ctl.listen("p", "sk", vec!["*".into()]).unwrap();
        // The proxy takes every sid at once; its frpc never answers.
        tokio::spawn(async move { while sids.recv().await.is_some() {} });
        let (tx, mut rx) = mpsc::channel(64);
        let t = CancellationToken::new();
        let mut tasks = Vec::new();
        for _ in 0..SID_QUEUE {
            let (ctl, tx, t) = (ctl.clone(), tx.clone(), t.clone());
            tasks.push(tokio::spawn(async move {
                ctl.handle_visitor(visitor_msg("p", "sk", false), tx, "u", t)
                    .await
            }));
        }
        tokio::task::yield_now().await;
        while ctl.sessions() < SID_QUEUE {
            tokio::task::yield_now().await;
        }
        ctl.handle_visitor(visitor_msg("p", "sk", false), tx.clone(), "u", t.clone())
            .await;
        assert!(answer(&mut rx).await.error.contains("too many"));
        t.cancel();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(ctl.sessions(), 0);
    }

    /// Whoever holds one proxy's key cannot take every session: once that proxy has
    /// MAX_PROXY_SESSIONS answered ones (kept for their reports), its next visitor is refused
    /// while another proxy's visitor still gets a session.
    #[tokio::test]
    async fn one_proxy_cannot_take_every_session() {
        let ctl = Arc::new(NatHoleController::new(1));
        let (_p, mut p_sids) = ctl.listen("p", "sk", vec!["*".into()]).unwrap();
        let (_q, _q_sids) = ctl.listen("q", "sk", vec!["*".into()]).unwrap();
        // p's frpc answers every session at once.
        let (client_tx, _client_rx) = mpsc::channel(4 * MAX_PROXY_SESSIONS);
        let answering = ctl.clone();
        let answered = Arc::new(AtomicU64::new(0));
        let count = answered.clone();
        tokio::spawn(async move {
            while let Some(sid) = p_sids.recv().await {
                let m = NatHoleClient {
                    transaction_id: "c".into(),
                    proxy_name: "p".into(),
                    sid,
                    mapped_addrs: vec!["127.0.0.1:2000".into(), "127.0.0.1:2000".into()],
                    assisted_addrs: vec![],
                };
                answering.handle_client(m, client_tx.clone(), |_| true);
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        let (tx, _rx) = mpsc::channel(4 * MAX_PROXY_SESSIONS);
        let t = CancellationToken::new();
        let mut tasks = Vec::new();
        let spawn = |name: &'static str, tx: Transporter| {
            let (ctl, t) = (ctl.clone(), t.clone());
            tokio::spawn(async move {
                ctl.handle_visitor(visitor_msg(name, "sk", false), tx, "u", t)
                    .await
            })
        };
        // In batches below SID_QUEUE, each answered before the next.
        for batch in 0..MAX_PROXY_SESSIONS / 8 {
            for _ in 0..8 {
                tasks.push(spawn("p", tx.clone()));
            }
            let want = 8 * (batch as u64 + 1);
            tokio::time::timeout(Duration::from_secs(5), async {
                while answered.load(Ordering::SeqCst) < want {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .expect("p's frpc answers");
        }
        assert_eq!(ctl.sessions(), MAX_PROXY_SESSIONS);
        let (own_tx, mut own_rx) = mpsc::channel(8);
        tasks.push(spawn("p", own_tx));
        assert!(
            answer(&mut own_rx).await.error.contains("too many"),
            "p's next visitor is refused"
        );
        tasks.push(spawn("q", tx.clone()));
        tokio::time::timeout(Duration::from_secs(5), async {
            while ctl.sessions() < MAX_PROXY_SESSIONS + 1 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("q's visitor gets a session");
        t.cancel();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(ctl.sessions(), 0);
    }
}
