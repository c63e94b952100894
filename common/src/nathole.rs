//! What both sides of xtcp share (frp `pkg/nathole/classify.go`, `utils.go`; frp-protocol.md
//! §10.2): the NAT classification frps and `frpc nathole discover` make from mapped addresses,
//! the punch datagram (a v1-framed NatHoleSid under AES-128-CFB keyed by the secret key, with
//! its random IV in front) and frp's transaction and session ids.

use crate::crypto::{derive_key, Decryptor, Encryptor, Key, IV_LEN};
use crate::msg::{codec, Message, NatHoleSid};
use std::net::{IpAddr, SocketAddr};

/// frp `NatFeature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatFeature {
    pub nat_type: &'static str,
    pub behavior: &'static str,
    pub ports_difference: u32,
    pub regular_ports_change: bool,
    pub public_network: bool,
}

impl NatFeature {
    pub fn is_easy(&self) -> bool {
        self.nat_type == EASY_NAT
    }
}

pub const EASY_NAT: &str = "EasyNAT";
pub const HARD_NAT: &str = "HardNAT";

/// frp `ClassifyNATFeature`: at least two mapped addresses; `local_ips` are the peer's own
/// addresses (a mapped address among them means no NAT).
pub fn classify(addrs: &[SocketAddr], local_ips: &[IpAddr]) -> Result<NatFeature, String> {
    let Some(base) = addrs.first().filter(|_| addrs.len() > 1) else {
        return Err("not enough addresses".into());
    };
    let ip_changed = addrs.iter().any(|a| a.ip() != base.ip());
    let port_changed = addrs.iter().any(|a| a.port() != base.port());
    let (nat_type, behavior) = match (ip_changed, port_changed) {
        (true, true) => (HARD_NAT, "BehaviorBothChanged"),
        (true, false) => (HARD_NAT, "BehaviorIPChanged"),
        (false, true) => (HARD_NAT, "BehaviorPortChanged"),
        (false, false) => (EASY_NAT, "BehaviorNoChange"),
    };
    let ports = addrs.iter().map(SocketAddr::port);
    let spread = u32::from(ports.clone().max().unwrap_or(0) - ports.min().unwrap_or(0));
    let ports_difference = if port_changed && !ip_changed {
        spread
    } else {
        0
    };
    Ok(NatFeature {
        nat_type,
        behavior,
        ports_difference,
        regular_ports_change: (1..=5).contains(&ports_difference),
        public_network: addrs.iter().any(|a| local_ips.contains(&a.ip())),
    })
}

