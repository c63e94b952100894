//! The admin page at `webServer` `/` (issue 19): the proxies and visitors with their status
//! and errors (health checks included), the config file in an editor whose "save and reload"
//! applies only a file that loads, and the store entries (create, edit, delete) when
//! `store.path` is set. Server-rendered from a [`View`] that `/ui/state.json` also serves
//! for the live refresh (see `common::ui`); forms are refused without the page's token or
//! from another site, and behind the admin API's Basic auth like everything else here.

use crate::admin::Admin;
use crate::store::Kind;
use common::http::{self, Resp};
use common::ui::{self, minijinja, Cell, Figure, FormToken, Table, View};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};

const PAGE_HTML: &str = include_str!("ui/admin.html");

/// How often the page asks for fresh figures.
const REFRESH_MS: u64 = 2000;

/// The page's fixed parts.
#[derive(Debug)]
pub(crate) struct Page {
    env: minijinja::Environment<'static>,
    token: FormToken,
}

impl Page {
    pub(crate) fn new() -> Page {
        Page {
            env: ui::environment(PAGE_HTML),
            token: FormToken::default(),
        }
    }
}

/// What a form's answer shows besides the page.
#[derive(Debug, Default, serde::Serialize)]
struct Notice {
    /// Where on the page (`config`, `store`).
    place: &'static str,
    error: Option<String>,
    done: Option<String>,
    /// The config text sent, kept in the editor when it was refused.
    config: Option<String>,
}

/// The page's routes; `None` for any other path (the API's).
pub(crate) fn route(a: &Admin, page: &Page, req: &Request<Bytes>) -> Option<Resp> {
    let path = req.uri().path();
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    let post = req.method() == Method::POST;
    if let Some(asset) = ui::asset(path).filter(|_| get) {
        return Some(asset);
    }
    Some(match path {
        "/" | "/index.html" if get => {
            let q = http::query(req);
            let done = match ui::field(&q, "done") {
                Some("config") => Some(("config", "Config saved and reloaded.".to_owned())),
                Some("store") => Some(("store", "Store updated.".to_owned())),
                _ => None,
            };
            let notice = done.map(|(place, msg)| Notice {
                place,
                done: Some(msg),
                ..Notice::default()
            });
            render(a, page, StatusCode::OK, notice.unwrap_or_default())
        }
        "/ui/state.json" if get => ui::state(&view(a)),
        "/ui/config" | "/ui/store" if post => {
            let fields = ui::form(req.body());
            if let Some(refused) = ui::refuse_form(req, &fields, &page.token) {
                return Some(refused);
            }
            let result = if path == "/ui/config" {
                save_config(a, ui::field(&fields, "config").unwrap_or(""))
            } else {
                change_store(a, &fields)
            };
            match result {
                Ok(place) => ui::see_other(&format!("/?done={place}#{place}")),
                Err(notice) => render(a, page, StatusCode::BAD_REQUEST, notice),
            }
        }
        "/" | "/index.html" | "/ui/state.json" | "/ui/config" | "/ui/store" => {
            http::reply(StatusCode::METHOD_NOT_ALLOWED, "")
        }
        _ => return None,
    })
}

fn render(a: &Admin, page: &Page, code: StatusCode, notice: Notice) -> Resp {
    let path = a.source.as_ref().map(|s| s.path.display().to_string());
    let config = notice.config.clone().or_else(|| {
        let p = &a.source.as_ref()?.path;
        Some(String::from_utf8_lossy(&std::fs::read(p).ok()?).into_owned())
    });
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let entries = |kind: Kind| {
        a.reloader
            .read_store(|s| {
                s.list(kind)
                    .iter()
                    .map(|v| {
                        let name = v.get("name").and_then(|n| n.as_str()).unwrap_or("");
                        minijinja::context! { name => name, json => pretty(v) }
                    })
                    .collect::<Vec<_>>()
            })
            .ok()
    };
    let ctx = minijinja::context! {
        version => common::FRP_VERSION,
        interval_ms => REFRESH_MS,
        view => view(a),
        token => page.token.as_str(),
        config_path => path,
        config => config,
        notice => notice,
        store_proxies => entries(Kind::Proxy),
        store_visitors => entries(Kind::Visitor),
    };
    ui::render(&page.env, code, ctx)
}

