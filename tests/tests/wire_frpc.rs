//! Our frpc seen by a hand-written frps speaking raw frp frames, as a Go frps would.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::auth::auth_key;
use common::crypto::derive_key;
use common::io::CryptStream;
use common::msg::codec::{decode, decode_header};
use common::msg::*;
use tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn accept(l: &TcpListener) -> TcpStream {
    tokio::time::timeout(PATIENCE, l.accept())
        .await
        .expect("frpc connects in time")
        .unwrap()
        .0
}

async fn next<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Message {
    tokio::time::timeout(PATIENCE, read_msg(s))
        .await
        .expect("message in time")
        .expect("message")
}

/// Reads one raw frame: (type byte, JSON body text).
async fn raw_frame(s: &mut TcpStream) -> (u8, String) {
    let mut h = [0u8; 9];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut h))
        .await
        .unwrap()
        .unwrap();
    let (ty, len) = decode_header(&h).unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    (ty, String::from_utf8(body).unwrap())
}

/// Accepts frpc's control connection, answers its Login (run id `r`) and reads its first
/// NewProxy; returns the encrypted control stream.
async fn logged_in(l: &TcpListener) -> CryptStream<TcpStream> {
    let mut ctl = accept(l).await;
    let _ = next(&mut ctl).await;
    let resp = LoginResp {
        run_id: "r".into(),
        ..Default::default()
    };
    write_msg(&mut ctl, &resp.into()).await.unwrap();
    let mut ctl = CryptStream::new(ctl, derive_key(TOKEN.as_bytes()));
    let _ = next(&mut ctl).await;
    ctl
}

fn frpc_to(l: &TcpListener, f: impl FnOnce(&mut common::config::ClientConfig)) -> Frpc {
    let addr = l.local_addr().unwrap();
    Frpc::start(addr, |c| {
        c.transport.tcp_mux = false;
        c.transport.tls.enable = false;
        f(c)
    })
}

