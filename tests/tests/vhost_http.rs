//! http proxies through frps's vhost HTTP server (`vhostHTTPPort`), with our frpc in-process,
//! hyper backends and a hyper client (raw sockets where the test is about malformed input).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use bytes::Bytes;
use common::config::{ProxyConfig, ServerConfig};
use frpc::status::Phase;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Request;
use std::net::SocketAddr;
use tests::http_backend::{self as backend, basic, empty, get, send, Answer, BIG};
use tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NOT_FOUND_TEXT: &str = "The page you requested was not found.";

/// An http proxy for `domains` to `local`.
fn http(name: &str, local: SocketAddr, domains: &[&str]) -> ProxyConfig {
    let mut p = proxy(name, "http", local, 0);
    p.custom_domains = domains.iter().map(|d| d.to_string()).collect();
    p
}

/// frps with a vhost HTTP port and `subDomainHost = "frps.test"`, frpc with `proxies`, every
/// proxy running. Returns the vhost address.
async fn start(
    f: impl FnOnce(&mut ServerConfig),
    proxies: Vec<ProxyConfig>,
) -> (Frps, Frpc, SocketAddr) {
    init_log();
    let port = free_port().await;
    let frps = Frps::start(|c| {
        c.vhost_http_port = port;
        c.sub_domain_host = "frps.test".into();
        f(c);
    })
    .await;
    let names: Vec<String> = proxies.iter().map(|p| p.name.clone()).collect();
    let frpc = Frpc::start(frps.addr, |c| c.proxies = proxies);
    for n in &names {
        frpc.wait_running(n).await;
    }
    let vhost = frps.vhost_http.expect("vhost http address");
    (frps, frpc, vhost)
}

