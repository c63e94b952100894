//! frpc's admin API played by an attacker (issue 22) and compared with frp's (issue 12): what
//! arrives over the API is data (no command runs, no template renders, no file outside the
//! config and store is touched), the store file is written safely, a reload keeps the global
//! settings, and every endpoint answers as frp's `client/http` controller does.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::http::{request_with, Answer, BasicAuth};
use hyper::{Method, StatusCode};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tests::*;

/// An frpc config: globals (`extra` first, so dotted keys stay at the top level), then tcp
/// proxies to `local`.
fn frpc_text(frps: SocketAddr, admin: u16, extra: &str, proxies: &[(&str, SocketAddr)]) -> String {
    let mut s = format!(
        "serverAddr = \"127.0.0.1\"\nserverPort = {}\nauth.token = \"{TOKEN}\"\nwebServer.addr = \"127.0.0.1\"\nwebServer.port = {admin}\n{extra}\n",
        frps.port()
    );
    for (name, local) in proxies {
        s.push_str(&format!(
            "[[proxies]]\nname = \"{name}\"\ntype = \"tcp\"\nlocalIP = \"127.0.0.1\"\nlocalPort = {}\n\n",
            local.port()
        ));
    }
    s
}

/// An frps, an echo backend and an in-process frpc run from a file, with its admin API.
struct Setup {
    frps: Frps,
    frpc: Frpc,
    echo: SocketAddr,
    admin: u16,
    dir: PathBuf,
    file: PathBuf,
    store: PathBuf,
}

impl Setup {
    /// `extra` global lines; the store is on at `dir/store.json`; proxy `f` is in the file.
    async fn start(extra: &str) -> Setup {
        Setup::start_with(extra, |c| c).await
    }

    async fn start_with(extra: &str, f: impl FnOnce(frpc::Client) -> frpc::Client) -> Setup {
        init_log();
        let frps = Frps::start(|_| {}).await;
        let echo = echo_tcp().await;
        let admin = free_port().await;
        let dir = temp_dir("admin");
        let store = dir.join("store.json");
        let file = dir.join("frpc.toml");
        let extra = format!("store.path = {:?}\n{extra}", store.display().to_string());
        std::fs::write(&file, frpc_text(frps.addr, admin, &extra, &[("f", echo)])).unwrap();
        let frpc = Frpc::run(f(client_from_file(&file)));
        frpc.wait_running("f").await;
        Setup {
            frps,
            frpc,
            echo,
            admin,
            dir,
            file,
            store,
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.admin)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let headers: Vec<(&str, String)> =
            headers.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let (addr, auth) = (self.addr(), BasicAuth::default());
        let call = request_with(&addr, &auth, method, path, &headers, body.to_owned().into());
        tokio::time::timeout(PATIENCE, call).await.unwrap().unwrap()
    }

    /// A JSON call, as frp's web UI makes them.
    async fn json(&self, method: Method, path: &str, body: &str) -> Answer {
        self.call(method, path, &[("content-type", "application/json")], body)
            .await
    }

