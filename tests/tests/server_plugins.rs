//! Server plugins (`[[httpPlugins]]`, issue 16): frps calls a plugin server written here with
//! hyper for every op, acts on what it answers, and refuses (naming the plugin) when the answer
//! is unusable, without holding up anyone else.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use bytes::Bytes;
use common::config::{HttpPluginOptions, ServerConfig};
use frpc::status::Phase;
use frpc::ClientError;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tests::procs;
use tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One request the plugin server received.
#[derive(Debug, Clone)]
struct Seen {
    op: String,
    /// The query string (`version=0.1.0&op=...`).
    query: String,
    reqid: String,
    content_type: String,
    body: Value,
}

impl Seen {
    fn content(&self) -> &Value {
        &self.body["content"]
    }
}

/// What the plugin answers.
enum Reply {
    /// 200 with this JSON.
    Json(Value),
    /// This status and raw body.
    Raw(u16, &'static str),
    /// A 302 to `Location`.
    Redirect(String),
    /// No answer, ever.
    Hang,
}

fn keep() -> Reply {
    Reply::Json(json!({"reject": false, "unchange": true}))
}

fn reject(reason: &str) -> Reply {
    Reply::Json(json!({"reject": true, "reject_reason": reason}))
}

fn change(content: Value) -> Reply {
    Reply::Json(json!({"reject": false, "unchange": false, "content": content}))
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A plugin server on 127.0.0.1 (plain HTTP, or HTTPS with `tls`).
struct PluginServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    arrived: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PluginServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PluginServer {
    async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> PluginServer {
        PluginServer::start_with(None, Arc::new(handler)).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>, handler: Handler) -> PluginServer {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let (s2, n2) = (seen.clone(), arrived.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let (seen, arrived, handler, tls) =
                    (s2.clone(), n2.clone(), handler.clone(), tls.clone());
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (seen, arrived, handler) =
                                (seen.clone(), arrived.clone(), handler.clone());
                            async move {
                                let query = req.uri().query().unwrap_or_default().to_owned();
                                let header = |k: &str| {
                                    req.headers()
                                        .get(k)
                                        .and_then(|v| v.to_str().ok())
                                        .unwrap_or_default()
                                        .to_owned()
                                };
                                let (reqid, content_type) =
                                    (header("x-frp-reqid"), header("content-type"));
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let body: Value = serde_json::from_slice(&body).unwrap();
                                let s = Seen {
                                    op: body["op"].as_str().unwrap_or_default().to_owned(),
                                    query,
                                    reqid,
                                    content_type,
                                    body,
                                };
                                let reply = handler(&s);
                                seen.lock().unwrap().push(s);
                                arrived.notify_waiters();
                                let (code, body, location) = match reply {
                                    Reply::Json(v) => (200, v.to_string(), None),
                                    Reply::Raw(code, b) => (code, b.to_owned(), None),
                                    Reply::Redirect(to) => (302, String::new(), Some(to)),
                                    Reply::Hang => std::future::pending().await,
                                };
                                let mut resp =
                                    Response::builder().status(StatusCode::from_u16(code).unwrap());
                                if let Some(to) = location {
                                    resp = resp.header("location", to);
                                }
                                Ok::<_, std::convert::Infallible>(
                                    resp.body(Full::new(Bytes::from(body))).unwrap(),
                                )
                            }
                        });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(tcp).await {
                                let _ = http
                                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                                    .await;
                            }
                        }
                        None => {
                            let _ = http
                                .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                                .await;
                        }
                    }
                });
            }
        });
        PluginServer {
            addr,
            seen,
            arrived,
            task,
        }
    }

    fn seen(&self, op: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.op == op)
            .cloned()
            .collect()
    }

    /// The first request for `op` that satisfies `f`, waiting for it.
    async fn wait(&self, op: &str, f: impl Fn(&Seen) -> bool) -> Seen {
        let found = tokio::time::timeout(PATIENCE, async {
            loop {
                let arrived = self.arrived.notified();
                if let Some(s) = self.seen(op).into_iter().find(|s| f(s)) {
                    return s;
                }
                arrived.await;
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            panic!(
                "no {op} request in time; seen {:?}",
                self.seen.lock().unwrap()
            )
        })
    }

    /// This server as an `[[httpPlugins]]` entry for `ops`.
    fn plugin(&self, name: &str, ops: &[&str]) -> HttpPluginOptions {
        HttpPluginOptions {
            name: name.into(),
            addr: self.addr.to_string(),
            path: "/handler".into(),
            ops: ops.iter().map(|s| (*s).to_owned()).collect(),
            tls_verify: false,
        }
    }
}