#[tokio::test]
async fn login_bytes_and_proxy_registration() {
    init_log();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo = echo_tcp().await;
    let frpc = frpc_to(&l, |c| {
        c.user = "bob".into();
        c.transport.pool_count = 2;
        c.metadatas.insert("k".into(), "v".into());
        let mut p = proxy("ssh", "tcp", echo, 6000);
        p.transport.use_encryption = true;
        c.proxies.push(p);
    });
    let mut ctl = accept(&l).await;
    let (ty, body) = raw_frame(&mut ctl).await;
    assert_eq!(ty, b'o');
    let Message::Login(login) = decode(ty, body.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(login.version, "0.70.1");
    assert_eq!(login.privilege_key, auth_key(TOKEN, login.timestamp));
    assert_eq!(
        (login.os.as_str(), login.user.as_str(), login.pool_count),
        (std::env::consts::OS, "bob", 2)
    );
    assert!(login.run_id.is_empty());
    assert!(
        body.contains(r#""client_spec":{}"#),
        "client_spec always present: {body}"
    );
    assert!(body.contains(r#""metas":{"k":"v"}"#), "{body}");
    assert!(!body.contains("run_id"), "empty fields omitted: {body}");

    write_msg(
        &mut ctl,
        &LoginResp {
            version: "0.70.1".into(),
            run_id: "0123456789abcdef".into(),
            error: String::new(),
        }
        .into(),
    )
    .await
    .unwrap();
    let mut ctl = CryptStream::new(ctl, derive_key(TOKEN.as_bytes()));
    let Message::NewProxy(np) = next(&mut ctl).await else {
        panic!()
    };
    assert_eq!(
        (
            np.proxy_name.as_str(),
            np.proxy_type.as_str(),
            np.remote_port,
            np.use_encryption
        ),
        ("bob.ssh", "tcp", 6000, true)
    );
    assert!(np.bandwidth_limit_mode.is_empty(), "\"client\" is not sent");
    write_msg(
        &mut ctl,
        &NewProxyResp {
            proxy_name: "bob.ssh".into(),
            remote_addr: ":6000".into(),
            error: String::new(),
        }
        .into(),
    )
    .await
    .unwrap();
    assert_eq!(frpc.wait_running("ssh").await.remote_addr, ":6000");

    // ReqWorkConn: frpc dials a new connection (tcpMux off) and sends NewWorkConn.
    write_msg(&mut ctl, &ReqWorkConn {}.into()).await.unwrap();
    let mut work = accept(&l).await;
    let Message::NewWorkConn(w) = next(&mut work).await else {
        panic!()
    };
    assert_eq!(w.run_id, "0123456789abcdef");
    assert!(
        w.privilege_key.is_empty(),
        "no NewWorkConns scope: no auth fields"
    );
    let start = StartWorkConn {
        proxy_name: "bob.ssh".into(),
        src_addr: "1.2.3.4".into(),
        src_port: 5,
        ..Default::default()
    };
    write_msg(&mut work, &start.into()).await.unwrap();
    // useEncryption: the work connection carries AES-CFB keyed from the token.
    let mut work = CryptStream::new(work, derive_key(TOKEN.as_bytes()));
    work.write_all(b"through the tunnel").await.unwrap();
    work.flush().await.unwrap();
    let mut b = [0u8; 18];
    tokio::time::timeout(PATIENCE, work.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b, b"through the tunnel");
    frpc.stop().await;
}

#[tokio::test]
async fn start_error_on_refused_proxy_and_refused_work_conn() {
    init_log();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo = echo_tcp().await;
    let frpc = frpc_to(&l, |c| c.proxies.push(proxy("p", "tcp", echo, 1)));
    let mut ctl = logged_in(&l).await;
    write_msg(
        &mut ctl,
        &NewProxyResp {
            proxy_name: "p".into(),
            error: "port not allowed".into(),
            ..Default::default()
        }
        .into(),
    )
    .await
    .unwrap();
    let st = frpc.wait_phase("p", frpc::status::Phase::StartError).await;
    assert_eq!(st.error, "port not allowed");
    // A StartWorkConn with an error: frpc closes that work connection.
    write_msg(&mut ctl, &ReqWorkConn {}.into()).await.unwrap();
    let mut work = accept(&l).await;
    let _ = next(&mut work).await;
    write_msg(
        &mut work,
        &StartWorkConn {
            error: "nope".into(),
            ..Default::default()
        }
        .into(),
    )
    .await
    .unwrap();
    let mut b = [0u8; 1];
    assert!(matches!(
        tokio::time::timeout(PATIENCE, work.read(&mut b))
            .await
            .unwrap(),
        Ok(0) | Err(_)
    ));
    frpc.stop().await;
}

#[tokio::test]
async fn heartbeat_ping_and_pong_error_relogin_with_same_run_id() {
    init_log();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let frpc = frpc_to(&l, |c| {
        c.transport.heartbeat_interval = 1;
        c.transport.heartbeat_timeout = 30;
        c.auth.additional_scopes = vec!["HeartBeats".into()];
        c.login_fail_exit = false;
    });
    let mut ctl = accept(&l).await;
    let _ = next(&mut ctl).await;
    write_msg(
        &mut ctl,
        &LoginResp {
            run_id: "feedfacecafebeef".into(),
            ..Default::default()
        }
        .into(),
    )
    .await
    .unwrap();
    let mut ctl = CryptStream::new(ctl, derive_key(TOKEN.as_bytes()));
    let Message::Ping(p) = next(&mut ctl).await else {
        panic!("Ping expected")
    };
    assert_eq!(
        p.privilege_key,
        auth_key(TOKEN, p.timestamp),
        "HeartBeats scope signs the ping"
    );
    write_msg(
        &mut ctl,
        &Pong {
            error: "invalid".into(),
        }
        .into(),
    )
    .await
    .unwrap();
    // frpc drops the session and logs in again with the same run_id.
    let mut again = accept(&l).await;
    let Message::Login(login) = next(&mut again).await else {
        panic!()
    };
    assert_eq!(login.run_id, "feedfacecafebeef");
    frpc.stop().await;
}

#[tokio::test]
async fn first_bytes_with_tcp_mux_and_custom_tls_byte() {
    init_log();
    // tcpMux on, TLS off: the first bytes are a yamux WindowUpdate|SYN for stream 1 with frp's window.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let frpc = Frpc::start(addr, |c| c.transport.tls.enable = false);
    let mut s = accept(&l).await;
    let mut h = [0u8; 12];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut h))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h[..4], [0, 1, 0, 1], "version 0, WindowUpdate, SYN");
    assert_eq!(u32::from_be_bytes(h[4..8].try_into().unwrap()), 1);
    assert_eq!(
        u32::from_be_bytes(h[8..12].try_into().unwrap()),
        6 * 1024 * 1024 - 256 * 1024
    );
    frpc.stop().await;

    // TLS on (default) with disableCustomTLSFirstByte = false: 0x17, then a ClientHello (0x16).
    let frpc = Frpc::start(addr, |c| {
        c.transport.tls.disable_custom_tls_first_byte = false
    });
    let mut s = accept(&l).await;
    let mut b = [0u8; 2];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b, [0x17, 0x16]);
    frpc.stop().await;

    // Default TLS: a plain ClientHello.
    let frpc = Frpc::start(addr, |_| {});
    let mut s = accept(&l).await;
    let mut b = [0u8; 1];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b, [0x16]);
    frpc.stop().await;
}

