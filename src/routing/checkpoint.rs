//! Checkpoint pings (the confirmations of streams without stream management) in the
//! inbound traffic: answers to ours go to federation, another xfed's are answered here;
//! neither reaches a tenant.

use super::Router;
use crate::config::domain_of;
use crate::xmpp::acks::ping_origin;
use crate::xmpp::outbox::PING_ID_PREFIX;
use crate::xmpp::{Kind, Stanza};

impl Router {
    /// Answers another xfed's checkpoint ping (an iq get whose id carries the checkpoint
    /// prefix, to a hosted domain) at the edge, so its stream gets confirmed whatever the
    /// tenant's server does with pings. Answers whether `stanza` was one.
    pub fn answer_checkpoint_ping(&self, stanza: &Stanza) -> bool {
        let ours = stanza.kind == Kind::Iq
            && stanza.type_.as_deref() == Some("get")
            && stanza
                .id
                .as_deref()
                .is_some_and(|id| id.starts_with(PING_ID_PREFIX))
            && stanza
                .to
                .as_deref()
                .is_some_and(|to| !to.contains('@') && !to.contains('/'));
        if ours {
            self.reroute(vec![stanza.iq_result()]);
        }
        ours
    }

    /// Hands the answer to one of our checkpoint pings to federation. Answers whether
    /// `stanza` was one (its id carries the prefix every checkpoint ping's id has); those
    /// are ours, never delivered to a tenant.
    pub fn checkpoint_answer(&self, local: &str, remote: &str, stanza: &Stanza) -> bool {
        let Some(id) = checkpoint_answer_id(stanza) else {
            return false;
        };
        // In a cluster the remote server's stream may land on another node than the one
        // whose stream sent the ping: the answer goes to that node.
        if let (Some(origin), Some(forward)) = (ping_origin(id), &*self.forward.load()) {
            if origin != forward.name() {
                if forward.to_node(&origin, stanza.clone()).is_err() {
                    tracing::debug!(%origin, "checkpoint answer for a node not linked now: dropped");
                }
                return true;
            }
        }
        if let Some(remote_side) = &*self.remote.load() {
            remote_side.confirmed(local, remote, id);
        }
        true
    }

    /// A checkpoint answer another node handed over (its 'to' is the domain our ping was
    /// from, its 'from' the remote domain): to federation. Answers whether it was one.
    pub(super) fn forwarded_checkpoint_answer(&self, stanza: &Stanza) -> bool {
        let Some(id) = checkpoint_answer_id(stanza) else {
            return false;
        };
        if let (Some(local), Some(remote), Some(remote_side)) = (
            domain_of(stanza.to.as_deref()),
            domain_of(stanza.from.as_deref()),
            &*self.remote.load(),
        ) {
            remote_side.confirmed(&local, &remote, id);
        }
        true
    }
}

/// The id of the answer to one of our checkpoint pings (an iq result or error whose id
/// carries the checkpoint prefix), if `stanza` is one.
fn checkpoint_answer_id(stanza: &Stanza) -> Option<&str> {
    let id = stanza
        .id
        .as_deref()
        .filter(|id| id.starts_with(PING_ID_PREFIX))?;
    (stanza.kind == Kind::Iq && matches!(stanza.type_.as_deref(), Some("result" | "error")))
        .then_some(id)
}
