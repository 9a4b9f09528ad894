//! xfed federating with xfed over real sockets: two nodes, each with a tenant whose
//! component talks to the other's, STARTTLS and dialback both ways, static routes.

mod common;

use std::path::Path;

use common::fed::*;
use common::*;
use xfed::s2s::Direction;

struct Pair {
    _dir: tempfile::TempDir,
    a: xfed::node::Node,
    b: xfed::node::Node,
}

/// Starts node A (tenant acme, acme.example) and node B (tenant globex, globex.example),
/// each routing statically to the other, with the given `[federation]` and `[tls]` lines.
async fn two_nodes(fed_a: &str, tls_a: &str, fed_b: &str, tls_b: &str) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, _) = write_pair(dir.path(), (fed_a, tls_a), (fed_b, tls_b));
    let a = start_at(&a).await;
    let b = start_at(&b).await;
    Pair { _dir: dir, a, b }
}

async fn start_at(router: &Path) -> xfed::node::Node {
    let cfg = xfed::config::load(router).unwrap_or_else(|e| panic!("{e}"));
    xfed::node::Node::start(cfg).await.expect("node starts")
}

#[actix_rt::test]
async fn message_and_reply_cross_two_nodes_over_tls_and_dialback() {
    let p = two_nodes(
        "security_mode = \"tls-required\"\nrequire_client_certs = false",
        "",
        "security_mode = \"tls-required\"\nrequire_client_certs = false",
        "",
    )
    .await;
    let mut acme = component(p.a.component_addr(), "acme.example", "acme-secret").await;
    let mut globex = component(p.b.component_addr(), "globex.example", "globex-secret").await;
    wait_links(&p.b, "globex", 1).await;

    acme.send("<message from='alice@acme.example/r' to='bob@globex.example' id='m1'><body>over s2s</body></message>").await;
    globex.expect("<body>over s2s</body>").await;
    globex.send("<message from='bob@globex.example' to='alice@acme.example/r' id='m2'><body>reply</body></message>").await;
    acme.expect("<body>reply</body>").await;
    // A stanza that declares the component namespace itself crosses with it removed (the
    // peer would refuse jabber:component:accept on s2s), and the stream lives on.
    acme.send("<message xmlns='jabber:component:accept' from='alice@acme.example/r' to='bob@globex.example' id='m3'><body>explicit</body></message>").await;
    globex.expect("<body>explicit</body>").await;
    assert!(
        globex.received.contains(
            "<message from='alice@acme.example/r' to='bob@globex.example' id='m3'><body>explicit"
        ),
        "{}",
        globex.received
    );
    acme.send("<message from='alice@acme.example/r' to='bob@globex.example' id='m4'><body>after</body></message>").await;
    globex.expect("<body>after</body>").await;

    let (out_a, in_a) = p.a.s2s_stream_counts();
    let (out_b, in_b) = p.b.s2s_stream_counts();
    assert_eq!((out_a, out_b), (1, 1), "one outbound stream each way");
    assert!(
        in_a >= 1 && in_b >= 1,
        "inbound streams: a {in_a}, b {in_b}"
    );
    p.a.shutdown().await;
    p.b.shutdown().await;
}

/// The mechanism of the outbound stream a node holds.
fn outbound_mechanism(node: &xfed::node::Node) -> Option<xfed::s2s::auth::Mechanism> {
    node.s2s_streams()
        .into_iter()
        .find(|s| s.direction == Direction::Outgoing)
        .and_then(|s| s.pairs.first().map(|p| p.mechanism))
}

/// Both nodes with certificates from a CA the other trusts: SASL EXTERNAL (XEP-0178)
/// authenticates, no dialback; with it switched off, dialback does.
#[actix_rt::test]
async fn trusted_certificates_authenticate_with_sasl_external_else_dialback() {
    use xfed::s2s::auth::Mechanism;
    for (sasl, expected) in [
        (true, Mechanism::SaslExternal),
        (false, Mechanism::Dialback),
    ] {
        let certs = tempfile::tempdir().unwrap();
        let pki = Pki::new(certs.path());
        let (a_cert, a_key, _) = pki.leaf("a", &["acme.example"]);
        let (b_cert, b_key, _) = pki.leaf("b", &["globex.example"]);
        let ca = pki.ca_path();
        let tls = |c: &Path, k: &Path| {
            format!(
                "cert = \"{}\"\nkey = \"{}\"\nca = [\"{}\"]",
                c.display(),
                k.display(),
                ca.display()
            )
        };
        let fed = format!(
            "security_mode = \"tls-required\"\nrequire_client_certs = true\nsasl_external = {sasl}"
        );
        let p = two_nodes(&fed, &tls(&a_cert, &a_key), &fed, &tls(&b_cert, &b_key)).await;
        let mut acme = component(p.a.component_addr(), "acme.example", "acme-secret").await;
        let mut globex = component(p.b.component_addr(), "globex.example", "globex-secret").await;
        wait_links(&p.b, "globex", 1).await;
        acme.send(
            "<message from='a@acme.example' to='b@globex.example' id='1'><body>x</body></message>",
        )
        .await;
        globex.expect("<body>x</body>").await;
        globex.send("<message from='b@globex.example' to='a@acme.example' id='2'><body>y</body></message>").await;
        acme.expect("<body>y</body>").await;
        assert_eq!(
            outbound_mechanism(&p.a),
            Some(expected),
            "sasl_external = {sasl}"
        );
        assert_eq!(
            outbound_mechanism(&p.b),
            Some(expected),
            "sasl_external = {sasl}"
        );
        let tls_in_use =
            p.a.s2s_streams()
                .into_iter()
                .all(|s| s.tls_version.is_some());
        assert!(tls_in_use, "every stream runs TLS");
        p.a.shutdown().await;
        p.b.shutdown().await;
    }
}

/// Node A has no certificate of its own (a self-signed development one), but its tenant acme
/// has a CA-signed one. B trusts only that CA and requires valid certificates: federation
/// works only if A presents acme's certificate on its outbound stream and, chosen by SNI, on
/// the stream B opens to it.
#[actix_rt::test]
async fn tenant_certificate_is_presented_outbound_and_chosen_by_sni_inbound() {
    let certs = tempfile::tempdir().unwrap();
    let pki = Pki::new(certs.path());
    let (acme_cert, acme_key, _) = pki.leaf("acme", &["acme.example"]);
    let dir = tempfile::tempdir().unwrap();
    let (a_router, b_router) = tenant_cert_pair(dir.path(), &pki, &acme_cert, &acme_key);
    let a = start_at(&a_router).await;
    let b = start_at(&b_router).await;
    let mut acme = component(a.component_addr(), "acme.example", "acme-secret").await;
    let mut globex = component(b.component_addr(), "globex.example", "globex-secret").await;
    wait_links(&b, "globex", 1).await;
    acme.send(
        "<message from='a@acme.example' to='b@globex.example' id='1'><body>x</body></message>",
    )
    .await;
    globex.expect("<body>x</body>").await;
    globex
        .send(
            "<message from='b@globex.example' to='a@acme.example' id='2'><body>y</body></message>",
        )
        .await;
    acme.expect("<body>y</body>").await;
    a.shutdown().await;
    b.shutdown().await;
}