/// frps with `plugins` and its dashboard (no auth) on 127.0.0.1.
async fn frps_with(plugins: Vec<HttpPluginOptions>, f: impl FnOnce(&mut ServerConfig)) -> Frps {
    let dash = free_port().await;
    Frps::start(|c| {
        c.http_plugins = plugins;
        c.web_server.addr = "127.0.0.1".into();
        c.web_server.port = dash;
        c.enable_prometheus = true;
        f(c);
    })
    .await
}

/// `GET path` on the dashboard, as JSON.
async fn api(frps: &Frps, path: &str) -> Value {
    let (code, body) = common::http::request(
        &frps.dashboard.unwrap().to_string(),
        &Default::default(),
        hyper::Method::GET,
        path,
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(code, StatusCode::OK, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The value of the plugin-call counter for these labels (0 when absent).
fn calls(frps: &Frps, plugin: &str, op: &str, outcome: &str) -> u64 {
    let text = frps.stats.metrics_text();
    let want = format!(
        "frp_rs_server_plugin_calls_total{{op=\"{op}\",outcome=\"{outcome}\",plugin=\"{plugin}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .map(|n| n.trim().parse().unwrap())
        .unwrap_or(0)
}

fn refused(r: Result<(), ClientError>) -> String {
    match r {
        Err(ClientError::Refused(e)) => e,
        other => panic!("expected a refused login, got {other:?}"),
    }
}

/// A small login allow-list (the README example's logic): users on the list get in.
fn allow_list(s: &Seen) -> Reply {
    match s.content()["user"].as_str() {
        Some("alice" | "bob") => keep(),
        Some(u) => reject(&format!("user {u:?} is not allowed")),
        None => reject("no user"),
    }
}

/// Login through the real binaries: an allow-list plugin refuses one user with its reason and
/// lets another in; the request carries frp's query, headers and Login content.
#[tokio::test]
async fn login_rejected_then_accepted_by_an_allow_list() {
    init_log();
    let plugin = PluginServer::start(allow_list).await;
    let dir = procs::tempdir("plugins-login");
    let (_frps, bind) = procs::start_frps(
        &dir,
        &format!(
            "auth.token = \"{TOKEN}\"\n[[httpPlugins]]\nname = \"allow-list\"\naddr = \"{}\"\npath = \"/handler\"\nops = [\"Login\"]\n",
            plugin.addr
        ),
    )
    .await;
    let echo = echo_tcp().await;
    let client = |user: &str, port: u16| {
        format!(
            "serverAddr = \"127.0.0.1\"\nserverPort = {bind}\nuser = \"{user}\"\nauth.token = \"{TOKEN}\"\nmetadatas.team = \"blue\"\n[[proxies]]\nname = \"echo\"\ntype = \"tcp\"\nlocalIP = \"127.0.0.1\"\nlocalPort = {}\nremotePort = {port}\n",
            echo.port()
        )
    };
    let port = free_port().await;
    let bad = procs::write(&dir, "mallory.toml", &client("mallory", port));
    let out = procs::run("frpc", &["-c", &bad]).await;
    assert!(!out.status.success());
    let err = procs::stderr(&out);
    assert!(err.contains("user \"mallory\" is not allowed"), "{err}");

    let seen = plugin
        .wait("Login", |s| s.content()["user"] == "mallory")
        .await;
    assert_eq!(seen.query, "version=0.1.0&op=Login");
    assert_eq!(seen.body["version"], "0.1.0");
    assert_eq!(seen.content_type, "application/json");
    assert_eq!(seen.reqid.len(), 16, "{:?}", seen.reqid);
    assert!(seen.reqid.bytes().all(|b| b.is_ascii_hexdigit()));
    let c = seen.content();
    assert_eq!(c["metas"]["team"], "blue");
    assert!(
        c["privilege_key"].as_str().is_some_and(|k| k.len() == 32),
        "{c}"
    );
    assert!(c["timestamp"].as_i64().is_some_and(|t| t > 0), "{c}");
    assert!(
        c["client_address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{c}"
    );

    let good = procs::write(&dir, "alice.toml", &client("alice", port));
    let _alice = procs::spawn("frpc", &["-c", &good]);
    wait_tunnel(([127, 0, 0, 1], port).into()).await;
    assert_eq!(
        echo_through(([127, 0, 0, 1], port).into(), b"hi").await,
        b"hi"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A Login plugin that rewrites the user: frps goes on with the rewritten Login (the
/// NewProxy plugin and the dashboard see the new user).
#[tokio::test]
async fn login_content_changed_by_a_plugin_is_what_frps_uses() {
    init_log();
    let plugin = PluginServer::start(|s| match s.op.as_str() {
        "Login" => {
            let mut c = s.content().clone();
            c["user"] = "renamed".into();
            change(c)
        }
        _ => keep(),
    })
    .await;
    let frps = frps_with(
        vec![plugin.plugin("rename", &["Login", "NewProxy"])],
        |_| {},
    )
    .await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.user = "original".into();
        c.proxies.push(proxy("echo", "tcp", echo, 0));
    });
    frpc.wait_running("echo").await;
    let np = plugin.wait("NewProxy", |_| true).await;
    assert_eq!(np.content()["user"]["user"], "renamed");
    let clients = api(&frps, "/api/clients").await;
    assert!(clients.to_string().contains("\"renamed\""), "{clients}");
    frpc.stop().await;
    frps.stop().await;
}

/// NewProxy rejected: the client sees the plugin's reason, frps keeps nothing of the proxy;
/// another proxy of the same client is registered.
#[tokio::test]
async fn new_proxy_rejected_with_the_plugins_reason() {
    init_log();
    let plugin = PluginServer::start(|s| {
        if s.content()["proxy_name"] == "denied" {
            reject("proxy denied has no quota left")
        } else {
            keep()
        }
    })
    .await;
    let frps = frps_with(vec![plugin.plugin("quota", &["NewProxy"])], |_| {}).await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.proxies.push(proxy("denied", "tcp", echo, 0));
        c.proxies.push(proxy("allowed", "tcp", echo, 0));
    });
    let s = frpc.wait_phase("denied", Phase::StartError).await;
    assert_eq!(s.error, "proxy denied has no quota left");
    let port = remote_port(&frpc.wait_running("allowed").await);
    assert_eq!(
        echo_through(([127, 0, 0, 1], port).into(), b"x").await,
        b"x"
    );
    let c = plugin
        .wait("NewProxy", |s| s.content()["proxy_name"] == "denied")
        .await;
    assert_eq!(c.content()["proxy_type"], "tcp");
    assert!(c.content()["user"]["run_id"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    assert_eq!(calls(&frps, "quota", "NewProxy", "rejected"), 1);
    assert_eq!(calls(&frps, "quota", "NewProxy", "unchanged"), 1);
    let text = frps.stats.metrics_text();
    assert!(
        text.contains("frp_rs_server_plugin_call_seconds_count{op=\"NewProxy\"} 2"),
        "{text}"
    );
    let proxies = api(&frps, "/api/proxy/tcp").await;
    assert!(!proxies.to_string().contains("\"denied\""), "{proxies}");
    frpc.stop().await;
    frps.stop().await;
}

/// NewProxy changed by the plugin: another remote port, and a bandwidth limit in server mode
/// the client never asked for, which frps then enforces.
#[tokio::test]
async fn new_proxy_remote_port_and_bandwidth_limit_changed_by_the_plugin() {
    init_log();
    let port = free_port().await;
    let plugin = PluginServer::start(move |s| {
        let mut c = s.content().clone();
        c["remote_port"] = port.into();
        c["bandwidth_limit"] = "64KB".into();
        c["bandwidth_limit_mode"] = "server".into();
        change(c)
    })
    .await;
    let frps = frps_with(vec![plugin.plugin("shaper", &["NewProxy"])], |_| {}).await;
    let sink = counting_sink().await;
    let frpc = Frpc::start(frps.addr, |c| c.proxies.push(proxy("slow", "tcp", sink, 0)));
    let s = frpc.wait_running("slow").await;
    assert_eq!(remote_port(&s), port, "the plugin's port is the one bound");
    let sent = plugin.wait("NewProxy", |_| true).await;
    assert_eq!(
        sent.content()["remote_port"],
        Value::Null,
        "frpc asked for no port"
    );

    assert_limited_to_64k(port, "the plugin's limit").await;
    let conf = api(&frps, "/api/proxy/tcp").await;
    assert!(
        conf.to_string()
            .contains("\"bandwidthLimitMode\":\"server\""),
        "{conf}"
    );
    frpc.stop().await;
    frps.stop().await;
}

/// CloseProxy reaches the plugin (with the proxy's name and the user) when frpc goes away.
#[tokio::test]
async fn close_proxy_is_notified() {
    init_log();
    let plugin = PluginServer::start(|_| Reply::Json(json!({}))).await;
    let frps = frps_with(vec![plugin.plugin("audit", &["CloseProxy"])], |_| {}).await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.user = "carol".into();
        c.proxies.push(proxy("echo", "tcp", echo, 0));
    });
    frpc.wait_running("echo").await;
    assert!(plugin.seen("CloseProxy").is_empty());
    frpc.stop().await;
    let seen = plugin.wait("CloseProxy", |_| true).await;
    assert_eq!(seen.content()["proxy_name"], "carol.echo");
    assert_eq!(seen.content()["user"]["user"], "carol");
    assert!(seen.content()["user"]["run_id"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    frps.stop().await;
}

/// Ping and NewWorkConn carry the client's run_id and its privilege key (with the scopes
/// that make frpc send one).
#[tokio::test]
async fn ping_and_new_work_conn_carry_run_id_and_privilege_key() {
    init_log();
    let plugin = PluginServer::start(|_| keep()).await;
    let scopes = vec!["HeartBeats".to_owned(), "NewWorkConns".to_owned()];
    let s2 = scopes.clone();
    let frps = frps_with(
        vec![plugin.plugin("watch", &["Login", "Ping", "NewWorkConn"])],
        |c| c.auth.additional_scopes = s2,
    )
    .await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.auth.additional_scopes = scopes;
        c.transport.heartbeat_interval = 1;
        c.proxies.push(proxy("echo", "tcp", echo, 0));
    });
    let port = remote_port(&frpc.wait_running("echo").await);
    assert_eq!(
        echo_through(([127, 0, 0, 1], port).into(), b"w").await,
        b"w"
    );
    let ping = plugin.wait("Ping", |_| true).await;
    let work = plugin.wait("NewWorkConn", |_| true).await;
    let run_id = ping.content()["user"]["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(run_id.len(), 16, "{}", ping.body);
    for s in [&ping, &work] {
        let c = s.content();
        assert_eq!(c["user"]["run_id"], run_id.as_str(), "{}", s.body);
        assert!(
            c["privilege_key"].as_str().is_some_and(|k| k.len() == 32),
            "{}",
            s.body
        );
        assert!(c["timestamp"].as_i64().is_some_and(|t| t > 0), "{}", s.body);
        assert!(
            c["user"].get("metas").is_some(),
            "user info has metas (null when empty)"
        );
    }
    assert_eq!(work.content()["run_id"], run_id.as_str());
    frpc.stop().await;
    frps.stop().await;
}

/// A rejected NewWorkConn never reaches the pool (the user is closed unserved), and a rejected
/// Ping reaches frpc as its Pong error, which ends that session.
#[tokio::test]
async fn ping_and_new_work_conn_rejected() {
    init_log();
    let plugin = PluginServer::start(|s| match s.op.as_str() {
        "NewWorkConn" => reject("no work connections today"),
        _ => keep(),
    })
    .await;
    let frps = frps_with(vec![plugin.plugin("gate", &["NewWorkConn"])], |c| {
        c.user_conn_timeout = 1;
    })
    .await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.transport.pool_count = 0;
        c.proxies.push(proxy("echo", "tcp", echo, 0));
    });
    let port = remote_port(&frpc.wait_running("echo").await);
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _ = s.write_all(b"x").await;
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(PATIENCE, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "no work connection, no service");
    plugin.wait("NewWorkConn", |_| true).await;
    assert!(calls(&frps, "gate", "NewWorkConn", "rejected") >= 1);
    frpc.stop().await;
    frps.stop().await;

    let plugin = PluginServer::start(|s| match s.op.as_str() {
        "Ping" => reject("stop pinging"),
        _ => keep(),
    })
    .await;
    let frps = frps_with(vec![plugin.plugin("gate", &["Ping"])], |_| {}).await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.transport.heartbeat_interval = 1;
        c.proxies.push(proxy("echo", "tcp", echo, 0));
    });
    frpc.wait_running("echo").await;
    plugin.wait("Ping", |_| true).await;
    frpc.wait_not_running("echo").await;
    frpc.stop().await;
    frps.stop().await;
}

/// NewUserConn carries the user's address; a rejected user is closed unserved, an accepted
/// one reaches the backend.
#[tokio::test]
async fn new_user_conn_with_remote_address_rejected_and_accepted() {
    init_log();
    let blocked: Arc<Mutex<Option<String>>> = Arc::default();
    let b2 = blocked.clone();
    let plugin = PluginServer::start(move |s| {
        let addr = s.content()["remote_addr"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if b2.lock().unwrap().as_deref() == Some(addr.as_str()) {
            reject("blocked address")
        } else {
            Reply::Json(json!({"reject": false}))
        }
    })
    .await;
    let frps = frps_with(vec![plugin.plugin("firewall", &["NewUserConn"])], |_| {}).await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| c.proxies.push(proxy("echo", "tcp", echo, 0)));
    let port = remote_port(&frpc.wait_running("echo").await);

    // Rejected: the user connection is closed without reaching the backend.
    let (sock, me) = local_socket();
    *blocked.lock().unwrap() = Some(me.clone());
    let mut s = sock.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let _ = s.write_all(b"ping").await;
    let mut buf = [0u8; 4];
    let n = tokio::time::timeout(PATIENCE, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "a rejected user gets nothing back");
    let seen = plugin
        .wait("NewUserConn", |s| s.content()["remote_addr"] == me.as_str())
        .await;
    let c = seen.content();
    assert_eq!(c["proxy_name"], "echo");
    assert_eq!(c["proxy_type"], "tcp");
    assert!(
        c["user"]["run_id"].as_str().is_some_and(|r| !r.is_empty()),
        "{c}"
    );
    assert_eq!(calls(&frps, "firewall", "NewUserConn", "rejected"), 1);

    // Accepted: served as usual.
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let me = s.local_addr().unwrap();
    s.write_all(b"pong").await.unwrap();
    tokio::time::timeout(PATIENCE, s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"pong");
    plugin
        .wait("NewUserConn", |s| {
            s.content()["remote_addr"] == me.to_string()
        })
        .await;
    frpc.stop().await;
    frps.stop().await;
}

/// TLS through `vhost` with server name `sni` from the socket `sock`: the backend's id line,
/// or `None` when the connection is closed first.
async fn tls_line(sock: tokio::net::TcpSocket, vhost: SocketAddr, sni: &str) -> Option<String> {
    use tokio::io::AsyncBufReadExt;
    let cfg = common::transport::tls::client_config(&Default::default()).unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let go = async {
        let tcp = sock.connect(vhost).await.ok()?;
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .ok()?;
        let mut line = String::new();
        tokio::io::BufReader::new(tls)
            .read_line(&mut line)
            .await
            .ok()?;
        Some(line.trim_end().to_owned()).filter(|l| !l.is_empty())
    };
    tokio::time::timeout(PATIENCE, go)
        .await
        .expect("tls exchange in time")
}

fn local_socket() -> (tokio::net::TcpSocket, String) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let me = sock.local_addr().unwrap().to_string();
    (sock, me)
}

