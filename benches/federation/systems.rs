//! The two systems under test, set up for the same job: edge A hosts the load components'
//! domains `l<i>.a.test`, edge B the sink components' domains `r<i>.b.test`; A reaches B over
//! s2s with TLS (required) and server dialback, finding it through DNS (dnsmasq, no SRV, so
//! the address on 5269). Certificates are self-signed ECDSA P-256, so neither side can
//! authenticate by certificate and both use dialback.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::world::{Proc, A_IP, B_IP, COMPONENT_PORT};

/// The component secret of every load and sink domain.
pub const SECRET: &str = "bench-component-secret";
/// The admin API token of both xfed edges.
pub const ADMIN_TOKEN: &str = "bench-admin-token";

pub fn local(i: usize) -> String {
    format!("l{i}.a.test")
}

pub fn remote(i: usize) -> String {
    format!("r{i}.b.test")
}

/// How many domains each side hosts.
#[derive(Clone, Copy)]
pub struct Layout {
    /// Domain pairs that carry the throughput and latency load: l<i> → r<i>.
    pub pairs: usize,
    /// Further remote domains r<pairs>.. that each get one stream in the handshake and
    /// memory measurement.
    pub fresh: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum System {
    Xfed,
    Prosody,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Xfed => "xfed",
            System::Prosody => "prosody",
        }
    }
}

/// A running pair of edges.
pub struct Edges {
    pub a: Proc,
    pub b: Proc,
    /// Domains the sink connects a link as. Prosody needs one component connection per
    /// domain; an xfed tenant takes all its domains over any of its links, so the sink opens
    /// one per pair there.
    pub sink_domains: Vec<String>,
}

pub fn component_addr(ip: &str) -> SocketAddr {
    format!("{ip}:{COMPONENT_PORT}")
        .parse()
        .expect("a literal address")
}

/// Writes a self-signed certificate for `zone` and `*.zone`: (cert, key) paths.
pub fn certificate(dir: &Path, zone: &str) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().expect("ECDSA P-256 key");
    let params = rcgen::CertificateParams::new(vec![zone.to_string(), format!("*.{zone}")])
        .expect("valid names");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    let (c, k) = (
        dir.join(format!("{zone}.pem")),
        dir.join(format!("{zone}.key")),
    );
    fs::write(&c, cert.pem()).expect("work folder writable");
    fs::write(&k, key.serialize_pem()).expect("work folder writable");
    (c, k)
}

// --- xfed -------------------------------------------------------------------------------

/// Extra tenants on A for the tenancy measurement: `tenants` tenants in all, and static
/// routes adding up to `routes` (the load tenant's own for its 100 peers among them).
#[derive(Clone, Copy, Debug)]
pub struct Crowd {
    pub tenants: usize,
    pub routes: usize,
}

pub fn start_xfed(bin: &Path, dir: &Path, layout: Layout) -> Edges {
    start_xfed_sm(bin, dir, layout, true)
}

/// Both edges xfed, with stream management (XEP-0198) on their s2s streams on or off.
pub fn start_xfed_sm(bin: &Path, dir: &Path, layout: Layout, sm: bool) -> Edges {
    let a = xfed_node(bin, &dir.join("xfed-a"), "a", layout, None, sm);
    let b = xfed_node(bin, &dir.join("xfed-b"), "b", layout, None, sm);
    Edges {
        a,
        b,
        sink_domains: (0..layout.pairs).map(remote).collect(),
    }
}

#[cfg(feature = "cluster")]
/// Edge A alone (its load tenant for `pairs` pairs), for an edge B of another shape.
pub fn xfed_a(bin: &Path, dir: &Path, pairs: usize) -> Proc {
    let layout = Layout { pairs, fresh: 0 };
    xfed_node(bin, dir, "a", layout, None, true)
}

/// Stops edge A, then starts it again with `crowd` configured beside the load tenant. In
/// that order: the new node must bind the addresses the old one held, and must not be taken
/// for listening while the old one still answers.
pub fn restart_xfed_a(
    bin: &Path,
    dir: &Path,
    edges: Edges,
    layout: Layout,
    crowd: Option<Crowd>,
) -> Edges {
    let Edges { a, b, sink_domains } = edges;
    drop(a);
    let name = if crowd.is_some() {
        "xfed-a-crowd"
    } else {
        "xfed-a-again"
    };
    let a = xfed_node(bin, &dir.join(name), "a", layout, crowd, true);
    Edges { a, b, sink_domains }
}

