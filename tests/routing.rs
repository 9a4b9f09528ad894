//! Routing between tenants on one node, over real sockets: privacy on both sides, aliases,
//! several links per tenant (spread, order, failover), bounces, and graceful shutdown.

mod common;

use std::time::Duration;

use common::*;

/// The `<message .../>` a sender puts on the wire.
fn msg(from: &str, to: &str, id: &str) -> String {
    format!("<message from='{from}' to='{to}' id='{id}'><body>{id}</body></message>")
}

/// Ids of the messages in `received`, in arrival order.
fn ids(received: &str) -> Vec<String> {
    received
        .split("<body>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap_or_default().to_owned())
        .collect()
}

#[actix_rt::test]
async fn privacy_is_checked_on_both_sides() {
    let dir = two_tenants("");
    let node = start(dir.path()).await;
    let addr = node.component_addr();
    let mut acme = component(addr, "acme.example", "acme-secret").await;
    let mut globex = component(addr, "globex.example", "globex-secret").await;
    let mut initech = component(addr, "initech.example", "initech-secret").await;
    wait_links(&node, "initech", 1).await;

    // acme's allow list does not name initech: acme's own setting refuses it.
    acme.send(msg("a@acme.example", "i@initech.example", "1"))
        .await;
    acme.expect("</message>").await;
    assert!(acme.received.contains("<not-allowed "), "{}", acme.received);

    // initech federates with everyone, but acme's allow list does not accept initech.
    initech
        .send(msg("i@initech.example", "a@acme.example", "2"))
        .await;
    initech.expect("</message>").await;
    assert!(
        initech.received.contains("<policy-violation "),
        "{}",
        initech.received
    );

    // globex's deny list names initech.
    initech.clear();
    initech
        .send(msg("i@initech.example", "g@globex.example", "3"))
        .await;
    initech.expect("</message>").await;
    assert!(
        initech.received.contains("<policy-violation "),
        "{}",
        initech.received
    );

    // globex (deny-list without acme) and acme (allows globex) talk both ways.
    globex
        .send(msg("g@globex.example", "a@acme.example", "4"))
        .await;
    acme.clear();
    acme.expect("<body>4</body>").await;
    acme.send(msg("a@acme.example", "g@globex.example", "5"))
        .await;
    globex.expect("<body>5</body>").await;
    node.shutdown().await;
}

/// A component may send as soon as it reads `<handshake/>`: a stanza to its own tenant comes
/// straight back over its link, never bounced for want of one (the link is routable before
/// the handshake is answered). Twenty fresh links in a row, each used at once and each the
/// tenant's only link.
#[actix_rt::test]
async fn a_link_is_routable_once_its_handshake_is_answered() {
    let dir = two_tenants("");
    let node = start(dir.path()).await;
    let addr = node.component_addr();
    for i in 0..20 {
        let mut acme = component(addr, "acme.example", "acme-secret").await;
        let id = format!("s{i}");
        acme.send(msg("a@acme.example", "b@acme.example", &id))
            .await;
        acme.expect(&format!("<body>{id}</body>")).await;
        assert!(!acme.received.contains("type='error'"), "{}", acme.received);
        // The next link must be the only one: while this one's close is still on its way
        // the sender's stanzas would rightly stay on it (rendezvous routing keeps a sender
        // on its link), and a socket the client dropped loses what is written to it.
        drop(acme);
        wait_links(&node, "acme", 0).await;
    }
    node.shutdown().await;
}

/// The same for other tenants: once a component reads `<handshake/>`, a stanza another
/// tenant sends it is delivered, never returned service-unavailable for want of the link
/// (the node makes the link routable before the handshake can go out). Fifty fresh links
/// in a row, each told at once.
#[actix_rt::test]
async fn a_link_is_in_service_for_other_tenants_once_its_handshake_is_answered() {
    let dir = two_tenants("");
    let node = start(dir.path()).await;
    let addr = node.component_addr();
    let mut acme = component(addr, "acme.example", "acme-secret").await;
    for i in 0..50 {
        let mut globex = component(addr, "globex.example", "globex-secret").await;
        let id = format!("g{i}");
        acme.send(msg("a@acme.example", "g@globex.example", &id))
            .await;
        globex.expect(&format!("<body>{id}</body>")).await;
        assert!(!acme.received.contains("type='error'"), "{}", acme.received);
        drop(globex);
        wait_links(&node, "globex", 0).await;
    }
    node.shutdown().await;
}

#[actix_rt::test]
async fn chat_node_alias_routes_like_a_domain() {
    let dir = two_tenants("");
    let node = start(dir.path()).await;
    let addr = node.component_addr();
    let mut acme = component(addr, "conference.acme.example", "acme-secret").await;
    let mut globex = component(addr, "globex.example", "globex-secret").await;
    wait_links(&node, "acme", 1).await;

    globex
        .send(msg(
            "g@globex.example",
            "room@conference.acme.example/nick",
            "r1",
        ))
        .await;
    acme.expect("<body>r1</body>").await;
    // The link carries all of the tenant's domains, whichever it named in its header.
    globex
        .send(msg("g@globex.example", "a@acme.example", "r2"))
        .await;
    acme.expect("<body>r2</body>").await;
    // And may send from any of them.
    acme.send(msg(
        "room@conference.acme.example/g",
        "g@globex.example",
        "r3",
    ))
    .await;
    globex.expect("<body>r3</body>").await;
    node.shutdown().await;
}

#[actix_rt::test]
async fn tenant_without_a_link_gets_service_unavailable_and_errors_are_not_answered() {
    let dir = two_tenants("");
    let node = start(dir.path()).await;
    let mut acme = component(node.component_addr(), "acme.example", "acme-secret").await;
    wait_links(&node, "acme", 1).await;

    acme.send("<message from='a@acme.example' to='g@globex.example' type='error' id='e1'/>")
        .await;
    acme.send(msg("a@acme.example", "g@globex.example", "m1"))
        .await;
    acme.expect("</message>").await;
    // The only reply is to m1: the error stanza e1 was not answered.
    assert!(!acme.received.contains("'e1'"), "{}", acme.received);
    assert!(
        acme.received.contains("id='m1' type='error'"),
        "{}",
        acme.received
    );
    assert!(
        acme.received.contains("<service-unavailable "),
        "{}",
        acme.received
    );
    node.shutdown().await;
}

#[actix_rt::test]
async fn links_of_one_tenant_share_senders_keep_order_and_fail_over() {
    let dir = two_tenants("");
    let node = start(dir.path()).await;
    let addr = node.component_addr();
    let mut a1 = component(addr, "acme.example", "acme-secret").await;
    let mut a2 = component(addr, "acme.example", "acme-secret").await;
    let mut globex = component(addr, "globex.example", "globex-secret").await;
    wait_links(&node, "acme", 2).await;

    // 20 senders, 25 messages each, interleaved.
    let (senders, per_sender) = (20, 25);
    let mut batch = String::new();
    for n in 0..per_sender {
        for s in 0..senders {
            batch.push_str(&msg(
                &format!("u{s}@globex.example/r"),
                "a@acme.example",
                &format!("s{s}-{n}"),
            ));
        }
    }
    globex.send(&batch).await;
    let total = senders * per_sender;
    let deadline = tokio::time::Instant::now() + WAIT;
    while ids(&a1.received).len() + ids(&a2.received).len() < total {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all delivered: {} + {}; globex got: {}",
            ids(&a1.received).len(),
            ids(&a2.received).len(),
            &globex.received[..globex.received.len().min(600)]
        );
        for link in [&mut a1, &mut a2] {
            let before = link.received.len();
            let _ = tokio::time::timeout(
                Duration::from_millis(20),
                link.read_until(move |r| r.len() > before),
            )
            .await;
        }
    }
    let (got1, got2) = (ids(&a1.received), ids(&a2.received));
    assert_eq!(got1.len() + got2.len(), total, "none lost, none doubled");
    assert!(
        !got1.is_empty() && !got2.is_empty(),
        "both links carry traffic"
    );
    for s in 0..senders {
        let prefix = format!("s{s}-");
        let on1: Vec<&String> = got1.iter().filter(|i| i.starts_with(&prefix)).collect();
        let on2: Vec<&String> = got2.iter().filter(|i| i.starts_with(&prefix)).collect();
        assert!(
            on1.is_empty() || on2.is_empty(),
            "sender {s} split across links"
        );
        let order: Vec<String> = (0..per_sender).map(|n| format!("s{s}-{n}")).collect();
        let arrived: Vec<String> = on1.into_iter().chain(on2).cloned().collect();
        assert_eq!(arrived, order, "sender {s} out of order");
    }

    // Link 1 goes away: everything now arrives on link 2.
    drop(a1);
    wait_links(&node, "acme", 1).await;
    a2.clear();
    let mut batch = String::new();
    for s in 0..senders {
        batch.push_str(&msg(
            &format!("u{s}@globex.example/r"),
            "a@acme.example",
            &format!("after{s}"),
        ));
    }
    globex.send(&batch).await;
    a2.read_until(|r| ids(r).len() == senders).await;
    assert_eq!(ids(&a2.received).len(), senders);
    node.shutdown().await;
}

