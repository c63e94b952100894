//! [`Counted`]: counts bytes as they pass, for metrics (linkerd's `SensorIo` shape). Counting
//! happens here, once, rather than at call sites.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Receives byte counts; implementations keep atomics (called once per read or write).
pub trait Count: Send + Sync {
    fn read(&self, n: u64);
    fn written(&self, n: u64);
}

impl<T: Count + ?Sized> Count for std::sync::Arc<T> {
    fn read(&self, n: u64) {
        (**self).read(n)
    }
    fn written(&self, n: u64) {
        (**self).written(n)
    }
}

/// A stream that reports what is read from and written to it.
pub struct Counted<S, C> {
    inner: S,
    counter: C,
}

impl<S, C> std::fmt::Debug for Counted<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counted")
    }
}

impl<S, C> Counted<S, C> {
    pub fn new(inner: S, counter: C) -> Self {
        Counted { inner, counter }
    }
}

impl<S: AsyncRead + Unpin, C: Count + Unpin> AsyncRead for Counted<S, C> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.counter.read((buf.filled().len() - before) as u64);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin, C: Count + Unpin> AsyncWrite for Counted<S, C> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, data))?;
        this.counter.written(n as u64);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        this.counter.written(n as u64);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
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
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[derive(Default)]
    struct C(AtomicU64, AtomicU64);
    impl Count for C {
        fn read(&self, n: u64) {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
        fn written(&self, n: u64) {
            self.1.fetch_add(n, Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn counts_both_directions() {
        let c = Arc::new(C::default());
        let (a, mut b) = tokio::io::duplex(1024);
        let mut a = Counted::new(a, c.clone());
        let peer = async move {
            let mut got = vec![0; 3000];
            b.read_exact(&mut got).await.unwrap();
            b.write_all(&[2; 700]).await.unwrap();
        };
        let ours = async {
            a.write_all(&[1; 3000]).await.unwrap();
            let mut back = Vec::new();
            a.read_to_end(&mut back).await.unwrap();
            back.len()
        };
        let both = async { tokio::join!(peer, ours).1 };
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), both)
            .await
            .expect("duplex exchange timed out");
        assert_eq!(n, 700);
        assert_eq!(
            (c.0.load(Ordering::Relaxed), c.1.load(Ordering::Relaxed)),
            (700, 3000)
        );
    }
}
