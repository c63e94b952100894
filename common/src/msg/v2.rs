//! frp's wire protocol v2 (frp `pkg/proto/wire`, `pkg/msg/wire_v2.go`; frp-protocol.md §2.3,
//! §4.5): the 7-byte magic, `type u16 | flags u16 (0) | length u32 | payload` frames,
//! ClientHello/ServerHello negotiation, the crypto transcript and the control-channel keys.
//! Message frames reuse the v1 JSON bodies; only the framing and the type ids differ.

use super::codec::{decode, encode_body, type_byte, DecodeError, EncodeError};
use super::Message;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// `"FRP\x00\x02\r\n"`, sent by frpc first on every v2 logical connection.
pub const MAGIC: [u8; 7] = *b"FRP\x00\x02\r\n";
/// Frame types.
pub const FRAME_CLIENT_HELLO: u16 = 1;
pub const FRAME_SERVER_HELLO: u16 = 2;
pub const FRAME_MESSAGE: u16 = 16;
/// `DefaultMaxFramePayloadSize`: a payload of exactly this size is allowed.
pub const MAX_FRAME_PAYLOAD: usize = 65536;
pub const FRAME_HEADER_LEN: usize = 8;

/// The AEAD algorithms, in our order of preference.
pub const ALG_AES: &str = "aes-256-gcm";
pub const ALG_XCHACHA: &str = "xchacha20-poly1305";

/// v2 type id <-> v1 type byte (frp `wire_v2.go`).
const IDS: [(u16, u8); 18] = [
    (1, b'o'),
    (2, b'1'),
    (3, b'p'),
    (4, b'2'),
    (5, b'c'),
    (6, b'w'),
    (7, b'r'),
    (8, b's'),
    (9, b'v'),
    (10, b'3'),
    (11, b'h'),
    (12, b'4'),
    (13, b'u'),
    (14, b'i'),
    (15, b'n'),
    (16, b'm'),
    (17, b'5'),
    (18, b'6'),
];

/// The v2 type id of a message.
pub fn type_id(msg: &Message) -> u16 {
    let b = type_byte(msg);
    IDS.iter()
        .find(|(_, x)| *x == b)
        .map(|(id, _)| *id)
        .unwrap_or(0)
}

/// Reads one frame: (frame type, payload).
pub async fn read_frame<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
) -> Result<(u16, Vec<u8>), DecodeError> {
    let mut h = [0u8; FRAME_HEADER_LEN];
    r.read_exact(&mut h).await?;
    let ty = u16::from_be_bytes([h[0], h[1]]);
    let flags = u16::from_be_bytes([h[2], h[3]]);
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
    if flags != 0 {
        return Err(DecodeError::Frame(format!(
            "non-zero frame flags {flags:#06x}"
        )));
    }
    if len > MAX_FRAME_PAYLOAD {
        return Err(DecodeError::Frame(format!(
            "frame payload {len} exceeds {MAX_FRAME_PAYLOAD}"
        )));
    }
    let payload = super::codec::read_body(r, len).await?;
    Ok((ty, payload))
}

/// A frame header: type, zero flags, payload length (at most [`MAX_FRAME_PAYLOAD`]).
fn frame_header(ty: u16, len: usize) -> [u8; FRAME_HEADER_LEN] {
    let mut h = [0u8; FRAME_HEADER_LEN];
    h[..2].copy_from_slice(&ty.to_be_bytes());
    h[4..].copy_from_slice(&(len as u32).to_be_bytes());
    h
}

/// Writes one frame as Go does: the header, then the payload (two writes), then flushes.
pub async fn write_frame<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    ty: u16,
    payload: &[u8],
) -> std::io::Result<()> {
    if payload.len() > MAX_FRAME_PAYLOAD {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "frame payload {} exceeds {MAX_FRAME_PAYLOAD}",
                payload.len()
            ),
        ));
    }
    w.write_all(&frame_header(ty, payload.len())).await?;
    w.write_all(payload).await?;
    w.flush().await
}

/// Decodes a Message frame's payload (`u16 type id | JSON`).
pub fn decode_message(payload: &[u8]) -> Result<Message, DecodeError> {
    if payload.len() < 2 {
        return Err(DecodeError::Frame(
            "message frame shorter than its type id".into(),
        ));
    }
    let id = u16::from_be_bytes([payload[0], payload[1]]);
    let byte = IDS
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, b)| *b)
        .ok_or_else(|| DecodeError::Frame(format!("unknown message type id {id}")))?;
    decode(byte, &payload[2..])
}

