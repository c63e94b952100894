//! Security and traffic-shaping layers end to end: bandwidth limits, TLS and mTLS with
//! certificates made here (rcgen), token files.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use tests::*;

#[tokio::test]
async fn bandwidth_limit_in_client_and_server_mode() {
    init_log();
    for mode in ["client", "server"] {
        let frps = Frps::start(|_| {}).await;
        let sink = counting_sink().await;
        let frpc = Frpc::start(frps.addr, |c| {
            let mut p = proxy("slow", "tcp", sink, 0);
            p.transport.bandwidth_limit = "64KB".into();
            p.transport.bandwidth_limit_mode = mode.into();
            c.proxies.push(p);
        });
        let port = remote_port(&frpc.wait_running("slow").await);
        assert_limited_to_64k(port, &format!("{mode} mode")).await;
        frpc.stop().await;
        frps.stop().await;
    }
}

#[tokio::test]
async fn bad_bandwidth_is_refused_by_frps() {
    init_log();
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    // A Go frpc may send a limit our frpc's config check would have caught; frps refuses it.
    let (mut ctl, _) = raw_login(frps.addr, 0).await;
    let np = common::msg::NewProxy {
        proxy_name: "p".into(),
        proxy_type: "tcp".into(),
        bandwidth_limit: "1GB".into(),
        bandwidth_limit_mode: "server".into(),
        ..Default::default()
    };
    common::msg::write_msg(&mut ctl, &np.into()).await.unwrap();
    match common::msg::read_msg(&mut ctl).await.unwrap() {
        common::msg::Message::NewProxyResp(r) => {
            assert!(r.error.contains("unit not support"), "{r:?}")
        }
        other => panic!("{other:?}"),
    }
    frps.stop().await;
}

// --- TLS and mTLS with certificates made here ------------------------------------------------

use rcgen::ExtendedKeyUsagePurpose;
use tests::pki::{make_ca, make_leaf, pki_dir, write_ca};

/// Starts frpc with `f` and returns the error of its (failing) first login.
async fn login_error(
    frps: SocketAddr,
    f: impl FnOnce(&mut common::config::ClientConfig),
) -> String {
    let frpc = Frpc::start(frps, f);
    match frpc.exited().await {
        Err(e) => e.to_string(),
        Ok(()) => panic!("login should have failed"),
    }
}

