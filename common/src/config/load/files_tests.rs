//! Load-time checks of the files a config points at (issue 12, item 8): each must exist and
//! hold what its key says, so `verify` catches a private key given as a CA.

use super::test_util::*;
use super::*;

struct Files {
    dir: PathBuf,
    cert: String,
    key: String,
    other_key: String,
    garbage: String,
}

impl Files {
    fn new() -> Files {
        let dir = std::env::temp_dir().join(format!(
            "frp-rs-files-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["other".to_string()]).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        Files {
            cert: write("cert.pem", &ck.cert.pem()),
            key: write("key.pem", &ck.key_pair.serialize_pem()),
            other_key: write("other-key.pem", &other.key_pair.serialize_pem()),
            garbage: write("garbage.pem", "hello\n"),
            dir,
        }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn good_certificates_and_keys_load() {
    let f = Files::new();
    let tls = format!(
        "certFile = \"{}\"\nkeyFile = \"{}\"\ntrustedCaFile = \"{}\"\n",
        f.cert, f.key, f.cert
    );
    load_server_text(
        &format!(
            "[transport.tls]\n{tls}[webServer.tls]\ncertFile = \"{}\"\nkeyFile = \"{}\"\n",
            f.cert, f.key
        ),
        Path::new("frps.toml"),
        &opts(),
    )
    .unwrap();
    load_client_text(
        &format!(
            "auth.oidc.trustedCaFile = \"{}\"\n[transport.tls]\n{tls}",
            f.cert
        ),
        Path::new("frpc.toml"),
        &opts(),
    )
    .unwrap();
}

#[test]
fn a_private_key_given_as_ca_fails_naming_key_and_file() {
    let f = Files::new();
    let want = format!(
        "transport.tls.trustedCaFile: {} holds a private key, not a certificate",
        f.key
    );
    let e = server_err(&format!("transport.tls.trustedCaFile = \"{}\"\n", f.key));
    assert!(e.contains(&want), "{e}");
    let e = client_err(&format!("transport.tls.trustedCaFile = \"{}\"\n", f.key));
    assert!(e.contains(&want), "{e}");
    let e = client_err(&format!("auth.oidc.trustedCaFile = \"{}\"\n", f.key));
    assert!(
        e.contains(&format!(
            "auth.oidc.trustedCaFile: {} holds a private key, not a certificate",
            f.key
        )),
        "{e}"
    );
}

#[test]
fn certificate_and_key_files_must_hold_what_they_say() {
    let f = Files::new();
    for (side, prefix) in [
        ("frps", "transport.tls"),
        ("frps", "webServer.tls"),
        ("frpc", "transport.tls"),
    ] {
        let table = |cert: &str, key: &str| {
            format!("[{prefix}]\ncertFile = \"{cert}\"\nkeyFile = \"{key}\"\n")
        };
        let err = |text: String| {
            if side == "frps" {
                server_err(&text)
            } else {
                client_err(&text)
            }
        };
        // Swapped.
        let e = err(table(&f.key, &f.cert));
        assert!(
            e.contains(&format!(
                "{prefix}.certFile: {} holds a private key, not a certificate",
                f.key
            )),
            "{side} {e}"
        );
        assert!(
            e.contains(&format!(
                "{prefix}.keyFile: {} holds a certificate, not a private key",
                f.cert
            )),
            "{side} {e}"
        );
        // Not PEM at all.
        let e = err(table(&f.garbage, &f.garbage));
        assert!(
            e.contains(&format!(
                "{prefix}.certFile: {} holds no PEM certificate",
                f.garbage
            )),
            "{side} {e}"
        );
        assert!(
            e.contains(&format!(
                "{prefix}.keyFile: {} holds no PEM private key",
                f.garbage
            )),
            "{side} {e}"
        );
        // A key that is not the certificate's.
        let e = err(table(&f.cert, &f.other_key));
        assert!(
            e.contains(&format!(
                "{prefix}.keyFile: the private key in {} does not match the certificate in {}",
                f.other_key, f.cert
            )),
            "{side} {e}"
        );
        // Missing.
        let e = err(table("/nonexistent/c.pem", &f.key));
        assert!(
            e.contains(&format!(
                "{prefix}.certFile: file /nonexistent/c.pem does not exist"
            )),
            "{side} {e}"
        );
    }
}

/// Half a pair was silently no TLS (webServer) or no client certificate (frpc).
#[test]
fn cert_and_key_must_be_set_together() {
    let f = Files::new();
    let e = server_err(&format!("webServer.tls.certFile = \"{}\"\n", f.cert));
    assert!(
        e.contains("webServer.tls: certFile and keyFile must be set together"),
        "{e}"
    );
    let e = client_err(&format!("transport.tls.keyFile = \"{}\"\n", f.key));
    assert!(
        e.contains("transport.tls: certFile and keyFile must be set together"),
        "{e}"
    );
}

/// A certificate path that is a device, a FIFO or a huge file is refused without reading it
/// (a FIFO would block the loader, /dev/zero exhaust memory), and a file that is not PEM is
/// named without quoting its content (the message can reach an admin API caller).
#[test]
fn certificate_files_are_read_only_when_regular_and_small() {
    use crate::config::files::certificates;
    let dir = std::env::temp_dir().join(format!("frp-rs-pemfiles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = certificates("/dev/zero").unwrap_err();
    assert!(err.contains("is not a regular file"), "{err}");
    let fifo = dir.join("fifo");
    let _ = std::fs::remove_file(&fifo);
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let err = certificates(&fifo.display().to_string()).unwrap_err();
    assert!(err.contains("is not a regular file"), "{err}");
    let big = dir.join("big.pem");
    std::fs::write(&big, vec![b'a'; (1 << 20) + 1]).unwrap();
    let err = certificates(&big.display().to_string()).unwrap_err();
    assert!(err.contains("is larger than"), "{err}");
    let secret = dir.join("shadow");
    std::fs::write(
        &secret,
        "-----BEGIN CERTIFICATE-----root:$6$HASHSECRET:19000\n",
    )
    .unwrap();
    let err = certificates(&secret.display().to_string()).unwrap_err();
    assert!(!err.contains("HASHSECRET"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
