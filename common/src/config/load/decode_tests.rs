//! Decode errors are reported with everything else, worded for users (issue 13, item 3).

use super::test_util::*;
use super::*;

fn client_problems(text: &str, file: &str) -> Vec<String> {
    match load_client_text(text, Path::new(file), &opts()) {
        Ok(_) => panic!("{file} loaded"),
        Err(e) => e.problems().iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn a_type_error_does_not_hide_unknown_keys_or_validation_problems() {
    let text = "serverPort = \"x\"
bogus = 1
log.level = \"loud\"
[[proxies]]
name = \"a\"
type = \"tcp\"
remotePort = \"x\"
localPrt = 1
localPort = 70000
[[proxies]]
name = \"a\"
type = \"tcp\"
";
    let got = client_problems(text, "frpc.toml");
    let want = [
        "frpc.toml:1:1: serverPort: expected a port number (0-65535), found the string \"x\"",
        "frpc.toml:7:1: proxies[0].remotePort: expected a port number (0-65535), found the string \"x\"",
        "frpc.toml:9:1: proxies[0].localPort: 70000 is not a port number (0-65535)",
        "frpc.toml:2:1: bogus: unknown field \"bogus\"",
        "frpc.toml:8:1: proxies[0].localPrt: unknown field \"localPrt\", did you mean \"localPort\"?",
        "frpc.toml:3:5: log.level: \"loud\" is not one of trace, debug, info, warn, error",
        "frpc.toml:11:1: proxies[1].name: proxy name [a] is duplicated",
    ];
    for w in want {
        assert!(got.iter().any(|g| g == w), "missing {w:?} in {got:#?}");
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
}

#[test]
fn types_are_worded_for_users() {
    let cases = [
        (
            "transport.tcpMux = \"yes\"",
            "transport.tcpMux: expected true or false, found the string \"yes\"",
        ),
        (
            "transport.poolCount = \"5\"",
            "transport.poolCount: expected an integer, found the string \"5\"",
        ),
        (
            "transport.poolCount = 1.5",
            "transport.poolCount: expected an integer, found the number 1.5",
        ),
        ("user = 5", "user: expected a string, found the number 5"),
        (
            "auth.token = true",
            "auth.token: expected a string, found the boolean true",
        ),
        (
            "start = \"a\"",
            "start: expected a list, found the string \"a\"",
        ),
        (
            "start = [\"a\", 1]",
            "start[1]: expected a string, found the number 1",
        ),
        (
            "transport = 5",
            "transport: expected a table, found the number 5",
        ),
        (
            "metadatas = { a = 1 }",
            "metadatas.a: expected a string, found the number 1",
        ),
        (
            "featureGates = { VirtualNet = \"on\" }",
            "featureGates.VirtualNet: expected true or false, found the string \"on\"",
        ),
        (
            "[[proxies]]\nname = \"a\"\ntype = \"tcp\"\nenabled = \"no\"",
            "proxies[0].enabled: expected true or false, found the string \"no\"",
        ),
        (
            "proxies = [5]",
            "proxies[0]: expected a table, found the number 5",
        ),
        (
            "serverPort = -1",
            "serverPort: -1 is not a port number (0-65535)",
        ),
    ];
    for (text, want) in cases {
        let got = client_problems(text, "frpc.toml");
        assert!(
            got.iter().any(|g| g.ends_with(want)),
            "{text:?}: want {want:?} in {got:#?}"
        );
        assert!(
            !got.iter()
                .any(|g| g.contains("u16") || g.contains("i64") || g.contains("invalid type")),
            "{got:#?}"
        );
    }
}

#[test]
fn every_format_collects_type_errors_with_positions() {
    let yaml = "serverPort: x\nbogus: 1\nproxies:\n  - name: a\n    type: tcp\n    remotePort: x\n";
    let got = client_problems(yaml, "frpc.yaml");
    assert!(got.iter().any(|g| g == "frpc.yaml:1:1: serverPort: expected a port number (0-65535), found the string \"x\""), "{got:#?}");
    assert!(
        got.iter()
            .any(|g| g.starts_with("frpc.yaml:6:5: proxies[0].remotePort: expected a port number")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("frpc.yaml:2:1: bogus: unknown field")),
        "{got:#?}"
    );
    let json = "{\"serverPort\": \"x\",\n \"bogus\": 1}";
    let got = client_problems(json, "frpc.json");
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(
        got.iter()
            .any(|g| g.starts_with("frpc.json:1:2: serverPort: expected a port number")),
        "{got:#?}"
    );
}

/// A key with a type error is reported once: the default put in its place to go on decoding
/// does not also fail validation ("bindPort is required").
#[test]
fn a_type_error_is_not_reported_again_by_validation() {
    let text =
        "[[visitors]]\nname = \"v\"\ntype = \"stcp\"\nserverName = \"s\"\nbindPort = \"x\"\n";
    let got = client_problems(text, "frpc.toml");
    assert_eq!(
        got,
        ["frpc.toml:5:1: visitors[0].bindPort: expected an integer, found the string \"x\""]
    );
    let got = client_problems("proxies = [5]", "frpc.toml");
    assert_eq!(got.len(), 1, "{got:#?}");
}

#[test]
fn server_type_errors_too() {
    let got = match load_server_text(
        "bindPort = \"x\"\nvhostHTTPPort = 99999\nallowPorts = [{ start = \"a\" }]\nbogus = 1\n",
        Path::new("frps.toml"),
        &opts(),
    ) {
        Ok(_) => panic!("loaded"),
        Err(e) => e
            .problems()
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>(),
    };
    assert_eq!(got.len(), 4, "{got:#?}");
    assert!(
        got.iter().any(|g| g.ends_with(
            "allowPorts[0].start: expected a port number (0-65535), found the string \"a\""
        )),
        "{got:#?}"
    );
}

/// `--strict_config=false` accepts unknown keys, as frp does, but names each one.
#[test]
fn unknown_keys_are_named_when_not_strict() {
    let mut o = opts();
    o.strict = false;
    let l = load_client_text(
        "bogus = 1\n[[proxies]]\nname = \"a\"\ntype = \"tcp\"\nlocalPrt = 1\n",
        Path::new("frpc.toml"),
        &o,
    )
    .unwrap();
    assert_eq!(
        l.warnings,
        [
            "frpc.toml:1:1: bogus: unknown field \"bogus\"; ignored (not strict)",
            "frpc.toml:5:1: proxies[0].localPrt: unknown field \"localPrt\", did you mean \"localPort\"?; ignored (not strict)",
        ]
    );
}
