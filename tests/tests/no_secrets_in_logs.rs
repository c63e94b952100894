//! No secret appears in any log line at any level: every log event of a full scenario is
//! captured at TRACE and searched for the token, its derived key and a secret key.
//! (Own test binary: the capturing subscriber is process-global.)

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::Write;
use std::sync::{Arc, Mutex};
use tests::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_logged_even_at_trace() {
    let cap = Capture::default();
    let writer = cap.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    const SECRET_TOKEN: &str = "Sup3r-Secret-Token-42";
    const SECRET_KEY: &str = "stcp-secret-key-99";
    let frps = Frps::start(|c| c.auth.token = SECRET_TOKEN.into()).await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.auth.token = SECRET_TOKEN.into();
        c.auth.additional_scopes = vec!["HeartBeats".into(), "NewWorkConns".into()];
        let mut p = proxy("e", "tcp", echo, 0);
        p.transport.use_encryption = true;
        p.transport.use_compression = true;
        c.proxies.push(p);
        let mut s = proxy("s", "stcp", echo, 0);
        s.secret_key = SECRET_KEY.into();
        c.proxies.push(s);
    });
    let port = remote_port(&frpc.wait_running("e").await);
    assert_eq!(
        echo_through(([127, 0, 0, 1], port).into(), b"data").await,
        b"data"
    );
    // A refused login logs too.
    let wrong = Frpc::start(frps.addr, |c| {
        c.auth.token = format!("{SECRET_TOKEN}-wrong").into()
    });
    assert!(wrong.exited().await.is_err());
    // Config debug output (what a verbose operator might log) is masked too.
    tracing::debug!(config = ?client_config(frps.addr), "config dump");
    frpc.stop().await;
    frps.stop().await;

    // OIDC over wire v2: the client secret and the access tokens stay out of the logs too.
    let issuer = tests::oidc::Issuer::start(3600).await;
    let frps = Frps::start(|c| {
        c.auth.method = "oidc".into();
        c.auth.oidc.issuer = issuer.url.clone();
        c.auth.oidc.audience = tests::oidc::AUDIENCE.into();
        c.auth.additional_scopes = vec!["HeartBeats".into(), "NewWorkConns".into()];
    })
    .await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.transport.wire_protocol = "v2".into();
        c.auth.method = "oidc".into();
        c.auth.oidc.client_id = tests::oidc::CLIENT_ID.into();
        c.auth.oidc.client_secret = tests::oidc::CLIENT_SECRET.into();
        c.auth.oidc.token_endpoint_url = format!("{}/token", issuer.url);
        c.auth.oidc.audience = tests::oidc::AUDIENCE.into();
        c.auth.additional_scopes = vec!["HeartBeats".into(), "NewWorkConns".into()];
        c.proxies.push(proxy("o", "tcp", echo, 0));
    });
    let port = remote_port(&frpc.wait_running("o").await);
    assert_eq!(
        echo_through(([127, 0, 0, 1], port).into(), b"data").await,
        b"data"
    );
    // A bad token is refused and logged without the token.
    let bad_token = tests::oidc::jwt(
        &tests::oidc::keys().1,
        issuer.claims("x", tests::oidc::AUDIENCE, 600),
    );
    let wrong = Frpc::start(frps.addr, |c| {
        c.auth.method = "oidc".into();
        c.auth.oidc.token_source = None;
        c.auth.oidc.source_token = Some(bad_token.clone().into());
    });
    assert!(wrong.exited().await.is_err());
    // The very token the issuer handed frpc (its claims are fixed when the issuer starts).
    let good_token = common::oidc::TokenFetcher::new(
        common::oidc::ClientCredentials {
            token_endpoint_url: format!("{}/token", issuer.url),
            client_id: tests::oidc::CLIENT_ID.into(),
            client_secret: tests::oidc::CLIENT_SECRET.into(),
            scope: String::new(),
            audience: tests::oidc::AUDIENCE.into(),
            additional_params: vec![],
        },
        common::transport::tls::https_client_config(None, false).unwrap(),
        None,
    )
    .token()
    .await
    .unwrap();
    frpc.stop().await;
    frps.stop().await;

    let logs = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.lines().count() > 20,
        "the scenario logged: {} lines",
        logs.lines().count()
    );
    let key_hex = hex_key(SECRET_TOKEN);
    // A token's signature part cannot appear in a log by accident: look for it.
    let sig = |t: &str| t.rsplit('.').next().unwrap()[..40].to_owned();
    let (bad_sig, good_sig) = (sig(&bad_token), sig(&good_token));
    assert!(logs.contains("login refused") || logs.contains("invalid OIDC token"));
    for secret in [
        SECRET_TOKEN,
        SECRET_KEY,
        key_hex.as_str(),
        tests::oidc::CLIENT_SECRET,
        bad_sig.as_str(),
        good_sig.as_str(),
    ] {
        assert!(!logs.contains(secret), "secret {secret:?} found in logs");
    }
}

fn hex_key(token: &str) -> String {
    common::crypto::derive_key(token.as_bytes())
        .0
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
