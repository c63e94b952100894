//! What the dashboard knows about clients (frp `server/registry`): one record per
//! `{user}.{clientID}` (run_id when the client sent no client_id). A client with a clientID is
//! kept after it goes offline until `POST /api/v2/system/prune?type=offline_clients` (ours)
//! clears it, or
//! until it is the oldest of more than [`MAX_OFFLINE_CLIENTS`]; one without is forgotten when
//! it goes offline (as frp: its key, a run_id, would never come back).

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// frp `ClientInfoResp` (field names as frp's dashboard API).
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct ClientRecord {
    pub(crate) key: String,
    pub(crate) user: String,
    #[serde(rename = "clientID")]
    pub(crate) client_id: String,
    #[serde(rename = "runID")]
    pub(crate) run_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) version: String,
    #[serde(rename = "wireProtocol", skip_serializing_if = "String::is_empty")]
    pub(crate) wire_protocol: String,
    /// How the client reached frps: tcp, websocket (also wss behind a TLS front) or quic.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) transport: String,
    pub(crate) hostname: String,
    #[serde(rename = "clientIP", skip_serializing_if = "String::is_empty")]
    pub(crate) client_ip: String,
    #[serde(rename = "firstConnectedAt")]
    pub(crate) first_connected_at: i64,
    #[serde(rename = "lastConnectedAt")]
    pub(crate) last_connected_at: i64,
    #[serde(
        rename = "disconnectedAt",
        skip_serializing_if = "common::msg::is_zero"
    )]
    pub(crate) disconnected_at: i64,
    pub(crate) online: bool,
    /// Which control owns the record now (a newer session with the same run_id wins).
    #[serde(skip)]
    control_id: u64,
    /// The clientID the client sent (empty: `client_id` is its run_id).
    #[serde(skip)]
    raw_client_id: String,
}

/// Offline client records kept at most; the oldest go first.
pub(crate) const MAX_OFFLINE_CLIENTS: usize = 10_000;

/// The facts a login gives about a client.
#[derive(Debug)]
pub(crate) struct Login<'a> {
    pub(crate) user: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) run_id: &'a str,
    pub(crate) hostname: &'a str,
    pub(crate) version: &'a str,
    pub(crate) ip: String,
    pub(crate) wire_protocol: &'a str,
    pub(crate) transport: &'a str,
    pub(crate) control_id: u64,
}

#[derive(Debug)]
struct Inner {
    clients: BTreeMap<String, ClientRecord>,
    by_run_id: HashMap<String, String>,
    max_offline: usize,
}

/// Client records, online and offline.
#[derive(Debug)]
pub(crate) struct ClientBook(Mutex<Inner>);

impl Default for ClientBook {
    fn default() -> Self {
        ClientBook(Mutex::new(Inner {
            clients: BTreeMap::new(),
            by_run_id: HashMap::new(),
            max_offline: MAX_OFFLINE_CLIENTS,
        }))
    }
}

use common::clock::unix_now;

fn compose_key(user: &str, id: &str) -> String {
    match (user.is_empty(), id.is_empty()) {
        (true, _) => id.to_owned(),
        (false, true) => user.to_owned(),
        (false, false) => format!("{user}.{id}"),
    }
}

impl ClientBook {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a login; returns the client's key.
    pub(crate) fn online(&self, l: Login<'_>) -> String {
        let id = if l.client_id.is_empty() {
            l.run_id
        } else {
            l.client_id
        };
        let key = compose_key(l.user, id);
        let now = unix_now();
        let mut inner = self.lock();
        if let Some(prev) = inner.by_run_id.remove(l.run_id) {
            if prev != key {
                let drop_prev = inner
                    .clients
                    .get(&prev)
                    .is_some_and(|r| r.raw_client_id.is_empty());
                if drop_prev {
                    inner.clients.remove(&prev);
                } else if let Some(r) = inner.clients.get_mut(&prev) {
                    r.online = false;
                    r.disconnected_at = now;
                }
            }
        }
        let r = inner
            .clients
            .entry(key.clone())
            .or_insert_with(|| ClientRecord {
                key: key.clone(),
                user: l.user.to_owned(),
                first_connected_at: now,
                ..Default::default()
            });
        r.client_id = id.to_owned();
        r.raw_client_id = l.client_id.to_owned();
        r.run_id = l.run_id.to_owned();
        r.hostname = l.hostname.to_owned();
        r.version = l.version.to_owned();
        r.client_ip = l.ip;
        r.wire_protocol = l.wire_protocol.to_owned();
        r.transport = l.transport.to_owned();
        r.last_connected_at = now;
        r.disconnected_at = 0;
        r.online = true;
        r.control_id = l.control_id;
        inner.by_run_id.insert(l.run_id.to_owned(), key.clone());
        key
    }

