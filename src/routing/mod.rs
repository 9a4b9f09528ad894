//! Routing: which tenant owns a domain, whether privacy allows an exchange, and which link
//! carries a stanza — decided on the sending connection's own thread from immutable
//! snapshots, then queued straight into the target connection's [`Outbox`].
//!
//! Tenant actors own their state and publish a [`TenantView`] into their [`TenantSlot`]
//! whenever it changes (a link comes or goes); routing only ever reads those snapshots.
//!
//! The decision — route, or refuse with the reason — is here; putting a stanza on a link,
//! on another node, back to its sender or out again after its connection died is in
//! `deliver.rs`; policy, link choice and checkpoints are in files of their own.

mod checkpoint;
mod deliver;
pub mod policy;
mod select;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use actix::{Message, Recipient};
use arc_swap::ArcSwap;
use dashmap::DashMap;

use crate::config::{address_domain, domain_key, TenantConfig};
use crate::observe::{Event, Kind, Observer, TenantCounters};
use crate::xmpp::{Outbox, SendError, Stanza, StanzaCondition, StreamError};

/// The delivery end of one connection: its id and its write queue.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    pub id: u64,
    pub outbox: Outbox,
    /// The peer's address (for operators' views).
    pub peer: SocketAddr,
}

/// What a tenant looks like to routing at one instant.
#[derive(Debug)]
pub struct TenantView {
    pub config: Arc<TenantConfig>,
    /// Every domain and alias the tenant owns (normalized), for 'from' checks.
    pub owned: HashSet<String>,
    /// Links up, in the order they came up.
    pub links: Vec<LinkHandle>,
}

impl TenantView {
    pub fn new(config: Arc<TenantConfig>, links: Vec<LinkHandle>) -> Self {
        let owned = config.all_domains().map(str::to_owned).collect();
        Self {
            config,
            owned,
            links,
        }
    }
}

/// A tenant as routing knows it: its published view and the way to tell its actor about
/// links.
pub struct TenantSlot {
    pub name: String,
    view: ArcSwap<TenantView>,
    /// The tenant actor's inbox for link lifecycle events.
    events: Recipient<LinkEvent>,
    /// The tenant's traffic counters.
    pub counters: TenantCounters,
}

impl std::fmt::Debug for TenantSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantSlot")
            .field("name", &self.name)
            .finish()
    }
}

impl TenantSlot {
    pub fn new(view: TenantView, events: Recipient<LinkEvent>, counters: TenantCounters) -> Self {
        Self {
            name: view.config.name.clone(),
            view: ArcSwap::from_pointee(view),
            events,
            counters,
        }
    }

    /// The current snapshot.
    pub fn view(&self) -> Arc<TenantView> {
        self.view.load_full()
    }

    /// Replaces the snapshot (the tenant actor's job).
    pub fn publish(&self, view: TenantView) {
        self.view.store(Arc::new(view));
    }

    /// Tells the tenant actor about a link.
    pub fn notify(&self, event: LinkEvent) {
        self.events.do_send(event);
    }
}

/// A link's lifecycle, reported to its tenant actor.
#[derive(Message)]
#[rtype(result = "()")]
pub enum LinkEvent {
    Up {
        link: LinkHandle,
        peer: SocketAddr,
        control: Recipient<ConnectionControl>,
        /// What tells the peer the link is in service (XEP-0114 `<handshake/>`): the tenant
        /// queues it on the link as it takes the link, just before routing can reach it,
        /// so that no routed stanza goes out ahead of it, and a reply to the peer's first
        /// stanza finds the tenant with the link.
        greeting: bytes::Bytes,
        /// Answered once routing can reach the link (dropped if the tenant never took it).
        routable: tokio::sync::oneshot::Sender<()>,
    },
    Down {
        id: u64,
    },
}

/// What the node, a tenant actor or an operator may tell one connection to do: a tenant's
/// component link or a server-to-server stream, either direction.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum ConnectionControl {
    /// Stop reading: take no new stanzas (the first step of a graceful shutdown).
    StopReading,
    /// Write what is queued, then close the stream, with a stream error if given.
    Close(Option<StreamError>),
    /// Close gracefully, for a reason operators see in the event log ("operator",
    /// "shutdown", "restart", "policy").
    Retire(&'static str),
}

/// Where a stanza came from.
#[derive(Debug, Clone)]
pub struct Origin {
    pub tenant: Arc<TenantSlot>,
    pub link: LinkHandle,
}

