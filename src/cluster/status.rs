//! What a node publishes about itself under its lease (`P/status/<name>`), and the
//! cluster-wide view any node assembles from every node's keys for `xfed status`.

use serde::{Deserialize, Serialize};

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
    #[serde(default)]
    pub refused: Option<Refused>,
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
    /// The rolling restart in progress (not yet: issue 13, part 2).
    pub rollout: Option<String>,
}

/// The answering node's link to etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdState {
    pub reachable: bool,
    /// Since when it is unreachable, RFC 3339 (`None` while reachable).
    pub unreachable_since: Option<String>,
    /// The last error, while unreachable.
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
    pub claim: Option<Claim>,
    /// What it runs, while alive.
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
