//! The server name of a TLS ClientHello, read without terminating TLS (frp
//! `pkg/util/vhost/https.go` `readClientHello`). Pure: works on the bytes received so far.
//!
//! The ClientHello may span several TLS records and arrive in any number of reads: the
//! handshake fragments of consecutive handshake records are joined until the whole message is
//! there.

/// What the bytes so far say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Hello {
    /// A complete ClientHello with this server name (lowercased).
    Sni(String),
    /// A complete ClientHello without a host_name (or with an unusable one).
    NoSni,
    /// Not a TLS handshake, or malformed.
    Bad,
    /// Not enough bytes yet.
    More,
}

/// The most a ClientHello may take (post-quantum key shares make it a few KiB).
pub(crate) const MAX_HELLO: usize = 32 * 1024;

/// Parses the ClientHello at the start of `buf`.
pub(crate) fn parse(buf: &[u8]) -> Hello {
    // Join handshake fragments from consecutive records.
    let mut hs = Vec::new();
    let mut rest = buf;
    loop {
        if rest.len() < 5 {
            return Hello::More;
        }
        if rest[0] != 0x16 || rest[1] != 3 {
            return Hello::Bad;
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len == 0 {
            return Hello::Bad;
        }
        let Some(frag) = rest.get(5..5 + len) else {
            return Hello::More;
        };
        hs.extend_from_slice(frag);
        rest = &rest[5 + len..];
        if hs.len() >= 4 {
            if hs[0] != 1 {
                return Hello::Bad;
            }
            let need =
                4 + (usize::from(hs[1]) << 16 | usize::from(hs[2]) << 8 | usize::from(hs[3]));
            if need > MAX_HELLO {
                return Hello::Bad;
            }
            if hs.len() >= need {
                return client_hello(&hs[4..need]).unwrap_or(Hello::Bad);
            }
        }
    }
}

/// A cursor over the ClientHello body; `None` = malformed.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<usize> {
        Some(usize::from(self.take(1)?[0]))
    }
    fn u16(&mut self) -> Option<usize> {
        let b = self.take(2)?;
        Some(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

fn client_hello(body: &[u8]) -> Option<Hello> {
    let mut r = Reader(body);
    r.take(2 + 32)?; // version, random
    r.vec8()?; // session id
    r.vec16()?; // cipher suites
    r.vec8()?; // compression methods
    if r.0.is_empty() {
        return Some(Hello::NoSni);
    }
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        if kind != 0 {
            continue;
        }
        let mut list = Reader(Reader(data).vec16()?);
        while !list.0.is_empty() {
            let name_type = list.u8()?;
            let name = list.vec16()?;
            if name_type == 0 {
                return Some(match std::str::from_utf8(name) {
                    Ok(n) if !n.is_empty() => {
                        Hello::Sni(n.trim_end_matches('.').to_ascii_lowercase())
                    }
                    _ => Hello::NoSni,
                });
            }
        }
    }
    Some(Hello::NoSni)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// A minimal ClientHello with `sni` (none when empty), in one record.
    pub(crate) fn hello(sni: &str) -> Vec<u8> {
        let mut ext = Vec::new();
        if !sni.is_empty() {
            let n = sni.as_bytes();
            let mut list = vec![0u8];
            list.extend((n.len() as u16).to_be_bytes());
            list.extend(n);
            let mut data = (list.len() as u16).to_be_bytes().to_vec();
            data.extend(list);
            ext.extend(0u16.to_be_bytes());
            ext.extend((data.len() as u16).to_be_bytes());
            ext.extend(data);
        }
        // An unrelated extension first (supported_versions).
        let mut exts = vec![0, 43, 0, 3, 2, 3, 4];
        exts.extend(ext);
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0);
        body.extend([0, 2, 0x13, 0x01]);
        body.extend([1, 0]);
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        records(&hs, hs.len())
    }

    /// `hs` split into handshake records of at most `max` bytes each.
    pub(crate) fn records(hs: &[u8], max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for c in hs.chunks(max) {
            out.extend([0x16, 3, 1]);
            out.extend((c.len() as u16).to_be_bytes());
            out.extend(c);
        }
        out
    }

    #[test]
    fn reads_the_server_name() {
        assert_eq!(
            parse(&hello("Web.Example.COM.")),
            Hello::Sni("web.example.com".into())
        );
        assert_eq!(parse(&hello("")), Hello::NoSni);
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Hello::Bad);
        assert_eq!(parse(&[0x16, 3]), Hello::More);
    }

    #[test]
    fn every_prefix_asks_for_more_and_records_may_be_split() {
        let h = hello("a.example.com");
        for n in 0..h.len() {
            assert_eq!(parse(&h[..n]), Hello::More, "prefix {n}");
        }
        let hs = &h[5..];
        let split = records(hs, 7);
        assert_eq!(parse(&split), Hello::Sni("a.example.com".into()));
    }

    /// A real ClientHello from rustls (TLS 1.3 and 1.2, key shares, ALPN-less), as the user's
    /// TLS stack sends it.
    fn rustls_hello(name: &str) -> Vec<u8> {
        use std::sync::Arc;
        use tokio_rustls::rustls::{self, pki_types::ServerName};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let server = ServerName::try_from(name.to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), server).unwrap();
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        out
    }

    /// Bytes read so far up to any offset ask for more (https.rs reads on), the whole gives the
    /// name, also when the handshake is spread over many small records.
    #[test]
    fn a_rustls_hello_split_at_every_offset_gives_its_name() {
        for name in ["web.example.com", "Deep.Sub.Example.ORG", "x.y"] {
            let h = rustls_hello(name);
            let want = Hello::Sni(name.to_ascii_lowercase());
            assert_eq!(parse(&h), want);
            for k in 0..h.len() {
                assert_eq!(parse(&h[..k]), Hello::More, "{name}: prefix {k}");
            }
            for max in [1, 2, 3, 7, 100, 511] {
                assert_eq!(
                    parse(&records(&h[5..], max)),
                    want,
                    "{name}: records of {max}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&b);
            let mut t = vec![0x16, 3, 1];
            t.extend(&b);
            let _ = parse(&t);
        }

        /// A ClientHello read so far up to any offset asks for more; whole, or re-framed into
        /// handshake records of any size, it gives its name lowercased without the trailing dot.
        #[test]
        fn split_hellos_give_the_same_name(
            labels in proptest::collection::vec("[a-zA-Z0-9]{1,12}", 1..5),
            dot in any::<bool>(),
            max in 1usize..300,
        ) {
            let name = labels.join(".");
            let sent = if dot { format!("{name}.") } else { name.clone() };
            let want = || Hello::Sni(name.to_ascii_lowercase());
            let h = hello(&sent);
            for k in 0..h.len() {
                prop_assert_eq!(parse(&h[..k]), Hello::More, "prefix {}", k);
            }
            prop_assert_eq!(parse(&h), want());
            prop_assert_eq!(parse(&records(&h[5..], max)), want());
        }

        #[test]
        fn mutated_hellos_never_panic(i in 0usize..80, v in any::<u8>(), cut in 0usize..200) {
            let mut h = hello("x.example.com");
            let i = i % h.len();
            h[i] = v;
            h.truncate(h.len().saturating_sub(cut % 20));
            let _ = parse(&h);
        }
    }
}