fn first_line(a: &Answer) -> String {
    a.text().lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn routes_by_host_wildcard_subdomain_and_location() {
    let (a, b, c, d) = (
        backend::start("A").await,
        backend::start("B").await,
        backend::start("C").await,
        backend::start("D").await,
    );
    let mut sub = proxy("sub", "http", c, 0);
    sub.subdomain = "app".into();
    let mut api = http("api", d, &["a.example.com"]);
    api.locations = vec!["/api".into()];
    let (frps, frpc, vhost) = start(
        |_| {},
        vec![
            http("exact", a, &["a.example.com"]),
            http("wild", b, &["*.example.com"]),
            sub,
            api,
        ],
    )
    .await;
    let port = vhost.port();
    assert_eq!(
        frpc.wait_running("exact").await.remote_addr,
        format!("a.example.com:{port}")
    );
    let id = |host: &'static str, path: &'static str| async move {
        first_line(&get(vhost, host, path, &[]).await)
    };
    assert_eq!(id("a.example.com", "/").await, "A");
    assert_eq!(id("A.Example.COM.:8080", "/x").await, "A", "canonical host");
    assert_eq!(id("x.example.com", "/").await, "B");
    assert_eq!(
        id("x.y.z.example.com", "/").await,
        "B",
        "wildcard of any depth"
    );
    assert_eq!(id("app.frps.test", "/").await, "C", "subdomain");
    assert_eq!(
        id("a.example.com", "/api/v1").await,
        "D",
        "longest location"
    );
    assert_eq!(id("a.example.com", "/%61pi").await, "D", "decoded path");
    let none = get(vhost, "nowhere.test", "/", &[]).await;
    assert_eq!(none.status, 404);
    assert!(none.text().contains(NOT_FOUND_TEXT), "{}", none.text());

    // Closing the client removes its routes.
    frpc.stop().await;
    wait_until("route still served after close", || async {
        get(vhost, "a.example.com", "/", &[]).await.status == 404
    })
    .await;
    frps.stop().await;
}

#[tokio::test]
async fn headers_are_set_rewritten_and_forwarded() {
    let (be, accepted) = backend::start_counted("H").await;
    let mut p = http("web", be, &["web.example.com"]);
    p.host_header_rewrite = "backend.local".into();
    p.request_headers
        .set
        .insert("x-from-frp".into(), "yes".into());
    p.response_headers.set.insert("x-resp".into(), "set".into());
    let (frps, frpc, vhost) = start(|_| {}, vec![p]).await;
    let mut client = backend::connect(vhost).await;
    for _ in 0..3 {
        // Keep-alive: every request on the same user connection.
        let req = Request::get("/path?q=1")
            .header("host", "web.example.com")
            .header("x-forwarded-for", "10.0.0.1")
            .header("x-from-frp", "client-value")
            .body(empty())
            .unwrap();
        let a = send(&mut client, req).await;
        assert_eq!(a.status, 200);
        let t = a.text();
        assert!(t.contains("GET /path?q=1\n"), "{t}");
        assert!(t.contains("host: backend.local\n"), "{t}");
        assert!(t.contains("x-from-frp: yes\n"), "{t}");
        assert!(t.contains("x-forwarded-for: 10.0.0.1, 127.0.0.1\n"), "{t}");
        assert!(t.contains("x-forwarded-host: web.example.com\n"), "{t}");
        assert!(t.contains("x-forwarded-proto: http\n"), "{t}");
        assert_eq!(a.headers["x-resp"], "set");
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "three requests of one user connection share one work connection and backend connection"
    );
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn basic_auth_401_and_proxy_style_407() {
    let be = backend::start("S").await;
    let mut p = http("sec", be, &["secure.example.com"]);
    p.http_user = "u".into();
    p.http_password = "p".into();
    let (frps, frpc, vhost) = start(|_| {}, vec![p]).await;
    let h = "secure.example.com";
    for creds in [None, Some(basic("u", "wrong")), Some(basic("x", "p"))] {
        let hdrs: Vec<(&str, &str)> = creds
            .iter()
            .map(|c| ("authorization", c.as_str()))
            .collect();
        let a = get(vhost, h, "/", &hdrs).await;
        assert_eq!(a.status, 401, "{creds:?}");
        assert_eq!(a.headers["www-authenticate"], "Basic realm=\"Restricted\"");
    }
    let ok = get(vhost, h, "/", &[("authorization", &basic("u", "p"))]).await;
    assert_eq!((ok.status, first_line(&ok)), (200, "S".into()));

    let abs = "http://secure.example.com/";
    let a = get(vhost, h, abs, &[]).await;
    assert_eq!(a.status, 407);
    assert_eq!(
        a.headers["proxy-authenticate"],
        "Basic realm=\"Restricted\""
    );
    let ok = get(vhost, h, abs, &[("proxy-authorization", &basic("u", "p"))]).await;
    assert_eq!(ok.status, 200);
    assert!(
        !ok.text().contains("proxy-authorization"),
        "Proxy-Authorization is hop-by-hop: {}",
        ok.text()
    );
    frpc.stop().await;
    frps.stop().await;
}

/// frp PR #5285: the user that routes a request (from Proxy-Authorization) must not let it skip
/// the chosen proxy's own credential check, whatever the Authorization header says.
#[tokio::test]
async fn route_by_http_user_cannot_skip_the_chosen_proxys_credentials() {
    let (secret, public) = (
        backend::start("SECRET").await,
        backend::start("PUBLIC").await,
    );
    let mut s = http("secret", secret, &["shared.example.com"]);
    s.route_by_http_user = "admin".into();
    s.http_user = "admin".into();
    s.http_password = "s3cret".into();
    let p = http("public", public, &["shared.example.com"]);
    let (frps, frpc, vhost) = start(|_| {}, vec![s, p]).await;
    let h = "shared.example.com";
    let abs = "http://shared.example.com/";
    let wrong = basic("admin", "wrong");
    let anyone = basic("anyone", "x");
    let right = basic("admin", "s3cret");
    type Attempt<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16);
    let attempts: Vec<Attempt<'_>> = vec![
        (abs, vec![("proxy-authorization", &wrong)], 407),
        (
            abs,
            vec![("proxy-authorization", &wrong), ("authorization", &anyone)],
            407,
        ),
        (
            abs,
            vec![("proxy-authorization", &wrong), ("authorization", &right)],
            407,
        ),
        ("/", vec![("authorization", &wrong)], 401),
        (
            "/",
            vec![("authorization", &wrong), ("proxy-authorization", &right)],
            401,
        ),
    ];
    for (uri, hdrs, want) in attempts {
        let a = get(vhost, h, uri, &hdrs).await;
        assert_eq!(a.status, want, "{uri} {hdrs:?}: {}", a.text());
        assert_ne!(first_line(&a), "SECRET");
    }
    let ok = get(
        vhost,
        h,
        abs,
        &[("proxy-authorization", &basic("admin", "s3cret"))],
    )
    .await;
    assert_eq!(first_line(&ok), "SECRET");
    let ok = get(
        vhost,
        h,
        "/",
        &[("authorization", &basic("admin", "s3cret"))],
    )
    .await;
    assert_eq!(first_line(&ok), "SECRET");
    assert_eq!(first_line(&get(vhost, h, "/", &[]).await), "PUBLIC");
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn websocket_round_trip() {
    let be = backend::start("W").await;
    let (frps, frpc, vhost) = start(|_| {}, vec![http("ws", be, &["ws.example.com"])]).await;
    let mut client = backend::connect(vhost).await;
    let req = Request::get("/ws")
        .header("host", "ws.example.com")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "13")
        .body(empty())
        .unwrap();
    let go = async {
        client.ready().await.unwrap();
        let resp = client.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 101);
        let up = hyper::upgrade::on(resp).await.unwrap();
        let mut io = hyper_util::rt::TokioIo::new(up);
        for i in 0..3u8 {
            let msg = [b'm', i, 0x82, 0xff];
            io.write_all(&msg).await.unwrap();
            let mut back = [0u8; 4];
            io.read_exact(&mut back).await.unwrap();
            assert_eq!(back, msg);
        }
    };
    tokio::time::timeout(PATIENCE, go)
        .await
        .expect("websocket in time");
    frpc.stop().await;
    frps.stop().await;
}

