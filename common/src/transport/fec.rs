//! kcp-go's forward error correction framing (xtaci/kcp-go v5 `fec.go`, as frp 0.70 uses it:
//! `DialWithOptions(addr, nil, 10, 3)`; frp-protocol.md §3.1). No IO here.
//!
//! Every datagram starts with a 6-byte header: `seqid` (u32 LE) and a type (u16 LE; `0xf1` a
//! data shard, `0xf2` a parity shard). A data shard then carries a u16 LE size (counting
//! itself) and the KCP segments; a parity shard carries Reed-Solomon parity over the
//! zero-padded `size + segments` payloads of the group's data shards. Groups are 13
//! consecutive seqids (10 data, then 3 parity); seqids wrap at the largest multiple of 13
//! below 2^32. The sender skips a group's parity (still advancing seqid) when its last two
//! data shards were 500 ms or more apart (kcp-go `maxFECEncodeLatency`).
//!
//! Written here rather than taken from a crate: no Rust crate speaks kcp-go's FEC framing
//! (tokio_kcp and the `kcp` crate have none). The codec is `reed-solomon-erasure`, whose
//! matrix is klauspost/reedsolomon's default (checked by `parity_matches_klauspost`).
//!
//! What differs from kcp-go: the decoder never re-tunes its shard counts from the traffic
//! (kcp-go's `autoTune`; frp's counts are fixed at 10/3), so a shard whose index does not
//! match its type is dropped; and it keeps at most [`RX_GROUPS`] incomplete groups.

use reed_solomon_erasure::galois_8::ReedSolomon;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// FEC header: seqid + type.
pub const HEADER: usize = 6;
/// FEC header plus a data shard's size field.
pub const HEADER_PLUS2: usize = HEADER + 2;
pub const TYPE_DATA: u16 = 0xf1;
pub const TYPE_PARITY: u16 = 0xf2;
/// frp's shard counts (golib `net/dial.go`, frp `pkg/util/net/kcp.go`).
pub const DATA_SHARDS: usize = 10;
pub const PARITY_SHARDS: usize = 3;
const SHARDS: usize = DATA_SHARDS + PARITY_SHARDS;
/// kcp-go's `mtuLimit`: it never sends (nor reads) a longer datagram.
pub const MAX_DATAGRAM: usize = 1500;
/// Seqids wrap here (kcp-go `paws`).
pub const PAWS: u32 = u32::MAX / SHARDS as u32 * SHARDS as u32;
/// Parity is skipped when a group's last two data shards are further apart (kcp-go
/// `maxFECEncodeLatency`).
const ENCODE_LATENCY: Duration = Duration::from_millis(500);
/// Incomplete groups kept (kcp-go keeps `rxFECMulti` = 3 groups' worth of shards).
pub const RX_GROUPS: usize = 3;
/// A shard waits at most this long for its group (kcp-go `fecExpire`).
const EXPIRE: Duration = Duration::from_secs(60);
/// Completed group ids remembered, so their late shards are not kept again.
const DONE_GROUPS: usize = 8;

/// Why a datagram is not a kcp-go FEC frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FecError {
    #[error("datagram of {0} bytes is shorter than an FEC header")]
    Short(usize),
    #[error("datagram of {0} bytes is longer than kcp-go sends")]
    Long(usize),
    #[error("unknown FEC type {0:#x}")]
    Kind(u16),
    #[error("data shard size field {size} does not match its {len} bytes")]
    Size { size: u16, len: usize },
    #[error("seqid {seqid} is a {kind} index but the frame says otherwise")]
    Index { seqid: u32, kind: &'static str },
    #[error("seqid {0} is past the wrap point")]
    Wrapped(u32),
}

