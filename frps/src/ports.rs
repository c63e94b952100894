//! Port allocation for tcp/udp proxies (frp `server/ports/ports.go`), with frp's error texts.
//!
//! TCP and UDP ports are separate spaces, as frp's two managers (`TCPPortManager`,
//! `UDPPortManager`): a tcp and a udp proxy can both have `remotePort = 6000`, and `allowPorts`
//! and `remotePort = 0` apply to each protocol on its own.
//!
//! `remotePort = 0` with no `allowPorts`: the OS picks a free ephemeral port (frp draws from
//! 1-65535 and may land on a privileged port; we do not). With `allowPorts`, random allowed ports
//! are tried until one binds.

use crate::registry::{PortGuard, Registry};
use common::config::ServerConfig;
use rand::seq::SliceRandom;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, UdpSocket};

/// How many allowed ports `remotePort = 0` tries before giving up.
const PICK_TRIES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub(crate) enum PortError {
    #[error("port not allowed")]
    NotAllowed,
    #[error("port already used")]
    AlreadyUsed,
    #[error("port unavailable")]
    Unavailable,
    #[error("no available port")]
    NoAvailable,
    #[error("proxyBindAddr {0:?} is not an IP address")]
    BindAddr(String),
}

/// Which port space a proxy's port lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Net {
    Tcp,
    Udp,
}

/// Something we can bind on a port.
pub(crate) trait Bindable: Sized {
    /// The port space it binds in.
    const NET: Net;
    async fn bind_to(addr: SocketAddr) -> std::io::Result<Self>;
    fn port(&self) -> std::io::Result<u16>;
}

impl Bindable for TcpListener {
    const NET: Net = Net::Tcp;
    async fn bind_to(addr: SocketAddr) -> std::io::Result<Self> {
        common::transport::listen_tcp(addr).await
    }
    fn port(&self) -> std::io::Result<u16> {
        Ok(self.local_addr()?.port())
    }
}

impl Bindable for UdpSocket {
    const NET: Net = Net::Udp;
    async fn bind_to(addr: SocketAddr) -> std::io::Result<Self> {
        UdpSocket::bind(addr).await
    }
    fn port(&self) -> std::io::Result<u16> {
        Ok(self.local_addr()?.port())
    }
}

/// `proxyBindAddr:port`. `Server::bind` resolved `proxyBindAddr` to an IP address; anything
/// else is refused, never replaced by all interfaces.
fn addr(cfg: &ServerConfig, port: u16) -> Result<SocketAddr, PortError> {
    cfg.proxy_bind_addr
        .parse()
        .map(|ip| SocketAddr::new(ip, port))
        .map_err(|_| PortError::BindAddr(cfg.proxy_bind_addr.clone()))
}

/// Binds `port` (0 = pick one) for a proxy and claims it in the registry.
pub(crate) async fn bind<T: Bindable>(
    cfg: &ServerConfig,
    reg: &Arc<Registry>,
    port: u16,
) -> Result<(T, PortGuard), PortError> {
    if port != 0 {
        if !cfg.port_allowed(port) {
            return Err(PortError::NotAllowed);
        }
        if reg.port_in_use(T::NET, port) {
            return Err(PortError::AlreadyUsed);
        }
        let s = T::bind_to(addr(cfg, port)?)
            .await
            .map_err(|_| PortError::Unavailable)?;
        return Ok((s, reg.claim_port(T::NET, port)));
    }
    if cfg.allow_ports.is_empty() {
        let s = T::bind_to(addr(cfg, 0)?)
            .await
            .map_err(|_| PortError::NoAvailable)?;
        let p = s.port().map_err(|_| PortError::NoAvailable)?;
        return Ok((s, reg.claim_port(T::NET, p)));
    }
    let mut candidates: Vec<u16> = cfg
        .allow_ports
        .iter()
        .flat_map(|r| r.ports())
        .filter(|p| *p != 0)
        .collect();
    candidates.shuffle(&mut rand::thread_rng());
    for p in candidates
        .into_iter()
        .filter(|p| !reg.port_in_use(T::NET, *p))
        .take(PICK_TRIES)
    {
        if let Ok(s) = T::bind_to(addr(cfg, p)?).await {
            return Ok((s, reg.claim_port(T::NET, p)));
        }
    }
    Err(PortError::NoAvailable)
}
