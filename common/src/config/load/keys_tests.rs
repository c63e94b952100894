//! Every key the loader knows either has an effect, shown by a named test, or is reported as
//! not supported yet (issue 12, item 10). The key list comes from serializing the config
//! structs, so a key added to them fails [`every_key_has_an_effect_or_is_reported`] until it
//! is put in one of the lists.

use super::test_util::*;
use super::*;
use crate::config::support::{CLIENT_RULES, PROXY_RULES, SERVER_RULES, VISITOR_RULES, WEB_RULES};
use crate::config::*;
use serde_json::Value;

/// Keys with an effect, by the test that shows it (`path from the workspace root::function`).
/// A table's entry covers every key in it.
const CLIENT_EFFECT: &[(&str, &[&str])] = &[
    (
        "tests/tests/assets_dir.rs::frps_and_frpc_serve_assets_dir_under_static",
        &["webServer.assetsDir"],
    ),
    (
        "tests/tests/transports.rs::websocket_with_tls_on_and_off_first_byte_and_tcp_mux",
        &["transport.protocol"],
    ),
    (
        "tests/tests/transports.rs::kcp_with_tls_on_and_off_and_tcp_mux",
        &["transport.protocol"],
    ),
    (
        "tests/tests/transports.rs::proxy_url_http_connect_and_socks5_for_tcp_and_websocket",
        &["transport.proxyURL"],
    ),
    (
        "tests/tests/dns_server.rs::dns_server_resolves_frps_and_local_services",
        &["dnsServer"],
    ),
    (
        "tests/tests/oidc.rs::oidc_token_through_proxy_url",
        &["auth.oidc.proxyURL"],
    ),
    (
        "tests/tests/client_plugins.rs::http_proxy_connect_and_plain_requests_with_credentials",
        &["proxies[].plugin.httpUser", "proxies[].plugin.httpPassword"],
    ),
    (
        "tests/tests/client_plugins.rs::socks5_connects_by_ipv4_ipv6_and_domain_with_credentials",
        &["proxies[].plugin.username", "proxies[].plugin.password"],
    ),
    (
        "tests/tests/client_plugins.rs::static_file_serves_files_listings_ranges_and_refuses_escapes",
        &["proxies[].plugin.localPath", "proxies[].plugin.stripPrefix"],
    ),
    (
        "tests/tests/client_plugins.rs::unix_domain_socket_gets_the_proxy_protocol_header_first",
        &["proxies[].plugin.unixPath"],
    ),
    (
        "tests/tests/client_plugins.rs::forwarded_chain_through_http2https_and_https2http",
        &[
            "proxies[].plugin.localAddr",
            "proxies[].plugin.hostHeaderRewrite",
            "proxies[].plugin.requestHeaders",
        ],
    ),
    (
        "tests/tests/client_plugins.rs::https2https_with_given_certificate_speaks_h2_only_when_enabled",
        &[
            "proxies[].plugin.crtPath",
            "proxies[].plugin.keyPath",
            "proxies[].plugin.enableHTTP2",
        ],
    ),
    (
        "tests/tests/oidc.rs::oidc_client_credentials_login_and_scoped_messages",
        &[
            "auth.additionalScopes",
            "auth.method",
            "auth.oidc.clientID",
            "auth.oidc.clientSecret",
            "auth.oidc.tokenEndpointURL",
        ],
    ),
    (
        "tests/tests/config_checks.rs::oidc_token_request_carries_scope_audience_and_extra_params",
        &[
            "auth.oidc.audience",
            "auth.oidc.scope",
            "auth.oidc.additionalEndpointParams",
        ],
    ),
    (
        "tests/tests/login.rs::wrong_token_is_refused_and_frpc_exits",
        &["auth.token"],
    ),
    (
        "common/src/config/load/tests.rs::token_sources_file_and_exec",
        &["auth.tokenSource"],
    ),
    (
        "tests/tests/wire_frpc.rs::new_proxy_carries_every_key_of_each_type",
        &[
            "clientID",
            "proxies[].annotations",
            "proxies[].metadatas",
            "proxies[].customDomains",
            "proxies[].subdomain",
            "proxies[].locations",
            "proxies[].hostHeaderRewrite",
            "proxies[].httpUser",
            "proxies[].httpPassword",
            "proxies[].requestHeaders",
            "proxies[].responseHeaders",
            "proxies[].routeByHTTPUser",
            "proxies[].multiplexer",
            "proxies[].secretKey",
            "proxies[].allowUsers",
        ],
    ),
    (
        "tests/tests/visitors.rs::stcp_echo_10_mib_plain_encrypted_compressed_both",
        &[
            "visitors[].name",
            "visitors[].enabled",
            "visitors[].secretKey",
            "visitors[].serverName",
            "visitors[].bindAddr",
            "visitors[].bindPort",
            "visitors[].transport.useEncryption",
            "visitors[].transport.useCompression",
        ],
    ),
    (
        "tests/tests/visitors.rs::allow_users_another_user_star_and_refused",
        &["visitors[].serverUser"],
    ),
    (
        "tests/tests/xtcp.rs::xtcp_echo_10_mib_plain_and_encrypted_compressed",
        &["visitors[].type"],
    ),
    (
        "tests/tests/xtcp.rs::xtcp_over_kcp_echo_10_mib_plain_and_encrypted_compressed",
        &["visitors[].protocol"],
    ),
    (
        "tests/tests/xtcp.rs::bad_stun_replies_end_the_attempt",
        &["natHoleStunServer"],
    ),
    (
        "tests/tests/xtcp.rs::keep_tunnel_open_reuses_the_tunnel",
        &["visitors[].keepTunnelOpen", "visitors[].minRetryInterval"],
    ),
    (
        "frpc/src/visitor/xtcp.rs::limiter_allows_the_burst_then_paces",
        &["visitors[].maxRetriesAnHour"],
    ),
    (
        "tests/tests/xtcp.rs::xtcp_falls_back_to_stcp",
        &["visitors[].fallbackTo", "visitors[].fallbackTimeoutMs"],
    ),
    (
        "tests/tests/xtcp.rs::disable_assisted_addrs_on_proxy_and_visitor",
        &["proxies[].natTraversal", "visitors[].natTraversal"],
    ),
    (
        "common/src/config/load/tests.rs::includes_with_globs_relative_to_the_working_directory",
        &["includes"],
    ),
    (
        "tests/tests/config_checks.rs::log_to_a_file_at_the_configured_level",
        &["log.level", "log.to"],
    ),
    (
        "common/src/log.rs::rotates_daily_and_keeps_max_days",
        &["log.maxDays"],
    ),
    (
        "tests/tests/login.rs::login_fail_exit_false_retries_until_server_appears",
        &["loginFailExit"],
    ),
    (
        "tests/tests/wire_frpc.rs::login_bytes_and_proxy_registration",
        &["metadatas", "transport.poolCount"],
    ),
    (
        "tests/tests/binaries.rs::tunnel_through_real_binaries",
        &["serverAddr", "serverPort"],
    ),
    (
        "common/src/config/load/tests.rs::start_and_enabled_filter_proxies",
        &["start", "proxies[].enabled"],
    ),
    (
        "tests/tests/reload.rs::store_api_adds_updates_and_deletes_persistent_proxies",
        &["store.path"],
    ),
    (
        "tests/tests/wire_frpc.rs::connect_server_local_ip_is_the_source_address",
        &["transport.connectServerLocalIP"],
    ),
    (
        "tests/tests/wire_frpc.rs::heartbeat_ping_and_pong_error_relogin_with_same_run_id",
        &["transport.heartbeatInterval", "transport.heartbeatTimeout"],
    ),
    (
        "tests/tests/tcp.rs::echo_10mib_tcp_mux_off",
        &["transport.tcpMux"],
    ),
    (
        "tests/tests/tcp.rs::echo_10mib_plain_transport",
        &["transport.tls.enable"],
    ),
    (
        "tests/tests/tcp.rs::custom_tls_first_byte_is_detected",
        &["transport.tls.disableCustomTLSFirstByte"],
    ),
    (
        "tests/tests/security.rs::tls_verifies_frps_against_a_trusted_ca",
        &["transport.tls.trustedCaFile", "transport.tls.serverName"],
    ),
    (
        "tests/tests/security.rs::mutual_tls_requires_a_client_certificate_from_the_ca",
        &["transport.tls.certFile", "transport.tls.keyFile"],
    ),
    (
        "tests/tests/wire_v2.rs::v2_frpc_to_frps_tcp_and_udp_with_and_without_mux",
        &["transport.wireProtocol"],
    ),
    (
        "tests/tests/config_checks.rs::udp_packet_size_carries_bigger_datagrams",
        &["udpPacketSize"],
    ),
    (
        "tests/tests/tcp.rs::fixed_remote_port_and_user_prefix",
        &["user", "proxies[].remotePort"],
    ),
    (
        "tests/tests/reload.rs::admin_api_basic_auth_config_and_stop",
        &[
            "webServer.addr",
            "webServer.port",
            "webServer.user",
            "webServer.password",
        ],
    ),
    (
        "tests/tests/metrics.rs::dashboard_over_https_with_webserver_tls",
        &["webServer.tls.certFile", "webServer.tls.keyFile"],
    ),
    (
        "tests/tests/tcp.rs::echo_10mib_tcp_mux_on",
        &["proxies[].name", "proxies[].localIP", "proxies[].localPort"],
    ),
    (
        "tests/tests/udp.rs::udp_echo_tcp_mux_on",
        &["proxies[].type"],
    ),
    (
        "tests/tests/availability.rs::group_spreads_users_fails_over_and_recovers",
        &["proxies[].loadBalancer.group"],
    ),
    (
        "tests/tests/availability.rs::group_refuses_wrong_key_and_other_port",
        &["proxies[].loadBalancer.groupKey"],
    ),
    (
        "tests/tests/availability.rs::http_health_check_honours_path_and_headers",
        &["proxies[].healthCheck"],
    ),
    (
        "tests/tests/security.rs::bandwidth_limit_in_client_and_server_mode",
        &[
            "proxies[].transport.bandwidthLimit",
            "proxies[].transport.bandwidthLimitMode",
        ],
    ),
    (
        "tests/tests/tcp.rs::echo_10mib_encrypted_work_conns",
        &["proxies[].transport.useEncryption"],
    ),
    (
        "tests/tests/tcp.rs::echo_10mib_compressed_and_encrypted",
        &["proxies[].transport.useCompression"],
    ),
    (
        "tests/tests/proxy_protocol.rs::tcp_proxy_sends_v2_header_with_user_address",
        &["proxies[].transport.proxyProtocolVersion"],
    ),
    (
        "tests/tests/ha.rs::two_frps_behind_a_proxy_protocol_front_and_failover",
        &["serverAddrs"],
    ),
];

