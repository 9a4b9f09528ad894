//! The outbox against an in-memory pipe: order, close, back-pressure, hand-back, and
//! what an outbox with checkpoints keeps.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncReadExt;

use super::*;
use crate::xmpp::stanza::Kind;

fn stanza(body: &str) -> Stanza {
    Stanza {
        bytes: Bytes::from(format!("<message>{body}</message>")),
        name: "message".into(),
        kind: Kind::Message,
        to: None,
        from: None,
        id: None,
        type_: None,
        xmlns: None,
        resends: 0,
        credit: None,
        receipt: None,
    }
}

/// Stuck after a quarter of the stall.
fn waits(stall_secs: u64) -> Waits {
    let stall = Duration::from_secs(stall_secs);
    Waits::new(stall / 4, stall)
}

/// Reads what the peer end of a duplex pipe got until it closes.
async fn read_all(mut peer: tokio::io::DuplexStream) -> String {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), peer.read_to_end(&mut got)).await;
    String::from_utf8(got).unwrap()
}

#[test]
fn stanzas_raw_bytes_and_the_tail_are_written_in_order_then_the_socket_shuts() {
    actix_rt::System::new().block_on(async {
        let (ours, peer) = tokio::io::duplex(1 << 16);
        let (outbox, task) = Outbox::spawn(ours, 1 << 20, waits(5), |_| {});
        assert!(outbox.send_raw(Bytes::from_static(b"<a/>")));
        outbox.send(stanza("1")).unwrap();
        outbox.send(stanza("2")).unwrap();
        outbox.close(Bytes::from_static(b"</stream:stream>"));
        let got = read_all(peer).await;
        assert_eq!(
            got,
            "<a/><message>1</message><message>2</message></stream:stream>"
        );
        task.await.unwrap();
        assert!(outbox.is_closed());
        assert_eq!(outbox.stanzas_written(), 2);
        assert_eq!(outbox.queued_bytes(), 0);
        let refused = outbox.send(stanza("3"));
        assert!(matches!(refused, Err(SendError::Closed(s)) if s.bytes.ends_with(b"3</message>")));
    });
}

/// What `send_raw_then` runs happens before the writer can take the bytes: a link made
/// routable there is so before its peer reads the handshake (issue 14's suite once saw
/// a stanza sent right after `<handshake/>` come back service-unavailable).
#[test]
fn bytes_queued_with_a_publish_reach_the_peer_only_after_it_ran() {
    actix_rt::System::new().block_on(async {
        let (ours, mut peer) = tokio::io::duplex(1 << 16);
        let (outbox, _task) = Outbox::spawn(ours, 1 << 20, waits(5), |_| {});
        // The peer reads on this runtime, beside the writer; the sender queues from a
        // thread of its own, as the tenant actor does.
        let got = Arc::new(Mutex::new(Vec::<u8>::new()));
        let into = got.clone();
        actix_rt::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok(k @ 1..) = peer.read(&mut buf).await {
                into.lock().unwrap().extend_from_slice(&buf[..k]);
            }
        });
        let (o, seen) = (outbox.clone(), got.clone());
        let sender = std::thread::spawn(move || {
            let mut read_meanwhile = None;
            let taken = o.send_raw_then(Bytes::from_static(b"<handshake/>"), || {
                std::thread::sleep(Duration::from_millis(200));
                read_meanwhile = Some(seen.lock().unwrap().len());
            });
            (taken, read_meanwhile)
        });
        for _ in 0..500 {
            if sender.is_finished() && got.lock().unwrap().len() == 12 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (taken, read_meanwhile) = sender.join().unwrap();
        assert!(taken);
        assert_eq!(
            read_meanwhile,
            Some(0),
            "the peer read the bytes before publish ran"
        );
        assert_eq!(&got.lock().unwrap()[..], b"<handshake/>");

        // On a closed connection the bytes are refused and the publish runs all the same.
        outbox.close(Bytes::new());
        for _ in 0..500 {
            if outbox.is_closed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut ran = false;
        assert!(!outbox.send_raw_then(Bytes::from_static(b"<x/>"), || ran = true));
        assert!(ran);
    });
}

