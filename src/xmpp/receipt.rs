//! Receipts: when a stanza that another node handed us has left this node — written to its
//! destination's socket, or returned to its sender with an error — so that the node that
//! handed it over can forget it (a cluster's inter-node link confirms by this).
//!
//! Each stanza read from such a link carries a [`Receipt`] numbered in the order it was
//! read; the receipt fires when the last copy of the stanza is dropped. Stanzas leave in
//! any order (to different destinations), but a confirmation is a count, as in XEP-0198:
//! [`Receipts::handled`] is the length of the longest run of stanzas, from the first, that
//! have all left. A stanza still queued here is never confirmed, so a node that dies with it
//! leaves it with the node that sent it, which sends it again elsewhere.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// One inbound link's account of what it read and what has left since.
#[derive(Debug, Default)]
pub struct Receipts {
    state: Mutex<State>,
    /// Woken when the confirmed count grows.
    advanced: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Receipts issued so far (the last one's number).
    issued: u64,
    /// Every receipt up to this number has fired.
    handled: u64,
    /// Receipts that fired ahead of an earlier one still out.
    ahead: BTreeSet<u64>,
}

impl Receipts {
    pub fn new() -> Arc<Receipts> {
        Arc::new(Receipts::default())
    }

    /// The receipt of the next stanza read.
    pub fn issue(self: &Arc<Self>) -> Arc<Receipt> {
        let mut state = self.lock();
        state.issued += 1;
        Arc::new(Receipt {
            number: state.issued,
            owner: self.clone(),
        })
    }

    /// How many stanzas, counted from the first, have all left (XEP-0198's `h`, which
    /// wraps at 2^32).
    pub fn handled(&self) -> u32 {
        self.lock().handled as u32
    }

    /// Stanzas read and not yet confirmable.
    pub fn outstanding(&self) -> u64 {
        let state = self.lock();
        state.issued - state.handled
    }

    /// Waits until the confirmed count grows (or returns at once if it grew since the last
    /// wait ended).
    pub async fn advanced(&self) {
        self.advanced.notified().await;
    }

    fn fired(&self, number: u64) {
        let mut state = self.lock();
        if number != state.handled + 1 {
            state.ahead.insert(number);
            return;
        }
        state.handled = number;
        loop {
            let next = state.handled + 1;
            if !state.ahead.remove(&next) {
                break;
            }
            state.handled = next;
        }
        drop(state);
        self.advanced.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A stanza's place in its link's count; fires when dropped (shared by the stanza's copies
/// through an `Arc`, so it fires when the last copy goes).
pub struct Receipt {
    number: u64,
    owner: Arc<Receipts>,
}

impl Drop for Receipt {
    fn drop(&mut self) {
        self.owner.fired(self.number);
    }
}

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Receipt({})", self.number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The count confirms a run from the first: a stanza that left early waits for those
    /// before it, and is counted the moment they leave.
    #[test]
    fn the_count_is_the_run_of_stanzas_that_all_left() {
        let receipts = Receipts::new();
        let mut r: Vec<Option<Arc<Receipt>>> = (0..5).map(|_| Some(receipts.issue())).collect();
        assert_eq!((receipts.handled(), receipts.outstanding()), (0, 5));
        r[1] = None;
        r[2] = None;
        assert_eq!(receipts.handled(), 0, "the first is still here");
        r[0] = None;
        assert_eq!(receipts.handled(), 3);
        let copy = r[3].clone();
        r[3] = None;
        assert_eq!(receipts.handled(), 3, "a copy of the fourth is still here");
        drop(copy);
        assert_eq!((receipts.handled(), receipts.outstanding()), (4, 1));
        r[4] = None;
        assert_eq!((receipts.handled(), receipts.outstanding()), (5, 0));
    }

    #[test]
    fn an_advance_wakes_the_waiter() {
        actix_rt::System::new().block_on(async {
            let receipts = Receipts::new();
            let one = receipts.issue();
            let waiter = {
                let r = receipts.clone();
                actix_rt::spawn(async move { r.advanced().await })
            };
            tokio::task::yield_now().await;
            drop(one);
            tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                .await
                .expect("woken")
                .expect("the waiter ran");
        });
    }
}
