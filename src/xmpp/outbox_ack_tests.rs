//! An outbox with checkpoints against an in-memory pipe: what it keeps until the peer
//! confirms it, and when it asks.

use tokio::io::AsyncReadExt;

use super::tests::{stanza, waits};
use super::*;

/// An outbox with stream management writing into a 1 MiB in-memory pipe, and the peer's end.
fn with_sm(waits: Waits) -> (Outbox, tokio::task::JoinHandle<()>, tokio::io::DuplexStream) {
    let (ours, peer) = tokio::io::duplex(1 << 20);
    let (outbox, task) = Outbox::spawn_acked(ours, 1 << 20, waits, Checkpoint::StreamManagement);
    (outbox, task, peer)
}

/// With stream management: written stanzas stay until acknowledged, an ack request
/// follows every ACK_EVERY stanzas, and what is unconfirmed comes out oldest first.
#[test]
fn acked_outbox_keeps_what_it_wrote_until_acknowledged() {
    actix_rt::System::new().block_on(async {
        let (outbox, _task, mut peer) = with_sm(waits(5));
        let n = ACK_EVERY as usize + 6;
        for i in 0..n {
            outbox.send(stanza(&format!("{i}"))).unwrap();
        }
        let mut got = Vec::new();
        let want = n * "<message>0</message>".len() + 100;
        while !String::from_utf8_lossy(&got).contains(&format!("<message>{}</message>", n - 1)) {
            let mut buf = vec![0u8; want];
            let k = peer.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..k]);
        }
        let got = String::from_utf8(got).unwrap();
        assert_eq!(
            got.matches("<r xmlns='urn:xmpp:sm:3'/>").count(),
            1,
            "{got}"
        );
        assert_eq!(outbox.unacked(), n);
        assert!(
            outbox.queued_bytes() > 0,
            "unacknowledged bytes still count"
        );
        assert_eq!(outbox.acknowledge(60), Ok(60));
        assert!(outbox.acknowledge(1000).is_err());
        let (rest, unsent) = outbox.take_unconfirmed();
        assert!(unsent.is_empty());
        let bodies: Vec<String> = rest
            .iter()
            .map(|s| String::from_utf8_lossy(&s.bytes).into_owned())
            .collect();
        assert_eq!(
            bodies.first().map(String::as_str),
            Some("<message>60</message>")
        );
        assert_eq!(bodies.len(), n - 60);
        assert_eq!(outbox.queued_bytes(), 0);
        assert!(matches!(
            outbox.send(stanza("late")),
            Err(SendError::Closed(_))
        ));
    });
}

