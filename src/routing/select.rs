//! Which of a tenant's links carries a stanza: rendezvous (highest-random-weight) hashing on
//! the sender's address. One sender always lands on the same link, so its order is kept;
//! when a link drops, only the senders it carried move, and they spread over the rest.

use std::hash::{Hash, Hasher};

use super::LinkHandle;

/// The links in the order to try them for stanzas from `sender`, best first.
pub fn ranked<'a>(links: &'a [LinkHandle], sender: &str) -> Vec<&'a LinkHandle> {
    let mut scored: Vec<(u64, &LinkHandle)> =
        links.iter().map(|l| (score(sender, l.id), l)).collect();
    scored.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
    scored.into_iter().map(|(_, l)| l).collect()
}

fn score(sender: &str, link: u64) -> u64 {
    // SipHash with fixed keys: stable across calls, which is all rendezvous needs.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sender.hash(&mut h);
    link.hash(&mut h);
    h.finish()
}
