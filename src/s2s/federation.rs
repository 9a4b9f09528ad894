//! Routing's way to remote domains: one outbound stream per (local, remote) domain pair.
//! Stanzas queue in order while the stream is set up and go out when it is authenticated; if
//! it cannot be set up they return to their senders with the reason, and the failure is
//! remembered for a few jittered seconds so a burst does not hammer a dead server.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use actix::Addr;
use dashmap::DashMap;
use rand::Rng;
use tokio::time::Instant;

use super::stream::{AddLocal, Owner, S2sStream};
use super::S2sShared;
use crate::routing::Remote;
use crate::s2s::{Direction, FailureReport};
use crate::xmpp::{Outbox, SendError, Stanza, StanzaCondition};

#[path = "dial.rs"]
mod dial;
#[path = "requeue.rs"]
mod requeue;

/// The back-off after a failed attempt: this much, give or take a third.
const BACKOFF: Duration = Duration::from_secs(6);

/// The state of one (local, remote) pair.
enum Pair {
    /// No stream, no attempt under way.
    Idle,
    /// A stream is being set up; stanzas wait here in order.
    Connecting {
        queue: VecDeque<Stanza>,
        /// Bytes in `queue`, bounded like a connection's queue.
        bytes: usize,
    },
    /// Authenticated: stanzas go straight into the stream's outbox.
    Ready {
        stream: u64,
        outbox: Outbox,
        /// The stream's actor, when more local domains may join it (dialback streams).
        joinable: Option<Addr<S2sStream>>,
    },
    /// The last attempt failed; until then stanzas bounce at once with the same reason.
    Failed {
        until: Instant,
        condition: StanzaCondition,
        reason: String,
    },
}

/// The last failure of a domain pair, as operators see it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub condition: StanzaCondition,
    pub reason: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The node's outbound federation.
pub struct Federation {
    shared: Arc<S2sShared>,
    pairs: DashMap<(String, String), Arc<Mutex<Pair>>>,
    /// The local domains that have a pair with each remote domain: a new pair looks for a
    /// stream to join among these, not among every pair of the node.
    locals_by_remote: DashMap<String, Vec<String>>,
    /// The last failure of each (local, remote) pair that ever failed.
    failures: DashMap<(String, String), Failure>,
    /// Ourselves, for the tasks and streams we start.
    me: Weak<Federation>,
}

impl Federation {
    pub fn new(shared: Arc<S2sShared>) -> Arc<Self> {
        Arc::new_cyclic(|me| Federation {
            shared,
            pairs: DashMap::new(),
            locals_by_remote: DashMap::new(),
            failures: DashMap::new(),
            me: me.clone(),
        })
    }

    pub fn context(&self) -> &Arc<S2sShared> {
        &self.shared
    }

    fn pair(&self, local: &str, remote: &str) -> Arc<Mutex<Pair>> {
        let mut created = false;
        let pair = self
            .pairs
            .entry((local.to_owned(), remote.to_owned()))
            .or_insert_with(|| {
                created = true;
                Arc::new(Mutex::new(Pair::Idle))
            })
            .clone();
        if created {
            self.locals_by_remote
                .entry(remote.to_owned())
                .or_default()
                .push(local.to_owned());
        }
        pair
    }

