//! `frpc --watch`: reload when the config file or one of its `includes` changes (beyond frp).
//!
//! The directories holding the file and the include patterns are watched (not the files, so
//! editors that save by rename are seen). Events are debounced: the reload runs once the files
//! have been quiet for [`QUIET`]. A broken edit is logged and changes nothing; the watch goes on.

use crate::reload::ConfigSource;
use crate::Reloader;
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long the files must be unchanged before a reload.
const QUIET: Duration = Duration::from_millis(300);

/// The directories to watch for `source`'s config (its own and its includes').
fn watched_dirs(source: &ConfigSource, includes: &[String]) -> BTreeSet<PathBuf> {
    let cwd = source
        .opts
        .cwd
        .clone()
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    let abs = |p: &Path| {
        if p.is_absolute() {
            p.to_owned()
        } else {
            cwd.join(p)
        }
    };
    let mut dirs = BTreeSet::new();
    if let Some(d) = abs(&source.path).parent() {
        dirs.insert(d.to_owned());
    }
    for inc in includes {
        if let Some(d) = abs(Path::new(inc)).parent() {
            dirs.insert(d.to_owned());
        }
    }
    dirs
}

/// Starts watching; the task ends when `token` is cancelled.
pub(crate) fn spawn(
    source: ConfigSource,
    reloader: Reloader,
    token: CancellationToken,
) -> notify::Result<()> {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            if !ev.kind.is_access() {
                // A full channel already means "something changed".
                let _ = tx.try_send(());
            }
        }
    })?;
    let mut dirs = watched_dirs(&source, &reloader.current().includes);
    for d in &dirs {
        watcher.watch(d, RecursiveMode::NonRecursive)?;
    }
    info!(file = %source.path.display(), "watching config for changes");
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                got = rx.recv() => if got.is_none() { break },
            }
            // Debounce: wait until nothing changed for QUIET.
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    got = tokio::time::timeout(QUIET, rx.recv()) => match got {
                        Ok(Some(())) => continue,
                        Ok(None) => return,
                        Err(_) => break,
                    },
                }
            }
            match source.reload(&reloader, source.opts.strict) {
                Ok(()) => {
                    // Includes may have moved: follow the new set of directories.
                    let now = watched_dirs(&source, &reloader.current().includes);
                    for d in now.difference(&dirs) {
                        if let Err(e) = watcher.watch(d, RecursiveMode::NonRecursive) {
                            warn!(dir = %d.display(), error = %e, "cannot watch include directory");
                        }
                    }
                    for d in dirs.difference(&now) {
                        let _ = watcher.unwatch(d);
                    }
                    dirs = now;
                }
                Err(e) => {
                    warn!(file = %source.path.display(), error = %e, "config changed but not applied; the running config stays")
                }
            }
        }
        debug!("config watch stopped");
    });
    Ok(())
}