/// Reads from `peer` into `got` until `what` is in it (bounded), and answers when, in the
/// runtime's clock (paused in the tests that use it).
async fn read_until(
    peer: &mut tokio::io::DuplexStream,
    got: &mut String,
    what: &str,
) -> tokio::time::Instant {
    let mut buf = vec![0u8; 4096];
    for _ in 0..100 {
        if got.contains(what) {
            return tokio::time::Instant::now();
        }
        let n = tokio::time::timeout(Duration::from_secs(5), peer.read(&mut buf))
            .await
            .expect("the writer writes within 5 s")
            .unwrap();
        got.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    panic!("{what} never came: {got}");
}

/// A stanza on a quiet stream carries its request in the same write (no write of its own
/// for it); a trickle right after is confirmed by one request, once `ASK_SPACING` has
/// passed since the last and the queue has been quiet for `ASK_IDLE_DELAY`, not by a
/// request per stanza; once confirmed, no request follows.
#[test]
fn a_trickle_is_confirmed_by_one_request_spaced_from_the_last() {
    actix_rt::System::new().block_on(async {
        tokio::time::pause();
        let (outbox, _task, mut peer) = with_sm(waits(60));
        let request = crate::xmpp::acks::REQUEST;
        let mut got = String::new();
        let start = tokio::time::Instant::now();
        outbox.send(stanza("1")).unwrap();
        let first = read_until(&mut peer, &mut got, request).await;
        assert_eq!(
            got,
            format!("<message>1</message>{request}"),
            "asked with it"
        );
        assert!(first - start < ASK_IDLE_DELAY, "without waiting");
        assert_eq!(outbox.acknowledge(1), Ok(1));
        got.clear();
        for i in 2..=4 {
            tokio::time::sleep(ASK_IDLE_DELAY / 4).await;
            outbox.send(stanza(&i.to_string())).unwrap();
        }
        let last = read_until(&mut peer, &mut got, "<message>4</message>").await;
        let asked = read_until(&mut peer, &mut got, request).await;
        assert_eq!(
            got,
            format!("<message>2</message><message>3</message><message>4</message>{request}"),
            "one request, after the three"
        );
        assert!(asked - first >= ASK_SPACING, "spaced from the first");
        assert!(asked - last >= ASK_IDLE_DELAY, "after a quiet moment");
        assert_eq!(outbox.acknowledge(4), Ok(3));
        let mut buf = [0u8; 64];
        let more = tokio::time::timeout(ASK_SPACING * 10, peer.read(&mut buf)).await;
        assert!(more.is_err(), "nothing more to ask for: {:?}", more);
    });
}

/// A reader paused by flow control waits on the confirmation of what it sent: the request
/// goes out with the stanza, without the quiet moment.
#[test]
fn a_paused_reader_gets_its_request_at_once() {
    use futures_util::StreamExt;
    actix_rt::System::new().block_on(async {
        tokio::time::pause();
        let (outbox, _task, mut peer) = with_sm(waits(60));
        let credit = crate::xmpp::credit::Credit::new(8);
        let mut s = stanza("held");
        s.credit = Some(credit.take(s.bytes.len()));
        // The reader finds its credit spent and pauses.
        let mut reader =
            crate::xmpp::credit::Gated::new(futures_util::stream::iter([()]), credit.clone());
        let next = tokio::time::timeout(Duration::from_millis(1), reader.next()).await;
        assert!(next.is_err() && credit.is_paused());
        let sent = tokio::time::Instant::now();
        outbox.send(s).unwrap();
        let mut got = String::new();
        let asked = read_until(&mut peer, &mut got, crate::xmpp::acks::REQUEST).await;
        assert!(asked - sent < ASK_IDLE_DELAY, "asked at once: {got}");
        assert_eq!(outbox.acknowledge(1), Ok(1));
        assert_eq!(credit.in_flight(), 0, "confirmed: the credit is back");
    });
}

/// Over stream management, a peer that takes every byte but confirms nothing is stuck after
/// the bound, however often it is asked in between (the writer asks again every 500 ms): its
/// stanzas let their readers go.
#[test]
fn a_peer_that_confirms_nothing_is_stuck_after_the_bound_despite_requests() {
    actix_rt::System::new().block_on(async {
        tokio::time::pause();
        let stuck = Duration::from_secs(2);
        let (outbox, _task, mut peer) = with_sm(Waits::new(stuck, Duration::from_secs(60)));
        // Takes everything written, answers nothing.
        actix_rt::spawn(async move {
            let mut buf = vec![0u8; 1 << 16];
            while peer.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        });
        let credit = crate::xmpp::credit::Credit::new(1 << 20);
        for i in 0..10 {
            let mut s = stanza(&i.to_string());
            s.credit = Some(credit.take(s.bytes.len()));
            outbox.send(s).unwrap();
        }
        let start = tokio::time::Instant::now();
        while tokio::time::Instant::now() - start < stuck * 3 && credit.in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            outbox.ask();
        }
        assert_eq!(credit.in_flight(), 0, "stuck: the readers were let go");
        assert!(
            tokio::time::Instant::now() - start >= stuck,
            "not before the bound"
        );
        assert_eq!(outbox.unacked(), 10, "still kept for the peer");
    });
}

/// A request nobody answers is repeated every `ASK_AGAIN` by the writer itself, with
/// stream management and with pings (whose answer can be lost with the remote's stream to
/// us); once everything is confirmed the stream writes nothing more, so an idle stream
/// has no timer of its own.
#[test]
fn an_unanswered_request_is_repeated_until_confirmed_then_nothing() {
    for checkpoint in [
        Checkpoint::StreamManagement,
        Checkpoint::ping("a.test", "b.test", "node1"),
    ] {
        actix_rt::System::new().block_on(async {
            tokio::time::pause();
            let (ours, mut peer) = tokio::io::duplex(1 << 20);
            let request = match &checkpoint {
                Checkpoint::StreamManagement => crate::xmpp::acks::REQUEST,
                Checkpoint::Ping { .. } => "urn:xmpp:ping",
            };
            let (outbox, _task) = Outbox::spawn_acked(ours, 1 << 20, waits(60), checkpoint);
            let mut got = String::new();
            outbox.send(stanza("1")).unwrap();
            let first = read_until(&mut peer, &mut got, request).await;
            got.clear();
            let second = read_until(&mut peer, &mut got, request).await;
            assert!(second - first >= ASK_AGAIN, "not before {ASK_AGAIN:?}");
            assert!(second - first < ASK_AGAIN * 2, "asked again: {got}");
            assert_eq!(outbox.acknowledge(1), Ok(1));
            let mut buf = [0u8; 256];
            let more = tokio::time::timeout(ASK_AGAIN * 20, peer.read(&mut buf)).await;
            assert!(more.is_err(), "confirmed: nothing more is written");
            assert_eq!(outbox.unacked(), 0);
        });
    }
}
