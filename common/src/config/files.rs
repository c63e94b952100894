//! Load-time checks of the files a config points at (certificates, private keys, CAs): each
//! must exist and hold what its key says, so `verify` reports a private key given as a CA, or
//! a key that is not the certificate's, without running anything. Reads those files; no other
//! I/O.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls_pemfile::Item;

/// The PEM blocks of a file that matter here.
#[derive(Default)]
struct Pem {
    certs: Vec<CertificateDer<'static>>,
    keys: Vec<PrivateKeyDer<'static>>,
}

/// The largest certificate, key or CA file read (a CA bundle is a few hundred KiB).
const MAX_PEM_FILE: u64 = 1 << 20;

fn read_pem(path: &str) -> Result<Pem, String> {
    use std::io::Read;
    // Only a regular file of bounded size is read: `/dev/zero` or a FIFO named as a
    // certificate must not exhaust memory or block the loader.
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("file {path} does not exist"))
        }
        Err(e) => return Err(format!("cannot read {path}: {e}")),
    };
    if !meta.is_file() {
        return Err(format!("{path} is not a regular file"));
    }
    if meta.len() > MAX_PEM_FILE {
        return Err(format!(
            "{path} is larger than {MAX_PEM_FILE} bytes; not a certificate or key file"
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PEM_FILE).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut pem = Pem::default();
    for item in rustls_pemfile::read_all(&mut &bytes[..]) {
        // The parser's error quotes the file's text; say only that it is not PEM (the file
        // may be anything, and this message can reach an admin API caller).
        match item.map_err(|_| format!("{path} is not valid PEM"))? {
            Item::X509Certificate(c) => pem.certs.push(c),
            Item::Pkcs1Key(k) => pem.keys.push(k.into()),
            Item::Pkcs8Key(k) => pem.keys.push(k.into()),
            Item::Sec1Key(k) => pem.keys.push(k.into()),
            _ => {}
        }
    }
    Ok(pem)
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The certificates in a `certFile` or `trustedCaFile`, each parsed as X.509.
pub(crate) fn certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_pem(path)?;
    if pem.certs.is_empty() {
        return Err(if pem.keys.is_empty() {
            format!("{path} holds no PEM certificate")
        } else {
            format!("{path} holds a private key, not a certificate")
        });
    }
    for (i, c) in pem.certs.iter().enumerate() {
        rustls::RootCertStore::empty()
            .add(c.clone())
            .map_err(|e| format!("{path}: certificate {} does not parse: {e}", i + 1))?;
    }
    Ok(pem.certs)
}

/// The private key in a `keyFile` (PKCS#8, PKCS#1 or SEC1), parsed.
pub(crate) fn private_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read_pem(path)?;
    let Some(key) = pem.keys.into_iter().next() else {
        return Err(if pem.certs.is_empty() {
            format!("{path} holds no PEM private key")
        } else {
            format!("{path} holds a certificate, not a private key")
        });
    };
    provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| format!("{path}: the private key does not parse: {e}"))?;
    Ok(key)
}

/// Whether a certificate chain and a key belong together.
pub(crate) fn pair(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: &str,
    key_path: &str,
) -> Result<(), String> {
    match rustls::sign::CertifiedKey::from_der(certs, key, &provider()) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(format!(
            "the private key in {key_path} does not match the certificate in {cert_path}"
        )),
        Err(e) => Err(format!("{key_path} with {cert_path}: {e}")),
    }
}
