//! How config files are read: byte-order marks, invalid UTF-8 (issue 12, items 4 and 15).

use super::*;
use std::collections::BTreeMap;

fn opts() -> LoadOptions {
    LoadOptions {
        strict: true,
        allow_unsafe: Vec::new(),
        envs: BTreeMap::new(),
        cwd: None,
    }
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "frp-rs-enc-{tag}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

const BOM: &str = "\u{feff}";

/// The same frpc config in every format frp reads, by file name.
fn client_in_every_format() -> [(&'static str, &'static str); 4] {
    [
        (
            "frpc.toml",
            "serverAddr = \"10.0.0.1\"\nserverPort = 7001\n[[proxies]]\nname = \"ssh\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 6000\n",
        ),
        (
            "frpc.yaml",
            "serverAddr: 10.0.0.1\nserverPort: 7001\nproxies:\n  - name: ssh\n    type: tcp\n    localPort: 22\n    remotePort: 6000\n",
        ),
        (
            "frpc.json",
            r#"{"serverAddr":"10.0.0.1","serverPort":7001,"proxies":[{"name":"ssh","type":"tcp","localPort":22,"remotePort":6000}]}"#,
        ),
        (
            "frpc.ini",
            "[common]\nserver_addr = 10.0.0.1\nserver_port = 7001\n\n[ssh]\ntype = tcp\nlocal_port = 22\nremote_port = 6000\n",
        ),
    ]
}

#[test]
fn every_format_loads_with_or_without_a_byte_order_mark() {
    let dir = tempdir("bom");
    for (name, text) in client_in_every_format() {
        let plain = dir.join(name);
        std::fs::write(&plain, text).unwrap();
        let want = load_client(&plain, &opts())
            .unwrap_or_else(|e| panic!("{name} without BOM: {e}"))
            .config;
        assert_eq!(want.server_addr, "10.0.0.1", "{name}");
        assert_eq!(want.proxies[0].remote_port, 6000, "{name}");
        let with_bom = dir.join(format!("bom-{name}"));
        std::fs::write(&with_bom, format!("{BOM}{text}")).unwrap();
        let got = load_client(&with_bom, &opts())
            .unwrap_or_else(|e| panic!("{name} with BOM: {e}"))
            .config;
        assert_eq!(got, want, "{name}: a BOM changes nothing");
        // The same with the format told only by the content (no telling extension).
        let got = load_client_text(&format!("{BOM}{text}"), Path::new("frpc.conf"), &opts())
            .unwrap_or_else(|e| panic!("{name} as frpc.conf with BOM: {e}"))
            .config;
        assert_eq!(got, want, "{name} as frpc.conf");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_legacy_ini_with_a_byte_order_mark_is_read_as_ini() {
    let text = format!("{BOM}[common]\nbind_port = 7001\n");
    let l = load_server_text(&text, Path::new("frps.ini"), &opts()).unwrap();
    assert_eq!(l.config.bind_port, 7001);
    assert!(
        l.warnings
            .iter()
            .any(|w| w.contains("INI config format is deprecated")),
        "read as INI: {:?}",
        l.warnings
    );
}

#[test]
fn positions_after_a_byte_order_mark_count_from_the_first_character() {
    let err = load_client_text(
        &format!("{BOM}bogus = 1\n"),
        Path::new("frpc.toml"),
        &opts(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("frpc.toml:1:1: bogus: unknown field"),
        "{err}"
    );
}
