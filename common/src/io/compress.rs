//! [`CompressStream`]: the snappy *framed* stream format over any stream, as golib's
//! `io.WithCompression` (golang/snappy `NewWriter`/`NewReader`; frp-protocol.md §4.4).
//!
//! Every write is flushed at once as one or more chunks (Go's unbuffered writer), so small
//! interactive writes are not held back. Chunks: stream identifier `ff 06 00 00 "sNaPpY"` first,
//! then `00` (compressed) or `01` (uncompressed) chunks of at most 64 KiB of data, each with a
//! masked CRC-32C of the uncompressed bytes, which the reader verifies. The compressed form is
//! used only if it saves at least 12.5%, as Go does. Buffers are reused; nothing is allocated per
//! chunk. The framing is written here because the `snap` crate's frame reader/writer are
//! blocking and buffered; the block codec is `snap::raw`.

use super::outbuf::OutBuf;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const STREAM_ID: &[u8] = b"\xff\x06\x00\x00sNaPpY";
/// Largest uncompressed chunk (golang/snappy `maxBlockSize`).
const MAX_BLOCK: usize = 65536;
const CHUNK_COMPRESSED: u8 = 0x00;
const CHUNK_UNCOMPRESSED: u8 = 0x01;
const CHUNK_STREAM_ID: u8 = 0xff;

/// Go's `maxEncodedLenOfMaxBlockSize + checksumSize`: no valid chunk body is longer.
fn max_chunk_body() -> usize {
    snap::raw::max_compress_len(MAX_BLOCK) + 4
}

fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

fn corrupt(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("snappy: {msg}"))
}

/// A compressed stream.
pub struct CompressStream<S> {
    inner: S,
    enc: snap::raw::Encoder,
    dec: snap::raw::Decoder,
    // write side
    wrote_id: bool,
    out: OutBuf,
    scratch: Vec<u8>,
    // read side
    hdr: [u8; 4],
    hdr_len: usize,
    body: Vec<u8>,
    body_len: usize,
    body_filled: usize,
    plain: Vec<u8>,
    plain_pos: usize,
}

impl<S> std::fmt::Debug for CompressStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompressStream").finish_non_exhaustive()
    }
}

impl<S> CompressStream<S> {
    pub fn new(inner: S) -> Self {
        CompressStream {
            inner,
            enc: snap::raw::Encoder::new(),
            dec: snap::raw::Decoder::new(),
            wrote_id: false,
            out: OutBuf::default(),
            scratch: Vec::new(),
            hdr: [0; 4],
            hdr_len: 0,
            body: Vec::new(),
            body_len: 0,
            body_filled: 0,
            plain: Vec::new(),
            plain_pos: 0,
        }
    }

    /// Appends one chunk for `data` (at most [`MAX_BLOCK`] bytes) to `out`.
    fn encode_chunk(&mut self, data: &[u8]) -> io::Result<()> {
        if !self.wrote_id {
            self.out.buf.extend_from_slice(STREAM_ID);
            self.wrote_id = true;
        }
        let crc = masked_crc(data);
        self.scratch
            .resize(snap::raw::max_compress_len(data.len()), 0);
        let n = self
            .enc
            .compress(data, &mut self.scratch)
            .map_err(io::Error::other)?;
        let (kind, payload) = if n < data.len() - data.len() / 8 {
            (CHUNK_COMPRESSED, &self.scratch[..n])
        } else {
            (CHUNK_UNCOMPRESSED, data)
        };
        let len = payload.len() + 4;
        self.out
            .buf
            .extend_from_slice(&[kind, len as u8, (len >> 8) as u8, (len >> 16) as u8]);
        self.out.buf.extend_from_slice(&crc.to_le_bytes());
        self.out.buf.extend_from_slice(payload);
        Ok(())
    }

