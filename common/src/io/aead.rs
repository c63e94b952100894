//! [`AeadStream`]: wire v2's control-channel encryption (golib `crypto/aead_stream.go`;
//! frp-protocol.md §4.6).
//!
//! Per direction: a random stream nonce sent once before the first record, then records
//! `u32 BE ciphertext length | AEAD_Seal(nonce_i, plaintext, AAD = stream nonce || length)`,
//! with `nonce_0` = the stream nonce, incremented big-endian after each record. Each
//! `poll_write` becomes one record of at most 64 KiB of plaintext. AES-256-GCM through `ring`,
//! XChaCha20-Poly1305 through RustCrypto's `chacha20poly1305` (ring has no XChaCha).

use super::outbuf::OutBuf;
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::KeyInit;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest plaintext per record.
pub const MAX_RECORD: usize = 65536;
const TAG: usize = 16;

/// One direction's cipher.
enum Cipher {
    Aes(Box<ring::aead::LessSafeKey>),
    XChaCha(Box<chacha20poly1305::XChaCha20Poly1305>),
}

impl Cipher {
    fn new(alg: &str, key: &[u8; 32]) -> io::Result<Cipher> {
        match alg {
            crate::msg::v2::ALG_AES => {
                let k = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, key)
                    .map_err(|_| io::Error::other("bad AES-256-GCM key"))?;
                Ok(Cipher::Aes(Box::new(ring::aead::LessSafeKey::new(k))))
            }
            crate::msg::v2::ALG_XCHACHA => Ok(Cipher::XChaCha(Box::new(
                chacha20poly1305::XChaCha20Poly1305::new(key.into()),
            ))),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unsupported AEAD algorithm {other:?}"),
            )),
        }
    }

    fn nonce_len(&self) -> usize {
        match self {
            Cipher::Aes(_) => 12,
            Cipher::XChaCha(_) => 24,
        }
    }

    /// Encrypts `buf` in place and appends the tag.
    fn seal(&self, nonce: &[u8], aad: &[u8], buf: &mut Vec<u8>) -> io::Result<()> {
        let fail = |_| io::Error::other("aead seal failed");
        match self {
            Cipher::Aes(k) => {
                let mut n = [0u8; 12];
                n.copy_from_slice(nonce);
                k.seal_in_place_append_tag(
                    ring::aead::Nonce::assume_unique_for_key(n),
                    ring::aead::Aad::from(aad),
                    buf,
                )
                .map_err(fail)
            }
            Cipher::XChaCha(c) => c
                .encrypt_in_place(chacha20poly1305::XNonce::from_slice(nonce), aad, buf)
                .map_err(|_| io::Error::other("aead seal failed")),
        }
    }

    /// Decrypts `buf` (ciphertext and tag) in place, leaving the plaintext.
    fn open(&self, nonce: &[u8], aad: &[u8], buf: &mut Vec<u8>) -> io::Result<()> {
        let bad = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "aead record failed authentication",
            )
        };
        match self {
            Cipher::Aes(k) => {
                let mut n = [0u8; 12];
                n.copy_from_slice(nonce);
                let len = k
                    .open_in_place(
                        ring::aead::Nonce::assume_unique_for_key(n),
                        ring::aead::Aad::from(aad),
                        buf,
                    )
                    .map_err(|_| bad())?
                    .len();
                buf.truncate(len);
                Ok(())
            }
            Cipher::XChaCha(c) => c
                .decrypt_in_place(chacha20poly1305::XNonce::from_slice(nonce), aad, buf)
                .map_err(|_| bad()),
        }
    }
}

fn increment(nonce: &mut [u8]) {
    for b in nonce.iter_mut().rev() {
        let (v, carry) = b.overflowing_add(1);
        *b = v;
        if !carry {
            break;
        }
    }
}

