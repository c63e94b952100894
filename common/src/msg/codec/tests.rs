//! Golden bytes (frp-protocol.md §2.1, §2.2, §21) and property tests for the v1 codec.

use super::*;
use proptest::prelude::*;

fn golden(msg: Message, ty: u8, json: &str) {
    let bytes = encode_to_vec(&msg).unwrap();
    assert_eq!(bytes[0], ty, "{} type byte", msg.name());
    assert_eq!(
        &bytes[1..9],
        &(json.len() as i64).to_be_bytes(),
        "{} length",
        msg.name()
    );
    assert_eq!(
        std::str::from_utf8(&bytes[9..]).unwrap(),
        json,
        "{} body",
        msg.name()
    );
    let (t, len) = decode_header(bytes[..9].try_into().unwrap()).unwrap();
    assert_eq!(
        decode(t, &bytes[9..9 + len]).unwrap(),
        msg,
        "{} round trip",
        msg.name()
    );
}

#[test]
fn req_work_conn_matches_spec_example() {
    let bytes = encode_to_vec(&ReqWorkConn {}.into()).unwrap();
    assert_eq!(bytes, [0x72, 0, 0, 0, 0, 0, 0, 0, 2, 0x7b, 0x7d]);
}

#[test]
fn login_matches_spec_example() {
    let login = Login {
        version: "0.70.1".into(),
        hostname: "h".into(),
        os: "linux".into(),
        arch: "amd64".into(),
        privilege_key: "3d8aac6cc09d79da303be74c311e5808".into(),
        timestamp: 1_700_000_000,
        pool_count: 1,
        ..Default::default()
    };
    golden(
        login.into(),
        0x6f,
        r#"{"version":"0.70.1","hostname":"h","os":"linux","arch":"amd64","privilege_key":"3d8aac6cc09d79da303be74c311e5808","timestamp":1700000000,"client_spec":{},"pool_count":1}"#,
    );
}

#[test]
fn login_full_field_order() {
    let login = Login {
        version: "0.70.1".into(),
        hostname: "h".into(),
        os: "linux".into(),
        arch: "amd64".into(),
        user: "u".into(),
        privilege_key: "k".into(),
        timestamp: 1,
        run_id: "r".into(),
        client_id: "c".into(),
        metas: [("a".to_string(), "b".to_string())].into(),
        client_spec: ClientSpec {
            kind: "ssh-tunnel".into(),
            always_auth_pass: true,
        },
        pool_count: 5,
    };
    golden(
        login.into(),
        b'o',
        r#"{"version":"0.70.1","hostname":"h","os":"linux","arch":"amd64","user":"u","privilege_key":"k","timestamp":1,"run_id":"r","client_id":"c","metas":{"a":"b"},"client_spec":{"type":"ssh-tunnel","always_auth_pass":true},"pool_count":5}"#,
    );
}

