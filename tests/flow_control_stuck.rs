//! Head-of-line blocking (issue 14): one remote domain that stops reading must not hold up
//! the rest of a component link's traffic beyond `[limits] stuck_secs`, and what it does not
//! take comes back to the sender with errors — nothing lost.
//!
//! Node A hosts acme, node B globex (a healthy remote); stuck.example is a raw socket in this
//! test that authenticates A's stream by dialback and then never reads again. The acme
//! component writes to both as fast as TCP takes it. Flow control pauses its link while
//! stanzas for stuck.example wait (their bytes count as in flight); after `stuck_secs` they
//! let it go, so the globex traffic finishes while the stuck stream is still open (A gives
//! such a stream up after 20 s). Without that bound the link would stay paused until then.
//! No timing is asserted beyond that ordering.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fed::*;
use common::flow::{start_limited, Tally};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, timeout_at, Instant};

/// Stanzas to the healthy remote, of about 400 bytes each.
const TO_GLOBEX: usize = 4000;

/// Stanzas to the stuck remote, of about 4 KB each: 8 MB, more than its socket buffers on
/// loopback (a few MB), A's write batch and its queue hold together, so that its stream
/// stops taking them while most of the globex traffic is still to come.
const TO_STUCK: usize = 2000;

const STUCK: &str = "stuck.example";

/// Node A's limits: as small as node B's, so that acme's link pauses as soon as stanzas for
/// stuck.example wait, and stuck after 1 s. When A gives the stuck stream up it returns
/// about a thousand stanzas at once, far more than acme's 64 KiB link queue holds: returns
/// go in past the bound (before they did not, and four in five were lost).
const A_LIMITS: &str = "stuck_secs = 1\n";

/// How long the whole exchange may take: the stuck stream's stanzas come back when A
/// gives it up (20 s of stall) and a second stream fails to open (10 s of handshake).
const ALL_BACK: Duration = Duration::from_secs(90);

#[actix_rt::test]
async fn a_stuck_remote_does_not_hold_up_a_links_traffic_to_a_healthy_one() {
    let dir = tempfile::tempdir().unwrap();
    let stuck_listener = stuck_listener();
    let stuck_port = stuck_listener.local_addr().unwrap().port();
    let plain = "security_mode = \"no-tls\"\nrequire_client_certs = false";
    let (ra, rb, _) = write_pair(dir.path(), (plain, ""), (plain, ""));
    route_acme_to_stuck(dir.path(), stuck_port);
    let a = start_limited(&ra, A_LIMITS).await;
    let b = start_limited(&rb, "").await;
    let mut acme = component(a.component_addr(), "acme.example", "acme-secret").await;
    let mut globex = component(b.component_addr(), "globex.example", "globex-secret").await;
    wait_links(&b, "globex", 1).await;

    // Both streams up before the flood: a first message each way out.
    let stuck_peer = actix_rt::spawn(stuck_remote(stuck_listener));
    acme.send(message("g-first", "b@globex.example", "")).await;
    globex.expect("id='g-first'").await;
    globex.clear();
    acme.send(message("s-first", &format!("x@{STUCK}"), ""))
        .await;
    let (_listener, stuck_socket) = timeout(WAIT, stuck_peer)
        .await
        .expect("node A opens a stream to stuck.example")
        .unwrap();
    let stuck_stream = stuck_stream_id(&a, stuck_port).await;
    let sent_stuck = TO_STUCK + 1;

    // What comes back to acme, counted as it arrives.
    let (mut acme_rd, mut acme_wr) = acme.stream.into_split();
    let back = Arc::new(Mutex::new(Tally::default()));
    let tally = back.clone();
    actix_rt::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = acme_rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
            tally.lock().unwrap().add(&buf[..n]);
        }
    });
    let started = Instant::now();
    let writer = actix_rt::spawn(async move {
        let (small, large) = ("x".repeat(300), "y".repeat(4000));
        for rounds in (0..TO_STUCK).collect::<Vec<_>>().chunks(25) {
            let mut out = String::new();
            for i in rounds {
                out.push_str(&message(&format!("g{}", 2 * i), "b@globex.example", &small));
                out.push_str(&message(&format!("s{i}"), &format!("x@{STUCK}"), &large));
                out.push_str(&message(
                    &format!("g{}", 2 * i + 1),
                    "b@globex.example",
                    &small,
                ));
            }
            acme_wr
                .write_all(out.as_bytes())
                .await
                .expect("acme writes");
        }
        acme_wr
    });

    // globex reads everything as it comes.
    let mut delivered = Tally::default();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = started + ALL_BACK;
    while delivered.messages < TO_GLOBEX {
        let read = timeout_at(deadline, globex.stream.read(&mut buf)).await;
        let n = read
            .unwrap_or_else(|_| {
                panic!(
                    "globex got {} of {TO_GLOBEX} in {ALL_BACK:?}",
                    delivered.messages
                )
            })
            .expect("globex reads");
        assert!(n > 0, "node B closed globex's link");
        delivered.add(&buf[..n]);
    }
    let took = started.elapsed();

    // The head-of-line assertion: that happened while A still had the stuck stream.
    let row = a.s2s_streams().into_iter().find(|r| r.id == stuck_stream);
    let given_up = {
        let t = back.lock().unwrap();
        t.errors_from(STUCK) - t.count(STUCK, "resource-constraint")
    };
    println!(
        "globex: {} delivered in {took:?}; stuck stream then: {:?}",
        delivered.messages,
        row.as_ref()
            .map(|r| (r.stanzas_out, r.bytes_out, r.queued_bytes, r.unacked))
    );
    let row = row.unwrap_or_else(|| {
        panic!("the stuck stream was given up before the globex traffic got through ({took:?})")
    });
    assert_eq!(
        given_up, 0,
        "stanzas for stuck.example came back from a stream given up before globex's got through"
    );
    assert!(
        matches!(stuck_socket.take_error(), Ok(None)),
        "the stuck peer's connection failed"
    );
    assert!(
        (row.stanzas_out as usize) < sent_stuck,
        "stuck.example took everything: it was never stuck ({row:?})"
    );

    // Everything for stuck.example comes back; nothing for globex does.
    let mut acme_wr = timeout(ALL_BACK, writer)
        .await
        .expect("acme wrote everything")
        .unwrap();
    loop {
        let (returned, conditions) = {
            let t = back.lock().unwrap();
            (t.errors_from(STUCK), t.conditions.clone())
        };
        if returned >= sent_stuck {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "of {sent_stuck} stanzas to stuck.example, {returned} came back in {ALL_BACK:?}: \
             {conditions:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    {
        let t = back.lock().unwrap();
        println!(
            "stuck.example: {sent_stuck} sent, {} returned, 0 delivered; by condition {:?}; all back in {:?}",
            t.errors_from(STUCK),
            t.conditions,
            started.elapsed()
        );
        assert_eq!(t.errors_from(STUCK), sent_stuck, "each came back once");
        assert_eq!(
            t.errors_from("globex.example"),
            0,
            "none for globex came back"
        );
        assert_eq!(t.errors, sent_stuck, "no other error came back");
        assert!(
            t.count(STUCK, "resource-constraint") > 0,
            "the stuck queue never filled to its bound: {:?}",
            t.conditions
        );
    }
    assert_eq!(delivered.messages, TO_GLOBEX, "no globex stanza twice");
    assert_eq!(delivered.errors, 0);

    // Node A still serves acme's link.
    acme_wr
        .write_all(message("g-after", "b@globex.example", "").as_bytes())
        .await
        .unwrap();
    globex.clear();
    globex.expect("id='g-after'").await;
    a.shutdown().await;
    b.shutdown().await;
}

