//! The work-connection pool of one control (frp `server/control.go` `GetWorkConn`,
//! `server/proxy/proxy.go` `GetWorkConnFromPool`).
//!
//! frpc opens work connections when asked with `ReqWorkConn`; they wait here until a user
//! arrives. Taking one costs no round trip when the pool is non-empty; afterwards one more
//! `ReqWorkConn` refills it. Every waiting user waits on the same channel at once, as in Go.

use common::io::BoxStream;
use common::msg::{Message, ReqWorkConn, StartWorkConn, Wire};
use std::time::Duration;
use tokio::sync::mpsc;

/// Why no work connection could be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PoolError {
    #[error("timeout trying to get work connection")]
    Timeout,
    #[error("control is closed")]
    Closed,
    #[error("failed to send StartWorkConn: {0}")]
    Start(std::io::Error),
}

/// Handle to one control's pool; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct WorkConnPool {
    rx: async_channel::Receiver<BoxStream>,
    ctl_tx: mpsc::Sender<Message>,
    timeout: Duration,
    pool_count: usize,
    /// frp_rs: hand-outs by source (`pool` = no round trip, `requested` = waited for frpc).
    handed_out: prometheus::IntCounterVec,
    /// The framing of this client's connections.
    wire: Wire,
}

impl WorkConnPool {
    /// The channel capacity is `poolCount + 10`, as frp's `workConnCh`.
    pub(crate) fn new(
        pool_count: usize,
        timeout: Duration,
        ctl_tx: mpsc::Sender<Message>,
        handed_out: prometheus::IntCounterVec,
        wire: Wire,
    ) -> (Self, async_channel::Sender<BoxStream>) {
        let (tx, rx) = async_channel::bounded(pool_count + 10);
        (
            WorkConnPool {
                rx,
                ctl_tx,
                timeout,
                pool_count,
                handed_out,
                wire,
            },
            tx,
        )
    }

    async fn take(&self) -> Result<BoxStream, PoolError> {
        let conn = match self.rx.try_recv() {
            Ok(c) => {
                self.handed_out.with_label_values(&["pool"]).inc();
                c
            }
            Err(async_channel::TryRecvError::Closed) => return Err(PoolError::Closed),
            Err(async_channel::TryRecvError::Empty) => {
                self.ctl_tx
                    .send(ReqWorkConn {}.into())
                    .await
                    .map_err(|_| PoolError::Closed)?;
                match tokio::time::timeout(self.timeout, self.rx.recv()).await {
                    Ok(Ok(c)) => {
                        self.handed_out.with_label_values(&["requested"]).inc();
                        c
                    }
                    Ok(Err(_)) => return Err(PoolError::Closed),
                    Err(_) => return Err(PoolError::Timeout),
                }
            }
        };
        // Refill the pool for the next user.
        let _ = self.ctl_tx.try_send(ReqWorkConn {}.into());
        Ok(conn)
    }

    /// Takes a work connection and writes `start` to it. A pooled connection may have died
    /// while idle: then another is tried, up to `poolCount + 1` times.
    pub(crate) async fn get_started(&self, start: &StartWorkConn) -> Result<BoxStream, PoolError> {
        let msg = Message::StartWorkConn(start.clone());
        let mut last = None;
        for _ in 0..=self.pool_count {
            let mut conn = self.take().await?;
            match self.wire.write(&mut conn, &msg).await {
                Ok(()) => return Ok(conn),
                Err(e) => {
                    tracing::debug!(error = %e, "stale work connection, trying another");
                    last = Some(e);
                }
            }
        }
        Err(PoolError::Start(
            last.unwrap_or_else(|| std::io::ErrorKind::BrokenPipe.into()),
        ))
    }

    /// The framing messages on this client's work connections use.
    pub(crate) fn wire(&self) -> Wire {
        self.wire
    }

    /// Closes the pool: pooled connections are dropped, waiters fail.
    pub(crate) fn close(&self) {
        self.rx.close();
    }
}