const SERVER_EFFECT: &[(&str, &[&str])] = &[
    (
        "tests/tests/assets_dir.rs::frps_and_frpc_serve_assets_dir_under_static",
        &["webServer.assetsDir"],
    ),
    (
        "frps/src/nathole.rs::analysis_records_expire_after_the_reserve",
        &["natholeAnalysisDataReserveHours"],
    ),
    (
        "tests/tests/transports.rs::kcp_with_tls_on_and_off_and_tcp_mux",
        &["kcpBindPort"],
    ),
    (
        "tests/tests/transports.rs::quic_with_tls_settings_and_serverinfo",
        &["quicBindPort"],
    ),
    (
        "tests/tests/transports.rs::quic_idle_timeout_closes_a_silent_connection",
        &["transport.quic.maxIdleTimeout"],
    ),
    (
        "tests/tests/vhost_http.rs::routes_by_host_wildcard_subdomain_and_location",
        &["vhostHTTPPort", "subDomainHost"],
    ),
    (
        "tests/tests/vhost_http.rs::unreachable_backend_gives_502_and_slow_backend_504",
        &["vhostHTTPTimeout"],
    ),
    (
        "tests/tests/vhost_http.rs::custom_404_page",
        &["custom404Page"],
    ),
    (
        "tests/tests/vhost_https.rs::routes_tls_by_sni_without_terminating_it",
        &["vhostHTTPSPort"],
    ),
    (
        "tests/tests/vhost_tcpmux.rs::connect_routes_by_host_and_relays",
        &["tcpmuxHTTPConnectPort"],
    ),
    (
        "tests/tests/vhost_tcpmux.rs::passthrough_forwards_the_connect_request",
        &["tcpmuxPassthrough"],
    ),
    (
        "tests/tests/proxy_policy.rs::allow_ports_refuses_other_ports",
        &["allowPorts"],
    ),
    (
        "tests/tests/oidc.rs::oidc_client_credentials_login_and_scoped_messages",
        &["auth.additionalScopes", "auth.method"],
    ),
    (
        "tests/tests/oidc.rs::oidc_bad_tokens_are_refused_and_frps_keeps_serving",
        &["auth.oidc.issuer"],
    ),
    (
        "tests/tests/oidc.rs::oidc_skip_checks_and_discovery_failure",
        &["auth.oidc.audience", "auth.oidc.skipExpiryCheck"],
    ),
    (
        "tests/tests/login.rs::wrong_token_is_refused_and_frpc_exits",
        &["auth.token"],
    ),
    (
        "common/src/config/load/tests.rs::token_sources_file_and_exec",
        &["auth.tokenSource"],
    ),
    (
        "tests/tests/config_checks.rs::host_names_in_listen_addresses_bind_their_ipv4_address",
        &["bindAddr", "webServer.addr"],
    ),
    (
        "tests/tests/binaries.rs::tunnel_through_real_binaries",
        &["bindPort"],
    ),
    (
        "tests/tests/login.rs::refusal_summary_when_errors_not_detailed",
        &["detailedErrorsToClient"],
    ),
    (
        "tests/tests/metrics.rs::no_metrics_endpoint_without_enable_prometheus",
        &["enablePrometheus"],
    ),
    (
        "tests/tests/config_checks.rs::log_to_a_file_at_the_configured_level",
        &["log.level", "log.to"],
    ),
    (
        "common/src/log.rs::rotates_daily_and_keeps_max_days",
        &["log.maxDays"],
    ),
    (
        "tests/tests/proxy_policy.rs::max_ports_per_client",
        &["maxPortsPerClient"],
    ),
    (
        "tests/tests/server_plugins.rs::login_rejected_then_accepted_by_an_allow_list",
        &[
            "httpPlugins[].name",
            "httpPlugins[].addr",
            "httpPlugins[].path",
            "httpPlugins[].ops",
        ],
    ),
    (
        "tests/tests/server_plugins.rs::https_plugin_endpoint_and_tls_verify",
        &["httpPlugins[].tlsVerify"],
    ),
    (
        "tests/tests/config_checks.rs::proxy_bind_addr_localhost_binds_loopback_only",
        &["proxyBindAddr"],
    ),
    (
        "tests/tests/wire_frps.rs::heartbeat_timeout_closes_a_silent_client",
        &["transport.heartbeatTimeout"],
    ),
    (
        "tests/tests/wire_frps.rs::pool_prefill_is_capped_by_max_pool_count",
        &["transport.maxPoolCount"],
    ),
    (
        "tests/tests/tcp.rs::echo_10mib_tcp_mux_off",
        &["transport.tcpMux"],
    ),
    (
        "tests/tests/security.rs::tls_verifies_frps_against_a_trusted_ca",
        &["transport.tls.certFile", "transport.tls.keyFile"],
    ),
    (
        "tests/tests/security.rs::mutual_tls_requires_a_client_certificate_from_the_ca",
        &["transport.tls.trustedCaFile"],
    ),
    (
        "tests/tests/bad_input.rs::plain_client_refused_when_tls_is_forced",
        &["transport.tls.force"],
    ),
    (
        "tests/tests/config_checks.rs::udp_packet_size_carries_bigger_datagrams",
        &["udpPacketSize"],
    ),
    (
        "tests/tests/wire_frps.rs::user_is_dropped_after_user_conn_timeout",
        &["userConnTimeout"],
    ),
    (
        "tests/tests/metrics.rs::prometheus_series_move_with_traffic_and_dashboard_answers",
        &["webServer.port", "webServer.user", "webServer.password"],
    ),
    (
        "tests/tests/metrics.rs::dashboard_over_https_with_webserver_tls",
        &["webServer.tls.certFile", "webServer.tls.keyFile"],
    ),
    (
        "tests/tests/ha.rs::untrusted_malformed_or_missing_proxy_headers_close_that_connection_only",
        &["proxyProtocol.trustedAddrs"],
    ),
];

