//! yamux, wire-compatible with hashicorp/yamux (frp's fork is wire-identical), with frp's
//! parameters (frp `client/connector.go`, `server/service.go`; frp-protocol.md §3.6).
//!
//! Our own implementation rather than a crate, because the data path with tcpMux on (frp's
//! default) runs through it and the measured costs were in the crate's design: one allocated
//! buffer and one channel message per frame, one socket write per frame. Here:
//! - streams append their frames (header + payload, one copy) to one session buffer under a
//!   short lock; the session's driver writes everything queued with one syscall, swapping two
//!   buffers so nothing is allocated once they have grown;
//! - the driver reads up to 128 KiB per syscall and hands each stream its payload as slices of
//!   that read buffer (`Bytes`, no copy; the stream's reader copies once into the caller's
//!   buffer);
//! - window updates are batched as in hashicorp (sent when half the 6 MiB window is consumed).
//!
//! Interop facts honoured (frp-protocol.md §3.6): a new stream is opened with a
//! WindowUpdate|SYN carrying 6 MiB − 256 KiB; an inbound stream is ACKed at once with the same
//! growth (a Go frpc closes the whole session when a stream stays un-ACKed for 75 s); pings are
//! answered with the peer's opaque value and our keepalive pings must be answered within 10 s;
//! a peer exceeding its receive window is a protocol error that ends the session. The unit
//! tests run both roles against `tokio-yamux`, an independent implementation of the protocol.

use bytes::{Buf, Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

use crate::io::join::FAIR_SHARE;
use crate::io::BoxStream;

/// frp sets `MaxStreamWindowSize = 6 MiB`.
pub const MAX_STREAM_WINDOW: u32 = 6 * 1024 * 1024;
/// yamux's initial stream window (fixed by the protocol).
const INITIAL_WINDOW: u32 = 256 * 1024;
const HEADER_LEN: usize = 12;
/// Streams wait once this much is queued for the socket (backpressure).
const OUT_LIMIT: usize = 256 * 1024;
/// Frames queued for the socket beyond which the driver stops reading from it.
const READ_PAUSE: usize = 4 * OUT_LIMIT;
/// Bytes read from the socket per syscall at most.
const READ_CHUNK: usize = 64 * 1024;
/// What a quiet session reads into: a fleet of idle clients keeps 4 KiB each, not 64 (issue
/// 21); a read that fills the free space makes the next buffer [`READ_CHUNK`].
const QUIET_READ: usize = 4 * 1024;

const TYPE_DATA: u8 = 0;
const TYPE_WINDOW_UPDATE: u8 = 1;
const TYPE_PING: u8 = 2;
const TYPE_GO_AWAY: u8 = 3;
const FLAG_SYN: u16 = 1;
const FLAG_ACK: u16 = 2;
const FLAG_FIN: u16 = 4;
const FLAG_RST: u16 = 8;

/// Session parameters (hashicorp `Config`).
#[derive(Debug, Clone)]
pub struct Config {
    /// Ping interval; `None` turns keepalive off.
    pub keepalive: Option<Duration>,
    /// Send a keepalive ping only when nothing was heard from the peer since the last tick:
    /// a peer that pings us (every frpc does, every 30 s) or sends anything shows it is alive
    /// without our ping and its answer (frps: two syscalls fewer per idle client and round,
    /// issue 21). A peer that falls silent is pinged one interval later, and dropped 10 s
    /// after that if it does not answer.
    pub quiet_keepalive: bool,
    /// How long a keepalive ping may go unanswered (hashicorp `ConnectionWriteTimeout`).
    pub ping_timeout: Duration,
    /// Inbound streams not yet accepted; more are reset (hashicorp `AcceptBacklog`).
    pub accept_backlog: usize,
    /// Per-stream receive window we grant (hashicorp `MaxStreamWindowSize`).
    pub max_window: u32,
    /// Open streams per session at most; more are reset (hashicorp has no limit; the crate we
    /// used before had this one, and it bounds what one unauthenticated peer can make us hold).
    pub max_streams: usize,
    /// Tighter limits until [`SessionLimits::lift`] (frps: until a Login succeeds on the
    /// session); `None` = none.
    pub restricted: Option<Restriction>,
}

/// What a session not trusted yet may make us hold. While it applies, inbound streams are
/// ACKed without window growth (yamux's initial 256 KiB stays their window), and their
/// payload is copied out of the read buffer (a slice would keep a whole 64 KiB read alive).
#[derive(Debug, Clone, Copy)]
pub struct Restriction {
    /// Open streams at most; more are reset.
    pub max_streams: usize,
    /// Bytes a stream may hold unread, each queued chunk counted [`CHUNK_COST`] more; a stream
    /// over it is reset.
    pub max_buffered: usize,
}

/// What one queued chunk of received payload costs beyond its bytes (its `Bytes` handle, its
/// slot in the queue and its allocation), for [`Restriction::max_buffered`].
pub const CHUNK_COST: usize = 64;

/// Lifts a session's [`Restriction`]; cheap to clone.
#[derive(Clone)]
pub struct SessionLimits {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SessionLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLimits").finish_non_exhaustive()
    }
}

