//! Address keys (issue 12, item 2): a listen address resolves as frp's does (a host name to
//! one address, IPv4 first) or is an error at load naming the key; never all interfaces.

use super::test_util::*;
use super::*;
use crate::config::listen_ip;

#[test]
fn listen_addresses_that_cannot_be_used_fail_at_load_naming_the_key() {
    for key in ["bindAddr", "proxyBindAddr", "webServer.addr"] {
        let e = server_err(&format!("{key} = \"no.such.host.invalid\"\n"));
        assert!(
            e.contains(&format!(
                "{key}: \"no.such.host.invalid\" is not an IP address or a host name that resolves"
            )),
            "{key}: {e}"
        );
    }
    for key in ["webServer.addr", "transport.connectServerLocalIP"] {
        let e = client_err(&format!("{key} = \"no.such.host.invalid\"\n"));
        assert!(
            e.contains(&format!(
                "{key}: \"no.such.host.invalid\" is not an IP address"
            )),
            "{key}: {e}"
        );
    }
    // A port in the address is a mistake, not a host name.
    let e = server_err("proxyBindAddr = \"127.0.0.1:7000\"\n");
    assert!(
        e.contains("proxyBindAddr: \"127.0.0.1:7000\" is not an IP address"),
        "{e}"
    );
    let e = server_err("bindAddr = \"\"\nproxyBindAddr = \"10.0.0.1 \"\n");
    assert!(e.contains("proxyBindAddr"), "{e}");
}

#[test]
fn listen_addresses_resolve_as_frp_does() {
    assert_eq!(
        listen_ip("localhost"),
        Ok("127.0.0.1".parse().unwrap()),
        "IPv4 first, as Go's Listen"
    );
    assert_eq!(listen_ip("::1"), Ok("::1".parse().unwrap()));
    assert_eq!(listen_ip("::"), Ok("::".parse().unwrap()));
    assert_eq!(listen_ip("[::1]"), Ok("::1".parse().unwrap()));
    assert_eq!(listen_ip("0.0.0.0"), Ok("0.0.0.0".parse().unwrap()));
    assert!(listen_ip("no.such.host.invalid").is_err());
    let s = load_server_text(
        "proxyBindAddr = \"localhost\"\n",
        Path::new("frps.toml"),
        &opts(),
    )
    .unwrap();
    assert_eq!(
        s.config.proxy_bind_addr, "localhost",
        "the config keeps what the user wrote"
    );
}

/// Addresses frpc dials are resolved when dialled (frps may not be reachable yet), but a value
/// that is not a host name or IP address at all is an error at load.
#[test]
fn dial_addresses_must_be_host_names_or_ips() {
    let e = client_err("serverAddr = \"example.com:7000\"\n");
    assert!(
        e.contains("serverAddr: \"example.com:7000\" is not a host name or IP address (the port goes in serverPort)"),
        "{e}"
    );
    let e = client_err(
        "[[proxies]]\nname = \"a\"\ntype = \"tcp\"\nlocalIP = \"http://x\"\nlocalPort = 1\n",
    );
    assert!(e.contains("proxies[0].localIP: \"http://x\" is not a host name or IP address (the port goes in localPort)"), "{e}");
    for ok in [
        "frps.example.com",
        "10.0.0.1",
        "::1",
        "my_host",
        "localhost",
    ] {
        load_client_text(
            &format!("serverAddr = \"{ok}\"\n"),
            Path::new("frpc.toml"),
            &opts(),
        )
        .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}
