//! The cluster's part of `xfed status`: the latest version, whether this node reaches etcd,
//! and every node that ever joined — alive or gone, the version it read, what is stale on
//! it, a version it refused, its links and streams per tenant.

use std::fmt::Write;

use super::{connections_of, events_of};
use crate::model::ask::{ClusterConnections, ClusterEvents, FromNode};
use crate::model::rollout::Rollout;
use crate::model::ClusterView;

/// `xfed restart` in a cluster: the rollout it asked for.
pub(super) fn rollout_started(r: &Rollout) -> String {
    let mut s = format!(
        "rolling restart {} asked: nodes in turn {}{}; the leader carries it out (xfed status follows it)\n",
        r.id,
        r.order.join(", "),
        r.tenant
            .as_deref()
            .map(|t| format!(", tenant {t} only"))
            .unwrap_or_default()
    );
    if r.order.is_empty() {
        s.push_str("no alive node to restart\n");
    }
    s
}

/// A rollout: who asked, each node's turn, the node whose turn it is.
fn rollout_lines(title: &str, r: &Rollout) -> String {
    let mut s = String::new();
    let only = r
        .tenant
        .as_deref()
        .map(|t| format!(", tenant {t}"))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "{title}: {} ({}{only}), started {}{}",
        r.id,
        r.why,
        r.started,
        r.finished
            .as_deref()
            .map(|f| format!(", finished {f}"))
            .unwrap_or_default()
    );
    for step in &r.steps {
        let _ = writeln!(
            s,
            "  {}: {} at {}{}",
            step.node,
            step.outcome.as_str(),
            step.at,
            if step.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", step.detail)
            }
        );
    }
    if let Some(c) = &r.current {
        let _ = writeln!(s, "  {}: restarting since {}", c.node, c.since);
    }
    let waiting: Vec<&str> = r
        .order
        .iter()
        .filter(|n| {
            !r.steps.iter().any(|s| &s.node == *n)
                && r.current.as_ref().is_none_or(|c| &c.node != *n)
        })
        .map(String::as_str)
        .collect();
    if !waiting.is_empty() && r.finished.is_none() {
        let _ = writeln!(s, "  waiting: {}", waiting.join(", "));
    }
    s
}

/// Nodes that did not answer a cluster-wide question, one line each.
fn silent<T>(nodes: &[FromNode<T>]) -> String {
    let mut s = String::new();
    for n in nodes.iter().filter(|n| n.answer.is_none()) {
        let _ = writeln!(
            s,
            "{}: no answer ({})",
            n.node,
            n.error.as_deref().unwrap_or("?")
        );
    }
    s
}

/// `xfed connections --cluster`: every alive node's streams with a NODE column.
pub fn cluster_connections_table(v: &ClusterConnections) -> String {
    let sets: Vec<_> = v
        .nodes
        .iter()
        .filter_map(|n| n.answer.as_ref().map(|c| (Some(n.node.as_str()), c)))
        .collect();
    let mut s = connections_of(&sets);
    s.push_str(&silent(&v.nodes));
    s
}

/// `xfed events --cluster`: every alive node's events, merged by time, with the node first.
pub fn cluster_events_table(v: &ClusterEvents) -> String {
    let mut events: Vec<_> = v
        .nodes
        .iter()
        .flat_map(|n| {
            n.answer
                .iter()
                .flatten()
                .map(move |e| (Some(n.node.as_str()), e))
        })
        .collect();
    events.sort_by_key(|(_, e)| e.time);
    let mut s = events_of(&events);
    s.push_str(&silent(&v.nodes));
    s
}