impl SessionLimits {
    /// From now on only the session's [`Config`] limits apply; streams already open grow their
    /// window at their next read.
    pub fn lift(&self) {
        self.shared.lock().restricted = None;
    }
}

/// The yamux config for one session. `keepalive_secs` is `transport.tcpMuxKeepaliveInterval`.
pub fn config(keepalive_secs: i64) -> Config {
    Config {
        keepalive: (keepalive_secs > 0).then(|| Duration::from_secs(keepalive_secs as u64)),
        quiet_keepalive: false,
        ping_timeout: Duration::from_secs(10),
        accept_backlog: 256,
        max_window: MAX_STREAM_WINDOW,
        max_streams: 65535,
        restricted: None,
    }
}

/// Which end of the session we are: the client opens streams (odd ids), the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

/// Starts a client session on `io`: streams are opened with the [`Opener`]; the [`Driver`]
/// must be polled (spawned) for anything to move. Streams the peer opens are reset.
pub fn client(io: BoxStream, cfg: Config) -> (Opener, Driver) {
    let (shared, driver) = Driver::new(io, cfg, Role::Client, None);
    (Opener { shared }, driver)
}

/// Starts a server session on `io`: streams the peer opens arrive on [`Incoming`].
pub fn server(io: BoxStream, cfg: Config) -> (Incoming, Driver) {
    let (tx, rx) = mpsc::channel(cfg.accept_backlog.max(1));
    let (shared, driver) = Driver::new(io, cfg, Role::Server, Some(tx));
    (Incoming { rx, shared }, driver)
}

/// Opens streams on a client session; cheap to clone.
#[derive(Clone)]
pub struct Opener {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener").finish_non_exhaustive()
    }
}

impl Opener {
    /// Opens a stream: a WindowUpdate|SYN granting our full window is queued; data may follow
    /// at once (within the initial 256 KiB window until the peer's ACK grows it).
    pub fn open(&self) -> io::Result<Stream> {
        let mut inner = self.shared.lock();
        if let Some(c) = &inner.closed {
            return Err(closed_err(c));
        }
        if inner.remote_go_away {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "yamux peer sent GoAway",
            ));
        }
        if inner.streams.len() >= inner.stream_cap() {
            return Err(io::Error::other("too many open yamux streams"));
        }
        let id = inner.next_id;
        if id >= u32::MAX - 1 {
            return Err(io::Error::other("yamux stream ids exhausted"));
        }
        inner.next_id += 2;
        let max = inner.max_window;
        inner
            .streams
            .insert(id, StreamState::new(max, INITIAL_WINDOW));
        inner.push_frame(TYPE_WINDOW_UPDATE, FLAG_SYN, id, max - INITIAL_WINDOW, &[]);
        inner.wake_driver();
        drop(inner);
        Ok(Stream {
            shared: self.shared.clone(),
            id,
        })
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed.is_some()
    }
}

/// Streams the peer opened, in order.
pub struct Incoming {
    rx: mpsc::Receiver<Stream>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming").finish_non_exhaustive()
    }
}

impl Incoming {
    /// The next inbound stream; `None` once the session has ended.
    pub async fn accept(&mut self) -> Option<Stream> {
        self.rx.recv().await
    }

    /// The handle that lifts this session's [`Restriction`].
    pub fn limits(&self) -> SessionLimits {
        SessionLimits {
            shared: self.shared.clone(),
        }
    }
}

/// What a stream and the driver share.
struct Shared {
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent state (no invariant spans an
        // unwind point), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Inner {
    streams: HashMap<u32, StreamState>,
    /// Frames queued for the socket.
    out: BytesMut,
    /// Streams waiting for `out` to drain below [`OUT_LIMIT`].
    out_waiters: Vec<Waker>,
    /// The driver, when it is waiting for work.
    driver: Option<Waker>,
    /// Set once the session has ended: every stream operation fails with this.
    closed: Option<Closed>,
    remote_go_away: bool,
    next_id: u32,
    max_window: u32,
    max_streams: usize,
    restricted: Option<Restriction>,
}

impl Inner {
    /// Open streams allowed now.
    fn stream_cap(&self) -> usize {
        self.restricted
            .map_or(self.max_streams, |r| r.max_streams.min(self.max_streams))
    }

    /// The window inbound streams are granted now (see [`Restriction`]).
    fn window(&self) -> u32 {
        if self.restricted.is_some() {
            INITIAL_WINDOW
        } else {
            self.max_window
        }
    }

