//! What the two web pages share (issue 19): frps's dashboard and frpc's admin page are
//! server-rendered with minijinja from a view model of figures and tables ([`View`]), and
//! the same model is served as JSON (`/ui/state.json`) for `app.js`, which polls it and
//! redraws the figures and tables with `textContent` (never HTML). Assets are embedded
//! (`include_str!`); the per-proxy charts are SVG drawn here. Pages carry a strict
//! Content-Security-Policy (scripts and styles only from this server, no inline script).
//!
//! Not here: routing and what the tables hold (frps `ui.rs`, frpc `ui.rs`), auth and the
//! request limits (`http::serve`, in front of every page and asset).

use crate::http::{reply, Resp};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use hyper::StatusCode;
use serde::Serialize;

/// The template engine, for the binaries' page code.
pub use minijinja;

/// The layout both pages extend.
pub const BASE_HTML: &str = include_str!("ui/base.html");
/// The figures and table macros.
pub const MACROS_HTML: &str = include_str!("ui/macros.html");
/// The stylesheet, `/ui/style.css`.
pub const STYLE_CSS: &str = include_str!("ui/style.css");
/// The live refresh, `/ui/app.js`.
pub const APP_JS: &str = include_str!("ui/app.js");

/// `webServer.assetsDir` (frp `assets.Load` and `server/api_router.go`/`client/api_router.go`):
/// files from that directory under `/static/` (a directory answers with its `index.html`), and
/// `/` redirects there (301), as frp does, so frp's own web UI built into that directory runs
/// against our frp-compatible API. Behind the same Basic auth as every route. Only regular
/// files inside the directory: `..`, encoded or not, and symlinks that lead out of it are 404;
/// unlike Go's `http.FileServer`, no directory listings.
#[derive(Debug, Clone)]
pub struct AssetsDir(std::path::PathBuf);

/// Largest file `webServer.assetsDir` serves, bytes (frp's built UI is about 1 MiB).
pub const MAX_ASSET: u64 = 32 << 20;

impl AssetsDir {
    /// `None` when `dir` is empty (the built-in pages).
    pub fn new(dir: &str) -> Option<AssetsDir> {
        if dir.is_empty() {
            return None;
        }
        if !std::path::Path::new(dir).is_dir() {
            tracing::warn!("webServer.assetsDir {dir:?} is not a directory: /static/ answers 404");
        }
        Some(AssetsDir(dir.into()))
    }

    /// The answer when `path` is `/` or under `/static/`; `None` for every other route.
    pub async fn route(&self, method: &hyper::Method, path: &str) -> Option<Resp> {
        if path == "/" {
            let mut r = reply(StatusCode::MOVED_PERMANENTLY, "");
            r.headers_mut()
                .insert(LOCATION, HeaderValue::from_static("/static/"));
            return Some(r);
        }
        let rest = path.strip_prefix("/static/")?;
        if method != hyper::Method::GET && method != hyper::Method::HEAD {
            return Some(reply(StatusCode::METHOD_NOT_ALLOWED, ""));
        }
        let not_found = || reply(StatusCode::NOT_FOUND, "404 page not found\n");
        let Some((file, dir)) = self.file(rest).await else {
            return Some(not_found());
        };
        // As Go's FileServer: a directory named without its trailing slash is redirected, so
        // that relative links in its index.html resolve inside it.
        if dir && !rest.is_empty() && !rest.ends_with('/') {
            let mut r = reply(StatusCode::MOVED_PERMANENTLY, "");
            if let Ok(v) = HeaderValue::from_str(&format!("{path}/")) {
                r.headers_mut().insert(LOCATION, v);
            }
            return Some(r);
        }
        // Answers are whole bodies read into memory: a web UI's files are small, anything
        // larger is refused rather than read.
        if tokio::fs::metadata(&file)
            .await
            .map_or(true, |m| m.len() > MAX_ASSET)
        {
            return Some(reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("asset larger than {} MiB\n", MAX_ASSET >> 20),
            ));
        }
        let Ok(body) = tokio::fs::read(&file).await else {
            return Some(not_found());
        };
        let mime = mime_guess::from_path(&file).first_or_octet_stream();
        let mut r = reply(StatusCode::OK, body);
        let utf8 = mime.type_() == "text" || mime.essence_str() == "application/javascript";
        let ct = if utf8 {
            format!("{}; charset=utf-8", mime.essence_str())
        } else {
            mime.essence_str().to_owned()
        };
        if let Ok(v) = HeaderValue::from_str(&ct) {
            r.headers_mut().insert(CONTENT_TYPE, v);
        }
        Some(r)
    }

    /// The regular file `rest` (percent-encoded, relative to the directory) names inside the
    /// directory, or its `index.html` for a directory (then `true`).
    async fn file(&self, rest: &str) -> Option<(std::path::PathBuf, bool)> {
        let decoded = crate::http::percent_decode_path(rest)?;
        let mut p = self.0.clone();
        for seg in decoded.split('/').filter(|s| !s.is_empty()) {
            if seg == "." || seg == ".." || seg.contains('\\') {
                return None;
            }
            p.push(seg);
        }
        let root = tokio::fs::canonicalize(&self.0).await.ok()?;
        let mut real = tokio::fs::canonicalize(&p).await.ok()?;
        let dir = tokio::fs::metadata(&real).await.ok()?.is_dir();
        if dir {
            real = tokio::fs::canonicalize(real.join("index.html"))
                .await
                .ok()?;
        }
        (real.starts_with(&root) && tokio::fs::metadata(&real).await.ok()?.is_file())
            .then_some((real, dir))
    }
}

