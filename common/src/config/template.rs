//! Config templates (frp `pkg/config/template.go`): frp renders every config file with Go's
//! `text/template` before parsing. We render with minijinja, after translating the Go spelling
//! people use in frp configs:
//!
//! - `{{ .Envs.NAME }}` (a missing variable renders as Go's `<no value>`, with a warning);
//! - `{{ parseNumberRange "1000-1005,2000" }}`, `{{ parseNumberRangePair "a" "b" }}`;
//! - `{{ range $i, $v := EXPR }} ... {{ end }}`, `{{ if EXPR }} ... {{ else if ... }} ... {{ else }} ... {{ end }}`,
//!   `{{ $x := EXPR }}`, pipelines (`EXPR | printf "%d"`), `{{- ... -}}` trimming, `{{/* comments */}}`;
//! - Go's builtins `printf`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `and`, `or`, `not`, `len`, `index`.
//!
//! Text outside actions is passed through unchanged, even if it looks like Jinja.

use minijinja::value::{Rest, Value};
use minijinja::{Environment, Error as JinjaError, ErrorKind};
use std::collections::BTreeMap;

/// A template that could not be translated or rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("template line {line}: {msg}")]
pub struct TemplateError {
    pub line: usize,
    pub msg: String,
}

/// The result of rendering: the text and the missing variables (for warnings).
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub text: String,
    pub missing_envs: Vec<String>,
}

