//! Zero-copy relay between two TCP sockets with `splice(2)` through a pipe per direction, for
//! tunnels where no layer needs the bytes (no TLS, no tcpMux, no encryption, compression or
//! bandwidth limit). The bytes go socket -> pipe -> socket inside the kernel; user space only
//! waits for readiness. Same contract as [`join`](super::join): half-close carried through,
//! an error ends both directions. Safe code only (rustix's `splice` takes borrowed fds).

use super::Count;
use rustix::pipe::{pipe_with, splice, PipeFlags, SpliceFlags};
use std::io;
use std::os::fd::OwnedFd;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Pipe capacity asked for, and bytes moved per splice call. Larger pipes mean fewer syscalls
/// and wake-ups per byte; if the kernel refuses (pipe-max-size), the default 64 KiB is used.
const PIPE_SIZE: usize = 1024 * 1024;

/// Moves `src -> dst` until `src` ends, then shuts down `dst`'s write half. `on_bytes` is told
/// each chunk's size as it passes.
///
/// A direction starts by copying through a pooled buffer (one read and one write per chunk is
/// cheaper than two splices for request/response traffic) and switches to splice for good once
/// a read fills the whole buffer, i.e. once it carries bulk data.
async fn pump(
    src: &TcpStream,
    dst: &TcpStream,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        src.readable().await?;
        let mut buf = super::join::take_buf();
        let n = match src.try_read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                super::join::give_buf(buf);
                continue;
            }
            Err(e) => {
                super::join::give_buf(buf);
                return Err(e);
            }
        };
        if n == 0 {
            super::join::give_buf(buf);
            rustix::net::shutdown(dst, rustix::net::Shutdown::Write)?;
            return Ok(total);
        }
        let mut pos = 0;
        while pos < n {
            dst.writable().await?;
            match dst.try_write(&buf[pos..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => pos += m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        let bulk = n == buf.len();
        super::join::give_buf(buf);
        total += n as u64;
        on_bytes(n as u64);
        if bulk {
            return splice_pump(src, dst, on_bytes, total).await;
        }
    }
}

/// The splice half of [`pump`].
async fn splice_pump(
    src: &TcpStream,
    dst: &TcpStream,
    on_bytes: &(dyn Fn(u64) + Sync),
    mut total: u64,
) -> io::Result<u64> {
    let (pr, pw): (OwnedFd, OwnedFd) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
    let chunk = rustix::pipe::fcntl_setpipe_size(&pw, PIPE_SIZE).unwrap_or(64 * 1024);
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    let mut since_yield = 0;
    loop {
        // Fairness (issue 21): a source that never runs dry must not hold the thread.
        if since_yield >= super::join::FAIR_SHARE {
            since_yield = 0;
            tokio::task::yield_now().await;
        }
        // The pipe is empty here, so EAGAIN can only mean `src` has nothing to read.
        src.readable().await?;
        let n = match src.try_io(Interest::READABLE, || {
            splice(src, None, &pw, None, chunk, flags).map_err(io::Error::from)
        }) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            rustix::net::shutdown(dst, rustix::net::Shutdown::Write)?;
            return Ok(total);
        }
        // Drain the pipe into `dst`; EAGAIN now means `dst` is full.
        let mut left = n;
        while left > 0 {
            dst.writable().await?;
            match dst.try_io(Interest::WRITABLE, || {
                splice(&pr, None, dst, None, left, flags).map_err(io::Error::from)
            }) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        total += n as u64;
        since_yield += n;
        on_bytes(n as u64);
    }
}

/// Relays `a <-> b` until both directions end; returns (a->b, b->a). `count` sees bytes read
/// from `a` as `read` and bytes written to `a` as `written`, like a `Counted` around `a`.
pub async fn splice_join(
    a: &TcpStream,
    b: &TcpStream,
    count: Option<&dyn Count>,
) -> io::Result<(u64, u64)> {
    let up = |n| {
        if let Some(c) = count {
            c.read(n)
        }
    };
    let down = |n| {
        if let Some(c) = count {
            c.written(n)
        }
    };
    tokio::try_join!(pump(a, b, &up), pump(b, a, &down))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        (c, s)
    }

    #[derive(Default)]
    struct C(std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU64);
    impl Count for C {
        fn read(&self, n: u64) {
            self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
        fn written(&self, n: u64) {
            self.1.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn relays_both_ways_with_half_close_and_counts() {
        let (user, a) = pair().await;
        let (b, mut backend) = pair().await;
        let c = std::sync::Arc::new(C::default());
        let c2 = c.clone();
        let j = tokio::spawn(async move { splice_join(&a, &b, Some(&*c2)).await });
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (got, back) = crate::io::testing::half_close_exchange(
            user,
            &mut backend,
            data.clone(),
            b"answer after FIN",
        )
        .await;
        assert!(
            got == data,
            "all bytes, then EOF after the user's half-close"
        );
        assert_eq!(back, b"answer after FIN");
        assert_eq!(j.await.unwrap().unwrap(), (3_000_000, 16));
        use std::sync::atomic::Ordering::Relaxed;
        assert_eq!((c.0.load(Relaxed), c.1.load(Relaxed)), (3_000_000, 16));
    }
}
