//! What operators install (issue 20): the annotated example configs, the systemd units, the
//! container image definition, the Kubernetes manifests, the Grafana dashboard. Each is
//! checked against the code so it cannot drift.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use common::config::{self, LoadOptions};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tests::procs::repo_root;

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every key path in `v`: `transport.tls.certFile`, `proxies[].name` (the union over a list's
/// tables). An empty table, an empty list and null are keys themselves.
fn key_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                key_paths(v, &p, out);
            }
        }
        Value::Array(a) if a.first().is_some_and(Value::is_object) => {
            for e in a {
                key_paths(e, &format!("{prefix}[]"), out);
            }
        }
        _ => {
            out.insert(prefix.to_owned());
        }
    }
}

fn keys_of(v: &impl serde::Serialize) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    key_paths(&serde_json::to_value(v).unwrap(), "", &mut out);
    out
}

/// Each key of `want` is in the example (itself, or a table or list under it); a key whose
/// default is null (an optional table such as `auth.tokenSource`) is at least explained in a
/// comment that names it.
fn assert_names_every_key(file: &str, want: &BTreeSet<String>, nulls: &BTreeSet<String>) {
    let text = read(file);
    let doc: toml::Table = toml::from_str(&text).unwrap();
    let have = keys_of(&doc);
    let missing: Vec<&String> = want
        .iter()
        .filter(|k| {
            let under = |h: &String| {
                h == *k
                    || h.strip_prefix(k.as_str())
                        .is_some_and(|r| r.starts_with(['.', '[']))
            };
            if have.iter().any(under) {
                return false;
            }
            let leaf = k.rsplit(['.', ']']).next().unwrap_or(k);
            !(nulls.contains(*k) && text.contains(leaf))
        })
        .collect();
    assert!(missing.is_empty(), "{file} does not name {missing:#?}");
}

