//! OIDC login against an issuer run here on 127.0.0.1: discovery, JWKS, a client-credentials
//! token endpoint, and RS256 tokens signed with a key generated in the test.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::config::ServerConfig;
use common::msg::{read_msg, write_msg, Login, Message};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tests::oidc::*;
use tests::*;
use tokio::net::TcpStream;

fn oidc_server(issuer: &Issuer) -> impl FnOnce(&mut ServerConfig) + '_ {
    move |c: &mut ServerConfig| {
        c.auth.method = "oidc".into();
        c.auth.token = Default::default();
        c.auth.oidc.issuer = issuer.url.clone();
        c.auth.oidc.audience = AUDIENCE.into();
        c.auth.additional_scopes = vec!["HeartBeats".into(), "NewWorkConns".into()];
    }
}

/// frps for raw Logins against `issuer`: tcpMux off, refusals with their reasons.
async fn raw_login_frps(issuer: &Issuer) -> Frps {
    Frps::start(|c| {
        oidc_server(issuer)(c);
        c.detailed_errors_to_client = true;
        c.transport.tcp_mux = false;
    })
    .await
}

/// A raw Login with `key` as privilege_key; returns LoginResp's error.
async fn login_error(frps: SocketAddr, key: &str) -> String {
    let mut s = TcpStream::connect(frps).await.unwrap();
    let m = Login {
        version: "0.70.1".into(),
        privilege_key: key.into(),
        timestamp: common::clock::unix_now(),
        ..Default::default()
    };
    write_msg(&mut s, &m.into()).await.unwrap();
    match tokio::time::timeout(PATIENCE, read_msg(&mut s))
        .await
        .unwrap()
        .unwrap()
    {
        Message::LoginResp(r) => r.error,
        other => panic!("LoginResp expected, got {other:?}"),
    }
}

