//! frpc's `dnsServer` (frp `pkg/util/net/dns.go`): names frpc dials are resolved by that server
//! only. The DNS server here is the test's own (RFC 1035 answers built by hand, independent of
//! the resolver under test), serving names under `.test` that the system cannot resolve.
//! Real binaries: the setting is process-wide, as in frp.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tests::*;
use tokio::net::UdpSocket;

/// Names asked of the test's DNS server, in order.
type Asked = Arc<Mutex<Vec<String>>>;

/// The question's name (lowercase, dotted) and where the question ends, if `q` is a query.
fn question(q: &[u8]) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    let mut i = 12;
    loop {
        let len = usize::from(*q.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    (q.len() >= i + 4).then(|| (labels.join("."), i + 4))
}

/// An answer to `q`: an A record for a known name asked with type A, no record for another
/// type of a known name, NXDOMAIN for an unknown one.
fn answer(q: &[u8], names: &HashMap<&str, Ipv4Addr>) -> Option<(String, Vec<u8>)> {
    let (name, end) = question(q)?;
    let qtype = u16::from_be_bytes([q[end - 4], q[end - 3]]);
    let ip = names.get(name.as_str());
    let mut r = q[..end].to_vec();
    r[2] = 0x80 | (q[2] & 0x01); // QR, RD copied
    r[3] = if ip.is_some() { 0x80 } else { 0x83 }; // RA, NOERROR / NXDOMAIN
    r[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    if let (Some(ip), 1) = (ip, qtype) {
        r[7] = 1;
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4]);
        r.extend_from_slice(&ip.octets());
    }
    Some((name, r))
}

async fn dns_server(names: HashMap<&'static str, Ipv4Addr>) -> (SocketAddr, Asked) {
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind dns");
    let addr = s.local_addr().expect("dns addr");
    let asked = Asked::default();
    let log = asked.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            if let Some((name, r)) = answer(&buf[..n], &names) {
                log.lock().expect("dns log").push(name);
                let _ = s.send_to(&r, from).await;
            }
        }
    });
    (addr, asked)
}

/// With `dnsServer`, frpc finds frps (`serverAddr`) and a proxy's local service (`localIP`)
/// by names only that server knows; without it the same config fails naming the lookup; a
/// `dnsServer` that is not `host[:port]` is refused by `frpc verify` naming the key, and one
/// whose host does not resolve stops frpc naming it.
#[tokio::test]
async fn dns_server_resolves_frps_and_local_services() {
    init_log();
    let localhost = Ipv4Addr::LOCALHOST;
    let (dns, asked) = dns_server(HashMap::from([
        ("frps.frp-rs.test", localhost),
        ("svc.frp-rs.test", localhost),
    ]))
    .await;
    let dir = procs::tempdir("dns-server");
    let (_frps, port) = procs::start_frps(&dir, &format!("auth.token = \"{TOKEN}\"\n")).await;
    let echo = echo_tcp().await;
    let remote = free_port().await;
    let config = |dns_line: &str| {
        format!(
            "serverAddr = \"frps.frp-rs.test\"\nserverPort = {port}\nauth.token = \"{TOKEN}\"\n{dns_line}\
             [[proxies]]\nname = \"svc\"\ntype = \"tcp\"\nlocalIP = \"svc.frp-rs.test\"\nlocalPort = {}\nremotePort = {remote}\n",
            echo.port()
        )
    };

    // Without dnsServer: the system cannot resolve the name; frpc says which.
    let plain = procs::write(&dir, "plain.toml", &config(""));
    let out = procs::run("frpc", &["-c", &plain]).await;
    assert!(!out.status.success());
    let err = procs::stderr(&out) + &procs::stdout(&out);
    assert!(err.contains("frps.frp-rs.test"), "{err}");
    assert!(
        asked.lock().unwrap().is_empty(),
        "the test's server was not asked"
    );

    // A value that is not host[:port] is refused before anything runs, naming the key; a
    // host name that does not resolve stops frpc at start, naming it too.
    let bad = procs::write(
        &dir,
        "bad.toml",
        &config("dnsServer = \"udp://127.0.0.1\"\n"),
    );
    let out = procs::run("frpc", &["verify", "-c", &bad]).await;
    assert!(!out.status.success());
    let err = procs::stderr(&out) + &procs::stdout(&out);
    assert!(
        err.contains("dnsServer") && err.contains("expected host or IP address"),
        "{err}"
    );
    let unknown = procs::write(
        &dir,
        "unknown.toml",
        &config("dnsServer = \"dns.frp-rs.test\"\n"),
    );
    let out = procs::run("frpc", &["-c", &unknown]).await;
    assert!(!out.status.success());
    let err = procs::stderr(&out) + &procs::stdout(&out);
    assert!(
        err.contains("dnsServer") && err.contains("dns.frp-rs.test does not resolve"),
        "{err}"
    );

    // With it (named as frp users do, by a name from the hosts file): frps and the local
    // service are found through the test's server.
    let good = procs::write(
        &dir,
        "good.toml",
        &config(&format!("dnsServer = \"localhost:{}\"\n", dns.port())),
    );
    let _frpc = procs::spawn("frpc", &["-c", &good]);
    let addr = SocketAddr::from((localhost, remote));
    wait_tunnel(addr).await;
    let data = pattern(1 << 20, 5);
    assert!(echo_through(addr, &data).await == data);
    let asked = asked.lock().unwrap().clone();
    for name in ["frps.frp-rs.test", "svc.frp-rs.test"] {
        assert!(
            asked.iter().any(|n| n == name),
            "{name} not asked: {asked:?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn answers_are_rfc_1035() {
    // A query for a.test type A, id 0x1234, RD.
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(&[1, b'a', 4, b't', b'e', b's', b't', 0, 0, 1, 0, 1]);
    let names = HashMap::from([("a.test", Ipv4Addr::new(10, 0, 0, 7))]);
    let (name, r) = answer(&q, &names).unwrap();
    assert_eq!(name, "a.test");
    assert_eq!(&r[..4], &[0x12, 0x34, 0x81, 0x80]);
    assert_eq!(&r[6..8], &[0, 1], "one answer");
    assert_eq!(&r[r.len() - 4..], &[10, 0, 0, 7]);
    q[13] = b'b';
    assert_eq!(answer(&q, &names).unwrap().1[3], 0x83, "NXDOMAIN");
}