    fn push_frame(&mut self, ty: u8, flags: u16, id: u32, len: u32, data: &[u8]) {
        self.out
            .extend_from_slice(&frame_header(ty, flags, id, len));
        self.out.extend_from_slice(data);
    }
}

struct StreamState {
    /// Received payload not yet read, as slices of the driver's read buffers.
    recv: VecDeque<Bytes>,
    buffered: u32,
    /// How much more the peer may send us.
    recv_window: u32,
    /// How much more we may send the peer.
    send_window: u32,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    remote_fin: bool,
    local_fin: bool,
    reset: bool,
}

impl StreamState {
    fn new(recv_window: u32, send_window: u32) -> Self {
        StreamState {
            recv: VecDeque::new(),
            buffered: 0,
            recv_window,
            send_window,
            read_waker: None,
            write_waker: None,
            remote_fin: false,
            local_fin: false,
            reset: false,
        }
    }
}

/// One yamux stream: a logical connection. Dropping it without `shutdown` closes it
/// gracefully (FIN), as closing a TCP socket does.
pub struct Stream {
    shared: Arc<Shared>,
    id: u32,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("id", &self.id).finish()
    }
}

impl Stream {
    /// The yamux stream id.
    pub fn id(&self) -> u32 {
        self.id
    }
}

/// Keeps the task's waker in `slot` (no clone when it is already there).
fn keep_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
        *slot = Some(cx.waker().clone());
    }
}

/// Why a session ended; every stream's errors carry it.
#[derive(Clone)]
struct Closed {
    kind: io::ErrorKind,
    /// The connection's error, if it failed (a TLS alert, a reset, a protocol error).
    cause: Option<Arc<io::Error>>,
}

fn closed_err(c: &Closed) -> io::Error {
    io::Error::new(
        c.kind,
        StreamClosed {
            cause: c.cause.clone(),
        },
    )
}

/// A stream that is no longer in the session.
fn gone_err() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, StreamClosed { cause: None })
}

/// A stream operation after its session ended: `yamux session is closed`, with what ended it.
#[derive(Debug)]
pub struct StreamClosed {
    cause: Option<Arc<io::Error>>,
}

impl StreamClosed {
    /// The connection's error that ended the session, if it failed.
    pub fn cause(&self) -> Option<&io::Error> {
        self.cause.as_deref()
    }
}

impl std::fmt::Display for StreamClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("yamux session is closed")?;
        match &self.cause {
            Some(c) => write!(f, ": {c}"),
            None => Ok(()),
        }
    }
}

/// The cause is part of the text, so it is not also a `source()` (each cause printed once).
impl std::error::Error for StreamClosed {}

/// The driver's error: the connection's own error, shared with the streams' [`StreamClosed`].
#[derive(Debug)]
pub struct SessionEnded(Arc<io::Error>);

impl SessionEnded {
    pub fn cause(&self) -> &io::Error {
        &self.0
    }
}

impl std::fmt::Display for SessionEnded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SessionEnded {}

/// The session's first frame header is not yamux: the peer speaks another framing, as when
/// the two sides' `transport.tcpMux` disagree (see [`super::mismatch`]).
#[derive(Debug)]
pub struct NotYamux {
    version: u8,
    hint: Option<String>,
}

impl NotYamux {
    /// What the peer's bytes were instead, when they are another frp framing.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl std::fmt::Display for NotYamux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "yamux: unsupported version {}", self.version)?;
        match &self.hint {
            Some(h) => write!(f, " ({h})"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for NotYamux {}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut inner = self.shared.lock();
        let inner = &mut *inner;
        let closed = inner.closed.as_ref();
        let Some(st) = inner.streams.get_mut(&self.id) else {
            return Poll::Ready(Err(gone_err()));
        };
        if st.recv.is_empty() {
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            return st.poll_empty(closed, cx);
        }
        let mut n = 0usize;
        while buf.remaining() > 0 {
            let Some(chunk) = st.recv.front_mut() else {
                break;
            };
            let k = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..k]);
            chunk.advance(k);
            if chunk.is_empty() {
                st.recv.pop_front();
            }
            n += k;
        }
        inner.consumed(self.id, n);
        Poll::Ready(Ok(()))
    }
}

impl StreamState {
    /// A read with nothing buffered: EOF after the peer's FIN, an error after a reset or the
    /// session's end, otherwise `Pending` with the reader's waker kept.
    fn poll_empty(
        &mut self,
        closed: Option<&Closed>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if self.reset {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "yamux stream reset by peer",
            )));
        }
        if self.remote_fin {
            return Poll::Ready(Ok(()));
        }
        if let Some(c) = closed {
            return Poll::Ready(Err(closed_err(c)));
        }
        keep_waker(&mut self.read_waker, cx);
        Poll::Pending
    }

    /// Whether a write may proceed now: `Ready(Err)` when it never can, `Pending` (waker kept)
    /// while the peer's window is shut.
    fn poll_writable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.reset {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "yamux stream reset by peer",
            )));
        }
        if self.local_fin {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "yamux stream already shut down",
            )));
        }
        if self.send_window == 0 {
            keep_waker(&mut self.write_waker, cx);
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }
}

