//! `xfed drain`: a node taken out of service for maintenance, and what it did.

use serde::{Deserialize, Serialize};

use super::required;

/// `POST /api/drain`'s query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainQuery {
    /// In a cluster: the node to drain (this one when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// What a drained node did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainOutcome {
    pub node: String,
    /// Component links it closed: their servers reconnect to the other nodes.
    pub links_closed: usize,
    /// s2s streams it closed: remote servers find the other nodes by SRV.
    pub streams_closed: usize,
    /// How long it took to be idle, or to give up waiting.
    pub took_ms: u64,
    /// Nothing left on it: no link, no stream, nothing queued, nothing another node has
    /// yet to confirm.
    pub idle: bool,
    /// What was still there when it gave up waiting (`None` when idle).
    #[serde(deserialize_with = "required")]
    pub left: Option<String>,
}
