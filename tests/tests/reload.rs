//! Hot reload and the frpc admin API: proxies added, changed and removed while a connection on
//! an unchanged proxy keeps flowing; a broken edit changes nothing; status; auth.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::config::WebServerConfig;
use frpc::status::Phase;
use hyper::{Method, StatusCode};
use std::net::SocketAddr;
use std::path::Path;
use tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn frpc_toml(
    frps: SocketAddr,
    admin: u16,
    auth: bool,
    proxies: &[(&str, SocketAddr, u16)],
) -> String {
    let mut s = format!(
        "serverAddr = \"127.0.0.1\"\nserverPort = {}\nauth.token = \"{TOKEN}\"\nwebServer.addr = \"127.0.0.1\"\nwebServer.port = {admin}\n",
        frps.port()
    );
    if auth {
        s.push_str("webServer.user = \"admin\"\nwebServer.password = \"pw\"\n");
    }
    for (name, local, remote) in proxies {
        s.push_str(&format!("[[proxies]]\nname = \"{name}\"\ntype = \"tcp\"\nlocalPort = {}\nremotePort = {remote}\n", local.port()));
    }
    s
}

fn web(admin: u16, auth: bool) -> WebServerConfig {
    let mut w = WebServerConfig {
        addr: "127.0.0.1".into(),
        port: admin,
        ..Default::default()
    };
    if auth {
        w.user = "admin".into();
        w.password = "pw".into();
    }
    w
}

