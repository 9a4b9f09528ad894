//! What the peer confirms: an outbox with a checkpoint (stream management, or pings) keeps
//! each stanza it wrote until the peer confirms it, asks for confirmations, and hands back
//! everything unconfirmed, in order, when its stream ends.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use super::{lock, Checkpoint, Out, Outbox, Stanza, TooHigh};

impl Outbox {
    /// How the peer confirms what this outbox writes, if it keeps it until then.
    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        self.shared.acks.as_ref().map(|a| &a.checkpoint)
    }

    /// Whether XEP-0198 stream management confirms what this outbox writes.
    pub fn is_acked(&self) -> bool {
        self.checkpoint() == Some(&Checkpoint::StreamManagement)
    }

    /// Stanzas written and not yet confirmed (0 without checkpoints).
    pub fn unacked(&self) -> usize {
        self.shared
            .acks
            .as_ref()
            .map_or(0, |a| lock(&a.retained).len())
    }

    /// Asks the peer to confirm what was written so far (the request follows it).
    pub fn ask(&self) -> bool {
        self.shared.push(Out::Ask).is_ok()
    }

    /// Takes in a confirmation that the peer read the first `h` stanzas (mod 2^32): they
    /// are let go. Answers how many, or the error when it confirms more than was sent.
    pub fn acknowledge(&self, h: u32) -> Result<usize, TooHigh> {
        let Some(acks) = &self.shared.acks else {
            return Ok(0);
        };
        let confirmed = lock(&acks.retained).acknowledge(h)?;
        if !confirmed.is_empty() {
            self.shared.stuck.store(false, Ordering::Release);
        }
        if acks.holds_back() {
            let bytes: usize = confirmed.iter().map(|s| s.bytes.len()).sum();
            self.shared.queued.fetch_sub(bytes, Ordering::AcqRel);
        }
        Ok(confirmed.len())
    }

    /// Everything the peer has not confirmed, oldest first: (written and unconfirmed,
    /// queued and never written). The queue takes no stanza after this (what is still
    /// queued of our own, such as a closing tag, is still written).
    pub fn take_unconfirmed(&self) -> (Vec<Stanza>, Vec<Stanza>) {
        let Some(acks) = &self.shared.acks else {
            return (Vec::new(), Vec::new());
        };
        let (written, mut unsent) = lock(&acks.retained).take();
        {
            let mut queue = self.shared.queue();
            self.shared.closed.store(true, Ordering::Release);
            let (stanzas, ours): (VecDeque<Out>, VecDeque<Out>) =
                queue.drain(..).partition(|o| matches!(o, Out::Stanza(_)));
            *queue = ours;
            unsent.extend(stanzas.into_iter().filter_map(|o| match o {
                Out::Stanza(s) => Some(*s),
                _ => None,
            }));
        }
        let counted = if acks.holds_back() {
            written.iter().chain(&unsent)
        } else {
            [].iter().chain(&unsent)
        };
        let bytes: usize = counted.map(|s| s.bytes.len()).sum();
        self.shared.queued.fetch_sub(bytes, Ordering::AcqRel);
        (written, unsent)
    }
}
