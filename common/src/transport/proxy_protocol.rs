//! The PROXY protocol (haproxy `proxy-protocol.txt`), both ways, one codec:
//! - [`header`]: what frpc writes to the local service for `transport.proxyProtocolVersion`
//!   (frp `pkg/util/net/proxyprotocol.go`, rendered as pires/go-proxyproto does: v1 text, v2
//!   binary without TLVs);
//! - [`parse`] and [`Trusted::accept`]: what frps reads from a trusted load balancer in front
//!   of `bindPort` and the vhost ports (`proxyProtocol.trustedAddrs`, a frp-rs key).

use std::net::{IpAddr, SocketAddr};

/// v2's 12-byte signature.
const SIG_V2: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Stream (tcp, http, https, ...) or datagram (udp) transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Stream,
    Datagram,
}

/// The header for `version` ("v1"; anything else is v2, as in frp) from `src` to `dst`; `None`
/// addresses (not IP literals) give go-proxyproto's unspecified form (`PROXY UNKNOWN`).
///
/// The family follows the source as in go-proxyproto (an IPv4-mapped IPv6 source is IPv4); a
/// destination of the other family is written in the source's family when it can be (an
/// IPv4 one as IPv4-mapped IPv6), else both are written as IPv6.
pub fn header(
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
pub fn start_addrs(start: &crate::msg::StartWorkConn) -> Option<Option<(SocketAddr, SocketAddr)>> {
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

/// v1's longest header, CRLF included (the spec's 107 bytes).
const V1_MAX: usize = 107;
/// How long a trusted sender has to send its whole header on a vhost port (bindPort has its
/// own first-message deadline).
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// The connection is relayed for this client (`src`) to this address (`dst`).
    Proxy { src: SocketAddr, dst: SocketAddr },
    /// v2 `LOCAL` (the balancer's own health check), v1 `UNKNOWN`, or a family other than
    /// TCP/UDP over IPv4/IPv6: the connection's own address stands.
    Local,
}

/// Why bytes are not (yet) a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A prefix of a header: more bytes are needed.
    #[error("truncated PROXY header")]
    Incomplete,
    #[error("malformed PROXY header: {0}")]
    Invalid(&'static str),
}

/// Whether `head` starts a header: `Some(true)` it does (the whole signature is there),
/// `Some(false)` it cannot, `None` it is too short to tell.
pub fn starts_header(head: &[u8]) -> Option<bool> {
    let prefix_of = |sig: &[u8]| {
        let n = head.len().min(sig.len());
        (head[..n] == sig[..n]).then_some(head.len() >= sig.len())
    };
    match (prefix_of(b"PROXY "), prefix_of(SIG_V2)) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (None, None) => Some(false),
        _ => None,
    }
}

/// Parses one header at the start of `buf`: the header and its length in bytes.
pub fn parse(buf: &[u8]) -> Result<(Header, usize), ParseError> {
    match starts_header(buf) {
        None => Err(ParseError::Incomplete),
        Some(false) => Err(ParseError::Invalid("no PROXY signature")),
        Some(true) if buf.starts_with(b"PROXY ") => parse_v1(buf),
        Some(true) => parse_v2(buf),
    }
}

