//! The PROXY protocol header frpc writes to the local service for
//! `transport.proxyProtocolVersion` (frp `pkg/util/net/proxyprotocol.go`, rendered as
//! pires/go-proxyproto does: v1 text, v2 binary without TLVs).

use std::net::{IpAddr, SocketAddr};

/// v2's 12-byte signature.
const SIG_V2: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Stream (tcp, http, https, ...) or datagram (udp) transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Stream,
    Datagram,
}

/// The header for `version` ("v1"; anything else is v2, as in frp) from `src` to `dst`; `None`
/// addresses (not IP literals) give go-proxyproto's unspecified form (`PROXY UNKNOWN`).
///
/// The family follows the source as in go-proxyproto (an IPv4-mapped IPv6 source is IPv4); a
/// destination of the other family is written in the source's family when it can be (an
/// IPv4 one as IPv4-mapped IPv6), else both are written as IPv6.
pub(crate) fn header(
    version: &str,
    transport: Transport,
    addrs: Option<(SocketAddr, SocketAddr)>,
) -> Vec<u8> {
    let addrs = addrs.map(|(s, d)| {
        let (si, di) = (canonical(s.ip()), canonical(d.ip()));
        let (si, di) = match (si, di) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => (si, di),
            (a, b) => (IpAddr::V6(as_v6(a)), IpAddr::V6(as_v6(b))),
        };
        (SocketAddr::new(si, s.port()), SocketAddr::new(di, d.port()))
    });
    if version == "v1" {
        v1(transport, addrs)
    } else {
        v2(transport, addrs)
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn as_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// v1 has TCP4 and TCP6 only; anything else is the short `UNKNOWN` form.
fn v1(transport: Transport, addrs: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
    match addrs {
        Some((s, d)) if transport == Transport::Stream => format!(
            "PROXY {} {} {} {} {}\r\n",
            if s.is_ipv4() { "TCP4" } else { "TCP6" },
            // go's IP.String(): an IPv4-mapped IPv6 address is printed dotted.
            canonical(s.ip()),
            canonical(d.ip()),
            s.port(),
            d.port()
        )
        .into_bytes(),
        _ => b"PROXY UNKNOWN\r\n".to_vec(),
    }
}

/// Version 2, command PROXY (0x21); family/protocol 0x11 TCP4, 0x12 UDP4, 0x21 TCP6, 0x22
/// UDP6, 0x00 unspecified; then the address block's length and the block.
fn v2(transport: Transport, addrs: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
    let mut h = SIG_V2.to_vec();
    h.push(0x21);
    let proto = match transport {
        Transport::Stream => 0x01,
        Transport::Datagram => 0x02,
    };
    let mut block = Vec::with_capacity(36);
    let family = match addrs.map(|(s, d)| (s.ip(), d.ip())) {
        Some((IpAddr::V4(s), IpAddr::V4(d))) => {
            block.extend_from_slice(&s.octets());
            block.extend_from_slice(&d.octets());
            0x10
        }
        Some((s, d)) => {
            block.extend_from_slice(&as_v6(s).octets());
            block.extend_from_slice(&as_v6(d).octets());
            0x20
        }
        None => 0,
    };
    if let Some((s, d)) = addrs {
        block.extend_from_slice(&s.port().to_be_bytes());
        block.extend_from_slice(&d.port().to_be_bytes());
        h.push(family | proto);
    } else {
        h.push(0);
    }
    // At most 36 bytes: the length always fits.
    h.extend_from_slice(&(block.len() as u16).to_be_bytes());
    h.extend_from_slice(&block);
    h
}

/// The user's source and destination from StartWorkConn as frp takes them: a header only when
/// `src_addr` is set and `src_port` is not 0; an empty `dst_addr` is 127.0.0.1. The inner
/// `None` is an address that is not an IP literal.
pub(crate) fn start_addrs(
    start: &common::msg::StartWorkConn,
) -> Option<Option<(SocketAddr, SocketAddr)>> {
    if start.src_addr.is_empty() || start.src_port == 0 {
        return None;
    }
    let dst = if start.dst_addr.is_empty() {
        "127.0.0.1"
    } else {
        start.dst_addr.as_str()
    };
    let ip = |s: &str| {
        s.trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .ok()
    };
    Some(ip(&start.src_addr).zip(ip(dst)).map(|(s, d)| {
        (
            SocketAddr::new(s, start.src_port),
            SocketAddr::new(d, start.dst_port),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn v1_tcp4_tcp6_and_unknown() {
        let h = header(
            "v1",
            Transport::Stream,
            Some((a("192.168.0.1:56324"), a("192.168.0.11:443"))),
        );
        assert_eq!(h, b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
        let h = header(
            "v1",
            Transport::Stream,
            Some((a("[ffff::1]:1"), a("[::ffff:10.0.0.1]:2"))),
        );
        // go's IP.String() prints an IPv4-mapped address dotted.
        assert_eq!(h, b"PROXY TCP6 ffff::1 10.0.0.1 1 2\r\n");
        let h = header(
            "v1",
            Transport::Stream,
            Some((a("[::ffff:1.2.3.4]:1"), a("5.6.7.8:2"))),
        );
        assert_eq!(h, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
        assert_eq!(header("v1", Transport::Stream, None), b"PROXY UNKNOWN\r\n");
        assert_eq!(
            header(
                "v1",
                Transport::Datagram,
                Some((a("1.2.3.4:1"), a("5.6.7.8:2")))
            ),
            b"PROXY UNKNOWN\r\n"
        );
    }

    #[test]
    fn v2_bytes_as_the_spec() {
        // haproxy proxy-protocol.txt 2.2: sig, 0x21, 0x11, len 12, src, dst, sport, dport.
        let h = header(
            "v2",
            Transport::Stream,
            Some((a("127.0.0.1:1000"), a("127.0.0.2:443"))),
        );
        assert_eq!(
            h,
            b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a\x21\x11\x00\x0c\x7f\x00\x00\x01\x7f\x00\x00\x02\x03\xe8\x01\xbb"
        );
        let h = header(
            "v2",
            Transport::Datagram,
            Some((a("[::1]:53"), a("[::2]:5353"))),
        );
        let mut want = SIG_V2.to_vec();
        want.extend_from_slice(&[0x21, 0x22, 0x00, 0x24]);
        want.extend_from_slice(&[0; 15]);
        want.push(1);
        want.extend_from_slice(&[0; 15]);
        want.push(2);
        want.extend_from_slice(&[0x00, 0x35, 0x14, 0xe9]);
        assert_eq!(h, want);
        let mut unspec = SIG_V2.to_vec();
        unspec.extend_from_slice(&[0x21, 0x00, 0x00, 0x00]);
        assert_eq!(header("v2", Transport::Stream, None), unspec);
    }

    #[test]
    fn mixed_families_become_ipv6() {
        let h = header(
            "v2",
            Transport::Stream,
            Some((a("1.2.3.4:1"), a("[2001:db8::1]:2"))),
        );
        assert_eq!(&h[12..16], &[0x21, 0x21, 0x00, 0x24]);
        assert_eq!(
            &h[16..32],
            &"::ffff:1.2.3.4"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
    }

    #[test]
    fn addresses_from_start_work_conn() {
        let mut s = common::msg::StartWorkConn {
            src_addr: "1.2.3.4".into(),
            src_port: 5,
            dst_port: 80,
            ..Default::default()
        };
        assert_eq!(
            start_addrs(&s),
            Some(Some((a("1.2.3.4:5"), a("127.0.0.1:80"))))
        );
        s.dst_addr = "not-an-ip".into();
        assert_eq!(start_addrs(&s), Some(None));
        s.src_port = 0;
        assert_eq!(start_addrs(&s), None);
    }
}
