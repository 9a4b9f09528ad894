//! The actor of an established s2s stream, either direction: reads frames, closes after
//! `idle_timeout_secs` without a stanza, and on inbound streams plays the receiving role
//! (dialback results, verified with the authoritative server), the authoritative role
//! (dialback verify requests), and routes stanzas of authenticated domain pairs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, SpawnHandle, StreamHandler};
use bytes::Bytes;
use tokio::time::Instant;

use crate::observe::{Event, Kind};
use crate::routing::ConnectionControl;
use crate::s2s::io::{TlsInfo, XmlConn};
use crate::s2s::outbound::is_dialback;
use crate::s2s::S2sShared;
use crate::xmpp::acks::{Handled, SM_NS};
use crate::xmpp::credit::{Credit, Gated};
use crate::xmpp::outbox::Checkpoint;
use crate::xmpp::stanza::{stream_error, STREAM_CLOSE};
use crate::xmpp::{Frame, Outbox, ReadError, Stanza, StreamCondition as C, StreamError, Waits};

mod multiplex;
mod receiving;
mod registry;
mod role;
mod sm;

pub use multiplex::AddLocal;
pub use role::{Owner, Role};

/// How long a closing stream waits for the peer's closing tag.
pub const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// An established s2s stream.
pub struct S2sStream {
    id: u64,
    shared: Arc<S2sShared>,
    peer: SocketAddr,
    outbox: Outbox,
    tls: Option<TlsInfo>,
    role: Role,
    /// The read side, cancelled on a graceful shutdown.
    reading: Option<SpawnHandle>,
    /// What this stream read and routed that has not gone on yet; reading pauses while it
    /// is spent (flow control).
    credit: Arc<Credit>,
    /// When a stanza last went either way, and the outbox count seen then.
    last_traffic: Instant,
    written_seen: u64,
    /// Stanzas written as of the last keepalive tick.
    keepalive_seen: u64,
    /// We sent our closing tag and are reading what the peer still had in flight.
    closing: bool,
    /// Read-side counters, shared with the registry.
    stats: Arc<crate::s2s::StreamStats>,
    /// Why the stream is ending, once it is (the first reason wins).
    close_reason: Option<String>,
    /// Stream management on what the peer sends us (it enabled it): stanzas handled.
    handled: Option<Handled>,
}

impl S2sStream {
    /// Starts the actor on the current worker. Returns the stream's id and outbox.
    /// With a `checkpoint` (outbound streams: stream management when the peer answered
    /// `<enable/>`, else pings), the outbox keeps stanzas until the peer confirms them.
    pub fn start(
        shared: Arc<S2sShared>,
        conn: XmlConn,
        role: Role,
        tls: Option<TlsInfo>,
        first: Option<Stanza>,
        checkpoint: Option<Checkpoint>,
    ) -> (u64, Outbox, actix::Addr<S2sStream>) {
        let peer = conn.peer;
        let undelivered = shared.clone();
        // With a checkpoint the stream itself hands back what the peer did not confirm
        // (`hand_back_unconfirmed`), so only an inbound stream's writer uses this.
        let (reader, outbox) = conn.into_parts(
            shared.limits.queue_bytes_per_connection,
            Waits::new(shared.limits.stuck, shared.dead_peer_timeout),
            checkpoint,
            move |stanzas| {
                if let Some(router) = undelivered.router.upgrade() {
                    router.reroute(stanzas);
                }
            },
        );
        outbox.measure(shared.observer.metrics.transit.clone());
        let id = shared.next_id();
        let out = outbox.clone();
        let credit = Credit::new(shared.limits.in_flight_bytes_per_connection);
        let reader = Gated::new(Box::pin(reader), credit.clone());
        let addr = S2sStream::create(move |actx| {
            let reading = actx.add_stream(reader);
            if let Some(first) = first {
                actx.notify(First(first));
            }
            let stream = S2sStream {
                id,
                shared,
                peer,
                outbox,
                tls,
                role,
                reading: Some(reading),
                credit,
                last_traffic: Instant::now(),
                written_seen: 0,
                keepalive_seen: 0,
                closing: false,
                stats: Default::default(),
                close_reason: None,
                handled: None,
            };
            // Registered before `create` returns, so the stream is visible at once.
            stream.register(actx.address().recipient());
            stream
        });
        (id, out, addr)
    }

    /// Remembers why the stream ends (the first reason given wins).
    fn ending(&mut self, reason: impl Into<String>) {
        if self.close_reason.is_none() {
            self.close_reason = Some(reason.into());
        }
    }

