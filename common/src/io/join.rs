//! Joins two streams both ways (frp golib `io.Join`), with half-close carried through:
//! when one side finishes sending, the other side's write half is shut down and the opposite
//! direction keeps flowing until it finishes too, so no data is lost on a half-close.

use tokio::io::{AsyncRead, AsyncWrite};

/// Per-direction copy buffer. Reused for the life of the connection.
pub const JOIN_BUF: usize = 32 * 1024;

/// Copies `a -> b` and `b -> a` until both directions end. Returns (a->b bytes, b->a bytes).
/// An error on either side ends both directions (the streams are dropped by the caller).
pub async fn join<A, B>(a: &mut A, b: &mut B) -> std::io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    tokio::io::copy_bidirectional_with_sizes(a, b, JOIN_BUF, JOIN_BUF).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn half_close_keeps_other_direction() {
        let (mut user, mut a) = tokio::io::duplex(64);
        let (mut b, mut backend) = tokio::io::duplex(64);
        let j = tokio::spawn(async move { join(&mut a, &mut b).await });
        user.write_all(b"request").await.unwrap();
        user.shutdown().await.unwrap();
        let mut req = Vec::new();
        backend.read_to_end(&mut req).await.unwrap();
        assert_eq!(req, b"request");
        // The backend answers after the user's FIN.
        backend
            .write_all(b"response after half close")
            .await
            .unwrap();
        backend.shutdown().await.unwrap();
        let mut resp = Vec::new();
        user.read_to_end(&mut resp).await.unwrap();
        assert_eq!(resp, b"response after half close");
        assert_eq!(j.await.unwrap().unwrap(), (7, 25));
    }
}
