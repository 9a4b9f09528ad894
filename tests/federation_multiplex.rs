//! Several domain pairs on one stream: a tenant's domain and its chat alias on node A talk to
//! the same remote domain on node B; the second pair is authenticated by dialback on the
//! stream the first opened. Another tenant gets a stream of its own, so a change to one
//! tenant never closes a stream another uses.

mod common;

use std::path::Path;

use common::fed::*;
use common::*;
use xfed::s2s::auth::Mechanism;
use xfed::s2s::Direction;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn router(dir: &Path, port: u16) -> std::path::PathBuf {
    write(&dir.join("dialback.secret"), "shared");
    let path = dir.join("router.toml");
    write(
        &path,
        &format!(
            "tenants_dir = \"tenants\"\n[listen]\ns2s = \"127.0.0.1:{port}\"\ncomponent = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             [federation]\ndialback_secret_file = \"dialback.secret\"\nsecurity_mode = \"tls-required\"\nrequire_client_certs = false\n"
        ),
    );
    path
}

fn tenant(dir: &Path, name: &str, domain: &str, alias: &str, routes: &[(&str, u16)]) {
    let routes: Vec<String> = routes
        .iter()
        .map(|(d, p)| format!("\"{d}\" = [\"127.0.0.1:{p}\"]"))
        .collect();
    write(
        &dir.join(format!("tenants/{name}.toml")),
        &format!(
            "name = \"{name}\"\nsecret = \"secret\"\ndomains = [\"{domain}\"]\n{}[privacy]\nmode = \"off\"\n\
             [static_routes]\nenabled = true\nroutes = {{ {} }}\n",
            if alias.is_empty() { String::new() } else { format!("chat_node_aliases = [\"{alias}\"]\n") },
            routes.join(", ")
        ),
    );
}

async fn start_at(router: &Path) -> xfed::node::Node {
    let cfg = xfed::config::load(router).unwrap_or_else(|e| panic!("{e}"));
    xfed::node::Node::start(cfg).await.expect("node starts")
}

#[actix_rt::test]
async fn a_tenants_domains_share_one_stream_and_tenants_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (free_port(), free_port());
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let ra = router(&a_dir, pa);
    let conf = "conference.acme.example";
    tenant(
        &a_dir,
        "acme",
        "acme.example",
        conf,
        &[("globex.example", pb)],
    );
    tenant(
        &a_dir,
        "initech",
        "initech.example",
        "",
        &[("globex.example", pb)],
    );
    let rb = router(&b_dir, pb);
    tenant(
        &b_dir,
        "globex",
        "globex.example",
        "",
        &[("acme.example", pa), (conf, pa), ("initech.example", pa)],
    );
    let a = start_at(&ra).await;
    let b = start_at(&rb).await;
    // globex's server is linked first: a stanza for a tenant with no link up is returned to
    // its sender, and the stream A opens for the first message could otherwise win the race.
    let mut globex = component(b.component_addr(), "globex.example", "secret").await;
    wait_links(&b, "globex", 1).await;
    let mut acme = component(a.component_addr(), "acme.example", "secret").await;
    acme.send("<message from='a@acme.example' to='g@globex.example' id='0'><body>from acme first</body></message>").await;
    let mut initech = component(a.component_addr(), "initech.example", "secret").await;

    globex.expect("<body>from acme first</body>").await;
    acme.send("<message from='room@conference.acme.example/nick' to='g@globex.example' id='1'><body>from the room</body></message>").await;
    globex.expect("<body>from the room</body>").await;
    initech.send("<message from='i@initech.example' to='g@globex.example' id='2'><body>from initech</body></message>").await;
    globex.expect("<body>from initech</body>").await;
    // Both answers come back, each to its tenant.
    globex.send("<message from='g@globex.example' to='i@initech.example' id='3'><body>to initech</body></message>").await;
    initech.expect("<body>to initech</body>").await;
    globex.send("<message from='g@globex.example' to='room@conference.acme.example' id='4'><body>to the room</body></message>").await;
    acme.expect("<body>to the room</body>").await;

    let mut outbound: Vec<_> = a
        .s2s_streams()
        .into_iter()
        .filter(|s| s.direction == Direction::Outgoing)
        .collect();
    assert_eq!(outbound.len(), 2, "one stream per tenant: {outbound:?}");
    outbound.sort_by_key(|s| s.pairs.len());
    assert_eq!(outbound[0].pairs.len(), 1);
    assert_eq!(outbound[0].pairs[0].local, "initech.example");
    let mut locals: Vec<&str> = outbound[1].pairs.iter().map(|p| p.local.as_str()).collect();
    locals.sort();
    assert_eq!(locals, ["acme.example", conf]);
    assert!(outbound[1]
        .pairs
        .iter()
        .all(|p| p.remote == "globex.example" && p.mechanism == Mechanism::Dialback));
    // B saw both pairs on one inbound stream.
    let inbound: Vec<_> = b
        .s2s_streams()
        .into_iter()
        .filter(|s| s.direction == Direction::Incoming && s.pairs.len() == 2)
        .collect();
    assert_eq!(inbound.len(), 1, "{:?}", b.s2s_streams());
    a.shutdown().await;
    b.shutdown().await;
}
