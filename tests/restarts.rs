//! Configuration changes on a running node, counted from the components' and the peer's
//! side: each change class restarts only what it must, and a refused reload leaves
//! everything running. Node A runs tenants acme, globex and initech under the restart
//! scheduler; node B (tenant partner) federates with acme and globex.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::fed::*;
use common::*;
use serde_json::Value;
use xfed::node::supervisor::Supervisor;
use xfed::restart::schedule::SystemClock;

const TOKEN: &str = "restart-token";

struct World {
    dir: tempfile::TempDir,
    router_a: std::path::PathBuf,
    component_a: std::net::SocketAddr,
    admin_a: String,
}

fn tenant(name: &str, domains: &[&str], allow: &[&str], routes: &str) -> String {
    let q = |l: &[&str]| {
        l.iter()
            .map(|d| format!("\"{d}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "name = \"{name}\"\nsecret = \"{name}-secret\"\ndomains = [{}]\n\
         [privacy]\nmode = \"allow-list\"\nallow = [{}]\n{routes}",
        q(domains),
        q(allow)
    )
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Writes both nodes; answers A's router file and B's.
fn world() -> (World, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (s2s_a, s2s_b, comp_a, admin_a) = (free_port(), free_port(), free_port(), free_port());
    let fed = "[federation]\nsecurity_mode = \"tls-required\"\nrequire_client_certs = false\n\
               dialback_secret_file = \"dialback.secret\"\n";
    let a = dir.path().join("a");
    write(&a.join("dialback.secret"), "shared");
    write(&a.join("admin.token"), TOKEN);
    write(
        &a.join("router.toml"),
        &format!(
            "tenants_dir = \"tenants\"\n[node]\nname = \"a\"\n[listen]\ns2s = \"127.0.0.1:{s2s_a}\"\n\
             component = \"127.0.0.1:{comp_a}\"\nadmin = \"127.0.0.1:{admin_a}\"\n\
             [admin]\ntoken_file = \"admin.token\"\n{fed}"
        ),
    );
    let to_b = format!("[static_routes]\nenabled = true\nroutes = {{ \"partner.example\" = [\"127.0.0.1:{s2s_b}\"] }}\n");
    write(
        &a.join("tenants/acme.toml"),
        &tenant("acme", &["acme.example"], &["partner.example"], &to_b),
    );
    write(
        &a.join("tenants/globex.toml"),
        &tenant("globex", &["globex.example"], &["partner.example"], &to_b),
    );
    write(
        &a.join("tenants/initech.toml"),
        &tenant("initech", &["initech.example"], &[], ""),
    );
    let b = dir.path().join("b");
    write(&b.join("dialback.secret"), "shared");
    write(
        &b.join("router.toml"),
        &format!(
            "tenants_dir = \"tenants\"\n[node]\nname = \"b\"\n[listen]\ns2s = \"127.0.0.1:{s2s_b}\"\n\
             component = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n{fed}"
        ),
    );
    let to_a = format!(
        "[static_routes]\nenabled = true\nroutes = {{ \"acme.example\" = [\"127.0.0.1:{s2s_a}\"], \
         \"globex.example\" = [\"127.0.0.1:{s2s_a}\"] }}\n"
    );
    write(
        &b.join("tenants/partner.toml"),
        &tenant(
            "partner",
            &["partner.example"],
            &["acme.example", "globex.example"],
            &to_a,
        ),
    );
    let w = World {
        router_a: a.join("router.toml"),
        component_a: format!("127.0.0.1:{comp_a}").parse().unwrap(),
        admin_a: format!("http://127.0.0.1:{admin_a}"),
        dir,
    };
    (w, b.join("router.toml"))
}

/// An admin API call, off this thread (the node's actors run on it).
async fn api(method: &'static str, url: String) -> (u16, Value) {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let auth = format!("Bearer {TOKEN}");
        let mut resp = match method {
            "POST" => agent.post(&url).header("Authorization", &auth).send_empty(),
            _ => agent.get(&url).header("Authorization", &auth).call(),
        }
        .expect("admin API answers");
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    })
    .await
    .unwrap()
}

impl World {
    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.dir.path().join("a").join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }

    async fn status(&self) -> Value {
        api("GET", format!("{}/api/status", self.admin_a)).await.1
    }

    async fn connections(&self) -> Vec<Value> {
        let (_, v) = api("GET", format!("{}/api/connections", self.admin_a)).await;
        v["connections"].as_array().cloned().unwrap_or_default()
    }

    /// Ids of A's outgoing streams carrying `local`.
    async fn outgoing(&self, local: &str) -> Vec<u64> {
        self.connections()
            .await
            .iter()
            .filter(|c| c["direction"] == "outgoing" && c["pairs"][0]["local"] == local)
            .map(|c| c["id"].as_u64().unwrap())
            .collect()
    }

    async fn links(&self, tenant: &str) -> usize {
        let s = self.status().await;
        s["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == tenant)
            .map_or(0, |t| t["links"].as_array().unwrap().len())
    }

    async fn wait_links(&self, tenant: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.links(tenant).await != n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{tenant} never had {n} links"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A link is alive when a stanza to its own domain comes back over it.
async fn alive(link: &mut Raw, domain: &str, id: &str) {
    link.send(format!(
        "<message from='x@{domain}' to='y@{domain}' id='{id}'/>"
    ))
    .await;
    link.expect(&format!("id='{id}'")).await;
}

/// A stanza from `from_domain` reaches the partner over s2s.
async fn crosses(link: &mut Raw, partner: &mut Raw, from_domain: &str, id: &str) {
    link.send(format!(
        "<message from='u@{from_domain}' to='p@partner.example' id='{id}'><body>hi</body></message>"
    ))
    .await;
    partner.expect(&format!("id='{id}'")).await;
}

#[actix_rt::test]
async fn each_change_restarts_only_what_it_touches() {
    let (w, router_b) = world();
    let cfg = xfed::config::load(&w.router_a).unwrap_or_else(|e| panic!("{e}"));
    let sup = Supervisor::start(cfg, Arc::new(SystemClock))
        .await
        .expect("A starts");
    let b = start_at(&router_b).await;
    let mut acme = component(w.component_a, "acme.example", "acme-secret").await;
    let mut globex = component(w.component_a, "globex.example", "globex-secret").await;
    let mut initech = component(w.component_a, "initech.example", "initech-secret").await;
    let mut partner = component(b.component_addr(), "partner.example", "partner-secret").await;
    w.wait_links("initech", 1).await;
    crosses(&mut acme, &mut partner, "acme.example", "a1").await;
    crosses(&mut globex, &mut partner, "globex.example", "g1").await;
    let acme_stream = w.outgoing("acme.example").await;
    let globex_stream = w.outgoing("globex.example").await;
    assert_eq!((acme_stream.len(), globex_stream.len()), (1, 1));

    // 1. A tenant's domains: that tenant's links reconnect; nobody else notices, and its
    //    stream for a kept domain stays.
    w.edit(
        "tenants/acme.toml",
        "domains = [\"acme.example\"]",
        "domains = [\"acme.example\", \"acme.net\"]",
    );
    let (code, r) = api("POST", format!("{}/api/reload", w.admin_a)).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["version"], 2);
    assert_eq!(r["applied"], true);
    assert_eq!(r["changes"][0]["instance"], "tenant acme");
    assert_eq!(r["changes"][0]["what"][0], "domains +acme.net");
    assert_eq!(r["restarted"][0]["links"], 1);
    assert_eq!(r["restarted"][0]["streams"], 0);
    acme.read_to_close().await;
    alive(&mut globex, "globex.example", "g2").await;
    alive(&mut initech, "initech.example", "i2").await;
    assert_eq!(w.outgoing("globex.example").await, globex_stream);
    assert_eq!(w.outgoing("acme.example").await, acme_stream);
    // The link reconnects, now carrying the new domain too.
    let mut acme = component(w.component_a, "acme.net", "acme-secret").await;
    alive(&mut acme, "acme.net", "a2").await;

    // 2. Federation settings: globex stops listing (and routing to) the partner. Its stream to the partner
    //    closes and its stanzas are refused; no link drops, acme's stream stays.
    w.edit(
        "tenants/globex.toml",
        "allow = [\"partner.example\"]",
        "allow = []",
    );
    w.edit("tenants/globex.toml", "enabled = true", "enabled = false");
    let (code, r) = api("POST", format!("{}/api/reload", w.admin_a)).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["changes"][0]["what"][0], "allow -partner.example");
    assert_eq!(r["restarted"][0]["links"], 0);
    assert_eq!(r["restarted"][0]["streams"], 1);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !w.outgoing("globex.example").await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "globex's stream still open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    globex
        .send("<message from='u@globex.example' to='p@partner.example' id='g3'/>")
        .await;
    globex.expect("<not-allowed").await;
    alive(&mut globex, "globex.example", "g4").await;
    alive(&mut initech, "initech.example", "i3").await;
    assert_eq!(w.outgoing("acme.example").await, acme_stream);
    crosses(&mut acme, &mut partner, "acme.example", "a3").await;

    // 3. A new tenant starts, a removed one stops; the others see nothing.
    write(
        &w.dir.path().join("a/tenants/newco.toml"),
        &tenant("newco", &["newco.example"], &[], ""),
    );
    std::fs::remove_file(w.dir.path().join("a/tenants/initech.toml")).unwrap();
    let (code, r) = api("POST", format!("{}/api/reload", w.admin_a)).await;
    assert_eq!(code, 200, "{r}");
    let restarted: Vec<&str> = r["restarted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["instance"].as_str().unwrap())
        .collect();
    assert_eq!(restarted, ["tenant initech", "tenant newco"]);
    initech.read_to_close().await;
    let mut newco = component(w.component_a, "newco.example", "newco-secret").await;
    alive(&mut newco, "newco.example", "n1").await;
    alive(&mut acme, "acme.net", "a4").await;
    alive(&mut globex, "globex.example", "g5").await;
    assert_eq!(w.outgoing("acme.example").await, acme_stream);

    // 4. A refused configuration: the running one stays, nothing drops.
    write(
        &w.dir.path().join("a/tenants/broken.toml"),
        "name = \"broken\"\nsecret = \"s\"\ndomains = [\"acme.example\"]\n",
    );
    let (code, r) = api("POST", format!("{}/api/reload", w.admin_a)).await;
    assert_eq!(code, 422, "{r}");
    let problems = r["problems"].to_string();
    assert!(problems.contains("broken.toml"), "{problems}");
    assert!(
        problems.contains("already claimed by tenant acme"),
        "{problems}"
    );
    alive(&mut acme, "acme.net", "a5").await;
    alive(&mut globex, "globex.example", "g6").await;
    alive(&mut newco, "newco.example", "n2").await;
    assert_eq!(w.outgoing("acme.example").await, acme_stream);
    let s = w.status().await;
    assert_eq!(s["config_version"], 4);
    std::fs::remove_file(w.dir.path().join("a/tenants/broken.toml")).unwrap();

    // 5. A node-level federation setting: federation restarts (every s2s stream closes),
    //    no component link drops, and federation works again on the new settings.
    w.edit(
        "router.toml",
        "require_client_certs = false",
        "require_client_certs = false\nidle_timeout_secs = 300",
    );
    let (code, r) = api("POST", format!("{}/api/reload", w.admin_a)).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["restarted"][0]["instance"], "node");
    assert_eq!(r["restarted"][0]["links"], 0);
    assert!(r["restarted"][0]["streams"].as_u64().unwrap() >= 1, "{r}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while w.outgoing("acme.example").await == acme_stream {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old stream stays"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    alive(&mut acme, "acme.net", "a6").await;
    alive(&mut globex, "globex.example", "g7").await;
    alive(&mut newco, "newco.example", "n3").await;
    crosses(&mut acme, &mut partner, "acme.example", "a7").await;
    let fresh = w.outgoing("acme.example").await;
    assert_eq!(fresh.len(), 1);
    assert_ne!(fresh, acme_stream);

    // The event log says which instances restarted, why, and what each dropped.
    let (_, ev) = api("GET", format!("{}/api/events", w.admin_a)).await;
    let restarts: Vec<&Value> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "restart")
        .collect();
    assert_eq!(restarts.len(), 5, "{restarts:#?}");
    assert_eq!(restarts[0]["tenant"], "acme");
    assert_eq!(restarts[0]["why"], "reload");
    assert_eq!(restarts[0]["links_dropped"], 1);
    assert!(ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "config_refused"));

    sup.shutdown().await;
    b.shutdown().await;
}

