//! OIDC (frp `pkg/auth/oidc.go`; frp-protocol.md §7).
//!
//! frpc: [`TokenFetcher`], the OAuth2 client-credentials grant against `tokenEndpointURL`, with
//! the access token cached until 10 s before it expires (x/oauth2's `expiryDelta`; no
//! `expires_in` means a fresh token on every use, as frp).
//!
//! frps: [`Verifier`], the issuer's discovery document and JWKS fetched at start-up, then JWTs
//! checked for signature (RS256/384/512, ES256/384 through `ring`), issuer, audience, expiry and
//! not-before (go-oidc's checks and its 5-minute clock-skew allowance). A token signed with an
//! unknown key id makes the verifier re-read the JWKS once (key rotation).

use crate::clock::unix_now;
use crate::http::{fetch, form_encode, query_escape};
use base64::engine::general_purpose::{STANDARD as B64_STD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long one HTTP exchange with the provider may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// x/oauth2 refreshes a token this long before it expires.
const EXPIRY_DELTA: Duration = Duration::from_secs(10);
/// go-oidc's allowance for clock skew on `nbf`.
const SKEW: i64 = 300;

/// Why an OIDC step failed. Messages never contain a token or secret.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("oidc: {what}: {error}")]
    Http { what: String, error: std::io::Error },
    #[error("oidc: {what}: HTTP {code}: {body}")]
    Status {
        what: String,
        code: StatusCode,
        body: String,
    },
    #[error("oidc: {0}")]
    Bad(String),
    /// The token itself is not valid (signature, claims, key id): the one kind of failure
    /// whose text may go back to the peer that presented the token.
    #[error("oidc: {0}")]
    Token(String),
    #[error("oidc: {0}")]
    Tls(crate::transport::tls::TlsError),
}

crate::from_cause!(crate::transport::tls::TlsError => OidcError::Tls);

impl OidcError {
    /// Whether the presented token was at fault, rather than the provider or our side of the
    /// exchange with it (whose details, such as an error page, are for the operator's log).
    pub fn is_token_fault(&self) -> bool {
        matches!(self, OidcError::Token(_))
    }
}

fn bad(m: impl Into<String>) -> OidcError {
    OidcError::Bad(m.into())
}

