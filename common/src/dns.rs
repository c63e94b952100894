//! Name resolution for the addresses frpc dials (frp `pkg/util/net/dns.go`): the system's
//! resolver, or, once frpc's `dnsServer` is set, only that server (UDP, TCP for truncated
//! answers, as Go's resolver with frp's dialer), after the hosts file, as Go does.
//!
//! As in frp the choice is process-wide: [`set_server`] is called once, when frpc starts.
//! Every dial of a host name goes through [`lookup`] or [`connect`]: frps, the STUN server,
//! local services, health checks, plugins' upstreams, the OIDC token endpoint. Listen
//! addresses are resolved by the system's resolver (frp's listeners do the same through Go's
//! default resolver, which `dnsServer` replaced; a listen address is nearly always an IP).

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use tokio::net::TcpStream;

/// The resolver `dnsServer` asked for; unset means the system's.
static CUSTOM: OnceLock<(SocketAddr, TokioResolver)> = OnceLock::new();

/// How long one query waits for the server's answer, and how many times it is sent: a lookup
/// gives up after ~6 s, before a dial's own 10 s, so its error says what failed (Go: 5 s x 2).
const QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
const QUERY_ATTEMPTS: usize = 2;

/// Why `dnsServer` cannot be used (the caller names the key).
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{0:?}: expected host or IP address with an optional port (53 when omitted), e.g. \"8.8.8.8\", \"[2001:db8::1]:5353\" or \"dns.lan:53\"")]
    Address(String),
    #[error("{0:?}: {1}")]
    Resolver(String, String),
    #[error("already {0}; it is set once per process")]
    AlreadySet(SocketAddr),
}

/// `dnsServer` as frp takes it: `host` or `host:port` (port 53 when omitted, not 0; IPv6 in
/// brackets with a port). Surrounding spaces are ignored (frp would fail every lookup).
pub fn parse_server(s: &str) -> Result<(String, u16), DnsError> {
    let bad = || DnsError::Address(s.to_owned());
    let t = s.trim();
    if let Ok(a) = t.parse::<SocketAddr>() {
        return (a.port() != 0)
            .then(|| (a.ip().to_string(), a.port()))
            .ok_or_else(bad);
    }
    let bare = t.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok((ip.to_string(), 53));
    }
    let (host, port) = match t.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
        ),
        None => (t, 53),
    };
    if crate::config::is_host_name(host) {
        Ok((host.to_owned(), port))
    } else {
        Err(bad())
    }
}

/// Sends every later lookup of this process to the DNS server `s` (frpc's `dnsServer`). A
/// host name there is looked up once, now, by the system's resolver (Go's dialer finds it in
/// the hosts file).
///
/// # Errors
/// [`DnsError::Address`] for a value that is not `host[:port]` or does not resolve,
/// [`DnsError::AlreadySet`] when another server was set before.
pub async fn set_server(s: &str) -> Result<SocketAddr, DnsError> {
    let (host, port) = parse_server(s)?;
    let addr = match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        // Go's choice among a name's addresses: the first IPv4 one, else the first.
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .ok()
            .and_then(|a| {
                let all: Vec<SocketAddr> = a.collect();
                all.iter().find(|a| a.is_ipv4()).or(all.first()).copied()
            })
            .ok_or_else(|| DnsError::Resolver(s.to_owned(), format!("{host} does not resolve")))?,
    };
    if let Some((set, _)) = CUSTOM.get() {
        return if *set == addr {
            Ok(addr)
        } else {
            Err(DnsError::AlreadySet(*set))
        };
    }
    let mut server = NameServerConfig::udp_and_tcp(addr.ip());
    for c in &mut server.connections {
        c.port = addr.port();
    }
    let mut opts = ResolverOpts::default();
    // Go asks for A and AAAA and dials in the order it gets; hosts file first.
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.use_hosts_file = ResolveHosts::Always;
    opts.timeout = QUERY_TIMEOUT;
    opts.attempts = QUERY_ATTEMPTS;
    let resolver = TokioResolver::builder_with_config(
        ResolverConfig::from_parts(None, Vec::new(), vec![server]),
        TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    .map_err(|e| DnsError::Resolver(s.to_owned(), e.to_string()))?;
    let _ = CUSTOM.set((addr, resolver));
    match CUSTOM.get() {
        Some((set, _)) if *set != addr => Err(DnsError::AlreadySet(*set)),
        _ => Ok(addr),
    }
}

