//! Where a key path is in a config file's text (for `file:line:col` in messages), and the
//! nearest valid key for "did you mean". Text in, positions out; no I/O.

pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.chars().rev().take_while(|c| *c != '\n').count() + 1;
    (line, col)
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, idx) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Seg::Key(key));
        }
        for n in idx.split(['[', ']']).filter(|s| !s.is_empty()) {
            if let Ok(n) = n.parse() {
                out.push(Seg::Index(n));
            }
        }
    }
    out
}

pub(super) fn toml_locate(text: &str, path: &str) -> Option<usize> {
    use toml_edit::{Item, TableLike};
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut table: Option<&dyn TableLike> = Some(doc.as_table());
    let mut item: Option<&Item> = None;
    let mut span = None;
    for seg in segments(path) {
        match seg {
            Seg::Key(k) => {
                let t = table?;
                let actual = t
                    .iter()
                    .map(|(n, _)| n)
                    .find(|n| *n == k)
                    .or_else(|| t.iter().map(|(n, _)| n).find(|n| n.eq_ignore_ascii_case(k)))?;
                let (key, it) = t.get_key_value(actual)?;
                span = key.span().or(span);
                item = Some(it);
                table = it.as_table_like();
            }
            Seg::Index(i) => match item? {
                Item::ArrayOfTables(a) => {
                    let t = a.get(i)?;
                    span = t.span().or(span);
                    table = Some(t);
                    item = None;
                }
                Item::Value(toml_edit::Value::Array(a)) => {
                    let v = a.get(i)?;
                    span = v.span().or(span);
                    table = v.as_inline_table().map(|t| t as &dyn TableLike);
                    item = None;
                }
                _ => return span.map(|s: std::ops::Range<usize>| s.start),
            },
        }
    }
    span.map(|s| s.start)
}

/// YAML/JSON: the first line naming the last key of the path.
pub(super) fn text_locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let last = segments(path).into_iter().rev().find_map(|s| match s {
        Seg::Key(k) => Some(k),
        Seg::Index(_) => None,
    })?;
    for (i, line) in text.lines().enumerate() {
        for pat in [format!("\"{last}\""), format!("{last}:")] {
            if let Some(c) = line.find(&pat) {
                return Some((i + 1, c + 1));
            }
        }
    }
    None
}

/// Nearest valid key, for "did you mean".
pub(super) fn suggest(key: &str, valid: &[&'static str]) -> Option<&'static str> {
    let k = key.to_ascii_lowercase();
    valid
        .iter()
        .map(|v| (strsim(&k, &v.to_ascii_lowercase()), *v))
        // Close to the valid key, and not mostly rewritten: "foo" is not a typo of "log".
        .filter(|(d, v)| *d <= (v.len() / 3).max(2) && *d * 2 <= k.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

/// Levenshtein distance.
fn strsim(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j + 1] + 1)
                .min(cur[j] + 1)
                .min(prev[j] + usize::from(ca != *cb));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::suggest;

    #[test]
    fn suggestions_are_typos_not_rewrites() {
        let valid = ["log", "localPort", "serverPort", "auth"];
        assert_eq!(suggest("localPrt", &valid), Some("localPort"));
        assert_eq!(suggest("serverprot", &valid), Some("serverPort"));
        assert_eq!(suggest("foo", &valid), None);
        assert_eq!(suggest("lg", &valid), Some("log"));
    }
}
