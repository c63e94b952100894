//! KCP over UDP as frp uses it (xtaci/kcp-go v5 through golib `net/dial.go` and frp
//! `pkg/util/net/kcp.go`; frp-protocol.md §3.1): no packet crypt, kcp-go's FEC with 10 data
//! and 3 parity shards ([`super::fec`]), stream mode, `NoDelay(1, 20, 2, 1)`, MTU 1350, write
//! delay (data leaves on the 20 ms tick), ACKs on the tick (`ACKNoDelay = false`), windows
//! (128, 512) on frpc and (1024, 1024) on frps.
//!
//! [`KcpStream`] is one KCP conversation as a byte stream (the one boxed stream type takes it
//! as is; TLS and yamux go on top where they go on TCP). [`KcpStream::connect`] dials like
//! kcp-go's `DialWithOptions` (a fresh UDP socket, a random conversation id);
//! [`KcpStream::over_socket`] runs a conversation with a given id over a connected socket
//! (kcp-go `NewConn3`, as xtcp uses it). [`KcpListener`] demultiplexes one UDP socket into
//! conversations by source address, as kcp-go's `Listener` does.
//!
//! The state machine is the `kcp` crate (a port of ikcp, whose segment format kcp-go keeps).
//! The session and listener layer is written here: tokio_kcp has neither kcp-go's FEC nor its
//! per-address demultiplexing, and it has no bounds for an unauthenticated peer. Every
//! segment is checked here before the crate sees it ([`sanitize`]): the crate trusts what it
//! is given (an ACK's echoed timestamp feeds its RTT arithmetic, a fragment count its
//! reassembly).
//!
//! Each conversation is driven by one task that owns the UDP input (the socket, or the
//! listener's queue for that address), a timer ticking every 20 ms, and the FEC codec; the
//! stream shares the KCP state with it under a mutex. The task ends when the stream is dropped
//! (after at most [`LINGER`] to deliver what was written), when the listener closes, when the
//! peer has sent nothing valid for [`KcpConfig::idle_timeout`] (an idle conversation probes
//! its peer every [`KcpConfig::keepalive`] with a WASK, which kcp-go answers), or when KCP
//! gives up retransmitting. KCP has no close message (kcp-go's `Close` sends nothing), so the
//! peer of a dropped stream learns of it from the layer above (yamux's keepalive) or the idle
//! timeout.

use super::fec::{self, FecDecoder, FecEncoder, Frame};
use ::kcp::Kcp;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, warn};

/// A KCP segment header: conv u32, cmd u8, frg u8, wnd u16, ts u32, sn u32, una u32, len u32
/// (all little-endian).
pub const OVERHEAD: usize = 24;
pub const CMD_PUSH: u8 = 81;
pub const CMD_ACK: u8 = 82;
pub const CMD_WASK: u8 = 83;
pub const CMD_WINS: u8 = 84;
/// An ACK echoes the timestamp of the segment it acknowledges, one of ours; one claiming to
/// be older than this (or from the future) is not, and is dropped before it reaches the RTT
/// estimate.
const MAX_ACK_AGE_MS: u32 = 60_000;
/// How long a dropped stream's task goes on delivering what was written to it.
pub const LINGER: Duration = Duration::from_secs(3);
/// The `kcp` crate refuses a single send of 128 segments or more.
const MAX_SEND_SEGMENTS: usize = 64;

/// One side's KCP settings (frp's, per side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KcpConfig {
    pub snd_wnd: u16,
    pub rcv_wnd: u16,
    /// KCP's MTU: segments are packed into datagrams of at most this many bytes, before the
    /// 8 bytes of FEC header (kcp-go v5.6 `SetMtu` does not subtract them).
    pub mtu: usize,
    /// The update interval (`NoDelay`'s second argument), in milliseconds.
    pub interval_ms: u32,
    /// A conversation whose peer has sent nothing valid for this long ends. kcp-go has no
    /// such timeout; without one a peer that vanished would hold its session forever.
    pub idle_timeout: Duration,
    /// After this long without a datagram from the peer, a window probe (WASK) goes out, and
    /// again every as long: kcp-go (and this side) answer it with a window size (WINS), so
    /// an idle but live conversation is not taken for a vanished one.
    pub keepalive: Duration,
}

/// Default idle timeout: six unanswered keepalives.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(180);
/// Default keepalive.
pub const KEEPALIVE: Duration = Duration::from_secs(30);

impl KcpConfig {
    /// frpc's (golib `DialKCP`): `WindowSize(128, 512)`.
    pub const fn client() -> Self {
        KcpConfig {
            snd_wnd: 128,
            rcv_wnd: 512,
            mtu: 1350,
            interval_ms: 20,
            idle_timeout: IDLE_TIMEOUT,
            keepalive: KEEPALIVE,
        }
    }

    /// frps's (frp `ListenKcp`): `WindowSize(1024, 1024)`.
    pub const fn server() -> Self {
        KcpConfig {
            snd_wnd: 1024,
            rcv_wnd: 1024,
            ..KcpConfig::client()
        }
    }
}

/// One segment's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub conv: u32,
    pub cmd: u8,
    pub frg: u8,
    pub wnd: u16,
    pub ts: u32,
    pub sn: u32,
    pub una: u32,
    pub len: u32,
}

impl Segment {
    /// The 24-byte header, as kcp-go encodes it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.conv.to_le_bytes());
        out.push(self.cmd);
        out.push(self.frg);
        out.extend_from_slice(&self.wnd.to_le_bytes());
        out.extend_from_slice(&self.ts.to_le_bytes());
        out.extend_from_slice(&self.sn.to_le_bytes());
        out.extend_from_slice(&self.una.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
    }
}

