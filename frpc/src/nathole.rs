//! `frpc nathole discover` (frp `cmd/frpc/sub/nathole.go`, `pkg/nathole/discovery.go`,
//! `classify.go`): ask a STUN server for our external address, ask the server's other address
//! (RFC 5780 `OTHER-ADDRESS`) for a second one, and classify the NAT from the two as frp does.
//! The STUN here is the Binding transaction only (RFC 5389): one request, its address
//! attributes back.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;

const MAGIC: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const BINDING_ERROR: u16 = 0x0111;
const MAPPED_ADDRESS: u16 = 0x0001;
const CHANGED_ADDRESS: u16 = 0x0005;
const ERROR_CODE: u16 = 0x0009;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
const OTHER_ADDRESS: u16 = 0x802C;
/// frp's `responseTimeout`.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);

/// A Binding request with transaction id `id`.
pub fn binding_request(id: [u8; 12]) -> Vec<u8> {
    let mut b = Vec::with_capacity(20);
    b.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(&MAGIC.to_be_bytes());
    b.extend_from_slice(&id);
    b
}

/// A STUN server's Binding success answer to request `id`: `mapped` as `XOR-MAPPED-ADDRESS`,
/// `other` as `OTHER-ADDRESS` (IPv4 only; for test servers).
pub fn binding_success(id: [u8; 12], mapped: SocketAddr, other: Option<SocketAddr>) -> Vec<u8> {
    let v4 = |a: SocketAddr, xor: bool| {
        let IpAddr::V4(ip) = a.ip() else {
            return Vec::new();
        };
        let (port, ip) = if xor {
            (a.port() ^ (MAGIC >> 16) as u16, u32::from(ip) ^ MAGIC)
        } else {
            (a.port(), u32::from(ip))
        };
        [&[0u8, 1][..], &port.to_be_bytes(), &ip.to_be_bytes()].concat()
    };
    let mut body = Vec::new();
    let attrs = [
        (XOR_MAPPED_ADDRESS, Some(v4(mapped, true))),
        (OTHER_ADDRESS, other.map(|o| v4(o, false))),
    ];
    for (t, v) in attrs {
        if let Some(v) = v {
            body.extend_from_slice(&t.to_be_bytes());
            body.extend_from_slice(&(v.len() as u16).to_be_bytes());
            body.extend_from_slice(&v);
        }
    }
    let mut msg = BINDING_SUCCESS.to_be_bytes().to_vec();
    msg.extend_from_slice(&(body.len() as u16).to_be_bytes());
    msg.extend_from_slice(&MAGIC.to_be_bytes());
    msg.extend_from_slice(&id);
    msg.extend_from_slice(&body);
    msg
}

/// What a Binding success response says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BindingResponse {
    /// Our address as the server saw it (`XOR-MAPPED-ADDRESS`, else `MAPPED-ADDRESS`).
    pub mapped: Option<SocketAddr>,
    /// The server's other address (`OTHER-ADDRESS`, else `CHANGED-ADDRESS`).
    pub other: Option<SocketAddr>,
}

/// Parses a datagram answering the request with transaction id `id`: `Ok(None)` when it is
/// not such an answer (another transaction, not STUN).
pub fn parse_response(b: &[u8], id: [u8; 12]) -> Result<Option<BindingResponse>, String> {
    if b.len() < 20 || b[4..8] != MAGIC.to_be_bytes() || b[8..20] != id {
        return Ok(None);
    }
    let kind = u16::from_be_bytes([b[0], b[1]]);
    let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
    let body = b.get(20..20 + len).ok_or("truncated STUN response")?;
    let mut resp = BindingResponse::default();
    let (mut xor_mapped, mut other) = (None, None);
    let mut rest = body;
    while rest.len() >= 4 {
        let t = u16::from_be_bytes([rest[0], rest[1]]);
        let l = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let v = rest.get(4..4 + l).ok_or("truncated STUN attribute")?;
        match t {
            MAPPED_ADDRESS => resp.mapped = address(v, None),
            XOR_MAPPED_ADDRESS => xor_mapped = address(v, Some(id)),
            OTHER_ADDRESS => other = address(v, None),
            CHANGED_ADDRESS => resp.other = resp.other.or(address(v, None)),
            ERROR_CODE if kind == BINDING_ERROR && v.len() >= 4 => {
                let code = u16::from(v[2] & 7) * 100 + u16::from(v[3]);
                let reason = String::from_utf8_lossy(&v[4..]);
                return Err(format!("STUN error {code}: {reason}"));
            }
            _ => {}
        }
        // Attributes are padded to 4 bytes.
        rest = rest.get(4 + l.div_ceil(4) * 4..).unwrap_or_default();
    }
    match kind {
        BINDING_SUCCESS => {
            resp.mapped = xor_mapped.or(resp.mapped);
            resp.other = other.or(resp.other);
            Ok(Some(resp))
        }
        BINDING_ERROR => Err("STUN error response".into()),
        _ => Ok(None),
    }
}