#[test]
fn every_message_type_golden() {
    golden(
        LoginResp {
            version: "0.70.1".into(),
            run_id: "abcdef0123456789".into(),
            error: String::new(),
        }
        .into(),
        b'1',
        r#"{"version":"0.70.1","run_id":"abcdef0123456789"}"#,
    );
    golden(
        LoginResp {
            version: "0.70.1".into(),
            error: "token in login doesn't match token from configuration".into(),
            ..Default::default()
        }
        .into(),
        b'1',
        r#"{"version":"0.70.1","error":"token in login doesn't match token from configuration"}"#,
    );
    golden(
        NewProxy {
            proxy_name: "u.ssh".into(),
            proxy_type: "tcp".into(),
            use_encryption: true,
            remote_port: 6000,
            ..Default::default()
        }
        .into(),
        b'p',
        r#"{"proxy_name":"u.ssh","proxy_type":"tcp","use_encryption":true,"remote_port":6000}"#,
    );
    golden(
        NewProxy {
            proxy_name: "w".into(),
            proxy_type: "http".into(),
            use_compression: true,
            bandwidth_limit: "1MB".into(),
            bandwidth_limit_mode: "server".into(),
            group: "g".into(),
            group_key: "k".into(),
            metas: [("m".to_string(), "1".to_string())].into(),
            annotations: [("a".to_string(), "2".to_string())].into(),
            custom_domains: vec!["a.com".into()],
            subdomain: "s".into(),
            locations: vec!["/".into()],
            http_user: "hu".into(),
            http_pwd: "hp".into(),
            host_header_rewrite: "h".into(),
            headers: [("X".to_string(), "y".to_string())].into(),
            response_headers: [("R".to_string(), "z".to_string())].into(),
            route_by_http_user: "ru".into(),
            sk: "sk".into(),
            allow_users: vec!["*".into()],
            multiplexer: "httpconnect".into(),
            remote_port: 0,
            use_encryption: false,
        }
        .into(),
        b'p',
        r#"{"proxy_name":"w","proxy_type":"http","use_compression":true,"bandwidth_limit":"1MB","bandwidth_limit_mode":"server","group":"g","group_key":"k","metas":{"m":"1"},"annotations":{"a":"2"},"custom_domains":["a.com"],"subdomain":"s","locations":["/"],"http_user":"hu","http_pwd":"hp","host_header_rewrite":"h","headers":{"X":"y"},"response_headers":{"R":"z"},"route_by_http_user":"ru","sk":"sk","allow_users":["*"],"multiplexer":"httpconnect"}"#,
    );
    golden(
        NewProxyResp {
            proxy_name: "ssh".into(),
            remote_addr: ":6000".into(),
            error: String::new(),
        }
        .into(),
        b'2',
        r#"{"proxy_name":"ssh","remote_addr":":6000"}"#,
    );
    golden(
        CloseProxy {
            proxy_name: "ssh".into(),
        }
        .into(),
        b'c',
        r#"{"proxy_name":"ssh"}"#,
    );
    golden(
        NewWorkConn {
            run_id: "r".into(),
            privilege_key: "k".into(),
            timestamp: 7,
        }
        .into(),
        b'w',
        r#"{"run_id":"r","privilege_key":"k","timestamp":7}"#,
    );
    golden(
        StartWorkConn {
            proxy_name: "ssh".into(),
            src_addr: "1.2.3.4".into(),
            dst_addr: "5.6.7.8".into(),
            src_port: 1,
            dst_port: 2,
            error: String::new(),
        }
        .into(),
        b's',
        r#"{"proxy_name":"ssh","src_addr":"1.2.3.4","dst_addr":"5.6.7.8","src_port":1,"dst_port":2}"#,
    );
    golden(
        NewVisitorConn {
            run_id: "r".into(),
            proxy_name: "p".into(),
            sign_key: "s".into(),
            timestamp: 3,
            use_encryption: true,
            use_compression: true,
        }
        .into(),
        b'v',
        r#"{"run_id":"r","proxy_name":"p","sign_key":"s","timestamp":3,"use_encryption":true,"use_compression":true}"#,
    );
    golden(
        NewVisitorConnResp {
            proxy_name: "p".into(),
            error: "e".into(),
        }
        .into(),
        b'3',
        r#"{"proxy_name":"p","error":"e"}"#,
    );
    golden(Ping::default().into(), b'h', "{}");
    golden(
        Ping {
            privilege_key: "k".into(),
            timestamp: 9,
        }
        .into(),
        b'h',
        r#"{"privilege_key":"k","timestamp":9}"#,
    );
    golden(Pong::default().into(), b'4', "{}");
    golden(
        UdpPacket {
            content: b"hello".to_vec(),
            local_addr: None,
            remote_addr: Some(UdpAddr {
                ip: "203.0.113.7".into(),
                port: 51234,
                zone: String::new(),
            }),
        }
        .into(),
        b'u',
        r#"{"c":"aGVsbG8=","r":{"IP":"203.0.113.7","Port":51234,"Zone":""}}"#,
    );
    golden(
        NatHoleVisitor {
            transaction_id: "t".into(),
            proxy_name: "p".into(),
            pre_check: true,
            protocol: "quic".into(),
            sign_key: "s".into(),
            timestamp: 1,
            mapped_addrs: vec!["a".into()],
            assisted_addrs: vec!["b".into()],
        }
        .into(),
        b'i',
        r#"{"transaction_id":"t","proxy_name":"p","pre_check":true,"protocol":"quic","sign_key":"s","timestamp":1,"mapped_addrs":["a"],"assisted_addrs":["b"]}"#,
    );
    golden(
        NatHoleClient {
            transaction_id: "t".into(),
            proxy_name: "p".into(),
            sid: "s".into(),
            mapped_addrs: vec![],
            assisted_addrs: vec![],
        }
        .into(),
        b'n',
        r#"{"transaction_id":"t","proxy_name":"p","sid":"s"}"#,
    );
    golden(
        NatHoleResp {
            transaction_id: "t".into(),
            sid: "s".into(),
            ..Default::default()
        }
        .into(),
        b'm',
        r#"{"transaction_id":"t","sid":"s","detect_behavior":{}}"#,
    );
    golden(
        NatHoleResp {
            detect_behavior: NatHoleDetectBehavior {
                role: "sender".into(),
                mode: 1,
                ttl: 2,
                send_delay_ms: 3,
                read_timeout: 4,
                candidate_ports: vec![PortsRange { from: 1, to: 2 }],
                send_random_ports: 5,
                listen_random_ports: 6,
            },
            error: "e".into(),
            ..Default::default()
        }
        .into(),
        b'm',
        r#"{"detect_behavior":{"role":"sender","mode":1,"ttl":2,"send_delay_ms":3,"read_timeout":4,"candidate_ports":[{"from":1,"to":2}],"send_random_ports":5,"listen_random_ports":6},"error":"e"}"#,
    );
    golden(
        NatHoleSid {
            transaction_id: "t".into(),
            sid: "s".into(),
            response: true,
            nonce: "n".into(),
        }
        .into(),
        b'5',
        r#"{"transaction_id":"t","sid":"s","response":true,"nonce":"n"}"#,
    );
    golden(
        NatHoleReport {
            sid: "s".into(),
            success: true,
        }
        .into(),
        b'6',
        r#"{"sid":"s","success":true}"#,
    );
}

