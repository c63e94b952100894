//! The load tool of issue 21 (`frp-load`, bench/src/main.rs) against our frps: it logs in, keeps
//! its pool, relays user connections, reports wrong tokens by reason and frees what vanished
//! clients held.

use serde_json::Value;
use tests::{run_bin, Frps, TOKEN};

/// Runs frp-load against `frps` with `args`; returns its JSON report.
async fn load(frps: &Frps, args: &[&str]) -> Value {
    let server = frps.addr.to_string();
    let mut all = vec!["--server", &server, "--token", TOKEN];
    all.extend_from_slice(args);
    let out = run_bin("frp-load", &all).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "frp-load failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

fn num(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

/// Clients log in over tcpMux, register their proxies, and a user connection through client 0's
/// proxy is relayed (echoed) by the tool's work connection.
#[tokio::test]
async fn logs_in_registers_and_relays_with_tcp_mux() {
    let frps = Frps::start(|_| {}).await;
    let r = load(
        &frps,
        &[
            "--mux",
            "--clients",
            "3",
            "--proxies",
            "2",
            "--probe-rate",
            "20",
            "--probe-conns",
            "2",
            "--duration",
            "0.3",
        ],
    )
    .await;
    assert_eq!(r["failures"], serde_json::json!({}), "{r}");
    assert_eq!(num(&r, "logins_ok"), 3, "{r}");
    assert_eq!(num(&r, "proxies_ok"), 6, "{r}");
    assert!(num(&r, "probe_ok") >= 2, "{r}");
    assert_eq!(num(&r, "probe_failed"), 0, "{r}");
    assert!(num(&r, "relayed") >= 2, "{r}");
    assert!(r["login_p99_ms"].as_f64().is_some_and(|p| p > 0.0), "{r}");
    frps.stop().await;
}

/// Without tcpMux and with TLS (frp's 0x17 first byte): each work connection is its own TLS
/// connection, and relaying still works.
#[tokio::test]
async fn logs_in_and_relays_over_tls_without_tcp_mux() {
    let frps = Frps::start(|c| c.transport.tcp_mux = false).await;
    let r = load(
        &frps,
        &[
            "--tls",
            "--clients",
            "2",
            "--probe-rate",
            "10",
            "--probe-conns",
            "1",
            "--duration",
            "0.2",
        ],
    )
    .await;
    assert_eq!(r["failures"], serde_json::json!({}), "{r}");
    assert_eq!(num(&r, "logins_ok"), 2, "{r}");
    assert!(num(&r, "probe_ok") >= 1, "{r}");
    assert!(num(&r, "relayed") >= 1, "{r}");
    frps.stop().await;
}

/// Wrong-token logins are counted under frps's refusal text, and none is accepted.
#[tokio::test]
async fn wrong_token_is_reported_as_a_failure_by_reason() {
    let frps = Frps::start(|_| {}).await;
    let r = load(&frps, &["--mux", "--mode", "wrong-token", "--clients", "5"]).await;
    assert_eq!(num(&r, "attempts"), 5, "{r}");
    assert_eq!(num(&r, "logins_ok"), 0, "{r}");
    let reason = format!("refused: {}", common::auth::TOKEN_MISMATCH);
    assert_eq!(r["failures"], serde_json::json!({ reason: 5 }), "{r}");
    frps.stop().await;
}

/// Clients that register proxies and vanish (RST): frps closes every port they held and forgets
/// the clients.
#[tokio::test]
async fn vanished_clients_are_forgotten_and_their_ports_closed() {
    let frps = Frps::start(|_| {}).await;
    let r = load(
        &frps,
        &[
            "--mux",
            "--mode",
            "vanish",
            "--clients",
            "4",
            "--proxies",
            "3",
        ],
    )
    .await;
    assert_eq!(r["failures"], serde_json::json!({}), "{r}");
    assert_eq!(num(&r, "vanished_ports"), 12, "{r}");
    assert_eq!(num(&r, "ports_still_open"), 0, "{r}");
    let stats = frps.stats.clone();
    tests::eventually("frps forgets the vanished clients", || {
        stats.client_count() == 0
    })
    .await;
    frps.stop().await;
}

/// The reload of 1% of one client's proxies: re-registered, live connections through the
/// others survive.
#[tokio::test]
async fn reload_keeps_live_connections_of_unchanged_proxies() {
    let frps = Frps::start(|_| {}).await;
    let r = load(
        &frps,
        &[
            "--mux",
            "--proxies",
            "100",
            "--reload-fraction",
            "0.01",
            "--live-conns",
            "10",
        ],
    )
    .await;
    assert_eq!(r["failures"], serde_json::json!({}), "{r}");
    assert_eq!(num(&r, "reload_changed"), 1, "{r}");
    assert_eq!(num(&r, "live_total"), 10, "{r}");
    assert_eq!(num(&r, "live_kept"), 10, "{r}");
    frps.stop().await;
}