    async fn stop(self) {
        self.frpc.stop().await;
        self.frps.stop().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tcp_def(name: &str, local: SocketAddr, extra: serde_json::Value) -> String {
    let mut block = serde_json::json!({"localIP": "127.0.0.1", "localPort": local.port()});
    if let (Some(b), Some(e)) = (block.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    serde_json::json!({"name": name, "type": "tcp", "tcp": block}).to_string()
}

// --- issue 22 item 2: store bodies are data -------------------------------------------------

#[tokio::test]
async fn store_bodies_are_data_never_templates() {
    let s = Setup::start("").await;
    let literal = "{{ .Envs.HOME }} {{ parseNumberRange \"1-100000000000000\" }}";
    let def = tcp_def(
        "t",
        s.echo,
        serde_json::json!({"metadatas": {"secret": literal}}),
    );
    let a = s.json(Method::POST, "/api/store/proxies", &def).await;
    assert_eq!(a.code, StatusCode::OK, "{}", a.body);
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["tcp"]["metadatas"]["secret"], literal, "{v}");
    let a = s.call(Method::GET, "/api/store/proxies/t", &[], "").await;
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["tcp"]["metadatas"]["secret"], literal, "{v}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&s.store).unwrap()).unwrap();
    assert_eq!(
        saved["proxies"][0]["metadatas"]["secret"], literal,
        "stored literally: {saved}"
    );
    s.frpc.wait_running("t").await;
    s.stop().await;
}

// --- issue 22 item 10: the store file's temporary ---------------------------------------------

#[cfg(unix)]
#[tokio::test]
async fn store_temp_file_does_not_follow_a_planted_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::start("").await;
    let victim = s.dir.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let mut tmp = s.store.clone().into_os_string();
    tmp.push(".tmp");
    std::os::unix::fs::symlink(&victim, &tmp).unwrap();

    let a = s
        .json(
            Method::POST,
            "/api/store/proxies",
            &tcp_def("t", s.echo, serde_json::json!({})),
        )
        .await;
    assert_eq!(a.code, StatusCode::OK, "{}", a.body);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let meta = std::fs::symlink_metadata(&s.store).unwrap();
    assert!(meta.file_type().is_file(), "the store is a plain file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&s.store).unwrap().contains("\"t\""));
    assert!(!Path::new(&tmp).exists(), "no temporary left behind");
    s.stop().await;
}

// --- issue 22 item 1: nothing from the admin API runs a command or reads outside files --------

/// An `auth.tokenSource` running `sh -c script`.
fn exec_token(script: &str) -> String {
    format!(
        "auth.tokenSource.type = \"exec\"\nauth.tokenSource.exec.command = \"sh\"\nauth.tokenSource.exec.args = [\"-c\", {script:?}]\n"
    )
}