async fn refused(port: u16) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "port {port} still open"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn reload_diffs_proxies_and_keeps_live_connections() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let (admin, pa, pb, pc, pc2, pd) = (
        free_port().await,
        free_port().await,
        free_port().await,
        free_port().await,
        free_port().await,
        free_port().await,
    );
    let dir = std::env::temp_dir().join(format!(
        "frp-rs-reload-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("frpc.toml");
    std::fs::write(
        &file,
        frpc_toml(
            frps.addr,
            admin,
            false,
            &[("a", echo, pa), ("b", echo, pb), ("c", echo, pc)],
        ),
    )
    .unwrap();
    let frpc = Frpc::start_from_file(&file);
    for n in ["a", "b", "c"] {
        frpc.wait_running(n).await;
    }

    // A long-lived connection through b, the proxy that will not change.
    let mut live = TcpStream::connect(("127.0.0.1", pb)).await.unwrap();
    let mut buf = [0u8; 6];
    live.write_all(b"before").await.unwrap();
    live.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"before");

    // Remove a, move c to another port, add d.
    std::fs::write(
        &file,
        frpc_toml(
            frps.addr,
            admin,
            false,
            &[("b", echo, pb), ("c", echo, pc2), ("d", echo, pd)],
        ),
    )
    .unwrap();
    let (code, body) = frpc::admin::request(
        &web(admin, false),
        Method::GET,
        "/api/reload?strictConfig=true",
    )
    .await
    .unwrap();
    assert_eq!((code, body.as_str()), (StatusCode::OK, ""));
    frpc.wait_running("d").await;
    assert_eq!(frpc.wait_running("c").await.remote_addr, format!(":{pc2}"));
    refused(pa).await;
    refused(pc).await;
    assert!(
        frpc.status.get("a").is_none(),
        "removed proxy is gone from status"
    );
    for port in [pc2, pd] {
        assert_eq!(
            echo_through(([127, 0, 0, 1], port).into(), b"new").await,
            b"new"
        );
    }
    // The connection through b never noticed.
    live.write_all(b"after!").await.unwrap();
    live.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"after!");

    // A broken edit: an error to the caller, nothing changes.
    std::fs::write(
        &file,
        "serverAddr = \"127.0.0.1\"\n[[proxies]]\nname = \"x\"\ntype = \"tcp\"\nlocalPrt = 1\n",
    )
    .unwrap();
    let (code, body) = frpc::admin::request(
        &web(admin, false),
        Method::GET,
        "/api/reload?strictConfig=true",
    )
    .await
    .unwrap();
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Code"], 400);
    assert!(v["Msg"].as_str().unwrap().contains("localPrt"), "{body}");
    for n in ["b", "c", "d"] {
        assert_eq!(frpc.status.get(n).unwrap().phase, Phase::Running);
    }
    live.write_all(b"still!").await.unwrap();
    live.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"still!");

    // Status as frp shapes it.
    let (code, body) = frpc::admin::request(&web(admin, false), Method::GET, "/api/status")
        .await
        .unwrap();
    assert_eq!(code, StatusCode::OK);
    let st: std::collections::BTreeMap<String, Vec<frpc::ProxyStatusResp>> =
        serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = st["tcp"].iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["b", "c", "d"]);
    assert_eq!(st["tcp"][1].remote_addr, format!("127.0.0.1:{pc2}"));
    assert_eq!(
        st["tcp"][1].local_addr,
        format!("127.0.0.1:{}", echo.port())
    );
    assert_eq!(st["tcp"][1].status, "running");

    frpc.stop().await;
    frps.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn admin_api_basic_auth_config_and_stop() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let admin = free_port().await;
    let dir = std::env::temp_dir().join(format!(
        "frp-rs-admin-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("frpc.toml");
    let text = frpc_toml(frps.addr, admin, true, &[("e", echo, 0)]);
    std::fs::write(&file, &text).unwrap();
    let frpc = Frpc::start_from_file(&file);
    frpc.wait_running("e").await;

    let (code, _) = frpc::admin::request(&web(admin, false), Method::GET, "/api/status")
        .await
        .unwrap();
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let mut wrong = web(admin, true);
    wrong.password = "nope".into();
    assert_eq!(
        frpc::admin::request(&wrong, Method::GET, "/api/status")
            .await
            .unwrap()
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        frpc::admin::request(&web(admin, false), Method::GET, "/healthz")
            .await
            .unwrap()
            .0,
        StatusCode::OK
    );
    let (code, body) = frpc::admin::request(&web(admin, true), Method::GET, "/api/config")
        .await
        .unwrap();
    assert_eq!((code, body.as_str()), (StatusCode::OK, text.as_str()));
    assert_eq!(
        frpc::admin::request(&web(admin, true), Method::PUT, "/api/config")
            .await
            .unwrap()
            .0,
        StatusCode::BAD_REQUEST
    );

    // The typed definition of one proxy, and 404 for an unknown one.
    let (code, body) = frpc::admin::request(&web(admin, true), Method::GET, "/api/proxy/e/config")
        .await
        .unwrap();
    assert_eq!(code, StatusCode::OK, "{body}");
    let def: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((&def["name"], &def["type"]), (&"e".into(), &"tcp".into()));
    assert_eq!(def["tcp"]["localPort"], echo.port());
    assert!(def["tcp"].get("customDomains").is_none(), "{def}");
    let (code, body) =
        frpc::admin::request(&web(admin, true), Method::GET, "/api/visitor/x/config")
            .await
            .unwrap();
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"Code": 404, "Msg": "visitor \"x\" not found"})
    );

    // Without store.path the store routes do not exist (as frp).
    let (code, body) = frpc::admin::request(&web(admin, true), Method::GET, "/api/store/proxies")
        .await
        .unwrap();
    assert_eq!(
        (code, body.as_str()),
        (StatusCode::NOT_FOUND, "404 page not found\n")
    );

    // frpc's own metrics move with traffic through the proxy.
    let (_, body) = frpc::admin::request(&web(admin, true), Method::GET, "/api/status")
        .await
        .unwrap();
    let st: std::collections::BTreeMap<String, Vec<frpc::ProxyStatusResp>> =
        serde_json::from_str(&body).unwrap();
    let mut user = TcpStream::connect(st["tcp"][0].remote_addr.as_str())
        .await
        .unwrap();
    user.write_all(&[5u8; 100]).await.unwrap();
    let mut back = [0u8; 100];
    user.read_exact(&mut back).await.unwrap();
    let (code, text) = frpc::admin::request(&web(admin, true), Method::GET, "/metrics")
        .await
        .unwrap();
    assert_eq!(code, StatusCode::OK);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("valid Prometheus text");
    let get = |metric: &str, dir: Option<&str>| {
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == metric && dir.is_none_or(|d| s.labels.get("direction") == Some(d))
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(
        get("frp_rs_client_proxy_bytes_total", Some("in")),
        Some(100.0)
    );
    assert_eq!(
        get("frp_rs_client_proxy_bytes_total", Some("out")),
        Some(100.0)
    );
    assert_eq!(get("frp_rs_client_proxy_connections", None), Some(1.0));
    assert_eq!(get("frp_rs_client_work_conns_total", None), Some(1.0));
    assert_eq!(
        get("frp_rs_client_local_dial_seconds_count", None),
        Some(1.0)
    );
    drop(user);

    let (code, _) = frpc::admin::request(&web(admin, true), Method::POST, "/api/stop")
        .await
        .unwrap();
    assert_eq!(code, StatusCode::OK);
    assert!(frpc.exited().await.is_ok(), "frpc stops cleanly");
    frps.stop().await;
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}

