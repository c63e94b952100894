//! Test helpers shared by the stream layers' tests.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The half-close exchange every relay and layer must carry: `near` sends `data` and shuts
/// down; `far` reads to EOF, then answers `reply` and shuts down; `near` reads the answer to
/// EOF. Returns (what `far` read, what `near` read back). All of it within 20 s.
pub(crate) async fn half_close_exchange<N, F>(
    mut near: N,
    far: &mut F,
    data: Vec<u8>,
    reply: &[u8],
) -> (Vec<u8>, Vec<u8>)
where
    N: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: AsyncRead + AsyncWrite + Unpin,
{
    let exchange = async {
        let sender = tokio::spawn(async move {
            near.write_all(&data).await.unwrap();
            near.shutdown().await.unwrap();
            let mut back = Vec::new();
            near.read_to_end(&mut back).await.unwrap();
            back
        });
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.unwrap();
        far.write_all(reply).await.unwrap();
        far.shutdown().await.unwrap();
        (got, sender.await.unwrap())
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), exchange)
        .await
        .expect("half-close exchange in time")
}

/// An end that never blocks (fairness tests): reads hand out `script` as fast as they are
/// asked, then EOF, or nothing ever again with `then_pending`; writes take everything at once.
/// `read` and `written` count the bytes through each way.
pub(crate) struct AlwaysReady {
    script: Vec<u8>,
    pos: usize,
    then_pending: bool,
    pub(crate) read: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub(crate) written: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl AlwaysReady {
    pub(crate) fn new(script: Vec<u8>, then_pending: bool) -> Self {
        AlwaysReady {
            script,
            pos: 0,
            then_pending,
            read: Default::default(),
            written: Default::default(),
        }
    }
}

impl AsyncRead for AlwaysReady {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        let n = (this.script.len() - this.pos).min(buf.remaining());
        if n == 0 && this.then_pending && buf.remaining() > 0 {
            return std::task::Poll::Pending;
        }
        buf.put_slice(&this.script[this.pos..this.pos + n]);
        this.pos += n;
        this.read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        std::task::Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for AlwaysReady {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        b: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.written
            .fetch_add(b.len(), std::sync::atomic::Ordering::Relaxed);
        std::task::Poll::Ready(Ok(b.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