/// An address attribute's value; `xor` is the transaction id when it is XOR-encoded.
fn address(v: &[u8], xor: Option<[u8; 12]>) -> Option<SocketAddr> {
    let magic = MAGIC.to_be_bytes();
    let mut port = u16::from_be_bytes([*v.get(2)?, *v.get(3)?]);
    let mut key = magic.to_vec();
    if let Some(id) = xor {
        port ^= (MAGIC >> 16) as u16;
        key.extend_from_slice(&id);
    }
    let mut ip = match v.get(1)? {
        1 => v.get(4..8)?.to_vec(),
        2 => v.get(4..20)?.to_vec(),
        _ => return None,
    };
    if xor.is_some() {
        ip.iter_mut().zip(&key).for_each(|(b, k)| *b ^= k);
    }
    let ip: IpAddr = match ip.len() {
        4 => <[u8; 4]>::try_from(ip).ok()?.into(),
        _ => <[u8; 16]>::try_from(ip).ok()?.into(),
    };
    Some(SocketAddr::new(ip, port))
}

/// One Binding transaction with `server` on `sock`.
async fn request(sock: &UdpSocket, server: SocketAddr) -> Result<BindingResponse, String> {
    let id: [u8; 12] = rand::random();
    sock.send_to(&binding_request(id), server)
        .await
        .map_err(|e| e.to_string())?;
    let answer = async {
        let mut buf = vec![0u8; 1500];
        loop {
            let (n, from) = sock.recv_from(&mut buf).await.map_err(|e| e.to_string())?;
            if from != server {
                continue;
            }
            if let Some(r) = parse_response(&buf[..n], id)? {
                return Ok(r);
            }
        }
    };
    tokio::time::timeout(RESPONSE_TIMEOUT, answer)
        .await
        .map_err(|_| "wait response from stun server timeout".to_owned())?
}

async fn resolve_v4(addr: &str) -> Result<SocketAddr, String> {
    common::dns::lookup_addr(addr)
        .await
        .map_err(|e| format!("resolve {addr}: {e}"))?
        .into_iter()
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("resolve {addr}: no IPv4 address"))
}

/// frp `Discover`: our external addresses as seen by `server` and by its other address, and
/// the local address used.
pub async fn discover(server: &str, local: &str) -> Result<(Vec<SocketAddr>, SocketAddr), String> {
    let bind = if local.is_empty() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        resolve_v4(local).await?
    };
    let sock = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    let local_addr = sock.local_addr().map_err(|e| e.to_string())?;
    Ok((discover_on(&sock, server).await?, local_addr))
}

/// [`discover`] on a socket the caller keeps (xtcp punches from it afterwards).
pub(crate) async fn discover_on(sock: &UdpSocket, server: &str) -> Result<Vec<SocketAddr>, String> {
    let first = request(sock, resolve_v4(server).await?).await?;
    let mut addrs = vec![first.mapped.ok_or("no external address found")?];
    if let Some(other) = first.other {
        if let Some(a) = request(sock, other).await?.mapped {
            addrs.push(a);
        }
    }
    Ok(addrs)
}

pub use common::nathole::{classify, NatFeature};