/// Keys that have their effect in the code but no test showing it yet. Each is a gap to
/// close (write the test, move the entry up); these lists must only shrink.
const CLIENT_EFFECT_WITHOUT_TEST: &[(&str, &str)] = &[
    (
        "transport.quic",
        "keep-alive, idle timeout and stream limits act over seconds of silence or 100000 \
         streams; they are passed to quinn as frp passes them to quic-go",
    ),
    (
        "log.disablePrintColor",
        "colours only reach a terminal; no test drives one",
    ),
    (
        "transport.dialServerTimeout",
        "needs a peer that never answers a SYN",
    ),
    (
        "transport.dialServerKeepalive",
        "a socket option on frpc's side, not visible to a test",
    ),
    (
        "transport.tcpMuxKeepaliveInterval",
        "needs a raw yamux peer counting pings",
    ),
    (
        "auth.oidc.trustedCaFile",
        "the test issuer speaks plain HTTP",
    ),
    (
        "auth.oidc.insecureSkipVerify",
        "the test issuer speaks plain HTTP",
    ),
    (
        "auth.oidc.tokenSource",
        "read by the code token_sources_file_and_exec tests; no login test",
    ),
];

const SERVER_EFFECT_WITHOUT_TEST: &[(&str, &str)] = &[
    (
        "transport.quic.keepalivePeriod",
        "frps's keep-alives act over seconds of silence; passed to quinn as frp passes it",
    ),
    (
        "transport.quic.maxIncomingStreams",
        "a limit of 100000 streams; passed to quinn as frp passes it to quic-go",
    ),
    (
        "log.disablePrintColor",
        "colours only reach a terminal; no test drives one",
    ),
    (
        "transport.tcpKeepalive",
        "a socket option on frps's accepted side, not visible to a test",
    ),
    (
        "transport.tcpMuxKeepaliveInterval",
        "needs a raw yamux peer counting pings",
    ),
    (
        "auth.oidc.skipIssuerCheck",
        "no login test with a foreign issuer",
    ),
];

