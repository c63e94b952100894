//! frps's Prometheus metrics and dashboard API, scraped over HTTP as an operator would.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::http::{request, BasicAuth};
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use std::net::SocketAddr;
use tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One parsed sample: metric name, sorted labels, value.
type Sample = (String, Vec<(String, String)>, f64);

fn auth() -> BasicAuth {
    BasicAuth {
        user: "admin".into(),
        password: "s3cret".into(),
    }
}

async fn call(dash: SocketAddr, method: Method, path: &str) -> (StatusCode, String) {
    request(&dash.to_string(), &auth(), method, path, Bytes::new())
        .await
        .unwrap()
}

async fn get(dash: SocketAddr, path: &str) -> (StatusCode, String) {
    call(dash, Method::GET, path).await
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Scrapes /metrics and returns (metric, labels, value) samples, parsed by a Prometheus parser.
async fn scrape(dash: SocketAddr) -> Vec<Sample> {
    let (code, text) = get(dash, "/metrics").await;
    assert_eq!(code, StatusCode::OK);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("valid Prometheus text");
    scrape
        .samples
        .into_iter()
        .map(|s| {
            let v = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            };
            let mut labels: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.sort();
            (s.metric, labels, v)
        })
        .collect()
}

fn value(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    want.sort();
    samples
        .iter()
        .find(|(m, l, _)| m == metric && *l == want)
        .map(|(_, _, v)| *v)
}

