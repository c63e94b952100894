//! The real `frps` and `frpc` binaries, driven as a user would.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::Stdio;
use tests::*;
use tokio::process::{Child, Command};

fn spawn(name: &str, args: &[&str]) -> Child {
    Command::new(bin(name))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn")
}

async fn run(name: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(bin(name))
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(PATIENCE, out)
        .await
        .expect("exits in time")
        .expect("run")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "frp-rs-{tag}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts the real frps on a free port with `extra` config lines; returns it and its port.
async fn start_frps(dir: &Path, extra: &str) -> (Child, u16) {
    let bind = free_port().await;
    let cfg = write(
        dir,
        "frps.toml",
        &format!("bindAddr = \"127.0.0.1\"\nbindPort = {bind}\n{extra}"),
    );
    let frps = spawn("frps", &["-c", &cfg]);
    wait_listening(([127, 0, 0, 1], bind).into()).await;
    (frps, bind)
}

#[tokio::test]
async fn tunnel_through_real_binaries() {
    for tcp_mux in [true, false] {
        let dir = tempdir("bin");
        let bind = free_port().await;
        let remote = free_port().await;
        let echo = echo_tcp().await;
        let frps_cfg = write(&dir, "frps.toml", &format!("bindAddr = \"127.0.0.1\"\nbindPort = {bind}\nauth.token = \"s3cret\"\ntransport.tcpMux = {tcp_mux}\n"));
        let frpc_cfg = write(
            &dir,
            "frpc.toml",
            &format!(
                "serverAddr = \"127.0.0.1\"\nserverPort = {bind}\nauth.token = \"s3cret\"\ntransport.tcpMux = {tcp_mux}\n\n[[proxies]]\nname = \"echo\"\ntype = \"tcp\"\nlocalIP = \"127.0.0.1\"\nlocalPort = {}\nremotePort = {remote}\n",
                echo.port()
            ),
        );
        let _frps = spawn("frps", &["-c", &frps_cfg]);
        wait_listening(([127, 0, 0, 1], bind).into()).await;
        let _frpc = spawn("frpc", &["-c", &frpc_cfg]);
        let entry = std::net::SocketAddr::from(([127, 0, 0, 1], remote));
        wait_tunnel(entry).await;
        let data = pattern(2 * 1024 * 1024, 7);
        assert!(echo_through(entry, &data).await == data);
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test]
async fn frps_runs_from_flags_without_a_file() {
    let bind = free_port().await;
    let remote = free_port().await;
    let echo = echo_tcp().await;
    let _frps = spawn(
        "frps",
        &[
            "--bind_addr",
            "127.0.0.1",
            "--bind_port",
            &bind.to_string(),
            "-t",
            "tok",
        ],
    );
    wait_listening(([127, 0, 0, 1], bind).into()).await;
    let dir = tempdir("flags");
    let frpc_cfg = write(
        &dir,
        "frpc.toml",
        &format!("serverPort = {bind}\nserverAddr = \"127.0.0.1\"\nauth.token = \"tok\"\n[[proxies]]\nname = \"e\"\ntype = \"tcp\"\nlocalPort = {}\nremotePort = {remote}\n", echo.port()),
    );
    let _frpc = spawn("frpc", &["-c", &frpc_cfg]);
    wait_tunnel(([127, 0, 0, 1], remote).into()).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn wrong_token_makes_frpc_exit_with_the_reason() {
    let dir = tempdir("token");
    let bind = free_port().await;
    let frps_cfg = write(
        &dir,
        "frps.toml",
        &format!("bindAddr = \"127.0.0.1\"\nbindPort = {bind}\nauth.token = \"right\"\n"),
    );
    let frpc_cfg = write(
        &dir,
        "frpc.toml",
        &format!("serverAddr = \"127.0.0.1\"\nserverPort = {bind}\nauth.token = \"wrong\"\n"),
    );
    let _frps = spawn("frps", &["-c", &frps_cfg]);
    // frps may still be starting: loginFailExit makes each try final, so try until it is up.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let out = run("frpc", &["-c", &frpc_cfg]).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        if err.contains("token in login doesn't match token from configuration") {
            assert!(
                !err.contains("right") && !err.contains("wrong\""),
                "no secret in output: {err}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "frpc never got the token error: {err}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn verify_subcommands() {
    let dir = tempdir("verify");
    let good = write(&dir, "frpc.toml", "serverAddr = \"127.0.0.1\"\n[[proxies]]\nname = \"a\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 6000\n");
    let out = run("frpc", &["verify", "-c", &good]).await;
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("frpc: the configuration file {good} syntax is ok")
    );

    let bad = write(
        &dir,
        "bad.toml",
        "serverAddr = \"127.0.0.1\"\n[[proxies]]\nname = \"a\"\ntype = \"tcp\"\nlocalPrt = 22\n",
    );
    let out = run("frpc", &["verify", "-c", &bad]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{bad}:5:1: proxies[0].localPrt: unknown field \"localPrt\", did you mean \"localPort\"?")),
        "{err}"
    );

    let s = write(&dir, "frps.toml", "bindPort = 7000\n");
    let out = run("frps", &["verify", "-c", &s]).await;
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("frps: the configuration file {s} syntax is ok")
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn shipped_conf_files_verify() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (b, f) in [
        ("frps", "conf/frps.toml"),
        ("frpc", "conf/frpc.toml"),
        ("frps", "conf/frps_website.toml"),
        ("frpc", "conf/frpc_website.toml"),
    ] {
        let p = root.join(f).display().to_string();
        let out = run(b, &["verify", "-c", &p]).await;
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn frps_own_configs_verify_like_frp() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../common/tests/fixtures/frp-conf");
    for (b, f) in [
        ("frpc", "frpc.toml"),
        ("frpc", "frpc_full_example.toml"),
        ("frps", "frps.toml"),
        ("frps", "frps_full_example.toml"),
        ("frpc", "frpc_legacy_full.ini"),
        ("frps", "frps_legacy_full.ini"),
    ] {
        let p = dir.join(f).display().to_string();
        let out = run(b, &["verify", "-c", &p]).await;
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{f}: {stderr}");
        assert_eq!(
            stdout.trim(),
            format!("{b}: the configuration file {p} syntax is ok")
        );
        if f.ends_with(".ini") {
            assert!(stderr.contains("deprecated"), "{f}: {stderr}");
        }
        assert!(
            !stderr.contains("12345678") && !stdout.contains("12345678"),
            "no token in verify output"
        );
    }
}

#[tokio::test]
async fn quick_start_subcommand_runs_a_tunnel() {
    let remote = free_port().await;
    let echo = echo_tcp().await;
    let dir = tempdir("quick");
    let (_frps, bind) = start_frps(&dir, "auth.token = \"qs\"\n").await;
    let (b, l, r) = (
        bind.to_string(),
        echo.port().to_string(),
        remote.to_string(),
    );
    let _frpc = spawn(
        "frpc",
        &[
            "tcp",
            "-s",
            "127.0.0.1",
            "-P",
            &b,
            "-t",
            "qs",
            "-n",
            "quick",
            "-l",
            &l,
            "-r",
            &r,
        ],
    );
    wait_tunnel(([127, 0, 0, 1], remote).into()).await;
    // A quick-start mistake is reported like a config mistake.
    let out = run("frpc", &["http", "-s", "127.0.0.1", "-n", "w", "-l", "80"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("custom domains and subdomain should set at least one of them"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn frpc_status_reload_and_stop_commands() {
    let dir = tempdir("admin");
    let admin = free_port().await;
    let echo = echo_tcp().await;
    let (r1, r2) = (free_port().await, free_port().await);
    let (_frps, bind) = start_frps(&dir, "").await;
    let frpc_text = |remote: u16| {
        format!(
            "serverAddr = \"127.0.0.1\"\nserverPort = {bind}\nwebServer.addr = \"127.0.0.1\"\nwebServer.port = {admin}\nwebServer.user = \"u\"\nwebServer.password = \"p\"\n[[proxies]]\nname = \"echo\"\ntype = \"tcp\"\nlocalPort = {}\nremotePort = {remote}\n",
            echo.port()
        )
    };
    let frpc_cfg = write(&dir, "frpc.toml", &frpc_text(r1));
    let mut frpc = spawn("frpc", &["-c", &frpc_cfg]);
    wait_tunnel(([127, 0, 0, 1], r1).into()).await;

    let out = run("frpc", &["status", "-c", &frpc_cfg]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains("TCP") && table.contains("RemoteAddr"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("echo"))
        .unwrap_or_default();
    assert!(
        row.contains("running") && row.contains(&format!("127.0.0.1:{r1}")),
        "{table}"
    );

    write(&dir, "frpc.toml", &frpc_text(r2));
    let out = run("frpc", &["reload", "-c", &frpc_cfg]).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "reload success"
    );
    wait_tunnel(([127, 0, 0, 1], r2).into()).await;

    let out = run("frpc", &["stop", "-c", &frpc_cfg]).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "stop success");
    let status = tokio::time::timeout(PATIENCE, frpc.wait())
        .await
        .expect("frpc exits after stop")
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn frpc_watch_reloads_on_edit_and_ignores_a_broken_one() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempdir("watch");
    let echo = echo_tcp().await;
    let (ra, rb, rc) = (free_port().await, free_port().await, free_port().await);
    let (_frps, bind) = start_frps(&dir, "").await;
    let confd = dir.join("conf.d");
    std::fs::create_dir_all(&confd).unwrap();
    let proxy = |name: &str, key: &str, remote: u16| {
        format!(
            "[[proxies]]\nname = \"{name}\"\ntype = \"tcp\"\n{key} = {}\nremotePort = {remote}\n",
            echo.port()
        )
    };
    let main = |body: String| {
        format!(
            "serverAddr = \"127.0.0.1\"\nserverPort = {bind}\nincludes = [\"{}/*.toml\"]\n{body}",
            confd.display()
        )
    };
    let frpc_cfg = write(&dir, "frpc.toml", &main(proxy("a", "localPort", ra)));
    let mut frpc = spawn("frpc", &["-c", &frpc_cfg, "--watch"]);
    let mut lines = tokio::io::BufReader::new(frpc.stderr.take().unwrap()).lines();
    let (line_tx, mut line_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            let _ = line_tx.send(l);
        }
    });
    let at = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    wait_tunnel(at(ra)).await;

    // A new file in an included directory adds a proxy.
    write(&confd, "b.toml", &proxy("b", "localPort", rb));
    wait_tunnel(at(rb)).await;

    // A broken edit is reported and changes nothing.
    write(&dir, "frpc.toml", &main(proxy("a", "localPrt", rc)));
    let reported = tokio::time::timeout(PATIENCE, async {
        while let Some(l) = line_rx.recv().await {
            if l.contains("not applied") {
                return l;
            }
        }
        String::new()
    })
    .await
    .expect("the broken edit is reported");
    assert!(reported.contains("localPrt"), "{reported}");
    for port in [ra, rb] {
        let data = pattern(4096, u64::from(port));
        assert!(
            echo_through(at(port), &data).await == data,
            "port {port} still works"
        );
    }

    // Fixing it applies the change.
    write(&dir, "frpc.toml", &main(proxy("a", "localPort", rc)));
    wait_tunnel(at(rc)).await;
    let _ = frpc.kill().await;
    let _ = std::fs::remove_dir_all(dir);
}