#[actix_rt::test]
async fn shutdown_delivers_what_was_accepted_then_closes_with_system_shutdown() {
    let dir = two_tenants("");
    let node = start(dir.path()).await;
    let addr = node.component_addr();
    let mut acme = component(addr, "acme.example", "acme-secret").await;
    let mut globex = component(addr, "globex.example", "globex-secret").await;
    wait_links(&node, "acme", 1).await;

    let mut batch = String::new();
    for n in 0..200 {
        batch.push_str(&msg("g@globex.example", "a@acme.example", &n.to_string()));
    }
    globex.send(&batch).await;
    acme.read_until(|r| ids(r).len() == 200).await;
    node.shutdown().await;

    for link in [&mut acme, &mut globex] {
        let all = link.read_to_close().await;
        assert_eq!(
            stream_error_condition(&all).as_deref(),
            Some("system-shutdown"),
            "{all}"
        );
        assert!(all.ends_with("</stream:stream>"), "{all}");
    }
    assert_eq!(ids(&acme.received).len(), 200);
}

/// A stand-in for the cluster's other nodes that refuses every stanza as `full` says.
struct Refusing {
    full: bool,
}

impl xfed::routing::Forward for Refusing {
    fn forward(&self, _: &str, s: xfed::xmpp::Stanza) -> Result<(), xfed::xmpp::SendError> {
        Err(match self.full {
            true => xfed::xmpp::SendError::Full(Box::new(s)),
            false => xfed::xmpp::SendError::Closed(Box::new(s)),
        })
    }
    fn forward_remote(&self, s: xfed::xmpp::Stanza) -> Result<(), Box<xfed::xmpp::Stanza>> {
        Err(Box::new(s))
    }
    fn unconfirmed_bytes(&self) -> usize {
        0
    }
    fn name(&self) -> &str {
        "stand-in"
    }
    fn to_node(&self, _: &str, s: xfed::xmpp::Stanza) -> Result<(), Box<xfed::xmpp::Stanza>> {
        Err(Box::new(s))
    }
    fn attach(&self, _: std::sync::Weak<xfed::routing::Router>) {}
}