/// CONNECT on the vhost port goes to the routed backend (frp `connectHandler`); its 200 makes
/// a tunnel. Credentials come from Proxy-Authorization (407).
#[tokio::test]
async fn connect_tunnels_to_the_routed_backend() {
    let be = backend::start("C").await;
    let mut p = http("tun", be, &["tunnel.example.com"]);
    p.http_user = "u".into();
    p.http_password = "p".into();
    let (frps, frpc, vhost) = start(|_| {}, vec![p]).await;
    let connect = |auth: Option<String>| {
        let mut b =
            Request::connect("tunnel.example.com:443").header("host", "tunnel.example.com:443");
        if let Some(a) = auth {
            b = b.header("proxy-authorization", a);
        }
        b.body(empty()).unwrap()
    };
    let mut client = backend::connect(vhost).await;
    assert_eq!(send(&mut client, connect(None)).await.status, 407);
    let mut client = backend::connect(vhost).await;
    let go = async {
        client.ready().await.unwrap();
        let resp = client
            .send_request(connect(Some(basic("u", "p"))))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let up = hyper::upgrade::on(resp).await.unwrap();
        let mut io = hyper_util::rt::TokioIo::new(up);
        io.write_all(b"through the tunnel").await.unwrap();
        let mut back = [0u8; 18];
        io.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"through the tunnel");
    };
    tokio::time::timeout(PATIENCE, go)
        .await
        .expect("tunnel in time");
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn chunked_upload_and_download_of_10_mib() {
    let be = backend::start("B").await;
    let (frps, frpc, vhost) = start(|_| {}, vec![http("big", be, &["big.example.com"])]).await;
    let data = pattern(BIG, 3);
    let chunks: Vec<Result<Frame<Bytes>, std::io::Error>> = data
        .chunks(100_000)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let body = StreamBody::new(futures::stream::iter(chunks)).boxed();
    let req = Request::post("/upload")
        .header("host", "big.example.com")
        .body(body)
        .unwrap();
    let mut client = backend::connect(vhost).await;
    let a = send(&mut client, req).await;
    assert_eq!(
        a.text(),
        format!("len={BIG} sum={}", backend::checksum(&data))
    );
    let req = Request::get("/download")
        .header("host", "big.example.com")
        .body(empty())
        .unwrap();
    let a = send(&mut client, req).await;
    assert!(
        a.headers.get("content-length").is_none(),
        "streamed, not buffered"
    );
    assert!(a.body == pattern(BIG, 7), "10 MiB download differs");
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn unreachable_backend_gives_502_and_slow_backend_504() {
    let gone = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let slow = backend::start("SLOW").await;
    let (frps, frpc, vhost) = start(
        |c| c.vhost_http_timeout = 1,
        vec![
            http("gone", gone, &["gone.example.com"]),
            http("slow", slow, &["slow.example.com"]),
        ],
    )
    .await;
    let a = get(vhost, "gone.example.com", "/", &[]).await;
    assert_eq!(a.status, 502);
    assert!(a.text().contains("502 Bad Gateway"), "{}", a.text());
    let a = get(vhost, "slow.example.com", "/hang", &[]).await;
    assert_eq!(a.status, 504);
    frpc.stop().await;
    frps.stop().await;
}

/// Writes `raw` on a new connection and reads until the server closes (bounded).
async fn raw_exchange(vhost: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(vhost).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut got))
        .await
        .expect("server closes the connection");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn bad_input_is_answered_and_never_smuggled() {
    let be = backend::start("R").await;
    let (frps, frpc, vhost) = start(|_| {}, vec![http("raw", be, &["raw.example.com"])]).await;

    // Two differing Content-Length: 400, never forwarded.
    let a = raw_exchange(
        vhost,
        b"POST / HTTP/1.1\r\nHost: raw.example.com\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    )
    .await;
    assert!(a.starts_with("HTTP/1.1 400"), "{a}");
    assert!(!a.contains("\nR\n"), "{a}");

    // Content-Length and Transfer-Encoding, in either order: 400, never forwarded, and the
    // bytes after the chunked body are never read as a request.
    for head in [
        "Content-Length: 45\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 45",
    ] {
        let raw = format!(
            "POST / HTTP/1.1\r\nHost: raw.example.com\r\n{head}\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: raw.example.com\r\n\r\n"
        );
        let a = raw_exchange(vhost, raw.as_bytes()).await;
        assert!(a.starts_with("HTTP/1.1 400"), "{head}: {a}");
        assert_eq!(a.matches("HTTP/1.1 ").count(), 1, "{a}");
        assert!(!a.contains("\nR\n") && !a.contains("/smuggled"), "{a}");
    }
    // A keep-alive connection with chunked and sized bodies before it: the verdict follows
    // the framing.
    let a = raw_exchange(
        vhost,
        b"POST /1 HTTP/1.1\r\nHost: raw.example.com\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab\r\n\r\n0\r\n\r\n\
POST /2 HTTP/1.1\r\nHost: raw.example.com\r\nContent-Length: 2\r\n\r\nhi\
POST /3 HTTP/1.1\r\nHost: raw.example.com\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(a.matches("HTTP/1.1 200").count(), 2, "{a}");
    assert_eq!(a.matches("HTTP/1.1 400").count(), 1, "{a}");
    assert!(
        a.contains("POST /1\n") && a.contains("POST /2\n") && !a.contains("POST /3"),
        "{a}"
    );

    // Oversized headers: 431.
    let mut big = b"GET / HTTP/1.1\r\nHost: raw.example.com\r\nX-Big: ".to_vec();
    big.extend(vec![b'a'; 128 * 1024]);
    big.extend(b"\r\n\r\n");
    let a = raw_exchange(vhost, &big).await;
    assert!(a.starts_with("HTTP/1.1 431"), "{}", &a[..a.len().min(200)]);

    // Bare \n line endings are read as Go reads them.
    let a = raw_exchange(
        vhost,
        b"GET /lf HTTP/1.1\nHost: raw.example.com\nConnection: close\n\n",
    )
    .await;
    assert!(a.starts_with("HTTP/1.1 200"), "{a}");

    // The server still serves everyone else.
    assert_eq!(
        first_line(&get(vhost, "raw.example.com", "/", &[]).await),
        "R"
    );
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn refused_with_a_clear_error() {
    init_log();
    // No vhostHTTPPort: http proxies are refused with frp's text.
    let frps = Frps::start(|_| {}).await;
    let be = backend::start("X").await;
    let mut mux = proxy("mux", "tcpmux", be, 0);
    mux.custom_domains = vec!["t.example.com".into()];
    mux.multiplexer = "httpconnect".into();
    let mut sub = http("sub", be, &[]);
    sub.subdomain = "x".into();
    let frpc = Frpc::start(frps.addr, |c| {
        c.proxies = vec![http("web", be, &["w.example.com"]), mux];
    });
    assert_eq!(
        frpc.wait_phase("web", Phase::StartError).await.error,
        "type [http] not supported when vhost http port is not set"
    );
    assert_eq!(
        frpc.wait_phase("mux", Phase::StartError).await.error,
        "tcpmux with multiplexer httpconnect not supported because this feature is not enabled in server"
    );
    frpc.stop().await;
    frps.stop().await;

    // subdomain without subDomainHost; a domain taken twice.
    let port = free_port().await;
    let frps = Frps::start(|c| c.vhost_http_port = port).await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.proxies = vec![sub, http("one", be, &["dup.example.com"])];
    });
    frpc.wait_running("one").await;
    assert_eq!(
        frpc.wait_phase("sub", Phase::StartError).await.error,
        "subdomain is not supported because this feature is not enabled in server"
    );
    let frpc2 = Frpc::start(frps.addr, |c| {
        c.proxies = vec![http("two", be, &["DUP.example.com"])];
    });
    assert_eq!(
        frpc2.wait_phase("two", Phase::StartError).await.error,
        "router config conflict"
    );
    frpc2.stop().await;
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn dashboard_lists_http_proxies_and_traffic_is_counted() {
    let be = backend::start("D").await;
    let mut p = http("site", be, &["site.example.com"]);
    p.locations = vec!["/".into()];
    let web = free_port().await;
    let (frps, frpc, vhost) = start(
        |c| {
            c.web_server.addr = "127.0.0.1".into();
            c.web_server.port = web;
        },
        vec![p],
    )
    .await;
    let a = get(vhost, "site.example.com", "/", &[]).await;
    assert_eq!(first_line(&a), "D");
    let (bytes_in, bytes_out, _) = frps.stats.proxy_traffic("site").unwrap();
    assert!(
        bytes_in > 0 && bytes_out as usize >= a.body.len(),
        "{bytes_in} {bytes_out}"
    );
    let dash = frps.dashboard.unwrap();
    let list = get(dash, "127.0.0.1", "/api/proxy/http", &[]).await;
    let v: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    let conf = &v["proxies"][0]["conf"];
    assert_eq!(conf["customDomains"][0], "site.example.com", "{v}");
    assert_eq!(conf["locations"][0], "/", "{v}");
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn custom_404_page() {
    let dir = std::env::temp_dir().join(format!("frp-rs-404-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("404.html");
    std::fs::write(&page, "<h1>not here</h1>").unwrap();
    let be = backend::start("X").await;
    let path = page.display().to_string();
    let (frps, frpc, vhost) = start(
        |c| c.custom404_page = path,
        vec![http("x", be, &["x.example.com"])],
    )
    .await;
    let a = get(vhost, "other.example.com", "/", &[]).await;
    assert_eq!((a.status, a.text().as_str()), (404, "<h1>not here</h1>"));
    frpc.stop().await;
    frps.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// http load-balancing groups: members share one route; new upstream connections go to the
/// members in turn; frp's group errors; a member that leaves stops receiving users.
#[tokio::test]
async fn load_balancing_group_shares_a_route() {
    let (a, b) = (backend::start("A").await, backend::start("B").await);
    let member = |name: &str, be: SocketAddr, key: &str| {
        let mut p = http(name, be, &["lb.example.com"]);
        p.load_balancer.group = "web".into();
        p.load_balancer.group_key = key.into();
        p
    };
    let (frps, first, vhost) = start(|_| {}, vec![member("a", a, "k")]).await;
    let second = Frpc::start(frps.addr, |c| c.proxies = vec![member("b", b, "k")]);
    second.wait_running("b").await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        seen.insert(first_line(&get(vhost, "lb.example.com", "/", &[]).await));
    }
    assert_eq!(seen, ["A".to_string(), "B".to_string()].into());

    let mut wrong_loc = member("c", b, "k");
    wrong_loc.locations = vec!["/x".into()];
    let third = Frpc::start(frps.addr, |c| {
        c.proxies = vec![member("d", b, "other"), wrong_loc];
    });
    assert_eq!(
        third.wait_phase("d", Phase::StartError).await.error,
        "group auth failed"
    );
    assert_eq!(
        third.wait_phase("c", Phase::StartError).await.error,
        "group params invalid"
    );
    third.stop().await;

    first.stop().await;
    wait_until("the departed member still gets users", || async {
        first_line(&get(vhost, "lb.example.com", "/", &[]).await) == "B"
    })
    .await;
    for _ in 0..4 {
        assert_eq!(
            first_line(&get(vhost, "lb.example.com", "/", &[]).await),
            "B"
        );
    }
    second.stop().await;
    wait_until("the group's route outlives its last member", || async {
        get(vhost, "lb.example.com", "/", &[]).await.status == 404
    })
    .await;
    frps.stop().await;
}

/// Host confusion (found by an attacker pass): the backend sees the host the request was routed
/// by. An absolute-form request is routed by its URI's host (as Go), so that is the Host the
/// backend gets, not a second name in the Host header that another, protected proxy serves on
/// the same backend; two Host headers are refused (400, as Go: "too many Host headers");
/// userinfo in the URI's authority is not part of the host.
#[tokio::test]
async fn the_backend_sees_the_host_the_request_was_routed_by() {
    let be = backend::start("B").await;
    let open = http("open", be, &["public.example.com"]);
    let mut admin = http("admin", be, &["admin.example.com"]);
    admin.http_user = "root".into();
    admin.http_password = "s3cret".into();
    let (frps, frpc, vhost) = start(|_| {}, vec![open, admin]).await;

    let a = raw_exchange(
        vhost,
        b"GET http://public.example.com/ HTTP/1.1\r\nHost: admin.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(a.starts_with("HTTP/1.1 200"), "{a}");
    assert!(a.contains("host: public.example.com\n"), "{a}");
    assert!(!a.contains("admin.example.com"), "{a}");

    let a = raw_exchange(
        vhost,
        b"GET / HTTP/1.1\r\nHost: public.example.com\r\nHost: admin.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(a.starts_with("HTTP/1.1 400"), "{a}");
    assert!(!a.contains("\nB\n"), "{a}");

    let a = raw_exchange(
        vhost,
        b"GET http://x@public.example.com/ HTTP/1.1\r\nHost: public.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(a.starts_with("HTTP/1.1 200"), "{a}");
    assert!(a.contains("host: public.example.com\n"), "{a}");

    // A malformed chunk from the user is the user's fault: 400, not the 502 page that sends
    // the operator looking at the backend.
    let a = raw_exchange(
        vhost,
        b"POST / HTTP/1.1\r\nHost: public.example.com\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    assert!(a.starts_with("HTTP/1.1 400"), "{a}");

    // A transfer coding besides chunked would reach the backend as plain chunked (the gzip
    // dropped): 501, as Go, never forwarded.
    let a = raw_exchange(
        vhost,
        b"POST / HTTP/1.1\r\nHost: public.example.com\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    assert!(a.starts_with("HTTP/1.1 501"), "{a}");
    assert!(!a.contains("\nB\n"), "{a}");
    frpc.stop().await;
    frps.stop().await;
}