fn parse_v1(buf: &[u8]) -> Result<(Header, usize), ParseError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return Err(if buf.len() >= V1_MAX {
            ParseError::Invalid("v1 line longer than 107 bytes")
        } else {
            ParseError::Incomplete
        });
    };
    let line = std::str::from_utf8(&window[6..end])
        .map_err(|_| ParseError::Invalid("v1 line is not text"))?;
    let parts: Vec<&str> = line.split(' ').collect();
    let header = match parts.as_slice() {
        ["UNKNOWN", ..] => Header::Local,
        [fam @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let v4 = *fam == "TCP4";
            let ip = |s: &str| {
                s.parse::<IpAddr>()
                    .ok()
                    // TCP6 may carry an IPv4-mapped address printed dotted, as go writes it.
                    .filter(|ip| ip.is_ipv4() || !v4)
                    .ok_or(ParseError::Invalid("v1 address not of its family"))
            };
            let port = |s: &str| {
                // Decimal digits only, no sign, no leading zero (the spec's form).
                let ok = !s.is_empty()
                    && s.bytes().all(|b| b.is_ascii_digit())
                    && (s == "0" || !s.starts_with('0'));
                ok.then(|| s.parse::<u16>().ok())
                    .flatten()
                    .ok_or(ParseError::Invalid("v1 port"))
            };
            Header::Proxy {
                src: SocketAddr::new(ip(src)?, port(sport)?),
                dst: SocketAddr::new(ip(dst)?, port(dport)?),
            }
        }
        _ => return Err(ParseError::Invalid("v1 line")),
    };
    Ok((header, end + 2))
}

fn parse_v2(buf: &[u8]) -> Result<(Header, usize), ParseError> {
    if buf.len() < 16 {
        return Err(ParseError::Incomplete);
    }
    let len = 16 + u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if buf[12] >> 4 != 2 {
        return Err(ParseError::Invalid("v2 version"));
    }
    let local = match buf[12] & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(ParseError::Invalid("v2 command")),
    };
    let need = match buf[13] >> 4 {
        0 => 0,
        1 => 12,
        2 => 36,
        3 => 216,
        _ => return Err(ParseError::Invalid("v2 address family")),
    };
    if buf[13] & 0x0f > 2 {
        return Err(ParseError::Invalid("v2 transport protocol"));
    }
    if len - 16 < need {
        return Err(ParseError::Invalid("v2 address block too short"));
    }
    if buf.len() < len {
        return Err(ParseError::Incomplete);
    }
    let b = &buf[16..len];
    let header = match buf[13] {
        _ if local => Header::Local,
        0x11 | 0x12 => {
            let ip = |o: usize| IpAddr::from([b[o], b[o + 1], b[o + 2], b[o + 3]]);
            let port = |o: usize| u16::from_be_bytes([b[o], b[o + 1]]);
            Header::Proxy {
                src: SocketAddr::new(ip(0), port(8)),
                dst: SocketAddr::new(ip(4), port(10)),
            }
        }
        0x21 | 0x22 => {
            let ip = |o: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&b[o..o + 16]);
                IpAddr::from(a)
            };
            let port = |o: usize| u16::from_be_bytes([b[o], b[o + 1]]);
            Header::Proxy {
                src: SocketAddr::new(ip(0), port(32)),
                dst: SocketAddr::new(ip(16), port(34)),
            }
        }
        _ => Header::Local,
    };
    Ok((header, len))
}

/// One `proxyProtocol.trustedAddrs` entry: an address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, bits) = match s.split_once('/') {
            Some((ip, b)) => (ip, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
        };
        Ok(Cidr { net, bits })
    }
}

impl Cidr {
    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let masked = |a: u128, width: u32| {
            let shift = width - u32::from(self.bits);
            if shift >= 128 {
                0
            } else {
                a >> shift
            }
        };
        match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                masked(u32::from(n).into(), 32) == masked(u32::from(i).into(), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => masked(n.into(), 128) == masked(i.into(), 128),
            _ => false,
        }
    }
}