#[test]
fn decodes_go_quirks() {
    // Missing keys are zero; unknown keys are ignored; nil []byte is null.
    let m = decode(b'u', br#"{"c":null,"x":1}"#).unwrap();
    assert_eq!(m, Message::UdpPacket(UdpPacket::default()));
    let m = decode(b'1', br#"{"version":"0.70.1","future_field":[1,2]}"#).unwrap();
    assert_eq!(
        m,
        Message::LoginResp(LoginResp {
            version: "0.70.1".into(),
            ..Default::default()
        })
    );
}

#[test]
fn header_errors() {
    let mut h = [0u8; 9];
    h[0] = b'F';
    assert!(matches!(
        decode_header(&h),
        Err(DecodeError::UnknownType(b'F'))
    ));
    h[0] = b'o';
    h[1..].copy_from_slice(&10241i64.to_be_bytes());
    assert!(matches!(
        decode_header(&h),
        Err(DecodeError::TooLarge(10241))
    ));
    h[1..].copy_from_slice(&10240i64.to_be_bytes());
    assert!(decode_header(&h).is_ok());
    h[1..].copy_from_slice(&(-1i64).to_be_bytes());
    assert!(matches!(
        decode_header(&h),
        Err(DecodeError::NegativeLength(-1))
    ));
}

#[test]
fn refuses_to_encode_oversized() {
    let m = NewProxy {
        proxy_name: "x".repeat(MAX_MSG_LEN),
        ..Default::default()
    };
    assert!(encode_to_vec(&m.into()).is_err());
}

#[tokio::test]
async fn read_msg_does_not_over_read() {
    let mut bytes = encode_to_vec(
        &LoginResp {
            version: "v".into(),
            ..Default::default()
        }
        .into(),
    )
    .unwrap();
    bytes.extend_from_slice(b"after");
    let mut r = &bytes[..];
    read_msg(&mut r).await.unwrap();
    assert_eq!(r, b"after");
}

proptest! {
    #[test]
    fn decode_never_panics(ty in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(ty, &body);
    }

    #[test]
    fn header_never_panics(h in proptest::array::uniform9(any::<u8>())) {
        let _ = decode_header(&h);
    }

    #[test]
    fn read_msg_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async { let mut r = &bytes[..]; let _ = read_msg(&mut r).await; });
    }

    #[test]
    fn round_trip(name in ".{0,40}", port in any::<u16>(), enc in any::<bool>(), key in "[a-f0-9]{0,32}", ts in any::<i64>(),
                  content in proptest::collection::vec(any::<u8>(), 0..200)) {
        let msgs: Vec<Message> = vec![
            NewProxy { proxy_name: name.clone(), remote_port: i64::from(port), use_encryption: enc, ..Default::default() }.into(),
            StartWorkConn { proxy_name: name.clone(), src_port: port, ..Default::default() }.into(),
            Ping { privilege_key: key, timestamp: ts }.into(),
            UdpPacket { content, remote_addr: Some(UdpAddr { ip: "::1".into(), port: i64::from(port), zone: name }), local_addr: None }.into(),
        ];
        for m in msgs {
            let b = encode_to_vec(&m).unwrap();
            let (t, len) = decode_header(b[..9].try_into().unwrap()).unwrap();
            prop_assert_eq!(decode(t, &b[9..9 + len]).unwrap(), m);
        }
    }
}

/// A QUIC stream whose connection is gone reads as NotConnected (quinn's ConnectionLost): the
/// peer went away, not a fault (frpc warned "bad StartWorkConn" for it at every shutdown).
#[test]
fn a_lost_quic_connection_is_a_close() {
    for kind in [
        std::io::ErrorKind::UnexpectedEof,
        std::io::ErrorKind::NotConnected,
    ] {
        assert!(DecodeError::Io(kind.into()).is_closed(), "{kind:?}");
    }
    assert!(!DecodeError::Io(std::io::ErrorKind::InvalidData.into()).is_closed());
}
