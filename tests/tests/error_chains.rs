//! Every error cause is printed once. Our logs print errors with `Display` (`error = %e`) and
//! the binaries print `{:#}` (the whole `source()` chain), so a thiserror variant must either
//! show its cause in its message or mark it as the source (`#[source]`, `#[from]`, a field
//! named `source`), never both: both printed `Connection refused (os error 111): Connection
//! refused (os error 111)`. This scans every `#[error(...)]` in the workspace's sources.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The string literal at the start of `s` (after `"`), unescaped enough for `{...}` lookups.
fn literal(s: &str) -> Option<&str> {
    let s = s.strip_prefix('"')?;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(&s[..i]),
            _ => escaped = false,
        }
    }
    None
}

/// Splits `s` at top-level commas (outside (), <>, [], {}).
fn top_level_fields(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' | '<' | '[' | '{' => depth += 1,
            ')' | '>' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The text between the opening bracket at `s[0]` and its match.
fn bracketed(s: &str) -> Option<&str> {
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '{' => depth += 1,
            ')' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&s[1..i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The names by which a variant's source field appears in a format string (`0`, `source`...).
fn source_names(variant: &str) -> Vec<String> {
    // Skip the variant's (or struct's) name and any `struct`/`pub` keywords.
    let Some(open) = variant.find(['(', '{']) else {
        return Vec::new();
    };
    let Some(body) = bracketed(&variant[open..]) else {
        return Vec::new();
    };
    let tuple = variant[open..].starts_with('(');
    let mut names = Vec::new();
    for (i, field) in top_level_fields(body).into_iter().enumerate() {
        let marked = field.contains("#[from]") || field.contains("#[source]");
        if tuple {
            if marked {
                names.push(i.to_string());
            }
            continue;
        }
        let decl = field
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("#[") && !l.starts_with("//"))
            .collect::<Vec<_>>()
            .join(" ");
        let Some((name, _)) = decl.split_once(':') else {
            continue;
        };
        let name = name
            .trim()
            .trim_start_matches("pub(crate)")
            .trim_start_matches("pub");
        let name = name.trim();
        if marked || name == "source" {
            names.push(name.to_owned());
        }
    }
    names
}

/// `(file:line, message)` of every variant whose message shows a field that is also its source.
fn doubled_causes(path: &Path, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let attrs: Vec<usize> = text.match_indices("#[error(").map(|(i, _)| i).collect();
    for (k, &at) in attrs.iter().enumerate() {
        let args = &text[at + "#[error(".len()..];
        let Some(msg) = literal(args) else {
            continue; // transparent
        };
        let after = &args[msg.len() + 2..];
        let Some(end_attr) = after.find(")]") else {
            continue;
        };
        let rest = &after[end_attr + 2..];
        let next = attrs
            .get(k + 1)
            .map(|n| n - (text.len() - rest.len()))
            .unwrap_or(rest.len());
        let variant = &rest[..next.min(rest.len())];
        for name in source_names(variant) {
            if msg.contains(&format!("{{{name}}}")) || msg.contains(&format!("{{{name}:")) {
                let line = text[..at].lines().count() + 1;
                found.push(format!("{}:{line}: \"{msg}\"", path.display()));
            }
        }
    }
    found
}

#[test]
fn the_scan_finds_a_doubled_cause() {
    let doubled = r#"
enum E {
    #[error("connect to server {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("tls config: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("read {path}")]
    Read { path: String, #[source] error: std::io::Error },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
"#;
    let found = doubled_causes(Path::new("x.rs"), doubled);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("{source}") && found[1].contains("tls config"));
}

#[test]
fn no_error_prints_its_cause_twice() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["common/src", "frps/src", "frpc/src", "tests/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "sources found: {}", files.len());
    let found: Vec<String> = files
        .iter()
        .flat_map(|p| doubled_causes(p, &std::fs::read_to_string(p).unwrap()))
        .collect();
    assert!(
        found.is_empty(),
        "these show their cause and also chain it as source():\n{}",
        found.join("\n")
    );
}
