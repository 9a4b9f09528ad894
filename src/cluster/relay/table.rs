//! Which nodes hold links of which tenant, as they publish it in etcd
//! (`P/links/<tenant>/<node>`, each under its node's lease, holding the node's relay
//! address), and which of them takes a stanza from a given sender.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

/// A node holding links of a tenant, and where its inter-node links are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub node: String,
    pub addr: SocketAddr,
}

/// Tenant → the nodes holding links of it, at one read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Table {
    tenants: HashMap<String, Vec<Holder>>,
}

impl Table {
    /// From the keys under `links` (`P/links/`) and their values. Keys that do not parse
    /// are skipped with a warning (another version's keys, or a hand-made one).
    pub fn read<'a>(links: &str, kvs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Table {
        let mut tenants: HashMap<String, Vec<Holder>> = HashMap::new();
        for (key, value) in kvs {
            let parsed = key
                .strip_prefix(links)
                .and_then(|rest| rest.split_once('/'))
                .zip(
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<SocketAddr>().ok()),
                );
            match parsed {
                Some(((tenant, node), addr)) if !node.contains('/') => {
                    tenants.entry(tenant.to_owned()).or_default().push(Holder {
                        node: node.to_owned(),
                        addr,
                    })
                }
                _ => tracing::warn!(key, "not a link key of this version: skipped"),
            }
        }
        Table { tenants }
    }

    /// Every node named, once, with its address.
    pub fn nodes(&self) -> HashMap<&str, SocketAddr> {
        self.tenants
            .values()
            .flatten()
            .map(|h| (h.node.as_str(), h.addr))
            .collect()
    }

    /// The nodes other than `me` holding links of `tenant`, in the order to try them for
    /// stanzas from `sender`: rendezvous hashing, so one sender's stanzas take one node
    /// (their order is kept across the hop) while the table stands, and when a node goes
    /// only its senders move.
    pub fn ranked(&self, tenant: &str, me: &str, sender: &str) -> Vec<&Holder> {
        let Some(holders) = self.tenants.get(tenant) else {
            return Vec::new();
        };
        if holders.len() <= 2 && holders.iter().filter(|h| h.node != me).count() <= 1 {
            // One node to choose from: no ranking to do.
            return holders.iter().filter(|h| h.node != me).collect();
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        sender.hash(&mut h);
        let key = h.finish();
        let mut ranked: Vec<(u64, &Holder)> = holders
            .iter()
            .filter(|h| h.node != me)
            .map(|h| (score(key, &h.node), h))
            .collect();
        ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.node.cmp(&b.1.node)));
        ranked.into_iter().map(|(_, h)| h).collect()
    }
}

impl Table {
    /// Every node other than `me` listed, in the order to try them for stanzas from
    /// `sender` (for remote domains: any node can send them out).
    pub fn ranked_nodes(&self, me: &str, sender: &str) -> Vec<&str> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        sender.hash(&mut h);
        let key = h.finish();
        let mut nodes: Vec<(u64, &str)> = self
            .tenants
            .values()
            .flatten()
            .map(|h| h.node.as_str())
            .filter(|n| *n != me)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|n| (score(key, n), n))
            .collect();
        nodes.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        nodes.into_iter().map(|(_, n)| n).collect()
    }
}

fn score(sender: u64, node: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sender.hash(&mut h);
    node.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let kvs = [
            ("/x/links/acme/edge-1", "127.0.0.1:7501"),
            ("/x/links/acme/edge-2", "127.0.0.1:7502"),
            ("/x/links/acme/edge-3", "127.0.0.1:7503"),
            ("/x/links/globex/edge-1", "127.0.0.1:7501"),
            ("/x/links/bad", "127.0.0.1:7501"),
            ("/x/links/acme/edge-4", "not an address"),
        ];
        Table::read("/x/links/", kvs.iter().map(|(k, v)| (*k, v.as_bytes())))
    }

    #[test]
    fn keys_that_do_not_parse_are_skipped() {
        let t = table();
        assert_eq!(t.nodes().len(), 3);
        assert_eq!(t.ranked("acme", "none", "a@b").len(), 3);
        assert_eq!(t.ranked("initech", "none", "a@b").len(), 0);
    }

    /// A node never picks itself; one sender keeps its node; senders spread over nodes.
    #[test]
    fn one_sender_one_node_and_senders_spread() {
        let t = table();
        let mut firsts = HashMap::<String, usize>::new();
        for i in 0..3_000 {
            let sender = format!("user{i}@remote.example");
            let ranked = t.ranked("acme", "edge-1", &sender);
            assert_eq!(ranked.len(), 2);
            assert!(ranked.iter().all(|h| h.node != "edge-1"));
            assert_eq!(ranked, t.ranked("acme", "edge-1", &sender), "stable");
            *firsts.entry(ranked[0].node.clone()).or_default() += 1;
        }
        assert_eq!(firsts.len(), 2, "{firsts:?}");
        assert!(
            firsts.values().all(|n| (1_200..1_800).contains(n)),
            "{firsts:?}"
        );
        assert!(
            t.ranked("globex", "edge-1", "a@b").is_empty(),
            "only itself"
        );
    }
}
