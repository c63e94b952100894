//! `unix_domain_socket` (frp `unix_domain_socket.go`): joins the work connection to a Unix
//! socket at `unixPath`, writing the PROXY header first when the proxy has one.

use super::{ConnInfo, PluginError};
use common::config::PluginConfig;
use common::io::BoxStream;
use std::path::PathBuf;
use tokio::net::UnixStream;
use tracing::warn;

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
        super::join_after_header(&mut conn, &mut local, &info, "unix_domain_socket").await;
    }
}