impl Inner {
    fn wake_driver(&mut self) {
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }

    /// Room to send up to `want` bytes on stream `id` now: `want` capped by the peer's window,
    /// or `Pending` (waker kept) while that window is shut or the outgoing buffer is full;
    /// errors once the session or the stream can no longer send. `Ready(Ok(0))` for `want == 0`.
    fn poll_send_room(
        &mut self,
        id: u32,
        want: usize,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if let Some(c) = &self.closed {
            return Poll::Ready(Err(closed_err(c)));
        }
        let out_full = self.out.len() >= OUT_LIMIT;
        let Some(st) = self.streams.get_mut(&id) else {
            return Poll::Ready(Err(gone_err()));
        };
        if want == 0 {
            return Poll::Ready(Ok(0));
        }
        ready!(st.poll_writable(cx))?;
        if out_full {
            self.out_waiters.push(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(Ok(want.min(st.send_window as usize)))
    }

    /// `n` bytes of stream `id` were queued as a data frame: they use up the peer's window,
    /// and the driver is woken to write them.
    fn sent(&mut self, id: u32, n: usize) {
        if let Some(st) = self.streams.get_mut(&id) {
            st.send_window = st.send_window.saturating_sub(n as u32);
        }
        self.wake_driver();
    }

    /// The reader of stream `id` consumed `n` bytes: hashicorp `sendWindowUpdate` grants what
    /// was consumed once it reaches half the window.
    fn consumed(&mut self, id: u32, n: usize) {
        let (max, closed) = (self.window(), self.closed.is_some());
        let Some(st) = self.streams.get_mut(&id) else {
            return;
        };
        st.buffered = st.buffered.saturating_sub(n as u32);
        let delta = max
            .saturating_sub(st.buffered)
            .saturating_sub(st.recv_window);
        if delta >= max / 2 && !st.remote_fin && !st.reset && !closed {
            st.recv_window = st.recv_window.saturating_add(delta);
            self.push_frame(TYPE_WINDOW_UPDATE, 0, id, delta, &[]);
            self.wake_driver();
        }
    }
}

/// Chunks handed to one vectored write at most.
const WRITE_INTO_CHUNKS: usize = 8;

impl Stream {
    /// Writes received payload into `w` straight from the session's read buffers (one
    /// vectored write of up to 8 chunks), instead of copying it into a caller's buffer first.
    /// `Ready(Ok(0))` at the peer's FIN. While nothing is buffered, `w` is flushed.
    pub fn poll_write_into<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        w: &mut W,
    ) -> Poll<io::Result<usize>> {
        let mut chunks: [Bytes; WRITE_INTO_CHUNKS] = Default::default();
        let mut k = 0;
        {
            let mut guard = self.shared.lock();
            let inner = &mut *guard;
            let closed = inner.closed.as_ref();
            let Some(st) = inner.streams.get_mut(&self.id) else {
                return Poll::Ready(Err(gone_err()));
            };
            if st.recv.is_empty() {
                let r = st.poll_empty(closed, cx);
                drop(guard);
                if r.is_pending() {
                    ready!(Pin::new(&mut *w).poll_flush(cx))?;
                    return Poll::Pending;
                }
                return r.map_ok(|()| 0);
            }
            for (slot, c) in chunks.iter_mut().zip(st.recv.iter()) {
                *slot = c.clone();
                k += 1;
            }
        }
        let slices: [io::IoSlice<'_>; WRITE_INTO_CHUNKS] =
            std::array::from_fn(|i| io::IoSlice::new(&chunks[i]));
        let n = ready!(Pin::new(&mut *w).poll_write_vectored(cx, &slices[..k]))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        let mut inner = self.shared.lock();
        if let Some(st) = inner.streams.get_mut(&self.id) {
            let mut left = n;
            while left > 0 {
                let Some(front) = st.recv.front_mut() else {
                    break;
                };
                let t = front.len().min(left);
                front.advance(t);
                if front.is_empty() {
                    st.recv.pop_front();
                }
                left -= t;
            }
        }
        inner.consumed(self.id, n);
        Poll::Ready(Ok(n))
    }

    /// Reads from `r` straight into the session's outgoing buffer as one data frame (at most
    /// 32 KiB, within the peer's window), instead of through a caller's buffer. `Ready(Ok(0))`
    /// at `r`'s EOF. The session lock is held across `r`'s (non-blocking) read.
    pub fn poll_read_from<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
    ) -> Poll<io::Result<usize>> {
        use bytes::BufMut;
        let mut inner = self.shared.lock();
        let inner = &mut *inner;
        let max = ready!(inner.poll_send_room(self.id, READ_FROM_MAX, cx))?;
        let start = inner.out.len();
        inner.out.extend_from_slice(&[0u8; HEADER_LEN]);
        inner.out.reserve(max);
        let read = tokio_util::io::poll_read_buf(Pin::new(r), cx, &mut (&mut inner.out).limit(max));
        let n = match read {
            Poll::Ready(Ok(n)) if n > 0 => n,
            other => {
                inner.out.truncate(start);
                return other;
            }
        };
        let h = frame_header(TYPE_DATA, 0, self.id, n as u32);
        inner.out[start..start + HEADER_LEN].copy_from_slice(&h);
        inner.sent(self.id, n);
        Poll::Ready(Ok(n))
    }
}

/// Most bytes one [`Stream::poll_read_from`] reads.
const READ_FROM_MAX: usize = 32 * 1024;

fn frame_header(ty: u8, flags: u16, id: u32, len: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[1] = ty;
    h[2..4].copy_from_slice(&flags.to_be_bytes());
    h[4..8].copy_from_slice(&id.to_be_bytes());
    h[8..12].copy_from_slice(&len.to_be_bytes());
    h
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut inner = self.shared.lock();
        let n = ready!(inner.poll_send_room(self.id, buf.len(), cx))?.min(OUT_LIMIT);
        if n > 0 {
            inner.push_frame(TYPE_DATA, 0, self.id, n as u32, &buf[..n]);
            inner.sent(self.id, n);
        }
        Poll::Ready(Ok(n))
    }

