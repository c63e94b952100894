//! What a connection may cost frps before it has logged in (not a frp file: frp bounds none of
//! this beyond its 10 s first-message deadline).
//!
//! - [`Limits`]: the first-message deadline, connections not yet logged in (at most), yamux
//!   streams per session before login. Defaults in one place; tests shrink them.
//! - [`Gate`]: the server-wide counters behind those limits.
//! - [`Admission`]: one TCP connection's standing until it logs in; its `Drop` gives back what
//!   it held.

use common::transport::mux;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
    /// yamux streams a session may have open before a Login succeeds on it; more are reset.
    pub pre_login_streams: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            first_msg_timeout: FIRST_MSG_TIMEOUT,
            pending_connections: PENDING_CONNECTIONS,
            pre_login_streams: PRE_LOGIN_STREAMS,
        }
    }
}

/// Default for [`Limits::pending_connections`]: logins take milliseconds, so this only binds
/// under a flood; each pending connection costs a task, TLS state and (with tcpMux) a yamux
/// session of at most [`PRE_LOGIN_STREAMS`] small streams.
pub const PENDING_CONNECTIONS: usize = 1024;
/// Streams a yamux session may have open before a Login succeeds on it (Go frpc needs one).
pub const PRE_LOGIN_STREAMS: usize = 4;
/// What a yamux stream may hold unread before login: a v2 frame (64 KiB) and a ClientHello,
/// with room to spare (Go frpc waits for each answer before it sends more).
pub const PRE_LOGIN_BUFFER: usize = 80 * 1024;

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
}

impl Gate {
    pub(crate) fn new(limits: Limits) -> Gate {
        Gate {
            permits: Arc::new(Semaphore::new(limits.pending_connections.max(1))),
            limits,
            unauthenticated: AtomicUsize::new(0),
            awaiting_first: AtomicUsize::new(0),
        }
    }

    /// TCP connections accepted and not yet logged in.
    pub(crate) fn unauthenticated(&self) -> usize {
        self.unauthenticated.load(Ordering::Relaxed)
    }

    /// Logical connections waiting for their first message.
    pub(crate) fn awaiting_first(&self) -> usize {
        self.awaiting_first.load(Ordering::Relaxed)
    }

    /// Room for one more connection that has not logged in; waits while there is none.
    pub(crate) async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().acquire_owned().await.ok()
    }

    /// A new TCP connection holding `permit`: counted as unauthenticated until it logs in or
    /// closes.
    pub(crate) fn admission(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Arc<Admission> {
        self.unauthenticated.fetch_add(1, Ordering::Relaxed);
        Arc::new(Admission {
            gate: self.clone(),
            pending: Mutex::new(Some(Pending {
                _permit: permit,
                session: None,
            })),
        })
    }

    /// The yamux config of a session that has not logged in (lifted by [`Admission::admit`]).
    pub(crate) fn mux_config(&self, keepalive_secs: i64) -> mux::Config {
        mux::Config {
            restricted: Some(mux::Restriction {
                max_streams: self.limits.pre_login_streams.max(1),
                max_buffered: PRE_LOGIN_BUFFER,
            }),
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

/// One TCP connection's standing before login; shared by its logical connections.
#[derive(Debug)]
pub(crate) struct Admission {
    gate: Arc<Gate>,
    /// What it holds until it logs in; `None` once it has.
    pending: Mutex<Option<Pending>>,
}

#[derive(Debug)]
struct Pending {
    _permit: OwnedSemaphorePermit,
    /// Its yamux session's restriction (tcpMux), lifted at login.
    session: Option<mux::SessionLimits>,
}

impl Admission {
    fn pending(&self) -> std::sync::MutexGuard<'_, Option<Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection's yamux session, to lift its restriction at login.
    pub(crate) fn set_session(&self, limits: mux::SessionLimits) {
        match self.pending().as_mut() {
            Some(p) => p.session = Some(limits),
            None => limits.lift(),
        }
    }

    /// A Login succeeded on this connection: it gives back its permit, its yamux session's
    /// restriction is lifted, and it no longer counts as unauthenticated.
    pub(crate) fn admit(&self) {
        let Some(p) = self.pending().take() else {
            return;
        };
        self.gate.unauthenticated.fetch_sub(1, Ordering::Relaxed);
        if let Some(s) = p.session {
            s.lift();
        }
    }

    pub(crate) fn is_admitted(&self) -> bool {
        self.pending().is_none()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.pending().take().is_some() {
            self.gate.unauthenticated.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
impl Gate {
    /// An admission with a permit taken at once (tests of other modules).
    pub(crate) fn test_admission() -> Arc<Admission> {
        let gate = Arc::new(Gate::new(Limits::default()));
        let permit = gate
            .permits
            .clone()
            .try_acquire_owned()
            .expect("a fresh gate has permits");
        gate.admission(permit)
    }
}