fn nulls_of(v: &impl serde::Serialize) -> BTreeSet<String> {
    fn walk(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        match v {
            Value::Null => {
                out.insert(prefix.to_owned());
            }
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(v, &p, out);
                }
            }
            Value::Array(a) => {
                for e in a {
                    walk(e, &format!("{prefix}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(&serde_json::to_value(v).unwrap(), "", &mut out);
    out
}

#[test]
fn frps_full_example_names_every_key_at_its_default() {
    let file = "conf/frps_full_example.toml";
    let loaded = config::load_server(&repo_root().join(file), &LoadOptions::default()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded.config,
        config::default_server(),
        "every value in {file} is the default"
    );
    assert_names_every_key(file, &keys_of(&config::default_server()), &{
        let mut n = nulls_of(&config::default_server());
        n.extend(["auth.tokenSource".to_owned(), "webServer.tls".to_owned()]);
        n
    });
}

#[test]
fn frpc_full_example_names_every_key_with_defaults_for_globals() {
    let file = "conf/frpc_full_example.toml";
    let loaded = config::load_client(&repo_root().join(file), &LoadOptions::default()).unwrap();
    // Only what frp-rs cannot run yet is reported: the xtcp proxy and the visitors.
    for w in &loaded.warnings {
        assert!(
            w.contains("proxies[6]") || w.contains("visitors["),
            "unexpected warning: {w}"
        );
    }
    let mut globals = loaded.config.clone();
    globals.proxies.clear();
    globals.visitors.clear();
    assert_eq!(
        globals,
        config::default_client(),
        "every global value in {file} is the default"
    );
    // Every kind of proxy frp has, each key of a proxy and of a visitor somewhere.
    let kinds: BTreeSet<&str> = loaded
        .config
        .proxies
        .iter()
        .map(|p| p.kind.as_str())
        .collect();
    for k in ["tcp", "udp", "http", "https", "tcpmux", "stcp", "xtcp"] {
        assert!(kinds.contains(k), "{file} has no {k} proxy");
    }
    let mut shape = config::default_client();
    shape.proxies.push(Default::default());
    shape.visitors.push(Default::default());
    let mut nulls = nulls_of(&shape);
    nulls.extend([
        "auth.tokenSource".to_owned(),
        "auth.oidc.tokenSource".to_owned(),
        "webServer.tls".to_owned(),
    ]);
    assert_names_every_key(file, &keys_of(&shape), &nulls);
}

/// The units, with the binaries at `bin` instead of /usr/bin.
fn units_in(dir: &Path, bin: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for unit in ["frps.service", "frpc.service", "frpc@.service"] {
        let text = read(&format!("conf/systemd/{unit}"))
            .replace("/usr/bin/", &format!("{}/", bin.display()));
        std::fs::write(dir.join(unit), text).unwrap();
    }
    // A template is verified as an instance of it.
    std::os::unix::fs::symlink("frpc@.service", dir.join("frpc@office.service")).unwrap();
    for unit in ["frps.service", "frpc.service", "frpc@office.service"] {
        out.push(dir.join(unit));
    }
    out
}

#[test]
fn systemd_units_are_hardened_and_reload_frpc() {
    for unit in ["frps.service", "frpc.service", "frpc@.service"] {
        let text = read(&format!("conf/systemd/{unit}"));
        let has = |l: &str| text.lines().any(|t| t.trim() == l);
        for line in [
            "DynamicUser=yes",
            "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
            "AmbientCapabilities=CAP_NET_BIND_SERVICE",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "PrivateDevices=yes",
            "Restart=on-failure",
        ] {
            assert!(has(line), "{unit}: no {line}");
        }
        let bin = if unit.starts_with("frps") {
            "frps"
        } else {
            "frpc"
        };
        let cfg = if unit == "frpc@.service" {
            "/etc/frp/%i.toml".to_owned()
        } else {
            format!("/etc/frp/{bin}.toml")
        };
        assert!(has(&format!("ExecStart=/usr/bin/{bin} -c {cfg}")), "{unit}");
        if bin == "frpc" {
            assert!(
                has(&format!("ExecReload=/usr/bin/frpc reload -c {cfg}")),
                "{unit}"
            );
        } else {
            // frps has no reload; a unit that claimed one would lie.
            assert!(!text.contains("ExecReload="), "{unit}");
        }
    }
}

/// `systemd-analyze verify` accepts the units with the binaries of this build; it reports
/// problems on stderr (and often still exits 0), so any output fails.
#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    assert!(out.status.success());
    let dir = tests::procs::tempdir("units");
    let bin = tests::bin("frps");
    let units = units_in(&dir, bin.parent().unwrap());
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .current_dir(&dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.trim().is_empty(), "{text}");
    // The check itself catches a bad directive.
    let bad = dir.join("bad.service");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&units[0])
            .unwrap()
            .replace("ProtectSystem=strict", "ProtectSystem=nonsense"),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.stderr.is_empty(), "a bad unit is reported");
}

/// The commands between `# build steps` and `# end of build steps` in the Dockerfile.
fn dockerfile_build_steps(docker: &str) -> Vec<String> {
    let mut steps = Vec::new();
    let mut inside = false;
    for l in docker.lines() {
        let l = l.trim();
        if l.starts_with("# build steps") {
            inside = true;
        } else if l == "# end of build steps" {
            inside = false;
        } else if inside {
            if let Some(cmd) = l.strip_prefix("RUN ") {
                steps.push(cmd.trim().to_owned());
            }
        }
    }
    steps
}

/// The lines of each ```sh block of `md`.
fn sh_blocks(md: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut cur: Option<Vec<String>> = None;
    for l in md.lines() {
        match (&mut cur, l.trim()) {
            (None, "```sh") => cur = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(cur.take()),
            (Some(b), l) => b.push(l.to_owned()),
            _ => {}
        }
    }
    blocks
}

#[test]
fn dockerfile_builds_as_the_readme_says_and_copies_what_that_builds() {
    let docker = read("Dockerfile");
    let steps = dockerfile_build_steps(&docker);
    assert!(!steps.is_empty(), "the Dockerfile marks its build steps");
    // The README's install block runs the same commands in the same order.
    let readme = read("README.md");
    let block = sh_blocks(&readme)
        .into_iter()
        .find(|b| b.iter().any(|l| l.starts_with(&steps[0])))
        .expect("a README block with the Dockerfile's build steps");
    let commands: Vec<String> = block
        .iter()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_owned())
        .filter(|l| l.starts_with("cargo "))
        .collect();
    assert_eq!(commands, steps, "README and Dockerfile build the same way");
    // What those steps build: the profile's directory, for each binary the image takes.
    let profile = if steps.iter().any(|s| s.contains("--release")) {
        "release"
    } else {
        "debug"
    };
    let copied: Vec<&str> = docker
        .lines()
        .filter_map(|l| l.trim().strip_prefix("COPY --from=build "))
        .collect();
    let mut bins = BTreeSet::new();
    for c in &copied {
        let (src, dst) = c.split_once(' ').unwrap();
        let bin = src
            .strip_prefix(&format!("/src/target/{profile}/"))
            .unwrap_or_else(|| panic!("{src} is not what `{}` builds", steps[0]));
        // A binary of this workspace (built here in the debug profile by the test run).
        assert!(tests::bin(bin).exists());
        assert!(
            block
                .iter()
                .any(|l| l.contains(&format!("target/{profile}/{bin}"))),
            "the README installs {bin} from where it is built"
        );
        assert_eq!(dst, format!("/usr/bin/{bin}"));
        bins.insert(bin);
    }
    assert_eq!(bins, BTreeSet::from(["frpc", "frps"]), "both binaries");
    // A small runtime, not root, config at /etc/frp.
    let runtime = docker.lines().rfind(|l| l.starts_with("FROM ")).unwrap();
    assert!(
        runtime.contains("distroless") || runtime.contains("scratch"),
        "{runtime}"
    );
    let user = docker
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "{user}"
    );
    assert!(docker.contains(r#"CMD ["-c", "/etc/frp/frps.toml"]"#));
    assert!(read(".dockerignore").lines().any(|l| l == "target"));
}

/// Every document of a multi-document YAML file, as JSON values.
fn yaml_docs(rel: &str) -> Vec<Value> {
    use serde::Deserialize;
    let text = read(rel);
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn one<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The port a Service/probe names, as a container port number.
fn container_port(container: &Value, port: &Value) -> u64 {
    if let Some(n) = port.as_u64() {
        return n;
    }
    container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == *port)
        .unwrap_or_else(|| panic!("no container port {port}"))["containerPort"]
        .as_u64()
        .unwrap()
}

#[test]
fn kubernetes_manifests_wire_config_secret_ports_probes_and_scrape() {
    let docs = yaml_docs("deploy/kubernetes/frps.yaml");
    let cm = one(&docs, "ConfigMap", "frps");
    let secret = one(&docs, "Secret", "frps");
    let deploy = one(&docs, "Deployment", "frps");
    let svc = one(&docs, "Service", "frps");
    let dash = one(&docs, "Service", "frps-dashboard");
    let monitor = one(&docs, "ServiceMonitor", "frps");

    // The config in the ConfigMap loads, and its ports are the ones wired below.
    let text = cm["data"]["frps.toml"].as_str().unwrap();
    let cfg = config::load_server_text(text, Path::new("frps.toml"), &LoadOptions::default())
        .unwrap()
        .config;
    assert!(cfg.enable_prometheus, "/metrics is on");
    assert!(cfg.web_server.port != 0, "the web server serves /healthz");

    let pod = &deploy["spec"]["template"];
    assert_eq!(
        deploy["spec"]["selector"]["matchLabels"],
        pod["metadata"]["labels"]
    );
    let c = &pod["spec"]["containers"][0];
    // The config file is the ConfigMap's, mounted at /etc/frp.
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args, ["-c", "/etc/frp/frps.toml"]);
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/etc/frp")
        .expect("config mounted at /etc/frp");
    let vol = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(vol["configMap"]["name"], "frps");
    // Every environment variable the config names comes from a key the Secret has; the
    // token is one of them.
    let env = c["env"].as_array().unwrap();
    assert!(text.contains("auth.token = \"{{ .Envs.FRP_TOKEN }}\""));
    for e in env {
        let r = &e["valueFrom"]["secretKeyRef"];
        assert_eq!(r["name"], "frps");
        let key = r["key"].as_str().unwrap();
        assert!(secret["stringData"][key].is_string(), "Secret has {key}");
        let name = e["name"].as_str().unwrap();
        assert!(text.contains(&format!(".Envs.{name} ")), "{name} is used");
    }
    assert!(env.iter().any(|e| e["name"] == "FRP_TOKEN"));
    // Probes on /healthz of the web server's port.
    for probe in ["readinessProbe", "livenessProbe"] {
        let g = &c[probe]["httpGet"];
        assert_eq!(g["path"], "/healthz", "{probe}");
        assert_eq!(
            container_port(c, &g["port"]),
            u64::from(cfg.web_server.port),
            "{probe}"
        );
    }
    // The Service reaches bindPort and both vhost ports.
    assert_eq!(svc["spec"]["selector"], pod["metadata"]["labels"]);
    let targets: BTreeSet<u64> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| container_port(c, &p["targetPort"]))
        .collect();
    for (key, port) in [
        ("bindPort", cfg.bind_port),
        ("vhostHTTPPort", cfg.vhost_http_port),
        ("vhostHTTPSPort", cfg.vhost_https_port),
    ] {
        assert!(
            targets.contains(&u64::from(port)),
            "Service has {key} {port}"
        );
    }
    // Not root, nothing to escalate to.
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    // The ServiceMonitor scrapes /metrics through the dashboard Service, with its credentials.
    let sel = &monitor["spec"]["selector"]["matchLabels"];
    for (k, v) in sel.as_object().unwrap() {
        assert_eq!(
            &dash["metadata"]["labels"][k], v,
            "ServiceMonitor selects {k}"
        );
    }
    let ep = &monitor["spec"]["endpoints"][0];
    assert_eq!(ep["path"], "/metrics");
    let dport = dash["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == ep["port"])
        .expect("the ServiceMonitor's port is the dashboard Service's");
    assert_eq!(
        container_port(c, &dport["targetPort"]),
        u64::from(cfg.web_server.port)
    );
    for k in ["username", "password"] {
        let key = ep["basicAuth"][k]["key"].as_str().unwrap();
        assert!(secret["stringData"][key].is_string(), "Secret has {key}");
    }
}