/// One parsed FEC datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A data shard: the KCP segments it carries.
    Data { seqid: u32, kcp: &'a [u8] },
    /// A parity shard.
    Parity { seqid: u32, shard: &'a [u8] },
}

impl<'a> Frame<'a> {
    pub fn seqid(&self) -> u32 {
        match self {
            Frame::Data { seqid, .. } | Frame::Parity { seqid, .. } => *seqid,
        }
    }

    /// What the group's Reed-Solomon codec sees of this shard (a data shard's size field
    /// and segments; a parity shard's parity).
    fn payload(d: &'a [u8]) -> &'a [u8] {
        &d[HEADER..]
    }
}

fn u16_at(d: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([d[at], d[at + 1]])
}

/// Parses one datagram (the whole of it: kcp-go sends one frame per datagram).
pub fn parse(d: &[u8]) -> Result<Frame<'_>, FecError> {
    if d.len() > MAX_DATAGRAM {
        return Err(FecError::Long(d.len()));
    }
    if d.len() < HEADER_PLUS2 {
        return Err(FecError::Short(d.len()));
    }
    let seqid = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
    let kind = u16_at(d, 4);
    if seqid >= PAWS {
        return Err(FecError::Wrapped(seqid));
    }
    let data_index = (seqid as usize % SHARDS) < DATA_SHARDS;
    match kind {
        TYPE_DATA if !data_index => Err(FecError::Index {
            seqid,
            kind: "parity",
        }),
        TYPE_PARITY if data_index => Err(FecError::Index {
            seqid,
            kind: "data",
        }),
        TYPE_DATA => {
            let size = u16_at(d, HEADER);
            if size as usize != d.len() - HEADER {
                return Err(FecError::Size {
                    size,
                    len: d.len() - HEADER,
                });
            }
            Ok(Frame::Data {
                seqid,
                kcp: &d[HEADER_PLUS2..],
            })
        }
        TYPE_PARITY => Ok(Frame::Parity {
            seqid,
            shard: Frame::payload(d),
        }),
        k => Err(FecError::Kind(k)),
    }
}

fn codec() -> ReedSolomon {
    // 10 + 3 shards is within GF(2^8)'s 256: this cannot fail.
    match ReedSolomon::new(DATA_SHARDS, PARITY_SHARDS) {
        Ok(c) => c,
        Err(e) => unreachable!("reed-solomon 10+3: {e}"),
    }
}

/// Frames outgoing KCP datagrams (kcp-go `fecEncoder`).
pub struct FecEncoder {
    rs: ReedSolomon,
    next: u32,
    /// The group's data payloads so far (`size + segments`).
    shards: Vec<Vec<u8>>,
    last: Option<Instant>,
}

impl std::fmt::Debug for FecEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FecEncoder")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Default for FecEncoder {
    fn default() -> Self {
        FecEncoder::new()
    }
}

impl FecEncoder {
    pub fn new() -> Self {
        FecEncoder {
            rs: codec(),
            next: 0,
            shards: Vec::with_capacity(DATA_SHARDS),
            last: None,
        }
    }

    fn header(&mut self, kind: u16, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.next.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        self.next = (self.next + 1) % PAWS;
    }

    /// Frames `kcp` (at most `MAX_DATAGRAM - HEADER_PLUS2` bytes of KCP segments) as the next
    /// data shard, and appends it, then the group's parity shards when it completes one, to
    /// `out` as datagrams.
    pub fn encode(&mut self, kcp: &[u8], now: Instant, out: &mut Vec<Vec<u8>>) {
        let mut d = Vec::with_capacity(HEADER_PLUS2 + kcp.len());
        self.header(TYPE_DATA, &mut d);
        d.extend_from_slice(&((kcp.len() + 2) as u16).to_le_bytes());
        d.extend_from_slice(kcp);
        self.shards.push(d[HEADER..].to_vec());
        out.push(d);
        let continuous = self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < ENCODE_LATENCY);
        self.last = Some(now);
        if self.shards.len() < DATA_SHARDS {
            return;
        }
        let mut data = std::mem::take(&mut self.shards);
        if !continuous {
            self.next = (self.next + PARITY_SHARDS as u32) % PAWS;
            return;
        }
        let len = data.iter().map(Vec::len).max().unwrap_or(0);
        for s in &mut data {
            s.resize(len, 0);
        }
        let mut parity = vec![vec![0u8; len]; PARITY_SHARDS];
        if self.rs.encode_sep(&data, &mut parity).is_err() {
            self.next = (self.next + PARITY_SHARDS as u32) % PAWS;
            return;
        }
        for p in parity {
            let mut d = Vec::with_capacity(HEADER + p.len());
            self.header(TYPE_PARITY, &mut d);
            d.extend_from_slice(&p);
            out.push(d);
        }
    }
}

/// One group's shards as they arrive.
struct Group {
    id: u32,
    shards: Vec<Option<Vec<u8>>>,
    have: usize,
    data: usize,
    born: Instant,
}

/// Recovers lost data shards from parity (kcp-go `fecDecoder`). Data shards are also handed
/// to KCP directly by the caller; [`FecDecoder::decode`] returns only what it recovered.
/// It keeps at most [`RX_GROUPS`] incomplete groups (13 shards of at most 1500 bytes each).
pub struct FecDecoder {
    rs: ReedSolomon,
    groups: VecDeque<Group>,
    done: VecDeque<u32>,
}

impl std::fmt::Debug for FecDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FecDecoder")
            .field("groups", &self.groups.len())
            .finish_non_exhaustive()
    }
}

impl Default for FecDecoder {
    fn default() -> Self {
        FecDecoder::new()
    }
}

