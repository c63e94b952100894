//! Route table of the vhost HTTP server: (domain, location, routeByHTTPUser) -> route.
//! Mirrors frp `pkg/util/vhost/router.go` (`Routers`) and the lookup order of
//! `pkg/util/vhost/http.go` `getVhost`. Pure data: no IO, no locking (the caller locks).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// `(domain, location, routeByHTTPUser)` is already taken (frp's text).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("router config conflict")]
pub(crate) struct Conflict;

/// Routes by domain, then by routeByHTTPUser; each list sorted by location, descending, so the
/// first location that is a prefix of the path is the longest one.
#[derive(Debug)]
pub(crate) struct Routers<T> {
    by_domain: HashMap<String, HashMap<String, Vec<(String, T)>>>,
}

impl<T> Default for Routers<T> {
    fn default() -> Self {
        Routers {
            by_domain: HashMap::new(),
        }
    }
}

impl<T> Routers<T> {
    /// Adds a route; the domain is lowercased, the location kept as is.
    pub(crate) fn add(
        &mut self,
        domain: &str,
        location: &str,
        http_user: &str,
        payload: T,
    ) -> Result<(), Conflict> {
        let routes = self
            .by_domain
            .entry(domain.to_lowercase())
            .or_default()
            .entry(http_user.to_owned())
            .or_default();
        if routes.iter().any(|(l, _)| l == location) {
            return Err(Conflict);
        }
        routes.push((location.to_owned(), payload));
        routes.sort_by(|a, b| b.0.cmp(&a.0));
        Ok(())
    }

    /// Removes the route with exactly this key, if any.
    pub(crate) fn del(&mut self, domain: &str, location: &str, http_user: &str) {
        let domain = domain.to_lowercase();
        let Some(users) = self.by_domain.get_mut(&domain) else {
            return;
        };
        if let Some(routes) = users.get_mut(http_user) {
            routes.retain(|(l, _)| l != location);
            if routes.is_empty() {
                users.remove(http_user);
            }
        }
        if users.is_empty() {
            self.by_domain.remove(&domain);
        }
    }

    /// The route of exactly `host` and `http_user` whose location is the longest prefix of
    /// `path` (frp `Routers.Get`).
    fn get(&self, host: &str, path: &str, http_user: &str) -> Option<&T> {
        self.by_domain
            .get(host)?
            .get(http_user)?
            .iter()
            .find(|(l, _)| path.starts_with(l.as_str()))
            .map(|(_, p)| p)
    }

    /// The route for `host`, trying the route registered for `http_user` and then the one
    /// registered for any user, first at the exact host, then at wildcards from the most to the
    /// least specific (`*.b.example.com`, `*.example.com`; never `*.com`), then at `*`
    /// (frp `getVhost`). `host` must already be canonical ([`canonical_host`]).
    pub(crate) fn lookup(&self, host: &str, path: &str, http_user: &str) -> Option<&T> {
        let find = |h: &str| {
            self.get(h, path, http_user)
                .or_else(|| self.get(h, path, ""))
        };
        if let Some(p) = find(host) {
            return Some(p);
        }
        let labels: Vec<&str> = host.split('.').collect();
        let mut start = 0;
        while labels.len() - start >= 3 {
            let wildcard = format!("*.{}", labels[start + 1..].join("."));
            if let Some(p) = find(&wildcard) {
                return Some(p);
            }
            start += 1;
        }
        find("*")
    }

    /// Number of routes (tests, metrics).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_domain
            .values()
            .flat_map(|u| u.values())
            .map(Vec::len)
            .sum()
    }
}

/// A route table shared between the server that looks routes up and the proxies that own them.
#[derive(Debug)]
pub(crate) struct Table<T>(Arc<RwLock<Routers<T>>>);

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table(Arc::new(RwLock::new(Routers::default())))
    }
}

impl<T: Clone> Table<T> {
    /// Adds a route; it lives until the guard drops.
    pub(crate) fn register(
        &self,
        domain: &str,
        location: &str,
        http_user: &str,
        payload: T,
    ) -> Result<RouteGuard<T>, Conflict> {
        let mut t = self.0.write().unwrap_or_else(|p| p.into_inner());
        t.add(domain, location, http_user, payload)?;
        Ok(RouteGuard {
            table: self.0.clone(),
            key: (
                domain.to_lowercase(),
                location.to_owned(),
                http_user.to_owned(),
            ),
        })
    }

