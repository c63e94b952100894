//! The visitor manager (frp `server/visitor/visitor.go`, `server/service.go`
//! `RegisterVisitorConn`): secret proxies (stcp, sudp) register their key and allowed users
//! under their wire name; a `NewVisitorConn` on a fresh logical connection is checked against
//! them and, once answered, handed to the proxy, which joins it to a work connection through
//! the shared path (`proxy::secret`).
//!
//! The manager knows nothing of stream types: [`VisitorManager::authorize`] is the whole check
//! (sign key in constant time, timestamp window, allowed users), so an xtcp controller can use
//! it with a registration that has no connection sink.

use crate::admission::Reject;
use crate::service::{Origin, Shared};
use common::io::{wrap_work_conn, BoxStream, WrapOpts};
use common::msg::{NewVisitorConn, NewVisitorConnResp, Wire};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// How far a NewVisitorConn's timestamp may be from frps's clock, either way. frp checks
/// none, so a sign key seen once opens connections forever; frpc signs with the current
/// time, so only a client whose clock is off by more than this is refused.
pub(crate) const TIME_WINDOW_SECS: i64 = 15 * 60;

/// Visitor connections answered but not yet taken by their proxy's task; more are refused.
const PENDING: usize = 64;

/// Refused visitor connections are logged at most once per this period.
static REFUSED_LOG: common::log::Throttle = common::log::Throttle::new(Duration::from_secs(10));

/// How long writing NewVisitorConnResp may take.
const RESP_TIMEOUT: Duration = Duration::from_secs(10);

/// A checked visitor connection, its layers (CFB with the secret key, snappy) applied.
pub(crate) struct VisitorConn {
    pub(crate) stream: BoxStream,
    /// The framing the visitor's frpc speaks (sudp bridges mixed framings).
    pub(crate) wire: Wire,
    pub(crate) peer: SocketAddr,
    /// The visitor's user, for logs.
    pub(crate) user: String,
}

impl std::fmt::Debug for VisitorConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisitorConn")
            .field("wire", &self.wire)
            .field("peer", &self.peer)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Why a visitor connection is refused; the texts are frp's where frp has the case.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VisitorError {
    #[error("no client control found for run id [{0}]")]
    NoControl(String),
    #[error("visitor connection of [{0}] auth failed")]
    AuthFailed(String),
    #[error("visitor connection of [{0}] timestamp is more than {TIME_WINDOW_SECS}s away from the server's clock")]
    Stale(String),
    #[error("visitor connection of [{0}] user [{1}] not allowed")]
    NotAllowed(String, String),
    #[error("custom listener for [{0}] doesn't exist")]
    NoListener(String),
    #[error("visitor connection of [{0}] refused: too many connections waiting for the proxy")]
    Busy(String),
}

impl VisitorError {
    fn reason(&self) -> &'static str {
        match self {
            VisitorError::NoControl(_) => "unknown_run_id",
            VisitorError::AuthFailed(_) => "auth",
            VisitorError::Stale(_) => "stale_timestamp",
            VisitorError::NotAllowed(..) => "user_not_allowed",
            VisitorError::NoListener(_) => "unknown_proxy",
            VisitorError::Busy(_) => "busy",
        }
    }
}

/// What a secret proxy registers.
#[derive(Debug, Clone)]
pub(crate) struct Secret {
    pub(crate) sk: String,
    /// Already completed: empty in NewProxy means the proxy owner's user only.
    pub(crate) allow_users: Vec<String>,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    secret: Secret,
    /// Where checked connections go (stcp, sudp); none for a type that takes no connection.
    sink: Option<mpsc::Sender<VisitorConn>>,
}

/// Secret proxies by wire name.
#[derive(Debug, Default)]
pub(crate) struct VisitorManager {
    entries: Mutex<HashMap<String, Entry>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// Removes its entry on drop (the proxy closed).
#[derive(Debug)]
pub(crate) struct Registration {
    mgr: Arc<VisitorManager>,
    name: String,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut m = self.mgr.lock();
        if m.get(&self.name).is_some_and(|e| e.id == self.id) {
            m.remove(&self.name);
        }
    }
}

/// A connection authorized for a proxy: its slot in the proxy's queue is reserved.
#[derive(Debug)]
pub(crate) struct Grant {
    pub(crate) sk: String,
    permit: Option<mpsc::OwnedPermit<VisitorConn>>,
}

