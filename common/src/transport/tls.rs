//! TLS configs for frpc and frps (frp `pkg/transport/tls.go`; frp-protocol.md §3.2-3.3).
//!
//! - frpc verifies frps only when a trusted CA is configured; otherwise it accepts any
//!   certificate (frps's default certificate is self-signed), but still checks the handshake
//!   signature so the peer holds the key it presents.
//! - frps uses the configured certificate, or a fresh self-signed one made at start-up;
//!   with a trusted CA it requires and verifies client certificates (mTLS).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A TLS set-up failure that names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("read {kind} file {path}: {error}")]
    Read {
        kind: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{kind} file {path} holds no usable PEM {kind}")]
    Empty { kind: &'static str, path: PathBuf },
    #[error("tls config: {0}")]
    Rustls(rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(rustls::server::VerifierBuilderError),
    #[error("generate self-signed certificate: {0}")]
    Generate(rcgen::Error),
}

crate::from_cause!(rustls::Error => TlsError::Rustls);
crate::from_cause!(rustls::server::VerifierBuilderError => TlsError::Verifier);
crate::from_cause!(rcgen::Error => TlsError::Generate);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn open(kind: &'static str, path: &Path) -> Result<std::io::BufReader<std::fs::File>, TlsError> {
    std::fs::File::open(path)
        .map(std::io::BufReader::new)
        .map_err(|error| TlsError::Read {
            kind,
            path: path.to_owned(),
            error,
        })
}

/// Loads every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut open("certificate", path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Read {
            kind: "certificate",
            path: path.to_owned(),
            error,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            kind: "certificate",
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Loads a private key in PKCS#8, PKCS#1 (RSA) or SEC1 (EC) PEM form.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut open("key", path)?)
        .map_err(|error| TlsError::Read {
            kind: "key",
            path: path.to_owned(),
            error,
        })?
        .ok_or_else(|| TlsError::Empty {
            kind: "key",
            path: path.to_owned(),
        })
}

fn root_store(ca: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(ca)? {
        roots.add(c)?;
    }
    Ok(roots)
}

/// A client config for HTTPS to other services (OIDC): the given CA file, else the web PKI
/// roots; `insecure` skips certificate verification (frp's `insecureSkipVerify`).
pub fn https_client_config(
    trusted_ca_file: Option<&Path>,
    insecure: bool,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    if insecure {
        return client_config(&TlsFiles::default());
    }
    let roots = match trusted_ca_file {
        Some(ca) => root_store(ca)?,
        None => rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// File paths from `transport.tls.*`.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub trusted_ca_file: Option<PathBuf>,
}

/// frps's TLS acceptor config.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (certs, key) = match (&files.cert_file, &files.key_file) {
        (Some(c), Some(k)) => (load_certs(c)?, load_key(k)?),
        _ => {
            let ck = rcgen::generate_simple_self_signed(Vec::<String>::new())?;
            (
                vec![ck.cert.der().clone()],
                PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into()),
            )
        }
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let builder = match &files.trusted_ca_file {
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(root_store(ca)?),
                provider(),
            )
            .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(builder.with_single_cert(certs, key)?))
}

/// frpc's TLS connector config.
pub fn client_config(files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let builder = match &files.trusted_ca_file {
        Some(ca) => builder.with_root_certificates(root_store(ca)?),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider()))),
    };
    let cfg = match (&files.cert_file, &files.key_file) {
        (Some(c), Some(k)) => builder.with_client_auth_cert(load_certs(c)?, load_key(k)?)?,
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// The SNI/verification name: `serverName`, else `serverAddr` (as frp).
pub fn server_name(name: &str) -> ServerName<'static> {
    ServerName::try_from(name.to_owned())
        .unwrap_or_else(|_| ServerName::try_from("frp".to_owned()).expect("static name"))
}

/// frp's `InsecureSkipVerify = true` when no CA is configured.
#[derive(Debug)]
struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS failure behind a failed login, said from frpc's side with what to change; `None`
/// when `e` is not a TLS failure. (A TLS 1.3 client finishes its handshake before frps has
/// checked the client certificate, so frps's refusal arrives as an alert on the first read,
/// possibly through the yamux session: [`super::cause_of`] looks through it.)
pub fn explain_for_client(e: &std::io::Error) -> Option<String> {
    use rustls::AlertDescription as A;
    let tls = super::cause_of::<rustls::Error>(e)?;
    Some(match tls {
        rustls::Error::AlertReceived(A::CertificateRequired) => format!(
            "peer sent alert {}; frps requires a client certificate (transport.tls.certFile \
             and transport.tls.keyFile)",
            alert_words(A::CertificateRequired)
        ),
        rustls::Error::AlertReceived(
            a @ (A::BadCertificate
            | A::UnknownCA
            | A::CertificateUnknown
            | A::UnsupportedCertificate
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::DecryptError),
        ) => format!(
            "peer sent alert {}; frps did not accept this client certificate \
             (transport.tls.certFile must be signed by the CA in frps's \
             transport.tls.trustedCaFile)",
            alert_words(*a)
        ),
        rustls::Error::AlertReceived(a) => format!("peer sent alert {}", alert_words(*a)),
        rustls::Error::InvalidCertificate(_) => format!(
            "{tls}; frps's certificate was not accepted (transport.tls.trustedCaFile, \
             transport.tls.serverName)"
        ),
        other => other.to_string(),
    })
}

/// `CertificateRequired` -> `certificate required`.
fn alert_words(a: rustls::AlertDescription) -> String {
    let name = format!("{a:?}");
    let mut out = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push(' ');
        }
        prev_lower = c.is_ascii_lowercase();
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_are_explained_with_the_setting_to_change() {
        let alert = |a| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::AlertReceived(a),
            )
        };
        let e = explain_for_client(&alert(rustls::AlertDescription::CertificateRequired));
        assert_eq!(
            e.as_deref(),
            Some(
                "peer sent alert certificate required; frps requires a client certificate \
                 (transport.tls.certFile and transport.tls.keyFile)"
            )
        );
        let e = explain_for_client(&alert(rustls::AlertDescription::UnknownCA)).unwrap_or_default();
        assert!(
            e.starts_with("peer sent alert unknown ca; frps did not accept"),
            "{e}"
        );
        assert_eq!(
            explain_for_client(&std::io::Error::other("plain failure")),
            None
        );
    }
}
