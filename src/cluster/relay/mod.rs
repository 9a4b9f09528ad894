//! Stanzas across nodes: a tenant with no link up on this node is reached through a node
//! that has one, over an inter-node link — TLS, both ends proving the cluster key
//! ([`auth`]), stanzas confirmed once they left the other node ([`peer`], [`inbound`]).
//!
//! Each node publishes, under its lease, which tenants it holds links of
//! (`P/links/<tenant>/<node>` = its `[cluster] advertise` address; the agent writes them);
//! every node reads them back ([`table`]) and keeps a link open to each node listed. The
//! router asks [`Relay`], as its [`Forward`], only when no local link can take a stanza.

pub mod auth;
mod inbound;
mod peer;
pub mod table;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use metrics::Counter;

use self::peer::Peer;
use self::table::Table;
use super::agent::Agent;
use crate::observe::{Event, Kind as EventKind};
use crate::routing::{Forward, Router};
use crate::workers::Workers;
use crate::xmpp::{Limits, SendError, Stanza};

/// How often the table of links is read from etcd. A node that died leaves it when its
/// lease runs out; its links break at once, which takes it out of use before that.
pub const TABLE_READ_EVERY: Duration = Duration::from_millis(250);
/// Bytes one link may hold queued and unconfirmed. The forwarding readers' own credit
/// (flow control) holds them back well before.
const QUEUE_BYTES: usize = 32 * 1024 * 1024;
/// Past this a link whose peer does not read stops holding its senders back...
const STUCK: Duration = Duration::from_secs(5);
/// ...and past this it counts as dead.
const STALL: Duration = Duration::from_secs(30);

fn limits() -> Limits {
    // Stanzas between nodes were read once, under the limits of the link they came in on.
    Limits {
        max_stanza_bytes: 4 * 1024 * 1024,
        max_depth: 256,
    }
}

/// This node's side of the inter-node links.
pub struct Relay {
    me: String,
    keys: auth::Keys,
    table: ArcSwap<Table>,
    peers: DashMap<String, Arc<Peer>>,
    router: RwLock<Weak<Router>>,
    /// The threads the links run on, the relay's own: not the node's thread, where the
    /// cluster agent renews the lease (a busy link there starved it, and the node dropped
    /// out of the others' tables under load), nor the node's workers, which a restart
    /// replaces while the links carry on.
    workers: Workers,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("me", &self.me).finish()
    }
}

impl Relay {
    /// Starts this node's relay: the cluster key read from etcd (made by the first node),
    /// links accepted on `listener` when this node takes them, the table followed.
    pub async fn start(
        agent: &Agent,
        listener: Option<std::net::TcpListener>,
    ) -> Result<Arc<Relay>, String> {
        let key = agent
            .relay_key()
            .await
            .map_err(|e| format!("cannot read the cluster key: {e}"))?;
        let me = agent.name().to_owned();
        // Never stopped: the links last as long as the process.
        let arbiters = crate::workers::one_per_core();
        let relay = Arc::new(Relay {
            keys: auth::Keys::new(&me, key)?,
            me,
            table: ArcSwap::from_pointee(Table::default()),
            peers: DashMap::new(),
            router: RwLock::new(Weak::new()),
            workers: Workers::new(&arbiters),
        });
        if let Some(l) = listener {
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            let l = tokio::net::TcpListener::from_std(l).map_err(|e| e.to_string())?;
            actix_rt::spawn(inbound::listen(relay.clone(), l));
        }
        actix_rt::spawn(follow(relay.clone(), agent.clone()));
        Ok(relay)
    }

    fn router(&self) -> Option<Arc<Router>> {
        self.router
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()
    }

    /// The stanzas counted between this node and `node`, one way.
    fn counter(&self, node: &str, direction: &'static str) -> Counter {
        match self.router() {
            Some(r) => r.observer.metrics.counter(
                "xfed_cluster_forwarded_stanzas_total",
                &[("node", node), ("direction", direction)],
            ),
            None => Counter::noop(),
        }
    }

    fn count_handed_back(&self, node: &str, n: usize) {
        if let Some(r) = self.router() {
            r.observer
                .metrics
                .counter("xfed_cluster_handed_back_stanzas_total", &[("node", node)])
                .increment(n as u64);
        }
    }

    fn link_changed(&self, node: &str, up: bool) {
        if let Some(r) = self.router() {
            let kind = if up {
                EventKind::ClusterLinkUp
            } else {
                EventKind::ClusterLinkDown
            };
            r.observer
                .events
                .record(Event::new(kind).field("node", node));
        }
    }

