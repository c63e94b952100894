//! Load-balancing groups for tcp proxies (frp `server/group/tcp.go`; frp-protocol.md §12).
//!
//! Proxies with the same `loadBalancer.group` share one listener. The first member binds it and
//! fixes the group's address, declared remote port and key; later members must match them
//! (frp's checks and error texts, in frp's order). Each accepted user goes to the next member in
//! turn; if that member's client is gone, the next one is tried, so a member whose frpc
//! disappears stops receiving users at once. The listener closes with the last member.
//!
//! The registry is keyed by group name, one namespace per proxy type; tcp groups live here,
//! http groups in [`http`], https and tcpmux groups in [`stream`].

pub(crate) mod http;
pub(crate) mod stream;

use crate::ports;
use crate::proxy::{relay, start_work, ProxyCtx, Traffic};
use crate::service::Shared;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// frp's group errors (`server/group/group.go`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum GroupError {
    #[error("group auth failed")]
    AuthFailed,
    #[error("group params invalid")]
    ParamsInvalid,
    #[error("group should have same remote port")]
    DifferentPort,
    #[error("group proxy repeated")]
    ProxyRepeated,
}

/// A tcp, https or tcpmux group member: where its users go.
type Member = (Arc<ProxyCtx>, Arc<Traffic>);

/// A group's members by proxy name, taken in turn.
#[derive(Debug)]
struct Rotation<T> {
    list: Mutex<Vec<(String, T)>>,
    next: AtomicUsize,
}

impl<T: Clone> Rotation<T> {
    fn new(name: &str, first: T) -> Rotation<T> {
        Rotation {
            list: Mutex::new(vec![(name.to_owned(), first)]),
            next: AtomicUsize::new(0),
        }
    }

    /// Adds member `name` unless one of that name is there.
    fn join(&self, name: &str, m: T) -> Result<(), GroupError> {
        let mut list = lock(&self.list);
        if list.iter().any(|(n, _)| n == name) {
            return Err(GroupError::ProxyRepeated);
        }
        list.push((name.to_owned(), m));
        Ok(())
    }

    /// Removes member `name`; true when none is left.
    fn leave(&self, name: &str) -> bool {
        let mut list = lock(&self.list);
        list.retain(|(n, _)| n != name);
        list.is_empty()
    }

    /// All members, starting at the next one in turn.
    fn candidates(&self) -> Vec<T> {
        let m = lock(&self.list);
        if m.is_empty() {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % m.len();
        (0..m.len())
            .map(|i| m[(start + i) % m.len()].1.clone())
            .collect()
    }
}

/// One tcp group: its shared listener and members.
struct TcpGroup {
    key: String,
    addr: String,
    declared_port: u16,
    real_port: u16,
    members: Rotation<Member>,
    token: CancellationToken,
    listener_task: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// All groups of one frps.
#[derive(Default)]
pub(crate) struct Groups {
    tcp: tokio::sync::Mutex<HashMap<String, Arc<TcpGroup>>>,
    http: http::HttpGroups,
    https: stream::StreamGroups,
    tcpmux: stream::StreamGroups,
}

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Groups")
    }
}

/// A proxy's membership; leaving happens in [`Groups::leave_tcp`].
#[derive(Debug)]
pub(crate) struct Membership {
    group: String,
    proxy: String,
}

impl Groups {
    /// Joins (or creates) tcp group `name`; returns the real port users connect to.
    pub(crate) async fn join_tcp(
        &self,
        shared: &Arc<Shared>,
        name: &str,
        key: &str,
        declared_port: u16,
        ctx: Arc<ProxyCtx>,
        traffic: Arc<Traffic>,
    ) -> Result<(u16, Membership), crate::proxy::ProxyError> {
        let mut groups = self.tcp.lock().await;
        let addr = shared.cfg.proxy_bind_addr.clone();
        let membership = Membership {
            group: name.to_owned(),
            proxy: ctx.name.clone(),
        };
        if let Some(g) = groups.get(name) {
            if g.addr != addr {
                return Err(GroupError::ParamsInvalid.into());
            }
            if g.declared_port != declared_port {
                return Err(GroupError::DifferentPort.into());
            }
            if g.key != key {
                return Err(GroupError::AuthFailed.into());
            }
            g.members.join(&membership.proxy, (ctx, traffic))?;
            return Ok((g.real_port, membership));
        }
        let (listener, guard) =
            ports::bind::<TcpListener>(&shared.cfg, &shared.registry, declared_port).await?;
        let group = Arc::new(TcpGroup {
            key: key.to_owned(),
            addr,
            declared_port,
            real_port: guard.port,
            members: Rotation::new(&membership.proxy, (ctx, traffic)),
            token: CancellationToken::new(),
            listener_task: Mutex::new(None),
        });
        let span = tracing::info_span!("group", name = %name, port = guard.port);
        let g = group.clone();
        let tracker = shared.tracker.clone();
        let task = shared.tracker.spawn(
            async move {
                let _guard = guard;
                loop {
                    tokio::select! {
                        _ = g.token.cancelled() => break,
                        r = listener.accept() => match r {
                            Ok((user, peer)) => {
                                let _ = user.set_nodelay(true);
                                let g = g.clone();
                                tracker.spawn(async move {
                                    serve_user(&g.members, user, peer, &[]).await
                                }.in_current_span());
                            }
                            Err(e) => {
                                warn!(error = %e, "accept failed");
                                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            }
                        },
                    }
                }
            }
            .instrument(span),
        );
        *lock(&group.listener_task) = Some(task);
        info!(group = %name, port = group.real_port, "tcp group created");
        let port = group.real_port;
        groups.insert(name.to_owned(), group);
        Ok((port, membership))
    }

    /// Leaves a tcp group; the last member closes the shared listener (and waits for it).
    pub(crate) async fn leave_tcp(&self, m: Membership) {
        let mut groups = self.tcp.lock().await;
        let Some(g) = groups.get(&m.group).cloned() else {
            return;
        };
        if g.members.leave(&m.proxy) {
            groups.remove(&m.group);
            g.token.cancel();
            let task = lock(&g.listener_task).take();
            if let Some(t) = task {
                let _ = t.await;
            }
            info!(group = %m.group, "tcp group closed");
        }
    }
}

/// One user of a group: the next member whose client can give a work connection serves it;
/// `first` (bytes already read from the user) goes to the work connection ahead of the rest.
async fn serve_user(members: &Rotation<Member>, user: TcpStream, peer: SocketAddr, first: &[u8]) {
    let mut asked = false;
    for (ctx, traffic) in members.candidates() {
        // The server plugins are asked once, about the member first in line (frp asks the
        // member the group's listener handed the user to).
        if !asked {
            asked = true;
            if !crate::proxy::user_allowed(&ctx, peer).await {
                return;
            }
        }
        match start_work(&ctx, peer, user.local_addr().ok()).await {
            Ok(work) => return relay(&ctx, &traffic, Box::new(user), work, peer, first).await,
            Err(e) => {
                debug!(proxy = %ctx.name, error = %e, "group member unavailable, trying the next")
            }
        }
    }
    warn!(%peer, "no group member could take the user connection");
}
