//! Finds requests that carry both `Content-Length` and `Transfer-Encoding`, which hyper accepts
//! (it drops `Content-Length`, reads the body chunked and closes afterwards) but which we refuse
//! with 400 as a request-smuggling attempt, never forwarded.
//!
//! hyper removes the evidence before the request reaches us, so [`Scanned`] watches the bytes
//! hyper reads: [`HeadScan`] follows the HTTP/1 framing (heads, `Content-Length` and chunked
//! bodies) and records one verdict per request head, in order; the server pops one per request.
//! Scanning stops for good after an `Upgrade`/`CONNECT` head or a conflicting head (the
//! connection is closed then), and on anything it cannot follow (no verdict = no refusal; hyper's
//! own handling still applies). Pure state machine plus a thin `AsyncRead` wrapper.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Verdicts, one per request head, oldest first: `true` = both framings.
pub(crate) type Verdicts = Arc<Mutex<VecDeque<bool>>>;

/// The first bytes of a line kept (enough for a header name and a length).
const KEEP: usize = 256;

#[derive(Debug)]
enum State {
    Head,
    Body(u64),
    ChunkSize { size: u64, digits: bool, ext: bool },
    ChunkData(u64),
    ChunkEnd,
    Trailer,
    Off,
}

/// The framing follower.
#[derive(Debug)]
pub(crate) struct HeadScan {
    state: State,
    line: Vec<u8>,
    request_line: bool,
    content_lengths: Vec<u64>,
    bad_length: bool,
    te: bool,
    chunked: bool,
    upgrade: bool,
    verdicts: Verdicts,
}

impl HeadScan {
    pub(crate) fn new(verdicts: Verdicts) -> HeadScan {
        HeadScan {
            state: State::Head,
            line: Vec::new(),
            request_line: false,
            content_lengths: Vec::new(),
            bad_length: false,
            te: false,
            chunked: false,
            upgrade: false,
            verdicts,
        }
    }

    /// Follows `data`, the next bytes read from the user.
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                State::Off => return,
                State::Body(n) => {
                    let take = (*n).min(data.len() as u64);
                    *n -= take;
                    data = &data[take as usize..];
                    if *n == 0 {
                        self.state = State::Head;
                    }
                }
                State::ChunkData(n) => {
                    let take = (*n).min(data.len() as u64);
                    *n -= take;
                    data = &data[take as usize..];
                    if *n == 0 {
                        self.state = State::ChunkEnd;
                    }
                }
                State::ChunkSize { size, digits, ext } => {
                    let b = data[0];
                    data = &data[1..];
                    match b {
                        b'\n' => {
                            self.state = match (*digits, *size) {
                                (false, _) => State::Off,
                                (true, 0) => State::Trailer,
                                (true, n) => State::ChunkData(n),
                            };
                        }
                        _ if *ext => {}
                        b';' => *ext = true,
                        b'\r' | b' ' | b'\t' => *ext = *digits,
                        _ => match (b as char).to_digit(16) {
                            Some(d) if *size < (1 << 56) => {
                                *size = *size * 16 + u64::from(d);
                                *digits = true;
                            }
                            _ => self.state = State::Off,
                        },
                    }
                }
                State::ChunkEnd => {
                    let b = data[0];
                    data = &data[1..];
                    if b == b'\n' {
                        self.state = State::ChunkSize {
                            size: 0,
                            digits: false,
                            ext: false,
                        };
                    }
                }
                State::Head | State::Trailer => {
                    let (line_end, rest) = match data.iter().position(|b| *b == b'\n') {
                        Some(i) => (true, i),
                        None => (false, data.len()),
                    };
                    let room = KEEP.saturating_sub(self.line.len());
                    self.line.extend_from_slice(&data[..rest.min(room)]);
                    data = &data[(rest + usize::from(line_end)).min(data.len())..];
                    if line_end {
                        let mut line = std::mem::take(&mut self.line);
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                        self.line_done(&line);
                    }
                }
            }
        }
    }

    fn line_done(&mut self, line: &[u8]) {
        if matches!(self.state, State::Trailer) {
            if line.is_empty() {
                self.state = State::Head;
            }
            return;
        }
        if !self.request_line {
            // Empty lines before a request line are skipped, as hyper does.
            if !line.is_empty() {
                self.request_line = true;
                if line.starts_with(b"CONNECT ") {
                    self.upgrade = true;
                }
            }
            return;
        }
        if line.is_empty() {
            self.head_done();
            return;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return;
        };
        let name = line[..colon].trim_ascii().to_ascii_lowercase();
        let value = line[colon + 1..].trim_ascii();
        match name.as_slice() {
            b"content-length" => match std::str::from_utf8(value).ok().and_then(|v| v.parse().ok())
            {
                Some(n) => self.content_lengths.push(n),
                None => self.bad_length = true,
            },
            b"transfer-encoding" => {
                self.te = true;
                self.chunked = value
                    .rsplit(|b| *b == b',')
                    .next()
                    .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
            b"upgrade" => self.upgrade = true,
            _ => {}
        }
    }

    fn head_done(&mut self) {
        let conflict = self.te && (!self.content_lengths.is_empty() || self.bad_length);
        if let Ok(mut v) = self.verdicts.lock() {
            v.push_back(conflict);
        }
        let lengths = std::mem::take(&mut self.content_lengths);
        self.state = if conflict || self.upgrade || self.bad_length || (self.te && !self.chunked) {
            State::Off
        } else if self.te {
            State::ChunkSize {
                size: 0,
                digits: false,
                ext: false,
            }
        } else {
            match lengths.first() {
                Some(&n) if lengths.iter().all(|l| *l == n) && n > 0 => State::Body(n),
                Some(&n) if lengths.iter().all(|l| *l == n) => State::Head,
                Some(_) => State::Off,
                None => State::Head,
            }
        };
        self.request_line = false;
        self.te = false;
        self.chunked = false;
        self.upgrade = false;
    }
}

