//! How frps checks `privilege_key` (frp `pkg/auth`): the md5 auth key of `auth.token`
//! (compared in constant time), or with `auth.method = "oidc"` a JWT verified against the
//! issuer's JWKS. With OIDC, heartbeats and work connections (when their scope is on) must carry
//! a valid token whose subject some login has already shown, as frp.

use common::auth::{verify_auth_key, TOKEN_MISMATCH};
use common::config::ServerAuth;
use common::oidc::{OidcError, Verifier, VerifierConfig};
use std::collections::HashSet;
use std::sync::Mutex;

/// frps's authenticator.
#[derive(Debug)]
pub(crate) enum Auth {
    Token(common::config::Secret),
    Oidc {
        verifier: Verifier,
        subjects: Mutex<HashSet<String>>,
    },
}

impl Auth {
    /// For OIDC, reads the issuer's discovery document and keys now (frp fails start-up too).
    pub(crate) async fn new(a: &ServerAuth) -> Result<Auth, OidcError> {
        if a.method != "oidc" {
            return Ok(Auth::Token(a.token.clone()));
        }
        let o = &a.oidc;
        let tls = common::transport::tls::https_client_config(None, false)?;
        let verifier = Verifier::discover(
            VerifierConfig {
                issuer: o.issuer.clone(),
                audience: o.audience.clone(),
                skip_expiry_check: o.skip_expiry_check,
                skip_issuer_check: o.skip_issuer_check,
            },
            tls,
        )
        .await?;
        Ok(Auth::Oidc {
            verifier,
            subjects: Mutex::new(HashSet::new()),
        })
    }

    /// Checks a Login's key; the error is the text frp sends back.
    pub(crate) async fn login(&self, ts: i64, key: &str) -> Result<(), String> {
        match self {
            Auth::Token(t) => verify_auth_key(t, ts, key)
                .then_some(())
                .ok_or_else(|| TOKEN_MISMATCH.to_owned()),
            Auth::Oidc { verifier, subjects } => {
                let claims = verify(verifier, key).await?;
                subjects
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(claims.subject);
                Ok(())
            }
        }
    }

    /// Checks a Ping's or NewWorkConn's key (only called when its scope is on).
    pub(crate) async fn scoped(&self, ts: i64, key: &str) -> Result<(), String> {
        match self {
            Auth::Token(_) => self.login(ts, key).await,
            Auth::Oidc { verifier, subjects } => {
                let claims = verify(verifier, key).await?;
                if subjects
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&claims.subject)
                {
                    Ok(())
                } else {
                    Err(format!(
                        "received different OIDC subject in login and ping. new subject: {}",
                        claims.subject
                    ))
                }
            }
        }
    }
}

/// What the peer is told when frps could not check its token because of the provider.
pub(crate) const PROVIDER_UNAVAILABLE: &str =
    "oidc: the token could not be verified now (identity provider error; see the frps log)";

/// Verifies an OIDC token. Only a fault of the token itself is described to the peer; what the
/// provider answered (an error page, an address) goes to the log.
async fn verify(verifier: &Verifier, key: &str) -> Result<common::oidc::Claims, String> {
    verifier.verify(key).await.map_err(|e| {
        if e.is_token_fault() {
            e.to_string()
        } else {
            tracing::warn!(error = %e, "cannot verify an OIDC token: identity provider error");
            PROVIDER_UNAVAILABLE.to_owned()
        }
    })
}
