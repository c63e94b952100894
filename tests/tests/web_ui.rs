//! The web pages in a real browser (issue 19): headless Debian chromium driven through
//! chromedriver with fantoccini. The frps dashboard shows a proxy and its traffic once bytes
//! flow and then offline once its client goes, without a page reload; the frpc admin page
//! shows a `check failed` proxy with its reason, refuses a config with a mistake (line shown,
//! running config and file unchanged) and applies a fixed one; a proxy named like a script
//! renders as text. The tests take the screenshots in `docs/img/`.
//!
//! Without chromium and chromedriver the browser tests say so loudly and skip, except under
//! CI (`CI=true`), where they fail (`.ci/run` installs both). The checks that need no browser
//! (credentials on every page and asset, form tokens, methods) run everywhere.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::http::{request_with, BasicAuth};
use fantoccini::{Client, Locator};
use hyper::{Method, StatusCode};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tests::*;

/// A chromedriver (in its own process group, with the chromium it starts) and a session.
struct Browser {
    client: Client,
    driver: tokio::process::Child,
    _profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver's chromium shares its process group: end them all, even after a panic.
        if let Some(pid) = self
            .driver
            .id()
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

fn in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// A headless chromium, or `None` (with a loud message) when it is not installed outside CI.
async fn browser() -> Option<Browser> {
    browser_with(true).await
}

/// [`browser`], with JavaScript on or off.
async fn browser_with(javascript: bool) -> Option<Browser> {
    let chromium = in_path("chromium").or_else(|| in_path("chromium-browser"));
    let driver = in_path("chromedriver");
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("chromium and chromedriver are required in CI (apt-get install chromium chromium-driver)");
        }
        eprintln!(
            "\n\n!!!!!!!! SKIPPED: web UI browser test: chromium or chromedriver is not installed \
             (apt-get install chromium chromium-driver); nothing was checked in a browser !!!!!!!!\n\n"
        );
        return None;
    };
    let port = free_port().await;
    let mut cmd = tokio::process::Command::new(driver);
    cmd.arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .process_group(0);
    let driver = cmd.spawn().expect("start chromedriver");
    // Listening is not ready: chromedriver may reset a session request that comes too early.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let status = request_with(
            &format!("127.0.0.1:{port}"),
            &BasicAuth::default(),
            Method::GET,
            "/status",
            &[],
            Default::default(),
        )
        .await;
        if status.is_ok_and(|a| a.code == StatusCode::OK && a.body.contains("\"ready\":true")) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver not ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let profile = temp_dir("chromium");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": {
                "profile.default_content_setting_values.javascript": if javascript { 1 } else { 2 },
            },
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = tokio::time::timeout(
        PATIENCE,
        fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}")),
    )
    .await
    .expect("webdriver session in time")
    .expect("webdriver session");
    Some(Browser {
        client,
        driver,
        _profile: profile,
    })
}