/// A Go frps writes a UDPPacket of any size (frp 0.70's v1 writer has no limit): frpc skips one
/// over the message limit with a warning, and the same work connection carries the next one
/// to the local service and its answer back.
#[tokio::test]
async fn oversized_udp_packet_from_frps_is_skipped_alone() {
    init_log();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo = echo_udp().await;
    let frpc = frpc_to(&l, |c| {
        c.udp_packet_size = 10240;
        c.proxies.push(proxy("dns", "udp", echo, 6000));
    });
    let mut ctl = logged_in(&l).await;
    write_msg(
        &mut ctl,
        &NewProxyResp {
            proxy_name: "dns".into(),
            remote_addr: ":6000".into(),
            error: String::new(),
        }
        .into(),
    )
    .await
    .unwrap();
    frpc.wait_running("dns").await;
    write_msg(&mut ctl, &ReqWorkConn {}.into()).await.unwrap();
    let mut work = accept(&l).await;
    let _ = next(&mut work).await;
    let start = StartWorkConn {
        proxy_name: "dns".into(),
        ..Default::default()
    };
    write_msg(&mut work, &start.into()).await.unwrap();

    let user: std::net::SocketAddr = "1.2.3.4:5".parse().unwrap();
    work.write_all(&raw_udp_frame(&pattern(9000, 1), user))
        .await
        .unwrap();
    work.write_all(&raw_udp_frame(b"after", user))
        .await
        .unwrap();
    let answer = loop {
        match next(&mut work).await {
            Message::UdpPacket(p) => break p,
            Message::Ping(_) => continue,
            other => panic!("UDPPacket expected, got {other:?}"),
        }
    };
    assert_eq!(answer.content, b"after");
    assert_eq!(answer.remote_addr.unwrap().to_socket_addr(), Some(user));
    frpc.stop().await;
}

