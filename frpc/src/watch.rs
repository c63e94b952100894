//! `frpc --watch`: reload when the config file or one of its `includes` changes (beyond frp).
//!
//! The directories holding the file and the include patterns are watched (not the files, so
//! editors that save by rename are seen), but only events on the config file itself or on a file
//! an include pattern matches count: frpc's own log, a redirected stdout or any other file in
//! those directories never triggers a reload (each reload logs a line, so a log in the watched
//! directory would otherwise reload forever). Events are debounced: the reload runs once the
//! files have been quiet for [`QUIET`]. A reload whose result equals the running config does
//! nothing (see [`ConfigSource::reload`]). A broken edit is logged and changes nothing; the
//! watch goes on.

use crate::reload::ConfigSource;
use crate::Reloader;
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long the files must be unchanged before a reload.
const QUIET: Duration = Duration::from_millis(300);

/// The files whose changes count: the config file and what its include patterns match, each as
/// (directory, file-name pattern), as the loader resolves them (`config::load` `load_includes`).
#[derive(Debug, Default)]
struct WatchSet {
    /// (canonical directory, pattern); the config file is an exact pattern.
    files: Vec<(PathBuf, glob::Pattern)>,
}

/// `p` with `.` components dropped and symlinks resolved where the path exists.
fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.components().collect())
}

impl WatchSet {
    fn new(source: &ConfigSource, includes: &[String]) -> Self {
        let cwd = source
            .opts
            .cwd
            .clone()
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_default();
        let config = (source.path.as_path(), None);
        let patterns = includes.iter().map(|i| (Path::new(i), Some(i)));
        let files = std::iter::once(config)
            .chain(patterns)
            .filter_map(|(p, include)| {
                let abs = cwd.join(p);
                let (dir, name) = (abs.parent()?, abs.file_name()?.to_str()?);
                let pattern = match include {
                    None => glob::Pattern::new(&glob::Pattern::escape(name)),
                    Some(_) => glob::Pattern::new(name),
                };
                // A bad pattern is reported by the loader; it matches nothing here.
                Some((canonical(dir), pattern.ok()?))
            })
            .collect();
        WatchSet { files }
    }

    /// The directories to watch.
    fn dirs(&self) -> BTreeSet<PathBuf> {
        self.files.iter().map(|(d, _)| d.clone()).collect()
    }

    /// Whether a change to `path` can change the config.
    fn matches(&self, path: &Path) -> bool {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
        else {
            return false;
        };
        let dir = canonical(dir);
        self.files
            .iter()
            .any(|(d, pattern)| *d == dir && pattern.matches(name))
    }
}

/// Starts watching; the task ends when `token` is cancelled.
pub(crate) fn spawn(
    source: ConfigSource,
    reloader: Reloader,
    token: CancellationToken,
) -> notify::Result<()> {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let set = Arc::new(Mutex::new(WatchSet::new(
        &source,
        &reloader.current().includes,
    )));
    let seen = set.clone();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let Ok(ev) = ev else { return };
        let set = seen.lock().unwrap_or_else(|p| p.into_inner());
        if !ev.kind.is_access() && ev.paths.iter().any(|p| set.matches(p)) {
            // A full channel already means "something changed".
            let _ = tx.try_send(());
        }
    })?;
    let mut dirs = set.lock().unwrap_or_else(|p| p.into_inner()).dirs();
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
                Ok(false) => {}
                Ok(true) => {
                    // Includes may have moved: follow the new set of files and directories.
                    let now = WatchSet::new(&source, &reloader.current().includes);
                    let now_dirs = now.dirs();
                    *set.lock().unwrap_or_else(|p| p.into_inner()) = now;
                    for d in now_dirs.difference(&dirs) {
                        if let Err(e) = watcher.watch(d, RecursiveMode::NonRecursive) {
                            warn!(dir = %d.display(), error = %e, "cannot watch include directory");
                        }
                    }
                    for d in dirs.difference(&now_dirs) {
                        let _ = watcher.unwatch(d);
                    }
                    dirs = now_dirs;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use common::config::LoadOptions;

    #[test]
    fn only_the_config_and_included_files_count() {
        let dir = std::env::temp_dir().join(format!("frpc-watchset-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        let source = ConfigSource {
            path: PathBuf::from("./frpc.toml"),
            opts: LoadOptions {
                cwd: Some(dir.clone()),
                ..LoadOptions::default()
            },
        };
        let set = WatchSet::new(&source, &["./conf.d/*.toml".to_owned()]);
        for (p, want) in [
            ("frpc.toml", true),
            ("./frpc.toml", true),
            ("frpc.log", false),
            ("frpc.toml.swp", false),
            ("notes.txt", false),
            ("conf.d/web.toml", true),
            ("conf.d/web.log", false),
            ("conf.d/../frpc.toml", true),
        ] {
            assert_eq!(set.matches(&dir.join(p)), want, "{p}");
        }
        assert_eq!(
            set.dirs(),
            BTreeSet::from([canonical(&dir), canonical(&dir.join("conf.d"))])
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
