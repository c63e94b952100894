//! UDP datagrams on a udp proxy's work connection (frp `pkg/proto/udp`, `server/proxy/udp.go`,
//! `client/proxy/udp.go`): how big a datagram each framing carries, and the read and write
//! steps that make an oversized datagram cost only itself.
//!
//! Each datagram is one UDPPacket message, its content base64 in JSON, so a wire v1 message
//! (golib's 10240-byte body limit) carries at most [`max_datagram`]`(V1)` = 7611 bytes. frp
//! 0.70 writes a UDPPacket of any size on v1, and the reading side refuses a body over the limit
//! (`message length exceed the limit`) by closing the work connection, so every flow of the
//! proxy restarts. Wire v2 frames carry up to 64 KiB (frp #5340, since v0.69.1, frames UDP
//! payloads in v2 too), [`max_datagram`]`(V2)` = 49083 bytes.
//!
//! What we do instead, on both sides: a datagram that would not fit is dropped before it is
//! written, with a warning at most every [`WARN_EVERY`] per proxy; and a peer's oversized v1
//! UDPPacket (as a Go peer writes it) is read past and dropped, the connection kept.

use super::codec::{self, EncodeError, HEADER_LEN, MAX_MSG_LEN};
use super::v2::MAX_FRAME_PAYLOAD;
use super::{DecodeError, Message, Wire};
use crate::log::Throttle;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::warn;

/// The JSON of a UDPPacket around its base64 content, at the longest: an IPv6 address with an
/// embedded IPv4 one (45 characters) and a 5-digit port,
/// `{"c":"","r":{"IP":"…","Port":65535,"Zone":""}}`.
const UDP_JSON_OVERHEAD: usize = 90;

/// A peer's v1 UDPPacket longer than this is not read past but ends the connection: the
/// biggest datagram (65535 bytes) takes about 87.5 KB as a message.
const MAX_SKIP: u64 = 128 * 1024;

/// The least time between two warnings about dropped datagrams of one proxy.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// The biggest datagram that always fits in one UDPPacket message of `wire`.
pub const fn max_datagram(wire: Wire) -> usize {
    let body = match wire {
        Wire::V1 => MAX_MSG_LEN,
        // The frame payload starts with the 2-byte message type.
        Wire::V2 => MAX_FRAME_PAYLOAD - 2,
    };
    (body - UDP_JSON_OVERHEAD) / 4 * 3
}

/// The start-up warning for a `udpPacketSize` bigger than `wire` can carry, if it is.
pub fn packet_size_warning(udp_packet_size: i64, wire: Wire) -> Option<String> {
    let max = max_datagram(wire);
    (udp_packet_size > max as i64).then(|| {
        let v2 = match wire {
            Wire::V1 => format!(
                "; transport.wireProtocol = \"v2\" carries up to {} bytes",
                max_datagram(Wire::V2)
            ),
            Wire::V2 => String::new(),
        };
        format!(
            "udpPacketSize = {udp_packet_size} is more than one wire {} message can carry: \
             udp datagrams over {max} bytes are dropped, each with a warning{v2}",
            wire.name()
        )
    })
}

/// Rate-limited warnings about dropped datagrams, one per proxy (or work connection).
#[derive(Debug)]
pub struct Drops(Throttle);

impl Default for Drops {
    fn default() -> Self {
        Drops(Throttle::new(WARN_EVERY))
    }
}

impl Drops {
    /// Counts one dropped datagram of `len` bytes; warns unless it did so within [`WARN_EVERY`].
    pub fn dropped(&self, wire: Wire, len: usize, why: &str) {
        let Some(held) = self.0.ready() else {
            return;
        };
        warn!(
            len,
            max = max_datagram(wire),
            wire = wire.name(),
            dropped = held + 1,
            "udp datagram dropped: {why} (further drops in the next {}s are not logged)",
            WARN_EVERY.as_secs()
        );
    }
}

