//! What a stream could not deliver for sure goes back to its domain pairs, ahead of anything
//! newer, and what a checkpoint confirms is let go.

use tokio::time::Instant;

use super::{Federation, Pair};
use crate::config::domain_of;
use crate::xmpp::{SendError, Stanza, StanzaCondition};

/// How many times a stanza goes out again after the stream that carried it ended before
/// acknowledging it; after that it is returned with `remote-server-timeout`.
const MAX_RESENDS: u8 = 1;

impl Federation {
    /// Stanzas a stream could not deliver for sure (never written, or, with stream
    /// management, not acknowledged): each goes back to its pair ahead of anything newer, to
    /// go out on the next stream. One that already went out again once is returned to its
    /// sender instead, so a stanza whose streams keep dying is not sent forever.
    pub(super) fn requeue(&self, stanzas: Vec<Stanza>) {
        let mut groups: Vec<((String, String), Vec<Stanza>)> = Vec::new();
        let mut given_up = Vec::new();
        for mut s in stanzas {
            let (Some(local), Some(remote)) =
                (domain_of(s.from.as_deref()), domain_of(s.to.as_deref()))
            else {
                continue;
            };
            if s.resends >= MAX_RESENDS {
                given_up.push(s);
                continue;
            }
            s.resends += 1;
            match groups
                .iter_mut()
                .find(|(k, _)| k.0 == local && k.1 == remote)
            {
                Some((_, group)) => group.push(s),
                None => groups.push(((local, remote), vec![s])),
            }
        }
        let metrics = &self.shared.observer.metrics;
        let resent: usize = groups.iter().map(|(_, g)| g.len()).sum();
        metrics
            .counter("xfed_s2s_resent_total", &[])
            .increment(resent as u64);
        for ((local, remote), group) in groups {
            self.put_front(&local, &remote, group);
        }
        if !given_up.is_empty() {
            metrics
                .counter("xfed_s2s_returned_unacknowledged_total", &[])
                .increment(given_up.len() as u64);
            self.bounce_all(
                given_up,
                StanzaCondition::RemoteServerTimeout,
                "the stream ended twice before the remote server acknowledged the stanza",
            );
        }
    }

    /// Puts `group` (oldest first) ahead of what waits for the pair's next stream.
    pub(super) fn put_front(&self, local: &str, remote: &str, group: Vec<Stanza>) {
        let pair = self.pair(local, remote);
        let mut state = pair.lock().unwrap_or_else(|e| e.into_inner());
        let bytes: usize = group.iter().map(|s| s.bytes.len()).sum();
        let mut bounced = Vec::new();
        match &mut *state {
            Pair::Connecting { queue, bytes: b } => {
                *b += bytes;
                for s in group.into_iter().rev() {
                    queue.push_front(s);
                }
            }
            Pair::Ready { outbox, .. } if !outbox.is_closed() => {
                // A new stream is up already: only what came after it can be ahead.
                for s in group {
                    if let Err(SendError::Full(s) | SendError::Closed(s)) = outbox.send(s) {
                        bounced.push(*s);
                    }
                }
            }
            Pair::Failed {
                until,
                condition,
                reason,
            } if Instant::now() < *until => {
                let (condition, reason) = (*condition, reason.clone());
                drop(state);
                return self.bounce_all(group, condition, &reason);
            }
            _ => {
                *state = Pair::Connecting {
                    queue: group.into(),
                    bytes,
                };
                drop(state);
                return self.start(local, remote);
            }
        }
        drop(state);
        self.bounce_all(
            bounced,
            StanzaCondition::ResourceConstraint,
            &format!("the stream to {remote} is not keeping up"),
        );
    }

    /// The answer to a checkpoint ping of the pair's stream: what it wrote before the ping
    /// arrived.
    pub(super) fn confirm(&self, local: &str, remote: &str, id: &str) {
        let Some(pair) = self.pairs.get(&(local.to_owned(), remote.to_owned())) else {
            return;
        };
        let state = pair.lock().unwrap_or_else(|e| e.into_inner());
        if let Pair::Ready { outbox, .. } = &*state {
            // A ping of an earlier stream, or a count that does not fit, confirms nothing.
            if let Some(h) = outbox.checkpoint().and_then(|c| c.ping_count(id)) {
                let _ = outbox.acknowledge(h);
            }
        }
    }
}