    /// Gets a pair authenticated: on a stream to the same remote domain that another local
    /// domain already authenticated by dialback, when that one presents the same
    /// certificate; else on a new stream.
    fn start(&self, local: &str, remote: &str) {
        let tls = self.shared.tls.load();
        let my_cert = tls.client_for(local);
        let my_tenant = self.shared.tenant_of(local);
        let same_cert = |other: &str| Arc::ptr_eq(&tls.client_for(other), &my_cert);
        let others = self
            .locals_by_remote
            .get(remote)
            .map(|locals| locals.clone())
            .unwrap_or_default();
        let candidates: Vec<Arc<Mutex<Pair>>> = others
            .iter()
            .filter(|other| {
                *other != local
                    && same_cert(other)
                    // A stream serves one tenant, so a change to one never closes another's.
                    && self.shared.tenant_of(other) == my_tenant
            })
            .filter_map(|other| {
                let pair = self.pairs.get(&(other.clone(), remote.to_owned()))?;
                Some(pair.value().clone())
            })
            .collect();
        for pair in candidates {
            let state = pair.lock().unwrap_or_else(|e| e.into_inner());
            if let Pair::Ready {
                joinable: Some(addr),
                outbox,
                ..
            } = &*state
            {
                if !outbox.is_closed() {
                    addr.do_send(AddLocal(local.to_owned()));
                    return;
                }
            }
        }
        self.dial(local, remote);
    }

    /// Starts setting up a new stream for a pair, on the worker that asked (that of the
    /// component link whose stanza needs it) or, from elsewhere, the next worker.
    fn dial(&self, local: &str, remote: &str) {
        let me = self.me.clone();
        let (local, remote) = (local.to_owned(), remote.to_owned());
        self.shared.workers.spawn_here(move || async move {
            let Some(fed) = me.upgrade() else { return };
            let result = fed.connect(&local, &remote).await;
            match result {
                Ok((stream, outbox, joinable)) => {
                    fed.ready(&local, &remote, stream, outbox, joinable)
                }
                Err(e) => fed.failed(&local, &remote, e.condition(), e.to_string()),
            }
        });
    }

    /// Forgets the back-off of every failed pair from `local`: its configuration changed,
    /// so the next stanza tries again at once.
    pub fn forget_failures(&self, local: &str) {
        for e in self.pairs.iter().filter(|e| e.key().0 == local) {
            let mut state = e.value().lock().unwrap_or_else(|e| e.into_inner());
            if matches!(&*state, Pair::Failed { .. }) {
                *state = Pair::Idle;
            }
        }
    }

    /// Bytes of stanzas waiting for streams being set up.
    pub fn pending_bytes(&self) -> usize {
        self.pairs
            .iter()
            .map(
                |e| match &*e.value().lock().unwrap_or_else(|e| e.into_inner()) {
                    Pair::Connecting { bytes, .. } => *bytes,
                    _ => 0,
                },
            )
            .sum()
    }

    /// The last failure of every pair that ever failed: ((local, remote), failure).
    pub fn failures(&self) -> Vec<((String, String), Failure)> {
        self.failures
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect()
    }

    fn failed(&self, local: &str, remote: &str, condition: StanzaCondition, reason: String) {
        tracing::info!(%local, %remote, %condition, %reason, "federation with remote domain failed");
        self.shared.report_failure(FailureReport {
            direction: Direction::Outgoing,
            peer: None,
            local: Some(local),
            remote: Some(remote),
            condition: condition.as_str(),
            reason: &reason,
        });
        self.failures.insert(
            (local.to_owned(), remote.to_owned()),
            Failure {
                condition,
                reason: reason.clone(),
                at: chrono::Utc::now(),
            },
        );
        let pair = self.pair(local, remote);
        let queue = {
            let mut state = pair.lock().unwrap_or_else(|e| e.into_inner());
            let jitter = rand::rng().random_range(0.67..1.33);
            match std::mem::replace(
                &mut *state,
                Pair::Failed {
                    until: Instant::now() + BACKOFF.mul_f64(jitter),
                    condition,
                    reason: reason.clone(),
                },
            ) {
                Pair::Connecting { queue, .. } => queue,
                _ => VecDeque::new(),
            }
        };
        self.bounce_all(queue.into_iter().collect(), condition, &reason);
    }

    fn bounce_all(&self, stanzas: Vec<Stanza>, condition: StanzaCondition, reason: &str) {
        let Some(router) = self.shared.router.upgrade() else {
            return;
        };
        for s in stanzas {
            router.bounce(&s, condition, reason, None);
        }
    }
}