#[tokio::test]
async fn prometheus_series_move_with_traffic_and_dashboard_answers() {
    init_log();
    let dash_port = free_port().await;
    let frps = Frps::start(|c| {
        c.web_server.addr = "127.0.0.1".into();
        c.web_server.port = dash_port;
        c.web_server.user = "admin".into();
        c.web_server.password = "s3cret".into();
        c.enable_prometheus = true;
    })
    .await;
    let dash = frps.dashboard.unwrap();
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| c.proxies.push(proxy("web", "tcp", echo, 0)));
    let port = remote_port(&frpc.wait_running("web").await);

    // Auth: /healthz open, the rest behind Basic auth.
    let no = BasicAuth::default();
    assert_eq!(
        request(
            &dash.to_string(),
            &no,
            Method::GET,
            "/healthz",
            Bytes::new()
        )
        .await
        .unwrap()
        .0,
        StatusCode::OK
    );
    assert_eq!(
        request(
            &dash.to_string(),
            &no,
            Method::GET,
            "/metrics",
            Bytes::new()
        )
        .await
        .unwrap()
        .0,
        StatusCode::UNAUTHORIZED
    );
    let wrong = BasicAuth {
        user: "admin".into(),
        password: "nope".into(),
    };
    assert_eq!(
        request(
            &dash.to_string(),
            &wrong,
            Method::GET,
            "/api/serverinfo",
            Bytes::new()
        )
        .await
        .unwrap()
        .0,
        StatusCode::UNAUTHORIZED
    );

    let s = scrape(dash).await;
    assert_eq!(value(&s, "frp_server_client_counts", &[]), Some(1.0));
    assert_eq!(
        value(&s, "frp_server_proxy_counts", &[("type", "tcp")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            "frp_server_proxy_counts_detailed",
            &[("type", "tcp"), ("name", "web")]
        ),
        Some(1.0)
    );

    // Traffic: 1000 bytes in, 1000 back, with one connection open at scrape time.
    let mut live = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    live.write_all(&[7u8; 1000]).await.unwrap();
    let mut back = vec![0u8; 1000];
    live.read_exact(&mut back).await.unwrap();
    let s = scrape(dash).await;
    assert_eq!(
        value(
            &s,
            "frp_server_connection_counts",
            &[("name", "web"), ("type", "tcp")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            "frp_server_traffic_in",
            &[("name", "web"), ("type", "tcp")]
        ),
        Some(1000.0)
    );
    assert_eq!(
        value(
            &s,
            "frp_server_traffic_out",
            &[("name", "web"), ("type", "tcp")]
        ),
        Some(1000.0)
    );
    assert!(
        s.iter()
            .any(|(m, _, _)| m == "frp_rs_server_work_conn_wait_seconds_count"),
        "frp_rs extras are there"
    );
    let handed = |src: &str| {
        value(
            &s,
            "frp_rs_server_work_conns_handed_out_total",
            &[("source", src)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(
        handed("pool") + handed("requested"),
        1.0,
        "one user, one work connection"
    );
    assert!(value(&s, "frp_rs_server_pooled_work_conns", &[]).is_some());
    assert!(
        value(&s, "process_resident_memory_bytes", &[]).is_some_and(|v| v > 0.0),
        "process metrics are there"
    );
    drop(live);

    // Dashboard API with frp's field names.
    let (code, body) = get(dash, "/api/serverinfo").await;
    assert_eq!(code, StatusCode::OK);
    let info = json(&body);
    assert_eq!(info["version"], "0.70.1");
    assert_eq!(info["clientCounts"], 1);
    assert_eq!(info["proxyTypeCount"]["tcp"], 1);
    assert_eq!(info["totalTrafficIn"], 1000);
    assert_eq!(info["maxPoolCount"], 5);
    let (_, body) = get(dash, "/api/proxy/tcp").await;
    let list = json(&body);
    let p = &list["proxies"][0];
    assert_eq!(
        (p["name"].as_str(), p["status"].as_str()),
        (Some("web"), Some("online"))
    );
    assert_eq!(p["conf"]["remotePort"], i64::from(port));
    assert_eq!(p["todayTrafficOut"], 1000);
    assert!(p["lastStartTime"].as_str().unwrap().len() == 14, "{p}");
    let (code, body) = get(dash, "/api/traffic/web").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(json(&body)["trafficIn"][0], 1000);
    let (code, body) = get(dash, "/api/proxy/tcp/nope").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(
        json(&body),
        serde_json::json!({"Code": 404, "Msg": "no proxy info found"})
    );
    let (_, body) = get(dash, "/api/proxies/web").await;
    let p = json(&body);
    assert_eq!(
        (&p["name"], &p["status"]),
        (&"web".into(), &"online".into())
    );

    // Clients, legacy and v2.
    let (code, body) = get(dash, "/api/clients").await;
    assert_eq!(code, StatusCode::OK);
    let clients = json(&body);
    let c = &clients[0];
    assert_eq!(c["online"], true, "{c}");
    assert_eq!(c["clientIP"], "127.0.0.1");
    assert_eq!(c["wireProtocol"], "v1");
    assert!(c["firstConnectedAt"].as_i64().unwrap() > 0);
    let key = c["key"].as_str().unwrap().to_owned();
    assert_eq!(
        c["runID"].as_str(),
        Some(key.as_str()),
        "no user/clientID: key is the run id"
    );
    let (code, body) = get(dash, &format!("/api/clients/{key}")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(get(dash, "/api/clients?status=offline").await.1, "[]");
    let (code, body) = get(dash, "/api/v2/clients?status=online&pageSize=10").await;
    assert_eq!(code, StatusCode::OK);
    let v = json(&body);
    assert_eq!((&v["code"], &v["msg"]), (&200.into(), &"success".into()));
    assert_eq!(v["data"]["total"], 1);
    assert_eq!(v["data"]["pageSize"], 10);
    assert_eq!(v["data"]["items"][0]["key"], key.as_str());
    let (code, body) = get(dash, "/api/v2/clients?pageSize=500").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        json(&body),
        serde_json::json!({"code": 400, "msg": "pageSize must be between 1 and 200"})
    );
    let (_, body) = get(dash, "/api/v2/proxies?type=tcp&q=we").await;
    let v = json(&body);
    let p = &v["data"]["items"][0];
    assert_eq!(
        (&p["name"], &p["status"]["phase"]),
        (&"web".into(), &"online".into())
    );
    assert_eq!(p["status"]["todayTrafficIn"], 1000);
    assert_eq!(p["spec"]["remotePort"], i64::from(port));
    let (_, body) = get(dash, "/api/v2/proxies/web/traffic").await;
    let v = json(&body);
    assert_eq!(v["data"]["history"][0]["trafficOut"], 1000);
    assert_eq!(v["data"]["history"].as_array().unwrap().len(), 7);
    let (_, body) = get(dash, "/api/v2/system/info").await;
    let v = json(&body);
    assert_eq!(v["data"]["status"]["clientCounts"], 1);
    assert_eq!(v["data"]["config"]["maxPoolCount"], 5);
    let (_, body) = get(dash, "/api/v2/users").await;
    let v = json(&body);
    assert_eq!(v["data"]["items"][0]["proxyCount"], 1);

    // The client leaves: gauges drop, the proxy shows offline until cleared.
    frpc.stop().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while value(&scrape(dash).await, "frp_server_client_counts", &[]) != Some(0.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "client count did not drop"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let s = scrape(dash).await;
    assert_eq!(
        value(&s, "frp_server_proxy_counts", &[("type", "tcp")]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &s,
            "frp_server_proxy_counts_detailed",
            &[("type", "tcp"), ("name", "web")]
        ),
        None
    );
    let (_, body) = get(dash, "/api/proxy/tcp/web").await;
    assert_eq!(json(&body)["status"], "offline");
    let (code, _) = call(dash, Method::DELETE, "/api/proxies?status=offline").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        get(dash, "/api/proxy/tcp/web").await.0,
        StatusCode::NOT_FOUND
    );
    // Without a clientID the client is forgotten once offline (as frp); prune has nothing
    // left (offline records of clients with a clientID: hardening.rs).
    assert_eq!(
        get(dash, &format!("/api/clients/{key}")).await.0,
        StatusCode::NOT_FOUND
    );
    let (code, body) = call(dash, Method::POST, "/api/v2/system/prune?type=clients").await;
    assert_eq!(code, StatusCode::OK);
    let v = json(&body);
    assert_eq!(
        v["data"],
        serde_json::json!({"type": "clients", "cleared": 0, "total": 0})
    );
    frps.stop().await;
}

#[tokio::test]
async fn no_metrics_endpoint_without_enable_prometheus() {
    init_log();
    let dash_port = free_port().await;
    let frps = Frps::start(|c| {
        c.web_server.addr = "127.0.0.1".into();
        c.web_server.port = dash_port;
    })
    .await;
    let dash = frps.dashboard.unwrap();
    let (code, _) = request(
        &dash.to_string(),
        &BasicAuth::default(),
        Method::GET,
        "/metrics",
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(code, StatusCode::NOT_FOUND);
    frps.stop().await;
}

#[tokio::test]
async fn dashboard_over_https_with_webserver_tls() {
    init_log();
    let dir = std::env::temp_dir().join(format!(
        "frp-rs-dash-tls-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("dash.crt"), dir.join("dash.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let dash_port = free_port().await;
    let frps = Frps::start(|c| {
        c.web_server.addr = "127.0.0.1".into();
        c.web_server.port = dash_port;
        c.web_server.user = "admin".into();
        c.web_server.password = "s3cret".into();
        c.web_server.tls = Some(common::config::TlsFilesConfig {
            cert_file: cert.display().to_string(),
            key_file: key.display().to_string(),
            trusted_ca_file: String::new(),
        });
    })
    .await;
    let dash = frps.dashboard.unwrap();

    // Plain HTTP is not answered as HTTP.
    assert!(request(
        &dash.to_string(),
        &auth(),
        Method::GET,
        "/api/serverinfo",
        Bytes::new()
    )
    .await
    .is_err());
    // HTTPS with the right credentials is.
    let cfg = common::transport::tls::client_config(&Default::default()).unwrap();
    let tcp = TcpStream::connect(dash).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(cfg)
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    use base64::Engine;
    let cred = base64::engine::general_purpose::STANDARD.encode("admin:s3cret");
    tls.write_all(
        format!("GET /api/serverinfo HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {cred}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(PATIENCE, tls.read_to_end(&mut resp))
        .await
        .unwrap()
        .ok();
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"bindPort\""), "{resp}");
    frps.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