/// "Save and reload": a text that does not load (or that changes a token source) is refused
/// with the loader's message and nothing is written; one that loads is written and reloaded,
/// and the old file is put back if the reload still fails. The running config changes only
/// through a successful reload.
fn save_config(a: &Admin, text: &str) -> Result<&'static str, Notice> {
    let refuse = |error: String| Notice {
        place: "config",
        error: Some(error),
        config: Some(text.to_owned()),
        ..Notice::default()
    };
    let Some(source) = a.source.as_ref() else {
        return Err(refuse(crate::admin::NO_FILE.to_owned()));
    };
    let old = std::fs::read(&source.path)
        .map_err(|e| refuse(format!("read config file {}: {e}", source.path.display())))?;
    // A browser sends a textarea's lines ending in CRLF; a file that had LF keeps LF.
    let text = if old.windows(2).any(|w| w == b"\r\n") {
        text.to_owned()
    } else {
        text.replace("\r\n", "\n")
    };
    let opts = common::config::LoadOptions {
        reload: Some(common::config::Reload {
            includes: a.reloader.running_includes(),
        }),
        ..source.opts.clone()
    };
    if let Err(e) = common::config::load_client_text(&text, &source.path, &opts) {
        return Err(refuse(format!(
            "The config was not saved; the running config is unchanged.\n{e}"
        )));
    }
    if let Some(key) = crate::admin::changes_token_sources(a, text.as_bytes()) {
        return Err(refuse(format!(
            "{key} cannot be changed from this page: the command or file it names would run or \
             be read at frpc's next start; edit {} on the host",
            source.path.display()
        )));
    }
    crate::admin::write_private(&source.path, text.as_bytes())
        .map_err(|e| refuse(format!("write config file {}: {e}", source.path.display())))?;
    if let Err(e) = source.reload(&a.reloader, false) {
        let restored = match crate::admin::write_private(&source.path, &old) {
            Ok(()) => "the file was put back as it was".to_owned(),
            Err(w) => format!("putting the old file back failed too: {w}"),
        };
        tracing::warn!(error = %e, "admin page: reload failed; the running config stays");
        return Err(refuse(format!(
            "The reload failed, so the running config is unchanged and {restored}.\n{e}"
        )));
    }
    tracing::info!(file = %source.path.display(), "config saved and reloaded from the admin page");
    Ok("config")
}

/// A store form: `action` create, update or delete, `kind` proxy or visitor, `name`, and
/// the entry's JSON in `body`.
fn change_store(a: &Admin, fields: &[(String, String)]) -> Result<&'static str, Notice> {
    let refuse = |error: String| Notice {
        place: "store",
        error: Some(error),
        ..Notice::default()
    };
    let kind = match ui::field(fields, "kind") {
        Some("proxy") => Kind::Proxy,
        Some("visitor") => Kind::Visitor,
        _ => return Err(refuse("kind must be proxy or visitor".into())),
    };
    let name = ui::field(fields, "name").unwrap_or("");
    let body = ui::field(fields, "body").unwrap_or("").as_bytes();
    let opts = a.load_options();
    let r = &a.reloader;
    let result = match ui::field(fields, "action") {
        Some("create") => r.with_store(|s| s.put(kind, None, body, &opts)).map(drop),
        Some("update") => r
            .with_store(|s| s.put(kind, Some(name), body, &opts))
            .map(drop),
        Some("delete") => r.with_store(|s| s.delete(kind, name)),
        _ => return Err(refuse("action must be create, update or delete".into())),
    };
    result.map(|()| "store").map_err(|e| refuse(e.to_string()))
}

fn phase_class(phase: &str) -> &'static str {
    match phase {
        "running" => "ok",
        "check failed" | "start error" => "bad",
        "closed" => "off",
        _ => "warn",
    }
}