#[tokio::test]
async fn store_api_adds_updates_and_deletes_persistent_proxies() {
    use common::http::{request_with, BasicAuth};
    init_log();
    let frps = Frps::start(|_| {}).await;
    let echo = echo_tcp().await;
    let admin = free_port().await;
    let (rf, rs, rs2) = (free_port().await, free_port().await, free_port().await);
    let dir = std::env::temp_dir().join(format!(
        "frp-rs-store-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let store = dir.join("store.json");
    let file = dir.join("frpc.toml");
    let text = format!(
        "{}store.path = \"{}\"\n",
        frpc_toml(frps.addr, admin, false, &[("f", echo, rf)]),
        store.display()
    );
    // `store.path` must come before the [[proxies]] tables in TOML.
    let (head, proxies) = text.split_once("[[proxies]]").unwrap();
    let (proxies, store_line) = proxies.split_once("store.path").unwrap();
    let text = format!("{head}store.path{store_line}[[proxies]]{proxies}");
    std::fs::write(&file, &text).unwrap();
    let frpc = Frpc::start_from_file(&file);
    frpc.wait_running("f").await;
    let addr = format!("127.0.0.1:{admin}");
    let auth = BasicAuth::default();
    let call = |method: Method, path: &'static str, body: String| {
        let (addr, auth) = (addr.clone(), auth.clone());
        async move {
            // Store bodies are JSON (the admin API refuses other types).
            let json = [("content-type", "application/json".to_owned())];
            let a = request_with(&addr, &auth, method, path, &json, body.into())
                .await
                .unwrap();
            (a.code, a.body)
        }
    };
    let def = |remote: u16| {
        serde_json::json!({"name": "s", "type": "tcp", "tcp": {"localPort": echo.port(), "remotePort": remote}})
            .to_string()
    };
    let at = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));

    // Create: the proxy starts at once and is persisted.
    let (code, body) = call(Method::POST, "/api/store/proxies", def(rs)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&v["name"], &v["tcp"]["remotePort"]),
        (&"s".into(), &rs.into())
    );
    wait_tunnel(at(rs)).await;
    assert!(std::fs::read_to_string(&store).unwrap().contains("\"s\""));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&store).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(
        call(Method::POST, "/api/store/proxies", def(rs)).await.0,
        StatusCode::CONFLICT
    );
    let bad = r#"{"name":"t","type":"tcp","tcp":{"localPrt":1}}"#.to_owned();
    let (code, body) = call(Method::POST, "/api/store/proxies", bad).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body.contains("localPrt"), "{body}");
    let (_, body) = call(Method::GET, "/api/store/proxies", String::new()).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["proxies"][0]["name"], "s");
    let (_, body) = call(Method::GET, "/api/status", String::new()).await;
    let st: std::collections::BTreeMap<String, Vec<frpc::ProxyStatusResp>> =
        serde_json::from_str(&body).unwrap();
    let src: Vec<(&str, Option<&str>)> = st["tcp"]
        .iter()
        .map(|p| (p.name.as_str(), p.source.as_deref()))
        .collect();
    assert_eq!(src, [("f", None), ("s", Some("store"))]);

    // Update: restarted on the new port; the file proxy is untouched.
    let (code, body) = call(Method::PUT, "/api/store/proxies/s", def(rs2)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    wait_tunnel(at(rs2)).await;
    refused(rs).await;
    let data = pattern(1000, 3);
    assert!(echo_through(at(rf), &data).await == data);

    // The store survives a restart of frpc.
    frpc.stop().await;
    let frpc = Frpc::start_from_file(&file);
    frpc.wait_running("s").await;
    wait_tunnel(at(rs2)).await;

    // Delete: closed and gone from the file.
    let (code, _) = call(Method::DELETE, "/api/store/proxies/s", String::new()).await;
    assert_eq!(code, StatusCode::OK, "frp answers a delete with 200");
    refused(rs2).await;
    assert!(!std::fs::read_to_string(&store).unwrap().contains("\"s\""));
    assert_eq!(
        call(Method::DELETE, "/api/store/proxies/s", String::new())
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    frpc.stop().await;
    frps.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