/// Every key path of a serialized config: `proxies[].transport.useEncryption`. A table with
/// nothing in it is a free-form map (`metadatas`), so a key itself.
fn key_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                key_paths(v, &p, out);
            }
        }
        Value::Array(a) if a.first().is_some_and(Value::is_object) => {
            key_paths(&a[0], &format!("{prefix}[]"), out)
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// A token source with one of each list of tables.
fn full_source() -> Option<ValueSource> {
    Some(ValueSource {
        exec: ExecSource {
            env: vec![NameValue::default()],
            ..Default::default()
        },
        ..Default::default()
    })
}

/// A config with every optional table present and one of each list of tables, so serializing
/// it shows every key.
fn full_client() -> ClientConfig {
    let mut c = ClientConfig {
        version: "v1".into(),
        ..Default::default()
    };
    c.auth.token_source = full_source();
    c.auth.oidc.token_source = full_source();
    c.web_server.tls = Some(TlsFilesConfig::default());
    let mut p = ProxyConfig {
        plugin: Some(PluginConfig {
            enable_http2: Some(true),
            ..Default::default()
        }),
        enabled: Some(true),
        ..Default::default()
    };
    p.health_check.http_headers.push(NameValue::default());
    c.proxies.push(p);
    c.visitors.push(VisitorConfig {
        plugin: Some(VisitorPluginConfig::default()),
        enabled: Some(true),
        ..Default::default()
    });
    c
}

fn full_server() -> ServerConfig {
    let mut c = ServerConfig {
        version: "v1".into(),
        ..Default::default()
    };
    c.auth.token_source = full_source();
    c.web_server.tls = Some(TlsFilesConfig::default());
    c.allow_ports.push(PortsRange::default());
    c.http_plugins.push(HttpPluginOptions::default());
    c
}

fn keys_of<T: serde::Serialize>(t: &T) -> Vec<String> {
    let mut out = Vec::new();
    key_paths(&serde_json::to_value(t).unwrap(), "", &mut out);
    assert!(
        !out.iter().any(|k| k.is_empty()),
        "the walk lost a key: {out:?}"
    );
    out
}

/// The unsupported keys of one side, as patterns (`proxies[].plugin`, `visitors[]`).
fn unsupported_keys(side: &str) -> Vec<String> {
    let mut v: Vec<String> = match side {
        "frpc" => CLIENT_RULES.iter().map(|r| r.key.to_owned()).collect(),
        _ => SERVER_RULES.iter().map(|r| r.key.to_owned()).collect(),
    };
    v.extend(WEB_RULES.iter().map(|r| format!("webServer.{}", r.key)));
    if side == "frpc" {
        v.extend(PROXY_RULES.iter().map(|r| format!("proxies[].{}", r.key)));
        v.extend(VISITOR_RULES.iter().map(|r| match r.key {
            "" => "visitors[]".to_owned(),
            k => format!("visitors[].{k}"),
        }));
    }
    v
}

/// `key` is `pattern`, inside it, or a free-form map holding it (`featureGates.VirtualNet`).
fn covers(pattern: &str, key: &str) -> bool {
    let inside = |a: &str, b: &str| {
        a.strip_prefix(b)
            .is_some_and(|r| r.is_empty() || r.starts_with(['.', '[']))
    };
    inside(key, pattern) || inside(pattern, key)
}

fn check_side(side: &str, keys: &[String], effect: &[(&str, &[&str])], untested: &[(&str, &str)]) {
    let listed: Vec<&str> = effect
        .iter()
        .flat_map(|(_, keys)| keys.iter().copied())
        .chain(untested.iter().map(|(k, _)| *k))
        .collect();
    let unsupported = unsupported_keys(side);
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| {
            !listed.iter().any(|p| covers(p, k)) && !unsupported.iter().any(|p| covers(p, k))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{side}: keys with no effect test and not reported as unsupported: {missing:#?}"
    );
    // No stale entries: each names a key the config has.
    for p in listed {
        assert!(keys.iter().any(|k| covers(p, k)), "{side}: {p} is no key");
    }
}

#[test]
fn every_key_has_an_effect_or_is_reported() {
    let client = keys_of(&full_client());
    let server = keys_of(&full_server());
    assert!(
        client.len() > 100 && server.len() > 50,
        "the walk finds every key"
    );
    check_side("frpc", &client, CLIENT_EFFECT, CLIENT_EFFECT_WITHOUT_TEST);
    check_side("frps", &server, SERVER_EFFECT, SERVER_EFFECT_WITHOUT_TEST);
}

/// Each entry names a test that exists.
#[test]
fn every_named_test_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (test, keys) in CLIENT_EFFECT.iter().chain(SERVER_EFFECT) {
        let (file, func) = test.split_once("::").unwrap();
        let src = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("{keys:?}: {file}: {e}"));
        assert!(
            src.contains(&format!("fn {func}(")),
            "{keys:?}: no test {func} in {file}"
        );
    }
}

