//! Keys frp has, that the loader accepts, but whose feature frp-rs does not have yet. Each
//! [`Rule`] names its key, says why, and tells whether a config uses it (a value other than
//! the default), so nothing runs as if the key were absent:
//! - the loader warns about every use (`verify` prints the warnings and still accepts frp's
//!   example configs, which use every feature);
//! - frpc does not start a proxy that uses one ([`proxy_unsupported`]: an error status naming
//!   the key), does not start a visitor that uses one ([`visitor_unsupported`]: plugins),
//!   and does not start at all with a global
//!   one marked [`Effect::Refuse`];
//! - frps does not start with one marked [`Effect::Refuse`] (a feature it cannot run without,
//!   such as a check that must not be skipped; none today).
//!
//! Every other key has its effect; `load/keys_tests.rs` checks that each key is in one list or
//! the other, and names the test that shows each effect.

use super::{ClientConfig, ProxyConfig, QuicConfig, ServerConfig, VisitorConfig, WebServerConfig};
use std::fmt;

/// What using the key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// A warning; what depends on the key fails on its own (e.g. http proxies are refused).
    Warn,
    /// The binary (global keys) or the proxy (proxy keys) does not start.
    Refuse,
}

/// A rule for one key of `T` (relative to a proxy or visitor for theirs).
pub(crate) struct Rule<T> {
    pub(crate) key: &'static str,
    pub(crate) why: &'static str,
    pub(crate) effect: Effect,
    pub(crate) used: fn(&T) -> bool,
}

/// One use of an unsupported key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// Key path, e.g. `proxies[2].plugin`.
    pub key: String,
    /// The proxy's or visitor's name; empty for a global key.
    pub name: String,
    pub why: &'static str,
    pub effect: Effect,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() {
            write!(f, "{}: {}", self.key, self.why)
        } else {
            write!(f, "{} ({:?}): {}", self.key, self.name, self.why)
        }
    }
}

pub(crate) const CLIENT_RULES: &[Rule<ClientConfig>] = &[
    Rule {
        key: "transport.proxyURL",
        why: "ntlm proxies are not supported yet (http, https and socks5 are); frpc will not \
              start",
        effect: Effect::Refuse,
        used: |c| c.transport.proxy_url.to_ascii_lowercase().starts_with("ntlm://"),
    },
    Rule {
        key: "transport.proxyURL",
        why: "ignored with transport.protocol = \"quic\" or \"kcp\": UDP does not go through \
              the proxy (frp does not tunnel QUIC, and dials KCP at the proxy's address); frpc \
              dials frps directly",
        effect: Effect::Warn,
        used: |c| {
            let p = &c.transport.protocol;
            !c.transport.proxy_url.is_empty() && (p.eq_ignore_ascii_case("quic") || p == "kcp")
        },
    },
    Rule {
        key: "transport.quic",
        why: "ignored unless transport.protocol = \"quic\" or an xtcp proxy or visitor uses it for its tunnels",
        effect: Effect::Warn,
        used: |c| {
            !c.transport.protocol.eq_ignore_ascii_case("quic")
                && c.transport.quic != QuicConfig::default()
                && !c.proxies.iter().any(|p| p.kind == "xtcp")
                && !c.visitors.iter().any(|v| v.kind == "xtcp")
        },
    },
    Rule {
        key: "virtualNet.address",
        why: "virtual networks are not supported yet; frpc will not start",
        effect: Effect::Refuse,
        used: |c| !c.virtual_net.address.is_empty(),
    },
    Rule {
        key: "featureGates.VirtualNet",
        why: "virtual networks are not supported yet",
        effect: Effect::Warn,
        used: |c| c.feature_gates.get("VirtualNet").copied().unwrap_or(false),
    },
    Rule {
        key: "version",
        why: "ignored (frp keeps it as API metadata and does nothing with it either)",
        effect: Effect::Warn,
        used: |c| !c.version.is_empty(),
    },
];

/// `webServer.*`, the same on both sides (relative to `webServer`).
pub(crate) const WEB_RULES: &[Rule<WebServerConfig>] = &[
    Rule {
        key: "pprofEnable",
        why: "pprof (Go's profiler) is not supported; frp-rs has no such endpoint",
        effect: Effect::Warn,
        used: |w| w.pprof_enable,
    },
    Rule {
        key: "tls.trustedCaFile",
        why: "client certificates on the web server are not supported (frp ignores this key too)",
        effect: Effect::Warn,
        used: |w| {
            w.tls
                .as_ref()
                .is_some_and(|t| !t.trusted_ca_file.is_empty())
        },
    },
];

