//! The dashboard page at `webServer` `/` (issue 19): an overview of the server, the proxies
//! by type with a 7-day traffic chart each, the clients, and the offline-proxy clean-up.
//! Server-rendered from a [`View`] that `/ui/state.json` also serves for the live refresh
//! (see `common::ui`); everything here sits behind the dashboard's Basic auth.

use crate::metrics::{civil, today, ProxyRecord};
use crate::service::Shared;
use common::http::{self, Resp};
use common::ui::{self, Cell, Day, Figure, FormToken, Table, View};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use std::sync::atomic::Ordering::Relaxed;
use tokio::time::Instant;

const PAGE_HTML: &str = include_str!("ui/dashboard.html");

/// How often the page asks for fresh figures.
const REFRESH_MS: u64 = 2000;

/// The page's fixed parts.
#[derive(Debug)]
pub(crate) struct Page {
    env: ui::minijinja::Environment<'static>,
    token: FormToken,
    started: Instant,
    /// The port frps listens on, when known.
    bind_port: Option<u16>,
}

impl Page {
    pub(crate) fn new(bind_port: Option<u16>) -> Page {
        Page {
            env: ui::environment(PAGE_HTML),
            token: FormToken::default(),
            started: Instant::now(),
            bind_port,
        }
    }
}

/// The page's routes; `None` for any other path (the API's).
pub(crate) fn route(shared: &Shared, page: &Page, req: &Request<Bytes>) -> Option<Resp> {
    let path = req.uri().path();
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    if let Some(asset) = ui::asset(path).filter(|_| get) {
        return Some(asset);
    }
    Some(match path {
        "/" | "/index.html" if get => {
            let q = http::query(req);
            // A count only: the URL cannot put other words in the notice.
            let pruned = ui::field(&q, "pruned").and_then(|n| n.parse::<u64>().ok());
            render(shared, page, pruned)
        }
        "/ui/state.json" if get => ui::state(&view(shared, page)),
        "/ui/chart.svg" if get => {
            let q = http::query(req);
            let name = ui::field(&q, "proxy").unwrap_or("");
            match shared.metrics.proxy(name) {
                Some(r) => ui::svg(chart(name, &r)),
                None => http::error(StatusCode::NOT_FOUND, "no proxy info found"),
            }
        }
        // The clean-up frp's dashboard offers (its `DELETE /api/proxies?status=offline`) as a
        // form, so it works without JavaScript. The dashboard takes no request bodies, so the
        // form's token travels in the query.
        "/ui/prune" if req.method() == Method::POST => {
            let q = http::query(req);
            if let Some(refused) = ui::refuse_form(req, &q, &page.token) {
                return Some(refused);
            }
            let (cleared, total) = shared.metrics.clear_offline();
            tracing::info!("cleared [{cleared}] offline proxies, total [{total}] proxies");
            ui::see_other(&format!("/?pruned={cleared}"))
        }
        "/" | "/index.html" | "/ui/state.json" | "/ui/chart.svg" | "/ui/prune" => {
            http::reply(StatusCode::METHOD_NOT_ALLOWED, "")
        }
        _ => return None,
    })
}

fn render(shared: &Shared, page: &Page, pruned: Option<u64>) -> Resp {
    let ctx = ui::minijinja::context! {
        version => common::FRP_VERSION,
        interval_ms => REFRESH_MS,
        view => view(shared, page),
        token => page.token.as_str(),
        metrics => shared.cfg.enable_prometheus,
        pruned => pruned,
    };
    ui::render(&page.env, StatusCode::OK, ctx)
}