/// A config that uses each unsupported key (TOML, one proxy or visitor table at most).
fn sample(key: &str, dir: &Path) -> Option<String> {
    if key == "webServer.tls.trustedCaFile" {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert, pkey) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&pkey, ck.key_pair.serialize_pem()).unwrap();
        return Some(format!(
            "[webServer.tls]\ncertFile = \"{}\"\nkeyFile = \"{}\"\ntrustedCaFile = \"{}\"",
            cert.display(),
            pkey.display(),
            cert.display()
        ));
    }
    Some(String::from(match key {
        "transport.proxyURL" => "transport.proxyURL = \"ntlm://127.0.0.1:3128\"",
        "transport.quic" => "transport.quic.maxIdleTimeout = 5",
        "virtualNet.address" => {
            "featureGates = { VirtualNet = true }\nvirtualNet.address = \"100.86.0.1/24\""
        }
        "featureGates.VirtualNet" => "featureGates = { VirtualNet = true }",
        "webServer.pprofEnable" => "webServer.pprofEnable = true",
        "version" => "version = \"v1\"",
        "proxies[].plugin.type" => "[[proxies]]\nname = \"p\"\ntype = \"tcp\"\n[proxies.plugin]\ntype = \"virtual_net\"",
        "visitors[].plugin" => "[[visitors]]\nname = \"v\"\ntype = \"stcp\"\nserverName = \"s\"\nbindPort = -1\n[visitors.plugin]\ntype = \"virtual_net\"",
        "sshTunnelGateway" => "sshTunnelGateway.bindPort = 2200",
        "natholeAnalysisDataReserveHours" => "natholeAnalysisDataReserveHours = 24",
        _ => return None,
    }))
}