#[tokio::test]
async fn oidc_client_credentials_login_and_scoped_messages() {
    init_log();
    let issuer = Issuer::start(3600).await;
    let echo = echo_tcp().await;
    for tcp_mux in [true, false] {
        let frps = Frps::start(|c| {
            oidc_server(&issuer)(c);
            c.transport.tcp_mux = tcp_mux;
        })
        .await;
        let frpc = Frpc::start(frps.addr, |c| {
            c.auth.method = "oidc".into();
            c.auth.token = Default::default();
            c.auth.oidc.client_id = CLIENT_ID.into();
            c.auth.oidc.client_secret = CLIENT_SECRET.into();
            c.auth.oidc.token_endpoint_url = format!("{}/token", issuer.url);
            c.auth.oidc.audience = AUDIENCE.into();
            c.auth.additional_scopes = vec!["HeartBeats".into(), "NewWorkConns".into()];
            c.transport.tcp_mux = tcp_mux;
            c.transport.pool_count = 0;
            c.proxies = vec![proxy(&format!("o{tcp_mux}"), "tcp", echo, 0)];
        });
        let st = frpc.wait_running(&format!("o{tcp_mux}")).await;
        let entry: SocketAddr = ([127, 0, 0, 1], remote_port(&st)).into();
        // Each user makes a NewWorkConn carrying a token (NewWorkConns scope).
        for i in 0..3 {
            let data = pattern(10_000, i);
            assert!(echo_through(entry, &data).await == data);
        }
        frpc.stop().await;
        frps.stop().await;
    }
    // Cached: one token per frpc instance, not one per message.
    assert_eq!(issuer.token_requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn oidc_bad_tokens_are_refused_and_frps_keeps_serving() {
    init_log();
    let issuer = Issuer::start(3600).await;
    let frps = raw_login_frps(&issuer).await;
    let (good, other) = keys();
    let cases = [
        (
            "expired",
            jwt(good, issuer.claims("a", AUDIENCE, -60)),
            "expired",
        ),
        (
            "wrong audience",
            jwt(good, issuer.claims("a", "someone-else", 600)),
            "audience",
        ),
        (
            "wrong signature",
            jwt(other, issuer.claims("a", AUDIENCE, 600)),
            "signature",
        ),
        ("not a jwt", "garbage".to_owned(), "malformed"),
    ];
    for (what, token, expect) in cases {
        let err = login_error(frps.addr, &token).await;
        assert!(err.contains(expect), "{what}: {err}");
        assert!(!err.contains(&token), "{what}: the token is not echoed");
    }
    let mut wrong_issuer = issuer.claims("a", AUDIENCE, 600);
    wrong_issuer["iss"] = "http://127.0.0.1:1".into();
    let err = login_error(frps.addr, &jwt(good, wrong_issuer)).await;
    assert!(err.contains("different provider"), "{err}");
    // A valid token still logs in.
    assert_eq!(
        login_error(frps.addr, &jwt(good, issuer.claims("a", AUDIENCE, 600))).await,
        ""
    );
    frps.stop().await;
}

/// A token naming an unknown key id makes frps re-read the JWKS (key rotation), but not
/// again for the next such token right after: made-up key ids cannot drive requests at the
/// issuer.
#[tokio::test]
async fn unknown_key_ids_reread_the_jwks_at_most_once_in_a_while() {
    init_log();
    let issuer = Issuer::start(3600).await;
    let frps = raw_login_frps(&issuer).await;
    let at_start = issuer.jwks_requests.load(Ordering::SeqCst);
    assert_eq!(at_start, 1, "read once at start-up");
    let (good, _) = keys();
    for kid in ["made-up-1", "made-up-2", "made-up-3"] {
        let token = jwt_with_kid(good, kid, issuer.claims("a", AUDIENCE, 600));
        let err = login_error(frps.addr, &token).await;
        assert!(err.contains("key id"), "{kid}: {err}");
    }
    assert_eq!(
        issuer.jwks_requests.load(Ordering::SeqCst),
        2,
        "one re-read"
    );
    // The published key still verifies.
    assert_eq!(
        login_error(frps.addr, &jwt(good, issuer.claims("a", AUDIENCE, 600))).await,
        ""
    );
    frps.stop().await;
}

/// What the issuer answers when it fails stays in frps's log: the unauthenticated peer whose
/// token made frps ask gets a generic reason.
#[tokio::test]
async fn provider_error_bodies_do_not_reach_the_peer() {
    init_log();
    let issuer = Issuer::start(3600).await;
    let frps = raw_login_frps(&issuer).await;
    issuer.jwks_broken.store(true, Ordering::SeqCst);
    let (good, _) = keys();
    let token = jwt_with_kid(good, "rotated", issuer.claims("a", AUDIENCE, 600));
    let err = login_error(frps.addr, &token).await;
    assert!(!err.is_empty(), "refused");
    for leak in [PROVIDER_ERROR_BODY, "10.9.8.7", "500", "jwks"] {
        assert!(!err.contains(leak), "{leak:?} reached the peer: {err}");
    }
    frps.stop().await;
}

#[tokio::test]
async fn oidc_skip_checks_and_discovery_failure() {
    init_log();
    let issuer = Issuer::start(3600).await;
    let frps = Frps::start(|c| {
        oidc_server(&issuer)(c);
        c.auth.oidc.skip_expiry_check = true;
        c.transport.tcp_mux = false;
        c.auth.oidc.audience = String::new();
    })
    .await;
    let (good, _) = keys();
    assert_eq!(
        login_error(frps.addr, &jwt(good, issuer.claims("a", "anyone", -60))).await,
        "",
        "expired and any audience accepted when told so"
    );
    frps.stop().await;

    // frps refuses to start when the issuer cannot be discovered, naming the problem.
    let mut cfg = server_config();
    cfg.auth.method = "oidc".into();
    cfg.auth.oidc.issuer = format!("http://127.0.0.1:{}", free_port().await);
    let err = frps::Server::bind(cfg).await.unwrap_err().to_string();
    assert!(err.contains("oidc") && err.contains("discovery"), "{err}");
}

#[tokio::test]
async fn token_fetcher_caches_until_shortly_before_expiry() {
    init_log();
    for (expires_in, fetches_for_three) in [(3600, 1), (5, 3)] {
        let issuer = Issuer::start(expires_in).await;
        let fetcher = common::oidc::TokenFetcher::new(
            common::oidc::ClientCredentials {
                token_endpoint_url: format!("{}/token", issuer.url),
                client_id: CLIENT_ID.into(),
                client_secret: CLIENT_SECRET.into(),
                scope: String::new(),
                audience: AUDIENCE.into(),
                additional_params: vec![],
            },
            common::transport::tls::https_client_config(None, false).unwrap(),
            None,
        );
        for _ in 0..3 {
            assert!(fetcher.token().await.unwrap().starts_with("eyJ"));
        }
        // expires_in 5 s is inside the 10 s refresh margin: every use fetches anew.
        assert_eq!(
            issuer.token_requests.load(Ordering::SeqCst),
            fetches_for_three,
            "expires_in {expires_in}"
        );
    }
    // Wrong client secret: a clear error, without the secret.
    let issuer = Issuer::start(3600).await;
    let fetcher = common::oidc::TokenFetcher::new(
        common::oidc::ClientCredentials {
            token_endpoint_url: format!("{}/token", issuer.url),
            client_id: CLIENT_ID.into(),
            client_secret: "wrong-secret".into(),
            scope: String::new(),
            audience: String::new(),
            additional_params: vec![],
        },
        common::transport::tls::https_client_config(None, false).unwrap(),
        None,
    );
    let err = fetcher.token().await.unwrap_err().to_string();
    assert!(
        err.contains("401") && !err.contains("wrong-secret"),
        "{err}"
    );
}

/// An HTTP proxy as Go's transport expects one: `CONNECT` tunnels, a request in absolute form
/// is sent on to its host as it came. It wants `Proxy-Authorization` for `u:p` and records each
/// request line it served.
async fn forwarding_proxy() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let Ok(b) = s.read_u8().await else { return };
                    head.push(b);
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let line = text.lines().next().unwrap_or("").to_owned();
                if !text.contains("\r\nproxy-authorization: Basic dTpw\r\n")
                    && !text.contains("\r\nProxy-Authorization: Basic dTpw\r\n")
                {
                    let _ = s
                        .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    return;
                }
                log.lock().unwrap().push(line.clone());
                let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let (host, connect) = match target.strip_prefix("http://") {
                    Some(rest) => (rest.split('/').next().unwrap_or("").to_owned(), false),
                    None => (target, true),
                };
                let Ok(mut up) = TcpStream::connect(host.as_str()).await else {
                    return;
                };
                if connect {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await;
                } else {
                    let _ = up.write_all(&head).await;
                }
                let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
            });
        }
    });
    (addr, seen)
}

