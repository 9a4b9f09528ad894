//! Stream management (XEP-0198) on s2s streams, counted: every stanza a tenant sends is
//! delivered or returned, also when the remote server's connection dies with stanzas it had
//! read but not acknowledged. A scripted remote server (raw sockets) plays the peer so the
//! test decides exactly what it acknowledges and when it dies; two xfed nodes show the
//! acknowledgements in their normal flow.

mod common;

use std::time::Duration;

use common::fed::*;
use common::peer::node_a;
use common::*;
use xfed::s2s::Direction;

const NO_TLS: &str = "security_mode = \"no-tls\"\nrequire_client_certs = false";

/// A scripted receiving server for globex.example: takes node A's outbound stream, offers
/// dialback (and stream management, with `sm`), accepts the key, answers `<enable/>`.
async fn accept_as(listener: &tokio::net::TcpListener, sm: bool) -> Raw {
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
    let offer = if sm {
        "<sm xmlns='urn:xmpp:sm:3'><optional/></sm>"
    } else {
        ""
    };
    c.send(format!(
        "<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' \
         xmlns:stream='http://etherx.jabber.org/streams' from='globex.example' \
         to='acme.example' id='peer-stream' version='1.0'><stream:features>{offer}\
         <dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>"
    ))
    .await;
    c.expect("</db:result>").await;
    c.send("<db:result from='globex.example' to='acme.example' type='valid'/>")
        .await;
    if sm {
        c.expect("<enable xmlns='urn:xmpp:sm:3'/>").await;
        c.send("<enabled xmlns='urn:xmpp:sm:3'/>").await;
    }
    c.clear();
    c
}

async fn accept_stream(listener: &tokio::net::TcpListener) -> Raw {
    accept_as(listener, true).await
}

/// Waits until node `a`'s one outbound stream has nothing unconfirmed; checks on the way
/// that it is confirmed by stream management (`sm`) or by pings.
async fn wait_confirmed(a: &xfed::node::Node, sm: bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ctx = a.s2s();
        let out: Vec<_> = ctx
            .streams
            .iter()
            .filter(|e| e.direction == Direction::Outgoing)
            .collect();
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].outbox.is_acked(),
            sm,
            "stream management on A's stream"
        );
        if out[0].outbox.unacked() == 0 {
            return;
        }
        drop(out);
        assert!(
            tokio::time::Instant::now() < deadline,
            "never all confirmed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    let a = start_at(&node_a(dir.path(), port, NO_TLS, "", "")).await;
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
    let a = start_at(&node_a(dir.path(), port, NO_TLS, "", "")).await;
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
    let a = start_at(&node_a(dir.path(), port, NO_TLS, "", "")).await;
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
    wait_confirmed(&a, true).await;
    let ctx = b.s2s();
    assert!(
        ctx.streams
            .iter()
            .any(|e| e.direction == Direction::Incoming
                && e.stats
                    .sm_enabled
                    .load(std::sync::atomic::Ordering::Relaxed)),
        "B sees stream management enabled on its inbound stream"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// Without stream management, an XEP-0199 ping through the remote server is the
/// checkpoint: its answer (on the remote's own stream to us) confirms everything written
/// before it. When the stream dies, what was written after the last answered ping may or
/// may not have arrived: it returns to its sender with remote-server-timeout and the reason;
/// what was confirmed does not. The answer is ours, never delivered to the tenant.
#[actix_rt::test]
async fn without_stream_management_a_ping_is_the_checkpoint() {
    use common::peer::{authoritative, dialback_from_globex};
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let a = start_at(&node_a(dir.path(), port, NO_TLS, "", "")).await;
    let mut acme = component(a.component_addr(), "acme.example", "acme-secret").await;

    let batch: String = (1..=10).map(msg).collect();
    acme.send(&batch).await;
    let mut out = accept_as(&listener, false).await;
    // The ping follows the ten messages within the timer's round.
    out.read_until(|r| r.contains("urn:xmpp:ping")).await;
    assert_eq!(ids(&out.received), (1..=10).collect::<Vec<_>>());
    let ping = out.received.split("<iq ").nth(1).unwrap().to_owned();
    let id = ping
        .split("id='")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_owned();
    assert!(id.starts_with("xfed-ck-") && id.ends_with("-10"), "{ping}");
    assert!(
        ping.contains("from='acme.example' to='globex.example'"),
        "{ping}"
    );

    // globex answers over its own stream to A (checked with its authoritative server).
    let (seen, _) = tokio::sync::mpsc::unbounded_channel();
    actix_rt::spawn(authoritative(listener, seen, "valid"));
    let mut inbound = dialback_from_globex(a.s2s_addr(), "acme.example").await;
    assert!(
        inbound.received.contains("type='valid'"),
        "{}",
        inbound.received
    );
    inbound
        .send(format!(
            "<iq type='result' from='globex.example' to='acme.example' id='{id}'/>"
        ))
        .await;
    wait_confirmed(&a, false).await;

    // Five more, read by the peer, which dies before answering their ping.
    out.clear();
    let batch: String = (11..=15).map(msg).collect();
    acme.send(&batch).await;
    out.read_until(|r| ids(r).len() == 5).await;
    drop(out);
    acme.read_until(|r| r.matches("type='error'").count() >= 5)
        .await;
    let returned: Vec<usize> = acme
        .received
        .split("<message ")
        .filter(|m| m.contains("type='error'"))
        .filter_map(|m| m.split("id='m").nth(1)?.split('\'').next()?.parse().ok())
        .collect();
    assert_eq!(returned, (11..=15).collect::<Vec<_>>(), "{}", acme.received);
    assert!(
        acme.received.contains("<remote-server-timeout ")
            && acme.received.contains("may or may not have arrived"),
        "{}",
        acme.received
    );
    assert!(
        !acme.received.contains("xfed-ck-"),
        "the ping answer is ours"
    );
    a.shutdown().await;
}

/// Two xfed nodes with stream management off: A's pings confirm what it wrote, answered by
/// B at its edge (the tenant's component never sees them), so nothing waits unconfirmed.
#[actix_rt::test]
async fn two_nodes_without_stream_management_confirm_by_ping() {
    let dir = tempfile::tempdir().unwrap();
    let off = format!("{NO_TLS}\nstream_management = false");
    let (ra, rb, _) = write_pair(dir.path(), (&off, ""), (&off, ""));
    let a = start_at(&ra).await;
    let b = start_at(&rb).await;
    let mut acme = component(a.component_addr(), "acme.example", "acme-secret").await;
    let mut globex = component(b.component_addr(), "globex.example", "globex-secret").await;
    let n = 150;
    let batch: String = (1..=n).map(msg).collect();
    acme.send(&batch).await;
    globex.read_until(|r| ids(r).len() == n).await;
    wait_confirmed(&a, false).await;
    assert!(!globex.received.contains("xfed-ck-"), "{}", globex.received);
    assert!(!acme.received.contains("xfed-ck-"), "{}", acme.received);
    a.shutdown().await;
    b.shutdown().await;
}