/// The way out to domains no tenant here hosts: server-to-server federation.
pub trait Remote: Send + Sync {
    /// Sends `stanza` from the hosted domain `local` to the remote domain `remote`. What
    /// cannot be delivered comes back to its sender through [`Router::bounce`].
    fn send(&self, local: &str, remote: &str, stanza: Stanza);

    /// The answer (`id`) to a checkpoint ping we sent from `local` to `remote`: what our
    /// stream to `remote` wrote before that ping has arrived.
    fn confirmed(&self, local: &str, remote: &str, id: &str);
}

/// The way to a tenant's links on the cluster's other nodes, when it has none up here.
pub trait Forward: Send + Sync {
    /// Hands `stanza` for `tenant` to another node that has a link of it. The stanza comes
    /// back when no node can take it now: `Full` when the link to the node that would take
    /// it holds its limit, `Closed` when no such link is open. Policy was applied here,
    /// where the stanza entered; the node that takes it delivers it to a local link only
    /// ([`Router::deliver_forwarded`]), never forwarding it again.
    fn forward(&self, tenant: &str, stanza: Stanza) -> Result<(), SendError>;

    /// Hands `stanza`, for a remote domain, to another node to send out over its own
    /// server-to-server stream (this node is draining). Policy was applied here.
    fn forward_remote(&self, stanza: Stanza) -> Result<(), Box<Stanza>>;

    /// Bytes of stanzas handed to other nodes that they have not yet confirmed.
    fn unconfirmed_bytes(&self) -> usize;

    /// This node's name in the cluster.
    fn name(&self) -> &str;

    /// Hands `stanza` to node `node` itself (the answer to a checkpoint ping it sent, which
    /// the remote server's stream brought here).
    fn to_node(&self, node: &str, stanza: Stanza) -> Result<(), Box<Stanza>>;

    /// The router stanzas handed to this node enter, from now on (a node restart makes a
    /// new one).
    fn attach(&self, router: std::sync::Weak<Router>);
}

/// The node's routing table: every hosted domain and alias → its tenant.
pub struct Router {
    domains: DashMap<String, Arc<TenantSlot>>,
    /// Federation, once the node has started it; replaced when federation restarts.
    remote: arc_swap::ArcSwapOption<Arc<dyn Remote>>,
    /// The cluster's other nodes, in a cluster.
    forward: arc_swap::ArcSwapOption<Arc<dyn Forward>>,
    /// Taken out of service: what leaves for remote domains goes through another node.
    draining: std::sync::atomic::AtomicBool,
    /// Where denials and bounces are reported.
    pub observer: Arc<Observer>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("domains", &self.domains.len())
            .finish()
    }
}

impl Router {
    pub fn new(observer: Arc<Observer>) -> Self {
        Self {
            domains: DashMap::new(),
            remote: arc_swap::ArcSwapOption::empty(),
            forward: arc_swap::ArcSwapOption::empty(),
            draining: std::sync::atomic::AtomicBool::new(false),
            observer,
        }
    }

    /// Counts and logs a stanza refused by `tenant`'s privacy settings (`direction`: "out"
    /// for what the tenant sent, "in" for what was sent to it).
    fn denied(&self, tenant: &TenantSlot, direction: &'static str, local: &str, remote: &str) {
        let o = &self.observer;
        o.metrics.policy_denied(&tenant.name, direction);
        let mode = tenant.view().config.privacy.mode.as_str();
        o.events.record_folded(
            &format!("deny {} {direction} {local} {remote}", tenant.name),
            Event::new(Kind::PolicyDenied)
                .tenant(Some(&tenant.name))
                .domains([local, remote])
                .field("direction", direction)
                .field("privacy_mode", mode),
        );
    }

    /// Routes domains nobody here hosts through `remote` (from now on).
    pub fn set_remote(&self, remote: Arc<dyn Remote>) {
        self.remote.store(Some(Arc::new(remote)));
    }

    /// Hands stanzas for tenants with no link up here to `forward` (a cluster's other
    /// nodes), and makes it deliver what they hand over through this router.
    pub fn set_forward(self: &Arc<Self>, forward: Arc<dyn Forward>) {
        forward.attach(Arc::downgrade(self));
        self.forward.store(Some(Arc::new(forward)));
    }

    /// From now on, stanzas for remote domains leave through another node of the cluster
    /// when one takes them (`xfed drain`).
    pub fn set_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Bytes of stanzas this node handed to others that they have not confirmed yet.
    pub fn unconfirmed_forwards(&self) -> usize {
        self.forward
            .load()
            .as_ref()
            .map_or(0, |f| f.unconfirmed_bytes())
    }

    /// Is `domain` a domain or alias of a tenant here?
    pub fn is_hosted(&self, domain: &str) -> bool {
        self.tenant_of(domain).is_some()
    }

