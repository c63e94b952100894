//! The binaries as processes: a closed stdout ends every command quietly (issue 12 item 7),
//! `frpc reload` says which file the running frpc reloaded and refuses another (issue 12 item
//! 6), and both binaries raise their open-files limit at start (issue 22 item 5).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Output, Stdio};
use tests::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::process::Command;

/// The write end of a pipe whose read end is already closed: writing to it fails with EPIPE,
/// as `frpc status | head -1` does once `head` has exited.
fn closed_pipe() -> Stdio {
    // Close-on-exec, so no child spawned meanwhile by another test keeps the read end open.
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    drop(read);
    Stdio::from(write)
}

async fn run_with(name: &str, args: &[&str], stdout: Stdio, stderr: Stdio) -> Output {
    // spawn + wait: tokio's `output()` would replace stdout and stderr with pipes of its own.
    let child = Command::new(bin(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("exits in time")
        .expect("wait")
}

/// Asserts a command whose stdout was closed ended quietly: no panic, no backtrace, and the
/// status of a success or of a process a closed pipe stopped (141 = 128 + SIGPIPE, as Go's).
fn quiet(what: &str, out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{what}: {err}");
    let code = out.status.code();
    assert!(
        matches!(code, Some(0) | Some(141)),
        "{what}: {code:?} {err}"
    );
}

/// An frpc config with its admin API on `admin`.
fn frpc_cfg(dir: &Path, name: &str, server: SocketAddr, admin: u16) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "serverAddr = \"127.0.0.1\"\nserverPort = {}\nauth.token = \"{TOKEN}\"\nloginFailExit = false\nwebServer.addr = \"127.0.0.1\"\nwebServer.port = {admin}\n",
            server.port()
        ),
    )
    .unwrap();
    p
}