/// Why a datagram's KCP segments were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("{0} trailing bytes are not a KCP segment")]
    Trailing(usize),
    #[error("unknown KCP command {0}")]
    Cmd(u8),
    #[error("KCP segment claims {len} bytes with {left} left")]
    Len { len: u32, left: usize },
    #[error("KCP conversation {got} where {want} was expected")]
    Conv { want: u32, got: u32 },
}

fn u32_at(d: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

/// Splits a datagram's KCP part into segments (ikcp `ikcp_input`'s loop, strictly: every
/// byte must belong to a segment).
pub fn parse_segments(mut buf: &[u8]) -> Result<Vec<(Segment, &[u8])>, SegmentError> {
    let mut out = Vec::with_capacity(buf.len() / OVERHEAD);
    while !buf.is_empty() {
        if buf.len() < OVERHEAD {
            return Err(SegmentError::Trailing(buf.len()));
        }
        let seg = Segment {
            conv: u32_at(buf, 0),
            cmd: buf[4],
            frg: buf[5],
            wnd: u16::from_le_bytes([buf[6], buf[7]]),
            ts: u32_at(buf, 8),
            sn: u32_at(buf, 12),
            una: u32_at(buf, 16),
            len: u32_at(buf, 20),
        };
        if !(CMD_PUSH..=CMD_WINS).contains(&seg.cmd) {
            return Err(SegmentError::Cmd(seg.cmd));
        }
        let left = buf.len() - OVERHEAD;
        if seg.len as usize > left {
            return Err(SegmentError::Len { len: seg.len, left });
        }
        let end = OVERHEAD + seg.len as usize;
        out.push((seg, &buf[OVERHEAD..end]));
        buf = &buf[end..];
    }
    Ok(out)
}

/// What of a datagram's KCP part the state machine may see, re-encoded: every segment must be
/// of conversation `conv`; ACKs whose echoed timestamp is not one of ours (`now_ms` minus up
/// to a minute) and empty PUSHes (a reader would take them for end of stream) are left out;
/// PUSH fragment counts are zeroed (stream mode: kcp-go sends 0, and reassembly of a claimed
/// 255 fragments would need a buffer that large).
pub fn sanitize(buf: &[u8], conv: u32, now_ms: u32) -> Result<Vec<u8>, SegmentError> {
    let mut out = Vec::with_capacity(buf.len());
    for (mut seg, data) in parse_segments(buf)? {
        if seg.conv != conv {
            return Err(SegmentError::Conv {
                want: conv,
                got: seg.conv,
            });
        }
        match seg.cmd {
            CMD_ACK if now_ms.wrapping_sub(seg.ts) > MAX_ACK_AGE_MS => continue,
            CMD_PUSH if data.is_empty() => continue,
            CMD_PUSH => seg.frg = 0,
            _ => {}
        }
        seg.encode(&mut out);
        out.extend_from_slice(data);
    }
    Ok(out)
}

/// The conversation a datagram from an unknown address opens, if it opens one: its segments
/// parse, share one conversation id, and one of them is the first PUSH (sn 0), as the first
/// datagram of a kcp-go client is (or its retransmission).
pub fn opening(kcp: &[u8]) -> Option<u32> {
    let segs = parse_segments(kcp).ok()?;
    let conv = segs.first()?.0.conv;
    let same = segs.iter().all(|(s, _)| s.conv == conv);
    let first_push = segs
        .iter()
        .any(|(s, d)| s.cmd == CMD_PUSH && s.sn == 0 && !d.is_empty());
    (same && first_push).then_some(conv)
}

/// UDP socket buffers (golib sets 4 MiB on frpc's KCP socket): a window of datagrams sent on
/// one tick must not overflow the kernel's default buffer.
const SOCKET_BUFFER: usize = 4 << 20;

/// A UDP socket bound to `addr` with [`SOCKET_BUFFER`]-sized buffers (the kernel may cap them).
fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

/// One rate limit for every "dropped a datagram" line (any peer can send garbage).
static DROP_LOG: crate::log::Throttle = crate::log::Throttle::new(Duration::from_secs(10));

fn log_drop(from: SocketAddr, why: &dyn std::fmt::Display) {
    if let Some(held) = DROP_LOG.ready() {
        warn!(%from, similar_held_back = held, "kcp: dropped a datagram: {why}");
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where the state machine's output goes: one `write` is one datagram (before FEC).
#[derive(Default, Clone)]
struct Outbox(Arc<Mutex<Vec<Vec<u8>>>>);

impl io::Write for Outbox {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        lock(&self.0).push(b.to_vec());
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why a conversation ended.
#[derive(Debug, Clone)]
struct Ended {
    kind: io::ErrorKind,
    why: String,
}

impl Ended {
    fn new(kind: io::ErrorKind, why: impl Into<String>) -> Self {
        Ended {
            kind,
            why: why.into(),
        }
    }
    fn error(&self) -> io::Error {
        io::Error::new(self.kind, format!("kcp: {}", self.why))
    }
}

struct State {
    kcp: Kcp<Outbox>,
    /// What the reader's buffer could not take of the last segment read, from `rest_at`.
    rest: Vec<u8>,
    rest_at: usize,
    reader: Option<Waker>,
    writer: Option<Waker>,
    ended: Option<Ended>,
    /// The stream was shut down for writing.
    shut: bool,
    /// The stream was dropped.
    dropped: bool,
}

impl State {
    fn wake(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }
}

struct Session {
    state: Mutex<State>,
    outbox: Outbox,
    /// Tells the task the stream was shut down or dropped.
    poke: Notify,
    conv: u32,
    peer: SocketAddr,
    /// Data shards FEC recovered so far.
    recovered: AtomicU64,
    /// KCP's clock starts here.
    start: Instant,
}

impl Session {
    /// KCP's clock: milliseconds since the conversation began (wraps after 49 days).
    fn ms(&self, now: Instant) -> u32 {
        now.duration_since(self.start).as_millis() as u32
    }
}

impl State {
    /// Segments a write may still queue: as kcp-go, writes wait while what is queued and in
    /// flight reaches the send window or the peer's receive window.
    fn room(&self) -> usize {
        let limit = self.kcp.snd_wnd().min(self.kcp.rmt_wnd()) as usize;
        limit.saturating_sub(self.kcp.wait_snd())
    }

    /// kcp-go's flush outside the tick (when a write fills the window, when an ACK slides
    /// it): KCP's clock moved on, then everything that may go now.
    fn flush_now(&mut self, ms: u32) {
        // Before the task's first update the crate refuses to flush; the tick will.
        let _ = self.kcp.update(ms);
        let _ = self.kcp.flush();
    }
}

/// One KCP conversation as a byte stream.
pub struct KcpStream {
    s: Arc<Session>,
}

impl std::fmt::Debug for KcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KcpStream")
            .field("conv", &self.s.conv)
            .field("peer", &self.s.peer)
            .finish()
    }
}

/// Where a conversation's datagrams come from.
enum Input {
    /// A connected socket of its own.
    Socket(Arc<UdpSocket>),
    /// The listener's queue for its address.
    Queue(mpsc::Receiver<Vec<u8>>),
}

impl Input {
    async fn recv(&mut self, buf: &mut [u8]) -> Option<io::Result<Vec<u8>>> {
        match self {
            Input::Socket(s) => Some(s.recv(buf).await.map(|n| buf[..n].to_vec())),
            Input::Queue(q) => q.recv().await.map(Ok),
        }
    }
}

impl KcpStream {
    /// Dials `addr` as kcp-go's `DialWithOptions` does: a fresh UDP socket (from `local`
    /// when set) and a random conversation id. Nothing is sent until the first write.
    pub async fn connect(
        addr: SocketAddr,
        local: Option<IpAddr>,
        cfg: KcpConfig,
    ) -> io::Result<KcpStream> {
        let ip = local.unwrap_or(if addr.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        });
        let sock = bind_udp(SocketAddr::new(ip, 0))?;
        sock.connect(addr).await?;
        KcpStream::over_socket(sock, rand::random::<u32>(), cfg)
    }

    /// Runs conversation `conv` over a UDP socket already connected to the peer (kcp-go
    /// `NewConn3`).
    pub fn over_socket(sock: UdpSocket, conv: u32, cfg: KcpConfig) -> io::Result<KcpStream> {
        let peer = sock.peer_addr()?;
        let sock = Arc::new(sock);
        Ok(spawn(Spec {
            cfg,
            out: sock.clone(),
            to: None,
            peer,
            conv,
            input: Input::Socket(sock),
            on_end: None,
            live: None,
        }))
    }

    pub fn conv(&self) -> u32 {
        self.s.conv
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.s.peer
    }

    /// Lost data shards FEC has recovered from the peer's parity so far.
    pub fn fec_recovered(&self) -> u64 {
        self.s.recovered.load(Ordering::Relaxed)
    }

    /// A handle to widen this conversation's receive window later (frps opens it at login),
    /// usable after the stream has gone into other layers.
    pub fn receive_window(&self) -> KcpWindow {
        KcpWindow(Arc::downgrade(&self.s))
    }
}

/// See [`KcpStream::receive_window`]; does nothing once the conversation is gone.
#[derive(Debug, Clone)]
pub struct KcpWindow(std::sync::Weak<Session>);

impl KcpWindow {
    /// Sets the receive window to `segments` (the `kcp` crate allows no fewer than 128).
    pub fn open(&self, segments: u16) {
        if let Some(s) = self.0.upgrade() {
            lock(&s.state).kcp.set_wndsize(0, segments);
        }
    }
}

struct Spec {
    cfg: KcpConfig,
    out: Arc<UdpSocket>,
    /// `None`: `out` is connected to the peer.
    to: Option<SocketAddr>,
    peer: SocketAddr,
    conv: u32,
    input: Input,
    on_end: Option<Box<dyn FnOnce() + Send>>,
    /// Counts the task while it runs (the listener's [`SessionCount`]).
    live: Option<Arc<AtomicUsize>>,
}

fn spawn(spec: Spec) -> KcpStream {
    let outbox = Outbox::default();
    let mut kcp = Kcp::new_stream(spec.conv, outbox.clone());
    // 1350 is well above the crate's minimum of 50: this cannot fail.
    let _ = kcp.set_mtu(spec.cfg.mtu);
    kcp.set_nodelay(true, spec.cfg.interval_ms as i32, 2, true);
    kcp.set_wndsize(spec.cfg.snd_wnd, spec.cfg.rcv_wnd);
    let s = Arc::new(Session {
        state: Mutex::new(State {
            kcp,
            rest: Vec::new(),
            rest_at: 0,
            reader: None,
            writer: None,
            ended: None,
            shut: false,
            dropped: false,
        }),
        outbox,
        poke: Notify::new(),
        conv: spec.conv,
        peer: spec.peer,
        recovered: AtomicU64::new(0),
        start: Instant::now(),
    });
    let now = s.start;
    let driver = Driver {
        s: s.clone(),
        cfg: spec.cfg,
        out: spec.out,
        to: spec.to,
        input: spec.input,
        enc: FecEncoder::new(),
        dec: FecDecoder::new(),
        last_rx: now,
        last_probe: now,
        sent: (spec.cfg.rcv_wnd, 0),
        linger_until: None,
    };
    let (on_end, live) = (spec.on_end, spec.live);
    if let Some(n) = &live {
        n.fetch_add(1, Ordering::Relaxed);
    }
    tokio::spawn(async move {
        driver.run().await;
        if let Some(n) = live {
            n.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(f) = on_end {
            f();
        }
    });
    KcpStream { s }
}

/// A socket error as the conversation's end; ICMP port unreachable (frpc dialing a frps
/// without `kcpBindPort`) says so.
fn refused_or(e: io::Error, what: &str, peer: SocketAddr) -> Ended {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        return Ended::new(
            e.kind(),
            format!(
                "nothing listens on UDP {peer} (ICMP port unreachable): is it frps's kcpBindPort?"
            ),
        );
    }
    Ended::new(e.kind(), format!("{what}: {e}"))
}

/// The task of one conversation.
struct Driver {
    s: Arc<Session>,
    cfg: KcpConfig,
    out: Arc<UdpSocket>,
    to: Option<SocketAddr>,
    input: Input,
    enc: FecEncoder,
    dec: FecDecoder,
    last_rx: Instant,
    /// When the last keepalive probe went out.
    last_probe: Instant,
    /// The window and una of the last segment sent (a keepalive repeats them).
    sent: (u16, u32),
    linger_until: Option<Instant>,
}

impl Driver {
    async fn run(mut self) {
        let ended = self.drive().await;
        debug!(peer = %self.s.peer, conv = self.s.conv, "kcp conversation ended: {}", ended.why);
        let mut st = lock(&self.s.state);
        st.ended.get_or_insert(ended);
        st.wake();
    }

    async fn drive(&mut self) -> Ended {
        let mut tick = tokio::time::interval(Duration::from_millis(self.cfg.interval_ms.into()));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let now = Instant::now();
                    let ended = self.on_tick(now);
                    if let Err(e) = self.send_out(now).await {
                        return e;
                    }
                    if let Some(e) = ended {
                        return e;
                    }
                }
                d = self.input.recv(&mut buf) => match d {
                    Some(Ok(d)) => {
                        let now = Instant::now();
                        if self.on_datagram(&d, now) {
                            if let Err(e) = self.send_out(now).await {
                                return e;
                            }
                        }
                    }
                    Some(Err(e)) => return refused_or(e, "udp receive", self.s.peer),
                    None => return Ended::new(io::ErrorKind::ConnectionAborted, "the KCP listener closed"),
                },
                _ = self.s.poke.notified() => {
                    // A write filled the window (and flushed), or the stream was shut down
                    // or dropped: what KCP produced goes out.
                    let now = Instant::now();
                    let ended = self.on_tick(now);
                    let sent = self.send_out(now).await;
                    if let Some(e) = ended.or(sent.err()) {
                        return e;
                    }
                }
            }
        }
    }

    /// KCP's update; whether the conversation is over.
    fn on_tick(&mut self, now: Instant) -> Option<Ended> {
        let ms = self.s.ms(now);
        let mut st = lock(&self.s.state);
        // Every tick flushes, as kcp-go's `update` does: the crate's own `update` flushes only
        // when its schedule is due, and the flushes outside the tick move that schedule.
        if let Err(e) = st.kcp.update(ms).and_then(|()| st.kcp.flush()) {
            return Some(Ended::new(io::ErrorKind::Other, e.to_string()));
        }
        if st.kcp.is_dead_link() {
            return Some(Ended::new(
                io::ErrorKind::TimedOut,
                "the peer stopped acknowledging",
            ));
        }
        if now.duration_since(self.last_rx) > self.cfg.idle_timeout {
            return Some(Ended::new(
                io::ErrorKind::TimedOut,
                format!("nothing from the peer for {:?}", self.cfg.idle_timeout),
            ));
        }
        let keepalive = self.cfg.keepalive;
        if now.duration_since(self.last_rx) >= keepalive
            && now.duration_since(self.last_probe) >= keepalive
        {
            self.last_probe = now;
            let mut probe = Vec::with_capacity(OVERHEAD);
            Segment {
                conv: self.s.conv,
                cmd: CMD_WASK,
                frg: 0,
                wnd: self.sent.0,
                ts: ms,
                sn: 0,
                una: self.sent.1,
                len: 0,
            }
            .encode(&mut probe);
            lock(&self.s.outbox.0).push(probe);
        }
        if st.dropped {
            let until = *self.linger_until.get_or_insert(now + LINGER);
            if st.kcp.wait_snd() == 0 || now >= until {
                return Some(Ended::new(io::ErrorKind::BrokenPipe, "closed"));
            }
        }
        if st.room() > 0 {
            if let Some(w) = st.writer.take() {
                w.wake();
            }
        }
        None
    }

    /// FEC-frames and sends what KCP produced.
    async fn send_out(&mut self, now: Instant) -> Result<(), Ended> {
        let raw = std::mem::take(&mut *lock(&self.s.outbox.0));
        if raw.is_empty() {
            return Ok(());
        }
        let mut frames = Vec::with_capacity(raw.len() + raw.len() / 3 + 3);
        for d in &raw {
            if let Some((last, _)) = parse_segments(d).ok().and_then(|s| s.last().copied()) {
                self.sent = (last.wnd, last.una);
            }
            self.enc.encode(d, now, &mut frames);
        }
        for f in frames {
            let r = match self.to {
                None => self.out.send(&f).await,
                Some(to) => self.out.send_to(&f, to).await,
            };
            if let Err(e) = r {
                // A connected socket learns that nothing listens (ICMP): the dial failed.
                if self.to.is_none() && e.kind() == io::ErrorKind::ConnectionRefused {
                    return Err(refused_or(e, "udp send", self.s.peer));
                }
                debug!(peer = %self.s.peer, error = %e, "kcp: udp send failed");
            }
        }
        Ok(())
    }

    /// Takes one datagram; whether KCP flushed (an ACK slid the send window, and kcp-go
    /// sends at once then) so the caller sends what it produced.
    fn on_datagram(&mut self, d: &[u8], now: Instant) -> bool {
        let peer = self.s.peer;
        let frame = match fec::parse(d) {
            Ok(f) => f,
            Err(e) => {
                log_drop(peer, &e);
                return false;
            }
        };
        let recovered = self.dec.decode(d, &frame, now);
        self.s
            .recovered
            .fetch_add(recovered.len() as u64, Ordering::Relaxed);
        let ms = self.s.ms(now);
        let conv = self.s.conv;
        let mut st = lock(&self.s.state);
        let waiting = st.kcp.wait_snd();
        let mut fed = false;
        let data = match frame {
            Frame::Data { kcp, .. } => Some(kcp),
            Frame::Parity { .. } => {
                fed = true;
                None
            }
        };
        for kcp in data.into_iter().chain(recovered.iter().map(Vec::as_slice)) {
            match sanitize(kcp, conv, ms) {
                Ok(b) if b.is_empty() => fed = true,
                Ok(b) => match st.kcp.input(&b) {
                    Ok(_) => fed = true,
                    Err(e) => log_drop(peer, &e),
                },
                Err(e) => log_drop(peer, &e),
            }
        }
        if fed {
            self.last_rx = now;
        }
        let slid = st.kcp.wait_snd() < waiting;
        if slid {
            st.flush_now(ms);
        }
        st.wake();
        slid
    }
}