/// The metric names a PromQL text uses (`frp_*`, `process_*`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("frp_") || t.starts_with("process_"))
        .map(str::to_owned)
        .collect()
}

/// Every query of the dashboard, panels and variables.
fn dashboard_queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_queries(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| dashboard_queries(v, out)),
        _ => {}
    }
}

/// Names of the series in a Prometheus text exposition.
fn exposed(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn grafana_dashboard_queries_only_series_that_frps_and_frpc_serve() {
    use common::http::{request, BasicAuth};
    use tests::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    init_log();
    let dashboard: Value = serde_json::from_str(&read("conf/grafana-dashboard.json")).unwrap();
    let mut queries = Vec::new();
    dashboard_queries(&dashboard["panels"], &mut queries);
    dashboard_queries(&dashboard["templating"], &mut queries);
    let wanted: BTreeSet<String> = queries.iter().flat_map(|q| metric_names(q)).collect();
    for s in [
        "frp_server_client_counts",
        "frp_server_proxy_counts",
        "frp_server_proxy_counts_detailed",
        "frp_server_connection_counts",
        "frp_server_traffic_in",
        "frp_server_traffic_out",
    ] {
        assert!(wanted.contains(s), "the dashboard shows frp's {s}");
    }
    assert!(wanted.iter().any(|m| m.starts_with("frp_rs_server_")));
    assert!(wanted.iter().any(|m| m.starts_with("frp_rs_client_")));

    // frps and frpc with every labelled series made to appear: traffic, a refused proxy, a
    // dead local service, a failed login (the first of serverAddrs is down), garbage on
    // bindPort.
    let (dash_port, admin_port) = (free_port().await, free_port().await);
    let (allowed, dead_allowed) = (free_port().await, free_port().await);
    let frps = Frps::start(|c| {
        c.web_server.port = dash_port;
        c.web_server.user = "admin".into();
        c.web_server.password = "s3cret".into();
        c.enable_prometheus = true;
        c.allow_ports = [allowed, dead_allowed]
            .map(|p| common::config::PortsRange {
                single: p,
                ..Default::default()
            })
            .to_vec();
    })
    .await;
    let echo = echo_tcp().await;
    let dead_local: std::net::SocketAddr = ([127, 0, 0, 1], free_port().await).into();
    let down = free_port().await;
    let frpc = Frpc::start(frps.addr, |c| {
        c.server_addr = "0.0.0.0".into();
        c.server_port = 7000;
        c.server_addrs = vec![format!("127.0.0.1:{down}"), frps.addr.to_string()];
        c.login_fail_exit = false;
        c.web_server.port = admin_port;
        c.web_server.user = "admin".into();
        c.web_server.password = "s3cret".into();
        c.proxies = vec![
            proxy("good", "tcp", echo, allowed),
            proxy("refused", "tcp", echo, 1),
            proxy("dead", "tcp", dead_local, dead_allowed),
        ];
    });
    frpc.wait_running("good").await;
    frpc.wait_running("dead").await;
    assert_eq!(
        echo_through(([127, 0, 0, 1], allowed).into(), b"hello").await,
        b"hello"
    );
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", dead_allowed))
        .await
        .unwrap();
    let _ = tokio::time::timeout(PATIENCE, s.read(&mut [0u8; 16])).await;
    let mut g = tokio::net::TcpStream::connect(frps.addr).await.unwrap();
    g.write_all(&[0xff; 64]).await.unwrap();
    let _ = tokio::time::timeout(PATIENCE, g.read(&mut [0u8; 16])).await;

    let auth = BasicAuth {
        user: "admin".into(),
        password: "s3cret".into(),
    };
    let scrape = |port: u16| {
        let auth = auth.clone();
        async move {
            let (code, text) = request(
                &format!("127.0.0.1:{port}"),
                &auth,
                hyper::Method::GET,
                "/metrics",
                hyper::body::Bytes::new(),
            )
            .await
            .unwrap();
            assert_eq!(code, hyper::StatusCode::OK, "{text}");
            exposed(&text)
        }
    };
    // Counters appear with their first event, which may still be on its way: bounded wait.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut have = scrape(dash_port).await;
        have.extend(scrape(admin_port).await);
        let missing: Vec<&String> = wanted.difference(&have).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dashboard queries series nobody serves: {missing:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    frpc.stop().await;
    frps.stop().await;
}