/// NewUserConn is asked for https users too (routed by SNI on the vhost port), with the
/// proxy's type and the user's address.
#[tokio::test]
async fn new_user_conn_for_https_proxies() {
    init_log();
    let blocked: Arc<Mutex<String>> = Arc::default();
    let b2 = blocked.clone();
    let plugin = PluginServer::start(move |s| {
        if s.content()["remote_addr"] == b2.lock().unwrap().as_str() {
            reject("blocked")
        } else {
            keep()
        }
    })
    .await;
    let vhost_port = free_port().await;
    let frps = frps_with(vec![plugin.plugin("fw", &["NewUserConn"])], |c| {
        c.vhost_https_port = vhost_port;
    })
    .await;
    let backend = tls_backend("T1").await;
    let frpc = Frpc::start(frps.addr, |c| {
        let mut p = proxy("web", "https", backend, 0);
        p.custom_domains = vec!["tls.example.com".into()];
        c.proxies.push(p);
    });
    frpc.wait_running("web").await;
    let vhost = frps.vhost_https.unwrap();
    let (sock, me) = local_socket();
    *blocked.lock().unwrap() = me.clone();
    assert_eq!(tls_line(sock, vhost, "tls.example.com").await, None);
    let seen = plugin
        .wait("NewUserConn", |s| s.content()["remote_addr"] == me.as_str())
        .await;
    assert_eq!(seen.content()["proxy_type"], "https");
    assert_eq!(seen.content()["proxy_name"], "web");
    let (sock, _) = local_socket();
    assert_eq!(
        tls_line(sock, vhost, "tls.example.com").await.as_deref(),
        Some("T1")
    );
    frpc.stop().await;
    frps.stop().await;
}

