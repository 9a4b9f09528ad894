//! The cluster's part of `xfed status`: the latest version, whether this node reaches etcd,
//! and every node that ever joined — alive or gone, the version it read, what is stale on
//! it, a version it refused, its links and streams per tenant.

use std::fmt::Write;

use crate::model::ClusterView;

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
    let _ = writeln!(out, "rolling restart: none in progress");
    for row in &view.nodes {
        let me = if row.name == view.this_node {
            " (this node)"
        } else {
            ""
        };
        let state = if !row.alive {
            "gone".to_owned()
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
            rollout: None,
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
