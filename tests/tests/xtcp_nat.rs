//! xtcp through two real NATs: each frpc in its own network namespace behind its own Linux NAT
//! (nftables masquerade, and a firewall dropping what arrives unasked) in front of a shared "internet" segment where frps, the STUN server and
//! the service live (this test's own namespace). The two private networks have no route to each
//! other and the NATs let a datagram in only once their side has sent to its sender, so the
//! tunnel works only if the hole punch does.
//!
//! ```text
//!  hostA 192.168.213.2 -- natA -- 10.213.77.2 --+
//!                                                +-- bridge (ns wan) -- 10.213.77.1 (this ns:
//!  hostB 192.168.214.2 -- natB -- 10.213.77.3 --+                       frps, STUN, echo)
//! ```
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables); `.ci/run` installs them. Without them the
//! test says why and passes, except under `CI=true`, where it fails. On a machine whose kernel or
//! sandbox refuses namespaces or NAT it says so and passes.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use tests::*;

const WAN_IP: [u8; 4] = [10, 213, 77, 1];

/// The namespaces and links of the picture above; all removed on drop (deleting a namespace
/// deletes its veth pairs, this namespace's end and the route through it included).
struct Nets {
    names: Vec<String>,
}

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Nets {
    fn ns(&self, role: &str) -> String {
        format!("frs{}-{role}", std::process::id())
    }

    /// Runs `ip netns exec <ns> <args>`.
    fn exec(&self, role: &str, args: &[&str]) -> Result<(), String> {
        let ns = self.ns(role);
        let mut all = vec!["ip", "netns", "exec", &ns];
        all.extend_from_slice(args);
        sh(&all)
    }

    fn create() -> Result<Nets, String> {
        let mut nets = Nets { names: Vec::new() };
        for role in ["wan", "na", "nb", "ha", "hb"] {
            let ns = nets.ns(role);
            sh(&["ip", "netns", "add", &ns])?;
            nets.names.push(ns);
            nets.exec(role, &["ip", "link", "set", "lo", "up"])?;
        }
        let tag = std::process::id() % 100_000;
        let wan = nets.ns("wan");
        nets.exec("wan", &["ip", "link", "add", "br0", "type", "bridge"])?;
        nets.exec("wan", &["ip", "link", "set", "br0", "up"])?;
        // This namespace's leg on the bridge.
        let here = format!("frw{tag}");
        sh(&[
            "ip", "link", "add", &here, "type", "veth", "peer", "name", "up0", "netns", &wan,
        ])?;
        sh(&["ip", "addr", "add", "10.213.77.1/24", "dev", &here])?;
        sh(&["ip", "link", "set", &here, "up"])?;
        nets.exec("wan", &["ip", "link", "set", "up0", "master", "br0", "up"])?;
        for (nat, host, public, lan) in [
            ("na", "ha", "10.213.77.2", 213),
            ("nb", "hb", "10.213.77.3", 214),
        ] {
            let (nat_ns, host_ns) = (nets.ns(nat), nets.ns(host));
            let leg = format!("up{nat}");
            // NAT's outside leg on the bridge.
            sh(&[
                "ip", "link", "add", "o", "netns", &nat_ns, "type", "veth", "peer", "name", &leg,
                "netns", &wan,
            ])?;
            nets.exec("wan", &["ip", "link", "set", &leg, "master", "br0", "up"])?;
            nets.exec(
                nat,
                &["ip", "addr", "add", &format!("{public}/24"), "dev", "o"],
            )?;
            nets.exec(nat, &["ip", "link", "set", "o", "up"])?;
            // NAT's inside leg to its host.
            sh(&[
                "ip", "link", "add", "i", "netns", &nat_ns, "type", "veth", "peer", "name", "e",
                "netns", &host_ns,
            ])?;
            let gw = format!("192.168.{lan}.1");
            nets.exec(nat, &["ip", "addr", "add", &format!("{gw}/24"), "dev", "i"])?;
            nets.exec(nat, &["ip", "link", "set", "i", "up"])?;
            nets.exec(nat, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
            nets.exec(
                nat,
                &["ip", "route", "add", "default", "via", "10.213.77.1"],
            )?;
            nets.exec(nat, &["nft", "add", "table", "ip", "nat"])?;
            nets.exec(
                nat,
                &[
                    "nft",
                    "add chain ip nat post { type nat hook postrouting priority 100; }",
                ],
            )?;
            nets.exec(
                nat,
                &["nft", "add rule ip nat post oifname \"o\" masquerade"],
            )?;
            // A home router's firewall: what arrives unasked from outside for the router itself
            // is dropped (no conntrack entry is kept for it, so it cannot take the mapping the
            // host's own datagrams need later; a NAT that answers with ICMP instead breaks hole
            // punching for frp as well).
            nets.exec(nat, &["nft", "add table inet fw"])?;
            nets.exec(
                nat,
                &[
                    "nft",
                    "add chain inet fw in { type filter hook input priority 0; policy accept; }",
                ],
            )?;
            nets.exec(
                nat,
                &["nft", "add rule inet fw in iifname \"o\" ct state new drop"],
            )?;
            nets.exec(
                host,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("192.168.{lan}.2/24"),
                    "dev",
                    "e",
                ],
            )?;
            nets.exec(host, &["ip", "link", "set", "e", "up"])?;
            nets.exec(host, &["ip", "route", "add", "default", "via", &gw])?;
        }
        // The user of the visitor is here: its private network is reached through natB (only
        // for the user's own connection; natB forwards it without translation).
        sh(&[
            "ip",
            "route",
            "add",
            "192.168.214.0/24",
            "via",
            "10.213.77.3",
        ])?;
        Ok(nets)
    }

    /// Starts the real frpc in `role`'s namespace.
    /// `XTCP_NAT_<ROLE>_FRPC` (ROLE: HA, HB) runs another frpc there instead, e.g. Go frp's,
    /// to check a mixed pairing or frp itself in the same picture by hand.
    fn frpc(&self, role: &str, config: &str, log: &std::path::Path) -> tokio::process::Child {
        let log = std::fs::File::create(log).expect("log file");
        let other = std::env::var_os(format!("XTCP_NAT_{}_FRPC", role.to_uppercase()));
        tokio::process::Command::new("ip")
            .args(["netns", "exec", &self.ns(role)])
            .arg(other.map_or_else(|| bin("frpc"), std::path::PathBuf::from))
            .args(["-c", config])
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn frpc in its namespace")
    }
}