/// With stream management: written stanzas stay until acknowledged, an ack request
/// follows every ACK_EVERY stanzas, and what is unconfirmed comes out oldest first.
#[test]
fn acked_outbox_keeps_what_it_wrote_until_acknowledged() {
    actix_rt::System::new().block_on(async {
        let (ours, mut peer) = tokio::io::duplex(1 << 20);
        let (outbox, _task) =
            Outbox::spawn_acked(ours, 1 << 20, waits(5), Checkpoint::StreamManagement);
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

/// A peer that reads nothing: the queue fills to its bound and refuses more, and when
/// the write stalls past its limit every stanza still queued comes back.
#[test]
fn a_stalled_peer_fills_the_bound_and_queued_stanzas_come_back() {
    actix_rt::System::new().block_on(async {
        let (ours, _peer) = tokio::io::duplex(64);
        let back = Rc::new(RefCell::new(Vec::new()));
        let sink = back.clone();
        let (outbox, task) = Outbox::spawn(
            ours,
            200,
            Waits::new(Duration::from_millis(200), Duration::from_millis(200)),
            move |s| sink.borrow_mut().extend(s),
        );
        let mut accepted = 0;
        let mut full = 0;
        for i in 0..50 {
            match outbox.send(stanza(&format!("{i:03}"))) {
                Ok(()) => accepted += 1,
                Err(SendError::Full(_)) => full += 1,
                Err(SendError::Closed(_)) => panic!("closed before the stall limit"),
            }
            tokio::task::yield_now().await;
        }
        assert!(full > 0, "the bound refused some");
        task.await.unwrap();
        assert!(outbox.is_closed());
        let written = outbox.stanzas_written() as usize;
        let back = back.borrow();
        // Those the socket took (even in part) are written, and lost with it; everything
        // else, including the rest of the stalled write, comes back.
        assert!(!back.is_empty(), "queued stanzas were handed back");
        assert_eq!(written + back.len(), accepted, "none lost between the two");
        assert_eq!(outbox.queued_bytes(), 0, "nothing left counted as queued");
    });
}

/// A socket that takes `accept` bytes, then fails every write.
struct Breaks {
    accept: usize,
}

impl tokio::io::AsyncWrite for Breaks {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let n = buf.len().min(self.accept);
        self.accept -= n;
        std::task::Poll::Ready(match n {
            0 => Err(std::io::ErrorKind::ConnectionReset.into()),
            n => Ok(n),
        })
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// A write that fails: the stanzas the socket took (a part of one counts) are written and
/// gone with it; those it never began come back in order, ahead of what was still queued.
#[test]
fn a_failed_write_hands_back_the_stanzas_the_socket_never_took() {
    let one = stanza("0").bytes.len();
    // Nothing taken, a stanza and a half, everything but the last byte.
    for (accept, begun) in [(0, 0), (one + one / 2, 2), (4 * one - 1, 4)] {
        actix_rt::System::new().block_on(async {
            let back = Rc::new(RefCell::new(Vec::new()));
            let sink = back.clone();
            let (outbox, task) = Outbox::spawn(Breaks { accept }, 1 << 20, waits(5), move |s| {
                sink.borrow_mut().extend(s)
            });
            // Queued before the writer first runs: one write carries all four.
            for i in 0..4 {
                outbox.send(stanza(&i.to_string())).unwrap();
            }
            task.await.unwrap();
            let back: Vec<String> = back
                .borrow()
                .iter()
                .map(|s| String::from_utf8(s.bytes.to_vec()).unwrap())
                .collect();
            let expected: Vec<String> = (begun..4)
                .map(|i| format!("<message>{i}</message>"))
                .collect();
            assert_eq!(back, expected, "accept {accept}");
            assert_eq!(outbox.stanzas_written(), begun as u64, "accept {accept}");
            assert_eq!(outbox.queued_bytes(), 0);
        });
    }
}

/// Flow control: a stanza gives its reader's credit back once written; a destination that
/// stops reading holds it only until the stuck bound (`Waits::stuck`), then its
/// queue lets its readers go, and stanzas queued later hold nothing — while the connection
/// itself lives on until the stall.
#[test]
fn a_stuck_destination_lets_its_readers_go_after_the_stuck_bound() {
    actix_rt::System::new().block_on(async {
        let credit = crate::xmpp::credit::Credit::new(1 << 20);
        let with_credit = |body: &str| {
            let mut s = stanza(body);
            s.credit = Some(credit.take(s.bytes.len()));
            s
        };
        // A reading peer: everything written, nothing held.
        let (ours, peer) = tokio::io::duplex(1 << 16);
        let (outbox, _task) = Outbox::spawn(ours, 1 << 20, waits(2), |_| {});
        for i in 0..10 {
            outbox.send(with_credit(&i.to_string())).unwrap();
        }
        outbox.close(Bytes::new());
        let got = read_all(peer).await;
        assert!(got.contains("<message>9</message>"), "{got}");
        assert_eq!(credit.in_flight(), 0, "written: the credit is back");

        // A peer that never reads: a 64-byte pipe fills at once.
        let (ours, _peer) = tokio::io::duplex(64);
        let (outbox, _task) = Outbox::spawn(ours, 1 << 20, waits(2), |_| {});
        // The writer takes these and blocks writing them.
        for i in 0..50 {
            outbox.send(with_credit(&format!("stuck {i}"))).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        for i in 50..100 {
            outbox.send(with_credit(&format!("stuck {i}"))).unwrap();
        }
        assert!(
            credit.in_flight() > 0,
            "queued behind a blocked write: held"
        );
        // Past the stuck bound (2 s / 4), well before the stall.
        let mut waited = 0;
        while credit.in_flight() > 0 && waited < 40 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            waited += 1;
        }
        assert_eq!(credit.in_flight(), 0, "stuck: the queue let its readers go");
        assert!(!outbox.is_closed(), "the connection lives until the stall");
        outbox.send(with_credit("later")).unwrap();
        assert_eq!(credit.in_flight(), 0, "queued while stuck: holds nothing");
    });
}

/// A stanza handed over by another node is confirmed to it once it has left this node: its
/// receipt fires only when the write that carries it is done, not when it was taken into
/// the write, so a node that dies while a write waits on a peer that does not read confirms
/// nothing of that write.
#[test]
fn a_receipt_fires_once_its_write_is_done() {
    actix_rt::System::new().block_on(async {
        let (ours, mut peer) = tokio::io::duplex(64);
        let (outbox, _task) = Outbox::spawn(ours, 1 << 20, waits(60), |_| {});
        let receipts = crate::xmpp::receipt::Receipts::new();
        let mut s = stanza(&"x".repeat(1_000));
        s.receipt = Some(receipts.issue());
        outbox.send(s).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            receipts.handled(),
            0,
            "the write waits on a peer that does not read"
        );
        let mut got = vec![0u8; 2_000];
        let mut read = 0;
        while read < 1_019 {
            read += peer.read(&mut got[read..]).await.unwrap();
        }
        tokio::time::timeout(Duration::from_secs(5), async {
            while receipts.handled() == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("confirmed once written");
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
        let (ours, mut peer) = tokio::io::duplex(1 << 16);
        let (outbox, _task) =
            Outbox::spawn_acked(ours, 1 << 20, waits(60), Checkpoint::StreamManagement);
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
        let (ours, mut peer) = tokio::io::duplex(1 << 16);
        let (outbox, _task) =
            Outbox::spawn_acked(ours, 1 << 20, waits(60), Checkpoint::StreamManagement);
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

/// A full queue refuses a routed stanza, but not a stanza coming back to its sender with an
/// error: that one has no way back of its own (errors are never answered).
#[test]
fn a_return_goes_in_past_the_bound() {
    actix_rt::System::new().block_on(async {
        let (ours, _peer) = tokio::io::duplex(64);
        let limit = 3 * stanza("0").bytes.len();
        let (outbox, _task) = Outbox::spawn(ours, limit, waits(60), |_| {});
        let mut refused = 0;
        for i in 0..20 {
            refused += usize::from(matches!(
                outbox.send(stanza(&i.to_string())),
                Err(SendError::Full(_))
            ));
        }
        assert!(refused > 0, "the queue filled");
        let before = outbox.queued_bytes();
        outbox
            .send_return(stanza("back"))
            .expect("queued past the bound");
        assert!(outbox.queued_bytes() > before, "and counted");
    });
}

/// Over stream management, a peer that takes every byte but confirms nothing is stuck after
/// the bound, however often it is asked in between (the stream asks every 500 ms): its
/// stanzas let their readers go.
#[test]
fn a_peer_that_confirms_nothing_is_stuck_after_the_bound_despite_requests() {
    actix_rt::System::new().block_on(async {
        tokio::time::pause();
        let (ours, mut peer) = tokio::io::duplex(1 << 20);
        // Takes everything written, answers nothing.
        actix_rt::spawn(async move {
            let mut buf = vec![0u8; 1 << 16];
            while peer.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        });
        let stuck = Duration::from_secs(2);
        let (outbox, _task) = Outbox::spawn_acked(
            ours,
            1 << 20,
            Waits::new(stuck, Duration::from_secs(60)),
            Checkpoint::StreamManagement,
        );
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
