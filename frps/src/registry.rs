//! Who is online: controls by run_id, proxy names (globally unique), ports in use (per
//! protocol: a tcp and a udp proxy may use the same number, as in frp).
//! Short critical sections only; no lock is held across an await.

use crate::control::ControlHandle;
use crate::metrics::Metrics;
use crate::ports::Net;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

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
    /// Registers a control; returns the one it replaces (same run_id), if any.
    pub(crate) fn add_control(&self, h: ControlHandle) -> Option<ControlHandle> {
        lock(&self.controls).insert(h.run_id.clone(), h)
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

    /// An online client with this user and client_id under another run_id.
    pub(crate) fn client_id_online(&self, user: &str, client_id: &str, run_id: &str) -> bool {
        lock(&self.controls)
            .values()
            .any(|h| h.user == user && h.client_id == client_id && h.run_id != run_id)
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
