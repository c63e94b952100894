//! `static_file` (frp `static_file.go`: gorilla mux + Go's `http.FileServer`): files and
//! directory listings under `localPath`, at `/<stripPrefix>/`, GET only, Basic auth when
//! `httpUser`/`httpPassword` are set (401 after frp's 200 ms delay).
//!
//! Serving follows Go's `FileServer`: a directory without its trailing slash is redirected,
//! `index.html` is served for a directory that has one, otherwise a listing; single byte ranges
//! get 206; content types come from the extension (text sniffed otherwise). Unlike Go's
//! `http.Dir`, a path never leaves `localPath`: `..` (also percent-encoded) is resolved inside
//! the root, and a symlink whose target is outside the root is answered 404.
//!
//! Whole files and listings are gzipped when the client accepts gzip (frp's gzip wrapper; frp
//! also gzips ranges and error pages, we do not). Not done: multi-range requests (answered with
//! the whole file, which RFC 9110 allows).

use super::{basic_ok, Body, BoxError, PluginError, AUTH_FAIL_DELAY};
use bytes::Bytes;
use common::config::PluginConfig;
use common::io::BoxStream;
use http_body_util::BodyExt;
use hyper::header::{
    HeaderValue, ACCEPT_ENCODING, ACCEPT_RANGES, AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH,
    CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tracing::{debug, warn};

#[derive(Debug)]
struct Settings {
    /// `localPath`, canonical (symlinks resolved), so a served path can be checked against it.
    root: PathBuf,
    /// `/<stripPrefix>/` or `/`.
    prefix: String,
    user: String,
    password: String,
}

#[derive(Debug)]
pub(crate) struct StaticFile {
    s: Arc<Settings>,
}

impl StaticFile {
    pub(crate) fn new(c: &PluginConfig) -> Result<Self, PluginError> {
        if c.local_path.is_empty() {
            return Err(PluginError::Invalid(
                "static_file",
                "localPath is required".into(),
            ));
        }
        let root = std::fs::canonicalize(&c.local_path).map_err(|e| {
            PluginError::Invalid("static_file", format!("localPath {}: {e}", c.local_path))
        })?;
        if !root.is_dir() {
            return Err(PluginError::Invalid(
                "static_file",
                format!("localPath {} is not a directory", c.local_path),
            ));
        }
        let prefix = if c.strip_prefix.is_empty() {
            "/".to_owned()
        } else {
            format!("/{}/", c.strip_prefix)
        };
        Ok(StaticFile {
            s: Arc::new(Settings {
                root,
                prefix,
                user: c.http_user.clone(),
                password: c.http_password.0.clone(),
            }),
        })
    }

    pub(crate) async fn serve(&self, conn: BoxStream) {
        let s = self.s.clone();
        let svc = hyper::service::service_fn(move |req| {
            let s = s.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(req, &s).await) }
        });
        super::serve_http1(conn, svc, "static_file").await;
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(
        http_body_util::Full::new(body.into())
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

fn not_found() -> Response<Body> {
    super::text(StatusCode::NOT_FOUND, "404 page not found")
}

fn redirect(to: &str) -> Response<Body> {
    let mut r = full(StatusCode::MOVED_PERMANENTLY, Bytes::new());
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

async fn handle<B>(req: Request<B>, s: &Settings) -> Response<Body> {
    let raw_path = req.uri().path();
    let Some(rest) = raw_path.strip_prefix(s.prefix.as_str()) else {
        return not_found();
    };
    if req.method() != Method::GET {
        return full(StatusCode::METHOD_NOT_ALLOWED, Bytes::new());
    }
    let offered = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    if !basic_ok(offered, &s.user, &s.password) {
        warn!(path = raw_path, "static_file: wrong credentials, 401");
        tokio::time::sleep(AUTH_FAIL_DELAY).await;
        let mut r = super::text(StatusCode::UNAUTHORIZED, "Unauthorized");
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Restricted\""),
        );
        return r;
    }
    let gzip = req
        .headers()
        .get(ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("gzip"));
    let Some(decoded) = common::http::percent_decode_path(rest) else {
        return super::text(StatusCode::BAD_REQUEST, "400 Bad Request");
    };
    let url_path = format!("/{decoded}");
    if url_path.ends_with("/index.html") {
        return redirect("./");
    }
    let Some(rel) = clean(&url_path) else {
        warn!(path = raw_path, "static_file: bad path refused");
        return not_found();
    };
    let path = match tokio::fs::canonicalize(s.root.join(&rel)).await {
        Ok(p) => p,
        Err(e) => return io_error(&e),
    };
    if !path.starts_with(&s.root) {
        warn!(
            path = raw_path,
            "static_file: path leaves localPath (symlink), refused"
        );
        return not_found();
    }
    let meta = match tokio::fs::metadata(&path).await {
        Ok(m) => m,
        Err(e) => return io_error(&e),
    };
    let base = url_path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    if meta.is_dir() {
        if !url_path.ends_with('/') {
            return redirect(&format!("{base}/"));
        }
        let index = tokio::fs::canonicalize(path.join("index.html")).await.ok();
        let index = match index {
            Some(i) if i.starts_with(&s.root) => tokio::fs::metadata(&i)
                .await
                .is_ok_and(|m| m.is_file())
                .then_some(i),
            _ => None,
        };
        if let Some(index) = index {
            return serve_file(&index, req.headers().get(RANGE), gzip).await;
        }
        return listing(&path, gzip).await;
    }
    if url_path.ends_with('/') {
        return redirect(&format!("../{base}"));
    }
    serve_file(&path, req.headers().get(RANGE), gzip).await
}

fn io_error(e: &std::io::Error) -> Response<Body> {
    match e.kind() {
        std::io::ErrorKind::NotFound => not_found(),
        std::io::ErrorKind::PermissionDenied => super::text(StatusCode::FORBIDDEN, "403 Forbidden"),
        _ => super::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error",
        ),
    }
}

