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

/// The dashboard on 127.0.0.1:`port`, with [`auth`]'s credentials.
fn dashboard_on(c: &mut common::config::ServerConfig, port: u16) {
    c.web_server.addr = "127.0.0.1".into();
    c.web_server.port = port;
    c.web_server.user = "admin".into();
    c.web_server.password = "s3cret".into();
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

/// frps with its dashboard on 127.0.0.1 behind [`auth`].
async fn frps_with_dashboard(prometheus: bool) -> Frps {
    let dash_port = free_port().await;
    Frps::start(|c| {
        dashboard_on(c, dash_port);
        c.enable_prometheus = prometheus;
    })
    .await
}

#[tokio::test]
async fn prometheus_series_move_with_traffic_and_dashboard_answers() {
    init_log();
    let frps = frps_with_dashboard(true).await;
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
    assert_eq!(get(dash, "/api/clients?status=offline").await.1, "[]\n");
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
        serde_json::json!({"code": 400, "msg": "pageSize must be between 1 and 200", "data": null})
    );
    let (_, body) = get(dash, "/api/v2/proxies?type=tcp&q=we").await;
    let v = json(&body);
    let p = &v["data"]["items"][0];
    assert_eq!(
        (&p["name"], &p["status"]["phase"]),
        (&"web".into(), &"online".into())
    );
    assert_eq!(p["status"]["todayTrafficIn"], 1000);
    assert_eq!(p["spec"]["tcp"]["remotePort"], i64::from(port));
    let (_, body) = get(dash, "/api/v2/proxies/web/traffic").await;
    let v = json(&body);
    assert_eq!(v["data"]["history"][6]["trafficOut"], 1000, "today is last");
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
    // Keyed by its run id (no clientID): the record goes with the client, as in frp.
    assert_eq!(
        get(dash, &format!("/api/clients/{key}")).await.0,
        StatusCode::NOT_FOUND
    );
    frps.stop().await;
}

/// frps with its dashboard on 127.0.0.1 without credentials.
async fn frps_with_open_dashboard() -> (Frps, SocketAddr) {
    init_log();
    let dash_port = free_port().await;
    let frps = Frps::start(|c| {
        c.web_server.addr = "127.0.0.1".into();
        c.web_server.port = dash_port;
    })
    .await;
    let dash = frps.dashboard.unwrap();
    (frps, dash)
}