    /// [`Routers::lookup`] under the read lock.
    pub(crate) fn lookup(&self, host: &str, path: &str, http_user: &str) -> Option<T> {
        let t = self.0.read().unwrap_or_else(|p| p.into_inner());
        t.lookup(host, path, http_user).cloned()
    }
}

/// Removes its route when dropped (the proxy closed).
#[derive(Debug)]
pub(crate) struct RouteGuard<T> {
    table: Arc<RwLock<Routers<T>>>,
    key: (String, String, String),
}

impl<T> Drop for RouteGuard<T> {
    fn drop(&mut self) {
        let (d, l, u) = &self.key;
        let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
        t.del(d, l, u);
    }
}

/// frp `CanonicalHost`: the Host header without its port and trailing dot, lowercased.
/// `[::1]:80` gives `::1`.
pub(crate) fn canonical_host(host: &str) -> String {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            // One colon: host:port. Several without brackets: a bare IPv6 address.
            Some((h, _)) if !h.contains(':') => h,
            _ => host,
        }
    };
    h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(routes: &[(&str, &str, &str, u32)]) -> Routers<u32> {
        let mut r = Routers::default();
        for (d, l, u, id) in routes {
            r.add(d, l, u, *id).unwrap();
        }
        r
    }

    #[test]
    fn exact_then_wildcards_of_any_depth_then_star() {
        let r = table(&[
            ("a.b.example.com", "", "", 1),
            ("*.b.example.com", "", "", 2),
            ("*.example.com", "", "", 3),
            ("*", "", "", 4),
        ]);
        assert_eq!(r.lookup("a.b.example.com", "/", ""), Some(&1));
        assert_eq!(r.lookup("x.b.example.com", "/", ""), Some(&2));
        assert_eq!(r.lookup("x.y.b.example.com", "/", ""), Some(&2));
        assert_eq!(r.lookup("x.c.example.com", "/", ""), Some(&3));
        assert_eq!(r.lookup("q.example.com", "/", ""), Some(&3));
        // example.com has only two labels: no wildcard applies, only `*`.
        assert_eq!(r.lookup("example.com", "/", ""), Some(&4));
        assert_eq!(r.lookup("other.org", "/", ""), Some(&4));
    }

    #[test]
    fn never_star_dot_tld() {
        let r = table(&[("*.com", "", "", 1)]);
        assert_eq!(r.lookup("example.com", "/", ""), None);
        // frp forms `*.com` only from three labels or more.
        assert_eq!(r.lookup("a.example.com", "/", ""), None);
    }

    #[test]
    fn longest_location_prefix_wins() {
        let r = table(&[
            ("h", "", "", 1),
            ("h", "/api", "", 2),
            ("h", "/api/v2", "", 3),
        ]);
        assert_eq!(r.lookup("h", "/", ""), Some(&1));
        assert_eq!(r.lookup("h", "/api", ""), Some(&2));
        assert_eq!(
            r.lookup("h", "/apiary", ""),
            Some(&2),
            "a string prefix, as frp"
        );
        assert_eq!(r.lookup("h", "/api/v2/x", ""), Some(&3));
        assert_eq!(
            r.lookup("h", "/API", ""),
            Some(&1),
            "paths are case-sensitive"
        );
    }

    #[test]
    fn route_by_user_then_any_user() {
        let r = table(&[("h", "", "alice", 1), ("h", "", "", 2)]);
        assert_eq!(r.lookup("h", "/", "alice"), Some(&1));
        assert_eq!(r.lookup("h", "/", "bob"), Some(&2));
        assert_eq!(r.lookup("h", "/", ""), Some(&2));
        let only_alice = table(&[("h", "", "alice", 1)]);
        assert_eq!(only_alice.lookup("h", "/", "bob"), None);
    }

    #[test]
    fn exact_host_for_any_user_beats_wildcard_for_this_user() {
        let r = table(&[("a.example.com", "", "", 1), ("*.example.com", "", "u", 2)]);
        assert_eq!(r.lookup("a.example.com", "/", "u"), Some(&1));
    }

    #[test]
    fn conflict_and_delete() {
        let mut r = table(&[("H.example.com", "/a", "", 1)]);
        assert_eq!(r.add("h.example.com", "/a", "", 2), Err(Conflict));
        assert!(r.add("h.example.com", "/a", "u", 3).is_ok());
        assert!(r.add("h.example.com", "/b", "", 4).is_ok());
        r.del("h.EXAMPLE.com", "/a", "");
        assert_eq!(r.lookup("h.example.com", "/a", ""), None);
        assert_eq!(r.lookup("h.example.com", "/a", "u"), Some(&3));
        r.del("h.example.com", "/a", "u");
        r.del("h.example.com", "/b", "");
        assert_eq!(r.len(), 0);
        assert!(r.by_domain.is_empty(), "empty maps are dropped");
    }

    #[test]
    fn canonical_hosts() {
        assert_eq!(canonical_host("Example.COM"), "example.com");
        assert_eq!(canonical_host("example.com:8080"), "example.com");
        assert_eq!(canonical_host("example.com."), "example.com");
        assert_eq!(canonical_host("example.com.:80"), "example.com");
        assert_eq!(canonical_host("[::1]:80"), "::1");
        assert_eq!(canonical_host("[::1]"), "::1");
        assert_eq!(canonical_host("::1"), "::1");
        assert_eq!(canonical_host(""), "");
    }

    proptest! {
        #[test]
        fn random_hosts_and_paths_never_panic(
            host in "\\PC{0,40}",
            path in "\\PC{0,40}",
            user in "\\PC{0,8}",
            labels in proptest::collection::vec("[a-z*]{0,3}", 0..6),
        ) {
            let mut r = table(&[("*.a.b", "/x", "", 1), ("*", "", "u", 2), ("a.b.c", "", "", 3)]);
            let dotted = labels.join(".");
            let _ = r.add(&dotted, &path, &user, 4);
            for h in [host.as_str(), dotted.as_str()] {
                let c = canonical_host(h);
                let _ = r.lookup(&c, &path, &user);
            }
            r.del(&dotted, &path, &user);
        }

        /// Host with a port, a trailing dot or in upper case routes as the bare lowercase name.
        #[test]
        fn host_variants_normalise_as_the_router_expects(
            labels in proptest::collection::vec("[a-z0-9-]{1,10}", 1..5),
            upper in proptest::collection::vec(any::<bool>(), 0..60),
            dot in any::<bool>(),
            port in proptest::option::of(any::<u16>()),
        ) {
            let base = labels.join(".");
            let mut host: String = base
                .chars()
                .zip(upper.iter().chain(std::iter::repeat(&false)))
                .map(|(c, u)| if *u { c.to_ascii_uppercase() } else { c })
                .collect();
            if dot {
                host.push('.');
            }
            if let Some(p) = port {
                host = format!("{host}:{p}");
            }
            prop_assert_eq!(&canonical_host(&host), &base);
            let r = table(&[(base.as_str(), "", "", 1)]);
            prop_assert_eq!(r.lookup(&canonical_host(&host), "/", ""), Some(&1));
        }

        #[test]
        fn wildcard_matches_any_depth_below_its_domain(
            sub in proptest::collection::vec("[a-z0-9]{1,6}", 1..5),
        ) {
            let r = table(&[("*.example.com", "", "", 1)]);
            let host = format!("{}.example.com", sub.join("."));
            prop_assert_eq!(r.lookup(&host, "/", ""), Some(&1));
        }

        #[test]
        fn the_chosen_location_is_the_longest_matching_prefix(
            locs in proptest::collection::btree_set("/[ab]{0,4}", 1..6),
            path in "/[ab]{0,6}",
        ) {
            let mut r = Routers::default();
            for l in &locs {
                r.add("h", l, "", l.clone()).unwrap();
            }
            let want = locs.iter().filter(|l| path.starts_with(l.as_str())).max_by_key(|l| l.len());
            prop_assert_eq!(r.lookup("h", &path, ""), want);
        }
    }
}
