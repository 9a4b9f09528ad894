//! The link this node opens to another node, to hand it stanzas for tenants linked there.
//!
//! The link keeps what it wrote until the other node confirms it (XEP-0198 counters: the
//! other node answers `<a h=…/>` once a stanza has left it, `xmpp::receipt`). When the link
//! ends — the node died, was drained, or the network failed — what it had not confirmed goes
//! back to routing, which hands it to another node with a link of the tenant, a link of
//! this node, or returns it to its sender. The link is opened again while the node is listed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::codec::FramedRead;

use super::Relay;
use crate::xmpp::outbox::Checkpoint;
use crate::xmpp::stanza::{stream_header, STREAM_CLOSE};
use crate::xmpp::{ns, Frame, Outbox, Stanza, StanzaCondition, StreamReader, Waits};

/// How often the link looks whether its writer gave up. Asking again for confirmations
/// still owed is the outbox writer's own (`ASK_AGAIN`), and the other node confirms
/// unasked as stanzas leave it.
const CHECK_EVERY: Duration = Duration::from_millis(200);
/// Waits between attempts to open the link, growing up to the last.
const BACKOFF: [Duration; 5] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];
/// A stanza handed back this many times (its links kept dying under it) is returned.
const MAX_RESENDS: u8 = 3;

/// An open link: its queue, and the count of stanzas handed over it.
pub struct Open {
    pub outbox: Outbox,
    pub forwarded: metrics::Counter,
}

/// Another node, as this one links to it.
pub struct Peer {
    pub node: String,
    addr: Mutex<SocketAddr>,
    /// The open link; `None` while it is not open.
    open: ArcSwapOption<Open>,
    /// Set when the node is no longer listed: the link closes and is not opened again.
    retired: AtomicBool,
    retire: Notify,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("node", &self.node).finish()
    }
}

impl Peer {
    pub fn new(node: &str, addr: SocketAddr) -> Arc<Peer> {
        Arc::new(Peer {
            node: node.to_owned(),
            addr: Mutex::new(addr),
            open: ArcSwapOption::empty(),
            retired: AtomicBool::new(false),
            retire: Notify::new(),
        })
    }

    /// The open link, if it is open.
    pub fn open(&self) -> Option<Arc<Open>> {
        self.open.load_full()
    }

    /// Where the node takes links; a new address applies from the next opening.
    pub fn set_addr(&self, addr: SocketAddr) {
        *self.addr.lock().unwrap_or_else(|e| e.into_inner()) = addr;
    }

    fn addr(&self) -> SocketAddr {
        *self.addr.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes the link for good (the node left the table).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.open.store(None);
        self.retire.notify_one();
    }

    fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }
}

/// Keeps the link to `peer` open until the peer is retired.
pub async fn run(relay: Arc<Relay>, peer: Arc<Peer>) {
    let mut failures = 0usize;
    while !peer.is_retired() {
        match open(&relay, &peer).await {
            Ok(opened) => {
                failures = 0;
                carry(&relay, &peer, opened).await;
            }
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(node = %peer.node, addr = %peer.addr(), "cannot open the inter-node link: {e}");
                }
                failures += 1;
            }
        }
        let wait = BACKOFF[failures.min(BACKOFF.len() - 1)];
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = peer.retire.notified() => {}
        }
    }
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn open(relay: &Relay, peer: &Peer) -> Result<Tls, String> {
    let addr = peer.addr();
    let tcp = tokio::time::timeout(super::auth::OPEN_WITHIN, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("no answer from {addr}"))?
        .map_err(|e| format!("{addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (tls, name) = relay
        .keys
        .dial(tcp, &relay.me)
        .await
        .map_err(|e| e.to_string())?;
    if name != peer.node {
        return Err(format!(
            "{addr} is node {name:?}, not {:?} (an address taken over?)",
            peer.node
        ));
    }
    Ok(tls)
}

/// Carries stanzas to the peer until the link ends, then hands back what it did not
/// confirm.
async fn carry(relay: &Arc<Relay>, peer: &Arc<Peer>, tls: Tls) {
    let (rd, wr) = tokio::io::split(tls);
    let (outbox, _writer) = Outbox::spawn_acked(
        wr,
        super::QUEUE_BYTES,
        Waits::new(super::STUCK, super::STALL),
        Checkpoint::StreamManagement,
    );
    if let Some(router) = relay.router() {
        outbox.measure(router.observer.metrics.transit.clone());
    }
    let id = format!("{:016x}", rand::random::<u64>());
    outbox.send_raw(Bytes::from(stream_header(
        ns::SERVER,
        Some(&relay.me),
        Some(&peer.node),
        &id,
    )));
    let open = Arc::new(Open {
        outbox,
        forwarded: relay.counter(&peer.node, "out"),
    });
    let outbox = &open.outbox;
    tracing::info!(node = %peer.node, "inter-node link open");
    relay.link_changed(&peer.node, true);
    peer.open.store(Some(open.clone()));
    let mut frames = FramedRead::new(rd, StreamReader::new(super::limits()));
    let mut check = tokio::time::interval(CHECK_EVERY);
    let why = loop {
        tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(Frame::Open(_))) => {}
                Some(Ok(Frame::Stanza(s))) if s.name == "a" => {
                    let h = s.attr("h").and_then(|h| h.parse::<u32>().ok());
                    match h.map(|h| outbox.acknowledge(h)) {
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break e.stream_error().text,
                        None => break "<a/> without a valid 'h'".into(),
                    }
                }
                Some(Ok(Frame::Stanza(_))) => {}
                Some(Ok(Frame::Close)) | None => break "closed by the peer".into(),
                Some(Err(e)) => break e.to_string(),
            },
            _ = check.tick() => {
                if outbox.is_closed() {
                    break "the link stopped writing".into();
                }
            }
            _ = peer.retire.notified() => break "the node left the cluster's link table".into(),
        }
    };
    peer.open.store(None);
    relay.link_changed(&peer.node, false);
    outbox.close(Bytes::from_static(STREAM_CLOSE.as_bytes()));
    let (written, unsent) = outbox.take_unconfirmed();
    tracing::info!(node = %peer.node, unconfirmed = written.len() + unsent.len(), "inter-node link ended: {why}");
    hand_back(
        relay,
        &peer.node,
        written.into_iter().chain(unsent).collect(),
    );
}

/// What a link did not confirm goes back to routing: another node, a link here, or its
/// sender.
fn hand_back(relay: &Relay, node: &str, stanzas: Vec<Stanza>) {
    if stanzas.is_empty() {
        return;
    }
    let Some(router) = relay.router() else { return };
    relay.count_handed_back(node, stanzas.len());
    let mut again = Vec::with_capacity(stanzas.len());
    for mut s in stanzas {
        s.resends = s.resends.saturating_add(1);
        if s.resends > MAX_RESENDS {
            let text = "the cluster's nodes kept failing while they had this stanza";
            router.bounce(&s, StanzaCondition::RemoteServerTimeout, text, None);
        } else {
            again.push(s);
        }
    }
    router.reroute(again);
}
