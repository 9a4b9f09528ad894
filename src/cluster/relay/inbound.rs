//! Links other nodes open to this one: after the opening (`auth`), each stanza read goes to
//! a link of its tenant here through [`crate::routing::Router::deliver_forwarded`], carrying
//! a receipt; the link confirms, with `<a h=…/>`, every run of stanzas that has left this
//! node. Reading pauses while too much of what it read is still here (flow control, as on a
//! component link), so a slow tenant slows the node that forwards to it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::FramedRead;

use super::Relay;
use crate::xmpp::acks::SM_NS;
use crate::xmpp::credit::{Credit, Gated};
use crate::xmpp::receipt::Receipts;
use crate::xmpp::stanza::{stream_error, stream_header, STREAM_CLOSE};
use crate::xmpp::{
    ns, Frame, Kind, Outbox, Stanza, StreamCondition as C, StreamError, StreamReader, Waits,
};

/// Bytes read from one link that may be on their way here before it stops reading.
const IN_FLIGHT: usize = 4 * 1024 * 1024;
/// A confirmation goes out once this many stanzas left since the last one...
const ACK_BATCH: u32 = 64;
/// ...or this long after the first of them left.
const ACK_DELAY: Duration = Duration::from_millis(2);

/// Accepts links until the task is dropped.
pub async fn listen(relay: Arc<Relay>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((tcp, addr)) => {
                let ours = relay.clone();
                relay
                    .workers
                    .dispatch(tcp, addr, move |tcp, addr| async move {
                        match ours.keys.accept(tcp, &ours.me).await {
                            Ok((tls, node)) => serve(ours, tls, node).await,
                            Err(e) => ours.refused(addr, &e.to_string()),
                        }
                    });
            }
            Err(e) => {
                tracing::warn!("inter-node listener: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

type Tls = tokio_rustls::server::TlsStream<TcpStream>;

async fn serve(relay: Arc<Relay>, tls: Tls, node: String) {
    let (rd, wr) = tokio::io::split(tls);
    let (outbox, _writer) = Outbox::spawn(
        wr,
        super::QUEUE_BYTES,
        Waits::new(super::STUCK, super::STALL),
        |_| {},
    );
    let id = format!("{:016x}", rand::random::<u64>());
    outbox.send_raw(Bytes::from(stream_header(
        ns::SERVER,
        Some(&relay.me),
        Some(&node),
        &id,
    )));
    tracing::info!(%node, "inter-node link accepted");
    let receipts = Receipts::new();
    let credit = Credit::new(IN_FLIGHT);
    let reader = FramedRead::new(rd, StreamReader::new(super::limits()));
    let mut frames = Gated::new(reader, credit.clone());
    let counter = relay.counter(&node, "in");
    let answer = |h: u32| Bytes::from(format!("<a xmlns='{SM_NS}' h='{h}'/>"));
    let mut confirmed = 0u32;
    // Confirmations are gathered: one `<a/>` per ACK_BATCH stanzas that left, or ACK_DELAY
    // after the first that has not been confirmed yet, not one per stanza.
    let mut due: Option<tokio::time::Instant> = None;
    let end: Result<(), StreamError> = loop {
        let deadline = due;
        tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(Frame::Open(_))) => {}
                Some(Ok(Frame::Stanza(s))) if s.kind != Kind::Other => {
                    let Some(router) = relay.router() else {
                        break Err(StreamError::new(C::SystemShutdown, "the node is restarting"));
                    };
                    let mut s: Stanza = s;
                    s.credit = Some(credit.take(s.bytes.len()));
                    s.receipt = Some(receipts.issue());
                    counter.increment(1);
                    router.deliver_forwarded(s);
                }
                Some(Ok(Frame::Stanza(s))) if s.name == "r" => {
                    confirmed = receipts.handled();
                    outbox.send_raw(answer(confirmed));
                }
                Some(Ok(Frame::Stanza(s))) => {
                    break Err(StreamError::new(
                        C::UnsupportedStanzaType,
                        format!("<{}/> is not carried between nodes", s.name),
                    ));
                }
                Some(Ok(Frame::Close)) | None => break Ok(()),
                Some(Err(e)) => break Err(match e {
                    crate::xmpp::ReadError::Stream(e) => e,
                    crate::xmpp::ReadError::Io(e) => StreamError::new(C::ConnectionTimeout, e.to_string()),
                }),
            },
            _ = receipts.advanced() => {
                let h = receipts.handled();
                if h.wrapping_sub(confirmed) >= ACK_BATCH {
                    confirmed = h;
                    due = None;
                    outbox.send_raw(answer(h));
                } else if h != confirmed && due.is_none() {
                    due = Some(tokio::time::Instant::now() + ACK_DELAY);
                }
            }
            _ = async { tokio::time::sleep_until(deadline.expect("armed")).await }, if deadline.is_some() => {
                due = None;
                let h = receipts.handled();
                if h != confirmed {
                    confirmed = h;
                    outbox.send_raw(answer(h));
                }
            }
        }
    };
    match end {
        Ok(()) => {
            // The peer closed: what is still here is confirmed as it leaves, while the
            // writer lasts (the peer keeps its copies until then).
            let wait = tokio::time::timeout(super::STALL, async {
                while receipts.outstanding() > 0 {
                    receipts.advanced().await;
                    outbox.send_raw(answer(receipts.handled()));
                }
            });
            let _ = wait.await;
            outbox.close(Bytes::from_static(STREAM_CLOSE.as_bytes()));
            tracing::info!(%node, "inter-node link closed by the peer");
        }
        Err(e) => {
            tracing::warn!(%node, "inter-node link ended: {e}");
            outbox.close(Bytes::from(stream_error(&e)));
        }
    }
}
