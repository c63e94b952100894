//! What the binaries tell a user when something is wrong or worth knowing: each message names
//! what it is about (the address tried, the file, the config key) and what to do.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use tests::procs::*;
use tests::*;

/// `frpc status` with no frpc running: which address, and the two likely reasons.
#[tokio::test]
async fn status_without_a_running_frpc_names_the_address() {
    let dir = tempdir("msg-status");
    let admin = free_port().await;
    let cfg = write(
        &dir,
        "frpc.toml",
        &format!("serverPort = 7000\nwebServer.addr = \"127.0.0.1\"\nwebServer.port = {admin}\n"),
    );
    let out = run("frpc", &["status", "-c", &cfg]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    for want in [
        format!("127.0.0.1:{admin}").as_str(),
        "frpc may not be running",
        "webServer",
        "refused",
    ] {
        assert!(err.contains(want), "{want:?} in {err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `log.to` in a directory that does not exist: the path is named.
#[tokio::test]
async fn log_file_in_a_missing_directory_is_named() {
    let dir = tempdir("msg-log");
    let log = dir.join("no-such-dir").join("frp.log");
    let log_line = format!("log.to = \"{}\"\n", log.display());
    let frpc = write(&dir, "frpc.toml", &format!("serverPort = 1\n{log_line}"));
    let frps = write(
        &dir,
        "frps.toml",
        &format!("bindPort = 0\nbindAddr = \"127.0.0.1\"\n{log_line}"),
    );
    for (bin, cfg) in [("frpc", &frpc), ("frps", &frps)] {
        let out = run(bin, &["-c", cfg]).await;
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains(&log.display().to_string()) && err.contains("log.to"),
            "{bin}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// frps says at start which config file it uses (or that it runs from flags).
#[tokio::test]
async fn frps_logs_its_config_file() {
    let dir = tempdir("msg-frps");
    let log = dir.join("frps.log");
    let (_frps, _) = start_frps(&dir, &format!("log.to = \"{}\"\n", log.display())).await;
    let cfg = dir.join("frps.toml").display().to_string();
    let text = wait_file(&log, "config file line", |t| {
        t.contains("frps uses config file")
    })
    .await;
    let line = text
        .lines()
        .find(|l| l.contains("frps uses config file"))
        .unwrap();
    assert!(line.contains(" INFO ") && line.contains(&cfg), "{line}");

    let bind = free_port().await;
    let log2 = dir.join("flags.log");
    let _flags = spawn(
        "frps",
        &[
            "--bind_addr",
            "127.0.0.1",
            "-p",
            &bind.to_string(),
            "--log_file",
            &log2.display().to_string(),
        ],
    );
    wait_file(&log2, "flags line", |t| {
        t.contains("frps uses command line arguments for config")
    })
    .await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A failed `frpc reload` is logged by the running frpc too, with the reason.
#[tokio::test]
async fn failed_reload_is_logged_by_frpc() {
    let dir = tempdir("msg-reload");
    let (_frps, bind) = start_frps(&dir, "").await;
    let admin = free_port().await;
    let log = dir.join("frpc.log");
    let text = |extra: &str| {
        format!(
            "serverAddr = \"127.0.0.1\"\nserverPort = {bind}\nlog.to = \"{}\"\nwebServer.addr = \"127.0.0.1\"\nwebServer.port = {admin}\n{extra}",
            log.display()
        )
    };
    let cfg = write(&dir, "frpc.toml", &text(""));
    let _frpc = spawn("frpc", &["-c", &cfg]);
    wait_file(&log, "admin API up", |t| t.contains("admin API listening")).await;
    wait_listening(([127, 0, 0, 1], admin).into()).await;
    write(&dir, "frpc.toml", &text("noSuchKey = 1\n"));
    // What `frpc reload` asks of the running frpc (the command itself would already refuse
    // to read the broken file).
    let (code, body) = common::http::request(
        &format!("127.0.0.1:{admin}"),
        &Default::default(),
        hyper::Method::GET,
        "/api/reload?strictConfig=true",
        Default::default(),
    )
    .await
    .unwrap();
    assert!(
        !code.is_success() && body.contains("noSuchKey"),
        "{code} {body}"
    );
    let logged = wait_file(&log, "reload failure", |t| t.contains("reload failed")).await;
    let line = logged
        .lines()
        .find(|l| l.contains("reload failed"))
        .unwrap();
    assert!(
        line.contains(" WARN ") && line.contains("noSuchKey"),
        "{line}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A bad `includes` entry names the config file it is in, and its directory once.
#[tokio::test]
async fn bad_include_names_the_config_file() {
    let dir = tempdir("msg-include");
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    let d = dir.display().to_string();
    for (i, (entry, want)) in [
        (format!("{d}/./missing/*.toml"), "include directory"),
        (format!("{d}/conf.d/[.toml"), "bad include pattern"),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("frpc{i}.toml");
        let cfg = write(
            &dir,
            &name,
            &format!("serverPort = 7000\nincludes = [\"{entry}\"]\n"),
        );
        let out = run("frpc", &["verify", "-c", &cfg]).await;
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.starts_with(&cfg), "names {cfg}: {err}");
        assert!(err.contains("includes[0]") && err.contains(want), "{err}");
        // The config's path, and the include directory once (a bad pattern names only itself).
        let dirs = if want == "include directory" { 2 } else { 1 };
        assert_eq!(err.matches(&d).count(), dirs, "{err}");
        assert!(!err.contains("/./"), "{err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Certificate and token files that are missing or unusable: the key and the path are named.
#[tokio::test]
async fn certificate_and_token_files_name_key_and_path() {
    let dir = tempdir("msg-files");
    let garbage = write(&dir, "garbage.pem", "not a certificate\n");
    for (bin, body, key, path) in [
        (
            "frps",
            "transport.tls.certFile = \"/no/cert.pem\"\ntransport.tls.keyFile = \"/no/key.pem\"\n",
            "transport.tls.certFile",
            "/no/cert.pem",
        ),
        (
            "frps",
            &format!(
                "transport.tls.certFile = \"{garbage}\"\ntransport.tls.keyFile = \"{garbage}\"\n"
            ),
            "transport.tls",
            garbage.as_str(),
        ),
        (
            "frps",
            "auth.tokenSource.type = \"file\"\nauth.tokenSource.file.path = \"/no/token\"\n",
            "auth.tokenSource",
            "/no/token",
        ),
        (
            "frpc",
            "transport.tls.trustedCaFile = \"/no/ca.pem\"\n",
            "transport.tls.trustedCaFile",
            "/no/ca.pem",
        ),
        (
            "frpc",
            &format!(
                "transport.tls.certFile = \"{garbage}\"\ntransport.tls.keyFile = \"{garbage}\"\n"
            ),
            "transport.tls",
            garbage.as_str(),
        ),
    ] {
        let port = free_port().await;
        let head = if bin == "frps" {
            format!("bindAddr = \"127.0.0.1\"\nbindPort = {port}\n")
        } else {
            format!("serverPort = {port}\n")
        };
        let cfg = write(&dir, &format!("{bin}.toml"), &format!("{head}{body}"));
        let out = run(bin, &["-c", &cfg]).await;
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains(key) && err.contains(path),
            "{bin} {key}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