pub(crate) const PROXY_RULES: &[Rule<ProxyConfig>] = &[
    Rule {
        key: "plugin.type",
        why: "the virtual_net plugin is not supported (frp 0.70 ships it as alpha, behind featureGates.VirtualNet); this proxy will not start",
        effect: Effect::Refuse,
        used: |p| p.plugin.as_ref().is_some_and(|pl| pl.kind == "virtual_net"),
    },
];

pub(crate) const VISITOR_RULES: &[Rule<VisitorConfig>] = &[Rule {
    key: "plugin",
    why: "visitor plugins (virtual_net) are not supported yet; this visitor will not start",
    effect: Effect::Refuse,
    used: |v| v.plugin.is_some(),
}];

pub(crate) const SERVER_RULES: &[Rule<ServerConfig>] = &[
    Rule {
        key: "transport.quic",
        why: "ignored without quicBindPort",
        effect: Effect::Warn,
        used: |c| c.quic_bind_port == 0 && c.transport.quic != QuicConfig::default(),
    },
    Rule {
        key: "sshTunnelGateway",
        why: "the SSH tunnel gateway is not supported yet; nothing listens for SSH",
        effect: Effect::Warn,
        used: |c| {
            let mut d = ServerConfig::default();
            d.complete();
            c.ssh_tunnel_gateway != d.ssh_tunnel_gateway
        },
    },
    Rule {
        key: "version",
        why: "ignored (frp keeps it as API metadata and does nothing with it either)",
        effect: Effect::Warn,
        used: |c| !c.version.is_empty(),
    },
];

fn uses<'a, T>(
    rules: &'a [Rule<T>],
    t: &'a T,
    prefix: String,
    name: &'a str,
) -> impl Iterator<Item = Unsupported> + 'a {
    rules
        .iter()
        .filter(move |r| (r.used)(t))
        .map(move |r| Unsupported {
            key: match (prefix.is_empty(), r.key.is_empty()) {
                (true, _) => r.key.to_owned(),
                (false, true) => prefix.clone(),
                (false, false) => format!("{prefix}.{}", r.key),
            },
            name: name.to_owned(),
            why: r.why,
            effect: r.effect,
        })
}

/// What to refuse to start with: the uses marked [`Effect::Refuse`], one per line; `None` when
/// there are none.
pub fn refusal(found: &[Unsupported]) -> Option<String> {
    let refused: Vec<String> = found
        .iter()
        .filter(|u| u.effect == Effect::Refuse)
        .map(ToString::to_string)
        .collect();
    (!refused.is_empty()).then(|| refused.join("\n"))
}

/// The table both sides have: `webServer`.
fn shared(web: &WebServerConfig) -> impl Iterator<Item = Unsupported> + '_ {
    uses(WEB_RULES, web, "webServer".into(), "")
}

/// The unsupported keys a proxy uses (relative to the proxy); any keeps it from starting.
pub fn proxy_unsupported(p: &ProxyConfig) -> Vec<Unsupported> {
    uses(PROXY_RULES, p, String::new(), "").collect()
}

/// Every unsupported key an frpc config uses: global ones, then each proxy's and visitor's
/// (by index, with the name).
pub fn client_unsupported(c: &ClientConfig) -> Vec<Unsupported> {
    let mut out = client_global_unsupported(c);
    for (i, p) in c.proxies.iter().enumerate() {
        out.extend(uses(PROXY_RULES, p, format!("proxies[{i}]"), &p.name));
    }
    for (i, v) in c.visitors.iter().enumerate() {
        out.extend(uses(VISITOR_RULES, v, format!("visitors[{i}]"), &v.name));
    }
    out
}

/// The unsupported global keys an frpc config uses (no proxy's or visitor's).
pub fn client_global_unsupported(c: &ClientConfig) -> Vec<Unsupported> {
    uses(CLIENT_RULES, c, String::new(), "")
        .chain(shared(&c.web_server))
        .collect()
}

/// The unsupported keys a visitor uses; any keeps it from starting.
pub fn visitor_unsupported(v: &VisitorConfig) -> Vec<Unsupported> {
    uses(VISITOR_RULES, v, String::new(), &v.name).collect()
}

/// Every unsupported key an frps config uses.
pub fn server_unsupported(c: &ServerConfig) -> Vec<Unsupported> {
    uses(SERVER_RULES, c, String::new(), "")
        .chain(shared(&c.web_server))
        .collect()
}