fn message(id: &str, to: &str, body: &str) -> String {
    format!("<message from='a@acme.example' to='{to}' id='{id}'><body>{body}</body></message>")
}

/// acme's tenant on node A allows stuck.example and routes it to `port`.
fn route_acme_to_stuck(dir: &std::path::Path, port: u16) {
    let file = dir.join("a/tenants/acme.toml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace(
            "routes = {",
            &format!("routes = {{ \"{STUCK}\" = [\"127.0.0.1:{port}\"], "),
        )
        .replace(
            "allow = [\"globex.example\"]",
            &format!("allow = [\"globex.example\", \"{STUCK}\"]"),
        );
    std::fs::write(&file, text).unwrap();
}

/// Where stuck.example listens, with a small receive buffer: A's socket then takes little
/// more than its own send buffer before it blocks, well inside the 4 MiB A keeps for a peer
/// that does not answer its checkpoint pings (past it the oldest would count as confirmed).
fn stuck_listener() -> TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8192).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    socket.listen(64).unwrap()
}

/// stuck.example as a receiving server (RFC 6120 §4.3, XEP-0220 §2.1), just far enough:
/// answers A's stream header with its own and features offering dialback (no STARTTLS, no
/// stream management), accepts A's dialback key, and from then on never reads. Answers
/// the socket, held open, and the listener: later connections wait in its backlog
/// unanswered, as at a server that hangs.
async fn stuck_remote(listener: TcpListener) -> (TcpListener, TcpStream) {
    let (mut s, _) = timeout(WAIT, listener.accept())
        .await
        .expect("node A connects")
        .unwrap();
    let mut text = String::new();
    read_until(&mut s, &mut text, |t| {
        t.split_once("<stream:stream")
            .is_some_and(|(_, rest)| rest.contains('>'))
    })
    .await;
    s.write_all(
        format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
             xmlns:db='jabber:server:dialback' xmlns:stream='http://etherx.jabber.org/streams' \
             from='{STUCK}' to='acme.example' id='stuck-1' version='1.0'><stream:features>\
             <dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>\
             </stream:features>"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    read_until(&mut s, &mut text, |t| t.contains("</db:result>")).await;
    s.write_all(format!("<db:result from='{STUCK}' to='acme.example' type='valid'/>").as_bytes())
        .await
        .unwrap();
    (listener, s)
}

/// Reads from `s` into `text` until `done(text)`, within [`WAIT`].
async fn read_until(s: &mut TcpStream, text: &mut String, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + WAIT;
    let mut buf = vec![0u8; 4096];
    while !done(text) {
        let n = timeout_at(deadline, s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("stuck.example waited in vain; got: {text}"))
            .unwrap();
        assert!(n > 0, "node A closed the stream; got: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// The id of A's stream to stuck.example (whose peer port is `port`), once it is listed.
async fn stuck_stream_id(a: &xfed::node::Node, port: u16) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = a
            .s2s_streams()
            .into_iter()
            .find(|r| r.peer_port == port && r.pairs.iter().any(|p| p.remote == STUCK));
        if let Some(row) = found {
            return row.id;
        }
        assert!(
            Instant::now() < deadline,
            "A never listed its stream to stuck.example"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
