//! Loader table tests: frp's own configs, defaults, templates, includes, formats, case, errors.

use super::test_util::*;
use super::*;
use crate::config::*;

fn client(text: &str) -> Result<ClientConfig, ConfigError> {
    load_client_text(text, Path::new("frpc.toml"), &opts()).map(|l| l.config)
}

fn server(text: &str) -> Result<ServerConfig, ConfigError> {
    load_server_text(text, Path::new("frps.toml"), &opts()).map(|l| l.config)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/frp-conf")
        .join(name)
}

#[test]
fn fixtures_match_shared_frp_conf() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/frp-conf");
    if !shared.exists() {
        return; // a checkout without shared/ beside it: the committed copies are what we test.
    }
    for e in std::fs::read_dir(&shared).unwrap() {
        let e = e.unwrap();
        let ours = std::fs::read(fixture(e.file_name().to_str().unwrap())).unwrap();
        assert_eq!(
            ours,
            std::fs::read(e.path()).unwrap(),
            "fixture {:?} is stale",
            e.file_name()
        );
    }
}

#[test]
fn frps_own_example_configs_load() {
    // The full examples use every feature: the ones frp-rs does not have yet are warnings, and
    // those are the only warnings.
    let only_unsupported = |f: &str, w: &[String]| {
        for w in w {
            assert!(
                w.contains("not supported") || w.contains("ignored"),
                "{f}: {w}"
            );
        }
    };
    for f in ["frpc.toml", "frpc_full_example.toml"] {
        let l = load_client(&fixture(f), &opts()).unwrap_or_else(|e| panic!("{f}: {e}"));
        only_unsupported(f, &l.warnings);
    }
    assert!(load_client(&fixture("frpc.toml"), &opts())
        .unwrap()
        .warnings
        .is_empty());
    for f in ["frps.toml", "frps_full_example.toml"] {
        let l = load_server(&fixture(f), &opts()).unwrap_or_else(|e| panic!("{f}: {e}"));
        only_unsupported(f, &l.warnings);
    }
    let full = load_client(&fixture("frpc_full_example.toml"), &opts())
        .unwrap()
        .config;
    assert_eq!(full.proxies.len(), 18);
    assert_eq!(full.visitors.len(), 3);
    assert_eq!(full.transport.pool_count, 5);
    let web01 = full.proxies.iter().find(|p| p.name == "web01").unwrap();
    assert_eq!(
        web01
            .request_headers
            .set
            .get("x-from-where")
            .map(String::as_str),
        Some("frp")
    );
    assert_eq!(web01.health_check.http_headers[0].name, "x-from-where");
    assert_eq!(
        full.proxies[0]
            .annotations
            .get("prefix/key2")
            .map(String::as_str),
        Some("value2")
    );
    let s = load_server(&fixture("frps_full_example.toml"), &opts())
        .unwrap()
        .config;
    assert_eq!(s.allow_ports.len(), 4);
    assert_eq!(s.http_plugins[1].ops, vec!["NewProxy".to_string()]);
    assert_eq!(s.http_plugins[0].path, "/handler");
}

#[test]
fn legacy_ini_configs_load_with_a_deprecation_warning() {
    let c = load_client(&fixture("frpc_legacy_full.ini"), &opts()).unwrap();
    assert!(
        c.warnings.iter().any(|w| w.contains("deprecated")),
        "{:?}",
        c.warnings
    );
    let cfg = c.config;
    assert_eq!(
        (
            cfg.server_port,
            cfg.auth.token.0.as_str(),
            cfg.user.as_str()
        ),
        (7000, "12345678", "your_name")
    );
    assert_eq!((cfg.web_server.port, cfg.transport.pool_count), (7400, 5));
    assert_eq!(cfg.metadatas.get("var1").map(String::as_str), Some("123"));
    // [range:tcp_port] local_port = 6010-6020,6022,6024-6028 -> 17 proxies tcp_port_0..16.
    let ranged: Vec<_> = cfg
        .proxies
        .iter()
        .filter(|p| p.name.starts_with("tcp_port_"))
        .collect();
    assert_eq!(ranged.len(), 17);
    assert_eq!(
        (ranged[11].local_port, ranged[11].remote_port),
        (6022, 6022)
    );
    let web01 = cfg.proxies.iter().find(|p| p.name == "web01").unwrap();
    assert_eq!(web01.locations, vec!["/".to_string(), "/pic".to_string()]);
    assert_eq!(
        web01
            .request_headers
            .set
            .get("X-From-Where")
            .map(String::as_str),
        Some("frp")
    );
    assert_eq!(web01.health_check.path, "/status");
    let socks = cfg
        .proxies
        .iter()
        .find(|p| p.name == "plugin_socks5")
        .unwrap();
    assert_eq!(socks.plugin.as_ref().unwrap().username, "abc");
    assert_eq!(cfg.visitors.len(), 2);
    assert_eq!(cfg.visitors[1].server_user, "user1");

    let s = load_server(&fixture("frps_legacy_full.ini"), &opts()).unwrap();
    assert!(s.warnings.iter().any(|w| w.contains("deprecated")));
    let s = s.config;
    assert_eq!(
        (
            s.vhost_http_port,
            s.web_server.port,
            s.transport.max_pool_count
        ),
        (80, 7500, 5)
    );
    assert_eq!(
        s.allow_ports[0],
        PortsRange {
            start: 2000,
            end: 3000,
            single: 0
        }
    );
    assert_eq!(
        s.allow_ports[1],
        PortsRange {
            single: 3001,
            ..Default::default()
        }
    );
    assert_eq!(s.http_plugins.len(), 2);
    assert_eq!(s.http_plugins[0].name, "user-manager");
}