/// This host's IPv4 address towards `server` (frp lists every interface's; the one a route to
/// the STUN server uses is the one that can show up as an external address). Loopback and
/// link-local addresses are left out, as frp does.
pub(crate) async fn local_ips(server: &str) -> Vec<IpAddr> {
    let probe = async {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await.ok()?;
        s.connect(resolve_v4(server).await.ok()?).await.ok()?;
        s.local_addr().ok().map(|a| a.ip())
    };
    probe
        .await
        .filter(|ip| match ip {
            IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
            IpAddr::V6(_) => false,
        })
        .into_iter()
        .collect()
}

/// `frpc nathole discover`: the report frp prints, or why it failed.
pub async fn report(server: &str, local: &str) -> Result<String, String> {
    if server.is_empty() {
        return Err("nat_hole_stun_server can not be empty".into());
    }
    let (addrs, local_addr) = discover(server, local)
        .await
        .map_err(|e| format!("discover error: {e}"))?;
    let list = addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    if addrs.len() < 2 {
        return Err(format!(
            "discover error: can not get enough addresses, need 2, got: [{list}]"
        ));
    }
    let f = classify(&addrs, &local_ips(server).await)
        .map_err(|e| format!("classify nat feature error: {e}"))?;
    Ok(format!(
        "STUN server: {server}\nYour NAT type is: {}\nBehavior is: {}\nExternal address is: [{list}]\nLocal address is: {local_addr}\nPublic Network: {}\n",
        f.nat_type, f.behavior, f.public_network
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_xor_and_other_addresses() {
        let id = [7u8; 12];
        let (me, other) = (addr("192.0.2.1:32853"), addr("198.51.100.7:3478"));
        let msg = binding_success(id, me, Some(other));
        let r = parse_response(&msg, id).unwrap().unwrap();
        assert_eq!((r.mapped, r.other), (Some(me), Some(other)));
        assert_eq!(
            parse_response(&msg, [8; 12]),
            Ok(None),
            "another transaction"
        );
        assert!(parse_response(&msg[..30], id).is_err(), "truncated");
        // An unknown attribute with padding between the known ones.
        let mut padded = msg[..32].to_vec();
        padded.extend_from_slice(&[0x80, 0x22, 0, 3, b's', b'r', b'v', 0]);
        padded.extend_from_slice(&msg[32..]);
        padded[3] += 8;
        let r = parse_response(&padded, id).unwrap().unwrap();
        assert_eq!((r.mapped, r.other), (Some(me), Some(other)));
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any datagram is a response, not one, or an error: never a panic.
            #[test]
            fn parser_takes_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..300), id: [u8; 12]) {
                let _ = parse_response(&data, id);
            }

            /// What a server encodes (any IPv4 mapped and other address) parses back, and a
            /// reply to another transaction is not taken for ours.
            #[test]
            fn success_round_trips(ip: u32, port: u16, oip: u32, oport: u16, id: [u8; 12], other_id: [u8; 12], with_other: bool) {
                let me = SocketAddr::from((Ipv4Addr::from(ip), port));
                let other = with_other.then(|| SocketAddr::from((Ipv4Addr::from(oip), oport)));
                let msg = binding_success(id, me, other);
                let r = parse_response(&msg, id).unwrap().unwrap();
                prop_assert_eq!((r.mapped, r.other), (Some(me), other));
                if other_id != id {
                    prop_assert_eq!(parse_response(&msg, other_id), Ok(None));
                }
            }

            /// Flipping any byte of the attributes yields an answer or an error, no panic.
            #[test]
            fn corrupted_attributes_are_handled(pos in 20usize..40, byte: u8, id: [u8; 12]) {
                let mut msg = binding_success(id, "192.0.2.1:1".parse().unwrap(), Some("192.0.2.2:2".parse().unwrap()));
                let i = pos.min(msg.len() - 1);
                msg[i] = byte;
                let _ = parse_response(&msg, id);
            }
        }
    }

    #[test]
    fn requests_are_binding_requests() {
        let r = binding_request([1; 12]);
        assert_eq!(&r[..8], &[0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42]);
        assert_eq!(&r[8..], &[1; 12]);
    }
}