impl VisitorManager {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a secret proxy (frp `Manager.Listen`); `None` when the name is registered.
    pub(crate) fn listen(
        self: &Arc<Self>,
        name: &str,
        secret: Secret,
    ) -> Option<(Registration, mpsc::Receiver<VisitorConn>)> {
        let (tx, rx) = mpsc::channel(PENDING);
        let reg = self.register(name, secret, Some(tx))?;
        Some((reg, rx))
    }

    fn register(
        self: &Arc<Self>,
        name: &str,
        secret: Secret,
        sink: Option<mpsc::Sender<VisitorConn>>,
    ) -> Option<Registration> {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut m = self.lock();
        if m.contains_key(name) {
            return None;
        }
        m.insert(name.to_owned(), Entry { id, secret, sink });
        Some(Registration {
            mgr: self.clone(),
            name: name.to_owned(),
            id,
        })
    }

    /// The whole check of a visitor's request for `name` (frp `Manager.NewConn`): the sign key
    /// (constant time), the timestamp within [`TIME_WINDOW_SECS`] of `now`, and `user` among
    /// the allowed users (or `"*"`). Reserves a place in the proxy's queue.
    pub(crate) fn authorize(
        &self,
        name: &str,
        timestamp: i64,
        sign_key: &str,
        user: &str,
        now: i64,
    ) -> Result<Grant, VisitorError> {
        let m = self.lock();
        let e = m
            .get(name)
            .ok_or_else(|| VisitorError::NoListener(name.into()))?;
        if !common::auth::verify_auth_key(&e.secret.sk, timestamp, sign_key) {
            return Err(VisitorError::AuthFailed(name.into()));
        }
        if timestamp.abs_diff(now) > TIME_WINDOW_SECS as u64 {
            return Err(VisitorError::Stale(name.into()));
        }
        let allowed = &e.secret.allow_users;
        if !allowed.iter().any(|u| u == user || u == "*") {
            return Err(VisitorError::NotAllowed(name.into(), user.into()));
        }
        let permit = match &e.sink {
            Some(tx) => Some(tx.clone().try_reserve_owned().map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => VisitorError::Busy(name.into()),
                mpsc::error::TrySendError::Closed(_) => VisitorError::NoListener(name.into()),
            })?),
            None => None,
        };
        Ok(Grant {
            sk: e.secret.sk.clone(),
            permit,
        })
    }

    /// Registered secret proxies.
    pub(crate) fn count(&self) -> usize {
        self.lock().len()
    }
}

/// Serves a logical connection whose first message is NewVisitorConn (frp `handleConnection`
/// and `RegisterVisitorConn`). Unlike Go frps, the answer is written before the connection is
/// handed to the proxy, so no proxy byte can overtake it.
pub(crate) async fn serve(
    shared: &Shared,
    mut stream: BoxStream,
    m: NewVisitorConn,
    wire: Wire,
    origin: &Origin,
) {
    let checked = check(shared, &m, origin);
    let resp = |error: String| NewVisitorConnResp {
        proxy_name: m.proxy_name.clone(),
        error,
    };
    let (grant, user) = match checked {
        Ok(g) => g,
        Err(e) => {
            shared.metrics.refused("visitor_conn", e.reason());
            origin.admission.reject(Reject::Refused);
            // Anyone may send NewVisitorConn: the names in it are escaped, and refusals are
            // logged once per period (the metric and the rejection summary count them all).
            let shown = common::log::printable(&e.to_string(), 200);
            debug!(peer = %origin.peer, error = %shown, "visitor connection refused");
            if let Some(held) = REFUSED_LOG.ready() {
                warn!(peer = %origin.peer, proxy = %common::log::printable(&m.proxy_name, 64), error = %shown, similar_held_back = held, "register visitor conn error");
            }
            let text = if shared.cfg.detailed_errors_to_client {
                e.to_string()
            } else {
                "register visitor conn error".into()
            };
            let _ = tokio::time::timeout(RESP_TIMEOUT, wire.write(&mut stream, &resp(text).into()))
                .await;
            return;
        }
    };
    origin.admission.admit();
    let written = tokio::time::timeout(
        RESP_TIMEOUT,
        wire.write(&mut stream, &resp(String::new()).into()),
    )
    .await;
    if !matches!(written, Ok(Ok(()))) {
        info!(peer = %origin.peer, proxy = %m.proxy_name, "visitor went away before NewVisitorConnResp");
        return;
    }
    let opts = WrapOpts {
        encryption_key: m
            .use_encryption
            .then(|| common::crypto::derive_key(grant.sk.as_bytes())),
        compress: m.use_compression,
        limit: None,
    };
    let conn = VisitorConn {
        stream: wrap_work_conn(stream, &opts),
        wire,
        peer: origin.peer,
        user,
    };
    if let Some(permit) = grant.permit {
        permit.send(conn);
    }
}