/// Why a connection was closed while its PROXY header was looked for.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("PROXY header from {0}, which is not in proxyProtocol.trustedAddrs; refused")]
    Untrusted(SocketAddr),
    #[error("no PROXY header from trusted {0} (a trusted address must send one)")]
    Missing(SocketAddr),
    #[error("{0}")]
    Parse(ParseError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The senders whose PROXY headers frps believes (`proxyProtocol.trustedAddrs`); empty: off,
/// nothing is read or peeked.
#[derive(Debug, Clone, Default)]
pub struct Trusted(Vec<Cidr>);

impl Trusted {
    pub fn new(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| e.parse())
            .collect::<Result<_, _>>()
            .map(Trusted)
    }

    pub fn is_off(&self) -> bool {
        self.0.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client's address for a fresh connection from `peer`. A trusted peer must send a
    /// header, which is read (`LOCAL`/`UNKNOWN` keep `peer`), and never a byte past it; from
    /// anyone else a header is refused, and nothing is consumed (only peeked). The caller
    /// bounds the time.
    pub async fn accept(
        &self,
        tcp: &mut tokio::net::TcpStream,
        peer: SocketAddr,
    ) -> Result<SocketAddr, AcceptError> {
        use tokio::io::AsyncReadExt;
        if self.is_off() {
            return Ok(peer);
        }
        if !self.trusts(peer.ip()) {
            return match peek_signature(tcp).await? {
                true => Err(AcceptError::Untrusted(peer)),
                false => Ok(peer),
            };
        }
        // Every header is longer than 6 bytes, so reading them consumes nothing else.
        let mut head = vec![0u8; 6];
        tcp.read_exact(&mut head).await?;
        if starts_header(&head) == Some(false) {
            return Err(AcceptError::Missing(peer));
        }
        if head == b"PROXY " {
            // v1: byte by byte up to CRLF, never past it.
            while !head.ends_with(b"\r\n") {
                if head.len() >= V1_MAX {
                    return Err(AcceptError::Parse(ParseError::Invalid(
                        "v1 line longer than 107 bytes",
                    )));
                }
                head.push(tcp.read_u8().await?);
            }
            let (h, _) = parse_v1(&head).map_err(AcceptError::Parse)?;
            return Ok(resolved(h, peer));
        }
        // v2: the fixed part gives the length; read exactly that much.
        head.resize(16, 0);
        tcp.read_exact(&mut head[6..]).await?;
        if !head.starts_with(SIG_V2) {
            return Err(AcceptError::Missing(peer));
        }
        if let Err(e @ ParseError::Invalid(_)) = parse_v2(&head) {
            return Err(AcceptError::Parse(e));
        }
        head.resize(16 + u16::from_be_bytes([head[14], head[15]]) as usize, 0);
        tcp.read_exact(&mut head[16..]).await?;
        let (h, _) = parse_v2(&head).map_err(AcceptError::Parse)?;
        Ok(resolved(h, peer))
    }
}

/// Peeks until the first bytes show whether a PROXY header starts (they stay unread).
async fn peek_signature(tcp: &tokio::net::TcpStream) -> std::io::Result<bool> {
    let mut buf = [0u8; 12];
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        let n = tcp.peek(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before sending anything",
            ));
        }
        if let Some(yes) = starts_header(&buf[..n]) {
            return Ok(yes);
        }
        // A peek leaves the socket readable: wait a little before the next.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    }
}

