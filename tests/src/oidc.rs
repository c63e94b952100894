//! An OIDC issuer for tests, on 127.0.0.1: discovery, JWKS, a client-credentials token
//! endpoint (Basic auth), and RS256 tokens signed with keys generated here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixture: a failure is a failed test

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use common::config::WebServerConfig;
use common::http::{self, reply, BasicAuth, WebListener};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio_util::sync::CancellationToken;

pub const CLIENT_ID: &str = "frpc-app";
pub const CLIENT_SECRET: &str = "client-s3cret";
pub const AUDIENCE: &str = "frps";
/// What a broken issuer answers (internal details no frpc should see).
pub const PROVIDER_ERROR_BODY: &str = "internal error: db host 10.9.8.7 user oidc_admin";

/// Two RSA keys per test binary (generation is the slow part).
pub fn keys() -> &'static (RsaPrivateKey, RsaPrivateKey) {
    static K: OnceLock<(RsaPrivateKey, RsaPrivateKey)> = OnceLock::new();
    K.get_or_init(|| {
        let mut rng = rand::thread_rng();
        (
            RsaPrivateKey::new(&mut rng, 2048).unwrap(),
            RsaPrivateKey::new(&mut rng, 2048).unwrap(),
        )
    })
}

/// An RS256 JWT with kid "k1" (the key the issuer publishes).
pub fn jwt(key: &RsaPrivateKey, claims: serde_json::Value) -> String {
    jwt_with_kid(key, "k1", claims)
}

/// An RS256 JWT naming key id `kid`.
pub fn jwt_with_kid(key: &RsaPrivateKey, kid: &str, claims: serde_json::Value) -> String {
    let header = B64.encode(format!(r#"{{"alg":"RS256","kid":"{kid}","typ":"JWT"}}"#));
    let payload = B64.encode(claims.to_string());
    let signed = format!("{header}.{payload}");
    let sig = SigningKey::<rsa::sha2::Sha256>::new(key.clone()).sign(signed.as_bytes());
    format!("{signed}.{}", B64.encode(sig.to_bytes()))
}

#[derive(Debug)]
pub struct Issuer {
    pub url: String,
    pub token_requests: Arc<AtomicUsize>,
    /// The form body of each token request, in order.
    pub token_forms: Arc<Mutex<Vec<String>>>,
    /// Times the JWKS was fetched.
    pub jwks_requests: Arc<AtomicUsize>,
    /// When set, the JWKS endpoint fails with [`PROVIDER_ERROR_BODY`].
    pub jwks_broken: Arc<AtomicBool>,
    stop: CancellationToken,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Issuer {
    pub fn claims(&self, sub: &str, aud: &str, exp_in: i64) -> serde_json::Value {
        let now = common::clock::unix_now();
        serde_json::json!({"iss": self.url, "sub": sub, "aud": aud, "iat": now, "exp": now + exp_in})
    }

    pub async fn start(expires_in: u64) -> Issuer {
        let listener = WebListener::bind(&WebServerConfig {
            addr: "127.0.0.1".into(),
            port: 0,
            ..Default::default()
        })
        .await
        .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let token_requests = Arc::new(AtomicUsize::new(0));
        let jwks_requests = Arc::new(AtomicUsize::new(0));
        let jwks_broken = Arc::new(AtomicBool::new(false));
        let token_forms = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let issuer = Issuer {
            url: url.clone(),
            token_requests: token_requests.clone(),
            token_forms: token_forms.clone(),
            jwks_requests: jwks_requests.clone(),
            jwks_broken: jwks_broken.clone(),
            stop: stop.clone(),
        };
        let token_claims = issuer.claims("frpc-1", AUDIENCE, 600);
        let handler = Arc::new(move |req: Request<Bytes>| {
            let (url, count, claims) = (url.clone(), token_requests.clone(), token_claims.clone());
            let jwks_count = jwks_requests.clone();
            let broken = jwks_broken.load(Ordering::SeqCst);
            let forms = token_forms.clone();
            async move {
                match req.uri().path() {
                    "/.well-known/openid-configuration" => http::json(
                        StatusCode::OK,
                        &serde_json::json!({
                            "issuer": url,
                            "jwks_uri": format!("{url}/jwks"),
                            "token_endpoint": format!("{url}/token"),
                            "id_token_signing_alg_values_supported": ["RS256"],
                        }),
                    ),
                    "/jwks" if broken => {
                        reply(StatusCode::INTERNAL_SERVER_ERROR, PROVIDER_ERROR_BODY)
                    }
                    "/jwks" => {
                        jwks_count.fetch_add(1, Ordering::SeqCst);
                        let pk = keys().0.to_public_key();
                        http::json(
                            StatusCode::OK,
                            &serde_json::json!({"keys": [{
                                "kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
                                "n": B64.encode(pk.n().to_bytes_be()),
                                "e": B64.encode(pk.e().to_bytes_be()),
                            }]}),
                        )
                    }
                    "/token" => {
                        count.fetch_add(1, Ordering::SeqCst);
                        let authorization = req.headers().get("authorization").cloned();
                        let form = String::from_utf8_lossy(req.body()).into_owned();
                        forms.lock().unwrap().push(form);
                        let want = format!(
                            "Basic {}",
                            STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
                        );
                        let authorized =
                            authorization.is_some_and(|v| v.as_bytes() == want.as_bytes());
                        if !authorized {
                            return reply(
                                StatusCode::UNAUTHORIZED,
                                r#"{"error":"invalid_client"}"#,
                            );
                        }
                        http::json(
                            StatusCode::OK,
                            &serde_json::json!({
                                "access_token": jwt(&keys().0, claims),
                                "token_type": "Bearer",
                                "expires_in": expires_in,
                            }),
                        )
                    }
                    _ => reply(StatusCode::NOT_FOUND, ""),
                }
            }
        });
        tokio::spawn(http::serve(listener, BasicAuth::default(), handler, stop));
        issuer
    }
}