/// A self-signed certificate for 127.0.0.1 and localhost: (acceptor, certificate PEM).
fn tls_identity() -> (tokio_rustls::TlsAcceptor, String) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let key =
        tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .unwrap();
    (
        tokio_rustls::TlsAcceptor::from(Arc::new(cfg)),
        ck.cert.pem(),
    )
}

/// An HTTPS plugin: served with `tlsVerify = false` (any certificate, as frp), refused with
/// `tlsVerify = true` when the certificate is not trusted (the dashboard names the plugin and
/// the certificate problem), and served with `tlsVerify = true` once `SSL_CERT_FILE` names its
/// CA (as Go's crypto/x509 reads it; the real frps binary, for its environment).
#[tokio::test]
async fn https_plugin_endpoint_and_tls_verify() {
    init_log();
    let (acceptor, pem) = tls_identity();
    let plugin = PluginServer::start_with(Some(acceptor), Arc::new(allow_list)).await;
    let https = |verify: bool| HttpPluginOptions {
        name: "tls-list".into(),
        addr: format!("https://{}", plugin.addr),
        path: "/handler".into(),
        ops: vec!["Login".into()],
        tls_verify: verify,
    };
    let frps = frps_with(vec![https(false)], |_| {}).await;
    let frpc = Frpc::start(frps.addr, |c| c.user = "eve".into());
    assert_eq!(refused(frpc.exited().await), "user \"eve\" is not allowed");
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.user = "alice".into();
        c.proxies.push(proxy("echo", "tcp", echo, 0));
    });
    frpc.wait_running("echo").await;
    frpc.stop().await;
    frps.stop().await;

    let frps = frps_with(vec![https(true)], |_| {}).await;
    let frpc = Frpc::start(frps.addr, |c| c.user = "alice".into());
    assert_eq!(
        refused(frpc.exited().await),
        "send Login request to plugin error"
    );
    let status = api(&frps, "/api/plugins").await;
    let p = &status["plugins"][0];
    assert_eq!(p["name"], "tls-list");
    assert_eq!(p["tlsVerify"], true);
    let last = p["lastError"].as_str().unwrap();
    assert!(
        last.contains("Login") && last.to_lowercase().contains("certificate"),
        "{last}"
    );
    assert_eq!(calls(&frps, "tls-list", "Login", "failed"), 1);
    frps.stop().await;

    // The real frps, trusting the plugin's certificate through SSL_CERT_FILE.
    let dir = procs::tempdir("plugins-tls");
    let ca = procs::write(&dir, "ca.pem", &pem);
    let bind = free_port().await;
    let cfg = procs::write(
        &dir,
        "frps.toml",
        &format!(
            "bindAddr = \"127.0.0.1\"\nbindPort = {bind}\nauth.token = \"{TOKEN}\"\n[[httpPlugins]]\nname = \"tls-list\"\naddr = \"https://127.0.0.1:{}\"\npath = \"/handler\"\nops = [\"Login\"]\ntlsVerify = true\n",
            plugin.addr.port()
        ),
    );
    let _frps = tokio::process::Command::new(bin("frps"))
        .args(["-c", &cfg])
        .env("SSL_CERT_FILE", &ca)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], bind).into();
    wait_listening(addr).await;
    let frpc = Frpc::start(addr, |c| {
        c.user = "alice".into();
        c.proxies.push(proxy("echo", "tcp", echo, 0));
    });
    frpc.wait_running("echo").await;
    frpc.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Plugins run in order: the second sees what the first changed, and a rejection stops the