    fn refused(&self, from: SocketAddr, why: &str) {
        tracing::warn!(%from, "inter-node link refused: {why}");
        if let Some(r) = self.router() {
            r.observer
                .metrics
                .counter("xfed_cluster_links_refused_total", &[])
                .increment(1);
            r.observer.events.record_folded(
                &format!("relay refused {}", from.ip()),
                Event::new(EventKind::ClusterLinkRefused)
                    .field("peer", from.to_string())
                    .field("reason", why),
            );
        }
    }

    /// Takes in a new read of the table: links to nodes newly listed, links closed to
    /// nodes no longer listed.
    fn take(self: &Arc<Self>, table: Table) {
        if **self.table.load() == table {
            return;
        }
        let nodes = table.nodes();
        for (node, addr) in &nodes {
            if *node == self.me {
                continue;
            }
            match self.peers.get(*node) {
                Some(p) => p.set_addr(*addr),
                None => {
                    let p = Peer::new(node, *addr);
                    self.peers.insert(node.to_string(), p.clone());
                    let relay = self.clone();
                    self.workers.spawn(move || peer::run(relay, p));
                }
            }
        }
        self.peers.retain(|node, p| {
            let keep = nodes.contains_key(node.as_str());
            if !keep {
                p.retire();
            }
            keep
        });
        self.table.store(Arc::new(table));
    }
}

impl Forward for Relay {
    fn forward(&self, tenant: &str, stanza: Stanza) -> Result<(), SendError> {
        let table = self.table.load();
        let ranked = table.ranked(tenant, &self.me, stanza.from.as_deref().unwrap_or(""));
        self.offer(ranked.iter().map(|h| h.node.as_str()), stanza)
    }

    fn forward_remote(&self, stanza: Stanza) -> Result<(), Box<Stanza>> {
        let table = self.table.load();
        let ranked = table.ranked_nodes(&self.me, stanza.from.as_deref().unwrap_or(""));
        self.hand(ranked.into_iter(), stanza)
    }

    fn unconfirmed_bytes(&self) -> usize {
        // An inter-node link's queue counts what it has not written and what the other
        // node has not confirmed.
        self.peers
            .iter()
            .filter_map(|p| p.open())
            .map(|o| o.outbox.queued_bytes())
            .sum()
    }

    fn name(&self) -> &str {
        &self.me
    }

    fn to_node(&self, node: &str, stanza: Stanza) -> Result<(), Box<Stanza>> {
        self.hand(std::iter::once(node), stanza)
    }

    fn attach(&self, router: Weak<Router>) {
        *self.router.write().unwrap_or_else(|e| e.into_inner()) = router;
    }
}

impl Relay {
    /// Hands `stanza` to the first of `nodes` whose link is open.
    fn hand<'a>(
        &self,
        nodes: impl Iterator<Item = &'a str>,
        stanza: Stanza,
    ) -> Result<(), Box<Stanza>> {
        self.offer(nodes, stanza).map_err(|e| match e {
            SendError::Full(s) | SendError::Closed(s) => s,
        })
    }

    /// As [`Relay::hand`], telling a full link (`Full`) from no open link (`Closed`).
    fn offer<'a>(
        &self,
        nodes: impl Iterator<Item = &'a str>,
        mut stanza: Stanza,
    ) -> Result<(), SendError> {
        for node in nodes {
            let Some(open) = self.peers.get(node).and_then(|p| p.open()) else {
                continue;
            };
            match open.outbox.send(stanza) {
                Ok(()) => {
                    open.forwarded.increment(1);
                    return Ok(());
                }
                Err(SendError::Closed(s)) => stanza = *s,
                // Another node would reorder this sender's stanzas.
                Err(full @ SendError::Full(_)) => return Err(full),
            }
        }
        Err(SendError::Closed(Box::new(stanza)))
    }
}

/// Reads the table of links from etcd while the node runs.
async fn follow(relay: Arc<Relay>, agent: Agent) {
    let mut failing = false;
    loop {
        match agent.links().await {
            Ok(table) => {
                failing = false;
                relay.take(table);
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(
                        "cannot read the cluster's link table (forwarding on the last read): {e}"
                    );
                }
                failing = true;
            }
        }
        tokio::time::sleep(TABLE_READ_EVERY).await;
    }
}