/// [`classify`] of addresses as they travel in NatHole messages (`ip:port` strings); the
/// local IPs are taken from the assisted addresses, as frps does.
pub fn classify_strings(mapped: &[String], assisted: &[String]) -> Result<NatFeature, String> {
    let addrs = mapped
        .iter()
        .map(|a| {
            a.parse::<SocketAddr>()
                .map_err(|_| format!("bad address {:?}", crate::log::printable(a, 64)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let local: Vec<IpAddr> = assisted
        .iter()
        .filter_map(|a| a.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .collect();
    classify(&addrs, &local)
}

/// frp's transaction ids and sids: the unix time then 16 random hex digits.
pub fn new_id() -> String {
    format!(
        "{}{}",
        crate::clock::unix_now(),
        hex::encode(rand::random::<[u8; 8]>())
    )
}

/// The punch datagram key: the secret key through frp's PBKDF2.
pub fn punch_key(sk: &str) -> Key {
    derive_key(sk.as_bytes())
}

/// A punch datagram (frp `EncodeMessage`): the v1 frame of `m`, CFB-encrypted, after its IV.
pub fn encode_punch(m: &NatHoleSid, key: &Key) -> Vec<u8> {
    let mut body = codec::encode_to_vec(&Message::NatHoleSid(m.clone())).unwrap_or_default();
    let iv = crate::crypto::random_iv();
    Encryptor::new(key, &iv).apply(&mut body);
    let mut out = iv.to_vec();
    out.extend_from_slice(&body);
    out
}

/// Why a datagram is not a punch datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PunchError {
    #[error("datagram of {0} bytes is too short")]
    Short(usize),
    #[error("not a NatHoleSid frame (wrong key or garbage): {0}")]
    Frame(String),
}

/// Reads a punch datagram (frp `DecodeMessageInto`).
pub fn decode_punch(data: &[u8], key: &Key) -> Result<NatHoleSid, PunchError> {
    if data.len() < IV_LEN + codec::HEADER_LEN {
        return Err(PunchError::Short(data.len()));
    }
    let mut iv = [0u8; IV_LEN];
    iv.copy_from_slice(&data[..IV_LEN]);
    let mut body = data[IV_LEN..].to_vec();
    Decryptor::new(key, &iv).apply(&mut body);
    let mut h = [0u8; codec::HEADER_LEN];
    h.copy_from_slice(&body[..codec::HEADER_LEN]);
    let (ty, len) = codec::decode_header(&h).map_err(|e| PunchError::Frame(e.to_string()))?;
    let rest = &body[codec::HEADER_LEN..];
    if rest.len() < len {
        return Err(PunchError::Frame("truncated".into()));
    }
    match codec::decode(ty, &rest[..len]) {
        Ok(Message::NatHoleSid(m)) => Ok(m),
        Ok(other) => Err(PunchError::Frame(format!("a {} message", other.name()))),
        Err(e) => Err(PunchError::Frame(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classifies_as_frp() {
        let f = classify(&[addr("1.2.3.4:5000"), addr("1.2.3.4:5000")], &[]).unwrap();
        assert_eq!((f.nat_type, f.behavior), ("EasyNAT", "BehaviorNoChange"));
        let f = classify(&[addr("1.2.3.4:5000"), addr("1.2.3.4:5003")], &[]).unwrap();
        assert_eq!(
            (f.behavior, f.ports_difference, f.regular_ports_change),
            ("BehaviorPortChanged", 3, true)
        );
        let f = classify(&[addr("1.2.3.4:5000"), addr("1.2.3.5:5000")], &[]).unwrap();
        assert_eq!((f.nat_type, f.behavior), ("HardNAT", "BehaviorIPChanged"));
        let ip: IpAddr = "1.2.3.4".parse().unwrap();
        assert!(
            classify(&[addr("1.2.3.4:1"), addr("1.2.3.4:1")], &[ip])
                .unwrap()
                .public_network
        );
        assert!(classify(&[addr("1.2.3.4:1")], &[]).is_err());
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let f = classify_strings(&s(&["1.2.3.4:1", "1.2.3.4:1"]), &s(&["1.2.3.4:9"])).unwrap();
        assert!(f.public_network && f.is_easy());
        assert!(classify_strings(&s(&["1.2.3.4:1", "nonsense"]), &[]).is_err());
    }

    /// A datagram built as Go frp does (v1 frame, CFB with PBKDF2("sk"), IV in front).
    #[test]
    fn punch_round_trip_and_wrong_key() {
        let key = punch_key("sk");
        let m = NatHoleSid {
            transaction_id: "1700000000abcdef0123456789".into(),
            sid: "1700000000fedcba9876543210".into(),
            response: false,
            nonce: "0000".into(),
        };
        let d = encode_punch(&m, &key);
        assert_eq!(decode_punch(&d, &key).unwrap(), m);
        assert!(decode_punch(&d, &punch_key("other")).is_err());
        assert!(matches!(
            decode_punch(&d[..10], &key),
            Err(PunchError::Short(10))
        ));
    }

    proptest! {
        /// Any datagram is answered with a punch or an error, never a panic.
        #[test]
        fn punch_decoder_takes_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_punch(&data, &punch_key("sk"));
        }

        #[test]
        fn punch_round_trips(sid in "[0-9a-f]{0,40}", tid in "[0-9a-f]{0,40}", response: bool, nonce in 0usize..20) {
            let key = punch_key("k");
            let m = NatHoleSid { transaction_id: tid, sid, response, nonce: "0".repeat(nonce) };
            prop_assert_eq!(decode_punch(&encode_punch(&m, &key), &key).unwrap(), m);
        }
    }
}