#[actix_rt::test]
async fn delayed_changes_wait_for_a_restart_of_only_the_stale() {
    let (w, _) = world();
    w.edit(
        "router.toml",
        "[admin]",
        "[restart]\ndelayed = true\n[admin]",
    );
    let cfg = xfed::config::load(&w.router_a).unwrap_or_else(|e| panic!("{e}"));
    let sup = Supervisor::start(cfg, Arc::new(SystemClock))
        .await
        .expect("A starts");
    let mut acme = component(w.component_a, "acme.example", "acme-secret").await;
    let mut globex = component(w.component_a, "globex.example", "globex-secret").await;
    w.wait_links("globex", 1).await;

    // Two changes staged: nothing restarts, both show as stale.
    w.edit("tenants/acme.toml", "acme-secret", "acme-new-secret");
    w.edit(
        "tenants/globex.toml",
        "domains = [\"globex.example\"]",
        "domains = [\"globex.example\", \"globex.net\"]",
    );
    let (code, r) = api("POST", format!("{}/api/reload", w.admin_a)).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["staged"], true);
    alive(&mut acme, "acme.example", "a1").await;
    alive(&mut globex, "globex.example", "g1").await;
    let s = w.status().await;
    let state = |name: &str| {
        s["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(state("acme")["state"], "stale");
    assert_eq!(state("acme")["pending"][0], "secret changed");
    assert_eq!(state("globex")["state"], "stale");
    assert_eq!(state("initech")["state"], "current");
    assert_eq!(s["restart"]["delayed"], true);
    assert!(s["restart"]["next_run"]
        .as_str()
        .unwrap()
        .contains("T02:00:00"));

    // The dry run names what each restart would drop; nothing drops.
    let (_, r) = api("POST", format!("{}/api/restart?dry_run=true", w.admin_a)).await;
    assert_eq!(r["dry_run"], true);
    let rows = r["restarted"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{r}");
    assert_eq!(rows[0]["instance"], "tenant acme");
    assert_eq!(rows[0]["links"], 1);
    alive(&mut acme, "acme.example", "a2").await;

    // One tenant: only its link drops; the other stays stale and connected.
    let (code, r) = api("POST", format!("{}/api/restart?tenant=acme", w.admin_a)).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["restarted"][0]["links"], 1);
    acme.read_to_close().await;
    alive(&mut globex, "globex.example", "g2").await;
    let mut acme = component(w.component_a, "acme.example", "acme-new-secret").await;
    alive(&mut acme, "acme.example", "a3").await;
    let s = w.status().await;
    let globex_state = s["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "globex")
        .unwrap()["state"]
        .clone();
    assert_eq!(globex_state, "stale");

    // The rest.
    let (_, r) = api("POST", format!("{}/api/restart", w.admin_a)).await;
    assert_eq!(r["restarted"][0]["instance"], "tenant globex");
    globex.read_to_close().await;
    alive(&mut acme, "acme.example", "a4").await;
    let s = w.status().await;
    assert!(
        s["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "current"),
        "{s}"
    );
    let (_, r) = api("POST", format!("{}/api/restart", w.admin_a)).await;
    assert!(r["restarted"].as_array().unwrap().is_empty());

    sup.shutdown().await;
}

/// The operator's commands on the real binary: `xfed reload` (unchanged, refused with exit
/// 2 and the file/key/reason, accepted), SIGHUP, and a node setting that restarts the whole
/// node, which comes back on the new version with its admin API.
#[test]
fn reload_by_command_and_by_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (s2s, admin) = (free_port(), free_port());
    let router = dir.path().join("router.toml");
    write(&dir.path().join("admin.token"), TOKEN);
    write(
        &router,
        &format!(
            "tenants_dir = \"tenants\"\n[listen]\ns2s = \"127.0.0.1:{s2s}\"\ncomponent = \"127.0.0.1:0\"\n\
             admin = \"127.0.0.1:{admin}\"\n[admin]\ntoken_file = \"admin.token\"\n\
             [federation]\nidle_timeout_secs = 600\n"
        ),
    );
    write(
        &dir.path().join("tenants/acme.toml"),
        &tenant("acme", &["acme.example"], &[], ""),
    );
    let mut node = run_node(&router);
    let status = || {
        let (ok, out) = cli_with_config(&["status", "--json"], &router);
        ok.then(|| serde_json::from_str::<Value>(&out).unwrap())
    };

    let (ok, out) = cli_with_config(&["reload"], &router);
    assert!(
        ok && out.contains("configuration unchanged (version 1)"),
        "{out}"
    );

    let broken = dir.path().join("tenants/broken.toml");
    write(
        &broken,
        "name = \"broken\"\nsecret = \"s\"\ndomains = [\"acme.example\"]\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xfed"))
        .args(["reload", "--config"])
        .arg(&router)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("broken.toml: domains: acme.example is already claimed by tenant acme"),
        "{err}"
    );
    assert!(err.contains("the running configuration stays"), "{err}");
    std::fs::remove_file(&broken).unwrap();

    // SIGHUP reads the files again.
    let tenant_file = dir.path().join("tenants/acme.toml");
    let text = std::fs::read_to_string(&tenant_file).unwrap();
    write(
        &tenant_file,
        &text.replace("[\"acme.example\"]", "[\"acme.example\", \"acme.net\"]"),
    );
    node.signal("HUP");
    let deadline = std::time::Instant::now() + WAIT;
    while status().map(|s| s["config_version"].clone()) != Some(Value::from(2)) {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = status().unwrap();
    assert_eq!(s["tenants"][0]["domains"][1], "acme.net");

    // A node setting: the whole node restarts and comes back on version 3.
    let text = std::fs::read_to_string(&router).unwrap();
    let component = free_port();
    write(
        &router,
        &text.replace("127.0.0.1:0", &format!("127.0.0.1:{component}")),
    );
    let (ok, out) = cli_with_config(&["reload"], &router);
    assert!(ok, "{out}");
    assert!(out.contains("node: listen.component changed"), "{out}");
    assert!(out.contains("restart the whole node"), "{out}");
    let deadline = std::time::Instant::now() + WAIT;
    while status().map(|s| s["config_version"].clone()) != Some(Value::from(3)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the node did not come back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, out) = cli_with_config(&["events", "--json"], &router);
    assert!(ok, "{out}");
    let events: Value = serde_json::from_str(&out).unwrap();
    let node_restart = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "restart" && e["instance"] == "node")
        .cloned()
        .expect("the node's restart is in the log kept across it");
    assert_eq!(node_restart["why"], "reload");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", component)).is_ok(),
        "the restarted node listens for components on the new address"
    );

    assert!(node.terminate());
}