/// Config keys frpc only passes on (issue 12 item 10): each type's keys reach NewProxy as frp
/// sends them, and `clientID` reaches Login.
#[tokio::test]
async fn new_proxy_carries_every_key_of_each_type() {
    init_log();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo = echo_tcp().await;
    let frpc = frpc_to(&l, |c| {
        c.client_id = "cid-1".into();
        let mut h = proxy("h", "http", echo, 0);
        h.custom_domains = vec!["a.example".into()];
        h.subdomain = "sub".into();
        h.locations = vec!["/api".into()];
        h.host_header_rewrite = "inner".into();
        h.http_user = "hu".into();
        h.http_password = "hp".into();
        h.request_headers.set.insert("X-Req".into(), "1".into());
        h.response_headers.set.insert("X-Resp".into(), "2".into());
        h.route_by_http_user = "ru".into();
        h.annotations.insert("an".into(), "nv".into());
        h.metadatas.insert("mk".into(), "mv".into());
        c.proxies.push(h);
        let mut s = proxy("s", "https", echo, 0);
        s.custom_domains = vec!["s.example".into()];
        c.proxies.push(s);
        let mut m = proxy("m", "tcpmux", echo, 0);
        m.custom_domains = vec!["m.example".into()];
        m.multiplexer = "httpconnect".into();
        m.http_user = "mu".into();
        c.proxies.push(m);
        let mut st = proxy("st", "stcp", echo, 0);
        st.secret_key = "sk".into();
        st.allow_users = vec!["alice".into()];
        c.proxies.push(st);
    });
    let mut ctl = accept(&l).await;
    let Message::Login(login) = next(&mut ctl).await else {
        panic!("Login first")
    };
    assert_eq!(login.client_id, "cid-1");
    write_msg(
        &mut ctl,
        &LoginResp {
            version: "0.70.1".into(),
            run_id: "r".into(),
            error: String::new(),
        }
        .into(),
    )
    .await
    .unwrap();
    let mut ctl = CryptStream::new(ctl, derive_key(TOKEN.as_bytes()));
    let mut got = std::collections::BTreeMap::new();
    while got.len() < 4 {
        if let Message::NewProxy(np) = next(&mut ctl).await {
            got.insert(np.proxy_name.clone(), np);
        }
    }
    let h = &got["h"];
    assert_eq!(h.proxy_type, "http");
    assert_eq!(
        (
            h.custom_domains.clone(),
            h.subdomain.as_str(),
            h.locations.clone()
        ),
        (
            vec!["a.example".to_string()],
            "sub",
            vec!["/api".to_string()]
        )
    );
    assert_eq!(
        (
            h.host_header_rewrite.as_str(),
            h.http_user.as_str(),
            h.http_pwd.as_str(),
            h.route_by_http_user.as_str()
        ),
        ("inner", "hu", "hp", "ru")
    );
    assert_eq!(h.headers.get("X-Req").map(String::as_str), Some("1"));
    assert_eq!(
        h.response_headers.get("X-Resp").map(String::as_str),
        Some("2")
    );
    assert_eq!(h.annotations.get("an").map(String::as_str), Some("nv"));
    assert_eq!(h.metas.get("mk").map(String::as_str), Some("mv"));
    assert_eq!(got["s"].custom_domains, vec!["s.example".to_string()]);
    let m = &got["m"];
    assert_eq!(
        (
            m.multiplexer.as_str(),
            m.http_user.as_str(),
            m.custom_domains.clone()
        ),
        ("httpconnect", "mu", vec!["m.example".to_string()])
    );
    let st = &got["st"];
    assert_eq!(
        (st.sk.as_str(), st.allow_users.clone()),
        ("sk", vec!["alice".to_string()])
    );
    frpc.stop().await;
}

/// `transport.connectServerLocalIP`: frpc's connections to frps come from that address.
#[tokio::test]
async fn connect_server_local_ip_is_the_source_address() {
    init_log();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let frpc = frpc_to(&l, |c| {
        c.transport.connect_server_local_ip = "127.0.0.2".into()
    });
    let (_conn, peer) = tokio::time::timeout(PATIENCE, l.accept())
        .await
        .expect("frpc connects in time")
        .unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.2");
    frpc.stop().await;
}

