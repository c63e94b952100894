//! Address keys, read as frp reads them (Go `net.Listen` / `net.Dial`):
//! - a listen address (`bindAddr`, `proxyBindAddr`, `webServer.addr`, a visitor's `bindAddr`,
//!   `transport.connectServerLocalIP`) is an IP address, or a host name resolved to one address,
//!   the first IPv4 one as Go's `Listen` picks ("localhost" is 127.0.0.1). A value that is
//!   neither is an error; it never means all interfaces.
//! - a dial address (`serverAddr`, `localIP`) is an IP address or a host name, resolved when
//!   dialled (the server may not be reachable yet), never with a port in it.
//!
//! No config is changed here: the loader checks, the binaries resolve when they bind.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// An IP literal, also in brackets (`[::1]`); "" is all IPv4 interfaces, as Go's `:port`.
fn literal(host: &str) -> Option<IpAddr> {
    if host.is_empty() {
        return Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// A DNS name as resolvers accept it: labels of letters, digits, '-' and '_'.
pub fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').enumerate().all(|(i, label)| {
            // A trailing dot (fully qualified name) leaves one empty label at the end.
            (label.is_empty() && i > 0 && host.ends_with('.'))
                || (!label.is_empty()
                    && label.len() <= 63
                    && label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        })
}

/// Go's choice among a name's addresses: the first IPv4 one, else the first.
fn pick(addrs: impl Iterator<Item = SocketAddr>) -> Option<IpAddr> {
    let all: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
    all.iter()
        .find(|ip| ip.is_ipv4())
        .or_else(|| all.first())
        .copied()
}

fn unresolved(host: &str) -> String {
    format!("{host:?} is not an IP address or a host name that resolves")
}

/// Resolves a listen address (blocking: for the loader, before any runtime exists).
pub fn listen_ip(host: &str) -> Result<IpAddr, String> {
    if let Some(ip) = literal(host) {
        return Ok(ip);
    }
    if !is_host_name(host) {
        return Err(unresolved(host));
    }
    (host, 0)
        .to_socket_addrs()
        .ok()
        .and_then(pick)
        .ok_or_else(|| unresolved(host))
}

/// Resolves a listen address without blocking the runtime (binaries, when they bind).
pub async fn resolve_listen_ip(host: &str) -> Result<IpAddr, String> {
    if let Some(ip) = literal(host) {
        return Ok(ip);
    }
    if !is_host_name(host) {
        return Err(unresolved(host));
    }
    tokio::net::lookup_host((host, 0))
        .await
        .ok()
        .and_then(pick)
        .ok_or_else(|| unresolved(host))
}

/// Checks a dial address's form; `port_key` names where its port goes.
pub fn check_dial_host(host: &str, port_key: &str) -> Result<(), String> {
    if (literal(host).is_some() && !host.is_empty()) || is_host_name(host) {
        Ok(())
    } else {
        Err(format!(
            "{host:?} is not a host name or IP address (the port goes in {port_key})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        for ok in [
            "localhost",
            "a.b-c.example",
            "my_host",
            "example.com.",
            "x1",
        ] {
            assert!(is_host_name(ok), "{ok}");
        }
        for bad in ["", "a b", "a:1", "http://x", ".a", "a..b", "10.0.0.1 "] {
            assert!(!is_host_name(bad), "{bad:?}");
        }
    }
}