    /// Queued frames are written by the driver as soon as it runs; there is nothing to wait
    /// for here (the driver flushes the socket, and any TLS under it, itself).
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.shared.lock();
        let inner = &mut *inner;
        if let Some(c) = &inner.closed {
            return Poll::Ready(Err(closed_err(c)));
        }
        let Some(st) = inner.streams.get_mut(&self.id) else {
            return Poll::Ready(Ok(()));
        };
        if st.local_fin || st.reset {
            return Poll::Ready(Ok(()));
        }
        st.local_fin = true;
        inner.push_frame(TYPE_WINDOW_UPDATE, FLAG_FIN, self.id, 0, &[]);
        inner.wake_driver();
        Poll::Ready(Ok(()))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        let Some(st) = inner.streams.remove(&self.id) else {
            return;
        };
        if st.local_fin || st.reset || inner.closed.is_some() {
            return;
        }
        inner.push_frame(TYPE_WINDOW_UPDATE, FLAG_FIN, self.id, 0, &[]);
        inner.wake_driver();
    }
}

/// Where the reader is in the inbound byte stream.
enum ReadState {
    Header,
    /// Inside a data frame's payload for stream `id`, `left` bytes to go; `deliver` when the
    /// stream was open at the frame's header (else the payload is dropped).
    Body {
        id: u32,
        left: u32,
        deliver: bool,
    },
}

/// Drives one session: reads and dispatches frames, writes queued frames, keeps alive. Runs
/// until the connection ends or fails (`Ok` on a clean EOF); when it ends or is dropped,
/// every stream of the session fails and [`Incoming::accept`] returns `None`.
pub struct Driver {
    io: BoxStream,
    shared: Arc<Shared>,
    role: Role,
    accept: Option<mpsc::Sender<Stream>>,
    rbuf: BytesMut,
    /// The last read filled the free space of `rbuf` (more was waiting).
    read_full: bool,
    state: ReadState,
    wbuf: BytesMut,
    wpos: usize,
    need_flush: bool,
    read_eof: bool,
    keepalive: Option<tokio::time::Interval>,
    quiet_keepalive: bool,
    /// A frame has been read since the last keepalive tick ([`Config::quiet_keepalive`]).
    heard: bool,
    ping_timeout: Duration,
    /// The outstanding keepalive ping: its id and when it times out.
    ping: Option<(u32, Pin<Box<tokio::time::Sleep>>)>,
    ping_id: u32,
    wake: Vec<Waker>,
    /// Whether the driver has yielded once since its last write (see `poll_drive`).
    yielded: bool,
    /// Whether a valid frame header has been read (the first one tells a framing mismatch).
    got_header: bool,
    /// Bytes read from the socket in the current poll (see `poll_read_side`).
    read_this_poll: usize,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

fn protocol_error(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("yamux: {msg}"))
}

