//! Stream management (XEP-0198) on s2s streams, counted: every stanza a tenant sends is
//! delivered or returned, also when the remote server's connection dies with stanzas it had
//! read but not acknowledged. A scripted remote server (raw sockets) plays the peer so the
//! test decides exactly what it acknowledges and when it dies; two xfed nodes show the
//! acknowledgements in their normal flow.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::fed::*;
use common::*;

const NO_TLS: &str = "security_mode = \"no-tls\"\nrequire_client_certs = false";

/// Node A (acme) whose static route for globex.example points at `peer_port`.
fn node_a(dir: &Path, peer_port: u16) -> PathBuf {
    write_node(&NodeSpec {
        dir,
        s2s_port: free_port(),
        tenant: "acme",
        domain: "acme.example",
        secret: "acme-secret",
        peer_domain: "globex.example",
        peer_port,
        federation: NO_TLS,
        tls: "",
        dialback: "shared",
    })
}

/// A scripted receiving server for globex.example: takes node A's outbound stream, offers
/// stream management and dialback, accepts the key, answers `<enable/>`.
async fn accept_stream(listener: &tokio::net::TcpListener) -> Raw {
    let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("node A connects")
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let mut c = Raw {
        stream,
        received: String::new(),
    };
    c.expect("<stream:stream").await;
    c.send(
        "<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' \
         xmlns:stream='http://etherx.jabber.org/streams' from='globex.example' \
         to='acme.example' id='peer-stream' version='1.0'><stream:features>\
         <sm xmlns='urn:xmpp:sm:3'><optional/></sm>\
         <dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>",
    )
    .await;
    c.expect("</db:result>").await;
    c.send("<db:result from='globex.example' to='acme.example' type='valid'/>")
        .await;
    c.expect("<enable xmlns='urn:xmpp:sm:3'/>").await;
    c.send("<enabled xmlns='urn:xmpp:sm:3'/>").await;
    c.clear();
    c
}

fn msg(i: usize) -> String {
    format!(
        "<message from='a@acme.example' to='b@globex.example' id='m{i}'><body>{i}</body></message>"
    )
}

/// The ids of the messages in `received`, in order.
fn ids(received: &str) -> Vec<usize> {
    received
        .split("<message ")
        .skip(1)
        .filter(|m| !m.contains("type='error'"))
        .filter_map(|m| m.split("id='m").nth(1)?.split('\'').next()?.parse().ok())
        .collect()
}

/// The remote server reads ten messages, acknowledges four and dies without a close. The
/// six it did not acknowledge go out again on the next stream, in order, before a message
/// sent afterwards; nothing is returned. Counted: 11 sent = 4 + 7 delivered.
#[actix_rt::test]
async fn unacknowledged_stanzas_go_out_again_in_order_on_a_new_stream() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let a = start_at(&node_a(dir.path(), port)).await;
    let mut acme = component(a.component_addr(), "acme.example", "acme-secret").await;

    let batch: String = (1..=10).map(msg).collect();
    acme.send(&batch).await;
    let mut first = accept_stream(&listener).await;
    first.read_until(|r| ids(r).len() == 10).await;
    assert_eq!(ids(&first.received), (1..=10).collect::<Vec<_>>());
    let streams = a.s2s_streams();
    assert_eq!(streams.len(), 1);
    first.send("<a xmlns='urn:xmpp:sm:3' h='4'/>").await;
    // Dies: no closing tag, the socket just goes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(first);

    let mut second = accept_stream(&listener).await;
    second.read_until(|r| ids(r).len() == 6).await;
    acme.send(msg(11)).await;
    second.read_until(|r| ids(r).len() == 7).await;
    assert_eq!(ids(&second.received), (5..=11).collect::<Vec<_>>());
    second.send("<a xmlns='urn:xmpp:sm:3' h='7'/>").await;

    // Nothing came back to the sender.
    tokio::time::sleep(Duration::from_millis(200)).await;
    acme.read_until(|_| true).await;
    assert!(!acme.received.contains("type='error'"), "{}", acme.received);
    let events = a.observer().events.query(&Default::default());
    let unacked: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "stream_unacknowledged")
        .collect();
    assert_eq!(unacked.len(), 1, "{events:?}");
    assert_eq!(unacked[0]["unacknowledged"], 6);
    let metrics = a.observer().metrics.render();
    assert!(metrics.contains("xfed_s2s_resent_total 6"), "{metrics}");
    a.shutdown().await;
}