/// chain before later plugins.
#[tokio::test]
async fn plugins_are_chained_in_order_and_a_rejection_stops_the_chain() {
    init_log();
    let first = PluginServer::start(|s| {
        let mut c = s.content().clone();
        c["metas"] = json!({"tier": "gold"});
        if c["proxy_name"] == "stop" {
            return reject("stopped by the first");
        }
        change(c)
    })
    .await;
    let second = PluginServer::start(|_| keep()).await;
    let frps = frps_with(
        vec![
            first.plugin("first", &["NewProxy"]),
            second.plugin("second", &["NewProxy"]),
        ],
        |_| {},
    )
    .await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.proxies.push(proxy("stop", "tcp", echo, 0));
        c.proxies.push(proxy("go", "tcp", echo, 0));
    });
    frpc.wait_running("go").await;
    let s = frpc.wait_phase("stop", Phase::StartError).await;
    assert_eq!(s.error, "stopped by the first");
    let seen = second.wait("NewProxy", |_| true).await;
    assert_eq!(
        seen.content()["metas"]["tier"],
        "gold",
        "the first plugin's change"
    );
    assert_eq!(
        second.seen("NewProxy").len(),
        1,
        "the rejected proxy never reached the second"
    );
    frpc.stop().await;
    frps.stop().await;
}