impl Driver {
    fn new(
        io: BoxStream,
        cfg: Config,
        role: Role,
        accept: Option<mpsc::Sender<Stream>>,
    ) -> (Arc<Shared>, Driver) {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                streams: HashMap::new(),
                out: BytesMut::new(),
                out_waiters: Vec::new(),
                driver: None,
                closed: None,
                remote_go_away: false,
                next_id: 1,
                max_window: cfg.max_window.max(INITIAL_WINDOW),
                max_streams: cfg.max_streams,
                restricted: cfg.restricted,
            }),
        });
        let keepalive = cfg.keepalive.map(|d| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let driver = Driver {
            io,
            shared: shared.clone(),
            role,
            accept,
            rbuf: BytesMut::new(),
            read_full: false,
            state: ReadState::Header,
            wbuf: BytesMut::new(),
            wpos: 0,
            need_flush: false,
            read_eof: false,
            keepalive,
            quiet_keepalive: cfg.quiet_keepalive,
            heard: false,
            ping_timeout: cfg.ping_timeout,
            ping: None,
            ping_id: 0,
            wake: Vec::new(),
            yielded: false,
            got_header: false,
            read_this_poll: 0,
        };
        (shared, driver)
    }

    /// Writes queued frames until the socket would block or nothing is queued.
    fn poll_write_side(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.wpos == self.wbuf.len() {
                self.wbuf.clear();
                self.wpos = 0;
                let mut inner = self.shared.lock();
                if inner.out.is_empty() {
                    break;
                }
                std::mem::swap(&mut inner.out, &mut self.wbuf);
                self.wake.append(&mut inner.out_waiters);
                drop(inner);
                self.wake.drain(..).for_each(Waker::wake);
            }
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.wpos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wpos += n;
            self.need_flush = true;
        }
        if self.need_flush {
            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            self.need_flush = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Reads and dispatches frames until the socket would block; `Ready(Ok)` at EOF. After
    /// [`FAIR_SHARE`] bytes in one poll it gives way instead (`Pending`, polled again soon): a
    /// session whose peer keeps the socket full would otherwise hold the thread while other
    /// sessions' small frames wait (issue 21's fairness).
    fn poll_read_side(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            self.dispatch()?;
            if self.read_this_poll >= FAIR_SHARE {
                return crate::io::join::give_way(cx);
            }
            if self.rbuf.capacity() - self.rbuf.len() < QUIET_READ {
                self.rbuf.reserve(if self.read_full {
                    READ_CHUNK
                } else {
                    QUIET_READ
                });
            }
            let free = self.rbuf.capacity() - self.rbuf.len();
            let n = match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf)
            {
                Poll::Ready(r) => r?,
                Poll::Pending => {
                    // Nothing buffered and nothing to read after a quiet wake-up (a ping, a
                    // control message): an idle session holds no read buffer (4 KiB per idle
                    // client, issue 21). A session that moved more in this poll keeps its
                    // buffer for the next wake-up, as before.
                    if self.rbuf.is_empty() && self.read_this_poll < QUIET_READ {
                        self.rbuf = BytesMut::new();
                    }
                    return Poll::Pending;
                }
            };
            if n == 0 {
                return Poll::Ready(Ok(()));
            }
            self.read_this_poll += n;
            self.read_full = n == free;
        }
    }

    /// Handles every complete header and every available payload byte in `rbuf`.
    fn dispatch(&mut self) -> io::Result<()> {
        if self.rbuf.is_empty() {
            return Ok(());
        }
        let shared = self.shared.clone();
        let mut inner = shared.lock();
        let result = loop {
            match self.state {
                ReadState::Body { id, left, deliver } => {
                    if self.rbuf.is_empty() {
                        break Ok(());
                    }
                    let n = (left as usize).min(self.rbuf.len());
                    let chunk = self.rbuf.split_to(n);
                    if deliver {
                        if let Err(e) = self.deliver(&mut inner, id, chunk) {
                            break Err(e);
                        }
                    }
                    let left = left - n as u32;
                    self.state = if left == 0 {
                        ReadState::Header
                    } else {
                        ReadState::Body { id, left, deliver }
                    };
                }
                ReadState::Header => {
                    if self.rbuf.len() < HEADER_LEN {
                        break Ok(());
                    }
                    let h = self.rbuf.split_to(HEADER_LEN);
                    if let Err(e) = self.on_header(&mut inner, &h) {
                        break Err(e);
                    }
                }
            }
        };
        drop(inner);
        self.wake.drain(..).for_each(Waker::wake);
        result
    }

    fn on_header(&mut self, inner: &mut Inner, h: &[u8]) -> io::Result<()> {
        let (version, ty) = (h[0], h[1]);
        let flags = u16::from_be_bytes([h[2], h[3]]);
        let id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
        if version != 0 {
            if !self.got_header {
                let (peer, this) = match self.role {
                    Role::Server => ("client", "frps"),
                    Role::Client => ("frps", "frpc"),
                };
                let hint = super::mismatch(h, true, peer, this);
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    NotYamux { version, hint },
                ));
            }
            return Err(protocol_error(format!("unsupported version {version}")));
        }
        self.got_header = true;
        self.heard = true;
        match ty {
            TYPE_DATA | TYPE_WINDOW_UPDATE => {
                if id == 0 {
                    return Err(protocol_error("stream frame for stream 0".into()));
                }
                if flags & FLAG_SYN != 0 {
                    self.on_syn(inner, id)?;
                }
                let known = inner.streams.contains_key(&id);
                if let Some(st) = inner.streams.get_mut(&id) {
                    if ty == TYPE_DATA {
                        if len > st.recv_window {
                            return Err(protocol_error(format!(
                                "stream {id} exceeded its receive window ({len} > {})",
                                st.recv_window
                            )));
                        }
                    } else if len > 0 {
                        st.send_window = st.send_window.saturating_add(len);
                        if let Some(w) = st.write_waker.take() {
                            self.wake.push(w);
                        }
                    }
                    if flags & FLAG_FIN != 0 {
                        st.remote_fin = true;
                        if let Some(w) = st.read_waker.take() {
                            self.wake.push(w);
                        }
                    }
                    if flags & FLAG_RST != 0 {
                        st.reset = true;
                        self.wake.extend(st.read_waker.take());
                        self.wake.extend(st.write_waker.take());
                    }
                }
                if ty == TYPE_DATA && len > 0 {
                    // Payload for an unknown (closed, or not yet opened) stream is read and
                    // dropped, as in Go; decided here, so a stream opened meanwhile never
                    // receives it.
                    self.state = ReadState::Body {
                        id,
                        left: len,
                        deliver: known,
                    };
                }
            }
            TYPE_PING => {
                if flags & FLAG_SYN != 0 {
                    inner.push_frame(TYPE_PING, FLAG_ACK, 0, len, &[]);
                } else if flags & FLAG_ACK != 0 && self.ping.as_ref().is_some_and(|p| p.0 == len) {
                    self.ping = None;
                }
            }
            TYPE_GO_AWAY => {
                inner.remote_go_away = true;
                tracing::debug!(code = len, "yamux peer sent GoAway");
            }
            other => return Err(protocol_error(format!("unknown frame type {other}"))),
        }
        Ok(())
    }

    /// Queues `chunk` of a data frame for stream `id`, within the window checked at the frame's
    /// header (checked again here: every count the peer controls is).
    fn deliver(&mut self, inner: &mut Inner, id: u32, chunk: BytesMut) -> io::Result<()> {
        let restricted = inner.restricted;
        let Some(st) = inner.streams.get_mut(&id) else {
            return Ok(()); // closed by us meanwhile: dropped
        };
        if st.reset {
            return Ok(());
        }
        let n = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
        match (st.recv_window.checked_sub(n), st.buffered.checked_add(n)) {
            (Some(window), Some(buffered)) => {
                st.recv_window = window;
                st.buffered = buffered;
            }
            _ => {
                return Err(protocol_error(format!(
                    "stream {id} exceeded its receive window"
                )))
            }
        }
        let Some(r) = restricted else {
            st.recv.push_back(chunk.freeze());
            self.wake.extend(st.read_waker.take());
            return Ok(());
        };
        st.recv.push_back(Bytes::copy_from_slice(&chunk));
        self.wake.extend(st.read_waker.take());
        let cost = st.buffered as usize + st.recv.len() * CHUNK_COST;
        if cost > r.max_buffered {
            tracing::debug!(
                stream = id,
                cost,
                "restricted yamux stream holds too much: reset"
            );
            st.reset = true;
            st.recv.clear();
            st.buffered = 0;
            self.wake.extend(st.write_waker.take());
            inner.push_frame(TYPE_WINDOW_UPDATE, FLAG_RST, id, 0, &[]);
        }
        Ok(())
    }

    /// A stream the peer opens: registered and ACKed at once with our window growth.
    fn on_syn(&mut self, inner: &mut Inner, id: u32) -> io::Result<()> {
        if inner.streams.contains_key(&id) {
            return Err(protocol_error(format!("duplicate stream {id}")));
        }
        let Some(accept) = self.accept.as_ref().filter(|_| self.role == Role::Server) else {
            // frps never opens streams towards frpc.
            inner.push_frame(TYPE_WINDOW_UPDATE, FLAG_RST, id, 0, &[]);
            return Ok(());
        };
        if inner.streams.len() >= inner.stream_cap() {
            tracing::debug!(stream = id, "too many open yamux streams: stream reset");
            inner.push_frame(TYPE_WINDOW_UPDATE, FLAG_RST, id, 0, &[]);
            return Ok(());
        }
        let max = inner.window();
        match accept.try_reserve() {
            Ok(permit) => {
                inner
                    .streams
                    .insert(id, StreamState::new(max, INITIAL_WINDOW));
                inner.push_frame(TYPE_WINDOW_UPDATE, FLAG_ACK, id, max - INITIAL_WINDOW, &[]);
                permit.send(Stream {
                    shared: self.shared.clone(),
                    id,
                });
            }
            Err(_) => {
                tracing::debug!(stream = id, "yamux accept backlog full: stream reset");
                inner.push_frame(TYPE_WINDOW_UPDATE, FLAG_RST, id, 0, &[]);
            }
        }
        Ok(())
    }

    fn poll_keepalive(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if let Some((_, deadline)) = &mut self.ping {
            if deadline.as_mut().poll(cx).is_ready() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "yamux keepalive timeout",
                ));
            }
        }
        let Some(ka) = &mut self.keepalive else {
            return Ok(());
        };
        while ka.poll_tick(cx).is_ready() {
            let heard = std::mem::take(&mut self.heard);
            if self.ping.is_some() || (self.quiet_keepalive && heard) {
                continue;
            }
            self.ping_id = self.ping_id.wrapping_add(1);
            let mut deadline = Box::pin(tokio::time::sleep(self.ping_timeout));
            let _ = deadline.as_mut().poll(cx);
            self.ping = Some((self.ping_id, deadline));
            self.shared
                .lock()
                .push_frame(TYPE_PING, FLAG_SYN, 0, self.ping_id, &[]);
        }
        Ok(())
    }

    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_keepalive(cx)?;
        self.read_this_poll = 0;
        loop {
            // A peer that sends without reading (pings, SYNs, window updates all want an
            // answer) is not read any further while our answers pile up: TCP backpressure
            // instead of unbounded memory. Data frames never get here (streams stop at
            // OUT_LIMIT), so two well-behaved peers cannot both pause.
            let queued = self.wbuf.len() - self.wpos + self.shared.lock().out.len();
            if !self.read_eof && queued < READ_PAUSE {
                if let Poll::Ready(r) = self.poll_read_side(cx) {
                    r?;
                    self.read_eof = true;
                }
            }
            // Before writing a new batch, let the other tasks that are ready run once (a
            // self-wake puts this task at the back of the run queue): what they queue joins
            // this write. Otherwise the driver, woken by the first stream that writes, would
            // run next and make one syscall per frame when many streams are busy.
            if !self.yielded
                && !self.read_eof
                && self.wpos == self.wbuf.len()
                && !self.shared.lock().out.is_empty()
            {
                self.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            // Reading may have queued frames (ACKs, pongs); write them now.
            ready!(self.poll_write_side(cx))?;
            self.yielded = false;
            let mut inner = self.shared.lock();
            if !inner.out.is_empty() {
                continue;
            }
            if self.read_eof {
                return Poll::Ready(Ok(()));
            }
            keep_waker(&mut inner.driver, cx);
            return Poll::Pending;
        }
    }
}

