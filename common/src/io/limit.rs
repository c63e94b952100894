//! Bandwidth limiting (frp `pkg/util/limit`, `golang.org/x/time/rate`; frp-protocol.md §13).
//!
//! One [`Limiter`] per proxy, shared by all its connections and both directions: a token bucket
//! with rate = burst = the configured bytes per second, starting full. [`LimitedStream`] takes
//! tokens for what it reads (after the read, delaying the next one) and for what it writes
//! (before writing, in chunks of at most one burst).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A shared token bucket.
#[derive(Debug)]
pub struct Limiter {
    rate: f64,
    burst: usize,
    state: Mutex<(f64, Instant)>,
}

impl Limiter {
    /// `bytes_per_sec` > 0.
    pub fn new(bytes_per_sec: u64) -> Arc<Self> {
        let rate = bytes_per_sec.max(1) as f64;
        Arc::new(Limiter {
            rate,
            burst: bytes_per_sec.max(1) as usize,
            state: Mutex::new((rate, Instant::now())),
        })
    }

    /// Largest amount taken at once.
    pub fn burst(&self) -> usize {
        self.burst
    }

    /// Takes `n` tokens (the balance may go negative) and returns how long to wait before the
    /// bytes may move, as `rate.Limiter.ReserveN`.
    pub fn reserve(&self, n: usize) -> Duration {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(s.1).as_secs_f64();
        s.0 = (s.0 + elapsed * self.rate).min(self.burst as f64) - n as f64;
        s.1 = now;
        if s.0 >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.0 / self.rate)
        }
    }
}

/// A stream whose reads and writes draw from a shared [`Limiter`].
pub struct LimitedStream<S> {
    inner: S,
    limiter: Arc<Limiter>,
    read_wait: Option<Pin<Box<Sleep>>>,
    write_wait: Option<Pin<Box<Sleep>>>,
    /// Bytes already paid for and not yet written.
    write_credit: usize,
}

impl<S> std::fmt::Debug for LimitedStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitedStream")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl<S> LimitedStream<S> {
    pub fn new(inner: S, limiter: Arc<Limiter>) -> Self {
        LimitedStream {
            inner,
            limiter,
            read_wait: None,
            write_wait: None,
            write_credit: 0,
        }
    }
}

fn wait(slot: &mut Option<Pin<Box<Sleep>>>, d: Duration) {
    if d.is_zero() {
        return;
    }
    let deadline = Instant::now() + d;
    match slot {
        Some(s) => s.as_mut().reset(deadline),
        None => *slot = Some(Box::pin(tokio::time::sleep_until(deadline))),
    }
}

fn poll_wait(slot: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>) -> Poll<()> {
    if let Some(s) = slot {
        if s.deadline() > Instant::now() || !s.is_elapsed() {
            ready!(s.as_mut().poll(cx));
        }
    }
    Poll::Ready(())
}

use std::future::Future;

impl<S: AsyncRead + Unpin> AsyncRead for LimitedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(poll_wait(&mut this.read_wait, cx));
        let max = buf.remaining().min(this.limiter.burst());
        // Read at most one burst: into the initialized front of the caller's free space.
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(max));
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
        let n = limited.filled().len();
        buf.advance(n);
        let d = this.limiter.reserve(n);
        wait(&mut this.read_wait, d);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LimitedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.write_credit == 0 {
            let n = data.len().min(this.limiter.burst());
            let d = this.limiter.reserve(n);
            this.write_credit = n;
            wait(&mut this.write_wait, d);
        }
        ready!(poll_wait(&mut this.write_wait, cx));
        let n = data.len().min(this.write_credit);
        let w = ready!(Pin::new(&mut this.inner).poll_write(cx, &data[..n]))?;
        this.write_credit -= w;
        Poll::Ready(Ok(w))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// 1 MiB at 256 KiB/s: the first 256 KiB is the initial burst, the rest takes 3 s.
    /// Paused time makes this exact and independent of the machine's speed.
    #[tokio::test(start_paused = true)]
    async fn rate_is_kept_within_ten_percent() {
        for write_side in [true, false] {
            let limiter = Limiter::new(256 * 1024);
            let (a, mut b) = tokio::io::duplex(64 * 1024);
            let start = Instant::now();
            let data = vec![7u8; 1024 * 1024];
            if write_side {
                let mut a = LimitedStream::new(a, limiter);
                let t = tokio::spawn(async move {
                    a.write_all(&data).await.unwrap();
                    a.shutdown().await.unwrap();
                });
                let mut got = Vec::new();
                b.read_to_end(&mut got).await.unwrap();
                t.await.unwrap();
                assert_eq!(got.len(), 1024 * 1024);
            } else {
                let mut a = LimitedStream::new(a, limiter);
                let t = tokio::spawn(async move {
                    b.write_all(&data).await.unwrap();
                    b.shutdown().await.unwrap();
                });
                let mut got = Vec::new();
                a.read_to_end(&mut got).await.unwrap();
                t.await.unwrap();
                assert_eq!(got.len(), 1024 * 1024);
            }
            let secs = start.elapsed().as_secs_f64();
            assert!(
                (2.7..=3.3).contains(&secs),
                "write_side={write_side}: took {secs:.2}s, want about 3s"
            );
        }
    }

    /// Connections of one proxy share its limiter.
    #[tokio::test(start_paused = true)]
    async fn limiter_is_shared() {
        let limiter = Limiter::new(100 * 1024);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let (a, mut b) = tokio::io::duplex(16 * 1024);
            let mut a = LimitedStream::new(a, limiter.clone());
            tasks.push(tokio::spawn(async move {
                a.write_all(&vec![1u8; 200 * 1024]).await.unwrap();
                a.shutdown().await.unwrap();
            }));
            tasks.push(tokio::spawn(async move {
                let mut v = Vec::new();
                b.read_to_end(&mut v).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // 400 KiB total at 100 KiB/s with a 100 KiB burst: 3 s, not 1 s.
        let secs = start.elapsed().as_secs_f64();
        assert!((2.7..=3.3).contains(&secs), "took {secs:.2}s");
    }
}