/// Unusable answers (not JSON, a 500, unknown keys, wrong types, a redirect) refuse the login
/// with frp's text; the dashboard and the log name the plugin and the reason; a user the
/// plugin accepts still gets in.
#[tokio::test]
async fn unusable_answers_refuse_the_operation_naming_the_plugin() {
    init_log();
    let target = PluginServer::start(|_| keep()).await;
    let to = format!("http://{}/handler", target.addr);
    let plugin = PluginServer::start(move |s| match s.content()["user"].as_str().unwrap_or("") {
        "nonjson" => Reply::Raw(200, "<html>ok</html>"),
        "error500" => Reply::Raw(500, "{\"reject\": false, \"unchange\": true}"),
        "unknown" => Reply::Json(json!({"reject": false, "unchange": true, "allow": true})),
        "unknowncontent" => change(json!({"user": "x", "admin": true})),
        "wrongtype" => Reply::Json(json!({"reject": false, "unchange": "false"})),
        "wrongcontent" => change(json!({"user": 5})),
        "redirect" => Reply::Redirect(to.clone()),
        _ => keep(),
    })
    .await;
    let frps = frps_with(vec![plugin.plugin("picky", &["Login"])], |_| {}).await;
    let cases = [
        ("nonjson", "answer is not JSON"),
        ("error500", "do http request error code: 500"),
        ("unknown", "unknown key allow"),
        ("unknowncontent", "unknown key content.admin"),
        ("wrongtype", "unchange: expected"),
        ("wrongcontent", "content.user: expected"),
        ("redirect", "302 (redirects are not followed)"),
    ];
    for (i, (user, why)) in cases.iter().enumerate() {
        let frpc = Frpc::start(frps.addr, |c| c.user = (*user).into());
        assert_eq!(
            refused(frpc.exited().await),
            "send Login request to plugin error",
            "{user}"
        );
        let status = api(&frps, "/api/plugins").await;
        let last = status["plugins"][0]["lastError"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(last.contains(why), "{user}: {last}");
        assert_eq!(calls(&frps, "picky", "Login", "failed"), i as u64 + 1);
    }
    assert!(
        target.seen("Login").is_empty(),
        "the redirect was not followed"
    );
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.user = "fine".into();
        c.proxies.push(proxy("echo", "tcp", echo, 0));
    });
    frpc.wait_running("echo").await;
    frpc.stop().await;
    frps.stop().await;
}