    /// Decodes the complete chunk in `body` into `plain` (or skips it).
    fn decode_chunk(&mut self) -> io::Result<()> {
        let body = &self.body[..self.body_len];
        self.plain.clear();
        self.plain_pos = 0;
        match self.hdr[0] {
            CHUNK_STREAM_ID if body != &STREAM_ID[4..] => {
                return Err(corrupt("bad stream identifier"))
            }
            CHUNK_STREAM_ID => {}
            CHUNK_COMPRESSED | CHUNK_UNCOMPRESSED => {
                if body.len() < 4 {
                    return Err(corrupt("chunk too short"));
                }
                let crc = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
                let data = &body[4..];
                if self.hdr[0] == CHUNK_COMPRESSED {
                    let n = snap::raw::decompress_len(data).map_err(|e| corrupt(&e.to_string()))?;
                    if n > MAX_BLOCK {
                        return Err(corrupt("block too large"));
                    }
                    self.plain.resize(n, 0);
                    self.dec
                        .decompress(data, &mut self.plain)
                        .map_err(|e| corrupt(&e.to_string()))?;
                } else {
                    if data.len() > MAX_BLOCK {
                        return Err(corrupt("block too large"));
                    }
                    self.plain.extend_from_slice(data);
                }
                if masked_crc(&self.plain) != crc {
                    return Err(corrupt("checksum mismatch"));
                }
            }
            0x02..=0x7f => return Err(corrupt("unsupported chunk type")),
            _ => {} // 0x80..=0xfe: skippable
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CompressStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.plain_pos < this.plain.len() {
                let n = buf.remaining().min(this.plain.len() - this.plain_pos);
                buf.put_slice(&this.plain[this.plain_pos..this.plain_pos + n]);
                this.plain_pos += n;
                return Poll::Ready(Ok(()));
            }
            // Chunk header.
            while this.hdr_len < 4 {
                let mut rb = ReadBuf::new(&mut this.hdr[this.hdr_len..]);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
                let n = rb.filled().len();
                if n == 0 {
                    if this.hdr_len == 0 {
                        return Poll::Ready(Ok(())); // clean EOF between chunks
                    }
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "snappy: truncated chunk header",
                    )));
                }
                this.hdr_len += n;
                if this.hdr_len == 4 {
                    let len = usize::from(this.hdr[1])
                        | usize::from(this.hdr[2]) << 8
                        | usize::from(this.hdr[3]) << 16;
                    if len > max_chunk_body() {
                        return Poll::Ready(Err(corrupt("chunk too large")));
                    }
                    this.body_len = len;
                    this.body_filled = 0;
                    if this.body.len() < len {
                        this.body.resize(len, 0);
                    }
                }
            }
            // Chunk body.
            while this.body_filled < this.body_len {
                let mut rb = ReadBuf::new(&mut this.body[this.body_filled..this.body_len]);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "snappy: truncated chunk",
                    )));
                }
                this.body_filled += n;
            }
            this.hdr_len = 0;
            this.decode_chunk()?;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CompressStream<S> {
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
        let n = data.len().min(MAX_BLOCK);
        this.encode_chunk(&data[..n])?;
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn wire_format_golden() {
        // Go's snappy.NewWriter writing "hello" once: stream id, then an uncompressed chunk
        // (5 bytes do not compress) with the masked CRC-32C of "hello".
        let (a, mut raw) = tokio::io::duplex(4096);
        let mut w = CompressStream::new(a);
        w.write_all(b"hello").await.unwrap();
        w.flush().await.unwrap();
        let mut got = vec![0u8; 10 + 4 + 4 + 5];
        raw.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..10], STREAM_ID);
        assert_eq!(&got[10..14], &[0x01, 9, 0, 0]);
        assert_eq!(
            u32::from_le_bytes(got[14..18].try_into().unwrap()),
            masked_crc(b"hello")
        );
        assert_eq!(&got[18..], b"hello");
        // crc32c("hello") = 0x9a71bb4c (RFC 3720 Castagnoli), masked as in the framing spec.
        assert_eq!(crc32c::crc32c(b"hello"), 0x9a71_bb4c);
        assert_eq!(
            masked_crc(b"hello"),
            0x9a71_bb4c_u32.rotate_right(15).wrapping_add(0xa282_ead8)
        );
    }

    #[tokio::test]
    async fn compressible_data_is_compressed_and_round_trips() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let mut w = CompressStream::new(a);
        let mut r = CompressStream::new(b);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 7) as u8).collect();
        let d2 = data.clone();
        let t = tokio::spawn(async move {
            w.write_all(&d2).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        t.await.unwrap();
        assert_eq!(got, data);
    }

    #[tokio::test]
    async fn interoperates_with_the_snap_crate_frame_codec() {
        // snap's FrameDecoder/FrameEncoder implement the same framing format: each side must
        // read the other's bytes.
        use std::io::{Read, Write};
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let (a, mut raw) = tokio::io::duplex(1 << 20);
        let mut w = CompressStream::new(a);
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
        let mut wire = Vec::new();
        raw.read_to_end(&mut wire).await.unwrap();
        let mut back = Vec::new();
        snap::read::FrameDecoder::new(&wire[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);

        let mut enc = snap::write::FrameEncoder::new(Vec::new());
        enc.write_all(&data).unwrap();
        let wire = enc.into_inner().unwrap();
        let mut r = CompressStream::new(&wire[..]);
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, data);
    }

    #[tokio::test]
    async fn corrupt_input_is_an_error_not_a_panic() {
        let mut bad = STREAM_ID.to_vec();
        bad.extend_from_slice(&[0x01, 9, 0, 0, 0, 0, 0, 0]);
        bad.extend_from_slice(b"hello");
        let mut r = CompressStream::new(&bad[..]);
        let mut got = Vec::new();
        assert!(r.read_to_end(&mut got).await.is_err(), "checksum mismatch");
        for bytes in [
            &b"\x02\x01\x00\x00x"[..],
            &b"\x00\xff\xff\xff"[..],
            &b"\x00\x05\x00\x00\x00\x00\x00\x00\xff"[..],
        ] {
            let mut r = CompressStream::new(bytes);
            let mut got = Vec::new();
            assert!(r.read_to_end(&mut got).await.is_err());
        }
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let mut input = STREAM_ID.to_vec();
                input.extend_from_slice(&bytes);
                let mut r = CompressStream::new(&input[..]);
                let mut out = Vec::new();
                let _ = r.read_to_end(&mut out).await;
            });
        }
    }
}