#[tokio::test]
async fn no_metrics_endpoint_without_enable_prometheus() {
    let (frps, dash) = frps_with_open_dashboard().await;
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

/// Replaces what changes from run to run (times, run ids, host names, dates) with markers.
fn normalize(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                let marker = match k.as_str() {
                    "firstConnectedAt" | "lastConnectedAt" | "disconnectedAt" | "lastStartAt"
                    | "lastCloseAt" => x.as_i64().filter(|t| *t > 0).map(|_| "<time>"),
                    "lastStartTime" | "lastCloseTime" => {
                        x.as_str().filter(|s| !s.is_empty()).map(|_| "<time>")
                    }
                    "runID" => x.as_str().filter(|s| !s.is_empty()).map(|_| "<run>"),
                    "hostname" => Some("<host>"),
                    "date" => Some("<date>"),
                    _ => None,
                };
                match marker {
                    Some(s) => *x = Value::from(s),
                    None => normalize(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// Checks each endpoint's status and whole JSON body against the expected one.
async fn check_table(dash: SocketAddr, table: &[(Method, &str, StatusCode, serde_json::Value)]) {
    for (method, path, code, want) in table {
        let (got_code, body) = call(dash, method.clone(), path).await;
        let mut got = json(&body);
        normalize(&mut got);
        assert_eq!(
            (got_code, &got),
            (*code, want),
            "{method} {path}:\n got  {got}\n want {want}"
        );
    }
}

/// Every dashboard endpoint answers with frp 0.70's shapes (`server/http/model`, the
/// controllers in `server/http/*.go`), field by field, online and offline.
#[tokio::test]
async fn dashboard_answers_match_frps_models_field_by_field() {
    use serde_json::json;
    init_log();
    let frps = frps_with_dashboard(false).await;
    let dash = frps.dashboard.unwrap();
    let (tcp_port, udp_port) = (free_port().await, free_port().await);
    let (tcp_echo, udp_echo) = (echo_tcp().await, echo_udp().await);
    let frpc = Frpc::start(frps.addr, |c| {
        c.user = "alice".into();
        c.client_id = "laptop".into();
        let mut web = proxy("web", "tcp", tcp_echo, tcp_port);
        web.transport.use_encryption = true;
        web.annotations.insert("a".into(), "1".into());
        web.metadatas.insert("m".into(), "2".into());
        c.proxies.push(web);
        c.proxies.push(proxy("dns", "udp", udp_echo, udp_port));
    });
    frpc.wait_running("web").await;
    frpc.wait_running("dns").await;

    let client = json!({
        "key": "alice.laptop", "user": "alice", "clientID": "laptop", "runID": "<run>",
        "version": "0.70.1", "wireProtocol": "v1", "transport": "tcp", "hostname": "<host>",
        "clientIP": "127.0.0.1", "firstConnectedAt": "<time>", "lastConnectedAt": "<time>",
        "online": true,
    });
    let web_conf = json!({
        "name": "alice.web", "type": "tcp", "annotations": {"a": "1"},
        "transport": {"useEncryption": true, "bandwidthLimit": "", "bandwidthLimitMode": "client"},
        "metadatas": {"m": "2"}, "loadBalancer": {"group": ""},
        "healthCheck": {"type": "", "intervalSeconds": 0}, "localIP": "127.0.0.1",
        "plugin": null, "remotePort": tcp_port,
    });
    let stats = |name: &str, conf: serde_json::Value| {
        json!({
            "name": name, "conf": conf, "user": "alice", "clientID": "laptop",
            "todayTrafficIn": 0, "todayTrafficOut": 0, "curConns": 0,
            "lastStartTime": "<time>", "lastCloseTime": "", "status": "online",
        })
    };
    let web_stats = stats("alice.web", web_conf);
    let v2_transport = |enc: bool| json!({"useEncryption": enc, "useCompression": false, "bandwidthLimit": "", "bandwidthLimitMode": "client"});
    let v2_web = json!({
        "name": "alice.web", "user": "alice", "clientID": "laptop",
        "spec": {"type": "tcp", "tcp": {
            "annotations": {"a": "1"}, "metadatas": {"m": "2"}, "transport": v2_transport(true),
            "loadBalancer": {"group": ""}, "remotePort": tcp_port,
        }},
        "status": {"phase": "online", "todayTrafficIn": 0, "todayTrafficOut": 0, "curConns": 0, "lastStartAt": "<time>"},
    });
    let v2_dns = json!({
        "name": "alice.dns", "user": "alice", "clientID": "laptop",
        "spec": {"type": "udp", "udp": {
            "transport": v2_transport(false), "loadBalancer": {"group": ""}, "remotePort": udp_port,
        }},
        "status": {"phase": "online", "todayTrafficIn": 0, "todayTrafficOut": 0, "curConns": 0, "lastStartAt": "<time>"},
    });
    let ok = |data: serde_json::Value| json!({"code": 200, "msg": "success", "data": data});
    let v2_err = |code: u16, msg: &str| json!({"code": code, "msg": msg, "data": null});
    let page = |items: serde_json::Value, total: usize| json!({"total": total, "page": 1, "pageSize": 50, "items": items});
    let zeros = json!([0, 0, 0, 0, 0, 0, 0]);
    let history: Vec<serde_json::Value> = (0..7)
        .map(|_| json!({"date": "<date>", "trafficIn": 0, "trafficOut": 0}))
        .collect();
    let server_config = json!({
        "bindPort": 0, "vhostHTTPPort": 0, "vhostHTTPSPort": 0, "tcpmuxHTTPConnectPort": 0,
        "kcpBindPort": 0, "quicBindPort": 0, "subdomainHost": "", "maxPoolCount": 5,
        "maxPortsPerClient": 0, "heartbeatTimeout": -1, "allowPortsStr": "", "tlsForce": false,
    });
    let server_status = json!({
        "totalTrafficIn": 0, "totalTrafficOut": 0, "curConns": 0, "clientCounts": 1,
        "proxyTypeCount": {"tcp": 1, "udp": 1},
    });
    let mut server_info = json!({"version": "0.70.1"});
    for (k, v) in server_config
        .as_object()
        .unwrap()
        .iter()
        .chain(server_status.as_object().unwrap())
    {
        // omitempty in frp's ServerInfoResp
        if !(k == "allowPortsStr" || k == "tlsForce") {
            server_info[k] = v.clone();
        }
    }
    let (g, d, p) = (Method::GET, Method::DELETE, Method::POST);
    let c200 = StatusCode::OK;
    check_table(
        dash,
        &[
            (g.clone(), "/api/serverinfo", c200, server_info),
            (g.clone(), "/api/proxy/tcp", c200, json!({"proxies": [web_stats.clone()]})),
            (g.clone(), "/api/proxy/tcp/alice.web", c200, web_stats.clone()),
            (g.clone(), "/api/proxies/alice.web", c200, web_stats.clone()),
            (g.clone(), "/api/proxy/tcp/alice.dns", StatusCode::NOT_FOUND, json!({"Code": 404, "Msg": "no proxy info found"})),
            (g.clone(), "/api/traffic/alice.web", c200, json!({"name": "alice.web", "trafficIn": zeros, "trafficOut": zeros})),
            (g.clone(), "/api/clients", c200, json!([client.clone()])),
            (g.clone(), "/api/clients/alice.laptop", c200, client.clone()),
            (g.clone(), "/api/clients/nobody", StatusCode::NOT_FOUND, json!({"Code": 404, "Msg": "client nobody not found"})),
            (d.clone(), "/api/proxies", StatusCode::BAD_REQUEST, json!({"Code": 400, "Msg": "status only support offline"})),
            (g.clone(), "/api/v2/system/info", c200, ok(json!({"version": "0.70.1", "config": server_config, "status": server_status}))),
            (g.clone(), "/api/v2/users", c200, ok(page(json!([{"user": "alice", "clientCount": 1, "proxyCount": 2}]), 1))),
            (g.clone(), "/api/v2/clients", c200, ok(page(json!([client.clone()]), 1))),
            (g.clone(), "/api/v2/clients/alice.laptop", c200, ok({
                let mut c = client.clone();
                c["status"] = json!({"phase": "online", "curConns": 0, "proxyCount": 2});
                c
            })),
            (g.clone(), "/api/v2/clients?pageSize=500", StatusCode::BAD_REQUEST, v2_err(400, "pageSize must be between 1 and 200")),
            (g.clone(), "/api/v2/proxies", c200, ok(page(json!([v2_web.clone(), v2_dns.clone()]), 2))),
            (g.clone(), "/api/v2/proxies?q=no-such-proxy", c200, ok(page(json!([]), 0))),
            (g.clone(), &format!("/api/v2/proxies?q={udp_port}"), c200, ok(page(json!([v2_dns.clone()]), 1))),
            (g.clone(), "/api/v2/proxies/alice.web", c200, ok(v2_web.clone())),
            (g.clone(), "/api/v2/proxies/nope", StatusCode::NOT_FOUND, v2_err(404, "no proxy info found")),
            (g.clone(), "/api/v2/proxies/alice.web/traffic", c200, ok(json!({"name": "alice.web", "unit": "bytes", "granularity": "day", "history": history}))),
            (p.clone(), "/api/v2/system/prune", StatusCode::BAD_REQUEST, v2_err(400, "type is required")),
            (p.clone(), "/api/v2/system/prune?type=offline_proxies", c200, ok(json!({"type": "offline_proxies", "cleared": 0, "total": 2}))),
        ],
    )
    .await;

    // Offline: the proxies keep their statistics with an empty spec, the client (explicit
    // clientID) stays as history.
    frpc.stop().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while json(&get(dash, "/api/clients/alice.laptop").await.1)["online"] != false {
        assert!(
            tokio::time::Instant::now() < deadline,
            "client never went offline"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut offline = client.clone();
    offline["online"] = false.into();
    offline["runID"] = "".into();
    offline["disconnectedAt"] = "<time>".into();
    let mut web_offline = web_stats.clone();
    web_offline["conf"] = serde_json::Value::Null;
    web_offline["status"] = "offline".into();
    web_offline["lastCloseTime"] = "<time>".into();
    let v2_web_offline = json!({
        "name": "alice.web", "user": "alice", "clientID": "laptop",
        "spec": {"type": "tcp", "tcp": {}},
        "status": {"phase": "offline", "todayTrafficIn": 0, "todayTrafficOut": 0, "curConns": 0, "lastStartAt": "<time>", "lastCloseAt": "<time>"},
    });
    check_table(
        dash,
        &[
            (
                g.clone(),
                "/api/clients/alice.laptop",
                c200,
                offline.clone(),
            ),
            (
                g.clone(),
                "/api/v2/clients/alice.laptop",
                c200,
                ok({
                    let mut c = offline.clone();
                    c["status"] = json!({"phase": "offline", "curConns": 0, "proxyCount": 2});
                    c
                }),
            ),
            (g.clone(), "/api/proxy/tcp/alice.web", c200, web_offline),
            (
                g.clone(),
                "/api/v2/proxies/alice.web",
                c200,
                ok(v2_web_offline),
            ),
            (g.clone(), "/api/serverinfo", c200, {
                let (_, body) = get(dash, "/api/serverinfo").await;
                let mut v = json(&body);
                assert_eq!(
                    v["proxyTypeCount"],
                    json!({"tcp": 0, "udp": 0}),
                    "frp keeps types seen, at 0"
                );
                normalize(&mut v);
                v
            }),
            (
                d.clone(),
                "/api/proxies?status=offline",
                c200,
                json!({"Code": 200, "Msg": "success"}),
            ),
            (g.clone(), "/api/v2/proxies", c200, ok(page(json!([]), 0))),
            // Ours: frp has no way to forget offline clients.
            (
                p.clone(),
                "/api/v2/system/prune?type=offline_clients",
                c200,
                ok(json!({"type": "offline_clients", "cleared": 1, "total": 1})),
            ),
            (
                g.clone(),
                "/api/clients/alice.laptop",
                StatusCode::NOT_FOUND,
                json!({"Code": 404, "Msg": "client alice.laptop not found"}),
            ),
            (
                p.clone(),
                "/api/v2/system/prune?type=clients",
                StatusCode::BAD_REQUEST,
                v2_err(400, "type must be one of offline_proxies, offline_clients"),
            ),
        ],
    )
    .await;

    // A client without clientID is keyed by its run id, and forgotten when it leaves.
    let anon = Frpc::start(frps.addr, |_| {});
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let key = loop {
        let list = json(&get(dash, "/api/clients?status=online").await.1);
        if let Some(k) = list[0]["key"].as_str() {
            break k.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "anonymous client never listed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    anon.stop().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while get(dash, &format!("/api/clients/{key}")).await.0 != StatusCode::NOT_FOUND {
        assert!(
            tokio::time::Instant::now() < deadline,
            "run-id client record kept offline"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    frps.stop().await;
}

/// A proxy frps refused never started: the v2 list shows no `lastStartAt` for it.
#[tokio::test]
async fn refused_proxy_has_no_start_time_in_the_v2_list() {
    init_log();
    let dash_port = free_port().await;
    let allowed = free_port().await;
    let frps = Frps::start(|c| {
        dashboard_on(c, dash_port);
        c.allow_ports = vec![common::config::PortsRange {
            single: allowed,
            ..Default::default()
        }];
    })
    .await;
    let dash = frps.dashboard.unwrap();
    let echo = echo_tcp().await;
    let refused_port = free_port().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.proxies.push(proxy("ok", "tcp", echo, allowed));
        c.proxies.push(proxy("refused", "tcp", echo, refused_port));
    });
    frpc.wait_running("ok").await;
    frpc.wait_phase("refused", frpc::status::Phase::StartError)
        .await;
    let (_, body) = get(dash, "/api/v2/proxies").await;
    let v = json(&body);
    let items = v["data"]["items"].as_array().unwrap();
    let find = |name: &str| items.iter().find(|p| p["name"] == name);
    assert!(
        find("ok").unwrap()["status"]["lastStartAt"].as_i64() > Some(0),
        "{body}"
    );
    if let Some(p) = find("refused") {
        assert!(p["status"].get("lastStartAt").is_none(), "{body}");
    }
    frpc.stop().await;
    frps.stop().await;
}

/// A GET of `path` with `Host: host` on a fresh connection; the raw answer.
async fn get_with_host(dash: SocketAddr, path: &str, host: &str) -> String {
    let mut c = TcpStream::connect(dash).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    c.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, c.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn dashboard_without_credentials_refuses_foreign_host_names() {
    let (frps, dash) = frps_with_open_dashboard().await;
    let evil = get_with_host(
        dash,
        "/api/serverinfo",
        &format!("evil.example:{}", dash.port()),
    )
    .await;
    assert!(evil.starts_with("HTTP/1.1 403"), "{evil:?}");
    assert!(evil.contains("Host"), "{evil:?}");
    let ok = get_with_host(dash, "/api/serverinfo", &dash.to_string()).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok:?}");
    frps.stop().await;
}

#[tokio::test]
async fn dashboard_reads_no_request_body() {
    let (frps, dash) = frps_with_open_dashboard().await;
    // A POST that declares a large body is refused before any of it is read.
    let mut c = TcpStream::connect(dash).await.unwrap();
    let head = format!(
        "POST /api/v2/system/prune HTTP/1.1\r\nHost: {dash}\r\nContent-Length: {}\r\n\r\n",
        1 << 20
    );
    c.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let r = tokio::time::timeout(PATIENCE, c.read_to_end(&mut got)).await;
    let got = String::from_utf8_lossy(&got);
    assert!(r.is_ok(), "the dashboard waited for the body: {got:?}");
    assert!(got.starts_with("HTTP/1.1 413"), "{got:?}");
    frps.stop().await;
}

/// http, https and tcpmux proxies appear in `frp_server_proxy_counts` by type and their traffic
/// in `frp_server_traffic_in/out` by name and type, as tcp's do.
#[tokio::test]
async fn vhost_proxies_in_prometheus_series_by_type() {
    init_log();
    let (dash_port, http_port, https_port, mux_port) = (
        free_port().await,
        free_port().await,
        free_port().await,
        free_port().await,
    );
    let frps = Frps::start(|c| {
        dashboard_on(c, dash_port);
        c.enable_prometheus = true;
        c.vhost_http_port = http_port;
        c.vhost_https_port = https_port;
        c.tcpmux_http_connect_port = mux_port;
    })
    .await;
    let dash = frps.dashboard.unwrap();
    let (web, tls, echo) = (
        tests::http_backend::start("H").await,
        IdServer::start("S").await,
        echo_tcp().await,
    );
    let vhost = |name: &str, kind: &str, local: SocketAddr, domain: &str| {
        let mut p = proxy(name, kind, local, 0);
        p.custom_domains = vec![domain.into()];
        p
    };
    let mut mux = vhost("m", "tcpmux", echo, "m.example.com");
    mux.multiplexer = "httpconnect".into();
    let frpc = Frpc::start(frps.addr, |c| {
        c.proxies = vec![
            vhost("h", "http", web, "h.example.com"),
            vhost("s", "https", tls.addr, "s.example.com"),
            mux,
        ];
    });
    for n in ["h", "s", "m"] {
        frpc.wait_running(n).await;
    }
    let s = scrape(dash).await;
    for kind in ["http", "https", "tcpmux"] {
        assert_eq!(
            value(&s, "frp_server_proxy_counts", &[("type", kind)]),
            Some(1.0),
            "{kind}"
        );
    }

    // http: one request and its answer.
    let answer =
        tests::http_backend::get(frps.vhost_http.unwrap(), "h.example.com", "/", &[]).await;
    assert_eq!(
        (answer.status, answer.text().lines().next()),
        (200, Some("H"))
    );
    // https: a ClientHello for s.example.com reaches the backend, which answers "S".
    let tcp = TcpStream::connect(frps.vhost_https.unwrap()).await.unwrap();
    let cfg = common::transport::tls::client_config(&Default::default()).unwrap();
    let sni = tokio_rustls::rustls::pki_types::ServerName::try_from("s.example.com").unwrap();
    let hello = tokio_rustls::TlsConnector::from(cfg).connect(sni, tcp);
    let _ = tokio::time::timeout(PATIENCE, hello)
        .await
        .expect("https in time");
    // tcpmux: 5 bytes through a CONNECT tunnel and back.
    let mut tunnel = TcpStream::connect(frps.tcpmux.unwrap()).await.unwrap();
    tunnel
        .write_all(b"CONNECT m.example.com:1 HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut ok = vec![0u8; "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".len()];
    tunnel.read_exact(&mut ok).await.unwrap();
    tunnel.write_all(b"hello").await.unwrap();
    let mut back = [0u8; 5];
    tunnel.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hello");

    let traffic = |s: &[Sample], name: &str, kind: &str| {
        let labels = [("name", name), ("type", kind)];
        (
            value(s, "frp_server_traffic_in", &labels).unwrap_or(0.0),
            value(s, "frp_server_traffic_out", &labels).unwrap_or(0.0),
        )
    };
    wait_until("vhost traffic counted", || async {
        let s = scrape(dash).await;
        let (h, t, m) = (
            traffic(&s, "h", "http"),
            traffic(&s, "s", "https"),
            traffic(&s, "m", "tcpmux"),
        );
        // http: the request head in, the answer out; https: the ClientHello in, "S" out;
        // tcpmux: exactly the tunnelled bytes (the CONNECT exchange is frps's own).
        h.0 > 0.0 && h.1 > 0.0 && t.0 > 0.0 && t.1 == 1.0 && m == (5.0, 5.0)
    })
    .await;
    frpc.stop().await;
    frps.stop().await;
}
