//! Federation faults over real sockets: a peer that refuses, one that never answers, one
//! that closes with stanzas in flight, idle streams; and raw inbound s2s peers that break
//! the protocol. Every stanza ends delivered or returned with a reason — counted.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::fed::*;
use common::peer::*;
use common::*;
use xfed::s2s::Direction;

/// Writes and starts node A (acme) routing globex.example statically to `peer_port`, with
/// `[federation]` lines and a negotiation timeout of `timeout_secs`.
fn node_a(dir: &Path, peer_port: u16, federation: &str, timeout_secs: u32) -> PathBuf {
    let router = write_node(&NodeSpec {
        dir,
        s2s_port: free_port(),
        tenant: "acme",
        domain: "acme.example",
        secret: "secret",
        peer_domain: "globex.example",
        peer_port,
        federation,
        tls: "",
        dialback: "shared",
    });
    let text = std::fs::read_to_string(&router).unwrap().replace(
        "handshake_timeout_secs = 10",
        &format!("handshake_timeout_secs = {timeout_secs}"),
    );
    std::fs::write(&router, text).unwrap();
    router
}

async fn start_at(router: &Path) -> xfed::node::Node {
    let cfg = xfed::config::load(router).unwrap_or_else(|e| panic!("{e}"));
    xfed::node::Node::start(cfg).await.expect("node starts")
}

fn msg(id: usize) -> String {
    format!("<message from='a@acme.example' to='b@globex.example' id='m{id}'><body>m{id}</body></message>")
}

