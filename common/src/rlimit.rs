//! The open-files limit (issue 22): Go programs, frp's among them, raise the soft `RLIMIT_NOFILE`
//! to the hard limit at start; with the usual soft limit of 1024 a busy frps (or an frpc with
//! many work connections) runs out of descriptors. Both binaries do the same at start.

/// Raises the soft open-files limit to the hard limit; returns the limit now in force (`None`
/// = unlimited).
#[cfg(target_os = "linux")]
pub fn raise_open_files() -> std::io::Result<Option<u64>> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    if now.current != now.maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: now.maximum,
                maximum: now.maximum,
            },
        )?;
    }
    Ok(getrlimit(Resource::Nofile).current)
}

/// Elsewhere the limit is left as it is.
#[cfg(not(target_os = "linux"))]
pub fn raise_open_files() -> std::io::Result<Option<u64>> {
    Ok(None)
}

/// Raises the limit and logs the result (once logging is set up).
pub fn raise_open_files_and_log() {
    match raise_open_files() {
        Ok(Some(n)) => tracing::info!(limit = n, "open files limit"),
        Ok(None) => tracing::info!("open files limit: unlimited"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
}
