//! The README's "Typical set-up", run as written: `examples/typical/make-certs.sh`, then frps and
//! frpc from `examples/typical/*.toml` (the same text as in the README) with token, TLS, the
//! dashboard API and Prometheus; only addresses, ports and paths are moved to the harness's.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::http::{request, BasicAuth};
use tests::procs::*;
use tests::*;
use tokio::process::{Child, Command};

const ENVS: [(&str, &str); 2] = [
    ("FRP_TOKEN", "0123456789abcdef"),
    ("FRP_DASHBOARD_PASSWORD", "dash-pass"),
];

/// `text` with each `(from, to)` replaced; every `from` must be there (so the files and this
/// test cannot drift apart silently).
fn adapt(text: &str, subs: &[(&str, String)]) -> String {
    subs.iter().fold(text.to_owned(), |t, (from, to)| {
        assert!(t.contains(from), "{from:?} not in the example config");
        t.replace(from, to)
    })
}

fn command(bin_name: &str, args: &[&str]) -> Command {
    let mut c = Command::new(bin(bin_name));
    c.args(args).envs(ENVS).kill_on_drop(true);
    c
}

async fn ok(bin_name: &str, args: &[&str]) -> String {
    let out = tokio::time::timeout(PATIENCE, command(bin_name, args).output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{bin_name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start(bin_name: &str, cfg: &str) -> Child {
    command(bin_name, &["-c", cfg])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// The README shows the example configs exactly as they are in `examples/typical/`.
#[test]
fn readme_shows_the_example_configs() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = readme
        .split("## Typical set-up")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a Typical set-up section");
    let blocks: Vec<String> = section
        .split("```toml\n")
        .skip(1)
        .map(|b| {
            let body = b.split("```").next().unwrap_or_default();
            body.lines()
                .map(|l| l.strip_prefix("   ").unwrap_or(l))
                .map(|l| format!("{}\n", l.trim_end()))
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect();
    for f in ["frps.toml", "frpc.toml"] {
        let file = std::fs::read_to_string(repo_root().join("examples/typical").join(f)).unwrap();
        assert!(
            blocks.iter().any(|b| *b == file.trim_end()),
            "README does not show examples/typical/{f} as it is"
        );
    }
}

#[tokio::test]
async fn typical_set_up_runs_as_written() {
    let dir = tempdir("typical");
    let etc = format!("{}/", dir.display());
    let out = Command::new("bash")
        .arg(repo_root().join("examples/typical/make-certs.sh"))
        .args(["frps.example.com", &dir.display().to_string()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "make-certs.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (bind, dash, admin, remote) = (
        free_port().await,
        free_port().await,
        free_port().await,
        free_port().await,
    );
    let ssh = echo_tcp().await; // stands in for the SSH server
    let read =
        |f: &str| std::fs::read_to_string(repo_root().join("examples/typical").join(f)).unwrap();
    let frps_text = adapt(
        &read("frps.toml"),
        &[
            (
                "bindPort = 7000",
                format!(
                    "bindAddr = \"127.0.0.1\"\nproxyBindAddr = \"127.0.0.1\"\nbindPort = {bind}"
                ),
            ),
            ("/etc/frp/", etc.clone()),
            (
                "allowPorts = [{ start = 6000, end = 6100 }]",
                format!("allowPorts = [{{ single = {remote} }}]"),
            ),
            ("webServer.port = 7500", format!("webServer.port = {dash}")),
            ("/var/log/frps.log", format!("{etc}frps.log")),
        ],
    );
    let frpc_text = adapt(
        &read("frpc.toml"),
        &[
            // The certificate is for frps.example.com; the test's frps is on 127.0.0.1.
            (
                "serverAddr = \"frps.example.com\"",
                "serverAddr = \"127.0.0.1\"\ntransport.tls.serverName = \"frps.example.com\""
                    .into(),
            ),
            ("serverPort = 7000", format!("serverPort = {bind}")),
            ("/etc/frp/", etc.clone()),
            ("webServer.port = 7400", format!("webServer.port = {admin}")),
            ("localPort = 22", format!("localPort = {}", ssh.port())),
            ("remotePort = 6000", format!("remotePort = {remote}")),
        ],
    );
    let frps_cfg = write(&dir, "frps.toml", &frps_text);
    let frpc_cfg = write(&dir, "frpc.toml", &frpc_text);
    ok("frps", &["verify", "-c", &frps_cfg]).await;
    ok("frpc", &["verify", "-c", &frpc_cfg]).await;

    let _frps = start("frps", &frps_cfg);
    wait_listening(([127, 0, 0, 1], bind).into()).await;
    let _frpc = start("frpc", &frpc_cfg);
    let entry = std::net::SocketAddr::from(([127, 0, 0, 1], remote));
    wait_tunnel(entry).await;

    let status = ok("frpc", &["status", "-c", &frpc_cfg]).await;
    let row = status
        .lines()
        .find(|l| l.starts_with("ssh"))
        .unwrap_or_default();
    assert!(row.contains("running"), "{status}");

    let auth = BasicAuth {
        user: "admin".into(),
        password: "dash-pass".into(),
    };
    let get = |path: &'static str| {
        let auth = auth.clone();
        async move {
            request(
                &format!("127.0.0.1:{dash}"),
                &auth,
                hyper::Method::GET,
                path,
                Default::default(),
            )
            .await
            .unwrap()
        }
    };
    let (code, body) = get("/api/serverinfo").await;
    assert!(code.is_success(), "{code} {body}");
    let (code, metrics) = get("/metrics").await;
    assert!(
        code.is_success() && metrics.contains("frp_server_client_counts 1"),
        "{metrics}"
    );
    let log = std::fs::read_to_string(dir.join("frps.log")).unwrap();
    assert!(log.contains("frps started"), "{log}");
    assert!(
        !log.contains("0123456789abcdef") && !log.contains("dash-pass"),
        "no secret in the log"
    );
    let _ = std::fs::remove_dir_all(dir);
}