/// A stanza for a tenant linked only on other nodes comes back saying which way it failed:
/// no node could be reached (`service-unavailable`), or the link to the node that would take
/// it is full (`resource-constraint`: that node is slower than its senders).
#[actix_rt::test]
async fn a_stanza_the_other_nodes_cannot_take_comes_back_with_the_reason() {
    let dir = two_tenants("");
    let node = start(dir.path()).await;
    let mut acme = component(node.component_addr(), "acme.example", "acme-secret").await;
    wait_links(&node, "acme", 1).await;
    for (full, condition, text) in [
        (
            false,
            "<service-unavailable ",
            "no link of tenant globex is connected",
        ),
        (true, "<resource-constraint ", "links is not keeping up"),
    ] {
        node.router()
            .set_forward(std::sync::Arc::new(Refusing { full }));
        acme.clear();
        acme.send(msg("a@acme.example", "g@globex.example", "m1"))
            .await;
        acme.expect("</message>").await;
        let got = &acme.received;
        assert!(got.contains("id='m1' type='error'"), "{got}");
        assert!(got.contains(condition), "{got}");
        assert!(got.contains(text), "{got}");
    }
    node.shutdown().await;
}

/// A new link's `<handshake/>` is the first thing it reads (XEP-0114): stanzas already
/// flowing to its tenant do not overtake it once the link becomes routable.
#[actix_rt::test]
async fn a_new_link_reads_its_handshake_before_any_stanza() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = two_tenants("");
    let node = start(dir.path()).await;
    let addr = node.component_addr();
    let globex = component(addr, "globex.example", "globex-secret").await;
    wait_links(&node, "globex", 1).await;
    // globex writes to acme without pause (reading what comes back, returns included)
    // while acme's links come and go.
    let run = std::sync::Arc::new(AtomicBool::new(true));
    let (mut rd, mut wr) = globex.stream.into_split();
    let drain = actix_rt::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let going = run.clone();
    let writer = actix_rt::spawn(async move {
        let mut n = 0u64;
        while going.load(Ordering::Relaxed) && n < 5_000_000 {
            let m = msg("g@globex.example", "a@acme.example", &n.to_string());
            if wr.write_all(m.as_bytes()).await.is_err() {
                break;
            }
            n += 1;
        }
        n
    });
    for attempt in 0..20 {
        let mut acme = handshake(addr, "acme.example", "acme-secret").await;
        acme.read_until(|r| r.contains("<handshake/>") && r.contains("<message"))
            .await;
        let before = acme
            .received
            .split("<handshake/>")
            .next()
            .unwrap_or_default();
        assert!(
            !before.contains("<message"),
            "attempt {attempt}: a stanza before the handshake: {}",
            acme.received
        );
        acme.send("</stream:stream>").await;
    }
    run.store(false, Ordering::Relaxed);
    let sent = writer.await.unwrap();
    assert!(sent > 0);
    node.shutdown().await;
    drain.abort();
}
