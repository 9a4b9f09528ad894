//! Which of a tenant's links carries a stanza: rendezvous (highest-random-weight) hashing on
//! the sender's address. One sender always lands on the same link, so its order is kept;
//! when a link drops, only the senders it carried move, and they spread over the rest.
//!
//! This runs once per stanza delivered to a tenant, so the usual case is one pass over the
//! links with a cheap mix per link; the others are ranked only when the best link turns out
//! to be closed.

use std::hash::{Hash, Hasher};

use super::LinkHandle;

/// The links in the order to try them for stanzas from `sender`, best first.
pub fn ranked<'a>(links: &'a [LinkHandle], sender: &str) -> Ranked<'a> {
    // SipHash with fixed keys: stable across calls, which is all rendezvous needs.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sender.hash(&mut h);
    Ranked {
        links,
        sender: h.finish(),
        state: State::Start,
    }
}

/// Links best first, computed as far as they are asked for.
pub struct Ranked<'a> {
    links: &'a [LinkHandle],
    /// The sender's hash, mixed with each link's id into that link's score.
    sender: u64,
    state: State<'a>,
}

enum State<'a> {
    /// Nothing handed out yet.
    Start,
    /// The best link (this id) was handed out.
    Best(u64),
    /// The others, worst first: handed out from the end.
    Rest(Vec<(u64, &'a LinkHandle)>),
}

impl<'a> Iterator for Ranked<'a> {
    type Item = &'a LinkHandle;

    fn next(&mut self) -> Option<&'a LinkHandle> {
        match &mut self.state {
            State::Start => {
                let best = self.links.iter().max_by_key(|l| score(self.sender, l.id))?;
                self.state = State::Best(best.id);
                Some(best)
            }
            State::Best(best) => {
                let best = *best;
                let mut rest: Vec<(u64, &LinkHandle)> = self
                    .links
                    .iter()
                    .filter(|l| l.id != best)
                    .map(|l| (score(self.sender, l.id), l))
                    .collect();
                rest.sort_unstable_by_key(|s| s.0);
                let next = rest.pop().map(|(_, l)| l);
                self.state = State::Rest(rest);
                next
            }
            State::Rest(rest) => rest.pop().map(|(_, l)| l),
        }
    }
}

/// The link's weight for this sender: splitmix64 of the two, so that each link wins for an
/// even share of senders.
fn score(sender: u64, link: u64) -> u64 {
    let mut z = sender ^ link.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::xmpp::{Outbox, Waits};

    fn links(n: u64) -> Vec<LinkHandle> {
        (0..n)
            .map(|i| LinkHandle {
                id: 1_000_003 * (i + 1),
                peer: ([127, 0, 0, 1], 7400).into(),
                outbox: Outbox::spawn(
                    tokio::io::sink(),
                    1 << 20,
                    Waits::new(Duration::from_secs(1), Duration::from_secs(1)),
                    |_| {},
                )
                .0,
            })
            .collect()
    }

    /// Every link is handed out once, in falling score order: the first is the one a
    /// sender sticks to, the others are its fail-over order.
    #[test]
    fn ranking_is_complete_and_best_first() {
        actix_rt::System::new().block_on(async {
            let links = links(7);
            for sender in ["a@x.example/r", "b@y.example", ""] {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                sender.hash(&mut h);
                let key = h.finish();
                let got: Vec<u64> = ranked(&links, sender).map(|l| l.id).collect();
                let mut ids: Vec<u64> = links.iter().map(|l| l.id).collect();
                ids.sort_by_key(|id| std::cmp::Reverse(score(key, *id)));
                assert_eq!(got, ids, "sender {sender:?}");
                let again: Vec<u64> = ranked(&links, sender).map(|l| l.id).collect();
                assert_eq!(got, again, "the same sender gets the same order");
            }
            assert_eq!(ranked(&[], "a@x.example").next().map(|l| l.id), None);
        });
    }

    /// Each of 8 links is first for a fair share of 8,000 senders.
    #[test]
    fn senders_spread_over_links() {
        actix_rt::System::new().block_on(async {
            let links = links(8);
            let mut wins = std::collections::HashMap::<u64, usize>::new();
            for i in 0..8_000 {
                let first = ranked(&links, &format!("user{i}@remote.example")).next();
                *wins.entry(first.map_or(0, |l| l.id)).or_default() += 1;
            }
            assert_eq!(wins.len(), 8, "{wins:?}");
            assert!(wins.values().all(|w| (700..1_300).contains(w)), "{wins:?}");
        });
    }
}