impl AsyncRead for KcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut st = lock(&self.s.state);
        loop {
            if st.rest_at < st.rest.len() {
                let n = buf.remaining().min(st.rest.len() - st.rest_at);
                buf.put_slice(&st.rest[st.rest_at..st.rest_at + n]);
                st.rest_at += n;
                return Poll::Ready(Ok(()));
            }
            let Ok(size) = st.kcp.peeksize() else { break };
            let mut seg = vec![0u8; size];
            match st.kcp.recv(&mut seg) {
                Ok(n) if n > 0 => {
                    seg.truncate(n);
                    st.rest = seg;
                    st.rest_at = 0;
                }
                // Empty segments are filtered out on input; skip one anyway.
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(io::Error::from(e))),
            }
        }
        if let Some(e) = &st.ended {
            return Poll::Ready(Err(e.error()));
        }
        st.reader = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for KcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut st = lock(&self.s.state);
        if let Some(e) = &st.ended {
            return Poll::Ready(Err(e.error()));
        }
        if st.shut {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "kcp: write after shutdown",
            )));
        }
        let room = st.room();
        if room == 0 {
            st.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let mss = st.kcp.mss().max(1);
        let n = buf.len().min(room.min(MAX_SEND_SEGMENTS) * mss);
        let sent = st.kcp.send(&buf[..n]).map_err(io::Error::from);
        // kcp-go's write delay holds data for the tick, unless the window is full: then it
        // goes at once.
        if st.room() == 0 {
            st.flush_now(self.s.ms(Instant::now()));
            self.s.poke.notify_one();
        }
        Poll::Ready(sent)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // As kcp-go: what was written leaves on the next tick, and is retransmitted until
        // acknowledged.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        lock(&self.s.state).shut = true;
        self.s.poke.notify_one();
        Poll::Ready(Ok(()))
    }
}