/// Waits (bounded) until the text of the first element at `css` satisfies `pred`; returns it.
async fn wait_text(c: &Client, css: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut last = String::new();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if pred(&t) {
                    return t;
                }
                last = t;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let page = c.source().await.unwrap_or_default();
            panic!("{css}: still {last:?} after {PATIENCE:?}; the page:\n{page}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The text of the table row whose header cell is `name`, in table `table`.
async fn row(c: &Client, table: &str, name: &str) -> Option<String> {
    for r in c
        .find_all(Locator::Css(&format!("#{table} tbody tr")))
        .await
        .ok()?
    {
        let head = r.find(Locator::Css("th")).await.ok()?.text().await.ok()?;
        if head == name {
            return r.text().await.ok();
        }
    }
    None
}

/// Waits (bounded) until `name`'s row in `table` satisfies `pred`; returns its text.
async fn wait_row(c: &Client, table: &str, name: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = row(c, table, name).await;
        if let Some(t) = now.as_deref().filter(|t| pred(t)) {
            return t.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "row {name:?} of #{table}: still {now:?} after {PATIENCE:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// No alert opened and the page runs no script but its own.
async fn no_script_ran(c: &Client) {
    assert!(c.get_alert_text().await.is_err(), "an alert is open");
    let scripts = c
        .execute(
            "return Array.from(document.scripts).map(s => s.src || 'inline');",
            vec![],
        )
        .await
        .unwrap();
    let scripts: Vec<String> = serde_json::from_value(scripts).unwrap();
    assert_eq!(scripts.len(), 1, "{scripts:?}");
    assert!(scripts[0].ends_with("/ui/app.js"), "{scripts:?}");
}

/// A screenshot once every image (the charts) has loaded.
async fn shot(c: &Client) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let loaded = "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0);";
    while c.execute(loaded, vec![]).await.unwrap() != serde_json::Value::Bool(true) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "images still loading"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    c.screenshot().await.unwrap()
}

/// Where a screenshot goes: `docs/img/` (the README's pictures) when `UPDATE_SCREENSHOTS=1`,
/// else the target directory, so a plain test run leaves the tracked files alone.
fn screenshot_path(name: &str) -> PathBuf {
    let dir = if std::env::var_os("UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/img")
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

const SCRIPT_NAME: &str = "<script>alert(1)</script>";

/// An frps with its dashboard on a free port (user `admin`, password `pw` when `auth`).
async fn frps_with_dashboard(auth: bool, prometheus: bool) -> (Frps, u16) {
    let dash = free_port().await;
    let frps = Frps::start(|c| {
        c.web_server.addr = "127.0.0.1".into();
        c.web_server.port = dash;
        if auth {
            c.web_server.user = "admin".into();
            c.web_server.password = "pw".into();
        }
        c.enable_prometheus = prometheus;
    })
    .await;
    (frps, dash)
}

#[tokio::test]
async fn frps_dashboard_shows_traffic_then_offline() {
    init_log();
    let Some(b) = browser().await else { return };
    let c = &b.client;
    let (frps, dash) = frps_with_dashboard(true, true).await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.client_id = "web-ui-client".into();
        c.proxies.push(proxy("echo", "tcp", echo, 0));
        c.proxies.push(proxy(SCRIPT_NAME, "tcp", echo, 0));
    });
    let s = frpc.wait_running("echo").await;
    frpc.wait_running(SCRIPT_NAME).await;

    c.goto(&format!("http://admin:pw@127.0.0.1:{dash}/"))
        .await
        .unwrap();
    let before = wait_row(c, "proxies-tcp", "echo", |t| t.contains("online")).await;
    assert!(before.contains("0 B"), "{before}");
    // The script-named proxy is a row whose name is its text.
    wait_row(c, "proxies-tcp", SCRIPT_NAME, |t| t.contains("online")).await;
    no_script_ran(c).await;
    let class = c
        .find(Locator::Css("html"))
        .await
        .unwrap()
        .attr("class")
        .await
        .unwrap();
    assert_eq!(class.as_deref(), Some("js"), "app.js marks the document");
    assert_eq!(
        c.find(Locator::Css("a[href='/metrics']"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Prometheus metrics"
    );

    // Bytes through the proxy show up without a reload: today's in and out, the totals.
    let data = pattern(300_000, 7);
    wait_tunnel(SocketAddr::from(([127, 0, 0, 1], remote_port(&s)))).await;
    assert_eq!(
        echo_through(SocketAddr::from(([127, 0, 0, 1], remote_port(&s))), &data).await,
        data
    );
    let after = wait_row(c, "proxies-tcp", "echo", |t| t.contains("KiB")).await;
    assert!(after.contains("online"), "{after}");
    wait_text(c, "#fig-traffic-in", |t| t != "0 B").await;
    wait_text(c, "#fig-clients", |t| t == "1 of 1").await;
    wait_text(c, "#live", |t| t.starts_with("Live: updated")).await;
    let chart = c
        .find(Locator::Css("#proxies-tcp img"))
        .await
        .unwrap()
        .attr("alt")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(chart.starts_with("7-day traffic of "), "{chart}");
    std::fs::write(screenshot_path("frps-dashboard.png"), shot(c).await).unwrap();

    // The client goes: its proxies show offline, and so does the client.
    frpc.stop().await;
    wait_row(c, "proxies-tcp", "echo", |t| t.contains("offline")).await;
    wait_row(c, "clients", "web-ui-client", |t| t.contains("offline")).await;

    // frp's clean-up, as a form: both offline proxies go.
    c.find(Locator::Css("form[action^='/ui/prune'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, ".notice.done", |t| t == "Cleared 2 offline proxies.").await;
    assert!(row(c, "proxies-tcp", "echo").await.is_none());
    b.client.clone().close().await.unwrap();
    frps.stop().await;
}

/// An frpc config file: admin page on `admin` with credentials, `globals`, then `proxies`.
fn frpc_file(frps: SocketAddr, admin: u16, globals: &str, proxies: &str) -> String {
    format!(
        "serverAddr = \"127.0.0.1\"\nserverPort = {}\nauth.token = \"{TOKEN}\"\n\
         webServer.addr = \"127.0.0.1\"\nwebServer.port = {admin}\n\
         webServer.user = \"admin\"\nwebServer.password = \"pw\"\n{globals}\n{proxies}",
        frps.port()
    )
}

fn tcp_proxy(name: &str, local: SocketAddr, extra: &str) -> String {
    format!(
        "[[proxies]]\nname = \"{name}\"\ntype = \"tcp\"\nlocalIP = \"127.0.0.1\"\nlocalPort = {}\n{extra}\n",
        local.port()
    )
}

/// An in-process frpc run from its file (so reloads re-read it), admin page on a free port.
struct AdminFrpc {
    frpc: Frpc,
    admin: u16,
    file: PathBuf,
    /// The file's text as started.
    text: String,
}

/// Writes the frpc file (`globals(dir)` among the globals, then `proxies`, which must have
/// a proxy `ok`) in a fresh directory and starts frpc from it once `ok` runs.
async fn frpc_admin(
    frps: SocketAddr,
    globals: impl FnOnce(&Path) -> String,
    proxies: &str,
) -> AdminFrpc {
    let admin = free_port().await;
    let dir = temp_dir("web-ui");
    let file = dir.join("frpc.toml");
    let text = frpc_file(frps, admin, &globals(&dir), proxies);
    std::fs::write(&file, &text).unwrap();
    let frpc = Frpc::start_from_file(&file);
    frpc.wait_running("ok").await;
    AdminFrpc {
        frpc,
        admin,
        file,
        text,
    }
}

#[tokio::test]
async fn frpc_page_shows_check_failures_and_edits_the_config() {
    init_log();
    let Some(b) = browser().await else { return };
    let c = &b.client;
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    // Nothing listens here: the health check fails with "connection refused".
    let closed = SocketAddr::from(([127, 0, 0, 1], free_port().await));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let visitor_port = free_port().await;
    let proxies = format!(
        "{}{}{}{}[[visitors]]\nname = \"v\"\ntype = \"stcp\"\nserverName = \"ok\"\n\
         secretKey = \"k\"\nbindAddr = \"127.0.0.1\"\nbindPort = {visitor_port}\n\n",
        tcp_proxy("ok", echo, ""),
        tcp_proxy(
            "checked",
            closed,
            "healthCheck.type = \"tcp\"\nhealthCheck.intervalSeconds = 1\n"
        ),
        tcp_proxy(SCRIPT_NAME, echo, ""),
        // frps refuses it: its remote port is taken.
        tcp_proxy(
            "refused",
            echo,
            &format!("remotePort = {}\n", taken.local_addr().unwrap().port())
        ),
    );
    let AdminFrpc {
        frpc,
        admin,
        file,
        text: original,
    } = frpc_admin(frps.addr, |_| String::new(), &proxies).await;
    frpc.wait_phase("checked", frpc::status::Phase::CheckFailed)
        .await;

    c.goto(&format!("http://admin:pw@127.0.0.1:{admin}/"))
        .await
        .unwrap();
    let checked = wait_row(c, "proxies", "checked", |t| t.contains("check failed")).await;
    assert!(checked.contains("health check failed: "), "{checked}");
    assert!(
        checked.to_lowercase().contains("connection refused"),
        "{checked}"
    );
    assert!(checked.contains("tcp every 1s: failing"), "{checked}");
    wait_row(c, "errors", "checked", |t| {
        t.contains("health check failed")
    })
    .await;
    // The visitor's run-time status, not only its configuration; and only in its own table.
    let v = wait_row(c, "visitors", "v", |t| t.contains("running")).await;
    assert_eq!(
        row(c, "proxies", "v").await,
        None,
        "the visitor is not listed as a proxy"
    );
    assert!(
        v.contains("stcp") && v.contains(&format!("127.0.0.1:{visitor_port}")),
        "{v}"
    );
    // A NewProxy that frps refused says why.
    let refused = wait_row(c, "proxies", "refused", |t| t.contains("start error")).await;
    let why = frpc.status.get("refused").unwrap().error;
    assert!(
        !why.is_empty() && refused.contains(&why),
        "{refused} / {why}"
    );
    wait_row(c, "proxies", SCRIPT_NAME, |t| t.contains("running")).await;
    no_script_ran(c).await;
    // The editor holds the file as it is, the script-named proxy as text.
    let shown = c
        .find(Locator::Id("config-text"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(shown, original);
    wait_text(c, "#live", |t| t.starts_with("Live: updated")).await;
    std::fs::write(screenshot_path("frpc-admin.png"), shot(c).await).unwrap();

    // A mistake: refused with its line, nothing written, nothing reloaded.
    let broken_line = original.lines().count() + 5;
    let broken = format!(
        "{original}[[proxies]]\nname = \"added\"\ntype = \"tcp\"\nlocalIP = \"127.0.0.1\"\nlocalPort = \"x\"\n"
    );
    submit(c, "config-text", &broken, "#config-save").await;
    let error = wait_text(c, "#config-error", |t| !t.is_empty()).await;
    assert!(
        error.contains(&format!("frpc.toml:{broken_line}:")),
        "line {broken_line} not in {error:?}"
    );
    assert!(error.contains("running config is unchanged"), "{error}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    assert!(frpc.status.get("added").is_none());
    assert!(row(c, "proxies", "added").await.is_none());
    // The refused text stays in the editor to be fixed.
    let kept = c
        .find(Locator::Id("config-text"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(kept, broken);

    // Fixed: saved, reloaded, and the new proxy shows up.
    let fixed = broken.replace("localPort = \"x\"", &format!("localPort = {}", echo.port()));
    submit(c, "config-text", &fixed, "#config-save").await;
    wait_text(c, "#config-done", |t| t == "Config saved and reloaded.").await;
    assert_eq!(std::fs::read_to_string(&file).unwrap(), fixed);
    frpc.wait_running("added").await;
    wait_row(c, "proxies", "added", |t| t.contains("running")).await;
    b.client.clone().close().await.unwrap();
    frpc.stop().await;
    frps.stop().await;
}

/// Pages, assets, the state and the charts need the credentials as the API does; forms need
/// the page's token and a same-site origin; nothing changes on a GET.
#[tokio::test]
async fn pages_need_credentials_and_forms_need_the_token() {
    init_log();
    let (frps, dash) = frps_with_dashboard(true, false).await;
    let echo = echo_tcp().await;
    let AdminFrpc {
        frpc,
        admin,
        file,
        text: original,
    } = frpc_admin(frps.addr, |_| String::new(), &tcp_proxy("ok", echo, "")).await;
    let good = BasicAuth {
        user: "admin".into(),
        password: "pw".into(),
    };
    let none = BasicAuth::default();
    let get = |port: u16, auth: BasicAuth, path: &'static str| async move {
        get_as(port, &auth, path).await
    };
    for port in [dash, admin] {
        for path in [
            "/",
            "/index.html",
            "/ui/style.css",
            "/ui/app.js",
            "/ui/state.json",
            "/ui/chart.svg?proxy=ok",
        ] {
            if port == admin && path.starts_with("/ui/chart") {
                continue;
            }
            let a = get(port, none.clone(), path).await;
            assert_eq!(a.code, StatusCode::UNAUTHORIZED, "{port}{path}");
            assert!(!a.body.contains("frp"), "{port}{path}: {}", a.body);
            let a = get(port, good.clone(), path).await;
            assert_eq!(a.code, StatusCode::OK, "{port}{path}: {}", a.body);
            let csp = a.headers.get("content-security-policy").unwrap();
            assert!(csp.to_str().unwrap().contains("script-src 'self'"));
        }
    }
    let page = get(admin, good.clone(), "/").await.body;
    let token = page
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let post = |path: &'static str, headers: Vec<(&'static str, String)>, body: String| {
        let good = good.clone();
        async move {
            request_with(
                &format!("127.0.0.1:{admin}"),
                &good,
                Method::POST,
                path,
                &headers,
                body.into(),
            )
            .await
            .unwrap()
        }
    };
    let form = |token: &str| {
        common::http::form_encode(&[("token", token), ("config", "serverPort = 1\n")])
    };
    let ct = (
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    );
    // No token, a wrong token, another site's origin: refused, the file as it was.
    for (headers, body) in [
        (vec![ct.clone()], form("")),
        (vec![ct.clone()], form("0000")),
        (
            vec![ct.clone(), ("origin", "http://evil.example".to_owned())],
            form(&token),
        ),
        (
            vec![ct.clone(), ("sec-fetch-site", "cross-site".to_owned())],
            form(&token),
        ),
    ] {
        let a = post("/ui/config", headers.clone(), body).await;
        assert_eq!(a.code, StatusCode::FORBIDDEN, "{headers:?}: {}", a.body);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    }
    // A GET of a form's address changes nothing.
    let a = get(admin, good.clone(), "/ui/config").await;
    assert_eq!(a.code, StatusCode::METHOD_NOT_ALLOWED);
    let a = get(dash, good.clone(), "/ui/prune").await;
    assert_eq!(a.code, StatusCode::METHOD_NOT_ALLOWED);
    // The dashboard's clean-up takes its token in the query.
    let a = request_with(
        &format!("127.0.0.1:{dash}"),
        &good,
        Method::POST,
        "/ui/prune?token=nope",
        &[],
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(a.code, StatusCode::FORBIDDEN);
    // With the page's token and no foreign origin the form works (the config is valid).
    let text = format!("{original}{}", tcp_proxy("ok2", echo, ""));
    let body = common::http::form_encode(&[("token", &token), ("config", &text)]);
    let a = post("/ui/config", vec![ct.clone()], body).await;
    assert_eq!(a.code, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    frpc.stop().await;
    frps.stop().await;
}

/// Waits (bounded) until `name` has no row in `table`.
async fn wait_no_row(c: &Client, table: &str, name: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while row(c, table, name).await.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "row {name:?} of #{table} still there after {PATIENCE:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Types `text` into the textarea `id` (after clearing it) and presses `button` (a CSS
/// selector) of its form.
async fn submit(c: &Client, id: &str, text: &str, button: &str) {
    let area = c.find(Locator::Id(id)).await.unwrap();
    area.clear().await.unwrap();
    area.send_keys(text).await.unwrap();
    c.find(Locator::Css(&format!("form:has(#{id}) {button}")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test]
async fn frpc_page_creates_edits_and_deletes_store_entries() {
    init_log();
    let Some(b) = browser().await else { return };
    let c = &b.client;
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let store_path = |dir: &Path| dir.join("store.json");
    let AdminFrpc {
        frpc, admin, file, ..
    } = frpc_admin(
        frps.addr,
        |dir| format!("store.path = {:?}\n", store_path(dir).display().to_string()),
        &tcp_proxy("ok", echo, ""),
    )
    .await;
    let store = store_path(file.parent().unwrap());
    c.goto(&format!("http://admin:pw@127.0.0.1:{admin}/"))
        .await
        .unwrap();

    let def = |remote: u16| {
        serde_json::json!({"name": "stored", "type": "tcp",
            "tcp": {"localIP": "127.0.0.1", "localPort": echo.port(), "remotePort": remote}})
        .to_string()
    };
    let first = free_port().await;
    submit(c, "store-new-proxy", &def(first), "button[value='create']").await;
    wait_text(c, "#store-done", |t| t == "Store updated.").await;
    frpc.wait_running("stored").await;
    let r = wait_row(c, "proxies", "stored", |t| t.contains("running")).await;
    assert!(r.contains("store"), "{r}");
    assert!(std::fs::read_to_string(&store).unwrap().contains("stored"));

    // A mistake is shown and changes nothing.
    submit(c, "store-proxy-1", "{not json", "button[value='update']").await;
    let e = wait_text(c, "#store-error", |t| !t.is_empty()).await;
    assert!(!e.is_empty());
    assert!(std::fs::read_to_string(&store)
        .unwrap()
        .contains(&first.to_string()));

    // An edit applies: the proxy moves to the new remote port.
    let second = free_port().await;
    submit(c, "store-proxy-1", &def(second), "button[value='update']").await;
    wait_text(c, "#store-done", |t| t == "Store updated.").await;
    wait_row(c, "proxies", "stored", |t| {
        t.contains(&format!(":{second}")) && t.contains("running")
    })
    .await;

    // Delete.
    c.find(Locator::Css(
        "form:has(#store-proxy-1) button[value='delete']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_text(c, "#store-done", |t| t == "Store updated.").await;
    wait_no_row(c, "proxies", "stored").await;
    assert!(!std::fs::read_to_string(&store).unwrap().contains("stored"));
    b.client.clone().close().await.unwrap();
    frpc.stop().await;
    frps.stop().await;
}

/// The read-only views are rendered by the server: with JavaScript off the dashboard still
/// shows the proxies and clients, and says the figures are as of the page load.
#[tokio::test]
async fn dashboard_reads_without_javascript() {
    init_log();
    let Some(b) = browser_with(false).await else {
        return;
    };
    let c = &b.client;
    let (frps, dash) = frps_with_dashboard(false, false).await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.client_id = "no-js".into();
        c.proxies.push(proxy(SCRIPT_NAME, "tcp", echo, 0));
    });
    frpc.wait_running(SCRIPT_NAME).await;
    c.goto(&format!("http://127.0.0.1:{dash}/")).await.unwrap();
    let r = row(c, "proxies-tcp", SCRIPT_NAME).await.expect("proxy row");
    assert!(r.contains("online") && r.contains("no-js"), "{r}");
    assert!(row(c, "clients", "no-js").await.unwrap().contains("online"));
    let live = c
        .find(Locator::Id("live"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(live.starts_with("As of page load."), "{live}");
    // app.js marks the document when it runs (before the load event `goto` waits for).
    let class = c
        .find(Locator::Css("html"))
        .await
        .unwrap()
        .attr("class")
        .await
        .unwrap();
    assert_eq!(class, None, "JavaScript ran");
    assert!(c.get_alert_text().await.is_err());
    b.client.clone().close().await.unwrap();
    frpc.stop().await;
    frps.stop().await;
}

/// The body of an authenticated (`admin:pw`) GET of `path`.
async fn get_page(port: u16, path: &str) -> String {
    let auth = BasicAuth {
        user: "admin".into(),
        password: "pw".into(),
    };
    get_as(port, &auth, path).await.body
}

/// A GET of `path` with `auth`.
async fn get_as(port: u16, auth: &BasicAuth, path: &str) -> common::http::Answer {
    request_with(
        &format!("127.0.0.1:{port}"),
        auth,
        Method::GET,
        path,
        &[],
        Default::default(),
    )
    .await
    .unwrap()
}

/// One raw request (its own `Host`, as a browser that reached the server by a name sends it)
/// with Basic `admin:pw`; the status code.
async fn raw_post(port: u16, path: &str, headers: &[(&str, &str)], body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nAuthorization: Basic YWRtaW46cHc=\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    c.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), c.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&got);
    text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// A browser that opened the dashboard by a host name (`http://frps.lan:7500/`, or through a
/// reverse proxy) sends that name in `Origin`: its own forms work. Another site's `Origin` is
/// still refused, whatever `Host` says.
#[tokio::test]
async fn forms_work_when_the_page_was_opened_by_host_name() {
    init_log();
    let (frps, dash) = frps_with_dashboard(true, false).await;
    let token = |page: &str| {
        page.split("token=")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .to_owned()
    };
    let page = get_page(dash, "/").await;
    let path = format!("/ui/prune?token={}", token(&page));
    let name = format!("frps.lan:{dash}");
    let origin = format!("http://frps.lan:{dash}");
    // What chromium sends for the page's own form, opened as http://frps.lan:PORT/.
    let own = [
        ("Host", name.as_str()),
        ("Origin", origin.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
    ];
    assert_eq!(raw_post(dash, &path, &own, "").await, 303);
    // A browser without Sec-Fetch-Site: Origin names the Host it asked.
    assert_eq!(raw_post(dash, &path, &own[..2], "").await, 303);
    // Behind a reverse proxy that sets its own Host: the browser says same-origin.
    let proxied = [
        ("Host", "127.0.0.1"),
        ("Origin", "https://frps.example.com"),
        ("Sec-Fetch-Site", "same-origin"),
    ];
    assert_eq!(raw_post(dash, &path, &proxied, "").await, 303);
    // Another site, whatever Host says.
    let evil = format!("http://evil.example:{dash}");
    for headers in [
        vec![("Host", name.as_str()), ("Origin", evil.as_str())],
        vec![("Host", name.as_str()), ("Origin", "null")],
        vec![("Host", name.as_str()), ("Sec-Fetch-Site", "cross-site")],
        vec![
            ("Host", name.as_str()),
            ("Origin", origin.as_str()),
            ("Sec-Fetch-Site", "same-site"),
        ],
    ] {
        assert_eq!(
            raw_post(dash, &path, &headers, "").await,
            403,
            "{headers:?}"
        );
    }
    frps.stop().await;
}

/// frps's own JSON API changes state on POST and DELETE (frp's prune and clear-offline): a
/// browser page of another site must not do that with the dashboard's cached credentials.
#[tokio::test]
async fn frps_api_refuses_cross_site_state_changes() {
    init_log();
    let (frps, dash) = frps_with_dashboard(true, false).await;
    let prune = "/api/v2/system/prune?type=offline_proxies";
    let name = format!("127.0.0.1:{dash}");
    for headers in [
        vec![("Host", name.as_str()), ("Origin", "http://evil.example")],
        vec![("Host", name.as_str()), ("Origin", "null")],
        vec![("Host", name.as_str()), ("Sec-Fetch-Site", "cross-site")],
    ] {
        assert_eq!(
            raw_post(dash, prune, &headers, "").await,
            403,
            "{headers:?}"
        );
    }
    // Scripts and frp's own page (same origin) still can.
    assert_eq!(raw_post(dash, prune, &[("Host", &name)], "").await, 200);
    let own = format!("http://{name}");
    let same = [("Host", name.as_str()), ("Origin", own.as_str())];
    assert_eq!(raw_post(dash, prune, &same, "").await, 200);
    frps.stop().await;
}

/// The store section names its kinds in plain English and shows, for a new visitor, a
/// visitor's JSON (not a proxy's) as the example.
#[tokio::test]
async fn store_section_reads_well() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let AdminFrpc { frpc, admin, .. } = frpc_admin(
        frps.addr,
        |dir| {
            format!(
                "store.path = {:?}\n",
                dir.join("store.json").display().to_string()
            )
        },
        &tcp_proxy("ok", echo, ""),
    )
    .await;
    let page = get_page(admin, "/").await;
    assert!(page.contains("Stored proxies"), "{page}");
    assert!(page.contains("Stored visitors"), "{page}");
    assert!(!page.contains("proxys"), "{page}");
    let visitor_form = page.split("id=\"store-new-visitor\"").nth(1).unwrap();
    let placeholder = visitor_form.split("placeholder=").nth(1).unwrap();
    let placeholder = placeholder.split('>').next().unwrap();
    assert!(placeholder.contains("stcp"), "{placeholder}");
    assert!(placeholder.contains("serverName"), "{placeholder}");
    frpc.stop().await;
    frps.stop().await;
}

/// The clean-up's notice takes only a count from its URL: a link cannot make the dashboard
/// say something else ("Cleared <anything> offline proxies").
#[tokio::test]
async fn prune_notice_shows_only_a_count() {
    init_log();
    let (frps, dash) = frps_with_dashboard(true, false).await;
    let spoofed = get_page(
        dash,
        "/?pruned=all+your+proxies+were+moved+to+evil.example%3B+ignore",
    )
    .await;
    assert!(!spoofed.contains("evil.example"), "{spoofed}");
    assert!(!spoofed.contains("Cleared"), "{spoofed}");
    let real = get_page(dash, "/?pruned=3").await;
    assert!(real.contains("Cleared 3 offline proxies."), "{real}");
    frps.stop().await;
}