/// Error replies in `received`: (id, condition).
fn errors(received: &str) -> Vec<(String, String)> {
    received
        .split("<message ")
        .filter(|m| m.contains("type='error'"))
        .map(|m| {
            let id = m
                .split("id='")
                .nth(1)
                .unwrap_or("")
                .split('\'')
                .next()
                .unwrap_or("");
            let cond = m
                .split("<error type='")
                .nth(1)
                .unwrap_or("")
                .split('<')
                .nth(1)
                .unwrap_or("");
            (
                id.to_owned(),
                cond.split([' ', '/']).next().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

const NO_TLS: &str = "security_mode = \"no-tls\"\nrequire_client_certs = false";

#[actix_rt::test]
async fn refused_connection_bounces_every_stanza_and_backs_off() {
    let dir = tempfile::tempdir().unwrap();
    let closed = free_port();
    let a = start_at(&node_a(dir.path(), closed, NO_TLS, 5)).await;
    let mut acme = component(a.component_addr(), "acme.example", "secret").await;
    let batch: String = (0..20).map(msg).collect();
    acme.send(&batch).await;
    acme.read_until(|r| errors(r).len() >= 20).await;
    let got = errors(&acme.received);
    assert_eq!(got.len(), 20, "{}", acme.received);
    assert!(
        got.iter().all(|(_, c)| c == "remote-server-not-found"),
        "{got:?}"
    );
    assert!(
        acme.received.contains("cannot connect to 127.0.0.1"),
        "{}",
        acme.received
    );
    // During the back-off the next stanza is returned with the same reason at once.
    acme.clear();
    acme.send(msg(99)).await;
    acme.expect("</message>").await;
    assert_eq!(
        errors(&acme.received),
        vec![("m99".into(), "remote-server-not-found".into())]
    );
    a.shutdown().await;
}

#[actix_rt::test]
async fn silent_peer_bounces_with_remote_server_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    // Accepts and holds connections, never saying a word.
    let holder = actix_rt::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let a = start_at(&node_a(dir.path(), port, NO_TLS, 1)).await;
    let mut acme = component(a.component_addr(), "acme.example", "secret").await;
    acme.send(msg(1)).await;
    acme.expect("</message>").await;
    assert_eq!(
        errors(&acme.received),
        vec![("m1".into(), "remote-server-timeout".into())]
    );
    holder.abort();
    a.shutdown().await;
}

/// Two nodes federating; B shuts down while a burst is in flight. Every stanza is either
/// delivered to globex or returned to acme; after B comes back on the same port the next
/// stanza opens a new stream and is delivered.
#[actix_rt::test]
async fn peer_closing_with_stanzas_in_flight_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let pb = free_port();
    let ra = node_a(&dir.path().join("a"), pb, NO_TLS, 5);
    let pa: u16 = std::fs::read_to_string(&ra)
        .unwrap()
        .split("s2s = \"127.0.0.1:")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let rb = write_node(&NodeSpec {
        dir: &dir.path().join("b"),
        s2s_port: pb,
        tenant: "globex",
        domain: "globex.example",
        secret: "secret",
        peer_domain: "acme.example",
        peer_port: pa,
        federation: NO_TLS,
        tls: "",
        dialback: "shared",
    });
    let a = start_at(&ra).await;
    let b = start_at(&rb).await;
    let mut acme = component(a.component_addr(), "acme.example", "secret").await;
    let mut globex = component(b.component_addr(), "globex.example", "secret").await;
    wait_links(&b, "globex", 1).await;
    acme.send(msg(0)).await;
    globex.expect("<body>m0</body>").await;

    let total = 300;
    let batch: String = (1..=total).map(msg).collect();
    acme.send(&batch).await;
    b.shutdown().await;
    let delivered_to_globex = globex.read_to_close().await.matches("<body>m").count() - 1;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let bounced = errors(&acme.received).len();
        if delivered_to_globex + bounced >= total || tokio::time::Instant::now() > deadline {
            break;
        }
        let _ = tokio::time::timeout(
            Duration::from_millis(100),
            acme.read_until(|r| r.len() > 1 << 30),
        )
        .await;
    }
    let bounced = errors(&acme.received);
    assert_eq!(
        delivered_to_globex + bounced.len(),
        total,
        "delivered {delivered_to_globex}, bounced {}",
        bounced.len()
    );

    // B comes back on the same port: the next stanza opens a new stream.
    let b = start_at(&rb).await;
    let mut globex = component(b.component_addr(), "globex.example", "secret").await;
    wait_links(&b, "globex", 1).await;
    tokio::time::sleep(Duration::from_secs(9)).await; // past the failure back-off
    acme.send(msg(1000)).await;
    globex.expect("<body>m1000</body>").await;
    a.shutdown().await;
    b.shutdown().await;
}

#[actix_rt::test]
async fn idle_stream_closes_and_the_next_stanza_opens_another() {
    let dir = tempfile::tempdir().unwrap();
    let pb = free_port();
    let fed = format!("{NO_TLS}\nidle_timeout_secs = 1");
    let ra = node_a(&dir.path().join("a"), pb, &fed, 5);
    let pa: u16 = std::fs::read_to_string(&ra)
        .unwrap()
        .split("s2s = \"127.0.0.1:")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let rb = write_node(&NodeSpec {
        dir: &dir.path().join("b"),
        s2s_port: pb,
        tenant: "globex",
        domain: "globex.example",
        secret: "secret",
        peer_domain: "acme.example",
        peer_port: pa,
        federation: &fed,
        tls: "",
        dialback: "shared",
    });
    let a = start_at(&ra).await;
    let b = start_at(&rb).await;
    let mut acme = component(a.component_addr(), "acme.example", "secret").await;
    let mut globex = component(b.component_addr(), "globex.example", "secret").await;
    wait_links(&b, "globex", 1).await;
    acme.send(msg(1)).await;
    globex.expect("<body>m1</body>").await;
    let first = a
        .s2s_streams()
        .into_iter()
        .find(|s| s.direction == Direction::Outgoing)
        .expect("outbound")
        .id;
    let deadline = tokio::time::Instant::now() + WAIT;
    while a
        .s2s_streams()
        .iter()
        .any(|s| s.direction == Direction::Outgoing)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "idle stream never closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    acme.send(msg(2)).await;
    globex.expect("<body>m2</body>").await;
    let second = a
        .s2s_streams()
        .into_iter()
        .find(|s| s.direction == Direction::Outgoing)
        .expect("outbound")
        .id;
    assert_ne!(first, second);
    a.shutdown().await;
    b.shutdown().await;
}

#[actix_rt::test]
async fn inbound_s2s_rules_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_at(&node_a(dir.path(), free_port(), NO_TLS, 5)).await;

    // A stanza before any authentication.
    let mut c = raw_s2s(a.s2s_addr(), "acme.example").await;
    c.send("<message from='x@evil.example' to='a@acme.example'/>")
        .await;
    let all = c.read_to_close().await;
    assert_eq!(
        stream_error_condition(&all).as_deref(),
        Some("not-authorized"),
        "{all}"
    );

    // An unsolicited "valid" dialback result authenticates nothing.
    let mut c = raw_s2s(a.s2s_addr(), "acme.example").await;
    c.send("<db:result from='evil.example' to='acme.example' type='valid'/>")
        .await;
    c.send("<message from='x@evil.example' to='a@acme.example'/>")
        .await;
    let all = c.read_to_close().await;
    assert_eq!(
        stream_error_condition(&all).as_deref(),
        Some("not-authorized"),
        "{all}"
    );

    // A stream to a domain not hosted here.
    let mut c = Raw::connect(a.s2s_addr()).await;
    c.send("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='other.example' version='1.0'>").await;
    let all = c.read_to_close().await;
    assert_eq!(
        stream_error_condition(&all).as_deref(),
        Some("host-unknown"),
        "{all}"
    );

    // A forged dialback verify gets "invalid".
    let mut c = raw_s2s(a.s2s_addr(), "acme.example").await;
    c.send("<db:verify from='evil.example' to='acme.example' id='abc'>0123</db:verify>")
        .await;
    c.expect("type='invalid'").await;
    a.shutdown().await;
}

