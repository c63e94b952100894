//! [`OutBuf`]: bytes a stream layer has produced (ciphertext, compressed chunks, AEAD records)
//! and not yet handed to the stream below. One buffer per layer, reused for its life; every
//! layer drains it the same way before it accepts more.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::AsyncWrite;

#[derive(Debug, Default)]
pub(crate) struct OutBuf {
    /// Append output here; [`poll_drain`](OutBuf::poll_drain) writes it out.
    pub(crate) buf: Vec<u8>,
    pos: usize,
}

impl OutBuf {
    /// Bytes still to be written.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Writes everything pending to `w`; the buffer is empty (capacity kept) once Ready(Ok).
    pub(crate) fn poll_drain<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        w: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.pos < self.buf.len() {
            let n = ready!(Pin::new(&mut *w).poll_write(cx, &self.buf[self.pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pos += n;
        }
        self.buf.clear();
        self.pos = 0;
        Poll::Ready(Ok(()))
    }
}