async fn get_json<T: serde::de::DeserializeOwned>(
    url: &str,
    what: &str,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<T, OidcError> {
    let (code, body) = fetch(url, Method::GET, &[], Bytes::new(), tls, HTTP_TIMEOUT, None)
        .await
        .map_err(|error| OidcError::Http {
            what: what.into(),
            error,
        })?;
    if !code.is_success() {
        return Err(OidcError::Status {
            what: what.into(),
            code,
            body: String::from_utf8_lossy(&body).chars().take(200).collect(),
        });
    }
    serde_json::from_slice(&body).map_err(|e| bad(format!("{what}: {e}")))
}

/// frpc's settings for the client-credentials grant.
#[derive(Clone)]
pub struct ClientCredentials {
    pub token_endpoint_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub scope: String,
    pub audience: String,
    pub additional_params: Vec<(String, String)>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_endpoint_url", &self.token_endpoint_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Fetches and caches access tokens (frpc).
#[derive(Debug)]
pub struct TokenFetcher {
    creds: ClientCredentials,
    tls: Arc<rustls::ClientConfig>,
    /// `auth.oidc.proxyURL`.
    proxy: Option<crate::transport::proxy::ProxyUrl>,
    cache: tokio::sync::Mutex<Option<(String, Instant)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

impl TokenFetcher {
    /// `proxy`: `auth.oidc.proxyURL`, through which the token endpoint is reached.
    pub fn new(
        creds: ClientCredentials,
        tls: Arc<rustls::ClientConfig>,
        proxy: Option<crate::transport::proxy::ProxyUrl>,
    ) -> Self {
        TokenFetcher {
            creds,
            tls,
            proxy,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// A valid access token: the cached one, or a new one from the token endpoint.
    pub async fn token(&self) -> Result<String, OidcError> {
        let mut cache = self.cache.lock().await;
        if let Some((t, until)) = cache.as_ref() {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let (token, expires_in) = self.request().await?;
        *cache = expires_in
            .and_then(|s| s.checked_sub(EXPIRY_DELTA))
            .map(|d| (token.clone(), Instant::now() + d));
        Ok(token)
    }

    async fn request(&self) -> Result<(String, Option<Duration>), OidcError> {
        let c = &self.creds;
        let mut params: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        // x/oauth2 always sends the scope list, here always `[scope]`.
        params.push(("scope", &c.scope));
        if !c.audience.is_empty() {
            params.push(("audience", &c.audience));
        }
        for (k, v) in &c.additional_params {
            params.push((k, v));
        }
        // x/oauth2's auto-detection: credentials in a Basic header first, then in the body.
        let header_auth = {
            let cred = B64_STD.encode(format!(
                "{}:{}",
                query_escape(&c.client_id),
                query_escape(&c.client_secret)
            ));
            vec![
                (
                    "content-type",
                    "application/x-www-form-urlencoded".to_owned(),
                ),
                ("authorization", format!("Basic {cred}")),
            ]
        };
        let first = self.post(&form_encode(&params), &header_auth).await?;
        let (code, body) = match first {
            (code, _) if code.is_client_error() => {
                let mut with_creds = params.clone();
                with_creds.push(("client_id", &c.client_id));
                with_creds.push(("client_secret", &c.client_secret));
                let headers = [(
                    "content-type",
                    "application/x-www-form-urlencoded".to_owned(),
                )];
                self.post(&form_encode(&with_creds), &headers).await?
            }
            other => other,
        };
        if !code.is_success() {
            return Err(OidcError::Status {
                what: "token endpoint".into(),
                code,
                body: String::from_utf8_lossy(&body).chars().take(200).collect(),
            });
        }
        let r: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("token endpoint answer: {e}")))?;
        if r.access_token.is_empty() {
            return Err(bad("token endpoint answered without access_token"));
        }
        let secs = match r.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        Ok((
            r.access_token,
            secs.filter(|s| *s > 0).map(Duration::from_secs),
        ))
    }

    async fn post(
        &self,
        body: &str,
        headers: &[(&str, String)],
    ) -> Result<(StatusCode, Bytes), OidcError> {
        fetch(
            &self.creds.token_endpoint_url,
            Method::POST,
            headers,
            Bytes::from(body.to_owned()),
            &self.tls,
            HTTP_TIMEOUT,
            self.proxy.as_ref(),
        )
        .await
        .map_err(|error| OidcError::Http {
            what: "token endpoint".into(),
            error,
        })
    }
}

/// frps's settings for verification.
#[derive(Debug, Clone, Default)]
pub struct VerifierConfig {
    pub issuer: String,
    pub audience: String,
    pub skip_expiry_check: bool,
    pub skip_issuer_check: bool,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
}

#[derive(Deserialize, Clone)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Verifies JWTs from one issuer (frps).
pub struct Verifier {
    cfg: VerifierConfig,
    jwks_uri: String,
    algs: Vec<String>,
    tls: Arc<rustls::ClientConfig>,
    keys: Mutex<Vec<Jwk>>,
    /// When the JWKS was last re-read for an unknown key id.
    refetched: Mutex<Option<tokio::time::Instant>>,
}

/// The JWKS is re-read for an unknown key id at most this often: a token naming a made-up
/// key id (anyone can send one in a Login) must not drive requests at the issuer.
const JWKS_REFETCH_MIN: std::time::Duration = std::time::Duration::from_secs(10);

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.cfg.issuer)
            .finish_non_exhaustive()
    }
}

/// The verified claims frp uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub subject: String,
}