/// frp's defaults for every key (frp-protocol.md §14.2-14.5), as the completed config shows them.
#[test]
fn every_default_matches_frp() {
    let c = serde_json::to_value(client("").unwrap()).unwrap();
    let want_client = [
        ("/serverAddr", json!("0.0.0.0")),
        ("/serverPort", json!(7000)),
        ("/user", json!("")),
        ("/clientID", json!("")),
        ("/natHoleStunServer", json!("stun.easyvoip.com:3478")),
        ("/dnsServer", json!("")),
        ("/loginFailExit", json!(true)),
        ("/start", json!([])),
        ("/log/to", json!("console")),
        ("/log/level", json!("info")),
        ("/log/maxDays", json!(3)),
        ("/log/disablePrintColor", json!(false)),
        ("/webServer/addr", json!("127.0.0.1")),
        ("/webServer/port", json!(0)),
        ("/auth/method", json!("token")),
        ("/auth/token", json!("")),
        ("/auth/additionalScopes", json!([])),
        ("/transport/protocol", json!("tcp")),
        ("/transport/wireProtocol", json!("v1")),
        ("/transport/dialServerTimeout", json!(10)),
        ("/transport/dialServerKeepalive", json!(7200)),
        ("/transport/connectServerLocalIP", json!("")),
        ("/transport/poolCount", json!(1)),
        ("/transport/tcpMux", json!(true)),
        ("/transport/tcpMuxKeepaliveInterval", json!(30)),
        ("/transport/quic/keepalivePeriod", json!(10)),
        ("/transport/quic/maxIdleTimeout", json!(30)),
        ("/transport/quic/maxIncomingStreams", json!(100000)),
        ("/transport/heartbeatInterval", json!(-1)),
        ("/transport/heartbeatTimeout", json!(-1)),
        ("/transport/tls/enable", json!(true)),
        ("/transport/tls/disableCustomTLSFirstByte", json!(true)),
        ("/udpPacketSize", json!(1500)),
        ("/featureGates", json!({})),
        ("/virtualNet/address", json!("")),
        ("/store/path", json!("")),
    ];
    for (k, v) in want_client {
        assert_eq!(c.pointer(k), Some(&v), "frpc {k}");
    }
    let no_mux = client("transport.tcpMux = false").unwrap().transport;
    assert_eq!(
        (no_mux.heartbeat_interval, no_mux.heartbeat_timeout),
        (30, 90)
    );

    let s = serde_json::to_value(server("").unwrap()).unwrap();
    let want_server = [
        ("/bindAddr", json!("0.0.0.0")),
        ("/bindPort", json!(7000)),
        ("/kcpBindPort", json!(0)),
        ("/quicBindPort", json!(0)),
        ("/proxyBindAddr", json!("0.0.0.0")),
        ("/vhostHTTPPort", json!(0)),
        ("/vhostHTTPSPort", json!(0)),
        ("/vhostHTTPTimeout", json!(60)),
        ("/tcpmuxHTTPConnectPort", json!(0)),
        ("/tcpmuxPassthrough", json!(false)),
        ("/subDomainHost", json!("")),
        ("/custom404Page", json!("")),
        ("/sshTunnelGateway/bindPort", json!(0)),
        (
            "/sshTunnelGateway/autoGenPrivateKeyPath",
            json!("./.autogen_ssh_key"),
        ),
        ("/webServer/addr", json!("127.0.0.1")),
        ("/webServer/port", json!(0)),
        ("/enablePrometheus", json!(false)),
        ("/auth/method", json!("token")),
        ("/transport/tcpMux", json!(true)),
        ("/transport/tcpMuxKeepaliveInterval", json!(30)),
        ("/transport/tcpKeepalive", json!(7200)),
        ("/transport/maxPoolCount", json!(5)),
        ("/transport/heartbeatTimeout", json!(-1)),
        ("/transport/quic/keepalivePeriod", json!(10)),
        ("/transport/tls/force", json!(false)),
        ("/detailedErrorsToClient", json!(true)),
        ("/maxPortsPerClient", json!(0)),
        ("/userConnTimeout", json!(10)),
        ("/udpPacketSize", json!(1500)),
        ("/natholeAnalysisDataReserveHours", json!(168)),
        ("/allowPorts", json!([])),
        ("/log/level", json!("info")),
    ];
    for (k, v) in want_server {
        assert_eq!(s.pointer(k), Some(&v), "frps {k}");
    }
    assert_eq!(
        server("transport.tcpMux = false")
            .unwrap()
            .transport
            .heartbeat_timeout,
        90
    );
    let dir = tempdir("ca");
    let ca = dir.join("ca.crt");
    let ck = rcgen::generate_simple_self_signed(vec!["ca".to_string()]).unwrap();
    std::fs::write(&ca, ck.cert.pem()).unwrap();
    assert!(
        server(&format!(
            "transport.tls.trustedCaFile = \"{}\"",
            ca.display()
        ))
        .unwrap()
        .transport
        .tls
        .force,
        "a CA forces TLS"
    );
    let _ = std::fs::remove_dir_all(dir);

    let p = &client("[[proxies]]\nname = \"a\"\ntype = \"tcp\"\nhealthCheck.type = \"tcp\"\n")
        .unwrap()
        .proxies[0];
    assert_eq!(
        (
            p.local_ip.as_str(),
            p.transport.bandwidth_limit_mode.as_str()
        ),
        ("127.0.0.1", "client")
    );
    assert_eq!(
        (
            p.health_check.timeout_seconds,
            p.health_check.max_failed,
            p.health_check.interval_seconds
        ),
        (3, 1, 10)
    );
    assert_eq!(p.enabled, None);
    let m = &client("[[proxies]]\nname = \"m\"\ntype = \"tcpmux\"\ncustomDomains = [\"a\"]\n")
        .unwrap()
        .proxies[0];
    assert_eq!(m.multiplexer, "httpconnect");
    let v =
        &client("[[visitors]]\nname = \"v\"\ntype = \"xtcp\"\nserverName = \"s\"\nbindPort = 1\n")
            .unwrap()
            .visitors[0];
    assert_eq!(
        (
            v.bind_addr.as_str(),
            v.protocol.as_str(),
            v.max_retries_an_hour,
            v.min_retry_interval,
            v.fallback_timeout_ms
        ),
        ("127.0.0.1", "quic", 8, 90, 1000)
    );
    let pl = client("[[proxies]]\nname = \"a\"\ntype = \"https\"\nsubdomain = \"x\"\n[proxies.plugin]\ntype = \"https2http\"\nlocalAddr = \"127.0.0.1:80\"\n").unwrap();
    assert_eq!(
        pl.proxies[0].plugin.as_ref().unwrap().enable_http2,
        Some(true)
    );
}

