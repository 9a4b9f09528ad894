//! A cluster (cargo feature `cluster`, docs/CLUSTER.md): what a node publishes about itself
//! under its lease (`P/nodes/<name>`, `P/status/<name>`), and the cluster-wide view any node
//! assembles from every node's keys, served as `GET /api/status`'s `cluster`. Plain types,
//! built with or without the feature, so a node outside a cluster answers `null`.

use serde::{Deserialize, Serialize};

use super::required;

/// `P/nodes/<name>`: a live node's claim on its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// When this run of the node started, RFC 3339.
    pub started: String,
    /// Its process id and host, to tell an operator which process holds the name.
    pub pid: u32,
    pub host: String,
    /// Where its admin API listens.
    pub admin: String,
}

/// `P/status/<name>`: what a node runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The latest cluster version the node read whole and checked (0: none yet).
    pub seen: u64,
    /// Each router instance (`node`, `tenant NAME`): its versions and what is pending.
    pub instances: Vec<InstanceRow>,
    /// Per tenant: component links up and s2s streams carrying its domains.
    pub tenants: Vec<TenantCounts>,
    /// s2s streams in all.
    pub streams: usize,
    /// The last version this node refused to run, and why (its own check of it failed).
    /// Absent is read as none (as first published).
    #[serde(default)]
    pub refused: Option<Refused>,
    /// Taken out of service (`xfed drain`): it takes no new connection and no stanza from
    /// the other nodes. Absent is read as not draining.
    #[serde(default)]
    pub draining: bool,
}

/// One router instance's versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRow {
    /// `node` or `tenant NAME`.
    pub instance: String,
    /// The version it runs.
    pub applied: u64,
    /// The latest version of its configuration.
    pub latest: u64,
    /// What changed since it last restarted, one line per setting; empty when current.
    pub pending: Vec<String>,
}

impl InstanceRow {
    pub fn is_stale(&self) -> bool {
        self.applied != self.latest
    }
}

/// One tenant's traffic on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantCounts {
    pub tenant: String,
    pub links: usize,
    pub streams: usize,
}

/// A version a node would not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    pub version: u64,
    pub problems: Vec<String>,
}

/// `xfed status`'s cluster part, as seen from one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// `[cluster] prefix`.
    pub prefix: String,
    /// The node answering.
    pub this_node: String,
    /// The latest pushed version (0: nothing pushed), as last read.
    pub version: u64,
    /// Who pushed it and when.
    pub pushed_by: String,
    pub pushed_at: String,
    /// Whether the answering node reaches etcd now.
    pub etcd: EtcdState,
    /// Every node that ever joined, by name.
    pub nodes: Vec<NodeRow>,
    /// The node that runs the schedule and rolling restarts (etcd's election), as last
    /// read; `None` while none is elected.
    #[serde(deserialize_with = "required")]
    pub leader: Option<String>,
    /// The rolling restart in progress.
    #[serde(deserialize_with = "required")]
    pub rollout: Option<super::rollout::Rollout>,
    /// The last one that finished.
    #[serde(deserialize_with = "required")]
    pub last_rollout: Option<super::rollout::Rollout>,
}

/// The answering node's link to etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdState {
    pub reachable: bool,
    /// Since when it is unreachable, RFC 3339 (`None` while reachable).
    #[serde(deserialize_with = "required")]
    pub unreachable_since: Option<String>,
    /// The last error, while unreachable.
    #[serde(deserialize_with = "required")]
    pub error: Option<String>,
    /// When the view of the other nodes was last read from etcd, RFC 3339.
    pub read_at: String,
}

/// One node in the view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRow {
    pub name: String,
    /// Its lease lives: it is running and reaches etcd.
    pub alive: bool,
    /// Its claim (started, process, admin address) while alive.
    #[serde(deserialize_with = "required")]
    pub claim: Option<Claim>,
    /// What it runs, while alive.
    #[serde(deserialize_with = "required")]
    pub status: Option<NodeStatus>,
}

impl NodeRow {
    /// Its stale instances (none known when it is gone).
    pub fn stale(&self) -> Vec<&InstanceRow> {
        self.status
            .iter()
            .flat_map(|s| &s.instances)
            .filter(|i| i.is_stale())
            .collect()
    }

    /// Whether it has read the cluster's latest version and runs it everywhere.
    pub fn current(&self, version: u64) -> bool {
        self.status
            .as_ref()
            .is_some_and(|s| s.seen == version && self.stale().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{round_trip, without};

    fn view() -> ClusterView {
        ClusterView {
            prefix: "/xfed/prod".into(),
            this_node: "edge-1".into(),
            version: 44,
            pushed_by: "ops@admin1".into(),
            pushed_at: "2027-01-01T00:30:00Z".into(),
            etcd: EtcdState {
                reachable: false,
                unreachable_since: Some("2027-01-01T00:31:00Z".into()),
                error: Some("connection refused".into()),
                read_at: "2027-01-01T00:30:59Z".into(),
            },
            nodes: vec![
                NodeRow {
                    name: "edge-1".into(),
                    alive: true,
                    claim: Some(Claim {
                        started: "2027-01-01T00:00:00Z".into(),
                        pid: 4242,
                        host: "edge1".into(),
                        admin: "127.0.0.1:7480".into(),
                    }),
                    status: Some(NodeStatus {
                        seen: 44,
                        instances: vec![InstanceRow {
                            instance: "tenant acme".into(),
                            applied: 41,
                            latest: 44,
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
                    }),
                },
                NodeRow {
                    name: "edge-2".into(),
                    alive: false,
                    claim: None,
                    status: None,
                },
            ],
            leader: Some("edge-1".into()),
            rollout: None,
            last_rollout: None,
        }
    }

    #[test]
    fn the_view_round_trips_with_the_keys_nodes_have_served() {
        let v = view();
        assert_eq!(round_trip(&v), v);
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["etcd"]["reachable"], false);
        assert_eq!(json["nodes"][0]["claim"]["pid"], 4242);
        assert_eq!(json["nodes"][0]["status"]["instances"][0]["applied"], 41);
        assert_eq!(
            json["nodes"][0]["status"]["refused"],
            serde_json::Value::Null
        );
        assert_eq!(json["nodes"][1]["status"], serde_json::Value::Null);
        assert_eq!(json["rollout"], serde_json::Value::Null);
    }

    #[test]
    fn a_missing_view_key_is_an_error_but_a_status_published_without_refused_reads() {
        let v = view();
        assert!(without(&v, "/etcd", "unreachable_since").contains("unreachable_since"));
        assert!(without(&v, "/nodes/1", "status").contains("status"));
        assert!(without(&v, "", "rollout").contains("rollout"));
        let mut published = serde_json::to_value(v.nodes[0].status.as_ref().unwrap()).unwrap();
        published.as_object_mut().unwrap().remove("refused");
        let read: NodeStatus = serde_json::from_value(published).unwrap();
        assert_eq!(read.refused, None);
    }

    #[test]
    fn a_node_is_current_when_it_read_the_latest_version_and_nothing_is_stale() {
        let v = view();
        assert_eq!(v.nodes[0].stale().len(), 1);
        assert!(!v.nodes[0].current(44));
        assert!(!v.nodes[1].current(44));
    }
}