/// Go's `path.Clean` on a rooted path, as a relative path: `.` dropped, `..` resolved but
/// never above the root. `None` for a component that is not a plain name on this OS
/// (backslashes are not separators here, but refuse them anyway).
fn clean(url_path: &str) -> Option<PathBuf> {
    let mut parts: Vec<&str> = Vec::new();
    for seg in url_path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s if s.contains('\\') => return None,
            s => parts.push(s),
        }
    }
    Some(parts.iter().collect())
}

/// A single `bytes=` range of a file of `size` bytes, as (start, length). `Err` when
/// unsatisfiable; `Ok(None)` when the header should be ignored (multiple ranges, other units).
fn parse_range(h: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.trim().split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 || size == 0 {
            return Err(());
        }
        let n = n.min(size);
        return Ok(Some((size - n, n)));
    }
    let start: u64 = a.parse().map_err(|_| ())?;
    if start >= size {
        return Err(());
    }
    let end = if b.is_empty() {
        size - 1
    } else {
        let e: u64 = b.parse().map_err(|_| ())?;
        if e < start {
            return Err(());
        }
        e.min(size - 1)
    };
    Ok(Some((start, end - start + 1)))
}

/// Content type by extension, else sniffed like Go does for text.
fn content_type(path: &Path, head: &[u8]) -> String {
    if let Some(m) = mime_guess::from_path(path).first() {
        let m = m.essence_str().to_owned();
        let text = m.starts_with("text/") || m == "application/javascript";
        return if text {
            format!("{m}; charset=utf-8")
        } else {
            m
        };
    }
    let texty = std::str::from_utf8(head).is_ok()
        && !head
            .iter()
            .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b));
    if texty {
        "text/plain; charset=utf-8".into()
    } else {
        "application/octet-stream".into()
    }
}

/// A body streamed from `r`, gzipped when `gzip` (then the response gets `Content-Encoding`
/// and no `Content-Length`).
fn stream_body<R>(r: R, gzip: bool, len: u64, headers: &mut hyper::HeaderMap) -> Body
where
    R: tokio::io::AsyncRead + Send + Sync + 'static,
{
    fn boxed<R: tokio::io::AsyncRead + Send + Sync + 'static>(r: R) -> Body {
        let stream = tokio_util::io::ReaderStream::new(r);
        BodyExt::boxed(http_body_util::StreamBody::new(futures::StreamExt::map(
            stream,
            |r| r.map(hyper::body::Frame::data).map_err(BoxError::from),
        )))
    }
    if gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        boxed(async_compression::tokio::bufread::GzipEncoder::new(
            tokio::io::BufReader::new(r),
        ))
    } else {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        boxed(r)
    }
}