use serde_json::json;

#[test]
fn zero_means_default() {
    let c = client("serverPort = 0\n[transport]\npoolCount = 0\nheartbeatInterval = 0").unwrap();
    assert_eq!(
        (
            c.server_port,
            c.transport.pool_count,
            c.transport.heartbeat_interval
        ),
        (7000, 1, -1)
    );
}

#[test]
fn templates_with_set_and_unset_variables() {
    let mut o = opts();
    o.envs.insert("FRP_SERVER".into(), "10.0.0.1".into());
    let l = load_client_text(
        "serverAddr = \"{{ .Envs.FRP_SERVER }}\"\nuser = \"{{ .Envs.FRP_NOPE }}\"\n",
        Path::new("t.toml"),
        &o,
    )
    .unwrap();
    assert_eq!(l.config.server_addr, "10.0.0.1");
    assert_eq!(l.config.user, "<no value>");
    assert_eq!(l.warnings.len(), 1);
    assert!(
        l.warnings[0].contains("FRP_NOPE") && l.warnings[0].contains("t.toml"),
        "{:?}",
        l.warnings
    );
}

#[test]
fn range_helpers_make_proxies() {
    let text = r#"
serverAddr = "127.0.0.1"
{{- range $_, $v := parseNumberRange "6000-6002,6007" }}
[[proxies]]
name = "tcp-{{ $v }}"
type = "tcp"
localPort = {{ $v }}
remotePort = {{ $v }}
{{- end }}
{{- range $_, $v := parseNumberRangePair "7000-7001" "8000-8001" }}
[[proxies]]
name = "pair-{{ $v.First }}"
type = "tcp"
localPort = {{ $v.First }}
remotePort = {{ $v.Second }}
{{- end }}
"#;
    let c = client(text).unwrap();
    let names: Vec<_> = c.proxies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "tcp-6000",
            "tcp-6001",
            "tcp-6002",
            "tcp-6007",
            "pair-7000",
            "pair-7001"
        ]
    );
    assert_eq!(
        (c.proxies[5].local_port, c.proxies[5].remote_port),
        (7001, 8001)
    );
}

