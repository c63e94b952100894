//! How config files are read: byte-order marks, invalid UTF-8 (issue 12, items 4 and 15).

use super::test_util::*;
use super::*;

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

/// The error as `{:#}` prints it (anyhow): the message, then each cause.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[test]
fn invalid_utf8_names_file_line_and_column_once() {
    let dir = tempdir("utf8");
    let f = dir.join("frpc.toml");
    std::fs::write(&f, b"serverPort = 7000\nuser = \"ab\xffc\"\n").unwrap();
    let err = load_client(&f, &opts()).unwrap_err();
    let want = format!(
        "{}:2:11: the file is not valid UTF-8 (byte 0xff); config files must be UTF-8 text",
        f.display()
    );
    assert_eq!(chain(&err), want);
    // After a multi-byte character the column still counts characters.
    std::fs::write(
        &f,
        "user = \"é\u{2603}"
            .bytes()
            .chain(*b"\xc3(\"\n")
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let err = load_client(&f, &opts()).unwrap_err();
    assert!(
        chain(&err).contains("frpc.toml:1:11: the file is not valid UTF-8 (byte 0xc3)"),
        "{}",
        chain(&err)
    );
    // Also in an included file.
    std::fs::create_dir_all(dir.join("confd")).unwrap();
    std::fs::write(dir.join("confd/bad.toml"), b"\n\n\xfe").unwrap();
    let mut o = opts();
    o.cwd = Some(dir.clone());
    let err = load_client_text(
        "includes = [\"confd/*.toml\"]\n",
        Path::new("frpc.toml"),
        &o,
    )
    .unwrap_err();
    let s = chain(&err);
    assert!(
        s.contains("bad.toml:3:1: the file is not valid UTF-8 (byte 0xfe)"),
        "{s}"
    );
    assert_eq!(s.matches("bad.toml").count(), 1, "{s}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_read_error_prints_its_cause_once() {
    let err = load_client(Path::new("/nonexistent/frpc.toml"), &opts()).unwrap_err();
    let s = chain(&err);
    assert_eq!(s.matches("No such file or directory").count(), 1, "{s}");
    assert!(
        s.starts_with("read config file /nonexistent/frpc.toml"),
        "{s}"
    );
}

/// A legacy INI key the conversion does not read is named, not silently dropped; frp's own
/// legacy examples use none.
#[test]
fn unread_ini_keys_are_reported() {
    let l = load_client_text(
        "[common]\nserver_port = 7001\nserver_prot = 7002\n[ssh]\ntype = tcp\nlocal_prot = 22\n",
        Path::new("frpc.ini"),
        &opts(),
    )
    .unwrap();
    for want in [
        "frpc.ini:3: [common] server_prot: not an INI key frp-rs reads; ignored",
        "frpc.ini:6: [ssh] local_prot: not an INI key frp-rs reads; ignored",
    ] {
        assert!(
            l.warnings.iter().any(|w| w == want),
            "{want}: {:?}",
            l.warnings
        );
    }
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/frp-conf");
    let c = load_client(&fixtures.join("frpc_legacy_full.ini"), &opts()).unwrap();
    let s = load_server(&fixtures.join("frps_legacy_full.ini"), &opts()).unwrap();
    for w in c.warnings.iter().chain(&s.warnings) {
        assert!(!w.contains("not an INI key"), "{w}");
    }
}

/// frp reads a file by its content, whatever its name (TOML, then JSON, then YAML): a `.toml`
/// holding JSON or YAML loads, with a warning that says so; a real TOML mistake in a `.toml`
/// is still reported in TOML's words.
#[test]
fn files_are_read_by_content_when_their_name_misleads() {
    let load = |name: &str, text: &str| {
        load_client_text(text, Path::new(name), &opts()).map(|l| (l.config.server_port, l.warnings))
    };
    let (port, warnings) = load("frpc.toml", "{\"serverPort\": 7001}\n").unwrap();
    assert_eq!(port, 7001);
    assert!(
        warnings.iter().any(|w| w.contains("read as JSON")),
        "{warnings:?}"
    );
    let (port, warnings) = load("frpc.toml", "serverPort: 7002\n").unwrap();
    assert_eq!(port, 7002);
    assert!(
        warnings.iter().any(|w| w.contains("read as YAML")),
        "{warnings:?}"
    );
    let (port, _) = load("frpc.json", "serverPort = 7003\n").unwrap();
    assert_eq!(port, 7003);
    let err = load("frpc.toml", "serverPort = 70x\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("TOML:"), "{err}");
}

/// A syntax error in a file whose template used an unset variable names the variable.
#[test]
fn a_syntax_error_names_the_unset_variable_behind_it() {
    let err = load_server_text(
        "bindPort = {{ .Envs.FRP_TEST_UNSET_PORT }}\n",
        Path::new("frps.toml"),
        &opts(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("not set in the environment: FRP_TEST_UNSET_PORT"),
        "{err}"
    );
}