#[tokio::test]
async fn a_closed_stdout_ends_every_command_quietly() {
    init_log();
    let dir = temp_dir("pipe");
    let frps = Frps::start(|_| {}).await;
    let admin = free_port().await;
    let cfg = frpc_cfg(&dir, "frpc.toml", frps.addr, admin);
    let frpc = Frpc::start_from_file(&cfg);
    wait_listening(([127, 0, 0, 1], admin).into()).await;
    let frps_cfg = dir.join("frps.toml");
    std::fs::write(&frps_cfg, "bindPort = 7000\n").unwrap();
    let (c, s) = (cfg.display().to_string(), frps_cfg.display().to_string());
    let commands: Vec<(&str, Vec<&str>)> = vec![
        ("frpc", vec!["verify", "-c", &c]),
        ("frpc", vec!["--help"]),
        ("frpc", vec!["--version"]),
        ("frpc", vec!["verify", "--help"]),
        ("frpc", vec!["status", "-c", &c]),
        ("frpc", vec!["reload", "-c", &c]),
        ("frps", vec!["verify", "-c", &s]),
        ("frps", vec!["--help"]),
        ("frps", vec!["--version"]),
        // Last: it stops the running frpc.
        ("frpc", vec!["stop", "-c", &c]),
    ];
    for (name, args) in commands {
        let out = run_with(name, &args, closed_pipe(), Stdio::piped()).await;
        quiet(&format!("{name} {args:?}"), &out);
    }
    // An error with both outputs closed: the failure status, no panic.
    let out = run_with(
        "frpc",
        &["verify", "-c", "/nonexistent/frpc.toml"],
        closed_pipe(),
        closed_pipe(),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let _ = frpc.exited().await;
    frps.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs `frpc reload -c cfg`, which must succeed; returns its stdout.
async fn reload_ok(cfg: &Path) -> String {
    let args = ["reload", "-c", &cfg.display().to_string()];
    let out = run_with("frpc", &args, Stdio::piped(), Stdio::piped()).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout} {stderr}");
    stdout
}

// --- issue 12 item 6: which file `frpc reload` reloaded ------------------------------------------

#[tokio::test]
async fn frpc_reload_names_the_file_and_refuses_another() {
    init_log();
    let dir = temp_dir("which");
    let frps = Frps::start(|_| {}).await;
    let admin = free_port().await;
    let running = frpc_cfg(&dir, "frpc.toml", frps.addr, admin);
    let other = frpc_cfg(&dir, "other.toml", frps.addr, admin);
    let frpc = Frpc::start_from_file(&running);
    wait_listening(([127, 0, 0, 1], admin).into()).await;
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap().display().to_string();

    let out = run_with(
        "frpc",
        &["reload", "-c", &other.display().to_string()],
        Stdio::piped(),
        Stdio::piped(),
    )
    .await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "reloading another file must fail: {text}"
    );
    assert!(
        text.contains(&canonical(&running)) && text.contains(&canonical(&other)),
        "{text}"
    );

    let stdout = reload_ok(&running).await;
    assert!(
        stdout.contains("reload success") && stdout.contains(&canonical(&running)),
        "{stdout}"
    );
    frpc.stop().await;
    frps.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn frpc_reload_against_an_frpc_that_does_not_say_which_file() {
    init_log();
    // A Go frpc answers a reload with 200 and an empty body, and ignores unknown parameters.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                if read_head(&mut s).await.is_none() {
                    return;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    let dir = temp_dir("gofrpc");
    let cfg = frpc_cfg(&dir, "frpc.toml", ([127, 0, 0, 1], 1).into(), admin);
    let stdout = reload_ok(&cfg).await;
    let asked = std::fs::canonicalize(&cfg).unwrap().display().to_string();
    assert!(
        stdout.contains("reload success") && stdout.contains(&asked),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `frpc status` against something that is not frpc's admin API, or with the wrong password,
/// says what is wrong instead of printing the page it got (or a bare "Unauthorized").
#[tokio::test]
async fn status_names_wrong_credentials_and_a_foreign_server() {
    init_log();
    for (answer, want) in [
        (
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: 12\r\nConnection: close\r\n\r\nUnauthorized",
            "check webServer.user and webServer.password",
        ),
        (
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 40\r\nConnection: close\r\n\r\n<html><body>nginx 404 page</body></html>",
            "a page that is not frpc's",
        ),
    ] {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                if read_head(&mut s).await.is_some() {
                    let _ = s.write_all(answer.as_bytes()).await;
                }
            }
        });
        let dir = temp_dir("foreign");
        let cfg = frpc_cfg(&dir, "frpc.toml", ([127, 0, 0, 1], 1).into(), admin);
        let out = run_with(
            "frpc",
            &["status", "-c", &cfg.display().to_string()],
            Stdio::piped(),
            Stdio::piped(),
        )
        .await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains(want), "{err}");
        assert!(!err.contains("<html>"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

// --- issue 22 item 5: the open-files limit -----------------------------------------------------

/// (soft, hard) "Max open files" of a process.
fn nofile(pid: &str) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_owned();
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[3].to_owned(), f[4].to_owned())
}

#[tokio::test]
async fn both_binaries_raise_the_open_files_limit_to_the_hard_limit() {
    init_log();
    let (_, hard) = nofile("self");
    assert_ne!(hard, "256", "this test needs a hard limit above 256");
    let dir = temp_dir("nofile");
    let bind = free_port().await;
    let frps_cfg = dir.join("frps.toml");
    std::fs::write(
        &frps_cfg,
        format!("bindAddr = \"127.0.0.1\"\nbindPort = {bind}\n"),
    )
    .unwrap();
    let admin = free_port().await;
    let frpc_cfg = frpc_cfg(
        &dir,
        "frpc.toml",
        ([127, 0, 0, 1], free_port().await).into(),
        admin,
    );
    for (name, cfg, port) in [("frps", &frps_cfg, bind), ("frpc", &frpc_cfg, admin)] {
        // The shell lowers its soft limit and becomes the binary (same pid).
        let mut child = Command::new("sh")
            .args(["-c", "ulimit -Sn 256 && exec \"$0\" -c \"$1\""])
            .arg(bin(name))
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        wait_listening(([127, 0, 0, 1], port).into()).await;
        let pid = child.id().unwrap().to_string();
        assert_eq!(nofile(&pid), (hard.clone(), hard.clone()), "{name}");
        let _ = child.kill().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A running frps whose stdout and stderr are both closed (`frps ... >/dev/full 2>/dev/full`,
/// a service whose log pipe went away) keeps serving: a log line that cannot be written is
/// dropped. tracing-subscriber reports a failed write with `eprintln!`, which panicked.
#[tokio::test]
async fn a_service_with_closed_outputs_keeps_running() {
    let port = free_port().await;
    let mut frps = Command::new(bin("frps"))
        .args(["-p", &port.to_string(), "--bind_addr", "127.0.0.1"])
        .stdin(Stdio::null())
        .stdout(closed_pipe())
        .stderr(closed_pipe())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    wait_listening(([127, 0, 0, 1], port).into()).await;
    // A connection that sends garbage makes frps log (at debug and in its summary) and close it.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"garbage\r\n").await.unwrap();
    drop(s);
    wait_listening(([127, 0, 0, 1], port).into()).await;
    assert!(frps.try_wait().unwrap().is_none(), "frps exited");
    let _ = frps.kill().await;
}