#[test]
fn includes_with_globs_relative_to_the_working_directory() {
    let dir = tempdir("inc");
    std::fs::create_dir_all(dir.join("confd/sub.toml")).unwrap(); // a directory matching the glob is skipped
    std::fs::write(
        dir.join("confd/a.toml"),
        "[[proxies]]\nname = \"a\"\ntype = \"tcp\"\nlocalPort = 1\n",
    )
    .unwrap();
    std::fs::write(dir.join("confd/b.toml"), "serverPort = 9999\n[[visitors]]\nname = \"v\"\ntype = \"stcp\"\nserverName = \"s\"\nbindPort = 2\n").unwrap();
    std::fs::write(
        dir.join("confd/c.yaml"),
        "proxies:\n  - name: c\n    type: udp\n",
    )
    .unwrap();
    std::fs::write(dir.join("confd/skip.txt"), "not matched").unwrap();
    let mut o = opts();
    o.cwd = Some(dir.clone());
    let text = "includes = [\"./confd/*.toml\", \"confd/*.yaml\", \"./confd/none-*.toml\"]\n[[proxies]]\nname = \"main\"\ntype = \"tcp\"\n";
    let c = load_client_text(text, Path::new("frpc.toml"), &o)
        .unwrap()
        .config;
    let names: Vec<_> = c.proxies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["main", "a", "c"]);
    assert_eq!(c.visitors[0].name, "v");
    assert_eq!(
        c.server_port, 7000,
        "only proxies and visitors come from includes"
    );

    // A duplicate across files, a bad key in an included file, and a missing directory.
    std::fs::write(
        dir.join("confd/d.toml"),
        "[[proxies]]\nname = \"main\"\ntype = \"tcp\"\nlocalPrt = 3\n",
    )
    .unwrap();
    let err = load_client_text(
        &format!("{text}includes2 = 1\n").replace("includes2 = 1\n", ""),
        Path::new("frpc.toml"),
        &o,
    )
    .unwrap_err();
    let s = err.to_string();
    assert!(s.contains("d.toml:4:1: proxies[0].localPrt: unknown field \"localPrt\", did you mean \"localPort\"?"), "{s}");
    assert!(s.contains("proxy name [main] is duplicated"), "{s}");
    let err = load_client_text(
        "includes = [\"./nodir/*.toml\"]",
        Path::new("frpc.toml"),
        &o,
    )
    .unwrap_err();
    assert!(err.to_string().contains("nodir"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn yaml_json_and_toml_give_the_same_config() {
    let toml = "serverAddr = \"1.2.3.4\"\nserverPort = 7001\nauth.token = \"t\"\n[[proxies]]\nname = \"ssh\"\ntype = \"tcp\"\nlocalPort = 22\nremotePort = 6000\ntransport.useEncryption = true\n";
    let yaml = "serverAddr: 1.2.3.4\nserverPort: 7001\nauth:\n  token: t\nproxies:\n  - name: ssh\n    type: tcp\n    localPort: 22\n    remotePort: 6000\n    transport:\n      useEncryption: true\n";
    let json = r#"{"serverAddr":"1.2.3.4","serverPort":7001,"auth":{"token":"t"},"proxies":[{"name":"ssh","type":"tcp","localPort":22,"remotePort":6000,"transport":{"useEncryption":true}}]}"#;
    let a = load_client_text(toml, Path::new("c.toml"), &opts())
        .unwrap()
        .config;
    let b = load_client_text(yaml, Path::new("c.yaml"), &opts())
        .unwrap()
        .config;
    let c = load_client_text(json, Path::new("c.json"), &opts())
        .unwrap()
        .config;
    let d = load_client_text(json, Path::new("c.conf"), &opts())
        .unwrap()
        .config;
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(a, d);
}

#[test]
fn keys_are_case_insensitive() {
    let c = client("ServerPort = 7001\nSERVERADDR = \"x\"\n[[Proxies]]\nNAME = \"a\"\nType = \"tcp\"\nlocalip = \"1.1.1.1\"\nREMOTEPORT = 5\n").unwrap();
    assert_eq!((c.server_port, c.server_addr.as_str()), (7001, "x"));
    assert_eq!(
        (c.proxies[0].local_ip.as_str(), c.proxies[0].remote_port),
        ("1.1.1.1", 5)
    );
    let s = server("bindport = 7002\nvhosthttpport = 80\n").unwrap();
    assert_eq!((s.bind_port, s.vhost_http_port), (7002, 80));
}

#[test]
fn unknown_key_has_line_column_and_suggestion() {
    let err =
        client("serverPort = 7000\n\n[[proxies]]\nname = \"a\"\ntype = \"tcp\"\n  localPrt = 1\n")
            .unwrap_err();
    assert_eq!(err.to_string(), "frpc.toml:6:3: proxies[0].localPrt: unknown field \"localPrt\", did you mean \"localPort\"?");
    let err = client("[transport]\npoolcnt = 1\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("frpc.toml:2:1: transport.poolcnt: unknown field \"poolcnt\""),
        "{err}"
    );
    // A key another proxy type has is still unknown for this type, as in frp.
    let err =
        client("[[proxies]]\nname = \"a\"\ntype = \"tcp\"\ncustomDomains = [\"x\"]\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("proxies[0].customDomains: unknown field"),
        "{err}"
    );
    // Non-strict mode accepts them.
    let mut o = opts();
    o.strict = false;
    assert!(load_client_text("bogus = 1\n", Path::new("x.toml"), &o).is_ok());
}

#[test]
fn type_errors_name_key_and_line() {
    let err = client("user = \"u\"\nserverPort = \"x\"\n").unwrap_err();
    let s = err.to_string();
    assert!(
        s.starts_with(
            "frpc.toml:2:1: serverPort: expected a port number (0-65535), found the string \"x\""
        ),
        "{s}"
    );
    let err =
        client("[[proxies]]\nname = \"a\"\ntype = \"tcp\"\nremotePort = 70000\n").unwrap_err();
    assert!(err.to_string().contains("proxies[0].remotePort"), "{err}");
    let err = client("serverPort = 7000\nserverAddr = \n").unwrap_err();
    assert!(err.to_string().starts_with("frpc.toml:2:"), "{err}");
}

#[test]
fn validation_reports_every_problem_at_once() {
    let text = "auth.method = \"magic\"\nlog.level = \"loud\"\n[[proxies]]\nname = \"a\"\ntype = \"nope\"\n[[proxies]]\nname = \"a\"\ntype = \"http\"\n[[proxies]]\nname = \"b\"\ntype = \"tcp\"\ntransport.bandwidthLimit = \"1GB\"\n";
    let err = client(text).unwrap_err();
    let p = err.problems();
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"auth.method"), "{keys:?}");
    assert!(keys.contains(&"log.level"));
    assert!(keys.contains(&"proxies[0].type"));
    assert!(keys.contains(&"proxies[1].name"));
    assert!(keys.contains(&"proxies[1].customDomains"));
    assert!(keys.contains(&"proxies[2].transport.bandwidthLimit"));
}