/// Using an unsupported key warns at load, naming the key; the sample lines above use them.
#[test]
fn every_unsupported_key_is_reported_when_used() {
    let cases = ["frpc", "frps"]
        .into_iter()
        .flat_map(|side| unsupported_keys(side).into_iter().map(move |k| (side, k)));
    let dir = std::env::temp_dir().join(format!(
        "frp-rs-keys-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for (side, key) in cases {
        let text = sample(&key, &dir).unwrap_or_else(|| panic!("no sample config for {key}"));
        let text = text.as_str();
        let file = Path::new("c.toml");
        let warnings = match side {
            "frpc" => load_client_text(text, file, &opts()).map(|l| l.warnings),
            _ => load_server_text(text, file, &opts()).map(|l| l.warnings),
        }
        .unwrap_or_else(|e| panic!("{key}: {e}"));
        let concrete = key.replace("[]", "[0]");
        assert!(
            warnings.iter().any(|w| w.contains(&format!(": {concrete}"))
                && (w.contains("not supported") || w.contains("ignored"))),
            "{side} {key}: {warnings:?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
    // Unused, nothing is said.
    assert!(load_client_text("", Path::new("c.toml"), &opts())
        .unwrap()
        .warnings
        .is_empty());
    assert!(load_server_text("", Path::new("c.toml"), &opts())
        .unwrap()
        .warnings
        .is_empty());
}

/// http_proxy in the environment is frp's default proxyURL; an explicit one wins.
#[test]
fn the_http_proxy_variable_is_the_default_proxy_url() {
    let mut o = opts();
    o.envs
        .insert("http_proxy".into(), "http://127.0.0.1:3128".into());
    let l = load_client_text("", Path::new("c.toml"), &o).unwrap();
    assert_eq!(l.config.transport.proxy_url, "http://127.0.0.1:3128");
    let l = load_client_text(
        "transport.proxyURL = \"socks5://127.0.0.1:1080\"",
        Path::new("c.toml"),
        &o,
    )
    .unwrap();
    assert_eq!(l.config.transport.proxy_url, "socks5://127.0.0.1:1080");
}
