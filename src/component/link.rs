//! One XEP-0114 component connection: the negotiation (stream header, handshake), then the
//! [`ComponentLink`] actor that exists only once the link is authenticated — an
//! unauthenticated stream has no way to route anything.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, SpawnHandle, StreamHandler};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use super::{handshake, ComponentService};
use crate::admission::Permit;
use crate::config::address_domain;
use crate::routing::{ConnectionControl, LinkEvent, LinkHandle, Origin, Router, TenantSlot};
use crate::xmpp::credit::{Credit, Gated};
use crate::xmpp::stanza::{stream_error, stream_header, STREAM_CLOSE};
use crate::xmpp::{
    ns, Frame, Kind, Limits, Outbox, ReadError, Stanza, StreamCondition as C, StreamError,
    StreamReader, Waits,
};

/// How long one write may wait for a component that does not read before the link counts
/// as dead.
const WRITE_STALL: Duration = Duration::from_secs(30);

type Reader = FramedRead<tokio::net::tcp::OwnedReadHalf, StreamReader>;

/// Negotiates a new connection and, once it is authenticated, starts its actor on the
/// current arbiter. The admission `permit` is held while negotiating and given back on
/// return: an authenticated link does not count against the listener's caps.
pub(crate) async fn accept(
    stream: TcpStream,
    peer: SocketAddr,
    svc: Arc<ComponentService>,
    permit: Permit,
) {
    let (rd, wr) = stream.into_split();
    let limits = Limits {
        max_stanza_bytes: svc.limits.max_stanza_bytes,
        max_depth: svc.limits.max_depth,
    };
    let router = svc.router.clone();
    let (outbox, _writer) = Outbox::spawn(
        wr,
        svc.limits.queue_bytes_per_connection,
        Waits::new(svc.limits.stuck, WRITE_STALL),
        move |undelivered| router.reroute(undelivered),
    );
    outbox.measure(svc.router.observer.metrics.transit.clone());
    let mut neg = Negotiation {
        reader: FramedRead::new(rd, StreamReader::new(limits)),
        outbox: outbox.clone(),
        header_sent: false,
        stream_id: stream_id(),
        peer,
    };
    let timeout = svc.limits.handshake_timeout;
    match tokio::time::timeout(timeout, neg.run(&svc.router)).await {
        Ok(Ok(Some(tenant))) => {
            let id = svc.next_link_id();
            let router = svc.router.clone();
            let credit = Credit::new(svc.limits.in_flight_bytes_per_connection);
            let reader = Gated::new(neg.reader, credit.clone());
            ComponentLink::create(move |ctx| {
                let reading = ctx.add_stream(reader);
                ComponentLink {
                    credit,
                    peer,
                    origin: Origin {
                        tenant,
                        link: LinkHandle { id, outbox, peer },
                    },
                    router,
                    reading,
                    quiesced: false,
                }
            });
        }
        Ok(Ok(None)) => outbox.close(Bytes::from_static(if neg.header_sent {
            STREAM_CLOSE.as_bytes()
        } else {
            b""
        })),
        Ok(Err(e)) => neg.fail(e),
        Err(_) => neg.fail(StreamError::new(
            C::ConnectionTimeout,
            format!("no stream and handshake within {}s", timeout.as_secs()),
        )),
    }
    drop(permit);
}

/// A fresh, unguessable stream id.
fn stream_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The state of a connection before authentication.
struct Negotiation {
    reader: Reader,
    outbox: Outbox,
    /// Whether our stream header went out (a stream error must follow one).
    header_sent: bool,
    stream_id: String,
    peer: SocketAddr,
}

