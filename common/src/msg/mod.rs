//! frp's control and work-connection messages (frp `pkg/msg/msg.go`).
//!
//! Every struct mirrors the Go struct: the JSON key is the Go `json` tag, every field is
//! `omitempty` (absent when zero; a missing key decodes as zero), except struct-typed fields
//! (`Login.client_spec`) which Go always emits. Field order is Go's declaration order, because
//! serde_json serialises in declaration order and golden tests compare bytes.
//!
//! This module holds data only; [`codec`] turns it into bytes.

pub mod codec;
pub mod udp;
pub mod v2;

pub use codec::{read_msg, write_msg, DecodeError, MAX_MSG_LEN};
pub use v2::Wire;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// serde's `skip_serializing_if` for Go's `omitempty` on scalars.
pub fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Fields that carry a credential: the token-derived privilege key, a proxy's secret key
/// (stcp/xtcp/sudp), HTTP password and group key, a visitor's signature. `Debug` shows them as
/// `"***"` (or `""` when unset), so logging a message never logs a secret.
const SECRET_FIELDS: [&str; 5] = ["privilege_key", "sk", "http_pwd", "group_key", "sign_key"];

/// What `Debug` shows of field `name`: the value, or a mask for a set secret.
fn debug_field<'a, T: std::fmt::Debug + Default + PartialEq>(
    name: &str,
    v: &'a T,
) -> &'a dyn std::fmt::Debug {
    if SECRET_FIELDS.contains(&name) && !is_zero(v) {
        &"***"
    } else {
        v
    }
}

/// Emits a message struct whose fields are all `omitempty`, with a `Debug` that masks
/// [`SECRET_FIELDS`].
macro_rules! message {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty => $json:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct $name {
            $(
                $(#[$fm])*
                #[serde(rename = $json, skip_serializing_if = "is_zero")]
                pub $field: $ty,
            )*
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    $(.field(stringify!($field), debug_field(stringify!($field), &self.$field)))*
                    .finish()
            }
        }
    };
}

/// `Login.client_spec`: always present on the wire (Go struct field), normally `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientSpec {
    #[serde(rename = "type", skip_serializing_if = "is_zero")]
    pub kind: String,
    #[serde(rename = "always_auth_pass", skip_serializing_if = "is_zero")]
    pub always_auth_pass: bool,
}

/// frpc's first message on the control connection.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Login {
    #[serde(skip_serializing_if = "is_zero")]
    pub version: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub hostname: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub os: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub arch: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub user: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub privilege_key: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub timestamp: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub run_id: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub client_id: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub metas: BTreeMap<String, String>,
    /// Go emits struct-typed fields even when empty.
    pub client_spec: ClientSpec,
    #[serde(skip_serializing_if = "is_zero")]
    pub pool_count: i64,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("version", &self.version)
            .field("hostname", &self.hostname)
            .field("os", &self.os)
            .field("arch", &self.arch)
            .field("user", &self.user)
            .field(
                "privilege_key",
                debug_field("privilege_key", &self.privilege_key),
            )
            .field("timestamp", &self.timestamp)
            .field("run_id", &self.run_id)
            .field("client_id", &self.client_id)
            .field("metas", &self.metas)
            .field("client_spec", &self.client_spec)
            .field("pool_count", &self.pool_count)
            .finish()
    }
}

message!(
    /// frps's answer to [`Login`]; always sent unencrypted.
    LoginResp { version: String => "version", run_id: String => "run_id", error: String => "error" }
);

message!(
    /// Registers one proxy on frps.
    NewProxy {
        proxy_name: String => "proxy_name",
        proxy_type: String => "proxy_type",
        use_encryption: bool => "use_encryption",
        use_compression: bool => "use_compression",
        bandwidth_limit: String => "bandwidth_limit",
        bandwidth_limit_mode: String => "bandwidth_limit_mode",
        group: String => "group",
        group_key: String => "group_key",
        metas: BTreeMap<String, String> => "metas",
        annotations: BTreeMap<String, String> => "annotations",
        remote_port: i64 => "remote_port",
        custom_domains: Vec<String> => "custom_domains",
        subdomain: String => "subdomain",
        locations: Vec<String> => "locations",
        http_user: String => "http_user",
        http_pwd: String => "http_pwd",
        host_header_rewrite: String => "host_header_rewrite",
        headers: BTreeMap<String, String> => "headers",
        response_headers: BTreeMap<String, String> => "response_headers",
        route_by_http_user: String => "route_by_http_user",
        sk: String => "sk",
        allow_users: Vec<String> => "allow_users",
        multiplexer: String => "multiplexer",
    }
);

message!(
    /// frps's answer to [`NewProxy`]: `remote_addr` on success, `error` otherwise.
    NewProxyResp { proxy_name: String => "proxy_name", remote_addr: String => "remote_addr", error: String => "error" }
);

