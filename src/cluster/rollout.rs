//! The decisions of a rolling restart, as pure functions of the rollout and the nodes as
//! last read from etcd: which node's turn is next, whether a node's turn is over. The
//! leader (`agent/leader.rs`) carries them out; these are tested here with tables.
//!
//! The order is the nodes' names, sorted, as they were alive when the rollout was asked:
//! one node at a time, so a tenant whose servers hold links to two or more nodes always
//! keeps one up. A node is skipped when its lease ran out (it is gone) or nothing of it is
//! stale (nodes on the latest version are not touched).

use crate::model::cluster::{InstanceRow, NodeRow};
use crate::model::rollout::{Current, Rollout, StepOutcome};

/// What the leader does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Ask this node to restart its stale instances, then wait for its turn to end.
    Visit(String),
    /// Record this node's turn as over without asking it anything.
    Skip(String, StepOutcome),
    /// Every node had its turn.
    Done,
}

/// The nodes a rollout visits, in order: the alive ones, by name; only `only` when given.
pub fn order(nodes: &[NodeRow], only: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = nodes
        .iter()
        .filter(|n| n.alive && only.is_none_or(|o| o == n.name))
        .map(|n| n.name.clone())
        .collect();
    names.sort();
    names
}

/// The next step of `rollout` with the nodes as `nodes` shows them.
///
/// 1. Nodes that already had their turn are passed over.
/// 2. The node whose turn it is (`current`: a leader died in the middle of it) is visited
///    again, whatever it shows: asking it again restarts nothing that is current, and its
///    turn still ends only when its links are back.
/// 3. A node that is not alive is skipped as gone.
/// 4. A node with nothing stale (of the rollout's tenant, when it has one) is skipped as
///    up to date.
/// 5. Otherwise it is visited.
pub fn next(rollout: &Rollout, nodes: &[NodeRow]) -> Next {
    for name in &rollout.order {
        if rollout.steps.iter().any(|s| &s.node == name) {
            continue;
        }
        let row = nodes.iter().find(|n| &n.name == name);
        let alive = row.is_some_and(|r| r.alive);
        if rollout.current.as_ref().is_some_and(|c| &c.node == name) && alive {
            return Next::Visit(name.clone());
        }
        return match row {
            Some(r) if r.alive => {
                if stale(r, rollout.tenant.as_deref()).is_empty() {
                    Next::Skip(name.clone(), StepOutcome::UpToDate)
                } else {
                    Next::Visit(name.clone())
                }
            }
            _ => Next::Skip(name.clone(), StepOutcome::Gone),
        };
    }
    Next::Done
}

/// `node`'s stale instances, only `tenant`'s when given (a whole-node change restarts every
/// tenant, so it counts for any).
pub fn stale<'n>(node: &'n NodeRow, tenant: Option<&str>) -> Vec<&'n InstanceRow> {
    node.stale()
        .into_iter()
        .filter(|i| match tenant {
            None => true,
            Some(t) => i.instance == "node" || i.instance == format!("tenant {t}"),
        })
        .collect()
}

/// The turn of `node` as it begins: the tenants its restart drops that had links up.
pub fn begin(node: &NodeRow, tenant: Option<&str>, since: String) -> Current {
    let stale = stale(node, tenant);
    let whole = stale.iter().any(|i| i.instance == "node");
    let links_back = node
        .status
        .iter()
        .flat_map(|s| &s.tenants)
        .filter(|t| t.links > 0)
        .filter(|t| {
            whole
                || stale
                    .iter()
                    .any(|i| i.instance == format!("tenant {}", t.tenant))
        })
        .map(|t| t.tenant.clone())
        .collect();
    Current {
        node: node.name.clone(),
        since,
        links_back,
    }
}