/// A tenant's certificate replaced in place: at the reload its router restarts and the new
/// certificate is presented. B requires certificates from one CA; acme's first one is
/// self-signed (B refuses it), its replacement is CA-signed (B accepts it).
#[actix_rt::test]
async fn a_renewed_tenant_certificate_is_presented_after_reload() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (acme_cert, acme_key) = pki.self_signed("acme", &["acme.example"]);
    let (a_router, b_router) = tenant_cert_pair(dir.path(), &pki, &acme_cert, &acme_key);
    // A fixed component port: the scheduler owns the node, so the test cannot ask it.
    let component_a: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let text = std::fs::read_to_string(&a_router).unwrap();
    write(
        &a_router,
        &text.replace(
            "component = \"127.0.0.1:0\"",
            &format!("component = \"{component_a}\""),
        ),
    );
    let cfg = xfed::config::load(&a_router).unwrap_or_else(|e| panic!("{e}"));
    let sup = Supervisor::start(cfg, Arc::new(SystemClock))
        .await
        .expect("A starts");
    let b = start_at(&b_router).await;
    let mut acme = component(component_a, "acme.example", "acme-secret").await;
    let mut globex = component(b.component_addr(), "globex.example", "globex-secret").await;
    wait_links(&b, "globex", 1).await;
    acme.send("<message from='a@acme.example' to='g@globex.example' id='1'/>")
        .await;
    acme.expect("id='1' type='error'").await;

    // Renewed in place: same files, a CA-signed certificate in them.
    let (signed_cert, signed_key, _) = pki.leaf("acme-renewed", &["acme.example"]);
    std::fs::copy(&signed_cert, &acme_cert).unwrap();
    std::fs::copy(&signed_key, &acme_key).unwrap();
    let r = sup.reload().await.expect("accepted");
    assert_eq!(r.changes[0].what[0], "certificate changed", "{r:?}");
    acme.read_to_close().await;
    let mut acme = component(component_a, "acme.example", "acme-secret").await;
    acme.send(
        "<message from='a@acme.example' to='g@globex.example' id='2'><body>now</body></message>",
    )
    .await;
    globex.expect("<body>now</body>").await;
    sup.shutdown().await;
    b.shutdown().await;
}

