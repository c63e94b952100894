//! Header rules of the vhost HTTP server, without IO: hop-by-hop headers and upgrades (Go
//! `httputil.ReverseProxy`), Basic credentials (Go `parseBasicAuth`, frp `CheckAuth`), and the
//! decoded path routing uses (Go `URL.Path`).

use hyper::header::{self, HeaderMap, HeaderName};

pub(super) use common::http::{remove_hop_by_hop, wants_upgrade};

/// Both `Content-Length` and `Transfer-Encoding` (a smuggling attempt), should hyper keep both
/// (it drops `Content-Length` today; [`super::framing`] sees the raw head).
pub(super) fn has_conflicting_length(h: &HeaderMap) -> bool {
    h.contains_key(header::CONTENT_LENGTH) && h.contains_key(header::TRANSFER_ENCODING)
}

/// A `Transfer-Encoding` other than exactly `chunked` (`gzip, chunked`, `identity`, ...): hyper
/// reads such a body as chunked and would forward it as plain chunked, dropping the other
/// coding, so the backend would misread it. Go answers 501 "unsupported transfer encoding".
pub(super) fn has_unsupported_transfer_encoding(h: &HeaderMap) -> bool {
    let mut values = h.get_all(header::TRANSFER_ENCODING).iter();
    match (values.next(), values.next()) {
        (None, _) => false,
        (Some(v), None) => !v
            .to_str()
            .is_ok_and(|t| t.trim().eq_ignore_ascii_case("chunked")),
        (Some(_), Some(_)) => true,
    }
}

pub(super) fn header_str<'a>(h: &'a HeaderMap, name: &HeaderName) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Go's `parseBasicAuth`: case-insensitive `Basic ` prefix, base64, split at the first `:`.
pub(crate) fn parse_basic(v: &str) -> Option<(String, String)> {
    let prefix = v.get(..6)?;
    if !prefix.eq_ignore_ascii_case("basic ") {
        return None;
    }
    let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &v[6..]).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// The Basic credentials that route and authorize a request: from `Proxy-Authorization` for a
/// proxy-style request (falling back to `Authorization`, as frp's routing does), else from
/// `Authorization`.
pub(super) fn credentials(h: &HeaderMap, proxy_style: bool) -> Option<(String, String)> {
    let www = || parse_basic(header_str(h, &header::AUTHORIZATION));
    if proxy_style {
        parse_basic(header_str(h, &header::PROXY_AUTHORIZATION)).or_else(www)
    } else {
        www()
    }
}

/// Whether `creds` are the route's `want` (`None` = no check), in constant time.
pub(crate) fn credentials_match(
    want: Option<&(String, String)>,
    creds: Option<&(String, String)>,
) -> bool {
    let Some((user, pwd)) = want else {
        return true;
    };
    let Some((u, p)) = creds else {
        return false;
    };
    let ok_u: bool = subtle::ConstantTimeEq::ct_eq(u.as_bytes(), user.as_bytes()).into();
    let ok_p: bool = subtle::ConstantTimeEq::ct_eq(p.as_bytes(), pwd.as_bytes()).into();
    ok_u & ok_p
}

/// Go's `URL.Path`: the percent-decoded path; `None` for a bad escape (Go answers 400).
pub(super) fn decode_path(p: &str) -> Option<String> {
    let b = p.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let h = hex(*b.get(i + 1)?)?;
            let l = hex(*b.get(i + 2)?)?;
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}