impl Negotiation {
    /// Reads the stream header and the handshake. `Ok(None)` when the peer went away.
    async fn run(&mut self, router: &Router) -> Result<Option<Arc<TenantSlot>>, StreamError> {
        let header = match self.next().await? {
            Some(Frame::Open(h)) => h,
            Some(_) => {
                return Err(StreamError::new(
                    C::NotWellFormed,
                    "expected a stream header",
                ))
            }
            None => return Ok(None),
        };
        match header.default_ns.as_deref() {
            Some(ns::COMPONENT_ACCEPT) => {}
            other => {
                return Err(StreamError::new(
                    C::InvalidNamespace,
                    format!(
                        "this port speaks {} (XEP-0114), not {}",
                        ns::COMPONENT_ACCEPT,
                        other.unwrap_or("no namespace")
                    ),
                ))
            }
        }
        let to = header.to.unwrap_or_default();
        let tenant = jid::DomainPart::new(&to)
            .ok()
            .and_then(|d| router.tenant_of(d.as_str()))
            .ok_or_else(|| {
                StreamError::new(
                    C::HostUnknown,
                    format!("{to:?} is not a domain or alias of any tenant on this node"),
                )
            })?;
        self.send_header(Some(&to));
        match self.next().await? {
            Some(Frame::Stanza(s)) if s.name == "handshake" => {
                let secret = tenant.view().config.secret.clone();
                if !handshake::verify(&self.stream_id, secret.expose(), &s.text()) {
                    return Err(StreamError::new(
                        C::NotAuthorized,
                        "the handshake does not match the tenant's secret",
                    ));
                }
                // `<handshake/>` goes out as the tenant takes the link (`LinkEvent::Up`).
                Ok(Some(tenant))
            }
            Some(Frame::Stanza(s)) => Err(StreamError::new(
                C::NotAuthorized,
                format!("<{}> before the handshake", s.name),
            )),
            Some(Frame::Open(_)) => Err(StreamError::new(C::NotWellFormed, "second stream header")),
            Some(Frame::Close) | None => Ok(None),
        }
    }

    async fn next(&mut self) -> Result<Option<Frame>, StreamError> {
        match self.reader.next().await {
            Some(Ok(frame)) => Ok(Some(frame)),
            Some(Err(ReadError::Stream(e))) => Err(e),
            Some(Err(ReadError::Io(_))) | None => Ok(None),
        }
    }

    fn send_header(&mut self, from: Option<&str>) {
        let header = stream_header(ns::COMPONENT_ACCEPT, from, None, &self.stream_id);
        self.outbox.send_raw(Bytes::from(header));
        self.header_sent = true;
    }

    fn fail(mut self, e: StreamError) {
        tracing::info!(peer = %self.peer, condition = %e.condition, reason = %e.text, "component stream refused");
        if !self.header_sent {
            self.send_header(None);
        }
        self.outbox.close(Bytes::from(stream_error(&e)));
    }
}

/// How long a link closed gracefully still reads what its component sent before it saw
/// the close.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// An authenticated component link: reads stanzas and routes them; what is routed to it goes
/// straight into its outbox.
pub struct ComponentLink {
    peer: SocketAddr,
    /// The tenant and this link's delivery handle, as routing sees the sender.
    origin: Origin,
    router: Arc<Router>,
    /// The read side, cancelled when the link is told to stop reading.
    reading: SpawnHandle,
    /// Reading stopped on purpose: wait for the close instead of stopping at once.
    quiesced: bool,
    /// What this link read and routed that has not gone on yet; reading pauses while it is
    /// spent (flow control).
    credit: Arc<Credit>,
}

impl ComponentLink {
    fn tenant(&self) -> &str {
        &self.origin.tenant.name
    }

    /// Checks what a component may send and routes it.
    fn on_stanza(&mut self, mut s: Stanza) -> Result<(), StreamError> {
        if s.kind == Kind::Other {
            return Err(StreamError::new(
                C::UnsupportedStanzaType,
                format!("<{}> is not a message, presence or iq stanza", s.name),
            ));
        }
        if let Some(x) = s.xmlns.as_deref().filter(|x| *x != ns::COMPONENT_ACCEPT) {
            return Err(StreamError::new(
                C::InvalidNamespace,
                format!("stanza namespace {x} on a {} stream", ns::COMPONENT_ACCEPT),
            ));
        }
        let from = s.from.as_deref().ok_or_else(|| {
            StreamError::new(C::ImproperAddressing, "stanza without a 'from' address")
        })?;
        // Owned: the stanza it is read from moves on below.
        let from_domain = address_domain(from)
            .map_err(|e| {
                StreamError::new(
                    C::ImproperAddressing,
                    format!("'from' {from:?} is not an XMPP address: {e}"),
                )
            })?
            .into_owned();
        if !self
            .origin
            .tenant
            .view()
            .owned
            .contains(from_domain.as_str())
        {
            return Err(StreamError::new(
                C::InvalidFrom,
                format!(
                    "{from_domain} is not a domain or alias of tenant {}",
                    self.tenant()
                ),
            ));
        }
        if s.to.is_none() {
            return Err(StreamError::new(
                C::ImproperAddressing,
                "stanza without a 'to' address",
            ));
        }
        s.drop_default_ns();
        s.credit = Some(self.credit.take(s.bytes.len()));
        self.router.route(&self.origin, &from_domain, s);
        Ok(())
    }