impl Drop for Nets {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = sh(&["ip", "netns", "del", ns]);
        }
    }
}

/// Prints both frpc's logs if the test fails while it is alive.
struct Logs(std::path::PathBuf);

impl Drop for Logs {
    fn drop(&mut self) {
        for f in ["home.log", "laptop.log"] {
            let text = std::fs::read_to_string(self.0.join(f)).unwrap_or_default();
            eprintln!("--- {f}\n{text}");
        }
    }
}

/// Why the test cannot run here.
enum Missing {
    /// Something `.ci/run` provides (root, `ip`, `nft`): under `CI=true` the test fails.
    Setup(String),
    /// The kernel or sandbox refuses network namespaces or NAT to this process: the test
    /// cannot run on such a machine at all, and says so.
    Sandbox(String),
}

/// The test's prerequisites, or why they are missing.
fn prerequisites() -> Result<(), Missing> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root {
        return Err(Missing::Setup("not root".into()));
    }
    for tool in ["ip", "nft"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Err(Missing::Setup(format!("{tool} not installed")));
        }
    }
    // A namespace with a NAT table, made and removed.
    let probe = format!("frs{}-probe", std::process::id());
    let made = sh(&["ip", "netns", "add", &probe]).and_then(|()| {
        let nft = |rule: &str| sh(&["ip", "netns", "exec", &probe, "nft", rule]);
        nft("add table ip nat")?;
        nft("add chain ip nat post { type nat hook postrouting priority 100; }")?;
        nft("add rule ip nat post masquerade")
    });
    let _ = sh(&["ip", "netns", "del", &probe]);
    made.map_err(Missing::Sandbox)
}

#[tokio::test]
async fn xtcp_punches_through_two_real_nats() {
    init_log();
    match prerequisites() {
        Ok(()) => {}
        Err(Missing::Setup(why)) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the NAT test needs root, ip and nft under CI: {why}"
            );
            eprintln!("SKIPPED xtcp_punches_through_two_real_nats: {why}");
            return;
        }
        Err(Missing::Sandbox(why)) => {
            eprintln!("SKIPPED xtcp_punches_through_two_real_nats: this machine refuses network namespaces or NAT: {why}");
            return;
        }
    }
    let nets = Nets::create().expect("network namespaces");
    let wan_ip = IpAddr::from(WAN_IP);
    let dash = free_port().await;
    let frps = Frps::start(|c| {
        c.bind_addr = wan_ip.to_string();
        c.proxy_bind_addr = wan_ip.to_string();
        c.web_server.addr = "127.0.0.1".into();
        c.web_server.port = dash;
    })
    .await;
    let stun = stun_pair_at(wan_ip).await;
    let echo = echo_tcp_at(wan_ip).await;
    let dir = procs::tempdir("xtcp-nat");
    let head = format!(
        "serverAddr = \"{wan_ip}\"\nserverPort = {}\nauth.token = \"{TOKEN}\"\nnatHoleStunServer = \"{stun}\"\nlog.level = \"debug\"\n",
        frps.addr.port()
    );
    let home = procs::write(
        &dir,
        "home.toml",
        &format!(
            "{head}user = \"home\"\n[[proxies]]\nname = \"ssh\"\ntype = \"xtcp\"\nsecretKey = \"sk\"\nlocalIP = \"{wan_ip}\"\nlocalPort = {}\nallowUsers = [\"laptop\"]\n",
            echo.port()
        ),
    );
    let tp = free_port().await;
    let laptop = procs::write(
        &dir,
        "laptop.toml",
        &format!(
            "{head}user = \"laptop\"\n[[visitors]]\nname = \"ssh-v\"\ntype = \"xtcp\"\nserverUser = \"home\"\nserverName = \"ssh\"\nsecretKey = \"sk\"\nbindAddr = \"0.0.0.0\"\nbindPort = {tp}\nkeepTunnelOpen = true\n"
        ),
    );
    let _home = nets.frpc("ha", &home, &dir.join("home.log"));
    let _laptop = nets.frpc("hb", &laptop, &dir.join("laptop.log"));
    let addr = SocketAddr::from(([192, 168, 214, 2], tp));
    let logs = Logs(dir.clone());
    wait_tunnel(addr).await;
    std::mem::forget(logs);
    let data = pattern(4 << 20, 21);
    assert!(echo_through(addr, &data).await == data, "bytes differ");
    // frps saw both frpc from their NATs' public addresses, not their private ones.
    let (code, clients) = api(
        SocketAddr::from(([127, 0, 0, 1], dash)),
        hyper::Method::GET,
        "/api/clients",
        "",
    )
    .await;
    assert_eq!(code, 200);
    let mut seen: Vec<String> = clients
        .as_array()
        .expect("a list of clients")
        .iter()
        .map(|c| c["clientIP"].as_str().unwrap_or_default().to_owned())
        .collect();
    seen.sort();
    assert_eq!(seen, ["10.213.77.2", "10.213.77.3"]);
    let _ = std::fs::remove_dir_all(dir);
}