async fn serve_file(path: &Path, range: Option<&HeaderValue>, gzip: bool) -> Response<Body> {
    let mut f = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) => return io_error(&e),
    };
    let size = match f.metadata().await {
        Ok(m) => m.len(),
        Err(e) => return io_error(&e),
    };
    let mut head = vec![0u8; 512.min(size as usize)];
    if f.read_exact(&mut head).await.is_err() {
        return io_error(&std::io::ErrorKind::Other.into());
    }
    let ctype = content_type(path, &head);
    let range = range
        .and_then(|v| v.to_str().ok())
        .map(|h| parse_range(h, size));
    let (status, start, len) = match range {
        Some(Err(())) => {
            let mut r = super::text(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "invalid range: failed to overlap",
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(CONTENT_RANGE, v);
            }
            return r;
        }
        Some(Ok(Some((start, len)))) => (StatusCode::PARTIAL_CONTENT, start, len),
        _ => (StatusCode::OK, 0, size),
    };
    if f.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return io_error(&std::io::ErrorKind::Other.into());
    }
    let mut r = Response::new(super::empty());
    let body = stream_body(
        f.take(len),
        gzip && status == StatusCode::OK,
        len,
        r.headers_mut(),
    );
    *r.body_mut() = body;
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&ctype) {
        h.insert(CONTENT_TYPE, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let end = start + len - 1;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
            h.insert(CONTENT_RANGE, v);
        }
    }
    r
}

/// Go's `dirList`: names sorted, directories with a trailing slash.
async fn listing(dir: &Path, gzip: bool) -> Response<Body> {
    let mut rd = match tokio::fs::read_dir(dir).await {
        Ok(r) => r,
        Err(e) => return io_error(&e),
    };
    let mut names = Vec::new();
    loop {
        match rd.next_entry().await {
            Ok(Some(e)) => {
                let mut n = e.file_name().to_string_lossy().into_owned();
                if e.file_type().await.is_ok_and(|t| t.is_dir()) {
                    n.push('/');
                }
                names.push(n);
            }
            Ok(None) => break,
            Err(e) => {
                debug!(error = %e, "static_file: reading directory failed");
                return super::text(StatusCode::INTERNAL_SERVER_ERROR, "Error reading directory");
            }
        }
    }
    names.sort();
    let mut html = String::from(
        "<!doctype html>\n<meta name=\"viewport\" content=\"width=device-width\">\n<pre>\n",
    );
    for n in names {
        html.push_str(&format!(
            "<a href=\"{}\">{}</a>\n",
            href(&n),
            escape_html(&n)
        ));
    }
    html.push_str("</pre>\n");
    let mut r = Response::new(super::empty());
    let len = html.len() as u64;
    let body = stream_body(
        std::io::Cursor::new(html.into_bytes()),
        gzip,
        len,
        r.headers_mut(),
    );
    *r.body_mut() = body;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// A relative link to `name` (Go's `url.URL{Path: name}.String()`, with `./` before a name
/// holding a colon so it is not read as a scheme).
fn href(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    let first = out.split('/').next().unwrap_or("");
    if first.contains(':') {
        out.insert_str(0, "./");
    }
    escape_html(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_never_leaves_the_root() {
        assert_eq!(clean("/a/../../b").unwrap(), PathBuf::from("b"));
        assert_eq!(
            clean("/../../etc/passwd").unwrap(),
            PathBuf::from("etc/passwd")
        );
        assert_eq!(clean("/./a//b/.").unwrap(), PathBuf::from("a/b"));
        assert_eq!(clean("/").unwrap(), PathBuf::new());
        assert!(clean("/a\\..\\b").is_none());
        let decoded = common::http::percent_decode_path("%2e%2e/%2E%2E/etc").unwrap();
        assert_eq!(clean(&format!("/{decoded}")).unwrap(), PathBuf::from("etc"));
        assert!(common::http::percent_decode_path("a%00b").is_none());
        assert!(common::http::percent_decode_path("a%zz").is_none());
        assert!(common::http::percent_decode_path("a%2").is_none());
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 10))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 10))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 10))));
        assert_eq!(parse_range("bytes=-1000", 100), Ok(Some((0, 100))));
        assert_eq!(parse_range("bytes=50-1000", 100), Ok(Some((50, 50))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=9-3", 100), Err(()));
        assert_eq!(parse_range("bytes=x-", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
    }

    #[test]
    fn content_types() {
        assert_eq!(
            content_type(Path::new("a.html"), b""),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("a.png"), b""), "image/png");
        assert_eq!(
            content_type(Path::new("README"), b"hello\n"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("blob"), &[0, 1, 2]),
            "application/octet-stream"
        );
    }

    #[test]
    fn listing_links_are_escaped() {
        assert_eq!(href("a b/"), "a%20b/");
        assert_eq!(href("x:y"), "./x:y");
        assert_eq!(href("<i>"), "%3Ci%3E");
        assert_eq!(escape_html("<a&>"), "&lt;a&amp;&gt;");
    }
}