/// The visitor's user (from its control, "" without run_id as frp allows for pre-0.50
/// clients), then [`VisitorManager::authorize`].
fn check(
    shared: &Shared,
    m: &NewVisitorConn,
    origin: &Origin,
) -> Result<(Grant, String), VisitorError> {
    let user = if m.run_id.is_empty() {
        String::new()
    } else {
        let h = shared
            .registry
            .control(&m.run_id)
            .ok_or_else(|| VisitorError::NoControl(m.run_id.clone()))?;
        // Whoever learned a run_id must not pass for its user (as for work connections).
        if !h.origin.may_attach(origin) {
            return Err(VisitorError::NoControl(m.run_id.clone()));
        }
        h.user
    };
    let grant = shared.visitors.authorize(
        &m.proxy_name,
        m.timestamp,
        &m.sign_key,
        &user,
        common::auth::unix_now(),
    )?;
    Ok((grant, user))
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::auth::auth_key;

    fn secret(users: &[&str]) -> Secret {
        Secret {
            sk: "sk".into(),
            allow_users: users.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn checks_key_time_and_users() {
        let mgr = Arc::new(VisitorManager::default());
        let (_reg, _rx) = mgr.listen("alice.ssh", secret(&["bob"])).unwrap();
        let now = 1_700_000_000;
        let k = auth_key("sk", now);
        assert!(mgr.authorize("alice.ssh", now, &k, "bob", now).is_ok());
        assert!(matches!(
            mgr.authorize("alice.ssh", now, &auth_key("other", now), "bob", now),
            Err(VisitorError::AuthFailed(_))
        ));
        assert!(matches!(
            mgr.authorize("alice.ssh", now, &k, "carol", now),
            Err(VisitorError::NotAllowed(_, _))
        ));
        assert!(matches!(
            mgr.authorize("alice.ssh", now, &k, "bob", now + TIME_WINDOW_SECS + 1),
            Err(VisitorError::Stale(_))
        ));
        assert!(matches!(
            mgr.authorize("alice.ssh", now, &k, "bob", now - TIME_WINDOW_SECS - 1),
            Err(VisitorError::Stale(_))
        ));
        assert!(matches!(
            mgr.authorize("bob.ssh", now, &k, "bob", now),
            Err(VisitorError::NoListener(_))
        ));
        let (_r2, _rx2) = mgr.listen("open", secret(&["*"])).unwrap();
        assert!(mgr.authorize("open", now, &k, "anyone", now).is_ok());
        assert!(mgr.authorize("open", now, &k, "", now).is_ok());
    }

    #[test]
    fn registration_is_unique_and_released() {
        let mgr = Arc::new(VisitorManager::default());
        let (reg, rx) = mgr.listen("p", secret(&["*"])).unwrap();
        assert!(mgr.listen("p", secret(&["*"])).is_none());
        drop((reg, rx));
        assert_eq!(mgr.count(), 0);
        assert!(mgr.listen("p", secret(&["*"])).is_some());
    }

    /// Each grant holds a queue place until used: a proxy that takes none bounds what waits.
    #[test]
    fn pending_connections_are_bounded() {
        let mgr = Arc::new(VisitorManager::default());
        let (_reg, _rx) = mgr.listen("p", secret(&["*"])).unwrap();
        let k = auth_key("sk", 5);
        let grants: Vec<_> = (0..PENDING)
            .map(|_| mgr.authorize("p", 5, &k, "u", 5).unwrap())
            .collect();
        assert!(matches!(
            mgr.authorize("p", 5, &k, "u", 5),
            Err(VisitorError::Busy(_))
        ));
        drop(grants);
        assert!(mgr.authorize("p", 5, &k, "u", 5).is_ok());
    }
}
