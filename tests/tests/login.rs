//! Login: token checks, loginFailExit, reconnect after frps restarts.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::auth::TOKEN_MISMATCH;
use frpc::status::Phase;
use frpc::ClientError;
use tests::*;

#[tokio::test]
async fn wrong_token_is_refused_and_frpc_exits() {
    init_log();
    let frps = Frps::start(|_| {}).await;
    let frpc = Frpc::start(frps.addr, |c| c.auth.token = "wrong".into());
    match frpc.exited().await {
        Err(ClientError::Refused(e)) => assert_eq!(e, TOKEN_MISMATCH),
        other => panic!("expected a refused login, got {other:?}"),
    }
    assert_eq!(frps.stats.client_count(), 0);
    frps.stop().await;
}

#[tokio::test]
async fn refusal_summary_when_errors_not_detailed() {
    init_log();
    let frps = Frps::start(|c| c.detailed_errors_to_client = false).await;
    let frpc = Frpc::start(frps.addr, |c| c.auth.token = "wrong".into());
    match frpc.exited().await {
        Err(ClientError::Refused(e)) => assert_eq!(e, "register control error"),
        other => panic!("expected a refused login, got {other:?}"),
    }
    frps.stop().await;
}

#[tokio::test]
async fn unreachable_server_with_login_fail_exit() {
    init_log();
    let port = free_port().await;
    let frpc = Frpc::start(([127, 0, 0, 1], port).into(), |_| {});
    assert!(matches!(
        frpc.exited().await,
        Err(ClientError::Connect { .. })
    ));
}

#[tokio::test]
async fn login_fail_exit_false_retries_until_server_appears() {
    init_log();
    let port = free_port().await;
    let echo = echo_tcp().await;
    let frpc = Frpc::start(([127, 0, 0, 1], port).into(), |c| {
        c.login_fail_exit = false;
        c.proxies.push(proxy("echo", "tcp", echo, 0));
    });
    // frpc keeps retrying (it has not exited) ...
    assert!(frpc
        .status
        .get("echo")
        .is_some_and(|s| s.phase != Phase::Running));
    // ... and logs in once frps is there.
    let frps = Frps::start(|c| c.bind_port = port).await;
    let port = remote_port(&frpc.wait_running("echo").await);
    assert_eq!(
        echo_through(([127, 0, 0, 1], port).into(), b"late").await,
        b"late"
    );
    frpc.stop().await;
    frps.stop().await;
}

#[tokio::test]
async fn frpc_reconnects_after_frps_restart() {
    init_log();
    for tcp_mux in [true, false] {
        let frps = Frps::start(|c| c.transport.tcp_mux = tcp_mux).await;
        let bind_port = frps.addr.port();
        let echo = echo_tcp().await;
        let remote = free_port().await;
        let frpc = Frpc::start(frps.addr, |c| {
            c.transport.tcp_mux = tcp_mux;
            c.proxies.push(proxy("echo", "tcp", echo, remote));
        });
        frpc.wait_running("echo").await;
        let entry = std::net::SocketAddr::from(([127, 0, 0, 1], remote));
        assert_eq!(echo_through(entry, b"before").await, b"before");

        frps.stop().await;
        frpc.wait_not_running("echo").await;

        let frps = Frps::start(|c| {
            c.bind_port = bind_port;
            c.transport.tcp_mux = tcp_mux;
        })
        .await;
        frpc.wait_running("echo").await;
        wait_tunnel(entry).await;
        assert_eq!(echo_through(entry, b"after").await, b"after");
        assert_eq!(frps.stats.client_count(), 1);
        frpc.stop().await;
        frps.stop().await;
    }
}
