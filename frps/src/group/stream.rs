//! Load-balancing groups of https and tcpmux proxies (frp `server/group/{https,tcpmux}.go`):
//! members with the same `loadBalancer.group` share one route (https: the domain; tcpmux: the
//! domain, `routeByHTTPUser` and the credentials); each user connection goes to the next member
//! in turn, skipping members whose client cannot give a work connection. The first member
//! registers the route and fixes its settings and the group key; later members must match them
//! (frp's errors). The route goes away with the last member.
//!
//! Unlike frp, a tcpmux member whose `httpUser`/`httpPassword` differ from the group's is
//! refused (`group params invalid`) instead of being served under the first member's
//! credentials.

use super::{lock, serve_user, GroupError, Member, Rotation};
use crate::proxy::ProxyError;
use crate::service::Shared;
use crate::vhost::StreamBackend;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;

/// The proxy types with stream groups; each has its own group names.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Https,
    TcpMux,
}

impl Kind {
    fn groups(self, shared: &Shared) -> &StreamGroups {
        match self {
            Kind::Https => &shared.groups.https,
            Kind::TcpMux => &shared.groups.tcpmux,
        }
    }
}

/// One https or tcpmux group: its route and members.
pub(crate) struct StreamGroup {
    key: String,
    /// What members must share (domain, and for tcpmux routeByHTTPUser and credentials).
    route_key: Vec<String>,
    members: Arc<Rotation<Member>>,
    /// The route registered by the first member; dropped with the group.
    _route: Box<dyn Send + Sync>,
}

/// The https or tcpmux part of the group registry.
pub(crate) type StreamGroups = Mutex<HashMap<String, Arc<StreamGroup>>>;

impl StreamBackend for Rotation<Member> {
    fn serve(&self, user: TcpStream, peer: SocketAddr, first: Vec<u8>) -> BoxFuture<'_, ()> {
        Box::pin(async move { serve_user(self, user, peer, &first).await })
    }
}

/// A proxy's place in an https or tcpmux group; dropping it leaves the group.
pub(crate) struct StreamMembership {
    shared: Arc<Shared>,
    kind: Kind,
    group: String,
    member: String,
}

impl Drop for StreamMembership {
    fn drop(&mut self) {
        let mut groups = lock(self.kind.groups(&self.shared));
        let empty = groups
            .get(&self.group)
            .is_some_and(|g| g.members.leave(&self.member));
        if empty {
            groups.remove(&self.group);
            tracing::info!(group = %self.group, kind = ?self.kind, "group closed");
        }
    }
}

/// Joins (or creates) group `name` of `kind` with `member`; a new group's route is made by
/// `register` from the group's backend.
pub(crate) fn join<R: Send + Sync + 'static>(
    shared: &Arc<Shared>,
    kind: Kind,
    name: &str,
    key: &str,
    route_key: Vec<String>,
    member: Member,
    register: impl FnOnce(Arc<dyn StreamBackend>) -> Result<R, ProxyError>,
) -> Result<StreamMembership, ProxyError> {
    let proxy = member.0.name.clone();
    // Made only on success: dropping it leaves the group.
    let membership = || StreamMembership {
        shared: shared.clone(),
        kind,
        group: name.to_owned(),
        member: proxy.clone(),
    };
    let mut groups = lock(kind.groups(shared));
    if let Some(g) = groups.get(name) {
        if g.route_key != route_key {
            return Err(GroupError::ParamsInvalid.into());
        }
        if g.key != key {
            return Err(GroupError::AuthFailed.into());
        }
        g.members.join(&proxy, member)?;
        return Ok(membership());
    }
    let members = Arc::new(Rotation::new(&proxy, member));
    let route = register(members.clone())?;
    groups.insert(
        name.to_owned(),
        Arc::new(StreamGroup {
            key: key.to_owned(),
            route_key,
            members,
            _route: Box::new(route),
        }),
    );
    tracing::info!(group = %name, kind = ?kind, "group created");
    Ok(membership())
}