/// The addresses `host:port` resolves to (an IP literal as itself, brackets allowed).
///
/// # Errors
/// The resolver's error, naming the host, or `NotFound` when it has no address.
pub async fn lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = match CUSTOM.get() {
        Some((server, r)) => r
            .lookup_ip(bare)
            .await
            .map_err(|e| {
                let why = if e.is_no_records_found() {
                    "no such host".to_owned()
                } else {
                    e.to_string()
                };
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("lookup {bare} on {server} (dnsServer): {why}"),
                )
            })?
            .iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect(),
        None => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("lookup {bare}: {e}")))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("lookup {bare}: no address"),
        ));
    }
    Ok(addrs)
}

/// [`lookup`] of `host:port` written as one string (`[v6]:port` for IPv6).
///
/// # Errors
/// `InvalidInput` without a port; else as [`lookup`].
pub async fn lookup_addr(addr: &str) -> io::Result<Vec<SocketAddr>> {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{addr:?}: expected host:port"),
            )
        })?;
    lookup(host, port).await
}

/// A TCP connection to `host:port`: each address it resolves to in turn, the last error
/// when none answers (as tokio's `TcpStream::connect` and Go's dialer).
///
/// # Errors
/// As [`lookup`], or the last connect error.
pub async fn connect(host: &str, port: u16) -> io::Result<TcpStream> {
    connect_first(lookup(host, port).await?).await
}

/// [`connect`] to `host:port` written as one string.
///
/// # Errors
/// As [`lookup_addr`] and [`connect`].
pub async fn connect_addr(addr: &str) -> io::Result<TcpStream> {
    connect_first(lookup_addr(addr).await?).await
}

/// The first of `addrs` that accepts a connection, or the last error.
async fn connect_first(addrs: Vec<SocketAddr>) -> io::Result<TcpStream> {
    let mut last = None;
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dns_server_as_frp() {
        let ok = |s: &str, host: &str, port: u16| {
            assert_eq!(parse_server(s).unwrap(), (host.to_owned(), port), "{s}")
        };
        ok("8.8.8.8", "8.8.8.8", 53);
        ok("1.1.1.1:5353", "1.1.1.1", 5353);
        ok(" 1.1.1.1:5353 ", "1.1.1.1", 5353);
        ok("2001:db8::1", "2001:db8::1", 53);
        ok("[2001:db8::1]:54", "2001:db8::1", 54);
        ok("localhost:5353", "localhost", 5353);
        ok("dns.google", "dns.google", 53);
        for bad in [
            "8.8.8.8:x",
            "",
            "8.8.8.8:99999",
            "8.8.8.8:0",
            "udp://1.1.1.1",
            "a b",
        ] {
            let e = parse_server(bad).unwrap_err().to_string();
            assert!(e.contains("expected host or IP address"), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn literals_and_bad_addresses() {
        assert_eq!(
            lookup("127.0.0.1", 80).await.unwrap(),
            vec!["127.0.0.1:80".parse().unwrap()]
        );
        assert_eq!(
            lookup("[::1]", 80).await.unwrap(),
            vec!["[::1]:80".parse().unwrap()]
        );
        assert_eq!(
            lookup_addr("[::1]:81").await.unwrap(),
            vec!["[::1]:81".parse().unwrap()]
        );
        assert!(lookup_addr("no-port").await.is_err());
        let e = lookup("no-such-host.invalid", 1).await.unwrap_err();
        assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
    }
}