    /// Makes routing send `slot`'s domains and aliases to it.
    pub fn install(&self, slot: Arc<TenantSlot>) {
        let view = slot.view();
        for d in view.config.all_domains() {
            self.domains.insert(d.to_owned(), slot.clone());
        }
    }

    /// Stops routing to `slot`: removes its domains and aliases that still point at it.
    pub fn uninstall(&self, slot: &Arc<TenantSlot>) {
        self.domains.retain(|_, s| !Arc::ptr_eq(s, slot));
    }

    /// The tenant that owns `domain` (any case, Unicode or ASCII form).
    pub fn tenant_of(&self, domain: &str) -> Option<Arc<TenantSlot>> {
        self.domains
            .get(domain_key(domain).as_ref())
            .map(|e| e.value().clone())
    }

    /// Routes a stanza a link accepted: policy, then delivery, or back to the sender with
    /// the error that says why not.
    ///
    /// `from_domain` is the normalized domain of the stanza's 'from', already checked to
    /// belong to the origin's tenant.
    pub fn route(&self, origin: &Origin, from_domain: &str, stanza: Stanza) {
        let Some(to) = stanza.to.as_deref() else {
            return self.bounce(
                &stanza,
                StanzaCondition::JidMalformed,
                "no 'to'",
                Some(origin),
            );
        };
        let to_domain = match address_domain(to) {
            Ok(d) => d.into_owned(),
            Err(e) => {
                let text = format!("'to' is not a valid address: {e}");
                return self.bounce(&stanza, StanzaCondition::JidMalformed, &text, Some(origin));
            }
        };
        let sender = origin.tenant.view();
        let target = self.tenant_of(&to_domain);
        let same_tenant = target
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(t, &origin.tenant));
        if !same_tenant
            && !policy::permits(
                &sender.config.privacy,
                &sender.config.static_routes,
                &to_domain,
            )
        {
            tracing::info!(
                tenant = %origin.tenant.name, to = %to_domain,
                "refused by the sender's privacy settings"
            );
            self.denied(&origin.tenant, "out", from_domain, &to_domain);
            let text = format!(
                "tenant {} does not federate with {to_domain} (privacy mode {})",
                origin.tenant.name,
                sender.config.privacy.mode.as_str()
            );
            return self.bounce(&stanza, StanzaCondition::NotAllowed, &text, Some(origin));
        }
        let counters = &origin.tenant.counters;
        counters.stanzas_out.increment(1);
        counters.bytes_out.increment(stanza.bytes.len() as u64);
        let Some(target) = target else {
            if let Some(remote) = &*self.remote.load() {
                return self.send_remote(remote, from_domain, &to_domain, stanza);
            }
            let text = format!("no route to {to_domain}: it is not hosted here and this node has no server-to-server federation");
            return self.bounce(
                &stanza,
                StanzaCondition::RemoteServerNotFound,
                &text,
                Some(origin),
            );
        };
        if !same_tenant {
            let receiver = target.view();
            if !policy::permits(
                &receiver.config.privacy,
                &receiver.config.static_routes,
                from_domain,
            ) {
                tracing::info!(
                    tenant = %target.name, from = %from_domain,
                    "refused by the receiver's privacy settings"
                );
                self.denied(&target, "in", &to_domain, from_domain);
                let text = format!("{to_domain} does not accept stanzas from {}", from_domain);
                return self.bounce(
                    &stanza,
                    StanzaCondition::PolicyViolation,
                    &text,
                    Some(origin),
                );
            }
        }
        self.deliver(&target, stanza, Some(origin));
    }

    /// Routes a stanza that arrived over server-to-server from `remote` (authenticated on
    /// its stream) to the hosted domain `local`: the receiving tenant's privacy settings
    /// decide, then one of its links carries it.
    pub fn route_inbound(&self, local: &str, remote: &str, stanza: Stanza) {
        let Some(target) = self.tenant_of(local) else {
            let text = format!("{local} is not hosted here");
            return self.bounce(&stanza, StanzaCondition::ServiceUnavailable, &text, None);
        };
        let view = target.view();
        if !policy::permits(&view.config.privacy, &view.config.static_routes, remote) {
            tracing::info!(tenant = %target.name, from = %remote, "refused by the receiver's privacy settings");
            self.denied(&target, "in", local, remote);
            let text = format!("{local} does not accept stanzas from {remote}");
            return self.bounce(&stanza, StanzaCondition::PolicyViolation, &text, None);
        }
        self.deliver(&target, stanza, None);
    }
}
