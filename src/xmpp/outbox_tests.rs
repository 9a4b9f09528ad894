//! The outbox against an in-memory pipe: order, close, back-pressure, hand-back, returns
//! and receipts (what an outbox with checkpoints keeps and asks: `outbox_ack_tests.rs`).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncReadExt;

use super::*;
use crate::xmpp::stanza::Kind;

pub(super) fn stanza(body: &str) -> Stanza {
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
        read_at: None,
    }
}

/// Stuck after a quarter of the stall.
pub(super) fn waits(stall_secs: u64) -> Waits {
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

/// With a transit histogram, each stanza written that was read from a peer is counted once;
/// what xfed made itself (no read time) and raw bytes are not.
#[test]
fn a_measured_outbox_counts_the_transit_of_each_stanza_it_read() {
    actix_rt::System::new().block_on(async {
        let (ours, peer) = tokio::io::duplex(1 << 16);
        let (outbox, task) = Outbox::spawn(ours, 1 << 20, waits(5), |_| {});
        let transit = Arc::new(crate::xmpp::transit::Transit::default());
        outbox.measure(transit.clone());
        let read = |body| {
            let mut s = stanza(body);
            s.read_at = Some(std::time::Instant::now() - Duration::from_millis(3));
            s
        };
        outbox.send(read("1")).unwrap();
        outbox.send(stanza("made here")).unwrap();
        assert!(outbox.send_raw(Bytes::from_static(b"<r/>")));
        outbox.send(read("2")).unwrap();
        outbox.close(Bytes::from_static(b"</stream:stream>"));
        read_all(peer).await;
        task.await.unwrap();
        let text = transit.render("t", "");
        let line = |l: &str| text.lines().any(|x| x == l);
        assert!(line("t_count 2"), "{text}");
        // Read 3 ms before they were queued: none within 2.5 ms.
        assert!(line("t_bucket{le=\"0.0025\"} 0"), "{text}");
    });
}