impl FecDecoder {
    pub fn new() -> Self {
        FecDecoder {
            rs: codec(),
            groups: VecDeque::with_capacity(RX_GROUPS + 1),
            done: VecDeque::with_capacity(DONE_GROUPS + 1),
        }
    }

    /// Incomplete groups held (for tests: it never exceeds [`RX_GROUPS`]).
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Shards held, over all groups.
    pub fn shards(&self) -> usize {
        self.groups.iter().map(|g| g.have).sum()
    }

    /// Takes one parsed frame whose bytes are `d` (the whole datagram); returns the KCP
    /// segments of data shards it recovered.
    pub fn decode(&mut self, d: &[u8], frame: &Frame<'_>, now: Instant) -> Vec<Vec<u8>> {
        self.groups
            .retain(|g| now.saturating_duration_since(g.born) < EXPIRE);
        let seqid = frame.seqid();
        let id = seqid / SHARDS as u32;
        let idx = seqid as usize % SHARDS;
        if self.done.contains(&id) {
            return Vec::new();
        }
        let at = match self.groups.iter().position(|g| g.id == id) {
            Some(at) => at,
            None => {
                if self.groups.len() >= RX_GROUPS {
                    self.groups.pop_front();
                }
                self.groups.push_back(Group {
                    id,
                    shards: vec![None; SHARDS],
                    have: 0,
                    data: 0,
                    born: now,
                });
                self.groups.len() - 1
            }
        };
        let g = &mut self.groups[at];
        if g.shards[idx].is_some() {
            return Vec::new();
        }
        g.shards[idx] = Some(Frame::payload(d).to_vec());
        g.have += 1;
        if idx < DATA_SHARDS {
            g.data += 1;
        }
        if g.data == DATA_SHARDS {
            self.finish(at);
            return Vec::new();
        }
        if g.have < DATA_SHARDS {
            return Vec::new();
        }
        let len = g.shards.iter().flatten().map(Vec::len).max().unwrap_or(0);
        let missing: Vec<usize> = (0..DATA_SHARDS)
            .filter(|i| g.shards[*i].is_none())
            .collect();
        for s in g.shards.iter_mut().flatten() {
            s.resize(len, 0);
        }
        let mut recovered = Vec::new();
        if self.rs.reconstruct_data(&mut g.shards).is_ok() {
            for i in missing {
                let Some(r) = &g.shards[i] else { continue };
                if r.len() < 2 {
                    continue;
                }
                let size = u16_at(r, 0) as usize;
                if (2..=r.len()).contains(&size) {
                    recovered.push(r[2..size].to_vec());
                }
            }
        }
        self.finish(at);
        recovered
    }

