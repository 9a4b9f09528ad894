//! Stream management (XEP-0198) on an established s2s stream: on an outbound stream the
//! peer's acknowledgements let go of what we sent, and whatever it has not acknowledged when
//! the stream ends goes back to its domain pairs to go out again; on an inbound stream we
//! count what we handle and answer the peer's requests. No resumption: an s2s stream is
//! replaced, not resumed, and what it did not confirm is sent on the new one.

use super::{Role, S2sStream};
use crate::observe::{Event, Kind};
use crate::xmpp::acks::{Handled, SM_NS};
use crate::xmpp::{ns, Stanza, StanzaCondition, StreamCondition as C, StreamError};

impl S2sStream {
    /// An element of the stream management namespace, either direction.
    pub(super) fn stream_management(&mut self, s: &Stanza) -> Result<(), StreamError> {
        match (s.name.as_str(), &self.role) {
            // We send on outbound streams: the peer confirms.
            ("a", Role::Outbound { .. }) => {
                let h = s
                    .attr("h")
                    .and_then(|h| h.parse::<u32>().ok())
                    .ok_or_else(|| {
                        StreamError::new(C::BadFormat, "<a/> without a valid 'h' (XEP-0198 §4)")
                    })?;
                self.outbox.acknowledge(h).map_err(|e| e.stream_error())?;
                Ok(())
            }
            // Nothing of the peer's is counted on a stream we opened.
            ("r", Role::Outbound { .. }) if self.outbox.is_acked() => {
                self.send(Handled::default().answer());
                Ok(())
            }
            ("enable", Role::Inbound { authed, .. }) => {
                let refusal = if !self.shared.stream_management {
                    Some("feature-not-implemented")
                } else if authed.is_empty() || self.handled.is_some() {
                    Some("unexpected-request")
                } else {
                    None
                };
                match refusal {
                    Some(condition) => self.send(format!(
                        "<failed xmlns='{SM_NS}'><{condition} xmlns='{}'/></failed>",
                        ns::XMPP_STANZAS
                    )),
                    None => {
                        self.handled = Some(Handled::default());
                        self.stats
                            .sm_enabled
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                        self.send(format!("<enabled xmlns='{SM_NS}'/>"));
                        tracing::info!(peer = %self.peer, stream = self.id, "inbound s2s stream management enabled by the peer");
                    }
                }
                Ok(())
            }
            ("r", Role::Inbound { .. }) => {
                if let Some(h) = &self.handled {
                    self.send(h.answer());
                }
                Ok(())
            }
            _ => {
                tracing::debug!(peer = %self.peer, name = %s.name, "stream management element ignored");
                Ok(())
            }
        }
    }

    /// A stanza handled on an inbound stream counts towards our next `<a/>`.
    pub(super) fn count_handled(&mut self) {
        if let Some(h) = &mut self.handled {
            h.count();
        }
    }

    /// When the stream ends, what the peer did not confirm. With stream management, what
    /// it did not acknowledge goes out again on a new stream, in order, ahead of what was
    /// never written. Without it (ping checkpoints), what was written after the last
    /// answered ping may or may not have arrived: it returns to its senders with the reason
    /// rather than risk a duplicate; what was never written goes out on a new stream.
    pub(super) fn hand_back_unconfirmed(&mut self) {
        let Role::Outbound {
            owner,
            local,
            remote,
            ..
        } = &self.role
        else {
            return;
        };
        let (written, unsent) = self.outbox.take_unconfirmed();
        let sm = self.outbox.is_acked();
        let n = written.len();
        if n > 0 {
            let outcome = if sm {
                "sent again on a new stream, in order"
            } else {
                "returned to their senders (the peer has no stream management)"
            };
            tracing::info!(peer = %self.peer, stream = self.id, %remote, unconfirmed = n, outcome, "s2s stream ended with stanzas the peer had not confirmed");
            self.shared.observer.events.record(
                Event::new(Kind::StreamUnacknowledged)
                    .tenant(self.shared.tenant_of(local).as_deref())
                    .domains(vec![local.as_str(), remote.as_str()])
                    .field("stream", self.id)
                    .field("peer", self.peer.to_string())
                    .field("unacknowledged", n)
                    .field("stream_management", sm)
                    .field(
                        "reason",
                        self.close_reason.as_deref().unwrap_or("connection lost"),
                    )
                    .field("outcome", outcome),
            );
        }
        let (again, returned) = if sm {
            (written.into_iter().chain(unsent).collect(), Vec::new())
        } else {
            (unsent, written)
        };
        let router = self.shared.router.upgrade();
        if !returned.is_empty() {
            self.shared
                .observer
                .metrics
                .counter("xfed_s2s_returned_unacknowledged_total", &[])
                .increment(returned.len() as u64);
            if let Some(router) = &router {
                let text = format!(
                    "the stream to {remote} ended before {remote} confirmed the stanza (it offers no stream management, so it may or may not have arrived)"
                );
                for s in &returned {
                    router.bounce(s, StanzaCondition::RemoteServerTimeout, &text, None);
                }
            }
        }
        if again.is_empty() {
            return;
        }
        match owner.upgrade() {
            Some(f) => f.hand_back(again),
            None => {
                if let Some(router) = router {
                    router.reroute(again);
                }
            }
        }
    }
}