/// Writes `msg` (a UDPPacket or a Ping) as one frame. A datagram too big for `wire` is dropped
/// with a warning and the connection stays usable; only a write failure is an error.
pub async fn send<W: AsyncWrite + Unpin + ?Sized>(
    wire: Wire,
    w: &mut W,
    msg: &Message,
    drops: &Drops,
) -> std::io::Result<()> {
    match wire.encode(msg) {
        Ok(frame) => {
            w.write_all(&frame).await?;
            w.flush().await
        }
        Err(EncodeError::TooLarge { .. }) => {
            let len = match msg {
                Message::UdpPacket(p) => p.content.len(),
                _ => 0,
            };
            drops.dropped(wire, len, "too big for one message");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads the next message. A v1 UDPPacket over the message limit (up to about 128 KB) is read
/// past and dropped with a warning, and the next message is returned.
pub async fn recv<R: AsyncRead + Unpin + ?Sized>(
    wire: Wire,
    r: &mut R,
    drops: &Drops,
) -> Result<Message, DecodeError> {
    if wire == Wire::V2 {
        return wire.read(r).await;
    }
    loop {
        let mut h = [0u8; HEADER_LEN];
        r.read_exact(&mut h).await?;
        let mut len = [0u8; 8];
        len.copy_from_slice(&h[1..]);
        let len = i64::from_be_bytes(len);
        let skip = u64::try_from(len)
            .ok()
            .filter(|n| h[0] == b'u' && *n > MAX_MSG_LEN as u64 && *n <= MAX_SKIP);
        let Some(skip) = skip else {
            return codec::read_msg_after(&h, r).await;
        };
        let skipped = tokio::io::copy(&mut (&mut *r).take(skip), &mut tokio::io::sink()).await?;
        if skipped < skip {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        // About 3/4 of the base64 body is the datagram.
        let approx = (skip as usize).saturating_sub(UDP_JSON_OVERHEAD) / 4 * 3;
        drops.dropped(wire, approx, "the peer sent a message over the v1 limit");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::msg::{UdpAddr, UdpPacket};

    fn worst_case(len: usize) -> Message {
        UdpPacket {
            content: vec![7; len],
            local_addr: None,
            remote_addr: Some(UdpAddr {
                ip: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".into(),
                port: 65535,
                zone: String::new(),
            }),
        }
        .into()
    }

    #[test]
    fn max_datagram_is_exact_for_the_longest_address() {
        assert_eq!(max_datagram(Wire::V1), 7611);
        assert_eq!(max_datagram(Wire::V2), 49083);
        for wire in [Wire::V1, Wire::V2] {
            let max = max_datagram(wire);
            assert!(wire.encode(&worst_case(max)).is_ok(), "{wire:?}");
            assert!(matches!(
                wire.encode(&worst_case(max + 3)),
                Err(EncodeError::TooLarge { .. })
            ));
        }
    }

    #[test]
    fn packet_size_warning_names_the_limit() {
        assert_eq!(packet_size_warning(1500, Wire::V1), None);
        assert_eq!(packet_size_warning(7611, Wire::V1), None);
        let w = packet_size_warning(10240, Wire::V1).unwrap();
        assert!(
            w.contains("udpPacketSize = 10240") && w.contains("7611"),
            "{w}"
        );
        assert!(w.contains("v2") && w.contains("49083"), "{w}");
        assert_eq!(packet_size_warning(10240, Wire::V2), None);
        assert!(packet_size_warning(65535, Wire::V2).is_some());
    }

    #[tokio::test]
    async fn oversized_datagrams_are_dropped_alone_both_ways() {
        let drops = Drops::default();
        let mut out = Vec::new();
        send(Wire::V1, &mut out, &worst_case(9000), &drops)
            .await
            .unwrap();
        assert!(
            out.is_empty(),
            "nothing written for a datagram that does not fit"
        );
        send(Wire::V1, &mut out, &worst_case(10), &drops)
            .await
            .unwrap();

        // A Go peer's oversized UDPPacket is skipped; the next message is read.
        let body = serde_json::to_vec(&UdpPacket {
            content: vec![1; 9000],
            ..Default::default()
        })
        .unwrap();
        let mut input = vec![b'u'];
        input.extend_from_slice(&(body.len() as i64).to_be_bytes());
        input.extend_from_slice(&body);
        input.extend_from_slice(&out);
        let mut r = &input[..];
        assert_eq!(
            recv(Wire::V1, &mut r, &drops).await.unwrap(),
            worst_case(10)
        );
        assert!(r.is_empty());

        // Not a UDPPacket, or absurdly long: still an error that ends the connection.
        for (ty, len) in [(b'p', 20_000i64), (b'u', 1 << 20)] {
            let mut input = vec![ty];
            input.extend_from_slice(&len.to_be_bytes());
            let err = recv(Wire::V1, &mut &input[..], &drops).await.unwrap_err();
            assert!(matches!(err, DecodeError::TooLarge(_)), "{err}");
        }
    }
}
