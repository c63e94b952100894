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

/// Why `dnsServer` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("dnsServer {0:?}: expected an IP address, with an optional port (53 when omitted), e.g. \"8.8.8.8\" or \"[2001:db8::1]:5353\"")]
    Address(String),
    #[error("dnsServer {0:?}: {1}")]
    Resolver(String, String),
    #[error("dnsServer is already {0}; it is set once per process")]
    AlreadySet(SocketAddr),
}

/// `dnsServer` as frp reads it: `ip` or `ip:port` (port 53 when omitted; IPv6 in brackets
/// with a port). A host name is refused: frp would resolve it with the very resolver it
/// replaces, so every lookup would fail.
pub fn parse_server(s: &str) -> Result<SocketAddr, DnsError> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip = s.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| DnsError::Address(s.to_owned()))
}

/// Sends every later lookup of this process to the DNS server `s` (frpc's `dnsServer`).
///
/// # Errors
/// [`DnsError::Address`] for a value that is not `ip[:port]`, [`DnsError::AlreadySet`] when
/// another server was set before.
pub fn set_server(s: &str) -> Result<SocketAddr, DnsError> {
    let addr = parse_server(s)?;
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
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("lookup {bare} on {server} (dnsServer): {e}"),
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
        assert_eq!(
            parse_server("8.8.8.8").unwrap(),
            "8.8.8.8:53".parse().unwrap()
        );
        assert_eq!(
            parse_server("1.1.1.1:5353").unwrap(),
            "1.1.1.1:5353".parse().unwrap()
        );
        assert_eq!(
            parse_server("2001:db8::1").unwrap(),
            "[2001:db8::1]:53".parse().unwrap()
        );
        assert_eq!(
            parse_server("[2001:db8::1]:54").unwrap(),
            "[2001:db8::1]:54".parse().unwrap()
        );
        for bad in ["dns.google", "8.8.8.8:x", "", "8.8.8.8:99999"] {
            let e = parse_server(bad).unwrap_err().to_string();
            assert!(e.contains("expected an IP address"), "{bad}: {e}");
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
