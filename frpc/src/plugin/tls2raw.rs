//! `tls2raw` (frp `tls2raw.go`): terminates TLS with `crtPath`/`keyPath` (a self-signed
//! certificate when either is empty) and passes the plain bytes to `localAddr`, after the
//! PROXY header when the proxy has one.

use super::{ConnInfo, PluginError};
use common::config::PluginConfig;
use common::io::BoxStream;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsAcceptor;
use tracing::warn;

/// How long the TLS handshake and the dial to `localAddr` may each take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct Tls2Raw {
    local_addr: String,
    tls: Arc<rustls::ServerConfig>,
}

impl Tls2Raw {
    pub(crate) fn new(c: &PluginConfig) -> Result<Self, PluginError> {
        if c.local_addr.is_empty() {
            return Err(PluginError::Invalid(
                "tls2raw",
                "localAddr is required".into(),
            ));
        }
        Ok(Tls2Raw {
            local_addr: c.local_addr.clone(),
            tls: super::server_tls(c, "tls2raw", &[])?,
        })
    }

    pub(crate) async fn serve(&self, conn: BoxStream, info: ConnInfo) {
        let mut tls = match tokio::time::timeout(
            STEP_TIMEOUT,
            TlsAcceptor::from(self.tls.clone()).accept(conn),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                warn!(error = %e, "tls2raw: tls handshake error");
                return;
            }
            Err(_) => {
                warn!("tls2raw: tls handshake timed out");
                return;
            }
        };
        let dialed =
            tokio::time::timeout(STEP_TIMEOUT, common::dns::connect_addr(&self.local_addr)).await;
        let mut raw = match dialed {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                warn!(local = %self.local_addr, error = %e, "tls2raw: dial to local addr error");
                return;
            }
            Err(_) => {
                warn!(local = %self.local_addr, "tls2raw: dial to local addr timed out");
                return;
            }
        };
        super::join_after_header(&mut tls, &mut raw, &info, "tls2raw").await;
    }
}
