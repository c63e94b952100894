//! The real `frps` and `frpc` binaries, driven as a user would.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use tests::procs::*;
use tests::*;

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
    let reloaded = std::fs::canonicalize(&frpc_cfg).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("reload success: {}", reloaded.display())
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
    let mut line_rx = stderr_lines(&mut frpc);
    let at = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    wait_tunnel(at(ra)).await;

    // A new file in an included directory adds a proxy.
    write(&confd, "b.toml", &proxy("b", "localPort", rb));
    wait_tunnel(at(rb)).await;

    // A broken edit is reported and changes nothing.
    write(&dir, "frpc.toml", &main(proxy("a", "localPrt", rc)));
    let reported = wait_line(&mut line_rx, "not applied").await;
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

/// `udpPacketSize` over what one wire v1 message carries is said at start-up by both sides,
/// and a datagram dropped for it is warned about, not logged at debug only.
#[tokio::test]
async fn udp_packet_size_over_a_v1_message_is_reported_and_drops_are_warned() {
    let dir = tempdir("udpsize");
    let (mut frps, bind) = start_frps(&dir, "udpPacketSize = 10240\n").await;
    let mut frps_log = stderr_lines(&mut frps);
    let echo = echo_udp().await;
    let remote = free_port().await;
    let frpc_cfg = write(
        &dir,
        "frpc.toml",
        &format!(
            "serverAddr = \"127.0.0.1\"\nserverPort = {bind}\nudpPacketSize = 10240\n[[proxies]]\nname = \"u\"\ntype = \"udp\"\nlocalPort = {}\nremotePort = {remote}\n",
            echo.port()
        ),
    );
    let mut frpc = spawn("frpc", &["-c", &frpc_cfg]);
    let mut frpc_log = stderr_lines(&mut frpc);
    for log in [&mut frps_log, &mut frpc_log] {
        let l = wait_line(log, "udpPacketSize = 10240").await;
        assert!(l.contains("WARN") && l.contains("7611 bytes"), "{l}");
    }
    let user = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], remote));
    assert_eq!(udp_roundtrip(&user, target, b"small").await, b"small");
    user.send_to(&pattern(9000, 1), target).await.unwrap();
    let l = wait_line(&mut frps_log, "udp datagram dropped").await;
    assert!(l.contains("WARN") && l.contains("len=9000"), "{l}");
    assert_eq!(udp_roundtrip(&user, target, b"again").await, b"again");
    let _ = frpc.kill().await;
    let _ = frps.kill().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// frpc and frps disagree about `transport.tcpMux`: frps says which way in its log (it can tell
/// a message from a yamux header by the first bytes), and frpc's error names the setting
/// instead of a TLS library message.
#[tokio::test]
async fn tcp_mux_mismatch_is_explained_on_both_sides() {
    for frps_mux in [true, false] {
        let dir = tempdir("muxmismatch");
        let (mut frps, bind) = start_frps(&dir, &format!("transport.tcpMux = {frps_mux}\n")).await;
        let mut frps_log = stderr_lines(&mut frps);
        let frpc_cfg = write(
            &dir,
            "frpc.toml",
            &format!(
                "serverAddr = \"127.0.0.1\"\nserverPort = {bind}\ntransport.tcpMux = {}\n",
                !frps_mux
            ),
        );
        let out = run("frpc", &["-c", &frpc_cfg]).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains(&format!("transport.tcpMux (= {} here)", !frps_mux)),
            "frpc names the setting: {err}"
        );
        assert!(!err.contains("docs.rs"), "no library manual link: {err}");
        let want = if frps_mux {
            "the client sent a Login message without yamux: the client has transport.tcpMux = false but this frps has transport.tcpMux = true"
        } else {
            "the client speaks yamux: the client has transport.tcpMux = true but this frps has transport.tcpMux = false"
        };
        let l = wait_line(&mut frps_log, want).await;
        assert!(l.contains("WARN"), "{l}");
        let _ = frps.kill().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// An error's cause appears once in what the binaries print (thiserror variants that show
/// their cause do not also chain it as `source`, which `{:#}` would print again).
#[tokio::test]
async fn error_causes_are_printed_once() {
    let dir = tempdir("errtwice");
    let closed = free_port().await;
    let frpc_cfg = write(
        &dir,
        "frpc.toml",
        &format!("serverAddr = \"127.0.0.1\"\nserverPort = {closed}\n"),
    );
    let out = run("frpc", &["-c", &frpc_cfg]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.matches("Connection refused").count(), 1, "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let frps_cfg = write(
        &dir,
        "frps.toml",
        &format!("bindAddr = \"127.0.0.1\"\nbindPort = {port}\n"),
    );
    let out = run("frps", &["-c", &frps_cfg]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `frpc --watch` with `log.to` in the config's own directory: its log writes, and files that
/// are neither the config nor matched by its includes, never trigger a reload. A proxy whose
/// health check keeps failing writes a log line every second, a steady stream of writes in the
/// watched directory; after the one real edit, several of them pass with no reload.
#[tokio::test]
async fn frpc_watch_ignores_its_own_log_and_unrelated_files() {
    let dir = tempdir("watchlog");
    let echo = echo_tcp().await;
    let (ra, rb) = (free_port().await, free_port().await);
    let closed = free_port().await;
    let (_frps, bind) = start_frps(&dir, "").await;
    let log = dir.join("frpc.log");
    let proxy = |name: &str, port: u16, remote: u16| {
        format!("[[proxies]]\nname = \"{name}\"\ntype = \"tcp\"\nlocalPort = {port}\nremotePort = {remote}\n")
    };
    let sick = format!(
        "{}healthCheck.type = \"tcp\"\nhealthCheck.intervalSeconds = 1\n",
        proxy("sick", closed, 0)
    );
    let main = |extra: &str| {
        format!(
            "serverAddr = \"127.0.0.1\"\nserverPort = {bind}\nlog.to = \"{}\"\n{sick}{}{extra}",
            log.display(),
            proxy("a", echo.port(), ra)
        )
    };
    let frpc_cfg = write(&dir, "frpc.toml", &main(""));
    let mut frpc = spawn("frpc", &["-c", &frpc_cfg, "--watch"]);
    let at = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    wait_file(&log, "watch started", |t| t.contains("watching config")).await;
    wait_tunnel(at(ra)).await;

    // Neither an unrelated file nor the log is a reason to reload; the real edit is.
    write(&dir, "notes.txt", "not a config\n");
    write(&dir, "frpc.toml", &main(&proxy("b", echo.port(), rb)));
    wait_tunnel(at(rb)).await;
    let reloads = |t: &str| t.lines().filter(|l| l.contains("reloading config")).count();
    let failed_after_reload = |t: &str| {
        t.lines()
            .skip_while(|l| !l.contains("reloading config"))
            .filter(|l| l.contains("health check failed"))
            .count()
    };
    let text = wait_file(&log, "3 health-check lines after the reload", |t| {
        failed_after_reload(t) >= 3
    })
    .await;
    assert_eq!(
        reloads(&text),
        1,
        "exactly one reload, for the edit:\n{text}"
    );
    let _ = frpc.kill().await;
    let _ = std::fs::remove_dir_all(dir);
}