/// A plugin that never answers fails that login after a bounded time with frp's text, while
/// other clients log in and are served meanwhile.
#[tokio::test]
async fn a_plugin_that_never_answers_fails_only_that_operation() {
    init_log();
    let plugin = PluginServer::start(|s| {
        if s.content()["user"] == "slow" {
            Reply::Hang
        } else {
            keep()
        }
    })
    .await;
    let frps = frps_with(vec![plugin.plugin("stuck", &["Login"])], |_| {}).await;
    let slow = Frpc::start(frps.addr, |c| c.user = "slow".into());
    plugin
        .wait("Login", |s| s.content()["user"] == "slow")
        .await;
    // While the slow login waits on its plugin, another client logs in and is served.
    let echo = echo_tcp().await;
    let fast = Frpc::start(frps.addr, |c| {
        c.user = "fast".into();
        c.proxies.push(proxy("echo", "tcp", echo, 0));
    });
    let port = remote_port(&fast.wait_running("echo").await);
    assert_eq!(
        echo_through(([127, 0, 0, 1], port).into(), b"f").await,
        b"f"
    );
    assert_eq!(
        calls(&frps, "stuck", "Login", "failed"),
        0,
        "the slow login is still waiting"
    );
    assert_eq!(
        refused(slow.exited().await),
        "send Login request to plugin error"
    );
    let status = api(&frps, "/api/plugins").await;
    let last = status["plugins"][0]["lastError"].as_str().unwrap();
    assert!(last.contains("no answer within 5s"), "{last}");
    fast.stop().await;
    frps.stop().await;
}

