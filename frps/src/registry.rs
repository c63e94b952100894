//! Who is online: controls by run_id, proxy names (globally unique), ports in use (per
//! protocol: a tcp and a udp proxy may use the same number, as in frp).
//! Short critical sections only; no lock is held across an await.

use crate::control::ControlHandle;
use crate::metrics::Metrics;
use crate::ports::Net;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// A login's clientID is online under another run_id (frp's text).
#[derive(Debug, thiserror::Error)]
#[error("client_id [{client_id}] for user [{user}] is already online")]
pub(crate) struct ClientIdInUse {
    user: String,
    client_id: String,
}

/// Shared registries of one frps.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    controls: Mutex<HashMap<String, ControlHandle>>,
    proxy_names: Mutex<HashSet<String>>,
    ports: Mutex<HashSet<(Net, u16)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    /// Registers a control; returns the one it replaces (same run_id), if any. Refused when
    /// its clientID is online for its user under another run_id: checked and registered under
    /// one lock, so two logins of one clientID cannot both pass (frp `RegisterWithControlID`).
    pub(crate) fn add_control(
        &self,
        h: ControlHandle,
    ) -> Result<Option<ControlHandle>, ClientIdInUse> {
        let mut controls = lock(&self.controls);
        if !h.client_id.is_empty()
            && controls
                .values()
                .any(|o| o.user == h.user && o.client_id == h.client_id && o.run_id != h.run_id)
        {
            return Err(ClientIdInUse {
                user: h.user,
                client_id: h.client_id,
            });
        }
        Ok(controls.insert(h.run_id.clone(), h))
    }

    /// Removes a control only if it is still the registered one for its run_id.
    pub(crate) fn remove_control(&self, run_id: &str, id: u64) {
        let mut m = lock(&self.controls);
        if m.get(run_id).is_some_and(|h| h.id == id) {
            m.remove(run_id);
        }
    }

    pub(crate) fn control(&self, run_id: &str) -> Option<ControlHandle> {
        lock(&self.controls).get(run_id).cloned()
    }

    /// Idle work connections in all pools.
    pub(crate) fn pooled_work_conns(&self) -> usize {
        lock(&self.controls).values().map(|h| h.pooled()).sum()
    }

    pub(crate) fn control_count(&self) -> usize {
        lock(&self.controls).len()
    }

    /// Claims a proxy name; None when taken.
    pub(crate) fn claim_name(self: &Arc<Self>, name: &str) -> Option<NameGuard> {
        if !lock(&self.proxy_names).insert(name.to_owned()) {
            return None;
        }
        Some(NameGuard {
            reg: self.clone(),
            name: name.to_owned(),
            metrics: None,
        })
    }

    pub(crate) fn port_in_use(&self, net: Net, port: u16) -> bool {
        lock(&self.ports).contains(&(net, port))
    }

    /// Marks a bound `net` port as used by a proxy until the guard drops.
    pub(crate) fn claim_port(self: &Arc<Self>, net: Net, port: u16) -> PortGuard {
        lock(&self.ports).insert((net, port));
        PortGuard {
            reg: self.clone(),
            net,
            port,
        }
    }
}

/// Releases a proxy name on drop (and marks the proxy offline in the metrics, once opened).
#[derive(Debug)]
pub(crate) struct NameGuard {
    reg: Arc<Registry>,
    name: String,
    metrics: Option<(Arc<Metrics>, String)>,
}

impl NameGuard {
    /// From now on, dropping the guard records the proxy of type `kind` as closed.
    pub(crate) fn opened(&mut self, metrics: Arc<Metrics>, kind: &str) {
        self.metrics = Some((metrics, kind.to_owned()));
    }
}

impl Drop for NameGuard {
    fn drop(&mut self) {
        lock(&self.reg.proxy_names).remove(&self.name);
        if let Some((m, kind)) = &self.metrics {
            m.proxy_closed(&self.name, kind);
        }
    }
}

/// Releases a port on drop.
#[derive(Debug)]
pub(crate) struct PortGuard {
    reg: Arc<Registry>,
    net: Net,
    pub(crate) port: u16,
}

impl Drop for PortGuard {
    fn drop(&mut self) {
        lock(&self.reg.ports).remove(&(self.net, self.port));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clientID check and the registration are one step: of two sessions of one clientID
    /// under different run_ids, only the first is registered, whatever happens in between.
    #[test]
    fn client_id_conflict_is_checked_when_registering() {
        let reg = Registry::default();
        let a = ControlHandle::for_test(1, "run-a", "alice", "laptop");
        let b = ControlHandle::for_test(2, "run-b", "alice", "laptop");
        assert!(matches!(reg.add_control(a), Ok(None)));
        assert!(reg.add_control(b).is_err(), "laptop is online under run-a");
        assert_eq!(reg.control_count(), 1);
        // The same run_id replaces its session; another user or no clientID never conflicts.
        let a2 = ControlHandle::for_test(3, "run-a", "alice", "laptop");
        assert!(matches!(reg.add_control(a2), Ok(Some(prev)) if prev.id == 1));
        let c = ControlHandle::for_test(4, "run-c", "bob", "laptop");
        let d = ControlHandle::for_test(5, "run-d", "alice", "");
        let e = ControlHandle::for_test(6, "run-e", "alice", "");
        for h in [c, d, e] {
            assert!(matches!(reg.add_control(h), Ok(None)));
        }
        assert_eq!(reg.control_count(), 4);
    }
}