/// One figure of an overview (`Uptime: 3h 2m`); `id` names it for the live refresh.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub id: &'static str,
    pub label: &'static str,
    pub value: String,
}

impl Figure {
    pub fn new(id: &'static str, label: &'static str, value: impl ToString) -> Figure {
        Figure {
            id,
            label,
            value: value.to_string(),
        }
    }
}

/// One table cell: its text, and optionally a status look (`ok`, `bad`, `warn`, `off`) or
/// a chart (an image URL, with the text as its alternative).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cell {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
}

impl Cell {
    pub fn text(t: impl ToString) -> Cell {
        Cell {
            text: t.to_string(),
            ..Cell::default()
        }
    }

    /// A status badge.
    pub fn status(t: impl ToString, class: &'static str) -> Cell {
        Cell {
            text: t.to_string(),
            class: Some(class),
            chart: None,
        }
    }

    /// A chart image at `url`, described by `alt`.
    pub fn chart(url: String, alt: String) -> Cell {
        Cell {
            text: alt,
            class: None,
            chart: Some(url),
        }
    }
}

/// A table of the page, refreshed as a whole. `key` of a row is its first cell.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    /// The element id (`proxies-tcp`).
    pub id: String,
    /// The element (`group-<name>`) that holds it: a table that appears later is added there,
    /// one that goes is removed.
    pub group: &'static str,
    pub caption: String,
    pub head: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
    /// Shown instead of the rows when there are none.
    pub empty: &'static str,
}

/// What a page shows that changes: the figures and the tables.
#[derive(Debug, Clone, Default, Serialize)]
pub struct View {
    pub figures: Vec<Figure>,
    pub tables: Vec<Table>,
}

/// Whether a request path is one of the shared assets; the response if so.
pub fn asset(path: &str) -> Option<Resp> {
    let (body, ty) = match path {
        "/ui/style.css" => (STYLE_CSS, "text/css; charset=utf-8"),
        "/ui/app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        _ => return None,
    };
    let mut r = reply(StatusCode::OK, body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ty));
    Some(secured(r, "private, max-age=300"))
}

/// The headers every page, asset and chart carries: no framing, no sniffing, only this
/// server's scripts and styles, no referrer to other sites (`no-referrer` would make the
/// browser send `Origin: null` on the forms' POST, which the origin check refuses), and no
/// caching by shared caches (they sit behind auth).
fn secured(mut r: Resp, cache: &'static str) -> Resp {
    let h = r.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// An HTML page (`code` lets a refused form come back as 400 with its errors shown).
pub fn page(code: StatusCode, html: String) -> Resp {
    let mut r = reply(code, html);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secured(r, "no-store")
}

/// The view as JSON, for `app.js`.
pub fn state<T: Serialize>(v: &T) -> Resp {
    secured(crate::http::json(StatusCode::OK, v), "no-store")
}

/// An SVG image.
pub fn svg(body: String) -> Resp {
    let mut r = reply(StatusCode::OK, body);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml; charset=utf-8"),
    );
    secured(r, "private, max-age=60")
}

/// `303 See Other` to `location` (after a form's POST, so a reload does not post again).
pub fn see_other(location: &str) -> Resp {
    let mut r = reply(StatusCode::SEE_OTHER, "");
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(LOCATION, v);
    }
    secured(r, "no-store")
}

/// A template environment with the base layout and `page` (the binary's own page template),
/// HTML auto-escaping on (minijinja's default for `.html` names).
pub fn environment(page: &'static str) -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    // Both are compiled into the binary; a mistake in them shows in every page test.
    if let Err(e) = env.add_template("base.html", BASE_HTML) {
        tracing::error!(error = %e, "web ui: base template");
    }
    if let Err(e) = env.add_template("macros.html", MACROS_HTML) {
        tracing::error!(error = %e, "web ui: macros template");
    }
    if let Err(e) = env.add_template("page.html", page) {
        tracing::error!(error = %e, "web ui: page template");
    }
    env
}

/// Renders `page.html` with `ctx`; a template error is a 500 that says so.
pub fn render(env: &minijinja::Environment<'_>, code: StatusCode, ctx: minijinja::Value) -> Resp {
    match env.get_template("page.html").and_then(|t| t.render(ctx)) {
        Ok(html) => page(code, html),
        Err(e) => {
            tracing::error!(error = %e, "web ui: render");
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "page could not be rendered\n",
            )
        }
    }
}

/// A secret for the pages' forms (CSRF): a form's POST must carry it back, and only a page
/// served to an authenticated, same-origin reader has it.
#[derive(Clone)]
pub struct FormToken(String);

impl std::fmt::Debug for FormToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FormToken(..)")
    }
}