/// `transport.proxyProtocolVersion`: the header frpc writes to the local service, built from
/// StartWorkConn's src/dst exactly as frp (go-proxyproto) renders it, before any data; an empty
/// `dst_addr` is 127.0.0.1 as in frp.
#[tokio::test]
async fn proxy_protocol_header_from_start_work_conn() {
    init_log();
    let mut v2_v6 = b"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x24".to_vec();
    v2_v6.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v2_v6.extend_from_slice(
        &"2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v2_v6.extend_from_slice(&[0x30, 0x39, 0x01, 0xbb]);
    /// (version, (src, src port, dst, dst port), header)
    type Case = (
        &'static str,
        (&'static str, u16, &'static str, u16),
        Vec<u8>,
    );
    let cases: Vec<Case> = vec![
        (
            "v1",
            ("1.2.3.4", 5, "10.0.0.1", 6000),
            b"PROXY TCP4 1.2.3.4 10.0.0.1 5 6000\r\n".to_vec(),
        ),
        (
            "v1",
            ("2001:db8::1", 12345, "2001:db8::2", 443),
            b"PROXY TCP6 2001:db8::1 2001:db8::2 12345 443\r\n".to_vec(),
        ),
        (
            "v1",
            ("1.2.3.4", 5, "", 80),
            b"PROXY TCP4 1.2.3.4 127.0.0.1 5 80\r\n".to_vec(),
        ),
        (
            "v2",
            ("1.2.3.4", 5, "10.0.0.1", 6000),
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x01\x02\x03\x04\x0a\x00\x00\x01\x00\x05\x17\x70"
                .to_vec(),
        ),
        ("v2", ("2001:db8::1", 12345, "2001:db8::2", 443), v2_v6),
    ];
    for (version, (src, sport, dst, dport), want) in cases {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local_addr = local.local_addr().unwrap();
        let frpc = frpc_to(&l, |c| {
            let mut p = proxy("pp", "tcp", local_addr, 6000);
            p.transport.proxy_protocol_version = version.into();
            c.proxies.push(p);
        });
        let mut ctl = logged_in(&l).await;
        write_msg(
            &mut ctl,
            &NewProxyResp {
                proxy_name: "pp".into(),
                remote_addr: ":6000".into(),
                error: String::new(),
            }
            .into(),
        )
        .await
        .unwrap();
        frpc.wait_running("pp").await;
        write_msg(&mut ctl, &ReqWorkConn {}.into()).await.unwrap();
        let mut work = accept(&l).await;
        let _ = next(&mut work).await;
        let start = StartWorkConn {
            proxy_name: "pp".into(),
            src_addr: src.into(),
            src_port: sport,
            dst_addr: dst.into(),
            dst_port: dport,
            ..Default::default()
        };
        write_msg(&mut work, &start.into()).await.unwrap();
        work.write_all(b"data").await.unwrap();
        let mut conn = accept(&local).await;
        let mut got = vec![0u8; want.len() + 4];
        tokio::time::timeout(PATIENCE, conn.read_exact(&mut got))
            .await
            .expect("header and data in time")
            .unwrap();
        let mut full = want.clone();
        full.extend_from_slice(b"data");
        assert_eq!(got, full, "{version} {src} -> {dst}");
        frpc.stop().await;
    }
}

/// frp's frpc, when stopped, sends CloseProxy for each proxy before it closes the session
/// (`Control.GracefulClose` → `proxy.Manager.Close`). Over KCP without tcpMux that message is
/// the only close a Go frps sees: KCP has no close of its own, so without it the proxy (and
/// its port and name) stays registered until the heartbeat timeout.
#[tokio::test]
async fn stop_sends_close_proxy_for_each_registered_proxy() {
    init_log();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo = echo_tcp().await;
    let frpc = frpc_to(&l, |c| c.proxies.push(proxy("p", "tcp", echo, 6000)));
    let mut ctl = logged_in(&l).await;
    write_msg(
        &mut ctl,
        &NewProxyResp {
            proxy_name: "p".into(),
            remote_addr: ":6000".into(),
            ..Default::default()
        }
        .into(),
    )
    .await
    .unwrap();
    frpc.wait_running("p").await;
    let stopping = tokio::spawn(frpc.stop());
    let Message::CloseProxy(m) = next(&mut ctl).await else {
        panic!("CloseProxy expected")
    };
    assert_eq!(m.proxy_name, "p");
    stopping.await.unwrap();
}