#[test]
fn missing_files_are_named() {
    let err = client("transport.tls.certFile = \"/nonexistent/client.crt\"\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("transport.tls.certFile: file /nonexistent/client.crt does not exist"),
        "{err}"
    );
    let err = server("[auth.tokenSource]\ntype = \"file\"\nfile.path = \"/nonexistent/token\"\n")
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/token"), "{err}");
}

#[test]
fn start_and_enabled_filter_proxies() {
    let c = client("start = [\"a\", \"c\"]\n[[proxies]]\nname = \"a\"\ntype = \"tcp\"\n[[proxies]]\nname = \"b\"\ntype = \"tcp\"\n[[proxies]]\nname = \"c\"\ntype = \"tcp\"\nenabled = false\n").unwrap();
    let active: Vec<_> = c.active_proxies().map(|p| p.name.as_str()).collect();
    assert_eq!(active, ["a"]);
}

#[test]
fn secrets_never_in_debug() {
    let c = client("auth.token = \"supersecret\"\nwebServer.password = \"pw-secret\"\n[[proxies]]\nname = \"s\"\ntype = \"stcp\"\nsecretKey = \"sk-secret\"\n").unwrap();
    let d = format!("{c:?}");
    for s in ["supersecret", "pw-secret", "sk-secret"] {
        assert!(!d.contains(s), "{s} leaked");
    }
}