fn resolved(h: Header, peer: SocketAddr) -> SocketAddr {
    match h {
        Header::Proxy { src, .. } => SocketAddr::new(canonical(src.ip()), src.port()),
        Header::Local => peer,
    }
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
        let mut s = crate::msg::StartWorkConn {
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

    fn arb_addr() -> impl proptest::strategy::Strategy<Value = SocketAddr> {
        use proptest::prelude::*;
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(ip.into(), p)),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(ip.into(), p)),
        ]
    }

    proptest::proptest! {
        /// What the writer writes the parser reads back, byte count included, in both
        /// versions; every shorter prefix is `Incomplete`, never an error or a panic.
        #[test]
        fn writer_and_parser_agree(s in arb_addr(), d in arb_addr(), v1 in proptest::bool::ANY, tail in proptest::collection::vec(proptest::num::u8::ANY, 0..8)) {
            let mut h = header(if v1 { "v1" } else { "v2" }, Transport::Stream, Some((s, d)));
            let len = h.len();
            for cut in 0..len {
                proptest::prop_assert_eq!(parse(&h[..cut]), Err(ParseError::Incomplete), "cut {}", cut);
            }
            h.extend_from_slice(&tail);
            let (got, used) = parse(&h).unwrap();
            proptest::prop_assert_eq!(used, len);
            let Header::Proxy { src, dst } = got else { panic!("{got:?}") };
            // The writer puts both in the source's family (IPv4-mapped when mixed).
            proptest::prop_assert_eq!(canonical(src.ip()), canonical(s.ip()));
            proptest::prop_assert_eq!(src.port(), s.port());
            proptest::prop_assert_eq!(canonical(dst.ip()), canonical(d.ip()));
            proptest::prop_assert_eq!(dst.port(), d.port());
        }

        /// Any bytes: a result, never a panic; a header's length never passes the input.
        #[test]
        fn arbitrary_bytes_never_panic(mut b in proptest::collection::vec(proptest::num::u8::ANY, 0..300), sig in 0u8..3) {
            match sig {
                0 => b.splice(0..0, b"PROXY ".iter().copied()).for_each(drop),
                1 => b.splice(0..0, SIG_V2.iter().copied()).for_each(drop),
                _ => {}
            }
            if let Ok((_, used)) = parse(&b) {
                proptest::prop_assert!(used <= b.len());
            }
        }

        #[test]
        fn cidr_contains_what_shares_its_prefix(ip in proptest::num::u32::ANY, other in proptest::num::u32::ANY, bits in 0u8..=32) {
            let c: Cidr = format!("{}/{bits}", std::net::Ipv4Addr::from(ip)).parse().unwrap();
            let same = bits == 0 || (ip >> (32 - u32::from(bits))) == (other >> (32 - u32::from(bits)));
            proptest::prop_assert_eq!(c.contains(std::net::Ipv4Addr::from(other).into()), same);
        }
    }

    #[test]
    fn parse_refuses_malformed_headers() {
        let bad: &[&[u8]] = &[
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
            b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"GET / HTTP/1.1\r\n",
        ];
        for b in bad {
            assert!(
                matches!(parse(b), Err(ParseError::Invalid(_))),
                "{}",
                String::from_utf8_lossy(b)
            );
        }
        let long = [b"PROXY ".as_slice(), &[b'A'; 120]].concat();
        assert!(matches!(parse(&long), Err(ParseError::Invalid(_))));
        // v2: version 1, command 2, family 4, and a block too short for its family.
        for (i, b) in [(12, 0x11), (12, 0x22), (13, 0x41), (15, 4)] {
            let mut h = header(
                "v2",
                Transport::Stream,
                Some((a("1.2.3.4:1"), a("5.6.7.8:2"))),
            );
            h[i] = b;
            assert!(
                matches!(parse(&h), Err(ParseError::Invalid(_))),
                "byte {i} = {b:#x}"
            );
        }
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Ok((Header::Local, 15)));
        let mut local = header(
            "v2",
            Transport::Stream,
            Some((a("1.2.3.4:1"), a("5.6.7.8:2"))),
        );
        local[12] = 0x20;
        assert_eq!(parse(&local), Ok((Header::Local, 28)));
    }

    #[test]
    fn trusted_entries() {
        let t = Trusted::new(&[
            "10.0.0.0/8".into(),
            "192.0.2.7".into(),
            "2001:db8::/32".into(),
        ])
        .unwrap();
        assert!(t.trusts("10.1.2.3".parse().unwrap()));
        assert!(t.trusts("::ffff:10.1.2.3".parse().unwrap()));
        assert!(t.trusts("192.0.2.7".parse().unwrap()));
        assert!(!t.trusts("192.0.2.8".parse().unwrap()));
        assert!(t.trusts("2001:db8:1::5".parse().unwrap()));
        assert!(!t.trusts("2001:db9::5".parse().unwrap()));
        assert!(Trusted::new(&["0.0.0.0/0".into()])
            .unwrap()
            .trusts("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "host.example", "10.0.0.0/x", "::/129"] {
            assert!(Trusted::new(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(Trusted::new(&[]).unwrap().is_off());
    }
}