    fn finish(&mut self, at: usize) {
        if let Some(g) = self.groups.remove(at) {
            if self.done.len() >= DONE_GROUPS {
                self.done.pop_front();
            }
            self.done.push_back(g.id);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// Parity for data shard i, byte j = (i*31 + j*7 + 1) & 0xff, computed by
    /// `common/tests/data/kcp_fec_vectors.py` from klauspost/reedsolomon's matrix
    /// construction (GF(2^8) poly 0x11D, Vandermonde made systematic), independently of the
    /// crate used here.
    #[test]
    fn parity_matches_klauspost() {
        let data: Vec<Vec<u8>> = (0..10)
            .map(|i| {
                (0..8)
                    .map(|j| ((i * 31 + j * 7 + 1) & 0xff) as u8)
                    .collect()
            })
            .collect();
        let mut parity = vec![vec![0u8; 8]; 3];
        codec().encode_sep(&data, &mut parity).unwrap();
        let want = ["0b174524e32a0ebc", "8cb464cec271ef8e", "8c3b832af68e5770"];
        for (p, w) in parity.iter().zip(want) {
            assert_eq!(hex::encode(p), w);
        }
    }

    fn kcp_payload(i: usize) -> Vec<u8> {
        // Distinct lengths, so zero padding matters.
        (0..(30 + i * 13)).map(|j| (i * 7 + j) as u8).collect()
    }

    /// One group's datagrams, as kcp-go would send them back to back.
    fn group(enc: &mut FecEncoder) -> Vec<Vec<u8>> {
        let now = Instant::now();
        let mut out = Vec::new();
        for i in 0..DATA_SHARDS {
            enc.encode(&kcp_payload(i), now, &mut out);
        }
        out
    }

    #[test]
    fn frames_have_kcp_gos_layout() {
        let mut enc = FecEncoder::new();
        let out = group(&mut enc);
        assert_eq!(out.len(), SHARDS);
        // Data shard 0: seqid 0, type 0xf1, size = 2 + 30.
        assert_eq!(&out[0][..8], &[0, 0, 0, 0, 0xf1, 0, 32, 0]);
        assert_eq!(&out[0][8..], &kcp_payload(0)[..]);
        // Parity shard 0: seqid 10, type 0xf2, as long as the longest data shard.
        assert_eq!(&out[10][..6], &[10, 0, 0, 0, 0xf2, 0]);
        assert_eq!(out[10].len(), out[9].len());
        for (i, d) in out.iter().enumerate() {
            match parse(d).unwrap() {
                Frame::Data { seqid, kcp } => {
                    assert_eq!(seqid as usize, i);
                    assert_eq!(kcp, &kcp_payload(i)[..]);
                }
                Frame::Parity { seqid, .. } => assert_eq!(seqid as usize, i),
            }
        }
        // The next group goes on from 13.
        let next = group(&mut enc);
        assert_eq!(parse(&next[0]).unwrap().seqid(), 13);
    }

    #[test]
    fn parity_is_skipped_after_a_pause() {
        let mut enc = FecEncoder::new();
        let t = Instant::now();
        let mut out = Vec::new();
        for i in 0..DATA_SHARDS {
            let at = if i == 9 {
                t + Duration::from_secs(1)
            } else {
                t
            };
            enc.encode(&kcp_payload(i), at, &mut out);
        }
        assert_eq!(out.len(), DATA_SHARDS);
        enc.encode(&[1; 24], t, &mut out);
        assert_eq!(parse(&out[10]).unwrap().seqid(), 13);
    }

    #[test]
    fn any_three_lost_shards_are_recovered() {
        let mut enc = FecEncoder::new();
        let out = group(&mut enc);
        for lost in [[0usize, 1, 2], [3, 9, 12], [9, 10, 11], [0, 5, 9]] {
            let mut dec = FecDecoder::new();
            let mut got = Vec::new();
            for (i, d) in out.iter().enumerate() {
                if lost.contains(&i) {
                    continue;
                }
                let f = parse(d).unwrap();
                got.extend(dec.decode(d, &f, Instant::now()));
            }
            let want: Vec<Vec<u8>> = lost
                .iter()
                .filter(|i| **i < DATA_SHARDS)
                .map(|i| kcp_payload(*i))
                .collect();
            assert_eq!(got, want, "lost {lost:?}");
            assert_eq!(dec.groups(), 0);
        }
    }

    #[test]
    fn bad_frames_are_named() {
        assert_eq!(parse(&[0; 5]), Err(FecError::Short(5)));
        assert_eq!(parse(&[0; 1501]), Err(FecError::Long(1501)));
        // A data type at a parity index (seqid 10).
        let d = [10, 0, 0, 0, 0xf1, 0, 2, 0];
        assert!(matches!(parse(&d), Err(FecError::Index { .. })));
        let d = [1, 0, 0, 0, 0xf2, 0, 2, 0];
        assert!(matches!(parse(&d), Err(FecError::Index { .. })));
        let d = [0, 0, 0, 0, 0xf1, 0, 9, 0];
        assert!(matches!(parse(&d), Err(FecError::Size { .. })));
        let d = [0, 0, 0, 0, 0x51, 0, 2, 0];
        assert_eq!(parse(&d), Err(FecError::Kind(0x51)));
        let d = [0xff, 0xff, 0xff, 0xff, 0xf1, 0, 2, 0];
        assert!(matches!(parse(&d), Err(FecError::Wrapped(_))));
    }

    proptest! {
        /// Any datagrams: no panic, and never more than RX_GROUPS groups held.
        #[test]
        fn decoder_never_panics_and_stays_bounded(
            ds in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1600), 0..200),
            seqs in proptest::collection::vec(0u32..200, 0..200),
        ) {
            let mut dec = FecDecoder::new();
            for (i, mut d) in ds.into_iter().enumerate() {
                // Half of them get a plausible header, so they reach the decoder.
                if i % 2 == 0 && d.len() >= HEADER_PLUS2 {
                    let s = seqs.get(i).copied().unwrap_or(0);
                    d[..4].copy_from_slice(&s.to_le_bytes());
                    let ty = if (s as usize % SHARDS) < DATA_SHARDS { TYPE_DATA } else { TYPE_PARITY };
                    d[4..6].copy_from_slice(&ty.to_le_bytes());
                    let n = (d.len() - HEADER) as u16;
                    d[6..8].copy_from_slice(&n.to_le_bytes());
                }
                if let Ok(f) = parse(&d) {
                    let _ = dec.decode(&d, &f, Instant::now());
                }
                prop_assert!(dec.groups() <= RX_GROUPS);
                prop_assert!(dec.shards() <= RX_GROUPS * SHARDS);
            }
        }
    }
}
