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
