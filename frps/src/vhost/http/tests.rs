//! Unit tests of the vhost HTTP server's pieces and of one user connection over a socket pair.

#![allow(clippy::unwrap_used)]

use super::*;
use hyper::header::HeaderMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One user connection served over an in-memory pipe: the user's end and the server task.
fn spawn_conn(buf: usize) -> (tokio::io::DuplexStream, tokio::task::JoinHandle<()>) {
    let vhost = Arc::new(HttpVhost::new(60, ""));
    let (user, server_side) = tokio::io::duplex(buf);
    let peer: SocketAddr = ([127, 0, 0, 1], 1).into();
    let task = tokio::spawn(serve_conn(
        vhost,
        server_side,
        peer,
        TaskTracker::new(),
        CancellationToken::new(),
    ));
    (user, task)
}

#[test]
fn basic_auth_parsing_as_go() {
    let enc = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
    assert_eq!(
        parse_basic(&format!("Basic {}", enc("u:p:q"))),
        Some(("u".into(), "p:q".into()))
    );
    assert_eq!(
        parse_basic(&format!("bAsIc {}", enc("u:"))),
        Some(("u".into(), "".into()))
    );
    assert_eq!(parse_basic(&format!("Basic {}", enc("nocolon"))), None);
    assert_eq!(parse_basic("Bearer x"), None);
    assert_eq!(parse_basic("Basic !!!"), None);
    assert_eq!(parse_basic("Basi"), None);
    assert_eq!(parse_basic("Basic\u{e9}xyz"), None);
}

#[test]
fn paths_are_decoded_before_routing() {
    assert_eq!(decode_path("/%61dmin").as_deref(), Some("/admin"));
    assert_eq!(decode_path("/a%2Fb").as_deref(), Some("/a/b"));
    assert_eq!(decode_path("/plain").as_deref(), Some("/plain"));
    assert_eq!(decode_path("/bad%2"), None);
    assert_eq!(decode_path("/bad%zz"), None);
}

#[test]
fn hop_by_hop_headers_go_and_upgrade_is_seen() {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("keep-alive, X-Secret, Upgrade"),
    );
    h.insert("x-secret", HeaderValue::from_static("1"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::PROXY_AUTHORIZATION,
        HeaderValue::from_static("Basic eA=="),
    );
    h.insert("x-kept", HeaderValue::from_static("1"));
    assert!(wants_upgrade(&h));
    remove_hop_by_hop(&mut h);
    assert_eq!(h.len(), 1);
    assert!(h.contains_key("x-kept"));
}

/// A user connection that stops sending in the middle of its headers is closed once the
/// header-read timeout passes (paused clock: no real waiting, no timing in the verdict).
#[tokio::test(start_paused = true)]
async fn slow_headers_are_closed_by_the_header_read_timeout() {
    let (mut user, task) = spawn_conn(4096);
    user.write_all(b"GET / HTTP/1.1\r\nHost: a.example.com\r\nX-Slow: ")
        .await
        .unwrap();
    let mut got = Vec::new();
    // The read ends (EOF or a 408) only because the server gave up on the headers.
    let read = tokio::time::timeout(Duration::from_secs(600), user.read_to_end(&mut got)).await;
    assert!(
        read.is_ok(),
        "the connection is still open after 600 s without headers"
    );
    task.await.unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(
        got.is_empty() || text.starts_with("HTTP/1.1 408"),
        "unexpected answer {text:?}"
    );
}

/// Unknown hosts get frp's 404 page; oversized heads get 431.
#[tokio::test]
async fn not_found_page_and_oversized_head() {
    let answer = |req: Vec<u8>| async move {
        let (mut user, _task) = spawn_conn(1 << 20);
        user.write_all(&req).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = user.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let a = answer(b"GET / HTTP/1.1\r\nHost: nowhere.example.com\r\n\r\n".to_vec()).await;
    assert!(a.starts_with("HTTP/1.1 404"), "{a}");
    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(vec![b'a'; MAX_HEAD + 1024]);
    big.extend(b"\r\n\r\n");
    let a = answer(big).await;
    assert!(a.starts_with("HTTP/1.1 431"), "{a}");
}

/// A connection that never sends a byte, or goes silent after a request, is closed by the same
/// timeout (idle connections on the vhost port cannot pile up).
#[tokio::test(start_paused = true)]
async fn silent_connections_are_closed_too() {
    for first in [&b""[..], b"GET / HTTP/1.1\r\nHost: nowhere\r\n\r\n"] {
        let (mut user, task) = spawn_conn(4096);
        user.write_all(first).await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(600), user.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "an idle connection is still open after 600 s");
        task.await.unwrap();
    }
}
