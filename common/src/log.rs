//! Logging set-up shared by both binaries: frp's `log.level` and `log.to` (console or a file),
//! with `log.maxDays` daily rotation: when the (UTC) day changes, `frps.log` is renamed to
//! `frps.log.YYYYMMDD` (the day it covers), a new `frps.log` is started, and rotated files older
//! than `maxDays` days are deleted.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Installs the global tracing subscriber from `log.*`. `RUST_LOG`, when set, overrides the level.
/// Colours only on a terminal, and never with `log.disablePrintColor`.
pub fn init(cfg: &crate::config::LogConfig) -> io::Result<()> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(frp_level(&cfg.level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let to = cfg.to.as_str();
    let res = if to.is_empty() || to == "console" {
        let ansi = !cfg.disable_print_color && io::stderr().is_terminal();
        builder
            .with_ansi(ansi)
            .with_writer(move || QuietStderr { ansi })
            .try_init()
    } else {
        let file = RotatingFile::open(to.into(), cfg.max_days, crate::clock::utc_day)
            .map_err(|e| io::Error::new(e.kind(), format!("log.to {to}: {e}")))?;
        builder.with_ansi(false).with_writer(file).try_init()
    };
    res.map_err(|e| io::Error::other(e.to_string()))
}

/// stderr for log lines, dropping what cannot be written: tracing-subscriber reports a failed
/// write with `eprintln!`, which panics when stderr itself is closed or full (`2>/dev/full`);
/// a log line that cannot be written is lost, the process goes on.
struct QuietStderr {
    /// Colours on: the formatter's own ESC sequences are kept.
    ansi: bool,
}

impl Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(&escape_line(buf, self.ansi));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// Maps frp's level names (trace, debug, info, warn, error) to tracing's.
fn frp_level(level: &str) -> &'static str {
    match level.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "warn" => "warn",
        "error" => "error",
        _ => "info",
    }
}

/// `YYYYMMDD` of a day number.
fn ymd(day: i64) -> String {
    let (y, m, d) = crate::clock::civil(day);
    format!("{y:04}{m:02}{d:02}")
}

struct FileState {
    file: std::fs::File,
    day: i64,
}

/// A log file rotated daily, keeping `max_days` old files. Cloned handles share one file.
#[derive(Clone)]
pub struct RotatingFile {
    path: PathBuf,
    max_days: i64,
    clock: fn() -> i64,
    state: Arc<Mutex<FileState>>,
}

impl std::fmt::Debug for RotatingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingFile")
            .field("path", &self.path)
            .field("max_days", &self.max_days)
            .finish_non_exhaustive()
    }
}

