//! Stream management (XEP-0198) bookkeeping, both ends: what we sent and the peer has not
//! acknowledged yet, and what we handled of what the peer sent.
//!
//! Counters are the XEP's `h`: stanzas, modulo 2^32 (§5: "the value of 'h' ... wraps
//! around to zero"), so every comparison is made with wrapping arithmetic.

use std::collections::VecDeque;

use super::error::{AppCondition, StreamCondition, StreamError};
use super::stanza::Stanza;

/// The stream management namespace, XEP-0198 version 3.
pub const SM_NS: &str = "urn:xmpp:sm:3";

/// An ack request, `<r/>` (XEP-0198 §4).
pub const REQUEST: &str = "<r xmlns='urn:xmpp:sm:3'/>";

/// The peer acknowledged more than was sent: XEP-0198 §4 makes this a stream error,
/// `undefined-condition` with `<handled-count-too-high/>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the peer acknowledged {h} stanzas; {sent} were sent")]
pub struct TooHigh {
    pub h: u32,
    pub sent: u32,
}

impl TooHigh {
    /// The stream error it ends the stream with.
    pub fn stream_error(&self) -> StreamError {
        StreamError::new(StreamCondition::UndefinedCondition, self.to_string()).with_app(
            AppCondition::HandledCountTooHigh {
                h: self.h,
                sent: self.sent,
            },
        )
    }
}

/// Stanzas sent on a stream with stream management on, oldest first, until acknowledged.
#[derive(Debug, Default)]
pub struct Unacked {
    stanzas: VecDeque<Box<Stanza>>,
    /// Stanzas that were queued and never written, when the writer ended (they follow).
    unsent: Vec<Stanza>,
    /// The peer's last `h`: stanzas acknowledged since stream management was enabled.
    acked: u32,
    /// Stanzas sent since the last `<r/>`.
    since_request: u32,
    /// When the last `<r/>` went out (None: none yet).
    last_request: Option<tokio::time::Instant>,
    /// Since when the oldest stanza kept has waited without the peer confirming anything:
    /// set when one is kept with none before it, and at every confirmation that leaves
    /// some kept.
    waiting_since: Option<tokio::time::Instant>,
    /// Bytes of `stanzas`.
    bytes: usize,
}

impl Unacked {
    /// Records a stanza as sent. Answers whether an ack request is due (every `every`).
    pub fn sent(&mut self, stanza: Box<Stanza>, every: u32) -> bool {
        self.bytes += stanza.bytes.len();
        if self.stanzas.is_empty() {
            self.waiting_since = Some(tokio::time::Instant::now());
        }
        self.stanzas.push_back(stanza);
        self.since_request += 1;
        if self.since_request >= every {
            self.since_request = 0;
            return true;
        }
        false
    }

    /// Since when the peer has confirmed nothing while stanzas wait for it (None: none
    /// wait). Requests sent meanwhile do not count: a peer that stopped reading is stuck
    /// however often it is asked.
    pub fn waiting_since(&self) -> Option<tokio::time::Instant> {
        if self.stanzas.is_empty() {
            None
        } else {
            self.waiting_since
        }
    }

    /// Whether anything was sent since the last request.
    pub fn unrequested(&self) -> bool {
        self.since_request > 0
    }

    /// Counts a request as made now.
    pub fn requested(&mut self) {
        self.since_request = 0;
        self.last_request = Some(tokio::time::Instant::now());
    }

    /// Nothing is left for a request to cover (the peer confirmed everything unasked).
    pub fn covered(&mut self) {
        self.since_request = 0;
    }

    /// When a request for what was sent since the last one may go out, `spacing` after
    /// the last (None: now, none went out yet).
    pub fn next_request_at(&self, spacing: std::time::Duration) -> Option<tokio::time::Instant> {
        self.last_request.map(|at| at + spacing)
    }

    /// Whether a reader waits on what was sent since the last request: its reading is
    /// paused (flow control) until a confirmation gives its credit back.
    pub fn unrequested_hold_a_paused_reader(&self) -> bool {
        self.stanzas
            .iter()
            .rev()
            .take(self.since_request as usize)
            .any(|s| s.credit.as_ref().is_some_and(|c| c.reader_paused()))
    }

    /// Takes in the peer's `<a h=…/>`; answers the stanzas it confirms (oldest first).
    pub fn acknowledge(&mut self, h: u32) -> Result<Vec<Box<Stanza>>, TooHigh> {
        let newly = h.wrapping_sub(self.acked) as usize;
        if newly > self.stanzas.len() {
            return Err(TooHigh {
                h,
                sent: self.sent_count(),
            });
        }
        self.acked = h;
        if newly > 0 {
            self.waiting_since = Some(tokio::time::Instant::now());
        }
        let confirmed: Vec<Box<Stanza>> = self.stanzas.drain(..newly).collect();
        self.bytes -= confirmed.iter().map(|s| s.bytes.len()).sum::<usize>();
        Ok(confirmed)
    }

