//! The stream in the node's registry of live streams (what operators, restarts and shutdown
//! see), and the report of each domain pair authenticated on it.

use super::{Role, S2sStream};
use crate::observe::{Event, Kind};
use crate::routing::ConnectionControl;
use crate::s2s::auth::Mechanism;
use crate::s2s::{AuthedPair, Direction, FailureReport, StreamEntry};

impl S2sStream {
    /// Puts the stream in the node's registry (what operators and shutdown see).
    pub(super) fn register(&self, control: actix::Recipient<ConnectionControl>) {
        let (direction, pairs) = match &self.role {
            Role::Outbound {
                local,
                remote,
                mechanism,
                ..
            } => (
                Direction::Outgoing,
                vec![AuthedPair {
                    local: local.clone(),
                    remote: remote.clone(),
                    mechanism: *mechanism,
                }],
            ),
            // Pairs present at start came through SASL EXTERNAL during negotiation.
            Role::Inbound { authed, .. } => (
                Direction::Incoming,
                authed
                    .iter()
                    .map(|(l, r)| AuthedPair {
                        local: l.clone(),
                        remote: r.clone(),
                        mechanism: Mechanism::SaslExternal,
                    })
                    .collect(),
            ),
        };
        for pair in &pairs {
            self.authenticated(pair);
        }
        self.shared.streams.insert(
            self.id,
            StreamEntry {
                peer: self.peer,
                direction,
                tls: self
                    .tls
                    .as_ref()
                    .map(|t| (t.version.clone(), t.cipher.clone())),
                pairs,
                control,
                since: chrono::Utc::now(),
                outbox: self.outbox.clone(),
                stats: self.stats.clone(),
            },
        );
    }

    /// Reports a domain pair authenticated on this stream.
    fn authenticated(&self, pair: &AuthedPair) {
        let o = &self.shared.observer;
        let direction = match self.role {
            Role::Outbound { .. } => Direction::Outgoing,
            Role::Inbound { .. } => Direction::Incoming,
        };
        let mechanism = pair.mechanism.to_string();
        o.metrics
            .counter(
                "xfed_s2s_authenticated_total",
                &[
                    ("direction", direction.as_str()),
                    ("auth", pair.mechanism.label()),
                ],
            )
            .increment(1);
        o.events.record(
            Event::new(Kind::StreamAuthenticated)
                .tenant(self.shared.tenant_of(&pair.local).as_deref())
                .domains([&pair.local, &pair.remote])
                .field("stream", self.id)
                .field("direction", direction.as_str())
                .field("peer", self.peer.to_string())
                .field("auth", mechanism)
                .field("tls", self.tls.as_ref().map(|t| t.version.clone())),
        );
    }

    /// Adds a pair authenticated after the stream started (dialback, multiplexing).
    pub(super) fn add_pair(&self, pair: AuthedPair) {
        self.authenticated(&pair);
        if let Some(mut entry) = self.shared.streams.get_mut(&self.id) {
            entry.pairs.push(pair);
        }
    }

    /// Reports a pair the peer asked for on this inbound stream that did not authenticate.
    pub(super) fn pair_refused(&self, local: &str, remote: &str, condition: &str, reason: &str) {
        self.shared.report_failure(FailureReport {
            direction: Direction::Incoming,
            peer: Some(self.peer),
            local: Some(local),
            remote: Some(remote),
            condition,
            reason,
        });
    }
}