message!(
    /// frpc removes a proxy.
    CloseProxy { proxy_name: String => "proxy_name" }
);

message!(
    /// First message of a work connection opened by frpc.
    NewWorkConn { run_id: String => "run_id", privilege_key: String => "privilege_key", timestamp: i64 => "timestamp" }
);

message!(
    /// frps asks frpc for one more work connection.
    ReqWorkConn {}
);

message!(
    /// frps hands a work connection to a proxy; raw bytes follow.
    StartWorkConn {
        proxy_name: String => "proxy_name",
        src_addr: String => "src_addr",
        dst_addr: String => "dst_addr",
        src_port: u16 => "src_port",
        dst_port: u16 => "dst_port",
        error: String => "error",
    }
);

message!(
    /// First message of a visitor connection (stcp/sudp/xtcp).
    NewVisitorConn {
        run_id: String => "run_id",
        proxy_name: String => "proxy_name",
        sign_key: String => "sign_key",
        timestamp: i64 => "timestamp",
        use_encryption: bool => "use_encryption",
        use_compression: bool => "use_compression",
    }
);

message!(
    /// frps's answer to [`NewVisitorConn`].
    NewVisitorConnResp { proxy_name: String => "proxy_name", error: String => "error" }
);

message!(
    /// Heartbeat from frpc (control channel) or keepalive on a udp work connection.
    Ping { privilege_key: String => "privilege_key", timestamp: i64 => "timestamp" }
);

message!(
    /// Answer to [`Ping`]; a non-empty `error` makes frpc drop the session.
    Pong { error: String => "error" }
);

/// Go's `*net.UDPAddr` as JSON: `{"IP":"1.2.3.4","Port":5,"Zone":""}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct UdpAddr {
    #[serde(rename = "IP")]
    pub ip: String,
    #[serde(rename = "Port")]
    pub port: i64,
    #[serde(rename = "Zone")]
    pub zone: String,
}

impl UdpAddr {
    /// Converts to a socket address; `None` when the IP text or port is not valid.
    pub fn to_socket_addr(&self) -> Option<std::net::SocketAddr> {
        let ip: std::net::IpAddr = self.ip.parse().ok()?;
        let port = u16::try_from(self.port).ok()?;
        Some(std::net::SocketAddr::new(ip, port))
    }
}

impl From<std::net::SocketAddr> for UdpAddr {
    fn from(a: std::net::SocketAddr) -> Self {
        UdpAddr {
            ip: a.ip().to_string(),
            port: i64::from(a.port()),
            zone: String::new(),
        }
    }
}

/// One datagram on a udp/sudp work connection; `c` is standard base64 with padding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UdpPacket {
    #[serde(rename = "c", with = "b64", skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<u8>,
    #[serde(rename = "l", skip_serializing_if = "Option::is_none")]
    pub local_addr: Option<UdpAddr>,
    #[serde(rename = "r", skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<UdpAddr>,
}

mod b64 {
    use base64::{engine::general_purpose::STANDARD, Engine};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        // Go encodes a nil slice as `null`.
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(Vec::new()),
            Some(s) => STANDARD
                .decode(s.as_bytes())
                .map_err(serde::de::Error::custom),
        }
    }
}

message!(
    /// xtcp: visitor asks frps to arrange a hole punch.
    NatHoleVisitor {
        transaction_id: String => "transaction_id",
        proxy_name: String => "proxy_name",
        pre_check: bool => "pre_check",
        protocol: String => "protocol",
        sign_key: String => "sign_key",
        timestamp: i64 => "timestamp",
        mapped_addrs: Vec<String> => "mapped_addrs",
        assisted_addrs: Vec<String> => "assisted_addrs",
    }
);

message!(
    /// xtcp: proxy side of a hole punch.
    NatHoleClient {
        transaction_id: String => "transaction_id",
        proxy_name: String => "proxy_name",
        sid: String => "sid",
        mapped_addrs: Vec<String> => "mapped_addrs",
        assisted_addrs: Vec<String> => "assisted_addrs",
    }
);

/// A port range inside [`NatHoleDetectBehavior`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortsRange {
    #[serde(skip_serializing_if = "is_zero")]
    pub from: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub to: i64,
}

message!(
    /// xtcp punching behaviour; always emitted inside [`NatHoleResp`].
    NatHoleDetectBehavior {
        role: String => "role",
        mode: i64 => "mode",
        ttl: i64 => "ttl",
        send_delay_ms: i64 => "send_delay_ms",
        /// Milliseconds, despite the key.
        read_timeout: i64 => "read_timeout",
        candidate_ports: Vec<PortsRange> => "candidate_ports",
        send_random_ports: i64 => "send_random_ports",
        listen_random_ports: i64 => "listen_random_ports",
    }
);

/// xtcp: frps's punching instructions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NatHoleResp {
    #[serde(skip_serializing_if = "is_zero")]
    pub transaction_id: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub sid: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub protocol: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub candidate_addrs: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub assisted_addrs: Vec<String>,
    /// Go struct field: always emitted.
    pub detect_behavior: NatHoleDetectBehavior,
    #[serde(skip_serializing_if = "is_zero")]
    pub error: String,
}