impl RotatingFile {
    /// Opens (appends to) `path`; `clock` gives the current day number.
    pub fn open(path: PathBuf, max_days: i64, clock: fn() -> i64) -> io::Result<Self> {
        let file = Self::open_file(&path)?;
        // A file last written on an earlier day is rotated on the first write.
        let day = file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64 / 86400)
            .unwrap_or_else(clock);
        Ok(RotatingFile {
            path,
            max_days,
            clock,
            state: Arc::new(Mutex::new(FileState { file, day })),
        })
    }

    fn open_file(path: &PathBuf) -> io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    }

    /// Renames the current file after the day it covers, starts a new one, drops old ones.
    fn rotate(&self, st: &mut FileState, today: i64) -> io::Result<()> {
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(format!(".{}", ymd(st.day)));
        std::fs::rename(&self.path, &rotated)?;
        st.file = Self::open_file(&self.path)?;
        st.day = today;
        if self.max_days > 0 {
            self.remove_old(today);
        }
        Ok(())
    }

    fn remove_old(&self, today: i64) {
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return;
        };
        let dir = if dir.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            dir
        };
        let prefix = format!("{}.", name.to_string_lossy());
        let oldest_kept = ymd(today - self.max_days);
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let Some(date) = n.strip_prefix(&prefix) else {
                continue;
            };
            if date.len() == 8
                && date.bytes().all(|b| b.is_ascii_digit())
                && *date < *oldest_kept.as_str()
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let today = (self.clock)();
        if today > st.day {
            if let Err(e) = self.rotate(&mut st, today) {
                // Keep logging to the current file rather than losing lines.
                st.day = today;
                let _ = writeln!(
                    st.file,
                    "log rotation of {} failed: {e}",
                    self.path.display()
                );
            }
        }
        st.file.write_all(&escape_line(buf, false))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .file
            .flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RotatingFile {
    type Writer = RotatingFile;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// One formatted log line as written: ASCII control characters inside it (a newline or carriage
/// return that would start a forged line, a terminal escape) are written escaped (`\n`, `\u{1b}`),
/// whatever field a peer put them in (a proxy name, a hostname, a plugin's reason); the final
/// newline stays, and with `keep_esc` so do ESC bytes (the formatter's own colours on a
/// terminal). The formatter hands each event over in one write.
pub(crate) fn escape_line(buf: &[u8], keep_esc: bool) -> std::borrow::Cow<'_, [u8]> {
    let body = buf.strip_suffix(b"\n").unwrap_or(buf);
    let bad = |b: u8| (b < 0x20 && b != b'\t' && !(keep_esc && b == 0x1b)) || b == 0x7f;
    if !body.iter().any(|&b| bad(b)) {
        return std::borrow::Cow::Borrowed(buf);
    }
    let mut out = Vec::with_capacity(buf.len() + 16);
    for &b in body {
        if bad(b) {
            out.extend(char::from(b).escape_default().to_string().bytes());
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&buf[body.len()..]);
    std::borrow::Cow::Owned(out)
}

/// Text a peer chose, as it may be logged: control characters (newlines that would start a
/// forged line, terminal escapes) escaped, and at most `max` characters kept.
pub fn printable(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Lets a repeated warning through at most `burst` times per period, counting the ones held
/// back (a peer must not be able to flood the log by repeating what makes us warn).
#[derive(Debug)]
pub struct Throttle {
    every: std::time::Duration,
    burst: u32,
    /// When the current period began, the lines let through in it, and how many were held
    /// back since the last line let through.
    state: Mutex<(Option<tokio::time::Instant>, u32, u64)>,
}

impl Throttle {
    /// One line per `every`.
    pub const fn new(every: std::time::Duration) -> Self {
        Self::with_burst(every, 1)
    }

    /// Up to `burst` lines per `every` (at least one).
    pub const fn with_burst(every: std::time::Duration, burst: u32) -> Self {
        Throttle {
            every,
            burst: if burst == 0 { 1 } else { burst },
            state: Mutex::new((None, 0, 0)),
        }
    }

    /// `Some(n)` when a line may be logged now (`n` were held back since the last one).
    pub fn ready(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = tokio::time::Instant::now();
        if s.0.is_none_or(|t| now.duration_since(t) >= self.every) {
            s.0 = Some(now);
            s.1 = 0;
        }
        if s.1 >= self.burst {
            s.2 += 1;
            return None;
        }
        s.1 += 1;
        Some(std::mem::take(&mut s.2))
    }
}

/// [`Throttle`] per key (a peer's address): one noisy peer cannot hide another's warnings, and
/// all peers together are held to `total` lines per period. At most `max_keys` keys are
/// remembered; past that, keys share one slot.
#[derive(Debug)]
pub struct KeyedThrottle<K> {
    every: std::time::Duration,
    per_key: u32,
    max_keys: usize,
    total: Throttle,
    /// Per key: when its period began, lines let through in it, lines held back since its last.
    keys: Mutex<std::collections::HashMap<Option<K>, (tokio::time::Instant, u32, u64)>>,
}

impl<K: std::hash::Hash + Eq + Clone> KeyedThrottle<K> {
    /// Up to `per_key` lines per key and `total` lines in all per `every`.
    pub fn new(every: std::time::Duration, per_key: u32, total: u32, max_keys: usize) -> Self {
        KeyedThrottle {
            every,
            per_key: per_key.max(1),
            max_keys: max_keys.max(1),
            total: Throttle::with_burst(every, total),
            keys: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// `Some(n)` when a line for `key` may be logged now (`n` of this key's were held back
    /// since its last line, counting those the total held back).
    pub fn ready(&self, key: K) -> Option<u64> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let now = tokio::time::Instant::now();
        let mut slot = Some(key);
        if !keys.contains_key(&slot) && keys.len() >= self.max_keys {
            keys.retain(|_, e| now.duration_since(e.0) < self.every);
            if keys.len() >= self.max_keys {
                slot = None;
            }
        }
        let e = keys.entry(slot).or_insert((now, 0, 0));
        if now.duration_since(e.0) >= self.every {
            *e = (now, 0, e.2);
        }
        if e.1 >= self.per_key || self.total.ready().is_none() {
            e.2 += 1;
            return None;
        }
        e.1 += 1;
        Some(std::mem::take(&mut e.2))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_field_cannot_start_a_forged_line() {
        let line = b"WARN new proxy refused proxy=a\nINFO forged\r\x1b[2J\x7f end\n";
        let out = escape_line(line, false);
        assert_eq!(
            &*out,
            &b"WARN new proxy refused proxy=a\\nINFO forged\\r\\u{1b}[2J\\u{7f} end\n"[..]
        );
        // Clean lines are passed through untouched, colours kept when asked.
        let clean = b"\x1b[32mINFO\x1b[0m frps started\ttab\n";
        assert!(matches!(
            escape_line(clean, true),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            &*escape_line(clean, false),
            &b"\\u{1b}[32mINFO\\u{1b}[0m frps started\ttab\n"[..]
        );
        // Text that is not ASCII is kept as it is.
        assert_eq!(
            &*escape_line("名前\n".as_bytes(), false),
            "名前\n".as_bytes()
        );
    }
    use std::sync::atomic::{AtomicI64, Ordering};

    static DAY: AtomicI64 = AtomicI64::new(0);
    fn fake_day() -> i64 {
        DAY.load(Ordering::SeqCst)
    }

    #[test]
    fn printable_escapes_controls_and_cuts() {
        assert_eq!(printable("a\nb\x1b[31m", 80), "a\\nb\\u{1b}[31m");
        assert_eq!(printable("héllo", 2), "hé...");
        assert_eq!(printable("ok", 2), "ok");
    }

    #[test]
    fn rotates_daily_and_keeps_max_days() {
        assert_eq!(ymd(0), "19700101");
        assert_eq!(ymd(20_415), "20251123");
        let dir = std::env::temp_dir().join(format!("frp-rs-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("frps.log");
        DAY.store(crate::clock::utc_day(), Ordering::SeqCst);
        let start = fake_day();
        let mut w = RotatingFile::open(path.clone(), 2, fake_day).unwrap();
        for i in 0..5 {
            DAY.store(start + i, Ordering::SeqCst);
            writeln!(w, "line of day {i}").unwrap();
        }
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), "line of day 4\n");
        let rotated = |i: i64| dir.join(format!("frps.log.{}", ymd(start + i)));
        assert_eq!(read(&rotated(3)), "line of day 3\n");
        assert_eq!(read(&rotated(2)), "line of day 2\n");
        assert!(
            !rotated(1).exists() && !rotated(0).exists(),
            "older than maxDays removed"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_lets_one_line_through_per_period() {
        let t = Throttle::new(std::time::Duration::from_secs(10));
        assert_eq!(t.ready(), Some(0));
        assert_eq!(t.ready(), None);
        assert_eq!(t.ready(), None);
        tokio::time::advance(std::time::Duration::from_secs(10)).await;
        assert_eq!(t.ready(), Some(2), "the two held back are counted");
        assert_eq!(t.ready(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn keyed_throttle_keeps_one_key_from_hiding_another() {
        let t = KeyedThrottle::new(std::time::Duration::from_secs(10), 2, 5, 3);
        assert_eq!(t.ready("flood"), Some(0));
        assert_eq!(t.ready("flood"), Some(0));
        for _ in 0..100 {
            assert_eq!(t.ready("flood"), None);
        }
        assert_eq!(t.ready("client"), Some(0), "another key still gets through");
        assert_eq!(t.ready("other"), Some(0));
        assert_eq!(t.ready("more"), Some(0), "the fifth line in all");
        assert_eq!(t.ready("last"), None, "the total (5) is reached");
        tokio::time::advance(std::time::Duration::from_secs(10)).await;
        assert_eq!(
            t.ready("flood"),
            Some(100),
            "its own held-back lines are counted"
        );
        // Past max_keys, new keys share one slot.
        tokio::time::advance(std::time::Duration::from_secs(10)).await;
        let t = KeyedThrottle::new(std::time::Duration::from_secs(10), 1, 100, 2);
        assert_eq!(t.ready(1), Some(0));
        assert_eq!(t.ready(2), Some(0));
        assert_eq!(t.ready(3), Some(0), "the shared slot");
        assert_eq!(t.ready(4), None, "the shared slot is used up");
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_with_burst_lets_that_many_through_per_period() {
        let t = Throttle::with_burst(std::time::Duration::from_secs(10), 3);
        assert_eq!(t.ready(), Some(0));
        assert_eq!(t.ready(), Some(0));
        assert_eq!(t.ready(), Some(0));
        assert_eq!(t.ready(), None);
        tokio::time::advance(std::time::Duration::from_secs(5)).await;
        assert_eq!(t.ready(), None, "the period has not ended");
        tokio::time::advance(std::time::Duration::from_secs(5)).await;
        assert_eq!(t.ready(), Some(2), "the two held back are counted once");
        assert_eq!(t.ready(), Some(0));
        assert_eq!(t.ready(), Some(0));
        assert_eq!(t.ready(), None);
    }
}
