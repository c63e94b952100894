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
    #[error("read {kind} file {path}: {source}")]
    Read {
        kind: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{kind} file {path} holds no usable PEM {kind}")]
    Empty { kind: &'static str, path: PathBuf },
    #[error("tls config: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("generate self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn open(kind: &'static str, path: &Path) -> Result<std::io::BufReader<std::fs::File>, TlsError> {
    std::fs::File::open(path)
        .map(std::io::BufReader::new)
        .map_err(|source| TlsError::Read {
            kind,
            path: path.to_owned(),
            source,
        })
}

/// Loads every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut open("certificate", path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            kind: "certificate",
            path: path.to_owned(),
            source,
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
        .map_err(|source| TlsError::Read {
            kind: "key",
            path: path.to_owned(),
            source,
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