/// Renders `src` with `envs` as `.Envs`.
pub fn render(src: &str, envs: &BTreeMap<String, String>) -> Result<Rendered, TemplateError> {
    if !src.contains("{{") {
        return Ok(Rendered {
            text: src.to_owned(),
            missing_envs: Vec::new(),
        });
    }
    let mut refs = Vec::new();
    let jinja = translate(src, &mut refs)?;
    let envs = envs.clone();
    let mut missing = Vec::new();
    for r in refs {
        if !envs.contains_key(&r) && !missing.contains(&r) {
            missing.push(r);
        }
    }
    let mut env = Environment::new();
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // A missing variable stays undefined, as Go's invalid map value: false in `if`, printed
    // as Go prints it, `<no value>`.
    env.set_formatter(|out, state, value| {
        if value.is_undefined() {
            out.write_str("<no value>")?;
            Ok(())
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    register_functions(&mut env);
    let root = minijinja::context! { Envs => envs };
    let ctx = minijinja::context! { frp_root => root };
    env.set_fuel(Some(MAX_FUEL));
    let fail = |e: JinjaError| TemplateError {
        line: e.line().unwrap_or(0),
        msg: render_msg(&e),
    };
    let mut out = Capped(Vec::new());
    let tmpl = env.template_from_str(&jinja).map_err(fail)?;
    if let Err(e) = tmpl.render_captured_to(ctx, &mut out) {
        if out.0.len() > MAX_OUTPUT {
            return Err(TemplateError {
                line: e.line().unwrap_or(0),
                msg: format!("template output is larger than {MAX_OUTPUT} bytes"),
            });
        }
        return Err(fail(e));
    }
    Ok(Rendered {
        text: String::from_utf8_lossy(&out.0).into_owned(),
        missing_envs: missing,
    })
}

/// The most a template may produce (a config of 65536 proxies is a few MB).
const MAX_OUTPUT: usize = 32 << 20;
/// The most instructions a template may run (minijinja's fuel): generous for 65536 loop
/// iterations with a body of dozens of steps; it stops nested loops that print nothing.
const MAX_FUEL: u64 = 50_000_000;

/// A writer that fails once more than [`MAX_OUTPUT`] bytes were written.
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT {
            self.0.resize(MAX_OUTPUT + 1, 0);
            return Err(std::io::Error::other("template output too large"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn render_msg(e: &JinjaError) -> String {
    if e.kind() == ErrorKind::OutOfFuel {
        return format!("template runs more than {MAX_FUEL} steps");
    }
    match e.detail() {
        Some(d) => d.to_owned(),
        None => e.kind().to_string(),
    }
}

/// The process environment as `.Envs`.
pub fn process_envs() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

// === translation ===

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Num(String),
    /// `.A.B` (leading dot) or `$x.A` (variable).
    Path {
        var: Option<String>,
        fields: Vec<String>,
    },
    Ident(String),
    LParen,
    RParen,
    Pipe,
    Comma,
    Assign,
}

fn lex(s: &str, line: usize) -> Result<Vec<Tok>, TemplateError> {
    let err = |msg: String| TemplateError { line, msg };
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let ident = |c: &[char], mut i: usize| {
        let start = i;
        while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
            i += 1;
        }
        (c[start..i].iter().collect::<String>(), i)
    };
    while i < c.len() {
        let ch = c[i];
        match ch {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            '|' => {
                out.push(Tok::Pipe);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            ':' if c.get(i + 1) == Some(&'=') => {
                out.push(Tok::Assign);
                i += 2
            }
            '=' => {
                out.push(Tok::Assign);
                i += 1
            }
            '"' => {
                let mut j = i + 1;
                let mut v = String::new();
                while j < c.len() && c[j] != '"' {
                    if c[j] == '\\' && j + 1 < c.len() {
                        j += 1;
                        v.push(match c[j] {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    } else {
                        v.push(c[j]);
                    }
                    j += 1;
                }
                if j >= c.len() {
                    return Err(err("unterminated string".into()));
                }
                out.push(Tok::Str(v));
                i = j + 1;
            }
            '`' => {
                let j = c[i + 1..]
                    .iter()
                    .position(|x| *x == '`')
                    .ok_or_else(|| err("unterminated raw string".into()))?;
                out.push(Tok::Str(c[i + 1..i + 1 + j].iter().collect()));
                i += j + 2;
            }
            '.' | '$' => {
                let mut var = None;
                if ch == '$' {
                    let (name, j) = ident(&c, i + 1);
                    var = Some(if name.is_empty() {
                        "$".to_owned()
                    } else {
                        name
                    });
                    i = j;
                }
                let mut fields = Vec::new();
                while i < c.len() && c[i] == '.' {
                    let (name, j) = ident(&c, i + 1);
                    if !name.is_empty() {
                        fields.push(name);
                    }
                    i = j.max(i + 1);
                }
                out.push(Tok::Path { var, fields });
            }
            d if d.is_ascii_digit()
                || (d == '-' && c.get(i + 1).is_some_and(|n| n.is_ascii_digit())) =>
            {
                let start = i;
                i += 1;
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                    i += 1;
                }
                out.push(Tok::Num(c[start..i].iter().collect()));
            }
            a if a.is_alphabetic() || a == '_' => {
                let (name, j) = ident(&c, i);
                out.push(Tok::Ident(name));
                i = j;
            }
            other => {
                return Err(err(format!(
                    "unexpected character {other:?} in template action"
                )))
            }
        }
    }
    Ok(out)
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn jinja_var(v: &str) -> String {
    if v == "$" {
        "frp_root".into()
    } else {
        format!("v_{v}")
    }
}

/// How deep parentheses may nest in one action (the translator recurses on each).
const MAX_NESTING: usize = 64;

/// Translates one operand at `toks[*i]`; `depth` counts the parentheses around it.
fn operand(
    toks: &[Tok],
    i: &mut usize,
    refs: &mut Vec<String>,
    line: usize,
    depth: usize,
) -> Result<String, TemplateError> {
    let t = toks.get(*i).ok_or(TemplateError {
        line,
        msg: "missing operand".into(),
    })?;
    *i += 1;
    Ok(match t {
        Tok::Str(s) => quote(s),
        Tok::Num(n) => n.clone(),
        Tok::Path { var, fields } => {
            if var.is_none() && fields.len() >= 2 && fields[0] == "Envs" {
                refs.push(fields[1].clone());
            }
            let mut out = match var {
                Some(v) => jinja_var(v),
                None => "frp_root".into(),
            };
            for f in fields {
                out.push_str(&format!("[{}]", quote(f)));
            }
            out
        }
        Tok::Ident(name) if name == "true" || name == "false" => name.clone(),
        Tok::Ident(name) if name == "nil" => "none".into(),
        Tok::Ident(name) => name.clone(),
        Tok::LParen if depth >= MAX_NESTING => {
            return Err(TemplateError {
                line,
                msg: format!("parentheses nested more than {MAX_NESTING} deep"),
            })
        }
        Tok::LParen => {
            let inner = pipeline(toks, i, refs, line, depth + 1)?;
            if toks.get(*i) != Some(&Tok::RParen) {
                return Err(TemplateError {
                    line,
                    msg: "missing )".into(),
                });
            }
            *i += 1;
            format!("({inner})")
        }
        other => {
            return Err(TemplateError {
                line,
                msg: format!("unexpected {other:?}"),
            })
        }
    })
}

/// A command: a function with arguments, or a single operand. `prev` is a piped-in value.
fn command(
    toks: &[Tok],
    i: &mut usize,
    refs: &mut Vec<String>,
    line: usize,
    prev: Option<String>,
    depth: usize,
) -> Result<String, TemplateError> {
    let is_fn =
        matches!(toks.get(*i), Some(Tok::Ident(n)) if n != "true" && n != "false" && n != "nil");
    if !is_fn {
        let op = operand(toks, i, refs, line, depth)?;
        return match prev {
            None => Ok(op),
            Some(_) => Err(TemplateError {
                line,
                msg: "can only pipe into a function".into(),
            }),
        };
    }
    let Some(Tok::Ident(name)) = toks.get(*i).cloned() else {
        return Err(TemplateError {
            line,
            msg: "expected a function name".into(),
        });
    };
    *i += 1;
    let mut args = Vec::new();
    while *i < toks.len() && !matches!(toks[*i], Tok::Pipe | Tok::RParen) {
        args.push(operand(toks, i, refs, line, depth)?);
    }
    // Go passes the piped value as the last argument.
    args.extend(prev);
    // `and`, `or` and `not` are operators in Jinja; Go's builtins get other names there.
    let name = match name.as_str() {
        "and" => "go_and",
        "or" => "go_or",
        "not" => "go_not",
        other => other,
    };
    Ok(format!("{name}({})", args.join(", ")))
}

fn pipeline(
    toks: &[Tok],
    i: &mut usize,
    refs: &mut Vec<String>,
    line: usize,
    depth: usize,
) -> Result<String, TemplateError> {
    let mut cur = command(toks, i, refs, line, None, depth)?;
    while toks.get(*i) == Some(&Tok::Pipe) {
        *i += 1;
        cur = command(toks, i, refs, line, Some(cur), depth)?;
    }
    Ok(cur)
}

fn expr(toks: &[Tok], refs: &mut Vec<String>, line: usize) -> Result<String, TemplateError> {
    let mut i = 0;
    let out = pipeline(toks, &mut i, refs, line, 0)?;
    if i != toks.len() {
        return Err(TemplateError {
            line,
            msg: "unexpected tokens after expression".into(),
        });
    }
    Ok(out)
}

fn translate(src: &str, refs: &mut Vec<String>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(src.len() + 64);
    let mut stack: Vec<&'static str> = Vec::new();
    let mut rest = src;
    let mut line = 1;
    while let Some(start) = rest.find("{{") {
        let text = &rest[..start];
        push_text(&mut out, text);
        line += text.matches('\n').count();
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError {
            line,
            msg: "unclosed action {{".into(),
        })?;
        let mut body = &after[..end];
        let action_lines = body.matches('\n').count();
        rest = &after[end + 2..];
        let ltrim = body.starts_with('-') && body[1..].starts_with(char::is_whitespace);
        if ltrim {
            body = &body[1..];
        }
        let rtrim = body.ends_with('-') && body[..body.len() - 1].ends_with(char::is_whitespace);
        if rtrim {
            body = &body[..body.len() - 1];
        }
        let (l, r) = (if ltrim { "-" } else { "" }, if rtrim { "-" } else { "" });
        let b = body.trim();
        if b.starts_with("/*") {
            // A comment: emit nothing but keep the trimming.
            out.push_str(&format!("{{%{l} if false %}}{{% endif {r}%}}"));
            line += action_lines;
            continue;
        }
        let toks = lex(b, line)?;
        let stmt = |s: String| format!("{{%{l} {s} {r}%}}");
        match toks.first() {
            Some(Tok::Ident(k)) if k == "range" => {
                let (vars, e) = split_decl(&toks[1..]);
                let e = expr(e, refs, line)?;
                let (idx, val) = match vars.as_slice() {
                    [] => (None, "frp_root".to_owned()),
                    [v] => (None, jinja_var(v)),
                    [i, v] => (Some(jinja_var(i)), jinja_var(v)),
                    _ => {
                        return Err(TemplateError {
                            line,
                            msg: "range takes at most two variables".into(),
                        })
                    }
                };
                out.push_str(&stmt(format!("for {val} in {e}")));
                if let Some(i) = idx {
                    out.push_str(&format!("{{% set {i} = loop.index0 %}}"));
                }
                stack.push("endfor");
            }
            Some(Tok::Ident(k)) if k == "if" => {
                out.push_str(&stmt(format!("if {}", expr(&toks[1..], refs, line)?)));
                stack.push("endif");
            }
            Some(Tok::Ident(k)) if k == "else" => {
                if matches!(toks.get(1), Some(Tok::Ident(k2)) if k2 == "if") {
                    out.push_str(&stmt(format!("elif {}", expr(&toks[2..], refs, line)?)));
                } else {
                    out.push_str(&stmt("else".into()));
                }
            }
            Some(Tok::Ident(k)) if k == "end" => {
                let e = stack.pop().ok_or(TemplateError {
                    line,
                    msg: "{{ end }} without range or if".into(),
                })?;
                out.push_str(&stmt(e.into()));
            }
            Some(Tok::Ident(k))
                if matches!(k.as_str(), "with" | "define" | "template" | "block") =>
            {
                return Err(TemplateError {
                    line,
                    msg: format!("template action {k:?} is not supported"),
                });
            }
            Some(Tok::Path {
                var: Some(v),
                fields,
            }) if fields.is_empty() && toks.get(1) == Some(&Tok::Assign) => {
                out.push_str(&stmt(format!(
                    "set {} = {}",
                    jinja_var(v),
                    expr(&toks[2..], refs, line)?
                )));
            }
            _ => out.push_str(&format!("{{{{{l} {} {r}}}}}", expr(&toks, refs, line)?)),
        }
        line += action_lines;
    }
    push_text(&mut out, rest);
    if let Some(open) = stack.last() {
        return Err(TemplateError {
            line,
            msg: format!(
                "missing {{{{ end }}}} (open {})",
                open.trim_start_matches("end")
            ),
        });
    }
    Ok(out)
}

/// Splits `$i, $v :=` off a range clause.
fn split_decl(toks: &[Tok]) -> (Vec<String>, &[Tok]) {
    if let Some(pos) = toks.iter().position(|t| *t == Tok::Assign) {
        let vars = toks[..pos]
            .iter()
            .filter_map(|t| match t {
                Tok::Path { var: Some(v), .. } => Some(v.clone()),
                _ => None,
            })
            .collect();
        (vars, &toks[pos + 1..])
    } else {
        (Vec::new(), toks)
    }
}

fn push_text(out: &mut String, text: &str) {
    if text.contains("{%") || text.contains("{#") || text.contains("%}") || text.contains("#}") {
        // Keep surrounding whitespace outside the raw block so `{{-`/`-}}` can still trim it.
        let core = text.trim();
        let lead = &text[..text.len() - text.trim_start().len()];
        let trail = &text[text.trim_end().len()..];
        out.push_str(lead);
        out.push_str("{% raw %}");
        out.push_str(core);
        out.push_str("{% endraw %}");
        out.push_str(trail);
    } else {
        out.push_str(text);
    }
}

// === functions ===

/// The most entries one `parseNumberRange` (or each side of `parseNumberRangePair`) may yield:
/// one per port. A config that needs more is almost certainly a mistake, and an unbounded
/// range would allocate whatever it asks for.
pub const MAX_RANGE_ENTRIES: usize = 65536;

/// frp `util.ParseRangeNumbers`: "1000-2000,3000" -> [1000..=2000, 3000]. At most
/// [`MAX_RANGE_ENTRIES`] entries in all; more is an error before anything is allocated.
pub fn parse_number_range(s: &str) -> Result<Vec<i64>, String> {
    let mut out = Vec::new();
    let too_many = || {
        // Quote a long argument by its start only.
        let shown: String = s.chars().take(64).collect();
        let more = if shown.len() < s.len() { "..." } else { "" };
        format!("{shown:?}{more} has more than {MAX_RANGE_ENTRIES} entries")
    };
    for part in s.split(',') {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        let invalid = || format!("range number is invalid: {p:?}");
        let (a, b) = match p.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<i64>().map_err(|_| invalid())?,
                b.trim().parse::<i64>().map_err(|_| invalid())?,
            ),
            None => {
                let n = p.parse::<i64>().map_err(|_| invalid())?;
                (n, n)
            }
        };
        if b < a {
            return Err(invalid());
        }
        let len = i128::from(b) - i128::from(a) + 1;
        if len > (MAX_RANGE_ENTRIES - out.len()) as i128 {
            return Err(too_many());
        }
        out.extend(a..=b);
    }
    Ok(out)
}

fn fn_err(msg: String) -> JinjaError {
    JinjaError::new(ErrorKind::InvalidOperation, msg)
}

fn register_functions(env: &mut Environment<'_>) {
    env.add_function("parseNumberRange", |s: String| {
        parse_number_range(&s).map_err(|e| fn_err(format!("parseNumberRange: {e}")))
    });
    env.add_function("parseNumberRangePair", |a: String, b: String| {
        let range = |s: &str| {
            parse_number_range(s).map_err(|e| fn_err(format!("parseNumberRangePair: {e}")))
        };
        let (x, y) = (range(&a)?, range(&b)?);
        if x.len() != y.len() {
            return Err(fn_err(format!(
                "first and second range numbers are not in pairs: {} vs {}",
                x.len(),
                y.len()
            )));
        }
        Ok(x.into_iter()
            .zip(y)
            .map(|(f, s)| {
                let mut m = BTreeMap::new();
                m.insert("First", f);
                m.insert("Second", s);
                m
            })
            .collect::<Vec<_>>())
    });
    env.add_function("printf", |fmt: String, args: Rest<Value>| {
        Ok::<_, JinjaError>(go_printf(&fmt, &args))
    });
    env.add_function("eq", |a: Value, rest: Rest<Value>| rest.contains(&a));
    env.add_function("ne", |a: Value, b: Value| a != b);
    env.add_function("lt", |a: Value, b: Value| a < b);
    env.add_function("le", |a: Value, b: Value| a <= b);
    env.add_function("gt", |a: Value, b: Value| a > b);
    env.add_function("ge", |a: Value, b: Value| a >= b);
    env.add_function("go_not", |a: Value| !a.is_true());
    env.add_function("go_and", |args: Rest<Value>| {
        args.iter()
            .last()
            .cloned()
            .filter(|_| args.iter().all(|a| a.is_true()))
            .unwrap_or(Value::from(false))
    });
    env.add_function("go_or", |args: Rest<Value>| {
        args.iter()
            .find(|a| a.is_true())
            .cloned()
            .unwrap_or(Value::from(false))
    });
    env.add_function("len", |a: Value| a.len().unwrap_or(0));
    env.add_function("index", |a: Value, k: Value| {
        a.get_item(&k).unwrap_or(Value::UNDEFINED)
    });
}

/// Go's `fmt` limit on a width (`tooLarge`).
const MAX_PRINTF_WIDTH: usize = 1_000_000;

/// Go's `fmt.Sprintf` for the verbs configs use: %s %d %v %q %%.
fn go_printf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        // Skip flags and width, e.g. %05d.
        let mut spec = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() || d == '-' || d == '+' || d == ' ' || d == '.' {
                spec.push(d);
                chars.next();
            } else {
                break;
            }
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('q') => out.push_str(&quote(
                &it.next().map(|v| v.to_string()).unwrap_or_default(),
            )),
            Some('d') if spec.starts_with('0') => {
                let v = it.next().map(|v| v.to_string()).unwrap_or_default();
                // Go's fmt refuses widths over 1e6 the same way.
                match spec.trim_start_matches('0').parse::<usize>() {
                    Ok(w) if w > MAX_PRINTF_WIDTH => out.push_str("%!(BADWIDTH)"),
                    w => {
                        let pad = w.unwrap_or(0).saturating_sub(v.chars().count());
                        out.push_str(&"0".repeat(pad));
                        out.push_str(&v);
                    }
                }
            }
            Some(_) => out.push_str(
                &it.next()
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "%!v(MISSING)".into()),
            ),
            None => out.push_str("%!(NOVERB)"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envs(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn envs_set_and_unset() {
        let r = render(
            "a = \"{{ .Envs.FRP_A }}\"\nb = \"{{ .Envs.FRP_MISSING }}\"\n",
            &envs(&[("FRP_A", "x")]),
        )
        .unwrap();
        assert_eq!(r.text, "a = \"x\"\nb = \"<no value>\"\n");
        assert_eq!(r.missing_envs, vec!["FRP_MISSING".to_string()]);
    }

    /// As Go's template: a missing variable is an invalid value, false in `if` (it used to
    /// render as the true string `<no value>`).
    #[test]
    fn a_missing_variable_is_false_in_if() {
        let src = "p = {{ if .Envs.FRP_P }}{{ .Envs.FRP_P }}{{ else }}7000{{ end }}\n";
        assert_eq!(render(src, &envs(&[])).unwrap().text, "p = 7000\n");
        assert_eq!(
            render(src, &envs(&[("FRP_P", "7001")])).unwrap().text,
            "p = 7001\n"
        );
        let not = "{{ if not .Envs.FRP_Q }}unset{{ end }}";
        assert_eq!(render(not, &envs(&[])).unwrap().text, "unset");
    }

    #[test]
    fn range_over_number_range_as_frp_docs_show() {
        let src = "{{- range $_, $v := parseNumberRange \"6000-6002,6007\" }}\n[[proxies]]\nname = \"tcp-{{ $v }}\"\nlocalPort = {{ $v }}\n{{- end }}\n";
        let r = render(src, &BTreeMap::new()).unwrap();
        assert_eq!(r.text.matches("[[proxies]]").count(), 4);
        assert!(
            r.text.contains("name = \"tcp-6007\"\nlocalPort = 6007"),
            "{}",
            r.text
        );
        assert!(r.text.starts_with("\n[[proxies]]"), "{:?}", r.text);
    }

    #[test]
    fn range_pairs() {
        let src = "{{ range $i, $p := parseNumberRangePair \"6000-6001\" \"7000-7001\" }}{{ $i }}:{{ $p.First }}>{{ $p.Second }};{{ end }}";
        assert_eq!(
            render(src, &BTreeMap::new()).unwrap().text,
            "0:6000>7000;1:6001>7001;"
        );
        assert!(render("{{ parseNumberRangePair \"1-2\" \"3\" }}", &BTreeMap::new()).is_err());
    }

    #[test]
    fn if_else_and_pipelines() {
        let src = "{{ if eq .Envs.MODE \"prod\" }}p{{ else if eq .Envs.MODE \"dev\" }}d{{ else }}x{{ end }}|{{ .Envs.N | printf \"%s!\" }}|{{ printf \"%05d\" 42 }}";
        assert_eq!(
            render(src, &envs(&[("MODE", "dev"), ("N", "n")]))
                .unwrap()
                .text,
            "d|n!|00042"
        );
    }

    #[test]
    fn trimming_comments_and_literal_jinja_text() {
        let src = "a\n{{- /* note */ -}}\nb {% not jinja %} {# nor this #}\n";
        assert_eq!(
            render(src, &BTreeMap::new()).unwrap().text,
            "ab {% not jinja %} {# nor this #}\n"
        );
    }

    #[test]
    fn errors_have_lines() {
        let e = render(
            "a\nb\n{{ range $v := parseNumberRange \"1-2\" }}\n",
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(e.msg.contains("missing {{ end }}"), "{e}");
        let e = render("x\n{{ parseNumberRange \"5-1\" }}", &BTreeMap::new()).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn number_ranges_are_bounded_and_name_the_helper() {
        // One entry per port is the most a config needs; beyond the bound is an error, never
        // an allocation of the whole range.
        assert_eq!(
            parse_number_range("1-65536").unwrap().len(),
            MAX_RANGE_ENTRIES
        );
        for huge in [
            "1-65537",
            "0-100000000000000",
            "0-9223372036854775807",
            "1-40000,1-40000",
        ] {
            let e = parse_number_range(huge).unwrap_err();
            assert!(e.contains("more than 65536"), "{huge}: {e}");
        }
        let e = render("{{ parseNumberRange \"1-100000000\" }}", &BTreeMap::new()).unwrap_err();
        assert!(e.msg.contains("parseNumberRange"), "{e}");
        let e = render(
            "{{ parseNumberRangePair \"1-100000000\" \"1-100000000\" }}",
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(e.msg.contains("parseNumberRangePair"), "{e}");
    }

    #[test]
    fn output_width_and_depth_are_bounded() {
        // Go's fmt refuses widths over 1e6 (%!(BADWIDTH)); a huge width must not allocate.
        let r = render("{{ printf \"%0999999999999d\" 1 }}", &BTreeMap::new()).unwrap();
        assert!(r.text.len() < 100, "{}", r.text.len());
        // Deep nesting is an error, not a stack overflow.
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(render(&deep, &BTreeMap::new()).is_err());
        // Nested loops that would print gigabytes stop at the output bound.
        let nested = "{{ range $a := parseNumberRange \"1-65536\" }}{{ range $b := parseNumberRange \"1-65536\" }}xxxxxxxxxxxxxxxx{{ end }}{{ end }}";
        let e = render(nested, &BTreeMap::new()).unwrap_err();
        assert!(e.msg.contains("larger than"), "{e}");
        // Nested loops that print nothing stop at the step bound.
        let silent = "{{ range $a := parseNumberRange \"1-65536\" }}{{ range $b := parseNumberRange \"1-65536\" }}{{ end }}{{ end }}";
        let e = render(silent, &BTreeMap::new()).unwrap_err();
        assert!(e.msg.contains("steps"), "{e}");
    }

    /// Pieces of Go template syntax, glued at random: whatever comes out, render returns.
    fn template_piece() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            Just("{{".to_owned()),
            Just("}}".to_owned()),
            Just("{{- ".to_owned()),
            Just(" -}}".to_owned()),
            Just(" range ".to_owned()),
            Just(" $i, $v := ".to_owned()),
            Just(" $v ".to_owned()),
            Just(" $ ".to_owned()),
            Just(" end ".to_owned()),
            Just(" if ".to_owned()),
            Just(" else ".to_owned()),
            Just(" else if ".to_owned()),
            Just(" parseNumberRange ".to_owned()),
            Just(" parseNumberRangePair ".to_owned()),
            Just(" printf ".to_owned()),
            Just(" index ".to_owned()),
            Just(" len ".to_owned()),
            Just(" eq ".to_owned()),
            Just(" and ".to_owned()),
            Just(" not ".to_owned()),
            Just(" .Envs.A ".to_owned()),
            Just(" .Envs ".to_owned()),
            Just(" $v.First ".to_owned()),
            Just("\"1-3,7\"".to_owned()),
            Just("\"5-1\"".to_owned()),
            Just("\"%05d %s %q %v %\"".to_owned()),
            Just("\"%99999999999d\"".to_owned()),
            Just("\"%0100000d\"".to_owned()),
            Just("`raw`".to_owned()),
            Just("\"".to_owned()),
            Just("`".to_owned()),
            Just("(".to_owned()),
            Just(")".to_owned()),
            Just("|".to_owned()),
            Just(",".to_owned()),
            Just(":=".to_owned()),
            Just("=".to_owned()),
            Just("-".to_owned()),
            Just("-1".to_owned()),
            Just("42".to_owned()),
            Just("1.5e3".to_owned()),
            Just("nil".to_owned()),
            Just("true".to_owned()),
            Just("/* c */".to_owned()),
            Just("{%".to_owned()),
            Just("%}".to_owned()),
            Just("{#".to_owned()),
            Just("\n".to_owned()),
            Just("é".to_owned()),
            "[a-z ]{0,3}",
            any::<char>().prop_map(|c| c.to_string()),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn random_templates_never_panic(pieces in proptest::collection::vec(template_piece(), 0..40)) {
            let src: String = pieces.concat();
            let envs = envs(&[("A", "x")]);
            let _ = render(&src, &envs);
        }

        #[test]
        fn random_bytes_never_panic(src in "\\PC{0,200}") {
            let _ = render(&format!("{{{{{src}}}}}"), &BTreeMap::new());
            let _ = render(&src, &BTreeMap::new());
        }
    }

    #[test]
    fn number_ranges() {
        assert_eq!(
            parse_number_range("1000-1002, 2000").unwrap(),
            vec![1000, 1001, 1002, 2000]
        );
        assert!(parse_number_range("a-b").is_err());
        assert!(parse_number_range("5-1").is_err());
    }
}
