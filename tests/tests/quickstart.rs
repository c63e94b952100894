//! The README's quickstart (`examples/quickstart.sh` with `conf/`), run as a newcomer would, on
//! ports from the harness: it works, everything listens on 127.0.0.1 only, frps takes only
//! frpc's with the generated token, and frps's log has no error-looking line from the script's
//! readiness probes.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tests::procs::*;
use tests::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// The quickstart script with the harness's ports and binaries.
fn quickstart(ports: [u16; 3]) -> Command {
    let bin_dir = bin("frps").parent().unwrap().to_owned();
    let mut c = Command::new("bash");
    c.arg(repo_root().join("examples/quickstart.sh"))
        .env("FRP_SERVER_PORT", ports[0].to_string())
        .env("FRP_REMOTE_PORT", ports[1].to_string())
        .env("FRP_DEMO_PORT", ports[2].to_string())
        .env("FRP_BIN_DIR", bin_dir)
        .env_remove("FRP_TOKEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Listening TCP sockets on `port`: (address family 4 or 6, local address in /proc's hex).
fn listeners(port: u16) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    for (family, file) in [(4, "/proc/net/tcp"), (6, "/proc/net/tcp6")] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (f.get(1), f.get(3)) else {
                continue;
            };
            let Some((ip, p)) = local.split_once(':') else {
                continue;
            };
            if *state == "0A" && u16::from_str_radix(p, 16) == Ok(port) {
                out.push((family, ip.to_owned()));
            }
        }
    }
    out
}

