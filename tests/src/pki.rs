//! Certificates made for a test (rcgen): a CA, leaves for localhost/127.0.0.1/::1 signed by
//! it, and a directory to write them to.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};
use std::path::{Path, PathBuf};

/// A CA certificate and its key.
#[allow(missing_debug_implementations)] // rcgen's Certificate has no Debug
pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

pub fn make_ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    Ca {
        cert: p.self_signed(&key).unwrap(),
        key,
    }
}

/// A leaf certificate for localhost/127.0.0.1/::1 signed by `ca`; returns (cert path, key path).
pub fn make_leaf(
    dir: &Path,
    name: &str,
    ca: &Ca,
    purpose: ExtendedKeyUsagePurpose,
    expired: bool,
) -> (String, String) {
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    p.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
    p.extended_key_usages = vec![purpose];
    if expired {
        p.not_before = rcgen::date_time_ymd(2001, 1, 1);
        p.not_after = rcgen::date_time_ymd(2002, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c.display().to_string(), k.display().to_string())
}

pub fn write_ca(dir: &Path, name: &str, ca: &Ca) -> String {
    let p = dir.join(format!("{name}.crt"));
    std::fs::write(&p, ca.cert.pem()).unwrap();
    p.display().to_string()
}

pub fn pki_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "frp-rs-pki-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