    fn close(&mut self, tail: String, ctx: &mut Context<Self>) {
        self.origin.link.outbox.close(Bytes::from(tail));
        ctx.stop();
    }

    /// Closes gracefully (RFC 6120 §4.4): our `</stream:stream>` goes out after what is
    /// queued, nothing more is routed to this link, and what the component sent before it
    /// read our close is still read and routed until it closes its side — or for
    /// [`DRAIN`] at most. A component that keeps writing stanzas after our close loses only
    /// those.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        self.origin.tenant.notify(LinkEvent::Down {
            id: self.origin.link.id,
        });
        self.origin
            .link
            .outbox
            .close(Bytes::from_static(STREAM_CLOSE.as_bytes()));
        ctx.run_later(DRAIN, |_, ctx| ctx.stop());
    }
}

impl Actor for ComponentLink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        tracing::info!(tenant = self.tenant(), peer = %self.peer, link = self.origin.link.id, "component link up");
        let (routable, ready) = tokio::sync::oneshot::channel();
        self.origin.tenant.notify(LinkEvent::Up {
            link: self.origin.link.clone(),
            peer: self.peer,
            control: ctx.address().recipient(),
            greeting: Bytes::from_static(b"<handshake/>"),
            routable,
        });
        let outbox = self.origin.link.outbox.clone();
        actix_rt::spawn(async move {
            // The tenant stopped before taking the link: nothing would ever route to it.
            if ready.await.is_err() {
                outbox.close(Bytes::from_static(STREAM_CLOSE.as_bytes()));
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        tracing::info!(tenant = self.tenant(), peer = %self.peer, link = self.origin.link.id, "component link down");
        self.origin.tenant.notify(LinkEvent::Down {
            id: self.origin.link.id,
        });
        // Harmless when a close already went out: the writer has stopped by then.
        self.origin.link.outbox.close(Bytes::new());
    }
}

impl StreamHandler<Result<Frame, ReadError>> for ComponentLink {
    fn handle(&mut self, item: Result<Frame, ReadError>, ctx: &mut Context<Self>) {
        let result = match item {
            Ok(Frame::Stanza(s)) if s.name.ends_with(":error") => {
                tracing::info!(tenant = self.tenant(), peer = %self.peer, error = %s.text(), "component sent a stream error");
                return self.close(STREAM_CLOSE.into(), ctx);
            }
            Ok(Frame::Stanza(s)) => self.on_stanza(s),
            Ok(Frame::Close) => return self.close(STREAM_CLOSE.into(), ctx),
            Ok(Frame::Open(_)) => Err(StreamError::new(C::NotWellFormed, "second stream header")),
            Err(ReadError::Stream(e)) => Err(e),
            Err(ReadError::Io(_)) => return ctx.stop(),
        };
        if let Err(e) = result {
            tracing::info!(tenant = self.tenant(), peer = %self.peer, condition = %e.condition, reason = %e.text, "component link closed with a stream error");
            self.close(stream_error(&e), ctx);
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        if !self.quiesced {
            ctx.stop();
        }
    }
}

impl Handler<ConnectionControl> for ComponentLink {
    type Result = ();

    fn handle(&mut self, msg: ConnectionControl, ctx: &mut Context<Self>) {
        match msg {
            ConnectionControl::StopReading => {
                self.quiesced = true;
                ctx.cancel_future(self.reading);
            }
            ConnectionControl::Close(Some(e)) => self.close(stream_error(&e), ctx),
            ConnectionControl::Close(None) | ConnectionControl::Retire(_) => self.drain(ctx),
        }
    }
}
