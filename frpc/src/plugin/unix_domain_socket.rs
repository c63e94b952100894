//! `unix_domain_socket` (frp `unix_domain_socket.go`): joins the work connection to a Unix
//! socket at `unixPath`, writing the PROXY header first when the proxy has one.

use super::{ConnInfo, PluginError};
use common::config::PluginConfig;
use common::io::BoxStream;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tracing::{debug, warn};

#[derive(Debug)]
pub(crate) struct UnixDomainSocket {
    path: PathBuf,
}

impl UnixDomainSocket {
    pub(crate) fn new(c: &PluginConfig) -> Result<Self, PluginError> {
        if c.unix_path.is_empty() {
            return Err(PluginError::Invalid(
                "unix_domain_socket",
                "unixPath is required".into(),
            ));
        }
        Ok(UnixDomainSocket {
            path: c.unix_path.clone().into(),
        })
    }

    pub(crate) async fn serve(&self, mut conn: BoxStream, info: ConnInfo) {
        let mut local = match UnixStream::connect(&self.path).await {
            Ok(s) => s,
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "unix_domain_socket: dial failed");
                return;
            }
        };
        if let Some(h) = &info.proxy_header {
            if let Err(e) = local.write_all(h).await {
                warn!(error = %e, "unix_domain_socket: write PROXY header failed");
                return;
            }
        }
        if let Err(e) = common::io::join(&mut conn, &mut local).await {
            debug!(error = %e, "unix_domain_socket: connection ended with error");
        }
    }
}