/// Whether the turn `current` is over: its node reports nothing stale (of `tenant`) and a
/// link up again for each tenant that had one.
pub fn settled(current: &Current, nodes: &[NodeRow], tenant: Option<&str>) -> bool {
    let Some(row) = nodes.iter().find(|n| n.name == current.node && n.alive) else {
        return false;
    };
    let Some(status) = &row.status else {
        return false;
    };
    stale(row, tenant).is_empty()
        && current
            .links_back
            .iter()
            .all(|t| status.tenants.iter().any(|c| &c.tenant == t && c.links > 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cluster::{NodeStatus, TenantCounts};
    use crate::model::rollout::RolloutStep;

    /// A node: alive or not, its stale instances, its tenants' link counts.
    fn node(name: &str, alive: bool, stale: &[&str], links: &[(&str, usize)]) -> NodeRow {
        NodeRow {
            name: name.into(),
            alive,
            claim: None,
            status: alive.then(|| NodeStatus {
                seen: 9,
                instances: stale
                    .iter()
                    .map(|i| InstanceRow {
                        instance: (*i).into(),
                        applied: 8,
                        latest: 9,
                        pending: vec![],
                    })
                    .collect(),
                tenants: links
                    .iter()
                    .map(|(t, n)| TenantCounts {
                        tenant: (*t).into(),
                        links: *n,
                        streams: 0,
                    })
                    .collect(),
                streams: 0,
                refused: None,
                draining: false,
            }),
        }
    }

    fn rollout(tenant: Option<&str>, order: &[&str], done: &[&str]) -> Rollout {
        Rollout {
            id: "r".into(),
            why: "test".into(),
            started: "t".into(),
            tenant: tenant.map(Into::into),
            node: None,
            order: order.iter().map(|s| (*s).into()).collect(),
            steps: done
                .iter()
                .map(|n| RolloutStep {
                    node: (*n).into(),
                    outcome: StepOutcome::Restarted,
                    at: "t".into(),
                    detail: String::new(),
                })
                .collect(),
            current: None,
            leader: None,
            finished: None,
        }
    }

    #[test]
    fn the_order_is_the_alive_nodes_by_name() {
        let nodes = [
            node("edge-3", true, &[], &[]),
            node("edge-1", true, &[], &[]),
            node("edge-2", false, &[], &[]),
        ];
        assert_eq!(order(&nodes, None), ["edge-1", "edge-3"]);
        assert_eq!(order(&nodes, Some("edge-3")), ["edge-3"]);
        assert!(order(&nodes, Some("edge-2")).is_empty());
    }

    #[test]
    fn next_visits_stale_nodes_in_order_and_skips_the_gone_and_the_current() {
        let nodes = [
            node("a", true, &["tenant acme"], &[("acme", 1)]),
            node("b", false, &[], &[]),
            node("c", true, &["tenant globex"], &[]),
            node("d", true, &["node"], &[]),
        ];
        let order = ["a", "b", "c", "d"];
        let table: [(Option<&str>, &[&str], Next); 7] = [
            (None, &[], Next::Visit("a".into())),
            (None, &["a"], Next::Skip("b".into(), StepOutcome::Gone)),
            (None, &["a", "b"], Next::Visit("c".into())),
            // Only acme: c's stale globex is not the rollout's business.
            (
                Some("acme"),
                &["a", "b"],
                Next::Skip("c".into(), StepOutcome::UpToDate),
            ),
            // A whole-node change restarts acme too.
            (Some("acme"), &["a", "b", "c"], Next::Visit("d".into())),
            (None, &["a", "b", "c", "d"], Next::Done),
            // A node that is not in the order (joined later) is never visited.
            (Some("globex"), &["a", "b", "c", "d"], Next::Done),
        ];
        for (tenant, done, want) in table {
            assert_eq!(
                next(&rollout(tenant, &order, done), &nodes),
                want,
                "{tenant:?} {done:?}"
            );
        }
    }

    #[test]
    fn a_turn_begun_by_a_dead_leader_is_taken_up_again_even_when_the_node_is_current() {
        let nodes = [node("a", true, &[], &[("acme", 0)])];
        let mut r = rollout(Some("acme"), &["a"], &[]);
        assert_eq!(
            next(&r, &nodes),
            Next::Skip("a".into(), StepOutcome::UpToDate)
        );
        r.current = Some(Current {
            node: "a".into(),
            since: "t".into(),
            links_back: vec!["acme".into()],
        });
        assert_eq!(next(&r, &nodes), Next::Visit("a".into()));
        // Its links are not back: the turn goes on.
        assert!(!settled(r.current.as_ref().unwrap(), &nodes, Some("acme")));
    }

    #[test]
    fn a_turn_ends_when_nothing_is_stale_and_each_restarted_tenant_has_a_link_again() {
        let before = node("a", true, &["tenant acme"], &[("acme", 2), ("globex", 1)]);
        let turn = begin(&before, None, "t".into());
        assert_eq!(turn.links_back, ["acme"], "globex is not restarted");
        let whole = begin(
            &node(
                "a",
                true,
                &["node"],
                &[("acme", 2), ("globex", 1), ("x", 0)],
            ),
            None,
            "t".into(),
        );
        assert_eq!(
            whole.links_back,
            ["acme", "globex"],
            "a node restart drops all"
        );

        let cases = [
            (node("a", true, &["tenant acme"], &[("acme", 2)]), false),
            (node("a", true, &[], &[("acme", 0)]), false),
            (node("a", true, &[], &[]), false),
            (node("a", false, &[], &[]), false),
            (node("a", true, &[], &[("acme", 1), ("globex", 0)]), true),
            // Another tenant's staleness is not this turn's business.
            (node("a", true, &["tenant globex"], &[("acme", 1)]), true),
        ];
        for (now, want) in cases {
            assert_eq!(
                settled(&turn, std::slice::from_ref(&now), Some("acme")),
                want,
                "{now:?}"
            );
        }
    }
}
