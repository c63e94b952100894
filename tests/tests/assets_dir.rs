//! `webServer.assetsDir` (frp `assets.Load`, `server/api_router.go`, `client/api_router.go`):
//! frps's dashboard and frpc's admin server serve that directory under `/static/` and redirect
//! `/` there, behind their Basic auth; nothing outside the directory is reachable. Real
//! binaries, a real HTTP client (hyper).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use tests::http_backend::{basic, get};
use tests::*;

/// An assets directory: index.html, app.js, a sub directory with its own index, and a
/// symlink to a file outside; a secret file beside the directory.
fn assets(dir: &std::path::Path) -> String {
    let a = dir.join("ui");
    std::fs::create_dir_all(a.join("sub")).unwrap();
    std::fs::write(a.join("index.html"), "<html>frp ui</html>").unwrap();
    std::fs::write(a.join("app.js"), "console.log(1)").unwrap();
    std::fs::write(a.join("sub/index.html"), "sub index").unwrap();
    std::fs::write(dir.join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(dir.join("secret.txt"), a.join("link.txt")).unwrap();
    // Sparse: larger than the limit without using the disk.
    std::fs::File::create(a.join("huge.bin"))
        .unwrap()
        .set_len(common::ui::MAX_ASSET + 1)
        .unwrap();
    a.display().to_string()
}

/// Checks one web server with assetsDir at `addr`, credentials u:p.
async fn check(addr: SocketAddr) {
    let auth = basic("u", "p");
    let h = [("authorization", auth.as_str())];
    let r = get(addr, "x", "/static/", &[]).await;
    assert_eq!(r.status, 401, "the assets are behind the web server's auth");
    let r = get(addr, "x", "/", &h).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.headers["location"], "/static/");
    let r = get(addr, "x", "/static/", &h).await;
    assert_eq!((r.status, &r.body[..]), (200, &b"<html>frp ui</html>"[..]));
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let r = get(addr, "x", "/static/app.js", &h).await;
    assert_eq!((r.status, &r.body[..]), (200, &b"console.log(1)"[..]));
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    let r = get(addr, "x", "/static/sub", &h).await;
    assert_eq!(
        r.status, 301,
        "a directory without its slash is redirected, as Go does"
    );
    assert_eq!(r.headers["location"], "/static/sub/");
    let r = get(addr, "x", "/static/sub/", &h).await;
    assert_eq!((r.status, &r.body[..]), (200, &b"sub index"[..]));
    assert_eq!(r.headers["content-type"], "text/html; charset=utf-8");
    for outside in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/sub/%2E%2E/%2e%2e/secret.txt",
        "/static/link.txt",
        "/static/nope.html",
        "/static/%zz",
    ] {
        let r = get(addr, "x", outside, &h).await;
        assert_eq!(r.status, 404, "{outside}");
        assert!(
            !String::from_utf8_lossy(&r.body).contains("secret"),
            "{outside}"
        );
    }
    let r = get(addr, "x", "/static/huge.bin", &h).await;
    assert_eq!(r.status, 500, "a file over the limit is refused, not read");
    // frp's API is still there beside the assets (frps: serverinfo, frpc: status).
    let api = [
        get(addr, "x", "/api/serverinfo", &h).await.status,
        get(addr, "x", "/api/status", &h).await.status,
    ];
    assert!(api.contains(&200), "{api:?}");
}

#[tokio::test]
async fn frps_and_frpc_serve_assets_dir_under_static() {
    init_log();
    let dir = procs::tempdir("assets-dir");
    let ui = assets(&dir);
    let web = free_port().await;
    let (_frps, port) = procs::start_frps(
        &dir,
        &format!(
            "auth.token = \"{TOKEN}\"\nwebServer.addr = \"127.0.0.1\"\nwebServer.port = {web}\nwebServer.user = \"u\"\nwebServer.password = \"p\"\nwebServer.assetsDir = \"{ui}\"\n"
        ),
    )
    .await;
    wait_listening(SocketAddr::from(([127, 0, 0, 1], web))).await;
    check(SocketAddr::from(([127, 0, 0, 1], web))).await;

    let admin = free_port().await;
    let cfg = procs::write(
        &dir,
        "frpc.toml",
        &format!(
            "serverAddr = \"127.0.0.1\"\nserverPort = {port}\nauth.token = \"{TOKEN}\"\nwebServer.addr = \"127.0.0.1\"\nwebServer.port = {admin}\nwebServer.user = \"u\"\nwebServer.password = \"p\"\nwebServer.assetsDir = \"{ui}\"\n"
        ),
    );
    let out = procs::run("frpc", &["verify", "-c", &cfg]).await;
    let text = procs::stderr(&out) + &procs::stdout(&out);
    assert!(
        out.status.success() && !text.contains("assetsDir"),
        "{text}"
    );
    let _frpc = procs::spawn("frpc", &["-c", &cfg]);
    wait_listening(SocketAddr::from(([127, 0, 0, 1], admin))).await;
    check(SocketAddr::from(([127, 0, 0, 1], admin))).await;
    let _ = std::fs::remove_dir_all(dir);
}