fn xfed_node(
    bin: &Path,
    dir: &Path,
    side: &str,
    layout: Layout,
    crowd: Option<Crowd>,
    sm: bool,
) -> Proc {
    let (ip, tenant_file) = if side == "a" {
        let mut t = tenant("load", (0..layout.pairs).map(local));
        if let Some(crowd) = crowd {
            t.push_str("[static_routes]\nenabled = true\n[static_routes.routes]\n");
            for i in 0..layout.pairs {
                let _ = writeln!(t, "\"{}\" = [\"{B_IP}:5269\"]", remote(i));
            }
            fs::create_dir_all(dir.join("tenants")).expect("work folder writable");
            write_crowd(&dir.join("tenants"), crowd, layout.pairs);
        }
        (A_IP, ("load", t))
    } else {
        let t = tenant("sink", (0..layout.pairs + layout.fresh).map(remote));
        (B_IP, ("sink", t))
    };
    let edge = XfedEdge {
        side,
        ip,
        sm,
        limits: "",
    };
    edge.start(bin, dir, &[tenant_file])
}

/// One xfed edge of the harness: what sets it apart from the others, which share the rest
/// of their configuration (TLS required, dialback, DNS from dnsmasq, raised limits on
/// unauthenticated connections).
pub struct XfedEdge<'a> {
    /// `a`, `b`, `c`: its node is `bench-<side>`, its certificate for `<side>.test`.
    pub side: &'a str,
    /// Where it listens: s2s on 5269, components on [`COMPONENT_PORT`], admin on 7480.
    pub ip: &'a str,
    /// Stream management (XEP-0198) on its s2s streams.
    pub sm: bool,
    /// Lines added to its `[limits]`, for a scenario that needs a bound of its own.
    pub limits: &'a str,
}

impl XfedEdge<'_> {
    /// Writes its configuration into `dir` with `tenants` (file name, TOML), starts it and
    /// waits until its component port listens.
    pub fn start(&self, bin: &Path, dir: &Path, tenants: &[(&str, String)]) -> Proc {
        let (side, ip, sm) = (self.side, self.ip, self.sm);
        fs::create_dir_all(dir.join("tenants")).expect("work folder writable");
        let (cert, key) = certificate(dir, &format!("{side}.test"));
        fs::write(
            dir.join("dialback.secret"),
            format!("bench-dialback-{side}\n"),
        )
        .expect("writable");
        let router = format!(
            "tenants_dir = \"tenants\"\n\
             [node]\nname = \"bench-{side}\"\n\
             [listen]\ns2s = \"{ip}:5269\"\ncomponent = \"{ip}:{COMPONENT_PORT}\"\nadmin = \"{ip}:7480\"\n\
             [tls]\ncert = \"{}\"\nkey = \"{}\"\n\
             [federation]\nsecurity_mode = \"tls-required\"\nrequire_client_certs = false\n\
             sasl_external = false\ndialback_secret_file = \"dialback.secret\"\n\
             stream_management = {sm}\n\
             [dns]\nnameservers = [\"127.0.0.53:53\"]\n\
             [admin]\ntoken_file = \"admin.token\"\n\
             [events]\nfile = \"\"\n\
             [limits]\nunauthenticated_per_address = 65536\nunauthenticated_total = 65536\n{}",
            cert.display(),
            key.display(),
            self.limits
        );
        fs::write(dir.join("admin.token"), format!("{ADMIN_TOKEN}\n")).expect("writable");
        let config = dir.join("router.toml");
        fs::write(&config, router).expect("writable");
        for (name, text) in tenants {
            fs::write(dir.join("tenants").join(format!("{name}.toml")), text).expect("writable");
        }
        // XFED_BENCH_WRAP="valgrind --tool=massif" (say) runs each xfed edge under a profiler.
        let wrap = std::env::var("XFED_BENCH_WRAP").unwrap_or_default();
        let argv: Vec<String> = wrap
            .split_whitespace()
            .map(str::to_string)
            .chain([
                bin.display().to_string(),
                "run".into(),
                "--config".into(),
                config.display().to_string(),
            ])
            .collect();
        let mut p = Proc::spawn(&format!("xfed-{side}"), dir, &argv, &[("XFED_LOG", "warn")]);
        p.wait_listening(component_addr(ip), Duration::from_secs(60));
        p
    }
}

pub fn tenant(name: &str, domains: impl Iterator<Item = String>) -> String {
    let list: Vec<String> = domains.map(|d| format!("\"{d}\"")).collect();
    format!(
        "name = \"{name}\"\nsecret = \"{SECRET}\"\ndomains = [{}]\n[privacy]\nmode = \"off\"\n",
        list.join(", ")
    )
}

/// `crowd.tenants - 1` more tenants, each with an allow list and its share of the static
/// routes, to unreachable peers that no stanza of the run is for.
fn write_crowd(tenants: &Path, crowd: Crowd, own_routes: usize) {
    let others = crowd.tenants.saturating_sub(1).max(1);
    let per = crowd.routes.saturating_sub(own_routes).div_ceil(others);
    for k in 0..crowd.tenants.saturating_sub(1) {
        let mut t = format!(
            "name = \"t{k}\"\nsecret = \"{SECRET}\"\ndomains = [\"t{k}.crowd.test\"]\n\
             [privacy]\nmode = \"allow-list\"\nallow = [\"partner{k}.example\"]\n\
             [static_routes]\nenabled = true\n[static_routes.routes]\n"
        );
        for j in 0..per {
            let _ = writeln!(
                t,
                "\"d{j}.t{k}.route.test\" = [\"192.0.2.{}:5269\"]",
                1 + j % 250
            );
        }
        fs::write(tenants.join(format!("t{k}.toml")), t).expect("writable");
    }
}

