//! OIDC login against an issuer run here on 127.0.0.1: discovery, JWKS, a client-credentials
//! token endpoint, and RS256 tokens signed with a key generated in the test.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::config::ServerConfig;
use common::msg::{read_msg, write_msg, Login, Message};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
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
    );
    let err = fetcher.token().await.unwrap_err().to_string();
    assert!(
        err.contains("401") && !err.contains("wrong-secret"),
        "{err}"
    );
}