/// Both directions of an AEAD-protected stream.
pub struct AeadStream<S> {
    inner: S,
    // Write side.
    seal: Cipher,
    w_stream_nonce: Vec<u8>,
    w_nonce: Vec<u8>,
    w_started: bool,
    out: OutBuf,
    // Read side.
    open: Cipher,
    r_stream_nonce: Vec<u8>,
    r_nonce: Vec<u8>,
    /// Raw bytes received and not yet consumed.
    inb: Vec<u8>,
    /// Decrypted bytes not yet handed out.
    plain: Vec<u8>,
    plain_pos: usize,
    eof: bool,
}

impl<S> std::fmt::Debug for AeadStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AeadStream").finish_non_exhaustive()
    }
}

impl<S> AeadStream<S> {
    /// `write_key` seals what we send, `read_key` opens what we receive.
    pub fn new(inner: S, alg: &str, write_key: &[u8; 32], read_key: &[u8; 32]) -> io::Result<Self> {
        let seal = Cipher::new(alg, write_key)?;
        let open = Cipher::new(alg, read_key)?;
        let mut w_stream_nonce = vec![0u8; seal.nonce_len()];
        for b in w_stream_nonce.iter_mut() {
            *b = rand::random();
        }
        Ok(AeadStream {
            inner,
            w_nonce: w_stream_nonce.clone(),
            w_stream_nonce,
            seal,
            w_started: false,
            out: OutBuf::default(),
            open,
            r_stream_nonce: Vec::new(),
            r_nonce: Vec::new(),
            inb: Vec::new(),
            plain: Vec::new(),
            plain_pos: 0,
            eof: false,
        })
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AeadStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.out.poll_drain(&mut this.inner, cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let chunk = &buf[..buf.len().min(MAX_RECORD)];
        if !this.w_started {
            this.out.buf.extend_from_slice(&this.w_stream_nonce);
            this.w_started = true;
        }
        let header = ((chunk.len() + TAG) as u32).to_be_bytes();
        let mut aad = Vec::with_capacity(this.w_stream_nonce.len() + 4);
        aad.extend_from_slice(&this.w_stream_nonce);
        aad.extend_from_slice(&header);
        let mut record = Vec::with_capacity(chunk.len() + TAG);
        record.extend_from_slice(chunk);
        this.seal.seal(&this.w_nonce, &aad, &mut record)?;
        increment(&mut this.w_nonce);
        this.out.buf.extend_from_slice(&header);
        this.out.buf.extend_from_slice(&record);
        // Start sending now; what is left goes out on the next write or flush.
        if let Poll::Ready(Err(e)) = this.out.poll_drain(&mut this.inner, cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(chunk.len()))
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

impl<S: AsyncRead + Unpin> AeadStream<S> {
    /// Tries to decrypt one record from `inb`; Ok(true) when one was.
    fn take_record(&mut self) -> io::Result<bool> {
        let nlen = self.open.nonce_len();
        if self.r_stream_nonce.is_empty() {
            if self.inb.len() < nlen {
                return Ok(false);
            }
            self.r_stream_nonce = self.inb.drain(..nlen).collect();
            self.r_nonce = self.r_stream_nonce.clone();
        }
        if self.inb.len() < 4 {
            return Ok(false);
        }
        let header = [self.inb[0], self.inb[1], self.inb[2], self.inb[3]];
        let clen = u32::from_be_bytes(header) as usize;
        if !(TAG..=MAX_RECORD + TAG).contains(&clen) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("aead record length {clen} out of range"),
            ));
        }
        if self.inb.len() < 4 + clen {
            return Ok(false);
        }
        let mut aad = Vec::with_capacity(nlen + 4);
        aad.extend_from_slice(&self.r_stream_nonce);
        aad.extend_from_slice(&header);
        self.plain.clear();
        self.plain.extend_from_slice(&self.inb[4..4 + clen]);
        self.inb.drain(..4 + clen);
        self.plain_pos = 0;
        self.open.open(&self.r_nonce, &aad, &mut self.plain)?;
        increment(&mut self.r_nonce);
        Ok(true)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AeadStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.plain_pos < this.plain.len() {
                let n = (this.plain.len() - this.plain_pos).min(buf.remaining());
                buf.put_slice(&this.plain[this.plain_pos..this.plain_pos + n]);
                this.plain_pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.take_record()? {
                continue;
            }
            if this.eof {
                // A clean EOF only on a record boundary.
                return if this.inb.is_empty() {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()))
                };
            }
            let mut tmp = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut tmp);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                this.eof = true;
            } else {
                this.inb.extend_from_slice(rb.filled());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn nonce_increments_big_endian() {
        let mut n = [0u8, 0, 0xff, 0xff];
        increment(&mut n);
        assert_eq!(n, [0, 1, 0, 0]);
        let mut n = [0xffu8; 3];
        increment(&mut n);
        assert_eq!(n, [0, 0, 0]);
    }

    #[tokio::test]
    async fn round_trip_both_algorithms_and_record_format() {
        for alg in [crate::msg::v2::ALG_AES, crate::msg::v2::ALG_XCHACHA] {
            let (k1, k2) = ([1u8; 32], [2u8; 32]);
            let (a, b) = tokio::io::duplex(1 << 20);
            let mut a = AeadStream::new(a, alg, &k1, &k2).unwrap();
            let mut b = AeadStream::new(b, alg, &k2, &k1).unwrap();
            let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
            a.write_all(b"hello").await.unwrap();
            a.write_all(&big).await.unwrap();
            a.flush().await.unwrap();
            let mut got = vec![0u8; 5 + big.len()];
            b.read_exact(&mut got).await.unwrap();
            assert_eq!(&got[..5], b"hello");
            assert!(got[5..] == big[..]);
            b.write_all(b"back").await.unwrap();
            b.flush().await.unwrap();
            let mut back = [0u8; 4];
            a.read_exact(&mut back).await.unwrap();
            assert_eq!(&back, b"back");
        }
        // On the wire: the 12-byte nonce, then u32 length = 5 + 16.
        let (a, mut raw) = tokio::io::duplex(1 << 16);
        let mut a = AeadStream::new(a, crate::msg::v2::ALG_AES, &[1; 32], &[2; 32]).unwrap();
        a.write_all(b"hello").await.unwrap();
        a.flush().await.unwrap();
        let mut head = [0u8; 16];
        raw.read_exact(&mut head).await.unwrap();
        assert_eq!(&head[12..16], &21u32.to_be_bytes());
    }

    #[tokio::test]
    async fn tampering_and_bad_lengths_are_errors() {
        let (a, mut raw) = tokio::io::duplex(1 << 16);
        let mut a = AeadStream::new(a, crate::msg::v2::ALG_AES, &[1; 32], &[2; 32]).unwrap();
        a.write_all(b"hello").await.unwrap();
        a.flush().await.unwrap();
        let mut wire = vec![0u8; 12 + 4 + 21];
        raw.read_exact(&mut wire).await.unwrap();
        for (what, mutate) in [
            (
                "flipped byte",
                Box::new(|w: &mut Vec<u8>| w[20] ^= 1) as Box<dyn Fn(&mut Vec<u8>)>,
            ),
            (
                "short length",
                Box::new(|w: &mut Vec<u8>| w[12..16].copy_from_slice(&3u32.to_be_bytes())),
            ),
            (
                "huge length",
                Box::new(|w: &mut Vec<u8>| w[12..16].copy_from_slice(&70000u32.to_be_bytes())),
            ),
        ] {
            let mut w = wire.clone();
            mutate(&mut w);
            let mut r =
                AeadStream::new(&w[..], crate::msg::v2::ALG_AES, &[2; 32], &[1; 32]).unwrap();
            let mut out = Vec::new();
            assert!(r.read_to_end(&mut out).await.is_err(), "{what}");
        }
        // A stream cut inside a record is an error, not a clean EOF.
        let mut r =
            AeadStream::new(&wire[..20], crate::msg::v2::ALG_AES, &[2; 32], &[1; 32]).unwrap();
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).await.is_err());
    }
}