    /// RFC 6120 §4.4: send our closing tag (after what is queued), then keep reading and
    /// routing until the peer's own close, so stanzas it already sent are not lost; give up
    /// after [`CLOSE_GRACE`].
    fn close_gracefully(&mut self, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        self.closing = true;
        // A last checkpoint: the peer confirms everything before its own close (XEP-0198
        // §4), or answers the ping on its stream to us.
        self.outbox.ask();
        self.outbox
            .close(Bytes::from_static(STREAM_CLOSE.as_bytes()));
        ctx.run_later(CLOSE_GRACE, |_, ctx| ctx.stop());
    }

    fn send(&self, xml: String) {
        self.outbox.send_raw(Bytes::from(xml));
    }

    fn fail(&mut self, e: StreamError, ctx: &mut Context<Self>) {
        self.ending(format!("error: {} ({})", e.condition, e.text));
        tracing::info!(peer = %self.peer, stream = self.id, condition = %e.condition, reason = %e.text, "s2s stream closed with a stream error");
        self.outbox.close(Bytes::from(stream_error(&e)));
        ctx.stop();
    }

    fn router(&self) -> Result<Arc<crate::routing::Router>, StreamError> {
        self.shared
            .router
            .upgrade()
            .ok_or_else(|| StreamError::new(C::SystemShutdown, "the node is shutting down"))
    }

    /// Every [`super::KEEPALIVE`]: a stream that wrote nothing since the last time writes a
    /// space, and one whose writer gave up ends.
    fn keepalive(&mut self, ctx: &mut Context<Self>) {
        if self.outbox.is_closed() && !self.closing {
            // The writer gave up (a write stalled past its bound): the stream is over even if
            // its read side has not noticed; what the peer did not confirm goes back now
            // rather than when the socket errors or idles out.
            self.ending("write stalled");
            ctx.stop();
            return;
        }
        // Something unacknowledged on the wire lets TCP_USER_TIMEOUT notice a dead peer.
        let written = self.outbox.stanzas_written();
        if written == self.keepalive_seen {
            self.outbox.send_raw(Bytes::from_static(b" "));
        }
        self.keepalive_seen = written;
    }

    /// Closes the stream when no stanza went either way for `idle_timeout`.
    fn check_idle(&mut self, ctx: &mut Context<Self>) {
        let written = self.outbox.stanzas_written();
        if written != self.written_seen {
            self.written_seen = written;
            self.last_traffic = Instant::now();
        }
        if self.last_traffic.elapsed() >= self.shared.idle_timeout {
            tracing::info!(peer = %self.peer, stream = self.id, "s2s stream idle: closing");
            self.ending("idle");
            self.outbox
                .close(Bytes::from_static(STREAM_CLOSE.as_bytes()));
            ctx.stop();
        }
    }
}

/// The grid, in Unix milliseconds, that every stream's periodic checks start on. Started
/// wherever each stream happened to open, 10,000 idle streams' timers woke their worker
/// about once a millisecond, one check each; on the grid, the checks due together run in
/// one wake-up, ten a second, and under a hundred at a time, so none is a long pause for the
/// traffic on that worker.
const TIMER_GRID_MS: u64 = 100;

/// When a check repeated `every` first runs: one period from `now`, moved on to the next
/// point of the grid (`unix_ms` is `now` on the Unix clock).
fn on_grid(now: Instant, unix_ms: u64, every: Duration) -> Instant {
    let to_grid = (TIMER_GRID_MS - unix_ms % TIMER_GRID_MS) % TIMER_GRID_MS;
    now + every + Duration::from_millis(to_grid)
}

/// The first element, read during negotiation.
#[derive(actix::Message)]
#[rtype(result = "()")]
struct First(Stanza);