#[actix_rt::test]
async fn tls_required_refuses_dialback_before_starttls() {
    let dir = tempfile::tempdir().unwrap();
    let fed = "security_mode = \"tls-required\"\nrequire_client_certs = false";
    let a = start_at(&node_a(dir.path(), free_port(), fed, 5)).await;
    let mut c = raw_s2s(a.s2s_addr(), "acme.example").await;
    assert!(
        c.received.contains("<required/></starttls>"),
        "{}",
        c.received
    );
    c.send("<db:result from='evil.example' to='acme.example'>0123</db:result>")
        .await;
    let all = c.read_to_close().await;
    assert_eq!(
        stream_error_condition(&all).as_deref(),
        Some("policy-violation"),
        "{all}"
    );
    a.shutdown().await;
}

/// Streams from one remote server to several domains of a tenant are checked with the
/// remote's authoritative server over one connection, not one each; when that server closes
/// it, the next check opens another.
#[actix_rt::test]
async fn dialback_checks_for_one_remote_share_a_connection() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    actix_rt::spawn(authoritative(listener, seen_tx, "valid"));
    let router = node_a(dir.path(), port, NO_TLS, 5);
    let tenant = dir.path().join("tenants").join("acme.toml");
    let text = std::fs::read_to_string(&tenant).unwrap().replace(
        "domains = [\"acme.example\"]",
        "domains = [\"acme.example\", \"two.acme.example\", \"three.acme.example\"]",
    );
    std::fs::write(&tenant, text).unwrap();
    let a = start_at(&router).await;

    let mut streams = Vec::new();
    for to in ["acme.example", "two.acme.example", "three.acme.example"] {
        let c = dialback_from_globex(a.s2s_addr(), to).await;
        assert!(
            c.received
                .contains(&format!("from='{to}' to='globex.example' type='valid'")),
            "{to}: {}",
            c.received
        );
        streams.push(c);
    }
    let mut log = Vec::new();
    // Takes in what the authoritative server reported; answers (connections, questions).
    let mut tally = |log: &mut Vec<String>| {
        while let Ok(line) = seen.try_recv() {
            log.push(line);
        }
        let count = |what: &str| log.iter().filter(|l| l.starts_with(what)).count();
        (count("connection"), count("verify"))
    };
    assert_eq!(tally(&mut log), (1, 3), "{log:?}");
    for to in ["acme.example", "two.acme.example", "three.acme.example"] {
        assert!(
            log.iter().any(|l| l.starts_with(&format!("verify {to} "))),
            "{log:?}"
        );
    }

    // The authoritative server has closed that connection: the next check opens another.
    let c = dialback_from_globex(a.s2s_addr(), "acme.example").await;
    assert!(
        c.received
            .contains("from='acme.example' to='globex.example' type='valid'"),
        "{}",
        c.received
    );
    assert_eq!(tally(&mut log), (2, 4), "{log:?}");
    a.shutdown().await;
}