#[tokio::test]
async fn quickstart_binds_loopback_only_and_requires_a_token() {
    let ports = [free_port().await, free_port().await, free_port().await];
    let mut script = quickstart(ports).spawn().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let mut errors = tokio::io::BufReader::new(script.stderr.take().unwrap()).lines();
    let collected = log.clone();
    let collector = tokio::spawn(async move {
        while let Ok(Some(l)) = errors.next_line().await {
            let mut t = collected.lock().unwrap();
            t.push_str(&l);
            t.push('\n');
        }
    });
    let mut out = tokio::io::BufReader::new(script.stdout.take().unwrap()).lines();
    let up = tokio::time::timeout(PATIENCE, async {
        while let Ok(Some(l)) = out.next_line().await {
            if l.starts_with("Tunnel is up") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        up,
        Ok(true),
        "quickstart did not come up:\n{}",
        log.lock().unwrap()
    );

    // The tunnel works.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", ports[1]))
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    tokio::time::timeout(PATIENCE, s.read_to_string(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert!(
        reply.contains("hello from the frp-rs demo backend"),
        "{reply}"
    );

    // frps, the tunnel and the backend listen on 127.0.0.1 only.
    for port in ports {
        let l = listeners(port);
        assert!(!l.is_empty(), "nothing listens on {port}");
        assert!(
            l.iter()
                .all(|(family, ip)| *family == 4 && ip == "0100007F"),
            "port {port} listens beyond 127.0.0.1: {l:?}"
        );
    }

    // An frpc without the token is refused.
    let out = run(
        "frpc",
        &[
            "tcp",
            "-s",
            "127.0.0.1",
            "-P",
            &ports[0].to_string(),
            "-n",
            "intruder",
            "-l",
            &ports[2].to_string(),
            "-r",
            "0",
        ],
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("token"), "{err}");

    // Stop the script (it stops what it started) and read everything frps and frpc logged.
    let pid = script.id().unwrap().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status().await;
    let _ = tokio::time::timeout(PATIENCE, script.wait()).await.unwrap();
    let _ = tokio::time::timeout(PATIENCE, collector).await;
    let text = log.lock().unwrap().clone();
    assert!(text.contains("frps started"), "frps logged:\n{text}");
    for bad in [
        "closing connection",
        "transport setup failed",
        "closed before sending anything",
    ] {
        assert!(
            !text.contains(bad),
            "{bad:?} in the quickstart's log:\n{text}"
        );
    }
}

/// A busy port is named, with the variable that moves it.
#[tokio::test]
async fn quickstart_says_which_port_is_busy() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let out = quickstart([free_port().await, port, free_port().await])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("port {port} (FRP_REMOTE_PORT) is already in use")),
        "{err}"
    );
    assert!(err.contains("FRP_REMOTE_PORT="), "{err}");
}

const QUICKSTART_VARS: [&str; 4] = [
    "FRP_TOKEN",
    "FRP_SERVER_PORT",
    "FRP_REMOTE_PORT",
    "FRP_DEMO_PORT",
];

/// `bin verify -c conf/file` with the quickstart's variables set to `values` (`None`: unset);
/// asserts success and returns what it printed on stderr.
async fn verify_shipped(b: &str, f: &str, values: [Option<&str>; 4]) -> String {
    let mut cmd = Command::new(bin(b));
    cmd.args(["verify", "-c", &repo_root().join(f).display().to_string()]);
    for (var, value) in QUICKSTART_VARS.iter().zip(values) {
        match value {
            Some(v) => cmd.env(var, v),
            None => cmd.env_remove(var),
        };
    }
    let out = cmd.output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{f} with {values:?}: {err}");
    err
}

/// The shipped configs verify with the variables the script sets, and by hand without them.
#[tokio::test]
async fn shipped_conf_files_verify() {
    for (b, f) in [("frps", "conf/frps.toml"), ("frpc", "conf/frpc.toml")] {
        verify_shipped(b, f, [Some("t"), Some("7000"), Some("6000"), Some("8080")]).await;
        // Without the quickstart's variables: frp's default ports (a missing variable is
        // false in `if`, as in Go's templates), and the missing ones named.
        let err = verify_shipped(b, f, [None; 4]).await;
        assert!(err.contains("FRP_TOKEN is not set"), "{err}");
    }
    // The website example (a domain through vhostHTTPPort) needs no variables.
    for (b, f) in [
        ("frps", "conf/frps_website.toml"),
        ("frpc", "conf/frpc_website.toml"),
    ] {
        verify_shipped(b, f, [None; 4]).await;
    }
}

/// A peer that opens a connection and closes it (a port probe), or fails the TLS handshake, is
/// no INFO event.
#[tokio::test]
async fn probes_and_failed_handshakes_are_not_logged_at_info() {
    let dir = tempdir("probe");
    let log = dir.join("frps.log");
    let (_frps, bind) = start_frps(&dir, &format!("log.to = \"{}\"\n", log.display())).await;
    // A probe, and a TLS ClientHello-looking start followed by garbage; each time frps closes
    // the connection after deciding (and logging) what it was.
    for bytes in [&b""[..], &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5][..]] {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", bind))
            .await
            .unwrap();
        s.write_all(bytes).await.unwrap();
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut rest))
            .await
            .unwrap();
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("frps started"), "{text}");
    assert!(!text.contains("closing connection"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The harness's frps start cannot be fooled by a port race between test processes (it once
/// made `probes_and_failed_handshakes_are_not_logged_at_info` flake): when another process
/// listens on frps's port, frps exits and is not taken for started although the port answers,
/// and `start_frps` moves on to another port.
#[tokio::test]
async fn a_port_taken_by_another_process_is_not_mistaken_for_frps() {
    let dir = tempdir("taken");
    // Not frps's listener: the kind of socket another test process might hold.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = other.local_addr().unwrap().port();
    let cfg = write(
        &dir,
        "frps.toml",
        &format!("bindAddr = \"127.0.0.1\"\nbindPort = {port}\n"),
    );
    let mut frps = spawn("frps", &["-c", &cfg]);
    assert!(
        !listens(&mut frps, port).await,
        "frps cannot have bound a port another process listens on"
    );
    let (mut frps, bind) = start_frps(&dir, "").await;
    assert_ne!(bind, port);
    assert!(listens(&mut frps, bind).await);
    drop(other);
    let _ = std::fs::remove_dir_all(dir);
}
