//! Putting a routed stanza where it goes: one of its tenant's links here, another node of
//! the cluster with one, a remote domain's stream — or back to its sender with the error
//! that says why not; and what comes back when a connection dies with stanzas unwritten.

use std::sync::Arc;

use super::{select, Origin, Remote, Router, TenantSlot};
use crate::config::{domain_key, domain_of};
use crate::xmpp::{SendError, Stanza, StanzaCondition};

impl Router {
    /// Sends `stanza` to a remote domain: through another node while draining, else (or
    /// when no node takes it) over this node's own stream.
    pub(super) fn send_remote(
        &self,
        remote: &Arc<dyn Remote>,
        from: &str,
        to: &str,
        mut stanza: Stanza,
    ) {
        if self.is_draining() {
            if let Some(forward) = &*self.forward.load() {
                match forward.forward_remote(stanza) {
                    Ok(()) => return,
                    Err(s) => stanza = *s,
                }
            }
        }
        remote.send(from, to, stanza)
    }

    /// Delivers a stanza another node of the cluster handed over: policy was applied
    /// where it entered. For a hosted domain it goes to a link of its tenant here; for a
    /// remote one (handed over by a draining node) out over this node's own stream; else
    /// back to its sender — never to a third node.
    pub fn deliver_forwarded(&self, stanza: Stanza) {
        if self.forwarded_checkpoint_answer(&stanza) {
            return;
        }
        // The node it entered checked its addresses: the domain part is enough here, and
        // the tenant table normalizes it.
        let Some(to) = stanza.to.as_deref().map(domain_part) else {
            let text = "forwarded by a node of the cluster without a 'to'";
            return self.bounce(&stanza, StanzaCondition::JidMalformed, text, None);
        };
        if let Some(target) = self.tenant_of(to) {
            return self.deliver_to(&target, stanza, None, false);
        }
        let to = domain_key(to).into_owned();
        match (&*self.remote.load(), domain_of(stanza.from.as_deref())) {
            (Some(remote), Some(from)) if self.is_hosted(&from) => remote.send(&from, &to, stanza),
            _ => {
                let text = "forwarded to a node of the cluster that cannot send it on";
                self.bounce(&stanza, StanzaCondition::ServiceUnavailable, text, None)
            }
        }
    }

    /// Delivers stanzas whose connection closed before they were written: to another link
    /// of the same tenant, over federation when their destination is remote, or back to
    /// their senders.
    pub fn reroute(&self, stanzas: Vec<Stanza>) {
        for stanza in stanzas {
            let Some(to) = domain_of(stanza.to.as_deref()) else {
                tracing::debug!("undeliverable stanza dropped: no valid 'to'");
                continue;
            };
            if let Some(t) = self.tenant_of(&to) {
                self.deliver(&t, stanza, None);
                continue;
            }
            match (&*self.remote.load(), domain_of(stanza.from.as_deref())) {
                (Some(remote), Some(from)) if self.is_hosted(&from) => {
                    self.send_remote(remote, &from, &to, stanza)
                }
                _ => tracing::debug!(%to, "undeliverable stanza dropped: no route"),
            }
        }
    }

    /// Puts a stanza on one of `target`'s links, chosen per sender; when none is up here,
    /// on another node that has one.
    pub(super) fn deliver(&self, target: &TenantSlot, stanza: Stanza, origin: Option<&Origin>) {
        self.deliver_to(target, stanza, origin, true)
    }

    fn deliver_to(
        &self,
        target: &TenantSlot,
        mut stanza: Stanza,
        origin: Option<&Origin>,
        may_forward: bool,
    ) {
        let view = target.view();
        let sender = stanza.from.clone().unwrap_or_default();
        let len = stanza.bytes.len() as u64;
        // An error stanza is never answered (RFC 6120 §8.3.1), so one that met a full queue
        // would be lost: it goes in past the bound (`Outbox::send_return`).
        let is_error = stanza.type_.as_deref() == Some("error");
        for link in select::ranked(&view.links, &sender) {
            let sent = if is_error {
                link.outbox.send_return(stanza)
            } else {
                link.outbox.send(stanza)
            };
            match sent {
                Ok(()) => {
                    target.counters.stanzas_in.increment(1);
                    target.counters.bytes_in.increment(len);
                    return;
                }
                Err(SendError::Closed(s)) => stanza = *s,
                Err(SendError::Full(s)) => {
                    // Spilling onto another link would reorder this sender's stanzas.
                    let text = format!("tenant {} is not reading fast enough", target.name);
                    return self.bounce(&s, StanzaCondition::ResourceConstraint, &text, origin);
                }
            }
        }
        if may_forward {
            if let Some(forward) = &*self.forward.load() {
                match forward.forward(&target.name, stanza) {
                    Ok(()) => return,
                    Err(SendError::Closed(s)) => stanza = *s,
                    Err(SendError::Full(s)) => {
                        let text = format!(
                            "the node holding tenant {}'s links is not keeping up",
                            target.name
                        );
                        return self.bounce(&s, StanzaCondition::ResourceConstraint, &text, origin);
                    }
                }
            }
        }
        let text = format!("no link of tenant {} is connected", target.name);
        self.bounce(&stanza, StanzaCondition::ServiceUnavailable, &text, origin);
    }

    /// Returns `stanza` to its sender with an error: on the link it came from when known,
    /// else routed to its 'from'. Error stanzas are never answered (RFC 6120 §8.3.1).
    pub fn bounce(
        &self,
        stanza: &Stanza,
        condition: StanzaCondition,
        text: &str,
        origin: Option<&Origin>,
    ) {
        self.observer.metrics.bounced(condition.as_str());
        let Some(mut reply) = stanza.error_reply(condition, text) else {
            tracing::debug!(%condition, "undeliverable error stanza dropped");
            return;
        };
        tracing::debug!(%condition, to = ?reply.to, "stanza returned to its sender");
        match origin {
            Some(o) => {
                // Back on the link it came from, the reply holds that link's reader back as
                // the stanza did, until it is written: a component that does not read its
                // returns is slowed, not answered without end.
                reply.credit = stanza.credit.clone();
                let len = reply.bytes.len() as u64;
                match o.link.outbox.send_return(reply) {
                    Ok(()) => {
                        o.tenant.counters.stanzas_in.increment(1);
                        o.tenant.counters.bytes_in.increment(len);
                    }
                    Err(SendError::Closed(reply) | SendError::Full(reply)) => {
                        self.reroute(vec![*reply])
                    }
                }
            }
            None => self.reroute(vec![reply]),
        }
    }
}

/// The domain part of an address already checked: before the resource (the first `/`),
/// after the local part (an `@` there).
fn domain_part(address: &str) -> &str {
    let bare = address.split_once('/').map_or(address, |(b, _)| b);
    bare.split_once('@').map_or(bare, |(_, d)| d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_domain_part_of_an_address() {
        for (a, d) in [
            ("acme.example", "acme.example"),
            ("u@acme.example", "acme.example"),
            ("u@acme.example/r", "acme.example"),
            ("u@acme.example/r@x/y", "acme.example"),
            ("acme.example/r@x", "acme.example"),
        ] {
            assert_eq!(super::domain_part(a), d, "{a}");
        }
    }
}