/// The figures and tables of the page.
fn view(a: &Admin) -> View {
    let cfg = a.reloader.current();
    // Proxies only: `/api/status` lists visitors under their own key, shown in their table.
    let status: Vec<_> = crate::admin::status(a)
        .into_iter()
        .filter(|(kind, _)| kind != crate::admin::VISITORS_KEY)
        .flat_map(|(_, rows)| rows)
        .collect();
    let running = status.iter().filter(|s| s.status == "running").count();
    let server = if cfg.server_addrs.is_empty() {
        format!("{}:{}", cfg.server_addr, cfg.server_port)
    } else {
        // serverAddrs failover: the frps of the current session.
        let host = a
            .server_addr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        format!("{host} (of {} serverAddrs)", cfg.server_addrs.len())
    };
    let figures = vec![
        Figure::new("version", "Version", common::FRP_VERSION),
        Figure::new("server", "Server", server),
        Figure::new(
            "proxies",
            "Proxies running",
            format!("{running} of {}", status.len()),
        ),
        Figure::new("visitors", "Visitors", cfg.visitors.len()),
        Figure::new(
            "pool",
            "Work connections pooled (poolCount)",
            cfg.transport.pool_count,
        ),
        Figure::new(
            "work-conns",
            "Work connections used",
            a.metrics.work_conns.get(),
        ),
        Figure::new("reconnects", "Reconnects", a.metrics.reconnects.get()),
    ];
    let proxies = status
        .iter()
        .map(|s| {
            let p = cfg.proxies.iter().find(|p| p.name == s.name);
            let health = match p.map(|p| &p.health_check) {
                Some(h) if !h.kind.is_empty() => {
                    let state = if s.status == "check failed" {
                        "failing"
                    } else if s.status == "running" {
                        "passing"
                    } else {
                        "waiting"
                    };
                    format!("{} every {}s: {state}", h.kind, h.interval_seconds)
                }
                _ => "none".to_owned(),
            };
            let local = if s.plugin.is_empty() {
                s.local_addr.clone()
            } else {
                format!("plugin {}", s.plugin)
            };
            let (conns, to_local, from_local) = a.metrics.proxy_figures(&s.name, &s.kind);
            vec![
                Cell::text(&s.name),
                Cell::text(&s.kind),
                Cell::status(&s.status, phase_class(&s.status)),
                Cell::text(&s.err),
                Cell::text(local),
                Cell::text(&s.remote_addr),
                Cell::text(conns.max(0)),
                Cell::text(format!(
                    "{} / {}",
                    ui::bytes(to_local),
                    ui::bytes(from_local)
                )),
                Cell::text(health),
                Cell::text(s.source.as_deref().unwrap_or("config")),
            ]
        })
        .collect();
    let store_visitors = a
        .reloader
        .read_store(|s| {
            s.list(Kind::Visitor)
                .iter()
                .filter_map(|v| v.get("name")?.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let visitor_status = a.visitor_status.all();
    let visitors = cfg
        .visitors
        .iter()
        .map(|v| {
            // The run-time status the visitor manager keeps (as `/api/status` shows it).
            let (phase, error) = visitor_status
                .iter()
                .find(|s| s.name == v.name)
                .map(|s| (s.phase.as_str(), s.error.clone()))
                .unwrap_or(("new", String::new()));
            let bind = if v.bind_port < 0 {
                "no listener".to_owned()
            } else {
                format!("{}:{}", v.bind_addr, v.bind_port)
            };
            let server = if v.server_user.is_empty() {
                v.server_name.clone()
            } else {
                format!("{}.{}", v.server_user, v.server_name)
            };
            let source = if store_visitors.contains(&v.name) {
                "store"
            } else {
                "config"
            };
            vec![
                Cell::text(&v.name),
                Cell::text(&v.kind),
                Cell::status(phase, phase_class(phase)),
                Cell::text(error),
                Cell::text(server),
                Cell::text(bind),
                Cell::text(source),
            ]
        })
        .collect();
    let errors = a
        .status
        .recent_errors()
        .into_iter()
        .rev()
        .map(|(name, t, e)| vec![Cell::text(name), Cell::text(ui::time(t)), Cell::text(e)])
        .collect();
    View {
        figures,
        tables: vec![
            Table {
                id: "proxies".into(),
                group: "proxies",
                caption: "Proxies".into(),
                head: vec![
                    "Name",
                    "Type",
                    "Status",
                    "Error",
                    "Local address",
                    "Remote address",
                    "Connections",
                    "Bytes to / from local",
                    "Health check",
                    "From",
                ],
                rows: proxies,
                empty: "No proxy is configured.",
            },
            Table {
                id: "visitors".into(),
                group: "visitors",
                caption: "Visitors".into(),
                head: vec![
                    "Name",
                    "Type",
                    "Status",
                    "Error",
                    "Server proxy",
                    "Listens on",
                    "From",
                ],
                rows: visitors,
                empty: "No visitor is configured.",
            },
            Table {
                id: "errors".into(),
                group: "errors",
                caption: "Recent errors (newest first)".into(),
                head: vec!["Proxy", "Time", "Error"],
                rows: errors,
                empty: "No proxy has reported an error.",
            },
        ],
    }
}