// --- Prosody ----------------------------------------------------------------------------

pub fn start_prosody(dir: &Path, layout: Layout) -> Edges {
    let a = prosody_node(&dir.join("prosody-a"), "a", (0..layout.pairs).map(local));
    let sink: Vec<String> = (0..layout.pairs + layout.fresh).map(remote).collect();
    let b = prosody_node(&dir.join("prosody-b"), "b", sink.iter().cloned());
    Edges {
        a,
        b,
        sink_domains: sink,
    }
}

fn prosody_node(dir: &Path, side: &str, components: impl Iterator<Item = String>) -> Proc {
    let ip = if side == "a" { A_IP } else { B_IP };
    fs::create_dir_all(dir).expect("work folder writable");
    let (cert, key) = certificate(dir, &format!("{side}.test"));
    let ssl = format!(
        "{{ certificate = \"{}\"; key = \"{}\"; }}",
        cert.display(),
        key.display()
    );
    let data = dir.display();
    let mut config = format!(
        r#"-- Prosody for the federation benchmark: components only, s2s with TLS and dialback.
daemonize = false
pidfile = "{data}/prosody.pid"
data_path = "{data}"
interfaces = {{ "{ip}" }}
local_interfaces = {{ "{ip}" }}
c2s_ports = {{ }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ 5269 }}
s2s_direct_tls_ports = {{ }}
component_ports = {{ {COMPONENT_PORT} }}
component_interface = "{ip}"
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{ "tls"; "dialback"; "posix" }}
modules_disabled = {{ "s2s_bidi"; "admin_shell"; "c2s"; "offline" }}
log = {{ warn = "{data}/prosody.log" }}
storage = "internal"
s2s_require_encryption = true
s2s_secure_auth = false
ssl = {ssl}
unbound = {{ options = {{ ["local-zone"] = "test. transparent" }} }}
-- The default backlog of 128 drops connections when hundreds of streams open at once.
network_settings = {{ tcp_backlog = 4096 }}
-- Prosody needs one VirtualHost to start; no user logs in to it.
VirtualHost "{side}.test"
"#
    );
    for domain in components {
        let _ = write!(
            config,
            "Component \"{domain}\"\n    component_secret = \"{SECRET}\"\n    \
             modules_enabled = {{ \"dialback\"; \"tls\" }}\n    ssl = {ssl}\n"
        );
    }
    let file = dir.join("prosody.cfg.lua");
    fs::write(&file, config).expect("writable");
    // Prosody refuses to run as root: hand its folder to its user.
    let _ = Command::new("chown")
        .args(["-R", "prosody:prosody", &dir.display().to_string()])
        .status();
    let argv: Vec<String> = [
        "setpriv",
        "--reuid=prosody",
        "--regid=prosody",
        "--init-groups",
        "prosody",
        "-F",
        "--config",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([file.display().to_string()])
    .collect();
    let mut p = Proc::spawn(&format!("prosody-{side}"), dir, &argv, &[]);
    // Listening comes first; the component hosts activate one by one after it (about 13 ms
    // each), and a link to a host not yet active is refused: the rig retries until it is.
    p.wait_listening(component_addr(ip), Duration::from_secs(120));
    p
}

/// The `/metrics` text of the xfed edge at `ip` (empty when it does not answer, as a
/// Prosody edge does not).
pub fn metrics_text(ip: &str) -> String {
    ureq::get(format!("http://{ip}:7480/metrics"))
        .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default()
}

/// How edge A's streams are secured, from its admin API: counts by direction, TLS version
/// and authentication, e.g. "10100 outgoing TLSv1_3 dialback" — evidence that the run
/// measured what it says.
pub fn xfed_streams_summary() -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let url = format!("http://{A_IP}:7480/api/connections");
    let body = agent
        .get(&url)
        .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .call()
        .and_then(|mut r| r.body_mut().with_config().limit(1 << 30).read_to_string());
    let doc: serde_json::Value = match body.map(|b| serde_json::from_str(&b)) {
        Ok(Ok(doc)) => doc,
        Ok(Err(e)) => return format!("admin API answered no JSON: {e}"),
        Err(e) => return format!("admin API: {e}"),
    };
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for c in doc["connections"].as_array().into_iter().flatten() {
        let auth = c["pairs"][0]["auth"].as_str().unwrap_or("unauthenticated");
        let key = format!(
            "{} {} {}",
            c["direction"].as_str().unwrap_or("?"),
            c["tls_version"].as_str().unwrap_or("no-TLS"),
            auth
        );
        *kinds.entry(key).or_default() += 1;
    }
    let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    parts.join(", ")
}