/// A stanza whose streams keep dying before it is acknowledged goes out again once, then
/// returns to its sender with remote-server-timeout and the reason.
#[actix_rt::test]
async fn a_stanza_unacknowledged_twice_is_returned() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let a = start_at(&node_a(dir.path(), port)).await;
    let mut acme = component(a.component_addr(), "acme.example", "acme-secret").await;
    acme.send(msg(1)).await;
    for _ in 0..2 {
        let mut s = accept_stream(&listener).await;
        s.read_until(|r| ids(r) == [1]).await;
        drop(s);
    }
    acme.expect("</message>").await;
    assert!(
        acme.received.contains("id='m1' type='error'")
            && acme.received.contains("<remote-server-timeout ")
            && acme.received.contains("acknowledged"),
        "{}",
        acme.received
    );
    a.shutdown().await;
}

/// XEP-0198 §4: acknowledging more than was sent ends the stream with undefined-condition
/// and handled-count-too-high.
#[actix_rt::test]
async fn an_ack_of_more_than_was_sent_is_a_stream_error() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let a = start_at(&node_a(dir.path(), port)).await;
    let mut acme = component(a.component_addr(), "acme.example", "acme-secret").await;
    acme.send(msg(1)).await;
    let mut s = accept_stream(&listener).await;
    s.read_until(|r| ids(r) == [1]).await;
    s.send("<a xmlns='urn:xmpp:sm:3' h='5'/>").await;
    let all = s.read_to_close().await;
    assert_eq!(
        stream_error_condition(&all).as_deref(),
        Some("undefined-condition"),
        "{all}"
    );
    assert!(
        all.contains("<handled-count-too-high xmlns='urn:xmpp:sm:3' h='5' send-count='1'/>"),
        "{all}"
    );
    a.shutdown().await;
}

/// Two xfed nodes: stream management is on both ways by default, every stanza is
/// acknowledged, and the operator sees it per stream.
#[actix_rt::test]
async fn two_nodes_acknowledge_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (ra, rb, _) = write_pair(dir.path(), (NO_TLS, ""), (NO_TLS, ""));
    let a = start_at(&ra).await;
    let b = start_at(&rb).await;
    let mut acme = component(a.component_addr(), "acme.example", "acme-secret").await;
    let mut globex = component(b.component_addr(), "globex.example", "globex-secret").await;
    let n = 200;
    let batch: String = (1..=n).map(msg).collect();
    acme.send(&batch).await;
    globex.read_until(|r| ids(r).len() == n).await;
    assert_eq!(ids(&globex.received), (1..=n).collect::<Vec<_>>());
    // Acknowledged: within a couple of the timer's rounds nothing waits on A's stream.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ctx = a.s2s();
        let out: Vec<_> = ctx.streams.iter().filter(|e| e.outbound).collect();
        assert_eq!(out.len(), 1);
        assert!(out[0].outbox.is_acked(), "stream management on A's stream");
        if out[0].outbox.unacked() == 0 {
            break;
        }
        drop(out);
        assert!(
            tokio::time::Instant::now() < deadline,
            "never all acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ctx = b.s2s();
    assert!(
        ctx.streams.iter().any(|e| !e.outbound
            && e.stats
                .sm_enabled
                .load(std::sync::atomic::Ordering::Relaxed)),
        "B sees stream management enabled on its inbound stream"
    );
    a.shutdown().await;
    b.shutdown().await;
}