#[test]
fn allow_ports() {
    let s = server("allowPorts = [{ start = 2000, end = 3000 }, { single = 3001 }]").unwrap();
    assert!(
        s.port_allowed(2000)
            && s.port_allowed(3001)
            && !s.port_allowed(3002)
            && !s.port_allowed(1999)
    );
}

#[test]
fn token_sources_file_and_exec() {
    let dir = tempdir("tok");
    let f = dir.join("token");
    std::fs::write(&f, "  from-file\n").unwrap();
    let text = format!(
        "[auth.tokenSource]\ntype = \"file\"\nfile.path = \"{}\"\n",
        f.display()
    );
    assert_eq!(client(&text).unwrap().auth.token.0, "from-file");
    assert_eq!(server(&text).unwrap().auth.token.0, "from-file");
    let both = format!("auth.token = \"x\"\n{text}");
    assert!(client(&both)
        .unwrap_err()
        .to_string()
        .contains("cannot be used together with auth.token"));

    let exec = "[auth.tokenSource]\ntype = \"exec\"\nexec.command = \"sh\"\nexec.args = [\"-c\", \"echo $T\"]\nexec.env = [{ name = \"T\", value = \"from-exec\" }]\n";
    let err = client(exec).unwrap_err().to_string();
    assert!(err.contains("--allow-unsafe TokenSourceExec"), "{err}");
    let mut o = opts();
    o.allow_unsafe = vec!["TokenSourceExec".into()];
    assert_eq!(
        load_client_text(exec, Path::new("c.toml"), &o)
            .unwrap()
            .config
            .auth
            .token
            .0,
        "from-exec"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `serverAddrs` (frp-rs): host:port entries in order, an IPv6 host in brackets; nothing else,
/// and not together with serverAddr/serverPort. `proxyProtocol.trustedAddrs`: addresses or CIDR
/// blocks.
#[test]
fn server_addrs_and_trusted_addrs_are_checked() {
    let c =
        client("serverAddrs = [\"a.example:7000\", \"[::1]:7001\", \"10.0.0.2:7002\"]\n").unwrap();
    assert_eq!(
        c.servers(),
        [
            ("a.example".to_owned(), 7000),
            ("::1".to_owned(), 7001),
            ("10.0.0.2".to_owned(), 7002)
        ]
    );
    assert_eq!(
        client("").unwrap().servers(),
        [("0.0.0.0".to_owned(), 7000)]
    );
    let err = client("serverAddrs = [\"a.example\", \"::1:7000\", \"h:0\", \"h:x\", \"ok:1\"]\n")
        .unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "serverAddrs[0]",
            "serverAddrs[1]",
            "serverAddrs[2]",
            "serverAddrs[3]"
        ]
    );
    let err = client("serverAddrs = [\"h:99999\"]\n").unwrap_err();
    assert!(
        err.to_string().contains("port 99999 is out of range"),
        "{err}"
    );
    for both in ["serverAddr = \"h\"\n", "serverPort = 7001\n"] {
        let err = client(&format!("{both}serverAddrs = [\"a:1\"]\n")).unwrap_err();
        assert!(
            err.to_string()
                .contains("serverAddrs: cannot be used together"),
            "{err}"
        );
    }
    let s =
        server("proxyProtocol.trustedAddrs = [\"10.0.0.0/8\", \"192.0.2.7\", \"::1\"]\n").unwrap();
    assert_eq!(s.proxy_protocol.trusted_addrs.len(), 3);
    let err =
        server("proxyProtocol.trustedAddrs = [\"10.0.0.0/33\", \"lb.example\"]\n").unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "proxyProtocol.trustedAddrs[0]",
            "proxyProtocol.trustedAddrs[1]"
        ]
    );
}