    /// Marks the client offline, unless a newer control has taken the record over.
    pub(crate) fn offline(&self, run_id: &str, control_id: u64) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(key) = inner.by_run_id.get(run_id).cloned() else {
            return;
        };
        let Some(r) = inner.clients.get_mut(&key) else {
            return;
        };
        if r.control_id != control_id {
            return;
        }
        inner.by_run_id.remove(run_id);
        if r.raw_client_id.is_empty() {
            inner.clients.remove(&key);
            return;
        }
        r.online = false;
        r.run_id.clear();
        r.disconnected_at = unix_now();
        let offline = inner.clients.values().filter(|r| !r.online).count();
        for _ in inner.max_offline..offline {
            let oldest = inner
                .clients
                .iter()
                .filter(|(_, r)| !r.online)
                .min_by_key(|(_, r)| r.disconnected_at)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                inner.clients.remove(&k);
            }
        }
    }

    /// All records, sorted by user, client id, key (as frp).
    pub(crate) fn list(&self) -> Vec<ClientRecord> {
        let mut v: Vec<ClientRecord> = self.lock().clients.values().cloned().collect();
        v.sort_by(|a, b| (&a.user, &a.client_id, &a.key).cmp(&(&b.user, &b.client_id, &b.key)));
        v
    }

    pub(crate) fn get(&self, key: &str) -> Option<ClientRecord> {
        self.lock().clients.get(key).cloned()
    }

    /// Removes offline records: (cleared, total before).
    pub(crate) fn clear_offline(&self) -> (usize, usize) {
        let mut inner = self.lock();
        let total = inner.clients.len();
        inner.clients.retain(|_, r| r.online);
        (total - inner.clients.len(), total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login<'a>(user: &'a str, client_id: &'a str, run_id: &'a str, ctl: u64) -> Login<'a> {
        Login {
            user,
            client_id,
            run_id,
            hostname: "h",
            version: "0.70.0",
            ip: "127.0.0.1".into(),
            wire_protocol: "v1",
            transport: "tcp",
            control_id: ctl,
        }
    }

    #[test]
    fn keys_and_offline_records() {
        let b = ClientBook::default();
        assert_eq!(b.online(login("alice", "laptop", "r1", 1)), "alice.laptop");
        assert_eq!(b.online(login("", "", "r2", 2)), "r2");
        assert_eq!(b.online(login("bob", "", "r3", 3)), "bob.r3");
        b.offline("r1", 1);
        let a = b.get("alice.laptop").unwrap();
        assert!(!a.online && a.run_id.is_empty() && a.disconnected_at > 0);
        // Reconnecting under a new run_id revives the same record.
        b.online(login("alice", "laptop", "r9", 4));
        let a = b.get("alice.laptop").unwrap();
        assert!(a.online && a.run_id == "r9" && a.disconnected_at == 0);
        // A stale control's close does not take a newer session offline.
        b.online(login("", "", "r2", 5));
        b.offline("r2", 2);
        assert!(b.get("r2").unwrap().online);
        // Without a clientID, going offline forgets the client (as frp).
        b.offline("r3", 3);
        assert!(b.get("bob.r3").is_none());
        b.online(login("carol", "pc", "r4", 6));
        b.offline("r4", 6);
        assert_eq!(b.clear_offline(), (1, 3));
        let keys: Vec<String> = b.list().into_iter().map(|r| r.key).collect();
        assert_eq!(keys, ["r2", "alice.laptop"]);
    }

    #[test]
    fn offline_records_are_bounded() {
        let b = ClientBook::default();
        b.lock().max_offline = 2;
        for i in 0..5u64 {
            let (id, run) = (format!("c{i}"), format!("r{i}"));
            b.online(login("u", &id, &run, i));
            b.offline(&run, i);
            b.lock()
                .clients
                .get_mut(&format!("u.c{i}"))
                .unwrap()
                .disconnected_at = i as i64;
        }
        b.online(login("u", "live", "r9", 9));
        let keys: Vec<String> = b.list().into_iter().map(|r| r.key).collect();
        assert_eq!(keys, ["u.c3", "u.c4", "u.live"]);
    }
}