/// `auth.oidc.proxyURL`: frpc fetches its token through the proxy (an `http://` token endpoint
/// in absolute form, as Go's transport sends it; its credentials in Proxy-Authorization) and
/// logs in; a proxy that wants other credentials fails the login naming the key.
#[tokio::test]
async fn oidc_token_through_proxy_url() {
    init_log();
    let issuer = Issuer::start(3600).await;
    let (via, seen) = forwarding_proxy().await;
    let echo = echo_tcp().await;
    let frps = Frps::start(oidc_server(&issuer)).await;
    let token_url = format!("{}/token", issuer.url);
    let client = |proxy_url: String| {
        let token_url = token_url.clone();
        move |c: &mut common::config::ClientConfig| {
            c.auth.method = "oidc".into();
            c.auth.token = Default::default();
            c.auth.oidc.client_id = CLIENT_ID.into();
            c.auth.oidc.client_secret = CLIENT_SECRET.into();
            c.auth.oidc.token_endpoint_url = token_url;
            c.auth.oidc.audience = AUDIENCE.into();
            c.auth.oidc.proxy_url = proxy_url;
            c.auth.additional_scopes = vec!["HeartBeats".into(), "NewWorkConns".into()];
            c.proxies = vec![proxy("via-proxy", "tcp", echo, 0)];
        }
    };
    let frpc = Frpc::start(frps.addr, client(format!("http://u:p@{via}")));
    let st = frpc.wait_running("via-proxy").await;
    let entry: SocketAddr = ([127, 0, 0, 1], remote_port(&st)).into();
    assert!(echo_through(entry, b"hi").await == b"hi");
    let lines = seen.lock().unwrap().clone();
    assert_eq!(
        lines,
        [format!("POST {token_url} HTTP/1.1")],
        "the token request went through the proxy in absolute form"
    );
    frpc.stop().await;
    let wrong = Frpc::start(frps.addr, client(format!("http://u:wrong@{via}")));
    let err = wrong.exited().await.unwrap_err().to_string();
    assert!(err.contains("auth.oidc.proxyURL"), "{err}");
    frps.stop().await;
}