message!(
    /// xtcp: session id exchange on the punched path.
    NatHoleSid {
        transaction_id: String => "transaction_id",
        sid: String => "sid",
        response: bool => "response",
        nonce: String => "nonce",
    }
);

message!(
    /// xtcp: punch result report.
    NatHoleReport { sid: String => "sid", success: bool => "success" }
);

/// Every frp message. The v1 type byte of each variant is defined once, in [`codec`].
// Messages live briefly on the control path (never per data chunk); boxing NewProxy would only
// make every match clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Login(Login),
    LoginResp(LoginResp),
    NewProxy(NewProxy),
    NewProxyResp(NewProxyResp),
    CloseProxy(CloseProxy),
    NewWorkConn(NewWorkConn),
    ReqWorkConn(ReqWorkConn),
    StartWorkConn(StartWorkConn),
    NewVisitorConn(NewVisitorConn),
    NewVisitorConnResp(NewVisitorConnResp),
    Ping(Ping),
    Pong(Pong),
    UdpPacket(UdpPacket),
    NatHoleVisitor(NatHoleVisitor),
    NatHoleClient(NatHoleClient),
    NatHoleResp(NatHoleResp),
    NatHoleSid(NatHoleSid),
    NatHoleReport(NatHoleReport),
}

impl Message {
    /// The Go type name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Login(_) => "Login",
            Message::LoginResp(_) => "LoginResp",
            Message::NewProxy(_) => "NewProxy",
            Message::NewProxyResp(_) => "NewProxyResp",
            Message::CloseProxy(_) => "CloseProxy",
            Message::NewWorkConn(_) => "NewWorkConn",
            Message::ReqWorkConn(_) => "ReqWorkConn",
            Message::StartWorkConn(_) => "StartWorkConn",
            Message::NewVisitorConn(_) => "NewVisitorConn",
            Message::NewVisitorConnResp(_) => "NewVisitorConnResp",
            Message::Ping(_) => "Ping",
            Message::Pong(_) => "Pong",
            Message::UdpPacket(_) => "UDPPacket",
            Message::NatHoleVisitor(_) => "NatHoleVisitor",
            Message::NatHoleClient(_) => "NatHoleClient",
            Message::NatHoleResp(_) => "NatHoleResp",
            Message::NatHoleSid(_) => "NatHoleSid",
            Message::NatHoleReport(_) => "NatHoleReport",
        }
    }
}

macro_rules! from_variant {
    ($($v:ident),*) => { $(impl From<$v> for Message { fn from(m: $v) -> Self { Message::$v(m) } })* };
}
from_variant!(
    Login,
    LoginResp,
    NewProxy,
    NewProxyResp,
    CloseProxy,
    NewWorkConn,
    ReqWorkConn,
    StartWorkConn,
    NewVisitorConn,
    NewVisitorConnResp,
    Ping,
    Pong,
    UdpPacket,
    NatHoleVisitor,
    NatHoleClient,
    NatHoleResp,
    NatHoleSid,
    NatHoleReport
);

#[cfg(test)]
mod debug_tests {
    use super::*;

    /// `{:?}` of any message never shows a credential: the token-derived privilege key, a
    /// proxy's secret key, HTTP password or group key, a visitor's signature.
    #[test]
    fn debug_output_redacts_secrets() {
        const S: &str = "SECRET-VALUE";
        let msgs: Vec<Message> = vec![
            Login {
                user: "u".into(),
                privilege_key: S.into(),
                ..Default::default()
            }
            .into(),
            NewProxy {
                proxy_name: "p".into(),
                sk: S.into(),
                http_pwd: format!("{S}2"),
                group_key: format!("{S}3"),
                ..Default::default()
            }
            .into(),
            NewWorkConn {
                run_id: "r".into(),
                privilege_key: S.into(),
                ..Default::default()
            }
            .into(),
            NewVisitorConn {
                sign_key: S.into(),
                ..Default::default()
            }
            .into(),
            Ping {
                privilege_key: S.into(),
                ..Default::default()
            }
            .into(),
            NatHoleVisitor {
                sign_key: S.into(),
                ..Default::default()
            }
            .into(),
        ];
        for m in msgs {
            let text = format!("{m:?} {m:#?}");
            assert!(!text.contains(S), "{text}");
            assert!(text.contains("***"), "a set secret shows as set: {text}");
        }
        // Names and other fields still show; an empty secret shows as empty.
        let text = format!("{:?}", Login::default());
        assert!(text.contains("privilege_key: \"\""), "{text}");
        let text = format!(
            "{:?}",
            NewWorkConn {
                run_id: "r1".into(),
                ..Default::default()
            }
        );
        assert!(text.contains("\"r1\""), "{text}");
    }
}