/// A configuration that lives in memory, as one from etcd would: documents by name.
#[derive(Clone, Default)]
struct Snapshot(Arc<std::sync::Mutex<std::collections::BTreeMap<std::path::PathBuf, String>>>);

impl Snapshot {
    fn put(&self, name: &str, text: &str) {
        self.0.lock().unwrap().insert(name.into(), text.into());
    }
}

impl xfed::config::Source for Snapshot {
    fn name(&self) -> &Path {
        Path::new("/snapshot/router.toml")
    }

    fn router(&self) -> std::io::Result<String> {
        self.file(self.name())
            .map(|b| String::from_utf8(b).unwrap())
    }

    fn tenants(&self, folder: &Path) -> std::io::Result<Vec<xfed::config::Document>> {
        let docs = self.0.lock().unwrap();
        Ok(docs
            .iter()
            .filter(|(name, _)| name.parent() == Some(folder))
            .map(|(name, text)| xfed::config::Document {
                name: name.clone(),
                text: Ok(text.clone()),
            })
            .collect())
    }

    fn file(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let docs = self.0.lock().unwrap();
        docs.get(path)
            .map(|t| t.clone().into_bytes())
            .ok_or_else(|| std::io::ErrorKind::NotFound.into())
    }

    fn is_folder(&self, _: &Path) -> bool {
        false
    }
}