impl Drop for KcpStream {
    fn drop(&mut self) {
        lock(&self.s.state).dropped = true;
        self.s.poke.notify_one();
    }
}

/// Bounds on what a [`KcpListener`] keeps for peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Conversations at once (accepted or waiting to be); new ones past this are dropped.
    pub max_sessions: usize,
    /// Conversations waiting for `accept` (kcp-go's `acceptBacklog`).
    pub backlog: usize,
    /// Datagrams queued per conversation for its task; more are dropped (KCP retransmits).
    pub queue: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            max_sessions: 4096,
            backlog: 128,
            queue: 128,
        }
    }
}

struct Entry {
    id: u64,
    conv: u32,
    tx: mpsc::Sender<Vec<u8>>,
}

type Sessions = Arc<Mutex<HashMap<SocketAddr, Entry>>>;

/// A count of a listener's running conversation tasks; stays valid after the listener is
/// dropped (tests check every task ended).
#[derive(Debug, Clone)]
pub struct SessionCount(Arc<AtomicUsize>);

impl SessionCount {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// kcp-go's `Listener`: one UDP socket, conversations told apart by the peer's address.
/// Its task stops when the listener is dropped; conversations' tasks stop with it.
pub struct KcpListener {
    local: SocketAddr,
    accept: mpsc::Receiver<KcpStream>,
    count: SessionCount,
    _stop: DropGuard,
}

impl std::fmt::Debug for KcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KcpListener")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl KcpListener {
    /// Binds `addr` (UDP) and starts demultiplexing.
    pub async fn bind(
        addr: SocketAddr,
        cfg: KcpConfig,
        limits: ListenerLimits,
    ) -> io::Result<KcpListener> {
        let sock = Arc::new(bind_udp(addr)?);
        let local = sock.local_addr()?;
        let (tx, accept) = mpsc::channel(limits.backlog.max(1));
        let stop = CancellationToken::new();
        let live = Arc::new(AtomicUsize::new(0));
        let demux = Demux {
            sock,
            sessions: Arc::default(),
            accept: tx,
            cfg,
            limits,
            live: live.clone(),
            next_id: 0,
        };
        tokio::spawn(demux.run(stop.clone()));
        Ok(KcpListener {
            local,
            accept,
            count: SessionCount(live),
            _stop: stop.drop_guard(),
        })
    }