/// Reads one Message frame (any other frame type is an error).
pub async fn read_msg<R: AsyncRead + Unpin + ?Sized>(r: &mut R) -> Result<Message, DecodeError> {
    match read_frame(r).await? {
        (FRAME_MESSAGE, p) => decode_message(&p),
        (ty, _) => Err(DecodeError::Frame(format!(
            "expected a message frame, got frame type {ty}"
        ))),
    }
}

/// The payload of a Message frame.
pub fn encode_message(msg: &Message) -> Result<Vec<u8>, EncodeError> {
    let body = encode_body(msg, MAX_FRAME_PAYLOAD - 2)?;
    let mut p = Vec::with_capacity(2 + body.len());
    p.extend_from_slice(&type_id(msg).to_be_bytes());
    p.extend_from_slice(&body);
    Ok(p)
}

/// Writes one Message frame.
pub async fn write_msg<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    msg: &Message,
) -> std::io::Result<()> {
    write_frame(w, FRAME_MESSAGE, &encode_message(msg)?).await
}

/// `wire.ClientHello`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientHello {
    pub bootstrap: Bootstrap,
    pub capabilities: Capabilities,
}

/// Informational; frps ignores it. Every field omitempty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Bootstrap {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub transport: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
    #[serde(rename = "tcpMux", skip_serializing_if = "std::ops::Not::not")]
    pub tcp_mux: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    pub message: MessageCaps,
    pub crypto: CryptoCaps,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageCaps {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub codecs: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CryptoCaps {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<String>,
    /// Standard base64 of 32 bytes.
    #[serde(rename = "clientRandom", skip_serializing_if = "String::is_empty")]
    pub client_random: String,
}

/// `wire.ServerHello`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerHello {
    pub selected: Selected,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Selected {
    pub message: SelectedMessage,
    pub crypto: SelectedCrypto,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SelectedMessage {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub codec: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SelectedCrypto {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub algorithm: String,
    #[serde(rename = "serverRandom", skip_serializing_if = "String::is_empty")]
    pub server_random: String,
}

fn random_b64() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

fn decode_random(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .ok()
        .filter(|b| b.len() == 32)
}

/// frpc's ClientHello (both algorithms offered; AES first: ring's AES-GCM is hardware-backed on
/// the CPUs we build for, and a Go frps picks the client's first supported choice).
pub fn client_hello(tls: bool, tcp_mux: bool) -> ClientHello {
    ClientHello {
        bootstrap: Bootstrap {
            transport: "tcp".into(),
            tls,
            tcp_mux,
        },
        capabilities: Capabilities {
            message: MessageCaps {
                codecs: vec!["json".into()],
            },
            crypto: CryptoCaps {
                algorithms: vec![ALG_AES.into(), ALG_XCHACHA.into()],
                client_random: random_b64(),
            },
        },
    }
}

/// frps's answer to a ClientHello: the first of the client's algorithms we support, or an error.
pub fn server_hello(ch: &ClientHello) -> ServerHello {
    let refuse = |error: &str| ServerHello {
        selected: Selected {
            message: SelectedMessage {
                codec: "json".into(),
            },
            crypto: SelectedCrypto::default(),
        },
        error: error.into(),
    };
    if !ch.capabilities.message.codecs.iter().any(|c| c == "json") {
        return refuse("unsupported message codec: json is required");
    }
    if decode_random(&ch.capabilities.crypto.client_random).is_none() {
        return refuse("invalid client random: 32 bytes are required");
    }
    let Some(alg) = ch
        .capabilities
        .crypto
        .algorithms
        .iter()
        .find(|a| *a == ALG_AES || *a == ALG_XCHACHA)
    else {
        return refuse("no supported crypto algorithm");
    };
    ServerHello {
        selected: Selected {
            message: SelectedMessage {
                codec: "json".into(),
            },
            crypto: SelectedCrypto {
                algorithm: alg.clone(),
                server_random: random_b64(),
            },
        },
        error: String::new(),
    }
}

/// frpc's checks of a ServerHello against its ClientHello; returns the algorithm.
pub fn check_server_hello(ch: &ClientHello, sh: &ServerHello) -> Result<String, String> {
    if !sh.error.is_empty() {
        return Err(sh.error.clone());
    }
    if sh.selected.message.codec != "json" {
        return Err(format!(
            "unsupported message codec {:?}",
            sh.selected.message.codec
        ));
    }
    let alg = &sh.selected.crypto.algorithm;
    if !ch.capabilities.crypto.algorithms.contains(alg) || (alg != ALG_AES && alg != ALG_XCHACHA) {
        return Err(format!(
            "server selected an algorithm we did not offer: {alg:?}"
        ));
    }
    if decode_random(&sh.selected.crypto.server_random).is_none() {
        return Err("invalid server random: 32 bytes are required".into());
    }
    Ok(alg.clone())
}

/// `HashCryptoTranscript` over the exact ClientHello and ServerHello payload bytes.
pub fn transcript(chp: &[u8], shp: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"frp wire v2 crypto transcript");
    for (label, p) in [(&b"client hello"[..], chp), (&b"server hello"[..], shp)] {
        ctx.update(&[0]);
        ctx.update(label);
        ctx.update(&[0]);
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

struct Len32;
impl ring::hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// HKDF-SHA256(secret = token, salt = transcript, info, 32).
pub fn hkdf32(secret: &[u8], salt: &[u8], info: &str) -> [u8; 32] {
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, salt).extract(secret);
    let mut out = [0u8; 32];
    let infos = [info.as_bytes()];
    // Cannot fail: 32 bytes is far below HKDF-SHA256's 255 * 32 limit.
    if let Ok(okm) = prk.expand(&infos, Len32) {
        let _ = okm.fill(&mut out);
    }
    out
}

/// The control channel keys: (client-to-server, server-to-client).
pub fn control_keys(token: &str, transcript: &[u8; 32], alg: &str) -> ([u8; 32], [u8; 32]) {
    (
        hkdf32(
            token.as_bytes(),
            transcript,
            &format!("frp wire v2 control aead {alg} client-to-server"),
        ),
        hkdf32(
            token.as_bytes(),
            transcript,
            &format!("frp wire v2 control aead {alg} server-to-client"),
        ),
    )
}

/// The outcome of a ClientHello/ServerHello exchange: what keys the control channel.
#[derive(Debug, Clone)]
pub struct Negotiated {
    pub alg: String,
    pub transcript: [u8; 32],
}

/// Which framing a logical connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wire {
    #[default]
    V1,
    V2,
}

impl Wire {
    pub fn name(self) -> &'static str {
        match self {
            Wire::V1 => "v1",
            Wire::V2 => "v2",
        }
    }

    /// Reads one message in this framing.
    pub async fn read<R: AsyncRead + Unpin + ?Sized>(
        self,
        r: &mut R,
    ) -> Result<Message, DecodeError> {
        match self {
            Wire::V1 => super::codec::read_msg(r).await,
            Wire::V2 => read_msg(r).await,
        }
    }

    /// One whole frame of `msg` in this framing, refused when over the framing's limit (for
    /// callers that drop what does not fit rather than fail the connection).
    pub fn encode(self, msg: &Message) -> Result<Vec<u8>, EncodeError> {
        match self {
            Wire::V1 => {
                let mut b = bytes::BytesMut::new();
                super::codec::encode(msg, &mut b)?;
                Ok(b.to_vec())
            }
            Wire::V2 => {
                let payload = encode_message(msg)?;
                let mut f = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
                f.extend_from_slice(&frame_header(FRAME_MESSAGE, payload.len()));
                f.extend_from_slice(&payload);
                Ok(f)
            }
        }
    }

    /// Writes one message in this framing.
    pub async fn write<W: AsyncWrite + Unpin + ?Sized>(
        self,
        w: &mut W,
        msg: &Message,
    ) -> std::io::Result<()> {
        match self {
            Wire::V1 => super::codec::write_msg(w, msg).await,
            Wire::V2 => write_msg(w, msg).await,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn spec_vectors() {
        let t = transcript(br#"{"a":1}"#, br#"{"b":2}"#);
        assert_eq!(
            hex::encode(t),
            "78370d88a15058b8c472aaa4a622bdcfb6a007f31cda8bea050ddc9b914c4349"
        );
        let (c2s, s2c) = control_keys("12345678", &t, ALG_AES);
        assert_eq!(
            hex::encode(c2s),
            "2d608398c3829ddf460be969a041ea7acc69e6411c57cffee98ce8644dc5a0c6"
        );
        assert_eq!(
            hex::encode(s2c),
            "87d5a2a4bd327175c7ec3508fadd7cc6bbb36196dc34a35e1676937fc517c3c5"
        );
    }

    #[tokio::test]
    async fn frames_match_the_spec_example_and_round_trip() {
        let login = Message::Login(crate::msg::Login {
            version: "0.70.1".into(),
            ..Default::default()
        });
        let mut out = Vec::new();
        write_msg(&mut out, &login).await.unwrap();
        assert_eq!(&out[..6], &[0x00, 0x10, 0x00, 0x00, 0x00, 0x00]);
        assert_eq!(&out[8..10], &[0x00, 0x01], "Login's type id");
        let len = u32::from_be_bytes([out[4], out[5], out[6], out[7]]) as usize;
        assert_eq!(len, out.len() - 8);
        assert!(out[10..].starts_with(br#"{"version":"0.70.1""#));
        assert_eq!(read_msg(&mut &out[..]).await.unwrap(), login);
        // Every message type survives a round trip with its own id.
        for (id, byte) in IDS {
            let m = decode(byte, b"{}").unwrap();
            assert_eq!(type_id(&m), id);
            let mut b = Vec::new();
            write_msg(&mut b, &m).await.unwrap();
            assert_eq!(read_msg(&mut &b[..]).await.unwrap(), m);
        }
    }

    #[tokio::test]
    async fn bad_frames_are_errors() {
        let frame = |ty: u16, flags: u16, len: u32, payload: &[u8]| {
            let mut v = Vec::new();
            v.extend_from_slice(&ty.to_be_bytes());
            v.extend_from_slice(&flags.to_be_bytes());
            v.extend_from_slice(&len.to_be_bytes());
            v.extend_from_slice(payload);
            v
        };
        for (bytes, want) in [
            (frame(16, 1, 2, b"\x00\x01"), "flags"),
            (frame(16, 0, 65537, b""), "exceeds"),
            (frame(16, 0, 1, b"\x00"), "shorter"),
            (frame(16, 0, 4, b"\x00\x63{}"), "unknown message type id 99"),
            (frame(2, 0, 2, b"{}"), "expected a message frame"),
        ] {
            let err = read_msg(&mut &bytes[..]).await.unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        // Exactly 65536 bytes is allowed by the framing.
        let big = frame(1, 0, 65536, &vec![b' '; 65536]);
        assert_eq!(read_frame(&mut &big[..]).await.unwrap().1.len(), 65536);
    }

    proptest::proptest! {
        #[test]
        fn v2_reads_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let _ = read_msg(&mut &bytes[..]).await;
                let _ = read_frame(&mut &bytes[..]).await;
                let _ = decode_message(&bytes);
                let _ = serde_json::from_slice::<ClientHello>(&bytes).map(|ch| server_hello(&ch));
            });
        }

        #[test]
        fn aead_reads_of_random_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            use tokio::io::AsyncReadExt;
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                for alg in [ALG_AES, ALG_XCHACHA] {
                    let mut r = crate::io::AeadStream::new(&bytes[..], alg, &[1; 32], &[2; 32]).unwrap();
                    let mut out = Vec::new();
                    proptest::prop_assert!(r.read_to_end(&mut out).await.is_err() || out.is_empty());
                }
                Ok(())
            })?;
        }
    }

    #[test]
    fn hello_negotiation() {
        let ch = client_hello(true, true);
        let json = serde_json::to_string(&ch).unwrap();
        assert!(json.starts_with(
            r#"{"bootstrap":{"transport":"tcp","tls":true,"tcpMux":true},"capabilities":{"message":{"codecs":["json"]},"crypto":{"algorithms":["aes-256-gcm","xchacha20-poly1305"],"clientRandom":""#
        ), "{json}");
        let sh = server_hello(&ch);
        assert_eq!(check_server_hello(&ch, &sh).unwrap(), ALG_AES);
        let mut only_x = ch.clone();
        only_x.capabilities.crypto.algorithms = vec!["foo".into(), ALG_XCHACHA.into()];
        assert_eq!(server_hello(&only_x).selected.crypto.algorithm, ALG_XCHACHA);
        let mut bad = ch;
        bad.capabilities.crypto.client_random = "short".into();
        let sh = server_hello(&bad);
        assert!(!sh.error.is_empty());
        assert_eq!(
            serde_json::to_string(&sh).unwrap(),
            format!(
                r#"{{"selected":{{"message":{{"codec":"json"}},"crypto":{{}}}},"error":"{}"}}"#,
                sh.error
            )
        );
    }
}