impl Verifier {
    /// Reads the issuer's discovery document and JWKS (frp fails start-up when this fails).
    pub async fn discover(
        cfg: VerifierConfig,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Verifier, OidcError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            cfg.issuer.trim_end_matches('/')
        );
        let d: Discovery = get_json(&url, "discovery", &tls).await?;
        // go-oidc refuses a discovery document for another issuer.
        if d.issuer != cfg.issuer {
            return Err(bad(format!(
                "issuer did not match the issuer returned by provider, expected {:?} got {:?}",
                cfg.issuer, d.issuer
            )));
        }
        let keys = get_json::<Jwks>(&d.jwks_uri, "jwks", &tls).await?.keys;
        Ok(Verifier {
            cfg,
            jwks_uri: d.jwks_uri,
            algs: d.id_token_signing_alg_values_supported,
            tls,
            keys: Mutex::new(keys),
            refetched: Mutex::new(None),
        })
    }

    fn keys(&self) -> Vec<Jwk> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Verifies `token`; on an unknown key id the JWKS is re-read once (key rotation), unless
    /// that was done less than [`JWKS_REFETCH_MIN`] ago.
    pub async fn verify(&self, token: &str) -> Result<Claims, OidcError> {
        match self.verify_with(token, &self.keys()) {
            Err(VerifyError::NoKey) => {
                {
                    let mut last = self.refetched.lock().unwrap_or_else(|p| p.into_inner());
                    if last.is_some_and(|t| t.elapsed() < JWKS_REFETCH_MIN) {
                        return Err(VerifyError::NoKey.into_oidc());
                    }
                    *last = Some(tokio::time::Instant::now());
                }
                let fresh = get_json::<Jwks>(&self.jwks_uri, "jwks", &self.tls)
                    .await?
                    .keys;
                *self.keys.lock().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
                self.verify_with(token, &fresh)
                    .map_err(VerifyError::into_oidc)
            }
            r => r.map_err(VerifyError::into_oidc),
        }
    }

    fn verify_with(&self, token: &str, keys: &[Jwk]) -> Result<Claims, VerifyError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Bad("malformed jwt".into()));
        };
        let decode = |x: &str, what: &str| {
            B64.decode(x)
                .map_err(|_| VerifyError::Bad(format!("malformed jwt {what}")))
        };
        let header: Header = serde_json::from_slice(&decode(h, "header")?)
            .map_err(|_| VerifyError::Bad("malformed jwt header".into()))?;
        let sig = decode(s, "signature")?;
        let allowed: Vec<&str> = if self.algs.is_empty() {
            vec!["RS256"]
        } else {
            self.algs.iter().map(String::as_str).collect()
        };
        if !allowed.contains(&header.alg.as_str()) {
            return Err(VerifyError::Bad(format!(
                "id token signed with unsupported algorithm, expected {allowed:?} got {:?}",
                header.alg
            )));
        }
        let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
        let candidates: Vec<&Jwk> = keys
            .iter()
            .filter(|k| header.kid.is_none() || k.kid == header.kid)
            .collect();
        if candidates.is_empty() {
            return Err(VerifyError::NoKey);
        }
        if !candidates
            .iter()
            .any(|k| check_signature(k, &header.alg, signed, &sig))
        {
            return Err(VerifyError::Bad(
                "failed to verify signature: failed to verify id token signature".into(),
            ));
        }
        let claims: serde_json::Value = serde_json::from_slice(&decode(p, "payload")?)
            .map_err(|_| VerifyError::Bad("malformed jwt payload".into()))?;
        let c = &self.cfg;
        if !c.skip_issuer_check && claims["iss"].as_str() != Some(c.issuer.as_str()) {
            return Err(VerifyError::Bad(format!(
                "id token issued by a different provider, expected {:?} got {}",
                c.issuer, claims["iss"]
            )));
        }
        if !c.audience.is_empty() {
            let ok = match &claims["aud"] {
                serde_json::Value::String(a) => *a == c.audience,
                serde_json::Value::Array(v) => v.iter().any(|a| a.as_str() == Some(&c.audience)),
                _ => false,
            };
            if !ok {
                return Err(VerifyError::Bad(format!(
                    "expected audience {:?} got {}",
                    c.audience, claims["aud"]
                )));
            }
        }
        let now = unix_now();
        if !c.skip_expiry_check {
            match claims["exp"].as_f64() {
                Some(exp) if (exp as i64) > now => {}
                Some(_) => return Err(VerifyError::Bad("token is expired".into())),
                None => return Err(VerifyError::Bad("token has no expiry".into())),
            }
        }
        if let Some(nbf) = claims["nbf"].as_f64() {
            if nbf as i64 > now + SKEW {
                return Err(VerifyError::Bad("current time before the nbf claim".into()));
            }
        }
        Ok(Claims {
            subject: claims["sub"].as_str().unwrap_or_default().to_owned(),
        })
    }
}

enum VerifyError {
    NoKey,
    Bad(String),
}

impl VerifyError {
    fn into_oidc(self) -> OidcError {
        match self {
            VerifyError::NoKey => OidcError::Token("no JWKS key matches the token's key id".into()),
            VerifyError::Bad(m) => OidcError::Token(format!("invalid OIDC token in login: {m}")),
        }
    }
}

fn check_signature(k: &Jwk, alg: &str, signed: &[u8], sig: &[u8]) -> bool {
    use ring::signature as sg;
    let b = |x: &Option<String>| x.as_deref().and_then(|v| B64.decode(v).ok());
    match (k.kty.as_str(), alg) {
        ("RSA", "RS256" | "RS384" | "RS512") => {
            let (Some(n), Some(e)) = (b(&k.n), b(&k.e)) else {
                return false;
            };
            let params = match alg {
                "RS256" => &sg::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &sg::RSA_PKCS1_2048_8192_SHA384,
                _ => &sg::RSA_PKCS1_2048_8192_SHA512,
            };
            sg::RsaPublicKeyComponents { n: &n, e: &e }
                .verify(params, signed, sig)
                .is_ok()
        }
        ("EC", "ES256" | "ES384") => {
            let (Some(x), Some(y)) = (b(&k.x), b(&k.y)) else {
                return false;
            };
            let (params, crv): (&sg::EcdsaVerificationAlgorithm, _) = if alg == "ES256" {
                (&sg::ECDSA_P256_SHA256_FIXED, "P-256")
            } else {
                (&sg::ECDSA_P384_SHA384_FIXED, "P-384")
            };
            if k.crv.as_deref() != Some(crv) {
                return false;
            }
            let mut point = vec![4u8];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            sg::UnparsedPublicKey::new(params, point)
                .verify(signed, sig)
                .is_ok()
        }
        _ => false,
    }
}