    /// The next new conversation; `None` once the listener's task has stopped.
    pub async fn accept(&mut self) -> Option<KcpStream> {
        self.accept.recv().await
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Running conversation tasks.
    pub fn sessions(&self) -> SessionCount {
        self.count.clone()
    }
}

struct Demux {
    sock: Arc<UdpSocket>,
    sessions: Sessions,
    accept: mpsc::Sender<KcpStream>,
    cfg: KcpConfig,
    limits: ListenerLimits,
    live: Arc<AtomicUsize>,
    next_id: u64,
}

impl Demux {
    async fn run(mut self, stop: CancellationToken) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (n, from) = tokio::select! {
                _ = stop.cancelled() => break,
                r = self.sock.recv_from(&mut buf) => match r {
                    Ok(r) => r,
                    Err(e) => {
                        debug!(error = %e, "kcp: udp receive failed");
                        continue;
                    }
                },
            };
            if let Err(why) = self.route(&buf[..n], from) {
                log_drop(from, &why);
            }
        }
        // Closing every queue ends every conversation.
        lock(&self.sessions).clear();
    }

    /// Hands a datagram to its conversation, or opens one.
    fn route(&mut self, d: &[u8], from: SocketAddr) -> Result<(), String> {
        let frame = fec::parse(d).map_err(|e| e.to_string())?;
        let kcp = match frame {
            Frame::Data { kcp, .. } => Some(kcp),
            Frame::Parity { .. } => None,
        };
        let conv = kcp.filter(|k| k.len() >= 4).map(|k| u32_at(k, 0));
        let mut sessions = lock(&self.sessions);
        if let Some(e) = sessions.get(&from) {
            if conv.is_none_or(|c| c == e.conv) {
                // A full queue drops the datagram (KCP retransmits); a closed one is a
                // conversation just ending.
                let _ = e.tx.try_send(d.to_vec());
                return Ok(());
            }
        }
        let Some(conv) = kcp.and_then(opening) else {
            return Err(match conv {
                Some(c) => format!("not the start of a KCP conversation (conv {c})"),
                None => "parity for no known conversation".into(),
            });
        };
        // kcp-go: a new conversation from the same address replaces the old one.
        let replaced = sessions.remove(&from).is_some();
        if replaced {
            debug!(%from, conv, "kcp: a new conversation replaces the old one");
        }
        if sessions.len() >= self.limits.max_sessions {
            return Err(format!(
                "{} KCP conversations already open",
                self.limits.max_sessions
            ));
        }
        let Ok(permit) = self.accept.try_reserve() else {
            return Err("too many KCP conversations waiting to be accepted".into());
        };
        let (tx, rx) = mpsc::channel(self.limits.queue.max(1));
        let _ = tx.try_send(d.to_vec());
        self.next_id += 1;
        let id = self.next_id;
        let map = self.sessions.clone();
        let on_end = Box::new(move || {
            let mut m = lock(&map);
            if m.get(&from).is_some_and(|e| e.id == id) {
                m.remove(&from);
            }
        });
        let stream = spawn(Spec {
            cfg: self.cfg,
            out: self.sock.clone(),
            to: Some(from),
            peer: from,
            conv,
            input: Input::Queue(rx),
            on_end: Some(on_end),
            live: Some(self.live.clone()),
        });
        sessions.insert(from, Entry { id, conv, tx });
        permit.send(stream);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const WAIT: Duration = Duration::from_secs(10);

    fn localhost() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    async fn listener() -> KcpListener {
        KcpListener::bind(localhost(), KcpConfig::server(), ListenerLimits::default())
            .await
            .unwrap()
    }

    /// Waits (bounded) until `f` holds.
    async fn eventually(what: &str, f: impl Fn() -> bool) {
        let end = tokio::time::Instant::now() + WAIT;
        while !f() {
            assert!(
                tokio::time::Instant::now() < end,
                "timed out waiting: {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 131 % 251) as u8).collect()
    }

    /// Echoes one accepted conversation.
    fn echo(mut s: KcpStream) {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }

    async fn round_trip(c: &mut KcpStream, data: &[u8]) {
        let (mut r, mut w) = tokio::io::split(c);
        let send = async {
            w.write_all(data).await.unwrap();
        };
        let recv = async {
            let mut got = vec![0u8; data.len()];
            r.read_exact(&mut got).await.unwrap();
            got
        };
        let ((), got) = tokio::time::timeout(WAIT * 3, async { tokio::join!(send, recv) })
            .await
            .unwrap();
        assert!(got == data, "echoed bytes differ");
    }

    #[tokio::test]
    async fn echo_through_the_listener_and_tasks_end() {
        let mut l = listener().await;
        let count = l.sessions();
        let addr = l.local_addr();
        let mut c = KcpStream::connect(addr, None, KcpConfig::client())
            .await
            .unwrap();
        c.write_all(b"hi").await.unwrap();
        let s = tokio::time::timeout(WAIT, l.accept())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.conv(), c.conv());
        echo(s);
        let mut two = [0u8; 2];
        tokio::time::timeout(WAIT, c.read_exact(&mut two))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&two, b"hi");
        round_trip(&mut c, &pattern(1 << 20)).await;
        assert_eq!(count.get(), 1);
        drop(c);
        drop(l);
        eventually("every conversation task ended", || count.get() == 0).await;
    }

    #[tokio::test]
    async fn over_connected_sockets_with_a_given_conv() {
        let a = UdpSocket::bind(localhost()).await.unwrap();
        let b = UdpSocket::bind(localhost()).await.unwrap();
        a.connect(b.local_addr().unwrap()).await.unwrap();
        b.connect(a.local_addr().unwrap()).await.unwrap();
        let mut a = KcpStream::over_socket(a, 1, KcpConfig::client()).unwrap();
        let b = KcpStream::over_socket(b, 1, KcpConfig::client()).unwrap();
        assert_eq!(a.conv(), 1);
        echo(b);
        round_trip(&mut a, &pattern(300_000)).await;
    }

    /// An idle conversation stays up through keepalive probes; one whose peer vanished ends
    /// with a timeout.
    #[tokio::test]
    async fn idle_conversations_live_and_vanished_peers_end() {
        let cfg = KcpConfig {
            idle_timeout: Duration::from_millis(600),
            keepalive: Duration::from_millis(100),
            ..KcpConfig::client()
        };
        let a = UdpSocket::bind(localhost()).await.unwrap();
        let b = UdpSocket::bind(localhost()).await.unwrap();
        a.connect(b.local_addr().unwrap()).await.unwrap();
        b.connect(a.local_addr().unwrap()).await.unwrap();
        let mut a = KcpStream::over_socket(a, 9, cfg).unwrap();
        let b = KcpStream::over_socket(b, 9, cfg).unwrap();
        echo(b);
        round_trip(&mut a, b"before").await;
        // Idle for several idle timeouts: the probes keep both ends up.
        tokio::time::sleep(Duration::from_secs(2)).await;
        round_trip(&mut a, b"after").await;
        // A peer that never answers: the read fails with a timeout, within bounds.
        let mute = UdpSocket::bind(localhost()).await.unwrap();
        let c = UdpSocket::bind(localhost()).await.unwrap();
        c.connect(mute.local_addr().unwrap()).await.unwrap();
        let mut c = KcpStream::over_socket(c, 10, cfg).unwrap();
        c.write_all(b"anyone?").await.unwrap();
        let mut one = [0u8; 1];
        let e = tokio::time::timeout(WAIT, c.read(&mut one))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    }

    /// A frame built by hand from kcp-go's source (fec.go `encode`: seqid, 0xf1, size; kcp.go
    /// `segment.encode`: conv, cmd, frg, wnd, ts, sn, una, len) is accepted, and answered by
    /// an ACK framed the same way.
    #[tokio::test]
    async fn hand_built_kcp_go_frame_is_acked() {
        let mut l = listener().await;
        let peer = UdpSocket::bind(localhost()).await.unwrap();
        let conv: u32 = 0x0102_0304;
        let mut d = Vec::new();
        d.extend_from_slice(&0u32.to_le_bytes()); // FEC seqid
        d.extend_from_slice(&0xf1u16.to_le_bytes()); // data shard
        d.extend_from_slice(&(2u16 + 24 + 5).to_le_bytes()); // size, counting itself
        d.extend_from_slice(&conv.to_le_bytes());
        d.extend_from_slice(&[81, 0]); // PUSH, frg 0
        d.extend_from_slice(&512u16.to_le_bytes()); // wnd
        d.extend_from_slice(&100u32.to_le_bytes()); // ts
        d.extend_from_slice(&0u32.to_le_bytes()); // sn
        d.extend_from_slice(&0u32.to_le_bytes()); // una
        d.extend_from_slice(&5u32.to_le_bytes()); // len
        d.extend_from_slice(b"hello");
        peer.send_to(&d, l.local_addr()).await.unwrap();
        let mut s = tokio::time::timeout(WAIT, l.accept())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.conv(), conv);
        let mut got = [0u8; 5];
        tokio::time::timeout(WAIT, s.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"hello");
        let mut buf = [0u8; 1500];
        let (n, from) = tokio::time::timeout(WAIT, peer.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from, l.local_addr());
        let ack = &buf[..n];
        assert_eq!(
            &ack[..6],
            &[0, 0, 0, 0, 0xf1, 0],
            "FEC data header, seqid 0"
        );
        assert_eq!(u16::from_le_bytes([ack[6], ack[7]]) as usize, n - 6);
        let segs = parse_segments(&ack[8..]).unwrap();
        assert_eq!(segs.len(), 1);
        let (seg, data) = segs[0];
        assert_eq!(
            (seg.conv, seg.cmd, seg.frg, seg.ts, seg.sn, seg.una, seg.len),
            (conv, CMD_ACK, 0, 100, 0, 1, 0)
        );
        assert!(data.is_empty());
        // The window it advertises is the server's (1024), less what waits to be read.
        assert!(seg.wnd >= 1023, "wnd {}", seg.wnd);
    }

    /// PUSH segments with these sns (one byte each), in one FEC data shard of `enc`.
    fn pushes(enc: &mut FecEncoder, conv: u32, sns: &[u32]) -> Vec<u8> {
        let mut k = Vec::new();
        for &sn in sns {
            Segment {
                conv,
                cmd: CMD_PUSH,
                frg: 0,
                wnd: 128,
                ts: 5,
                sn,
                una: 0,
                len: 1,
            }
            .encode(&mut k);
            k.push(b'x');
        }
        let mut out = Vec::new();
        enc.encode(&k, Instant::now(), &mut out);
        out.swap_remove(0)
    }

    /// The sns a datagram acknowledges.
    async fn acked(peer: &UdpSocket) -> Vec<u32> {
        let mut buf = [0u8; 1500];
        let n = tokio::time::timeout(WAIT, peer.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let Ok(Frame::Data { kcp, .. }) = fec::parse(&buf[..n]) else {
            panic!("not a data shard")
        };
        parse_segments(kcp)
            .unwrap()
            .iter()
            .filter(|(s, _)| s.cmd == CMD_ACK)
            .map(|(s, _)| s.sn)
            .collect()
    }

    /// A conversation keeps (and acknowledges) out-of-order segments only within its receive
    /// window; frps starts unknown peers at 128 segments and opens 1024 at login.
    #[tokio::test]
    async fn the_receive_window_bounds_what_a_peer_can_park() {
        let cfg = KcpConfig {
            rcv_wnd: 128,
            ..KcpConfig::server()
        };
        let mut l = KcpListener::bind(localhost(), cfg, ListenerLimits::default())
            .await
            .unwrap();
        let peer = UdpSocket::bind(localhost()).await.unwrap();
        peer.connect(l.local_addr()).await.unwrap();
        let mut enc = FecEncoder::new();
        peer.send(&pushes(&mut enc, 77, &[0, 500])).await.unwrap();
        let s = tokio::time::timeout(WAIT, l.accept())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(acked(&peer).await, [0], "sn 500 is past a window of 128");
        s.receive_window().open(1024);
        peer.send(&pushes(&mut enc, 77, &[600, 1])).await.unwrap();
        let mut got = acked(&peer).await;
        got.sort_unstable();
        assert_eq!(got, [1, 600], "within a window of 1024");
    }

    /// Garbage at the port: random bytes, truncated FEC frames, bad shard indexes, parity for
    /// nobody, and a flood of new conversations from many addresses. Nothing opens beyond the
    /// cap, and a good client still gets its echo.
    #[tokio::test]
    async fn garbage_and_conv_floods_are_bounded() {
        let limits = ListenerLimits {
            max_sessions: 8,
            backlog: 4,
            queue: 16,
        };
        let mut l = KcpListener::bind(localhost(), KcpConfig::server(), limits)
            .await
            .unwrap();
        let addr = l.local_addr();
        let count = l.sessions();
        let bad = UdpSocket::bind(localhost()).await.unwrap();
        let mut rng = 0x1234_5678u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for i in 0..300u32 {
            let len = (next() % 1400) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            match i % 4 {
                0 => {}
                1 => d.truncate(5),
                2 => d = vec![10, 0, 0, 0, 0xf1, 0, 2, 0],
                _ => d = vec![10, 0, 0, 0, 0xf2, 0, 0, 0, 9, 9],
            }
            let _ = bad.send_to(&d, addr).await;
        }
        // 40 addresses each opening conversations nobody accepts.
        let mut flooders = Vec::new();
        for i in 0..40u32 {
            let s = UdpSocket::bind(localhost()).await.unwrap();
            let mut k = Vec::new();
            Segment {
                conv: i,
                cmd: CMD_PUSH,
                frg: 0,
                wnd: 128,
                ts: 0,
                sn: 0,
                una: 0,
                len: 1,
            }
            .encode(&mut k);
            k.push(b'x');
            let mut frames = Vec::new();
            FecEncoder::new().encode(&k, Instant::now(), &mut frames);
            s.send_to(&frames[0], addr).await.unwrap();
            flooders.push(s);
        }
        eventually("the flood reached the listener", || count.get() >= 4).await;
        assert!(count.get() <= 8, "{} conversations", count.get());
        // Drain what was queued: those conversations are accepted (and dropped).
        let mut accepted = 0;
        while let Ok(Some(s)) = tokio::time::timeout(Duration::from_millis(200), l.accept()).await {
            accepted += 1;
            drop(s);
        }
        assert!(accepted <= 8);
        eventually("the dropped conversations ended", || count.get() == 0).await;
        let mut c = KcpStream::connect(addr, None, KcpConfig::client())
            .await
            .unwrap();
        c.write_all(b"x").await.unwrap();
        let s = tokio::time::timeout(WAIT, l.accept())
            .await
            .unwrap()
            .unwrap();
        echo(s);
        let mut one = [0u8; 1];
        tokio::time::timeout(WAIT, c.read_exact(&mut one))
            .await
            .unwrap()
            .unwrap();
        round_trip(&mut c, &pattern(100_000)).await;
    }

    proptest! {
        /// Any bytes: the segment parser and the sanitizer never panic, and what the
        /// sanitizer passes on parses, is of one conversation, and has no fragments.
        #[test]
        fn segment_decoder_never_panics(d in proptest::collection::vec(any::<u8>(), 0..2000), now in any::<u32>()) {
            let _ = parse_segments(&d);
            if let Ok(ok) = sanitize(&d, u32_at(&[d.first().copied().unwrap_or(0), 0, 0, 0], 0), now) {
                let segs = parse_segments(&ok).unwrap();
                prop_assert!(segs.iter().all(|(s, _)| s.frg == 0 || s.cmd != CMD_PUSH));
            }
            let _ = opening(&d);
        }

        /// Well-formed segments with hostile fields (huge frg, len 0, any ts, una, wnd) fed
        /// through the sanitizer into the state machine: no panic, bounded queues.
        #[test]
        fn state_machine_survives_hostile_segments(
            segs in proptest::collection::vec((81u8..=84, any::<u8>(), any::<u16>(), any::<u32>(), 0u32..2048, any::<u32>(), 0usize..64), 1..200),
        ) {
            let mut k = Kcp::new_stream(7, Outbox::default());
            let _ = k.set_mtu(1350);
            k.set_nodelay(true, 20, 2, true);
            k.set_wndsize(1024, 1024);
            let _ = k.send(&[1u8; 5000]);
            for (i, (cmd, frg, wnd, ts, sn, una, len)) in segs.into_iter().enumerate() {
                let mut b = Vec::new();
                Segment { conv: 7, cmd, frg, wnd, ts, sn, una, len: len as u32 }.encode(&mut b);
                b.extend(std::iter::repeat_n(9u8, len));
                let now = i as u32 * 20;
                if let Ok(s) = sanitize(&b, 7, now) {
                    if !s.is_empty() {
                        let _ = k.input(&s);
                    }
                }
                let _ = k.update(now);
                let mut out = vec![0u8; 64 * 1024];
                while let Ok(n) = k.peeksize() {
                    prop_assert!(n <= 1350);
                    if k.recv(&mut out).is_err() { break; }
                }
                prop_assert!(k.wait_snd() < 2048);
            }
        }
    }
}
