//! [`CryptStream`]: AES-128-CFB over any stream, as golib's `crypto.Reader`/`Writer`.
//!
//! Each direction has its own IV: the writer sends a random IV immediately before its first
//! ciphertext byte; the reader takes the first 16 bytes it receives as the peer's IV.
//! Writes encrypt into one reused buffer (no per-write allocation); bytes accepted by
//! `poll_write` are owned by the buffer until flushed.

use super::outbuf::OutBuf;
use crate::crypto::{cipher, random_iv, Decryptor, Encryptor, Key, IV_LEN};
use aes::Aes128Enc;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest plaintext chunk encrypted per `poll_write`.
const CHUNK: usize = 32 * 1024;

/// An encrypted stream.
pub struct CryptStream<S> {
    inner: S,
    /// The key schedule, shared by both directions (and by every stream under this key).
    cipher: Arc<Aes128Enc>,
    enc: Option<Encryptor>,
    dec: Option<Decryptor>,
    /// Peer's IV as it arrives.
    iv_in: [u8; IV_LEN],
    iv_in_len: usize,
    /// Ciphertext (and our IV, at first) not yet written to `inner`.
    out: OutBuf,
}

impl<S> std::fmt::Debug for CryptStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CryptStream")
            .field("pending", &self.out.pending())
            .finish()
    }
}

impl<S> CryptStream<S> {
    pub fn new(inner: S, key: Key) -> Self {
        CryptStream {
            inner,
            cipher: cipher(&key),
            enc: None,
            dec: None,
            iv_in: [0; IV_LEN],
            iv_in_len: 0,
            out: OutBuf::default(),
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CryptStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.dec.is_none() {
            let mut rb = ReadBuf::new(&mut this.iv_in[this.iv_in_len..]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                if this.iv_in_len == 0 {
                    return Poll::Ready(Ok(())); // clean EOF before any data
                }
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stream ended inside the IV",
                )));
            }
            this.iv_in_len += n;
            if this.iv_in_len == IV_LEN {
                this.dec = Some(Decryptor::with_cipher(this.cipher.clone(), &this.iv_in));
            }
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if let Some(dec) = this.dec.as_mut() {
            dec.apply(&mut buf.filled_mut()[before..]);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CryptStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.out.poll_drain(&mut this.inner, cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.enc.is_none() {
            let iv = random_iv();
            this.enc = Some(Encryptor::with_cipher(this.cipher.clone(), &iv));
            this.out.buf.extend_from_slice(&iv);
        }
        let n = data.len().min(CHUNK);
        let start = this.out.buf.len();
        this.out.buf.extend_from_slice(&data[..n]);
        if let Some(enc) = this.enc.as_mut() {
            enc.apply(&mut this.out.buf[start..]);
        }
        // Push what we can now; the rest goes out on the next write or flush.
        match this.out.poll_drain(&mut this.inner, cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(n)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.out.poll_drain(&mut this.inner, cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.out.poll_drain(&mut this.inner, cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::derive_key;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn round_trip_both_directions() {
        let (a, b) = tokio::io::duplex(1024);
        let key = derive_key(b"token");
        let a = CryptStream::new(a, key);
        let mut b = CryptStream::new(b, key);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        let (got, back) =
            crate::io::testing::half_close_exchange(a, &mut b, data.clone(), b"reply").await;
        assert_eq!(got, data);
        assert_eq!(back, b"reply");
    }

    #[tokio::test]
    async fn wire_is_iv_then_ciphertext() {
        let (a, mut raw) = tokio::io::duplex(1024);
        let key = derive_key(b"12345678");
        let mut a = CryptStream::new(a, key);
        a.write_all(b"hello").await.unwrap();
        a.flush().await.unwrap();
        let mut wire = [0u8; 21];
        raw.read_exact(&mut wire).await.unwrap();
        let iv: [u8; 16] = wire[..16].try_into().unwrap();
        let mut body = wire[16..].to_vec();
        Decryptor::new(&key, &iv).apply(&mut body);
        assert_eq!(body, b"hello");
    }
}