/// The figures and tables of the dashboard.
fn view(shared: &Shared, page: &Page) -> View {
    let m = &shared.metrics;
    let c = &shared.cfg;
    let (tin, tout, conns, _) = m.totals();
    let proxies = m.proxies();
    let clients = m.clients.list();
    let online_proxies = proxies.iter().filter(|(_, r)| r.online).count();
    let online_clients = clients.iter().filter(|c| c.online).count();
    let mut ports = vec![format!("bind {}", page.bind_port.unwrap_or(c.bind_port))];
    for (name, port) in [
        ("http", c.vhost_http_port),
        ("https", c.vhost_https_port),
        ("tcpmux", c.tcpmux_http_connect_port),
        ("kcp", c.kcp_bind_port),
        ("quic", c.quic_bind_port),
    ] {
        if port > 0 {
            ports.push(format!("{name} {port}"));
        }
    }
    let figures = vec![
        Figure::new("version", "Version", common::FRP_VERSION),
        Figure::new("ports", "Ports", ports.join(", ")),
        Figure::new(
            "uptime",
            "Uptime",
            ui::duration(page.started.elapsed().as_secs()),
        ),
        Figure::new(
            "clients",
            "Clients online",
            format!("{online_clients} of {}", clients.len()),
        ),
        Figure::new(
            "proxies",
            "Proxies online",
            format!("{online_proxies} of {}", proxies.len()),
        ),
        Figure::new("traffic-in", "Traffic in today", ui::bytes(tin)),
        Figure::new("traffic-out", "Traffic out today", ui::bytes(tout)),
        Figure::new("conns", "Current connections", conns.max(0)),
        Figure::new(
            "pool",
            "Pooled work connections",
            shared.registry.pooled_work_conns(),
        ),
    ];
    let mut tables = Vec::new();
    let mut kinds: Vec<&str> = proxies.iter().map(|(_, r)| r.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for kind in kinds {
        let rows = proxies
            .iter()
            .filter(|(_, r)| r.kind == kind)
            .map(|(name, r)| proxy_row(shared, name, r))
            .collect();
        tables.push(Table {
            id: format!("proxies-{kind}"),
            group: "proxies",
            caption: format!("{} proxies", kind.to_uppercase()),
            head: vec![
                "Name",
                "Status",
                "Client",
                "Remote address or domains",
                "Connections",
                "Today in",
                "Today out",
                "Last 7 days (in, out)",
            ],
            rows,
            empty: "None.",
        });
    }
    if tables.is_empty() {
        tables.push(Table {
            id: "proxies-none".into(),
            group: "proxies",
            caption: "Proxies".into(),
            head: vec!["Name"],
            rows: Vec::new(),
            empty: "No proxy has been registered yet.",
        });
    }
    let client_rows = clients
        .iter()
        .map(|cl| {
            let (status, class) = if cl.online {
                ("online", "ok")
            } else {
                ("offline", "off")
            };
            let name = if cl.client_id.is_empty() {
                cl.run_id.clone()
            } else {
                cl.client_id.clone()
            };
            vec![
                Cell::text(name),
                Cell::status(status, class),
                Cell::text(&cl.user),
                Cell::text(&cl.hostname),
                Cell::text(&cl.client_ip),
                Cell::text(&cl.wire_protocol),
                Cell::text(&cl.version),
                Cell::text(if cl.online {
                    "now".to_owned()
                } else {
                    ui::time(cl.disconnected_at)
                }),
            ]
        })
        .collect();
    tables.push(Table {
        id: "clients".into(),
        group: "clients",
        caption: "Clients".into(),
        head: vec![
            "Client",
            "Status",
            "User",
            "Host name",
            "Address",
            "Wire protocol",
            "Version",
            "Last seen",
        ],
        rows: client_rows,
        empty: "No client is online or remembered.",
    });
    View { figures, tables }
}

fn proxy_row(shared: &Shared, name: &str, r: &ProxyRecord) -> Vec<Cell> {
    let (tin, tout) = r.daily(today());
    let (status, class) = if r.online {
        ("online", "ok")
    } else {
        ("offline", "off")
    };
    let client = match (r.user.as_str(), r.client_id.as_str()) {
        ("", "") => String::new(),
        ("", id) => id.to_owned(),
        (user, "") => user.to_owned(),
        (user, id) => format!("{user} / {id}"),
    };
    let (sum_in, sum_out): (u64, u64) = (tin.iter().sum(), tout.iter().sum());
    vec![
        Cell::text(name),
        Cell::status(status, class),
        Cell::text(client),
        Cell::text(target(shared, r)),
        Cell::text(r.traffic.conns.load(Relaxed).max(0)),
        Cell::text(ui::bytes(tin.first().copied().unwrap_or(0))),
        Cell::text(ui::bytes(tout.first().copied().unwrap_or(0))),
        Cell::chart(
            // The figures in the URL make a changed chart a new image for the browser.
            format!(
                "/ui/chart.svg?proxy={}&v={sum_in}-{sum_out}",
                ui::query_value(name)
            ),
            format!(
                "7-day traffic of {name}: {} in, {} out",
                ui::bytes(sum_in),
                ui::bytes(sum_out)
            ),
        ),
    ]
}

/// Where users reach a proxy: `:port` for tcp and udp, its domains for http, https and
/// tcpmux, nothing for the secret types.
fn target(shared: &Shared, r: &ProxyRecord) -> String {
    if let Some(p) = r.conf.remote_port {
        return format!(":{p}");
    }
    let mut names: Vec<String> = r
        .conf
        .type_keys
        .get("customDomains")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Some(sub) = r.conf.type_keys.get("subdomain").and_then(|v| v.as_str()) {
        let host = &shared.cfg.sub_domain_host;
        names.push(if host.is_empty() {
            sub.to_owned()
        } else {
            format!("{sub}.{host}")
        });
    }
    names.join(", ")
}

/// The 7-day chart of one proxy, oldest day first.
fn chart(name: &str, r: &ProxyRecord) -> String {
    let day = today();
    let (tin, tout) = r.daily(day);
    let days: Vec<Day> = (0..tin.len())
        .rev()
        .map(|age| {
            let (_, mo, d) = civil(day - age as i64);
            Day {
                label: format!("{mo:02}-{d:02}"),
                bytes_in: tin[age],
                bytes_out: tout.get(age).copied().unwrap_or(0),
            }
        })
        .collect();
    ui::traffic_chart(&format!("Traffic of {name}, last 7 days"), &days)
}
