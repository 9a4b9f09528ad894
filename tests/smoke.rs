//! End to end over real sockets: two tenants' components exchange stanzas through a node.

mod common;

use common::*;

#[actix_rt::test]
async fn message_crosses_between_two_tenants_and_unknown_domain_bounces() {
    let dir = two_tenants("");
    let node = start(dir.path()).await;
    let addr = node.component_addr();
    let mut acme = component(addr, "acme.example", "acme-secret").await;
    let mut globex = component(addr, "globex.example", "globex-secret").await;
    wait_links(&node, "globex", 1).await;

    acme.send("<message from='alice@acme.example/r' to='bob@globex.example' id='m1'><body>hi</body></message>").await;
    globex.expect("<body>hi</body></message>").await;
    assert!(globex
        .received
        .starts_with("<message from='alice@acme.example/r' to='bob@globex.example' id='m1'>"));

    acme.send("<message from='alice@acme.example/r' to='x@globex.net' id='m2'/>")
        .await;
    acme.expect("</message>").await;
    assert!(acme.received.contains("type='error'"), "{}", acme.received);
    assert!(acme.received.contains("<not-allowed "), "{}", acme.received);
    node.shutdown().await;
}
