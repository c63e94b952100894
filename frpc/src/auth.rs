//! What frpc puts in `privilege_key` (frp `pkg/auth`): the md5 auth key of `auth.token`, or
//! with `auth.method = "oidc"` an OAuth2 access token (from the client-credentials grant, or
//! from `auth.oidc.tokenSource`). Built once per client; shared by login, heartbeats and work
//! connections.

use common::auth::auth_key;
use common::config::ClientAuth;
use common::oidc::{ClientCredentials, OidcError, TokenFetcher};
use std::sync::Arc;

/// frpc's authenticator.
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    Token(common::config::Secret),
    /// A fixed token from `auth.oidc.tokenSource`.
    OidcStatic(common::config::Secret),
    Oidc(Arc<TokenFetcher>),
}

impl Auth {
    pub(crate) fn new(a: &ClientAuth) -> Result<Auth, OidcError> {
        if a.method != "oidc" {
            return Ok(Auth::Token(a.token.clone()));
        }
        let o = &a.oidc;
        if let Some(t) = &o.source_token {
            return Ok(Auth::OidcStatic(t.clone()));
        }
        let proxy = if o.proxy_url.is_empty() {
            None
        } else {
            let p = common::transport::proxy::ProxyUrl::parse(&o.proxy_url)
                .map_err(|e| OidcError::Bad(format!("auth.oidc.proxyURL: {e}")))?;
            Some(p.for_key("auth.oidc.proxyURL"))
        };
        let ca = (!o.trusted_ca_file.is_empty()).then(|| std::path::Path::new(&o.trusted_ca_file));
        let tls = common::transport::tls::https_client_config(ca, o.insecure_skip_verify)?;
        for forbidden in ["scope", "audience"] {
            if o.additional_endpoint_params.contains_key(forbidden)
                && (forbidden == "scope" || !o.audience.is_empty())
            {
                return Err(OidcError::Bad(format!(
                    "auth.oidc.additionalEndpointParams must not set {forbidden:?}"
                )));
            }
        }
        Ok(Auth::Oidc(Arc::new(TokenFetcher::new(
            ClientCredentials {
                token_endpoint_url: o.token_endpoint_url.clone(),
                client_id: o.client_id.clone(),
                client_secret: o.client_secret.0.clone(),
                scope: o.scope.clone(),
                audience: o.audience.clone(),
                additional_params: o
                    .additional_endpoint_params
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            },
            tls,
            proxy,
        ))))
    }

    /// The `privilege_key` for a message stamped `ts`.
    pub(crate) async fn privilege_key(&self, ts: i64) -> Result<String, OidcError> {
        match self {
            Auth::Token(t) => Ok(auth_key(t, ts)),
            Auth::OidcStatic(t) => Ok(t.0.clone()),
            Auth::Oidc(f) => f.token().await,
        }
    }
}
