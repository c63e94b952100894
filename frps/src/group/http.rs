//! Load-balancing groups of http proxies (frp `server/group/http.go`): members with the same
//! `loadBalancer.group` share one route (domain, location, routeByHTTPUser); each new upstream
//! connection goes to the next member in turn, skipping members whose client cannot give a
//! work connection. The first member fixes the route's settings and the group key; the route
//! goes away with the last member.

use super::{lock, GroupError, Rotation};
use crate::proxy::ProxyError;
use crate::service::Shared;
use crate::vhost::router::RouteGuard;
use crate::vhost::{Backend, HttpRoute, Work};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// One http group: its route and members.
#[derive(Debug)]
pub(crate) struct HttpGroup {
    key: String,
    /// (domain, location, routeByHTTPUser), fixed by the first member.
    route_key: (String, String, String),
    backend: Arc<Members>,
    _route: RouteGuard<Arc<HttpRoute>>,
}

/// The members, as the route's backend.
#[derive(Debug)]
struct Members {
    name: String,
    list: Rotation<Arc<dyn Backend>>,
}

impl Backend for Members {
    fn connect(&self, peer: SocketAddr) -> BoxFuture<'_, Result<Work, String>> {
        Box::pin(async move {
            let candidates = self.list.candidates();
            if candidates.is_empty() {
                return Err(format!("group [{}] has no members", self.name));
            }
            let mut last = String::new();
            for b in candidates {
                match b.connect(peer).await {
                    Ok(w) => return Ok(w),
                    Err(e) => last = format!("{}: {e}", b.name()),
                }
            }
            Err(last)
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// A proxy's place in an http group; dropping it leaves the group.
#[derive(Debug)]
pub(crate) struct HttpMembership {
    shared: Arc<Shared>,
    group: String,
    member: String,
}

impl Drop for HttpMembership {
    fn drop(&mut self) {
        let mut groups = lock(&self.shared.groups.http);
        let empty = groups
            .get(&self.group)
            .is_some_and(|g| g.backend.list.leave(&self.member));
        if empty {
            groups.remove(&self.group);
            tracing::info!(group = %self.group, "http group closed");
        }
    }
}

/// Joins (or creates) http group `name` for one (domain, location) of proxy `member`. `route`
/// carries the member's settings and backend; a new group registers them on the vhost.
pub(crate) fn join(
    shared: &Arc<Shared>,
    vhost: &crate::vhost::HttpVhost,
    name: &str,
    key: &str,
    route_key: (String, String, String),
    member: &str,
    route: &HttpRoute,
) -> Result<HttpMembership, ProxyError> {
    let membership = || HttpMembership {
        shared: shared.clone(),
        group: name.to_owned(),
        member: member.to_owned(),
    };
    let mut groups = lock(&shared.groups.http);
    if let Some(g) = groups.get(name) {
        if g.route_key != route_key {
            return Err(GroupError::ParamsInvalid.into());
        }
        if g.key != key {
            return Err(GroupError::AuthFailed.into());
        }
        g.backend.list.join(member, route.backend.clone())?;
        return Ok(membership());
    }
    let backend = Arc::new(Members {
        name: format!("group {name}"),
        list: Rotation::new(member, route.backend.clone()),
    });
    let shared_route = Arc::new(HttpRoute {
        auth: route.auth.clone(),
        host_rewrite: route.host_rewrite.clone(),
        request_headers: route.request_headers.clone(),
        response_headers: route.response_headers.clone(),
        backend: backend.clone(),
    });
    let (d, l, u) = &route_key;
    let guard = vhost.register(d, l, u, shared_route)?;
    groups.insert(
        name.to_owned(),
        Arc::new(HttpGroup {
            key: key.to_owned(),
            route_key,
            backend,
            _route: guard,
        }),
    );
    tracing::info!(group = %name, "http group created");
    Ok(membership())
}

/// The http part of the group registry.
pub(crate) type HttpGroups = Mutex<HashMap<String, Arc<HttpGroup>>>;