/// The scheduler reloads from the feed it was given, never from a folder: accepted and
/// refused configurations both come from a snapshot no disk holds.
#[actix_rt::test]
async fn reloads_take_what_the_feed_checked() {
    let snapshot = Snapshot::default();
    snapshot.put(
        "/snapshot/router.toml",
        "tenants_dir = \"tenants\"\n[node]\nname = \"a\"\n\
         [listen]\ns2s = \"127.0.0.1:0\"\ncomponent = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [events]\nfile = \"\"\n",
    );
    snapshot.put(
        "/snapshot/tenants/acme.toml",
        &tenant("acme", &["acme.example"], &["p.example"], ""),
    );
    let cfg = xfed::config::check(&snapshot).unwrap_or_else(|e| panic!("{e}"));
    let feed = xfed::config::Feed::new(snapshot.clone());
    let sup = Supervisor::start_with_feed(cfg, feed, Arc::new(SystemClock))
        .await
        .expect("starts");

    snapshot.put(
        "/snapshot/tenants/acme.toml",
        &tenant("acme", &["acme.example"], &["q.example"], ""),
    );
    let r = sup.reload().await.expect("accepted");
    assert_eq!(r.changes[0].what[0], "allow +q.example -p.example", "{r:?}");
    assert!(r.applied, "{r:?}");

    snapshot.put(
        "/snapshot/tenants/acme.toml",
        &tenant("acme", &["acme example"], &["q.example"], ""),
    );
    let e = sup.reload().await.expect_err("refused");
    assert!(e.error.ends_with("the running configuration stays"), "{e}");
    assert!(
        e.problems[0].starts_with("/snapshot/tenants/acme.toml: domains[0]: \"acme example\""),
        "{e}"
    );
    sup.shutdown().await;
}