/// The user's stream, with every byte read shown to a [`HeadScan`].
#[derive(Debug)]
pub(crate) struct Scanned<S> {
    inner: S,
    scan: HeadScan,
}

impl<S> Scanned<S> {
    pub(crate) fn new(inner: S, verdicts: Verdicts) -> Self {
        Scanned {
            inner,
            scan: HeadScan::new(verdicts),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Scanned<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            this.scan.feed(&buf.filled()[before..]);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Scanned<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn verdicts(input: &[u8], split: usize) -> Vec<bool> {
        let v = Verdicts::default();
        let mut s = HeadScan::new(v.clone());
        for c in input.chunks(split.max(1)) {
            s.feed(c);
        }
        let out: Vec<bool> = v.lock().unwrap().iter().copied().collect();
        out
    }

    const STREAM: &[u8] = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 30\r\n\r\n\
Transfer-Encoding: chunked\r\n\r\n\r\n\
POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
5;ext=1\r\nab\r\nc\r\n1A\r\nContent-Length: 1\r\n\r\nxxxxxxxxxxx\r\n0\r\nTrailer: x\r\n\r\n\
\r\nGET /c HTTP/1.1\nHost: h\n\n\
POST /d HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
GET /after HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";

    #[test]
    fn one_verdict_per_head_through_bodies_of_both_kinds() {
        for split in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(
                verdicts(STREAM, split),
                [false, false, false, true],
                "split {split}"
            );
        }
    }

    #[test]
    fn te_then_cl_is_a_conflict_and_upgrade_stops() {
        let v = verdicts(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            5,
        );
        assert_eq!(v, [true]);
        let v = verdicts(
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            3,
        );
        assert_eq!(v, [false], "nothing is scanned after an upgrade");
    }

    proptest! {
        #[test]
        fn random_input_never_panics(b in proptest::collection::vec(any::<u8>(), 0..2000), split in 1usize..50) {
            let _ = verdicts(&b, split);
            let mut s = STREAM.to_vec();
            s.extend(&b);
            let _ = verdicts(&s, split);
        }
    }
}