impl Actor for S2sStream {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let every = (self.shared.idle_timeout / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(30));
        let (now, unix) = (Instant::now(), crate::xmpp::outbox::unix_ms());
        let first = |every| on_grid(now, unix, every);
        ctx.run_interval_at(first(every), every, |act, ctx| act.check_idle(ctx));
        ctx.run_interval_at(first(super::KEEPALIVE), super::KEEPALIVE, |act, ctx| {
            act.keepalive(ctx)
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some((_, entry)) = self.shared.streams.remove(&self.id) {
            let local = entry.pairs.first().map(|p| p.local.as_str());
            let mut domains: Vec<&str> = Vec::new();
            for p in &entry.pairs {
                for d in [p.local.as_str(), p.remote.as_str()] {
                    if !domains.contains(&d) {
                        domains.push(d);
                    }
                }
            }
            let lasted = chrono::Utc::now() - entry.since;
            self.shared.observer.events.record(
                Event::new(Kind::StreamClosed)
                    .tenant(local.and_then(|l| self.shared.tenant_of(l)).as_deref())
                    .domains(domains)
                    .field("stream", self.id)
                    .field("direction", entry.direction.as_str())
                    .field("peer", self.peer.to_string())
                    .field(
                        "reason",
                        self.close_reason.as_deref().unwrap_or("connection lost"),
                    )
                    .field("seconds", lasted.num_seconds())
                    .field(
                        "stanzas_in",
                        self.stats
                            .stanzas_in
                            .load(std::sync::atomic::Ordering::Relaxed),
                    )
                    .field("stanzas_out", self.outbox.stanzas_written()),
            );
        }
        self.outbox.close(Bytes::new());
        self.hand_back_unconfirmed();
        if let Role::Outbound {
            local,
            remote,
            owner,
            extra,
            pending,
            ..
        } = &self.role
        {
            if let Some(f) = owner.upgrade() {
                for l in std::iter::once(local).chain(extra) {
                    f.stream_closed(l, remote, self.id);
                }
                for l in pending {
                    f.multiplex_failed(l, remote);
                }
            }
        }
    }
}

impl StreamHandler<Result<Frame, ReadError>> for S2sStream {
    fn handle(&mut self, item: Result<Frame, ReadError>, ctx: &mut Context<Self>) {
        let result = match item {
            Ok(Frame::Stanza(s)) if s.name.ends_with(":error") => {
                tracing::info!(peer = %self.peer, stream = self.id, error = %s.text(), "peer sent a stream error");
                self.ending(format!("peer sent a stream error: {}", s.text()));
                self.outbox
                    .close(Bytes::from_static(STREAM_CLOSE.as_bytes()));
                return ctx.stop();
            }
            Ok(Frame::Close) => {
                self.ending("peer");
                // Our own close went out already if we started closing.
                if !self.closing {
                    self.outbox
                        .close(Bytes::from_static(STREAM_CLOSE.as_bytes()));
                }
                return ctx.stop();
            }
            Ok(Frame::Stanza(s)) if s.xmlns.as_deref() == Some(SM_NS) => self.stream_management(&s),
            Ok(Frame::Stanza(s)) => match self.role {
                Role::Inbound { .. } => self.inbound(s, ctx),
                Role::Outbound { .. } if is_dialback(&s, "result") => {
                    self.outbound_result(&s, ctx);
                    Ok(())
                }
                Role::Outbound { .. } => {
                    tracing::debug!(peer = %self.peer, name = %s.name, "element on an outbound stream ignored");
                    Ok(())
                }
            },
            Ok(Frame::Open(_)) => Err(StreamError::new(C::NotWellFormed, "second stream header")),
            Err(ReadError::Stream(e)) => Err(e),
            Err(ReadError::Io(e)) => {
                self.ending(format!("connection lost: {e}"));
                return ctx.stop();
            }
        };
        if let Err(e) = result {
            self.fail(e, ctx);
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        if self.reading.is_some() {
            ctx.stop();
        }
    }
}

impl Handler<First> for S2sStream {
    type Result = ();

    fn handle(&mut self, msg: First, ctx: &mut Context<Self>) {
        if let Err(e) = self.inbound(msg.0, ctx) {
            self.fail(e, ctx);
        }
    }
}

impl Handler<ConnectionControl> for S2sStream {
    type Result = ();

    fn handle(&mut self, msg: ConnectionControl, ctx: &mut Context<Self>) {
        match msg {
            ConnectionControl::StopReading => {
                if let Some(h) = self.reading.take() {
                    ctx.cancel_future(h);
                }
            }
            ConnectionControl::Close(Some(e)) => {
                self.ending(format!("closed by this node: {}", e.condition));
                self.outbox.close(Bytes::from(stream_error(&e)));
                ctx.stop();
            }
            ConnectionControl::Close(None) => {
                self.ending("closed by this node");
                self.close_gracefully(ctx)
            }
            ConnectionControl::Retire(reason) => {
                self.ending(reason);
                self.close_gracefully(ctx)
            }
        }
    }
}

#[cfg(test)]
mod grid_tests {
    use super::*;

    /// Streams opened at different moments run their checks at the same points of the
    /// grid, never sooner than one period after they opened.
    #[test]
    fn checks_start_on_the_grid_one_period_on() {
        let now = Instant::now();
        let every = Duration::from_secs(10);
        for unix in [1_000, 1_001, 1_050, 1_099, 1_100, 123_456_789] {
            let first = on_grid(now, unix, every);
            let late = first - now - every;
            assert!(
                late < Duration::from_millis(TIMER_GRID_MS),
                "{unix}: {late:?}"
            );
            let at = unix + late.as_millis() as u64;
            assert_eq!(at % TIMER_GRID_MS, 0, "{unix} starts on the grid");
        }
    }
}
