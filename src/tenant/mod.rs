//! One actor per tenant: owns the tenant's configuration and its component links, and
//! publishes the tenant's routing snapshot whenever either changes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use actix::{Actor, AsyncContext, Context, Handler, Message, Recipient};

use crate::config::TenantConfig;
use crate::model::LinkRow;
use crate::observe::{Event, Kind, Observer};
use crate::routing::{ConnectionControl, LinkEvent, LinkHandle, TenantSlot, TenantView};
use crate::xmpp::StreamError;

/// The tenants a node runs, swapped whole when a reload starts or stops one.
pub type TenantList = arc_swap::ArcSwap<Vec<TenantEntry>>;

/// A running tenant: its actor and its routing slot.
pub type TenantEntry = (actix::Addr<TenantActor>, Arc<TenantSlot>);

/// A tenant's router instance.
pub struct TenantActor {
    config: Arc<TenantConfig>,
    /// Where routing reads this tenant from; we publish into it.
    slot: Arc<TenantSlot>,
    /// Links up, by id (ids grow, so this is also the order they came up).
    links: BTreeMap<u64, LinkEntry>,
    observer: Arc<Observer>,
}

struct LinkEntry {
    handle: LinkHandle,
    peer: SocketAddr,
    /// Tells the link to stop reading or to close.
    control: Recipient<ConnectionControl>,
    /// When this actor saw it come up, for operators (`xfed status`, the console).
    since: chrono::DateTime<chrono::Utc>,
}

impl TenantActor {
    /// Starts the actor on the current arbiter and returns it with its routing slot.
    pub fn start(
        config: Arc<TenantConfig>,
        observer: Arc<Observer>,
    ) -> (actix::Addr<TenantActor>, Arc<TenantSlot>) {
        let mut slot_out = None;
        let addr = TenantActor::create(|ctx| {
            let view = TenantView::new(config.clone(), Vec::new());
            let counters = observer.metrics.tenant(&config.name);
            let slot = Arc::new(TenantSlot::new(view, ctx.address().recipient(), counters));
            slot_out = Some(slot.clone());
            TenantActor {
                config,
                slot,
                links: BTreeMap::new(),
                observer,
            }
        });
        // Invariant: `create` runs its closure before returning.
        (addr, slot_out.expect("slot made in create"))
    }

    fn publish(&self) {
        let links = self.links.values().map(|l| l.handle.clone()).collect();
        self.slot
            .publish(TenantView::new(self.config.clone(), links));
    }
}

impl Actor for TenantActor {
    type Context = Context<Self>;
}

impl Handler<LinkEvent> for TenantActor {
    type Result = ();

    fn handle(&mut self, event: LinkEvent, _: &mut Context<Self>) {
        match event {
            LinkEvent::Up {
                link,
                peer,
                control,
                greeting,
                routable,
            } => {
                self.observer.events.record(
                    Event::new(Kind::LinkUp)
                        .tenant(Some(&self.config.name))
                        .domains(self.config.all_domains())
                        .field("link", link.id)
                        .field("peer", peer.to_string()),
                );
                let outbox = link.outbox.clone();
                self.links.insert(
                    link.id,
                    LinkEntry {
                        handle: link,
                        peer,
                        control,
                        since: chrono::Utc::now(),
                    },
                );
                // The greeting goes out ahead of anything routed to the link, and only once
                // routing reaches it: a peer that hears it and at once has another tenant
                // send it a stanza must find the link in service (before, such a stanza
                // could come back service-unavailable).
                outbox.send_raw_then(greeting, || self.publish());
                // The link may have gone meanwhile; then nobody waits for the answer.
                let _ = routable.send(());
            }
            LinkEvent::Down { id } => {
                if let Some(link) = self.links.remove(&id) {
                    self.observer.events.record(
                        Event::new(Kind::LinkDown)
                            .tenant(Some(&self.config.name))
                            .domains(self.config.all_domains())
                            .field("link", id)
                            .field("peer", link.peer.to_string()),
                    );
                }
                self.publish();
            }
        }
    }
}

/// Replaces the tenant's federation settings (privacy, static routes) without touching
/// its links; routing sees them at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateConfig(pub Arc<TenantConfig>);

impl Handler<UpdateConfig> for TenantActor {
    type Result = ();

    fn handle(&mut self, msg: UpdateConfig, _: &mut Context<Self>) {
        self.config = msg.0;
        self.publish();
    }
}

/// Stops the tenant actor (after its links were told to close).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for TenantActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        use actix::ActorContext;
        ctx.stop();
    }
}

/// Lists the tenant's links.
#[derive(Message)]
#[rtype(result = "Vec<LinkRow>")]
pub struct ListLinks;

impl Handler<ListLinks> for TenantActor {
    type Result = Vec<LinkRow>;

    fn handle(&mut self, _: ListLinks, _: &mut Context<Self>) -> Vec<LinkRow> {
        self.links
            .values()
            .map(|l| LinkRow {
                id: l.handle.id,
                peer: l.peer,
                queued_bytes: l.handle.outbox.queued_bytes(),
                since: Some(l.since),
                stanzas_out: l.handle.outbox.stanzas_written(),
            })
            .collect()
    }
}

/// Tells every link of the tenant to do something; answers how many links were told.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ControlLinks(pub ConnectionControl);

impl ControlLinks {
    /// Close every link with `error`.
    pub fn close(error: Option<StreamError>) -> Self {
        ControlLinks(ConnectionControl::Close(error))
    }
}

impl Handler<ControlLinks> for TenantActor {
    type Result = usize;

    fn handle(&mut self, msg: ControlLinks, _: &mut Context<Self>) -> usize {
        for link in self.links.values() {
            link.control.do_send(msg.0.clone());
        }
        self.links.len()
    }
}