impl Future for Driver {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        Poll::Ready(match ready!(this.poll_drive(cx)) {
            Ok(()) => {
                this.close(io::ErrorKind::UnexpectedEof, None);
                Ok(())
            }
            Err(e) => {
                let kind = e.kind();
                let cause = Arc::new(e);
                this.close(kind, Some(cause.clone()));
                Err(io::Error::new(kind, SessionEnded(cause)))
            }
        })
    }
}

impl Driver {
    /// Ends the session: every stream's pending and future operations fail.
    fn close(&mut self, kind: io::ErrorKind, cause: Option<Arc<io::Error>>) {
        self.accept = None;
        let mut inner = self.shared.lock();
        if inner.closed.is_some() {
            return;
        }
        let kind = if kind == io::ErrorKind::UnexpectedEof {
            io::ErrorKind::ConnectionReset
        } else {
            kind
        };
        inner.closed = Some(Closed { kind, cause });
        let mut wake = std::mem::take(&mut inner.out_waiters);
        wake.extend(inner.driver.take());
        for st in inner.streams.values_mut() {
            wake.extend(st.read_waker.take());
            wake.extend(st.write_waker.take());
        }
        inner.out = BytesMut::new();
        drop(inner);
        wake.into_iter().for_each(Waker::wake);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.close(io::ErrorKind::ConnectionAborted, None);
    }
}

/// A client and a server session joined by an in-memory pipe, both drivers running (tests).
#[cfg(test)]
pub(crate) fn pair() -> (Opener, Incoming) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let (opener, cd) = client(Box::new(a), config(30));
    let (incoming, sd) = server(Box::new(b), config(30));
    tokio::spawn(cd);
    tokio::spawn(sd);
    (opener, incoming)
}

#[cfg(test)]
mod tests;