/// Waits until `/api/status` lists proxy `name`.
async fn wait_listed(admin: &str, name: &str) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let auth = BasicAuth::default();
    loop {
        let call =
            common::http::request(admin, &auth, Method::GET, "/api/status", Default::default());
        if let Ok(Ok((StatusCode::OK, body))) = tokio::time::timeout(PATIENCE, call).await {
            if body.contains(&format!("\"name\":\"{name}\"")) {
                return body;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never listed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn admin_api_cannot_run_commands_or_read_outside_files() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let admin = free_port().await;
    let dir = temp_dir("exec");
    let count = dir.join("count");
    let marker = dir.join("marker");
    // A directory the attacker wants read through `includes`.
    let outside = dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(
        outside.join("p.toml"),
        format!(
            "[[proxies]]\nname = \"included\"\ntype = \"tcp\"\nlocalPort = {}\n",
            echo.port()
        ),
    )
    .unwrap();

    let start = exec_token(&format!("echo run >> {}; printf {TOKEN}", count.display()));
    let file = dir.join("frpc.toml");
    let no_token = |t: String| t.replace(&format!("auth.token = \"{TOKEN}\"\n"), "");
    std::fs::write(
        &file,
        no_token(frpc_text(frps.addr, admin, &start, &[("a", echo)])),
    )
    .unwrap();
    let mut frpc = tokio::process::Command::new(bin("frpc"))
        .args([
            "-c",
            &file.display().to_string(),
            "--allow-unsafe",
            "TokenSourceExec",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{admin}");
    wait_listed(&addr, "a").await;

    let auth = BasicAuth::default();
    // A config with another command as its token source is refused: frpc would run it at its
    // next start (a service manager restarting it after `POST /api/stop`).
    let exec_attack = no_token(frpc_text(
        frps.addr,
        admin,
        &exec_token(&format!("touch {}; printf {TOKEN}", marker.display())),
        &[("a", echo), ("b", echo)],
    ));
    let (code, body) =
        common::http::request(&addr, &auth, Method::PUT, "/api/config", exec_attack.into())
            .await
            .unwrap();
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("auth.tokenSource cannot be changed"),
        "{body}"
    );
    // The running token source with other includes, and a certificate that is /dev/zero: the
    // file is written, and a reload reads neither.
    let attack = format!(
        "{start}includes = [{:?}]\ntransport.tls.trustedCaFile = \"/dev/zero\"\n",
        format!("{}/*.toml", outside.display())
    );
    let text = no_token(frpc_text(
        frps.addr,
        admin,
        &attack,
        &[("a", echo), ("b", echo)],
    ));
    let (code, body) = common::http::request(&addr, &auth, Method::PUT, "/api/config", text.into())
        .await
        .unwrap();
    assert_eq!(code, StatusCode::OK, "{body}");
    for _ in 0..2 {
        let (code, body) =
            common::http::request(&addr, &auth, Method::GET, "/api/reload", Default::default())
                .await
                .unwrap();
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    // The reload took the new proxy list (so the file was read and applied)...
    let status = wait_listed(&addr, "b").await;
    // ...but ran no command, and read no include it was not started with.
    assert!(!marker.exists(), "the admin API ran a command");
    assert!(!status.contains("included"), "the admin API read {status}");
    // `frpc status|reload` need only webServer: they run no token command either.
    for cmd in ["status", "reload"] {
        let out = run_bin(
            "frpc",
            &[
                cmd,
                "-c",
                &file.display().to_string(),
                "--allow-unsafe",
                "TokenSourceExec",
            ],
        )
        .await;
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        std::fs::read_to_string(&count).unwrap().lines().count(),
        1,
        "the start-up token command runs once, not on every reload or CLI call"
    );
    let _ = frpc.kill().await;
    frps.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

// --- issue 22 item 12: a reload keeps the global settings -----------------------------------

#[tokio::test]
async fn reload_keeps_global_settings_for_new_work_connections() {
    let s = Setup::start("").await;
    // The same file with another token and wire protocol, and a new encrypted proxy.
    let remote = free_port().await;
    let mut text = frpc_text(
        s.frps.addr,
        s.admin,
        &format!(
            "store.path = {:?}\ntransport.wireProtocol = \"v2\"\n",
            s.store.display().to_string()
        ),
        &[("f", s.echo)],
    )
    .replace(
        &format!("auth.token = \"{TOKEN}\""),
        "auth.token = \"changed\"",
    );
    text.push_str(&format!(
        "[[proxies]]\nname = \"enc\"\ntype = \"tcp\"\nlocalIP = \"127.0.0.1\"\nlocalPort = {}\nremotePort = {remote}\ntransport.useEncryption = true\n",
        s.echo.port()
    ));
    std::fs::write(&s.file, text).unwrap();
    let a = s.call(Method::GET, "/api/reload", &[], "").await;
    assert_eq!(a.code, StatusCode::OK, "{}", a.body);
    s.frpc.wait_running("enc").await;
    // The new proxy's work connections use the running token and wire protocol.
    let data = pattern(4096, 12);
    let entry = SocketAddr::from(([127, 0, 0, 1], remote));
    assert!(
        echo_through(entry, &data).await == data,
        "a reload changed auth.token or wireProtocol for new work connections"
    );
    s.stop().await;
}

// --- issue 12 item 9: every endpoint answers as frp's client/http controller ------------------

/// What an answer must be: status, and the body exactly, as JSON, or as frp's error's prefix.
enum Want {
    Exact(&'static str),
    Json(serde_json::Value),
    /// `{"Code": status, "Msg": m}` with `m` starting with this.
    ErrPrefix(&'static str),
    /// Any JSON object with these fields.
    Fields(serde_json::Value),
}

#[tokio::test]
async fn store_and_admin_endpoints_answer_as_frp() {
    use serde_json::json;
    let s = Setup::start("").await;
    let p = |name: &str, extra: serde_json::Value| tcp_def(name, s.echo, extra);
    let status_of = |code: u16| StatusCode::from_u16(code).unwrap();
    let cases: Vec<(Method, &str, String, u16, Want)> = vec![
        (
            Method::GET,
            "/api/reload",
            String::new(),
            200,
            Want::Exact(""),
        ),
        (
            Method::GET,
            "/api/proxy/nope/config",
            String::new(),
            404,
            Want::Json(json!({"Code": 404, "Msg": "proxy \"nope\" not found"})),
        ),
        (
            Method::GET,
            "/api/visitor/nope/config",
            String::new(),
            404,
            Want::Json(json!({"Code": 404, "Msg": "visitor \"nope\" not found"})),
        ),
        (
            Method::GET,
            "/api/proxy/f/config",
            String::new(),
            200,
            Want::Fields(json!({"name": "f", "type": "tcp"})),
        ),
        (
            Method::PUT,
            "/api/config",
            String::new(),
            400,
            Want::Json(json!({"Code": 400, "Msg": "body can't be empty"})),
        ),
        (
            Method::GET,
            "/api/store/proxies",
            String::new(),
            200,
            Want::Json(json!({"proxies": []})),
        ),
        (
            Method::GET,
            "/api/store/visitors",
            String::new(),
            200,
            Want::Json(json!({"visitors": []})),
        ),
        // frp's ProxyDefinition.Validate.
        (
            Method::POST,
            "/api/store/proxies",
            json!({"name": "u", "type": "tcp", "udp": {"localPort": 1}}).to_string(),
            400,
            Want::Json(
                json!({"Code": 400, "Msg": "proxy type block \"udp\" does not match type \"tcp\""}),
            ),
        ),
        (
            Method::POST,
            "/api/store/proxies",
            json!({"name": "u", "type": "tcp", "tcp": {"localPort": 1}, "udp": {"localPort": 1}})
                .to_string(),
            400,
            Want::Json(json!({"Code": 400, "Msg": "exactly one proxy type block is required"})),
        ),
        (
            Method::POST,
            "/api/store/proxies",
            json!({"name": "u", "type": "tcp"}).to_string(),
            400,
            Want::Json(json!({"Code": 400, "Msg": "exactly one proxy type block is required"})),
        ),
        (
            Method::POST,
            "/api/store/proxies",
            json!({"name": "u", "type": "ftp", "tcp": {}}).to_string(),
            400,
            Want::Json(json!({"Code": 400, "Msg": "invalid proxy type: ftp"})),
        ),
        (
            Method::POST,
            "/api/store/proxies",
            json!({"name": " ", "type": "tcp", "tcp": {}}).to_string(),
            400,
            Want::Json(json!({"Code": 400, "Msg": "proxy name is required"})),
        ),
        (
            Method::POST,
            "/api/store/proxies",
            "{not json".into(),
            400,
            Want::ErrPrefix("parse JSON error: "),
        ),
        (
            Method::POST,
            "/api/store/proxies",
            p("v", json!({"localPort": 70000})),
            400,
            Want::ErrPrefix("invalid argument: validation error: "),
        ),
        (
            Method::POST,
            "/api/store/visitors",
            json!({"name": "v", "type": "tcp", "tcp": {}}).to_string(),
            400,
            Want::Json(json!({"Code": 400, "Msg": "invalid visitor type: tcp"})),
        ),
        (
            Method::POST,
            "/api/store/visitors",
            json!({"name": "v", "type": "stcp", "xtcp": {"serverName": "x"}}).to_string(),
            400,
            Want::Json(
                json!({"Code": 400, "Msg": "visitor type block \"xtcp\" does not match type \"stcp\""}),
            ),
        ),
        // Create, conflict, read, update, delete.
        (
            Method::POST,
            "/api/store/proxies",
            p("s", json!({})),
            200,
            Want::Fields(json!({"name": "s", "type": "tcp"})),
        ),
        (
            Method::POST,
            "/api/store/proxies",
            p("s", json!({})),
            409,
            Want::Json(json!({"Code": 409, "Msg": "conflict: already exists: proxy \"s\""})),
        ),
        (
            Method::GET,
            "/api/store/proxies/s",
            String::new(),
            200,
            Want::Fields(json!({"name": "s", "type": "tcp"})),
        ),
        (
            Method::GET,
            "/api/store/proxies/nope",
            String::new(),
            404,
            Want::Json(json!({"Code": 404, "Msg": "not found: proxy \"nope\""})),
        ),
        (
            Method::PUT,
            "/api/store/proxies/s",
            p("t", json!({})),
            400,
            Want::Json(json!({"Code": 400, "Msg": "proxy name in URL must match name in body"})),
        ),
        (
            Method::PUT,
            "/api/store/proxies/nope",
            p("nope", json!({})),
            404,
            Want::Json(json!({"Code": 404, "Msg": "not found: not found: proxy \"nope\""})),
        ),
        (
            Method::PUT,
            "/api/store/proxies/s",
            p("s", json!({"remotePort": 0})),
            200,
            Want::Fields(json!({"name": "s"})),
        ),
        (
            Method::DELETE,
            "/api/store/proxies/s",
            String::new(),
            200,
            Want::Exact(""),
        ),
        (
            Method::DELETE,
            "/api/store/proxies/s",
            String::new(),
            404,
            Want::Json(json!({"Code": 404, "Msg": "not found: not found: proxy \"s\""})),
        ),
        (
            Method::GET,
            "/api/store/visitors/nope",
            String::new(),
            404,
            Want::Json(json!({"Code": 404, "Msg": "not found: visitor \"nope\""})),
        ),
        // Routing: gorilla/mux's 405 (empty body) and net/http's 404.
        (
            Method::PATCH,
            "/api/store/proxies/s",
            String::new(),
            405,
            Want::Exact(""),
        ),
        (
            Method::POST,
            "/api/status",
            String::new(),
            405,
            Want::Exact(""),
        ),
        (
            Method::GET,
            "/api/nothing",
            String::new(),
            404,
            Want::Exact("404 page not found\n"),
        ),
    ];
    for (i, (method, path, body, code, want)) in cases.into_iter().enumerate() {
        let a = s.json(method.clone(), path, &body).await;
        let what = format!(
            "case {i}: {method} {path} {body}: got {} {:?}",
            a.code, a.body
        );
        assert_eq!(a.code, status_of(code), "{what}");
        match want {
            Want::Exact(b) => assert_eq!(a.body, b, "{what}"),
            Want::Json(v) => {
                assert!(
                    a.body.ends_with('\n'),
                    "frp's JSON ends with a newline: {what}"
                );
                assert_eq!(
                    serde_json::from_str::<serde_json::Value>(&a.body).unwrap(),
                    v,
                    "{what}"
                );
            }
            Want::ErrPrefix(m) => {
                let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
                assert_eq!(v["Code"], code, "{what}");
                assert!(v["Msg"].as_str().unwrap().starts_with(m), "{what}");
            }
            Want::Fields(f) => {
                let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
                for (k, x) in f.as_object().unwrap() {
                    assert_eq!(&v[k], x, "{what}");
                }
            }
        }
    }
    // GET /api/config is the file as text; /api/status is JSON grouped by type.
    let a = s.call(Method::GET, "/api/config", &[], "").await;
    assert_eq!(
        (a.code, a.body),
        (StatusCode::OK, std::fs::read_to_string(&s.file).unwrap())
    );
    let a = s.call(Method::GET, "/api/status", &[], "").await;
    assert_eq!(a.code, StatusCode::OK);
    assert_eq!(a.headers["content-type"], "application/json");
    let st: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(st["tcp"][0]["name"], "f", "{st}");
    let a = s.call(Method::POST, "/api/stop", &[], "").await;
    assert_eq!((a.code, a.body.as_str()), (StatusCode::OK, ""));
    s.stop().await;
}

#[tokio::test]
async fn store_routes_do_not_exist_without_a_store() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let admin = free_port().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.web_server.addr = "127.0.0.1".into();
        c.web_server.port = admin;
    });
    wait_listening(([127, 0, 0, 1], admin).into()).await;
    let addr = format!("127.0.0.1:{admin}");
    for (m, path) in [
        (Method::GET, "/api/store/proxies"),
        (Method::POST, "/api/store/visitors"),
        (Method::DELETE, "/api/store/proxies/x"),
    ] {
        let (code, body) =
            common::http::request(&addr, &BasicAuth::default(), m, path, Default::default())
                .await
                .unwrap();
        assert_eq!(
            (code, body.as_str()),
            (StatusCode::NOT_FOUND, "404 page not found\n"),
            "{path}"
        );
    }
    frpc.stop().await;
    frps.stop().await;
}

// --- issue 22 item 4: web server limits -------------------------------------------------------

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection (or `PATIENCE` runs out: a failure); returns
/// what it sent.
async fn read_until_closed(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let r = tokio::time::timeout(PATIENCE, s.read_to_end(&mut got)).await;
    assert!(
        r.is_ok(),
        "the server kept the connection open: {:?}",
        String::from_utf8_lossy(&got)
    );
    String::from_utf8_lossy(&got).into_owned()
}

/// A connection that sent the start of a request head and stopped.
async fn partial_head(admin: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", admin)).await.unwrap();
    s.write_all(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    s
}

fn limits(
    f: impl FnOnce(&mut common::http::WebLimits),
) -> impl FnOnce(frpc::Client) -> frpc::Client {
    let mut l = common::http::WebLimits::default();
    f(&mut l);
    move |c| c.with_web_limits(l)
}

#[tokio::test]
async fn slow_request_heads_are_closed_after_the_header_timeout() {
    let s = Setup::start_with(
        "",
        limits(|l| l.header_timeout = std::time::Duration::from_millis(300)),
    )
    .await;
    let mut conns = Vec::new();
    for _ in 0..20 {
        conns.push(partial_head(s.admin).await);
    }
    for c in &mut conns {
        read_until_closed(c).await;
    }
    // An idle keep-alive connection is closed too.
    let mut idle = TcpStream::connect(("127.0.0.1", s.admin)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_until_closed(&mut idle)
        .await
        .starts_with("HTTP/1.1 200"));
    let a = s.call(Method::GET, "/api/status", &[], "").await;
    assert_eq!(a.code, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_are_turned_away() {
    let s = Setup::start_with("", limits(|l| l.max_connections = 4)).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(partial_head(s.admin).await);
    }
    // The fifth is accepted after the four (the backlog is FIFO) and turned away.
    let mut over = TcpStream::connect(("127.0.0.1", s.admin)).await.unwrap();
    let _ = over
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = read_until_closed(&mut over).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    // The four were kept: each completes its request.
    for c in &mut held {
        c.write_all(b"Connection: close\r\n\r\n").await.unwrap();
        let answer = read_until_closed(c).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    }
    // Their slots are free again.
    let a = s.call(Method::GET, "/api/status", &[], "").await;
    assert_eq!(a.code, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn bodies_over_the_cap_get_413_and_nothing_is_written() {
    let s = Setup::start("").await;
    let before = std::fs::read_to_string(&s.file).unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", s.admin)).await.unwrap();
    let head = format!(
        "PUT /api/config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        11 << 20
    );
    c.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    // (A body without a declared length is cut off at the cap: common::http's unit test.)
    assert_eq!(
        std::fs::read_to_string(&s.file).unwrap(),
        before,
        "nothing written"
    );
    s.stop().await;
}

/// A web server on 127.0.0.1 answering each request with its body's length, with `limits`.
async fn body_length_server(
    limits: common::http::WebLimits,
) -> (
    SocketAddr,
    common::http::WebStats,
    tokio_util::sync::CancellationToken,
) {
    let listener = common::http::WebListener::bind(&common::config::WebServerConfig {
        addr: "127.0.0.1".into(),
        port: 0,
        ..Default::default()
    })
    .await
    .unwrap()
    .with_limits(limits);
    let (addr, stats) = (listener.local_addr().unwrap(), listener.stats());
    let stop = tokio_util::sync::CancellationToken::new();
    let handler = std::sync::Arc::new(|req: hyper::Request<hyper::body::Bytes>| async move {
        common::http::reply(StatusCode::OK, req.body().len().to_string())
    });
    tokio::spawn(common::http::serve(
        listener,
        BasicAuth::default(),
        handler,
        stop.clone(),
    ));
    (addr, stats, stop)
}

/// Waits (within `PATIENCE`) until `f` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    let r = tokio::time::timeout(PATIENCE, async {
        while !f() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(r.is_ok(), "timed out waiting until {what}");
}

#[tokio::test]
async fn request_bodies_are_read_a_few_at_a_time() {
    init_log();
    const LIMIT: usize = 3;
    const N: usize = 12;
    const BODY: usize = 512 << 10;
    let (addr, stats, stop) = body_length_server(common::http::WebLimits {
        max_body: 1 << 20,
        max_concurrent_bodies: LIMIT,
        ..Default::default()
    })
    .await;
    // N clients each send half of a large body, and hold.
    let mut conns = Vec::new();
    for _ in 0..N {
        let mut c = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "PUT /api/config HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {BODY}\r\n\r\n"
        );
        c.write_all(head.as_bytes()).await.unwrap();
        c.write_all(&vec![b'x'; BODY / 2]).await.unwrap();
        conns.push(c);
    }
    until("every request is reading or waiting", || {
        stats.bodies_reading() + stats.bodies_waiting() == N
    })
    .await;
    assert!(
        stats.bodies_reading() <= LIMIT,
        "{} bodies buffered at once (limit {LIMIT})",
        stats.bodies_reading()
    );
    // The rest arrives; each is answered in full, or 503 when its turn did not come in time.
    let mut ok = 0;
    for c in &mut conns {
        c.write_all(&vec![b'x'; BODY / 2]).await.unwrap();
    }
    for c in &mut conns {
        let answer = read_until_closed(c).await;
        if answer.starts_with("HTTP/1.1 200") {
            assert!(answer.ends_with(&BODY.to_string()), "{answer:?}");
            ok += 1;
        } else {
            assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
        }
    }
    assert!(ok >= LIMIT, "only {ok} answered");
    assert!(stats.bodies_peak() <= LIMIT, "peak {}", stats.bodies_peak());
    assert_eq!(stats.bodies_reading() + stats.bodies_waiting(), 0);
    stop.cancel();
}

#[tokio::test]
async fn bodies_of_requests_that_take_none_are_not_buffered() {
    init_log();
    let (addr, stats, stop) = body_length_server(common::http::WebLimits::default()).await;
    // A GET declaring a large body is refused without reading it.
    let mut c = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /api/config HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        1 << 20
    );
    c.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert_eq!(stats.bodies_peak(), 0, "a GET body counted as read");
    // A small one is read and dropped.
    let mut c = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "DELETE /x HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello"
    );
    c.write_all(req.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    stop.cancel();
}

// --- DNS rebinding: the Host header without credentials -----------------------------------------

/// One request on a fresh connection with the given `Host` (and Basic `auth`); the raw answer.
async fn with_host(port: u16, path: &str, host: &str, auth: Option<&str>) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let auth = auth
        .map(|a| {
            let a = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, a);
            format!("Authorization: Basic {a}\r\n")
        })
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n");
    c.write_all(req.as_bytes()).await.unwrap();
    read_until_closed(&mut c).await
}

#[tokio::test]
async fn foreign_host_names_are_refused_without_credentials() {
    let s = Setup::start("").await;
    let port = s.admin;
    let evil = with_host(port, "/api/config", &format!("evil.example:{port}"), None).await;
    assert!(evil.starts_with("HTTP/1.1 403"), "{evil:?}");
    assert!(evil.contains("Host"), "{evil:?}");
    assert!(!evil.contains(TOKEN), "{evil:?}");
    for host in [
        format!("127.0.0.1:{port}"),
        "localhost".to_owned(),
        format!("LocalHost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let ok = with_host(port, "/api/config", &host, None).await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{host}: {ok:?}");
    }
    s.stop().await;
    // With credentials the Host is not checked (the password is the protection).
    let s = Setup::start("webServer.user = \"u\"\nwebServer.password = \"p\"").await;
    let port = s.admin;
    let evil = with_host(
        port,
        "/api/status",
        &format!("evil.example:{port}"),
        Some("u:p"),
    )
    .await;
    assert!(evil.starts_with("HTTP/1.1 200"), "{evil:?}");
    s.stop().await;
}

// --- issue 22 item 7: cross-site requests -----------------------------------------------------

type Headers<'a> = Vec<(&'a str, &'a str)>;

#[tokio::test]
async fn cross_site_requests_are_refused() {
    let s = Setup::start("").await;
    let def = tcp_def("x", s.echo, serde_json::json!({}));
    let json = ("content-type", "application/json");
    let own = format!("http://127.0.0.1:{}", s.admin);
    let before = std::fs::read_to_string(&s.file).unwrap();
    let refused: Vec<(Method, &str, Headers<'_>, &str, u16)> = vec![
        // A page elsewhere posting JSON, or a form (text/plain needs no preflight).
        (
            Method::POST,
            "/api/store/proxies",
            vec![json, ("origin", "http://evil.example")],
            &def,
            403,
        ),
        (
            Method::POST,
            "/api/store/proxies",
            vec![("content-type", "text/plain")],
            &def,
            415,
        ),
        (Method::POST, "/api/store/proxies", vec![], &def, 415),
        (
            Method::POST,
            "/api/store/proxies",
            vec![json, ("sec-fetch-site", "cross-site")],
            &def,
            403,
        ),
        (
            Method::PUT,
            "/api/store/proxies/f",
            vec![json, ("sec-fetch-site", "same-site")],
            &def,
            403,
        ),
        (
            Method::DELETE,
            "/api/store/proxies/f",
            vec![("origin", "null")],
            "",
            403,
        ),
        (
            Method::GET,
            "/api/reload",
            vec![("sec-fetch-site", "cross-site")],
            "",
            403,
        ),
        (
            Method::GET,
            "/api/reload",
            vec![("origin", "http://localhost:1")],
            "",
            403,
        ),
        (
            Method::POST,
            "/api/stop",
            vec![("origin", "http://evil.example")],
            "",
            403,
        ),
        (
            Method::POST,
            "/api/stop",
            vec![("sec-fetch-site", "same-site")],
            "",
            403,
        ),
        (
            Method::PUT,
            "/api/config",
            vec![("content-type", "application/x-www-form-urlencoded")],
            "x = 1",
            415,
        ),
        (
            Method::PUT,
            "/api/config",
            vec![("content-type", "multipart/form-data; boundary=x")],
            "x = 1",
            415,
        ),
        (
            Method::PUT,
            "/api/config",
            vec![
                ("content-type", "text/plain"),
                ("origin", "http://evil.example"),
            ],
            "x = 1",
            403,
        ),
    ];
    for (method, path, headers, body, code) in refused {
        let a = s.call(method.clone(), path, &headers, body).await;
        assert_eq!(
            a.code.as_u16(),
            code,
            "{method} {path} {headers:?}: {}",
            a.body
        );
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert!(
            !v["Msg"].as_str().unwrap().is_empty(),
            "a clear message: {}",
            a.body
        );
    }
    assert_eq!(
        std::fs::read_to_string(&s.file).unwrap(),
        before,
        "nothing written"
    );
    let a = s.call(Method::GET, "/api/store/proxies", &[], "").await;
    assert_eq!(a.body, "{\"proxies\":[]}\n", "nothing created");

    // The admin's own origin, same-origin fetches, and clients that send neither (frpc's and
    // frp's CLI, curl) are served; reads are not state changes.
    let allowed: Vec<(Method, &str, Headers<'_>, &str)> = vec![
        (
            Method::POST,
            "/api/store/proxies",
            vec![json, ("origin", own.as_str())],
            &def,
        ),
        (
            Method::DELETE,
            "/api/store/proxies/x",
            vec![("sec-fetch-site", "same-origin")],
            "",
        ),
        (
            Method::POST,
            "/api/store/proxies",
            vec![("content-type", "application/json; charset=utf-8")],
            &def,
        ),
        (
            Method::PUT,
            "/api/config",
            vec![
                ("content-type", "text/plain;charset=UTF-8"),
                ("origin", own.as_str()),
            ],
            &before,
        ),
        (
            Method::PUT,
            "/api/config",
            vec![("content-type", "application/toml")],
            &before,
        ),
        (Method::PUT, "/api/config", vec![], &before),
        (
            Method::GET,
            "/api/reload",
            vec![("sec-fetch-site", "none")],
            "",
        ),
        (
            Method::GET,
            "/api/status",
            vec![("sec-fetch-site", "cross-site")],
            "",
        ),
    ];
    for (method, path, headers, body) in allowed {
        let a = s.call(method.clone(), path, &headers, body).await;
        assert_eq!(
            a.code,
            StatusCode::OK,
            "{method} {path} {headers:?}: {}",
            a.body
        );
    }
    s.stop().await;
}
