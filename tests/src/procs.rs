//! The real `frps` and `frpc` binaries as processes: start, run to completion, config files in a
//! scratch directory, and bounded waits on what they write.

use crate::{bin, free_port, PATIENCE};
use std::path::Path;
use std::process::Stdio;
use tokio::process::{Child, Command};

/// Starts `name` (frps, frpc) with `args`; stderr is piped, and the process dies with the handle.
pub fn spawn(name: &str, args: &[&str]) -> Child {
    Command::new(bin(name))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn")
}

/// Runs `name` with `args` to completion (bounded by [`PATIENCE`]).
pub async fn run(name: &str, args: &[&str]) -> std::process::Output {
    crate::run_bin(name, args).await
}

/// Writes `dir/name`; returns its path as text, for a command line.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p.display().to_string()
}

/// A fresh scratch directory.
pub fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "frp-rs-{tag}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).expect("create scratch directory");
    d
}

/// Starts the real frps on a free port with `extra` config lines; returns it and its port.
///
/// Test binaries run in parallel processes, so a port from [`free_port`] can be taken by
/// another process before frps binds it: then frps exits, or another process's listener
/// answers on that port. So frps counts as started only once the socket listening on the
/// port is one of its own descriptors; if it exits first, it is started again on another port.
pub async fn start_frps(dir: &Path, extra: &str) -> (Child, u16) {
    const ATTEMPTS: usize = 5;
    for _ in 0..ATTEMPTS {
        let bind = free_port().await;
        let cfg = write(
            dir,
            "frps.toml",
            &format!("bindAddr = \"127.0.0.1\"\nbindPort = {bind}\n{extra}"),
        );
        let mut frps = spawn("frps", &["-c", &cfg]);
        if listens(&mut frps, bind).await {
            return (frps, bind);
        }
    }
    panic!("frps exited at start on {ATTEMPTS} free ports in a row");
}

/// Waits (within [`PATIENCE`]) until `child` itself listens on TCP `port` (true) or exits
/// (false).
pub async fn listens(child: &mut Child, port: u16) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        if child.id().is_some_and(|pid| owns_listener(pid, port)) {
            return true;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the process never listened on port {port}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Whether process `pid` holds the socket listening on TCP `port` (from /proc: the listening
/// socket's inode among the process's descriptors).
fn owns_listener(pid: u32, port: u16) -> bool {
    let mut sockets = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && *state == "0A" {
                sockets.push(format!("socket:[{inode}]"));
            }
        }
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|l| sockets.iter().any(|s| l.as_os_str() == s.as_str()))
    })
}

/// Waits until the text of `file` satisfies `done`; returns that text.
pub async fn wait_file(file: &Path, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if done(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not in {} within {PATIENCE:?}:\n{text}",
            file.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The repository's root (README, conf/, examples/).
pub fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A finished command's standard output, as text.
pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A finished command's standard error, as text.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The child's stderr, line by line (it must have been spawned with a piped stderr).
pub fn stderr_lines(child: &mut Child) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    use tokio::io::AsyncBufReadExt;
    let mut lines =
        tokio::io::BufReader::new(child.stderr.take().expect("spawned with a piped stderr"))
            .lines();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            let _ = tx.send(l);
        }
    });
    rx
}

/// The first line that contains `needle`, within [`PATIENCE`].
pub async fn wait_line(
    lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    needle: &str,
) -> String {
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(l) = lines.recv().await {
            if l.contains(needle) {
                return Some(l);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(l)) => l,
        _ => panic!("no line with {needle:?} in time"),
    }
}