impl Owner for Federation {
    fn ready(
        &self,
        local: &str,
        remote: &str,
        stream: u64,
        outbox: Outbox,
        joinable: Option<Addr<S2sStream>>,
    ) {
        let pair = self.pair(local, remote);
        let mut bounced = Vec::new();
        {
            let mut state = pair.lock().unwrap_or_else(|e| e.into_inner());
            let queue = match std::mem::replace(&mut *state, Pair::Idle) {
                Pair::Connecting { queue, .. } => queue,
                _ => VecDeque::new(),
            };
            for stanza in queue {
                if let Err(SendError::Full(s) | SendError::Closed(s)) = outbox.send(stanza) {
                    bounced.push(*s);
                }
            }
            *state = Pair::Ready {
                stream,
                outbox,
                joinable,
            };
        }
        self.bounce_all(
            bounced,
            StanzaCondition::RemoteServerTimeout,
            "the stream closed before the stanza was sent",
        );
    }

    /// Multiplexing a pair failed: it gets a stream of its own, its queue kept.
    fn multiplex_failed(&self, local: &str, remote: &str) {
        self.dial(local, remote);
    }

    /// A stream ended: the pair's next stanza opens a new one.
    fn stream_closed(&self, local: &str, remote: &str, stream: u64) {
        if let Some(pair) = self.pairs.get(&(local.to_owned(), remote.to_owned())) {
            let mut state = pair.lock().unwrap_or_else(|e| e.into_inner());
            if matches!(&*state, Pair::Ready { stream: s, .. } if *s == stream) {
                *state = Pair::Idle;
            }
        }
    }

    fn hand_back(&self, stanzas: Vec<Stanza>) {
        // A draining node dials no new stream: routing hands them to another node.
        match self.shared.router.upgrade() {
            Some(router) if router.is_draining() => router.reroute(stanzas),
            _ => self.requeue(stanzas),
        }
    }
}

impl Remote for Federation {
    fn confirmed(&self, local: &str, remote: &str, id: &str) {
        self.confirm(local, remote, id);
    }

    fn send(&self, local: &str, remote: &str, stanza: Stanza) {
        let pair = self.pair(local, remote);
        let mut state = pair.lock().unwrap_or_else(|e| e.into_inner());
        let bounce = match &mut *state {
            Pair::Ready { outbox, .. } => match outbox.send(stanza) {
                Ok(()) => None,
                Err(SendError::Closed(s)) => {
                    // The stream is gone: this stanza starts the next one.
                    *state = Pair::Connecting {
                        bytes: s.bytes.len(),
                        queue: VecDeque::from([*s]),
                    };
                    drop(state);
                    return self.start(local, remote);
                }
                Err(SendError::Full(s)) => Some((
                    *s,
                    StanzaCondition::ResourceConstraint,
                    format!("the stream to {remote} is not keeping up"),
                )),
            },
            Pair::Connecting { queue, bytes } => {
                if *bytes + stanza.bytes.len() > self.shared.limits.queue_bytes_per_connection {
                    Some((
                        stanza,
                        StanzaCondition::ResourceConstraint,
                        format!("too many stanzas waiting for the stream to {remote}"),
                    ))
                } else {
                    *bytes += stanza.bytes.len();
                    queue.push_back(stanza);
                    None
                }
            }
            Pair::Failed {
                until,
                condition,
                reason,
            } if Instant::now() < *until => Some((stanza, *condition, reason.clone())),
            Pair::Failed { .. } | Pair::Idle => {
                *state = Pair::Connecting {
                    bytes: stanza.bytes.len(),
                    queue: VecDeque::from([stanza]),
                };
                drop(state);
                return self.start(local, remote);
            }
        };
        drop(state);
        if let Some((s, condition, reason)) = bounce {
            self.bounce_all(vec![s], condition, &reason);
        }
    }
}
