//! Proxy phases as frp names them (`client/proxy/proxy_wrapper.go`), observable from outside
//! the session (admin API later, tests now).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// frp's proxy phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    New,
    WaitStart,
    Running,
    StartError,
    /// Health check failing: the proxy is closed on frps until it recovers.
    CheckFailed,
    Closed,
}

impl Phase {
    /// The text frp shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::New => "new",
            Phase::WaitStart => "wait start",
            Phase::Running => "running",
            Phase::StartError => "start error",
            Phase::CheckFailed => "check failed",
            Phase::Closed => "closed",
        }
    }
}

/// One proxy's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyStatus {
    pub name: String,
    pub kind: String,
    pub phase: Phase,
    /// `remote_addr` from NewProxyResp (e.g. `:6000`).
    pub remote_addr: String,
    pub error: String,
}

impl ProxyStatus {
    /// Before the first session: `new`, or `start error` with why it will not start.
    pub(crate) fn initial(name: &str, kind: &str, refused: Option<String>) -> Self {
        ProxyStatus {
            name: name.into(),
            kind: kind.into(),
            phase: if refused.is_some() {
                Phase::StartError
            } else {
                Phase::New
            },
            remote_addr: String::new(),
            error: refused.unwrap_or_default(),
        }
    }
}

/// Shared, watchable map of proxy states.
#[derive(Debug, Clone)]
pub struct StatusBoard {
    map: Arc<Mutex<BTreeMap<String, ProxyStatus>>>,
    /// The last [`RECENT_ERRORS`] distinct errors of each proxy, with their unix time, oldest
    /// first (the admin page shows them; a proxy's current status keeps only the latest).
    recent: Arc<Mutex<BTreeMap<String, RecentErrors>>>,
    version: Arc<watch::Sender<u64>>,
}

impl Default for StatusBoard {
    fn default() -> Self {
        StatusBoard {
            map: Arc::default(),
            recent: Arc::default(),
            version: Arc::new(watch::channel(0).0),
        }
    }
}

/// One proxy's last errors: (unix time, text), oldest first.
type RecentErrors = std::collections::VecDeque<(i64, String)>;

/// How many errors per proxy [`StatusBoard::recent_errors`] keeps.
pub const RECENT_ERRORS: usize = 5;

impl StatusBoard {
    pub(crate) fn set(&self, s: ProxyStatus) {
        if !s.error.is_empty() {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            let list = recent.entry(s.name.clone()).or_default();
            if list.back().is_none_or(|(_, e)| *e != s.error) {
                if list.len() == RECENT_ERRORS {
                    list.pop_front();
                }
                list.push_back((common::clock::unix_now(), s.error.clone()));
            }
        }
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(s.name.clone(), s);
        self.version.send_modify(|v| *v += 1);
    }

    pub(crate) fn remove(&self, name: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        self.version.send_modify(|v| *v += 1);
    }

    /// Every proxy's last distinct errors (unix time, text), oldest first.
    pub fn recent_errors(&self) -> Vec<(String, i64, String)> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .flat_map(|(name, l)| l.iter().map(move |(t, e)| (name.clone(), *t, e.clone())))
            .collect()
    }

    /// A snapshot of every proxy.
    pub fn all(&self) -> Vec<ProxyStatus> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<ProxyStatus> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Waits (at most `limit`) until `pred` holds for proxy `name`; returns its status then.
    pub async fn wait_for(
        &self,
        name: &str,
        limit: Duration,
        pred: impl Fn(&ProxyStatus) -> bool,
    ) -> Option<ProxyStatus> {
        let mut rx = self.version.subscribe();
        let fut = async {
            loop {
                if let Some(s) = self.get(name).filter(|s| pred(s)) {
                    return s;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(limit, fut).await.ok()
    }
}