#[tokio::test]
async fn tls_verifies_frps_against_a_trusted_ca() {
    init_log();
    let dir = pki_dir();
    let ca = make_ca("frp-rs test CA");
    let other = make_ca("some other CA");
    let (cert, key) = make_leaf(
        &dir,
        "server",
        &ca,
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    let (old_cert, old_key) = make_leaf(
        &dir,
        "expired",
        &ca,
        ExtendedKeyUsagePurpose::ServerAuth,
        true,
    );
    let ca_file = write_ca(&dir, "ca", &ca);
    let other_file = write_ca(&dir, "other", &other);

    let frps = Frps::start(|c| {
        c.transport.tls.cert_file = cert.clone();
        c.transport.tls.key_file = key.clone();
    })
    .await;
    let echo = echo_tcp().await;
    let good = Frpc::start(frps.addr, |c| {
        c.transport.tls.trusted_ca_file = ca_file.clone();
        c.transport.tls.server_name = "localhost".into();
        c.proxies.push(proxy("e", "tcp", echo, 0));
    });
    let port = remote_port(&good.wait_running("e").await);
    assert_eq!(
        echo_through(([127, 0, 0, 1], port).into(), b"verified").await,
        b"verified"
    );

    let err = login_error(frps.addr, |c| {
        c.transport.tls.trusted_ca_file = other_file.clone()
    })
    .await;
    assert!(err.contains("certificate"), "wrong CA: {err}");
    let err = login_error(frps.addr, |c| {
        c.transport.tls.trusted_ca_file = ca_file.clone();
        c.transport.tls.server_name = "not-the-server.example".into();
    })
    .await;
    assert!(err.contains("certificate"), "wrong name: {err}");
    // frps keeps serving the verified client.
    assert_eq!(
        echo_through(([127, 0, 0, 1], port).into(), b"still").await,
        b"still"
    );
    good.stop().await;
    frps.stop().await;

    let frps = Frps::start(|c| {
        c.transport.tls.cert_file = old_cert.clone();
        c.transport.tls.key_file = old_key.clone();
    })
    .await;
    let err = login_error(frps.addr, |c| {
        c.transport.tls.trusted_ca_file = ca_file.clone()
    })
    .await;
    assert!(
        err.to_lowercase().contains("expired"),
        "expired certificate: {err}"
    );
    frps.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    init_log();
    let dir = pki_dir();
    let ca = make_ca("frp-rs test CA");
    let other = make_ca("rogue CA");
    let (scert, skey) = make_leaf(
        &dir,
        "server",
        &ca,
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    let (ccert, ckey) = make_leaf(
        &dir,
        "client",
        &ca,
        ExtendedKeyUsagePurpose::ClientAuth,
        false,
    );
    let (rcert, rkey) = make_leaf(
        &dir,
        "rogue",
        &other,
        ExtendedKeyUsagePurpose::ClientAuth,
        false,
    );
    let ca_file = write_ca(&dir, "ca", &ca);

    let frps = Frps::start(|c| {
        c.transport.tls.cert_file = scert.clone();
        c.transport.tls.key_file = skey.clone();
        c.transport.tls.trusted_ca_file = ca_file.clone();
        c.transport.tls.force = true; // what completing the config does when a CA is set
    })
    .await;
    let echo = echo_tcp().await;
    let good = Frpc::start(frps.addr, |c| {
        c.transport.tls.trusted_ca_file = ca_file.clone();
        c.transport.tls.server_name = "localhost".into();
        c.transport.tls.cert_file = ccert.clone();
        c.transport.tls.key_file = ckey.clone();
        c.proxies.push(proxy("m", "tcp", echo, 0));
    });
    let port = remote_port(&good.wait_running("m").await);
    assert_eq!(
        echo_through(([127, 0, 0, 1], port).into(), b"mtls").await,
        b"mtls"
    );

    // No client certificate, a certificate from another CA, plain TCP: all refused.
    let _ = login_error(frps.addr, |c| {
        c.transport.tls.trusted_ca_file = ca_file.clone()
    })
    .await;
    let _ = login_error(frps.addr, |c| {
        c.transport.tls.cert_file = rcert.clone();
        c.transport.tls.key_file = rkey.clone();
    })
    .await;
    let _ = login_error(frps.addr, |c| c.transport.tls.enable = false).await;
    assert_eq!(
        frps.stats.client_count(),
        1,
        "only the client with a valid certificate is in"
    );
    assert_eq!(
        echo_through(([127, 0, 0, 1], port).into(), b"after").await,
        b"after"
    );
    good.stop().await;
    frps.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn unreadable_certificate_is_a_clear_error() {
    init_log();
    let dir = pki_dir();
    let bad = dir.join("garbage.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let mut cfg = server_config();
    cfg.transport.tls.cert_file = bad.display().to_string();
    cfg.transport.tls.key_file = bad.display().to_string();
    let err = frps::Server::bind(cfg).await.unwrap_err().to_string();
    assert!(err.contains("garbage.pem"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// frpc without a client certificate against an mTLS frps: the login error names the TLS
/// failure and what to set, not just `yamux session is closed` (with tcpMux on and off).
#[tokio::test]
async fn missing_client_certificate_is_named_in_the_login_error() {
    init_log();
    let dir = pki_dir();
    let ca = make_ca("frp-rs test CA");
    let (scert, skey) = make_leaf(
        &dir,
        "server",
        &ca,
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    let ca_file = write_ca(&dir, "ca", &ca);
    for tcp_mux in [true, false] {
        let frps = Frps::start(|c| {
            c.transport.tcp_mux = tcp_mux;
            c.transport.tls.cert_file = scert.clone();
            c.transport.tls.key_file = skey.clone();
            c.transport.tls.trusted_ca_file = ca_file.clone();
            c.transport.tls.force = true;
        })
        .await;
        let err = login_error(frps.addr, |c| c.transport.tcp_mux = tcp_mux).await;
        assert!(
            err.contains("TLS handshake with frps failed: peer sent alert certificate required; frps requires a client certificate (transport.tls.certFile"),
            "tcpMux {tcp_mux}: {err}"
        );
        assert_eq!(err.matches("certificate required").count(), 1, "{err}");
        frps.stop().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}