/// `frps verify` checks each plugin's addr and ops, naming the entry.
#[tokio::test]
async fn verify_checks_plugin_addr_and_ops() {
    let dir = procs::tempdir("plugins-verify");
    let f = procs::write(
        &dir,
        "frps.toml",
        "[[httpPlugins]]\nname = \"a\"\naddr = \"http://\"\npath = \"/h\"\nops = [\"Login\"]\n[[httpPlugins]]\nname = \"b\"\naddr = \"127.0.0.1:9000\"\npath = \"/h\"\nops = [\"Logout\"]\n",
    );
    let out = procs::run("frps", &["verify", "-c", &f]).await;
    assert!(!out.status.success());
    let err = procs::stderr(&out);
    assert!(
        err.contains("httpPlugins[0].addr") && err.contains("is not a URL"),
        "{err}"
    );
    assert!(
        err.contains("httpPlugins[1].ops[0]") && err.contains("Logout"),
        "{err}"
    );
    let ok = procs::write(
        &dir,
        "ok.toml",
        "[[httpPlugins]]\nname = \"a\"\naddr = \"https://127.0.0.1:9000\"\npath = \"/h\"\nops = [\"Login\", \"NewUserConn\"]\ntlsVerify = true\n",
    );
    let out = procs::run("frps", &["verify", "-c", &ok]).await;
    assert!(out.status.success(), "{}", procs::stderr(&out));
    let _ = std::fs::remove_dir_all(dir);
}