impl Default for FormToken {
    fn default() -> Self {
        let mut b = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
        FormToken(hex::encode(b))
    }
}

impl FormToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this token (constant time).
    pub fn matches(&self, given: &str) -> bool {
        subtle::ConstantTimeEq::ct_eq(given.as_bytes(), self.0.as_bytes()).into()
    }
}

/// Refuses a page form's POST that is cross-site (see `http::refuse_cross_site`) or does not
/// carry `token` in its `token` field.
pub fn refuse_form<B>(
    req: &hyper::Request<B>,
    fields: &[(String, String)],
    token: &FormToken,
) -> Option<Resp> {
    if let Some(r) = crate::http::refuse_cross_site(req) {
        return Some(r);
    }
    let given = field(fields, "token").unwrap_or("");
    (!token.matches(given)).then(|| {
        crate::http::error(
            StatusCode::FORBIDDEN,
            "form refused: its token is missing or stale; reload the page and try again",
        )
    })
}

/// A form body (`application/x-www-form-urlencoded`) as pairs.
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (
                crate::http::percent_decode(k),
                crate::http::percent_decode(v),
            )
        })
        .collect()
}

/// The first value of `key` in form or query pairs.
pub fn field<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Bytes for people: `0 B`, `1.5 KiB`, `12.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A duration for people: `45s`, `3m 20s`, `2h 5m`, `4d 3h`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86400,
        secs % 86400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// A UTC time for people (`2026-11-30 10:25:30 UTC`); 0 is `never`.
pub fn time(unix: i64) -> String {
    if unix <= 0 {
        return "never".into();
    }
    let (y, mo, d) = crate::clock::civil(unix.div_euclid(86400));
    let rem = unix.rem_euclid(86400);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A path-safe query value (`?proxy=` of a chart).
pub fn query_value(s: &str) -> String {
    crate::http::query_escape(s)
}

/// One day of a traffic chart.
#[derive(Debug, Clone)]
pub struct Day {
    /// `11-30`.
    pub label: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// A bar chart of traffic per day, in (blue) and out (green) side by side, oldest day first,
/// with a `<title>` and a `<desc>` listing every figure for screen readers.
pub fn traffic_chart(title: &str, days: &[Day]) -> String {
    use std::fmt::Write;
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let (w, h, top, bottom) = (28.0_f64, 64.0_f64, 4.0_f64, 14.0_f64);
    let width = w * days.len().max(1) as f64;
    let plot = h - top - bottom;
    let max = days
        .iter()
        .map(|d| d.bytes_in.max(d.bytes_out))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let desc: Vec<String> = days
        .iter()
        .map(|d| {
            format!(
                "{}: in {}, out {}",
                d.label,
                bytes(d.bytes_in),
                bytes(d.bytes_out)
            )
        })
        .collect();
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {h}" width="{width}" height="{h}" role="img" aria-label="{t}"><title>{t}</title><desc>{d}</desc><rect width="{width}" height="{h}" fill="#ffffff"/>"##,
        t = esc(title),
        d = esc(&desc.join("; ")),
    );
    for (i, d) in days.iter().enumerate() {
        let x = i as f64 * w;
        for (j, (v, color)) in [(d.bytes_in, "#1d4ed8"), (d.bytes_out, "#15803d")]
            .into_iter()
            .enumerate()
        {
            // A day with any traffic shows at least a sliver.
            let bh = if v == 0 {
                0.0
            } else {
                (v as f64 / max * plot).max(1.5)
            };
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="10" height="{bh:.1}" fill="{color}"/>"#,
                x + 3.0 + j as f64 * 11.0,
                top + plot - bh
            );
        }
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="8" text-anchor="middle" fill="#374151" font-family="sans-serif">{}</text>"##,
            x + w / 2.0,
            h - 3.0,
            esc(&d.label)
        );
    }
    let _ = write!(
        s,
        r##"<line x1="0" y1="{y:.1}" x2="{width}" y2="{y:.1}" stroke="#9ca3af" stroke-width="1"/></svg>"##,
        y = top + plot
    );
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn figures_for_people() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(3725), "1h 2m");
        assert_eq!(duration(90061), "1d 1h");
        assert_eq!(time(0), "never");
        assert_eq!(time(86400 + 61), "1970-01-02 00:01:01 UTC");
    }

    #[test]
    fn chart_escapes_its_text() {
        let days = [Day {
            label: "<b>".into(),
            bytes_in: 10,
            bytes_out: 0,
        }];
        let svg = traffic_chart("<script>alert(1)</script>", &days);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains("&lt;b&gt;: in 10 B, out 0 B"));
    }

    #[test]
    fn form_tokens() {
        let t = FormToken::default();
        assert!(t.matches(t.as_str()));
        assert!(!t.matches(""));
        assert_ne!(t.as_str(), FormToken::default().as_str());
        let f = form(b"token=a%2Bb&config=x+%3D+1&empty=");
        assert_eq!(field(&f, "token"), Some("a+b"));
        assert_eq!(field(&f, "config"), Some("x = 1"));
        assert_eq!(field(&f, "empty"), Some(""));
    }
}