    /// Lets the oldest go, unconfirmed, while more than `cap` bytes are kept: a peer that
    /// does not answer checkpoints costs a bounded window, not memory without end.
    /// Answers how many were let go.
    pub fn release_over(&mut self, cap: usize) -> usize {
        let mut n = 0;
        while self.bytes > cap {
            let Some(s) = self.stanzas.pop_front() else {
                break;
            };
            self.bytes -= s.bytes.len();
            self.acked = self.acked.wrapping_add(1);
            n += 1;
        }
        n
    }

    /// The XEP's count of stanzas sent since enabling, modulo 2^32.
    pub fn sent_count(&self) -> u32 {
        self.acked.wrapping_add(self.stanzas.len() as u32)
    }

    /// Stanzas sent and not acknowledged.
    pub fn len(&self) -> usize {
        self.stanzas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stanzas.is_empty()
    }

    /// The peer's last `h`.
    pub fn acked(&self) -> u32 {
        self.acked
    }

    /// Gives back the readers' credit of every stanza kept (flow control: the peer is stuck,
    /// so they must not hold their readers back). Answers how many held some.
    pub fn let_readers_go(&mut self) -> usize {
        self.stanzas
            .iter_mut()
            .map(|s| usize::from(s.credit.take().is_some()))
            .sum()
    }

    /// Bytes of the stanzas not acknowledged.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keeps stanzas that were queued and never written (they follow the sent ones).
    pub fn extend(&mut self, unsent: impl IntoIterator<Item = Box<Stanza>>) {
        self.unsent.extend(unsent.into_iter().map(|s| *s));
    }

    /// Everything not acknowledged, oldest first: (written, never written).
    pub fn take(&mut self) -> (Vec<Stanza>, Vec<Stanza>) {
        self.bytes = 0;
        (
            self.stanzas.drain(..).map(|s| *s).collect(),
            std::mem::take(&mut self.unsent),
        )
    }
}

/// How an outbox that keeps what it writes has the peer confirm it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// XEP-0198: `<r/>`, answered with `<a h=…/>`.
    StreamManagement,
    /// An XEP-0199 ping from `from` to `to` whose id is `id_prefix` + the count of stanzas
    /// written before it: its answer proves the peer read everything before it (TCP keeps
    /// order), even on a stream without stream management.
    Ping {
        from: String,
        to: String,
        id_prefix: String,
    },
}

impl Checkpoint {
    /// Pings from `from` to `to` by node `origin`, with ids no other stream's pings share.
    /// The id names the node (hex, so any name fits an attribute): the answer comes back on
    /// the remote server's own stream, which may reach another node of a cluster, and that
    /// node hands it to this one ([`ping_origin`]).
    pub fn ping(from: &str, to: &str, origin: &str) -> Self {
        let hex: String = origin.bytes().map(|b| format!("{b:02x}")).collect();
        Checkpoint::Ping {
            from: from.to_owned(),
            to: to.to_owned(),
            id_prefix: format!("{PING_ID_PREFIX}{hex}.{:016x}-", rand::random::<u64>()),
        }
    }

    pub(super) fn request(&self, sent: u32) -> String {
        match self {
            Checkpoint::StreamManagement => REQUEST.to_owned(),
            Checkpoint::Ping {
                from,
                to,
                id_prefix,
            } => format!(
                "<iq type='get' from='{from}' to='{to}' id='{id_prefix}{sent}'><ping xmlns='urn:xmpp:ping'/></iq>"
            ),
        }
    }

    /// The count a ping answer with this `id` confirms, if the ping was ours.
    pub fn ping_count(&self, id: &str) -> Option<u32> {
        match self {
            Checkpoint::Ping { id_prefix, .. } => id.strip_prefix(id_prefix.as_str())?.parse().ok(),
            Checkpoint::StreamManagement => None,
        }
    }
}

/// The node that sent the checkpoint ping with this `id` (`None`: not such an id, or one
/// without a node, as older versions wrote them).
pub fn ping_origin(id: &str) -> Option<String> {
    let (hex, _) = id.strip_prefix(PING_ID_PREFIX)?.split_once('.')?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// Every checkpoint ping's id starts with this; their answers are ours, not a tenant's.
pub const PING_ID_PREFIX: &str = "xfed-ck-";

/// The receiving end: stanzas handled since we answered `<enabled/>`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Handled(u32);

impl Handled {
    pub fn count(&mut self) {
        self.0 = self.0.wrapping_add(1);
    }

    /// The answer to `<r/>`.
    pub fn answer(&self) -> String {
        format!("<a xmlns='{SM_NS}' h='{}'/>", self.0)
    }
}

#[cfg(test)]
#[path = "acks_tests.rs"]
mod tests;