/// The cluster as the answering node sees it, after the node's own table.
pub(super) fn cluster_table(view: &ClusterView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\ncluster {}: version {} (pushed by {} at {})",
        view.prefix, view.version, view.pushed_by, view.pushed_at
    );
    if !view.etcd.reachable {
        let _ = writeln!(
            out,
            "etcd unreachable since {} ({}): serving on the last configuration read whole; other nodes as read at {}",
            view.etcd.unreachable_since.as_deref().unwrap_or("?"),
            view.etcd.error.as_deref().unwrap_or(""),
            view.etcd.read_at,
        );
    }
    let _ = writeln!(
        out,
        "leader (schedule and rolling restarts): {}",
        view.leader.as_deref().unwrap_or("none elected")
    );
    match &view.rollout {
        Some(r) => out.push_str(&rollout_lines("rolling restart in progress", r)),
        None => {
            let _ = writeln!(out, "rolling restart: none in progress");
        }
    }
    if let Some(r) = &view.last_rollout {
        out.push_str(&rollout_lines("last rolling restart", r));
    }
    for row in &view.nodes {
        let me = if row.name == view.this_node {
            " (this node)"
        } else {
            ""
        };
        let draining = row.status.as_ref().is_some_and(|s| s.draining);
        let state = if !row.alive {
            "gone".to_owned()
        } else if draining {
            "alive, drained: takes no new connections and no stanzas from the other nodes"
                .to_owned()
        } else if row.current(view.version) {
            format!("alive, on version {}", view.version)
        } else {
            let seen = row.status.as_ref().map_or(0, |s| s.seen);
            format!("alive, read version {seen}, stale")
        };
        let _ = writeln!(out, "  {}{me}: {state}", row.name);
        let Some(s) = &row.status else { continue };
        if let Some(r) = &s.refused {
            let _ = writeln!(
                out,
                "    refused version {}: {}",
                r.version,
                r.problems.join("; ")
            );
        }
        for i in &s.instances {
            let mark = if i.is_stale() {
                format!(" stale (runs {}): {}", i.applied, i.pending.join("; "))
            } else {
                String::new()
            };
            let _ = writeln!(out, "    {} version {}{mark}", i.instance, i.latest);
        }
        for t in &s.tenants {
            let _ = writeln!(
                out,
                "    tenant {}: {} link(s), {} stream(s)",
                t.tenant, t.links, t.streams
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cluster::{EtcdState, InstanceRow, NodeRow, NodeStatus, TenantCounts};

    #[test]
    fn every_node_shows_alive_or_gone_with_what_is_stale_on_it() {
        let status = |seen, applied| NodeStatus {
            seen,
            instances: vec![InstanceRow {
                instance: "tenant acme".into(),
                applied,
                latest: 7,
                pending: vec!["domains +acme.net".into()],
            }],
            tenants: vec![TenantCounts {
                tenant: "acme".into(),
                links: 2,
                streams: 1,
            }],
            streams: 1,
            refused: None,
            draining: false,
        };
        let row = |name: &str, alive, status| NodeRow {
            name: name.into(),
            alive,
            claim: None,
            status,
        };
        let view = ClusterView {
            prefix: "/xfed/prod".into(),
            this_node: "edge-1".into(),
            version: 7,
            pushed_by: "ops@admin1".into(),
            pushed_at: "2027-01-01T00:30:00Z".into(),
            etcd: EtcdState {
                reachable: false,
                unreachable_since: Some("2027-01-01T00:31:00Z".into()),
                error: Some("connection refused".into()),
                read_at: "2027-01-01T00:30:59Z".into(),
            },
            nodes: vec![
                row("edge-1", true, Some(status(7, 7))),
                row("edge-2", true, Some(status(7, 6))),
                row("edge-3", false, None),
            ],
            leader: None,
            rollout: None,
            last_rollout: None,
        };
        let text = cluster_table(&view);
        for line in [
            "cluster /xfed/prod: version 7 (pushed by ops@admin1 at 2027-01-01T00:30:00Z)",
            "etcd unreachable since 2027-01-01T00:31:00Z (connection refused)",
            "  edge-1 (this node): alive, on version 7",
            "    tenant acme version 7\n",
            "    tenant acme: 2 link(s), 1 stream(s)",
            "  edge-2: alive, read version 7, stale",
            "    tenant acme version 7 stale (runs 6): domains +acme.net",
            "  edge-3: gone",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
    }
}
