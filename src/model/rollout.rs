//! A cluster's rolling restart (`P/rollout` in etcd, `cluster.rollout` in `xfed status`).

use serde::{Deserialize, Serialize};

use super::required;

/// A rolling restart: asked by an operator on any node or by the leader at a time of the
/// schedule, carried out by the leader one node at a time. It lives in etcd, so a new
/// leader finishes what a dead one began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// Unique: `r-<unix milliseconds>-<node that asked>`.
    pub id: String,
    /// Who asked: `operator on edge-2`, `schedule`.
    pub why: String,
    /// When it was asked, RFC 3339.
    pub started: String,
    /// Only this tenant's router instances.
    #[serde(deserialize_with = "required")]
    pub tenant: Option<String>,
    /// Only this node.
    #[serde(deserialize_with = "required")]
    pub node: Option<String>,
    /// The nodes in the order they are visited.
    pub order: Vec<String>,
    /// What each visited node came to, in order.
    pub steps: Vec<RolloutStep>,
    /// The node restarting now.
    #[serde(deserialize_with = "required")]
    pub current: Option<Current>,
    /// The leader that took the last step.
    #[serde(deserialize_with = "required")]
    pub leader: Option<String>,
    /// When the last node was done, RFC 3339; `None` while it runs.
    #[serde(deserialize_with = "required")]
    pub finished: Option<String>,
}

/// The node whose turn it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Current {
    pub node: String,
    /// Since when, RFC 3339.
    pub since: String,
    /// The tenants it restarts that had links up before: its turn ends when each has one
    /// again.
    pub links_back: Vec<String>,
}

/// One node's turn in a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStep {
    pub node: String,
    pub outcome: StepOutcome,
    /// When its turn ended, RFC 3339.
    pub at: String,
    /// What restarted, what timed out, why it failed.
    pub detail: String,
}

/// How a node's turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// Its stale instances restarted, run the latest version, and their links are back.
    Restarted,
    /// Nothing of it was stale: not touched.
    UpToDate,
    /// Its lease had run out: skipped.
    Gone,
    /// It did not report its instances current with their links back in time.
    TimedOut,
    /// It refused the restart (the refusal is the detail).
    Failed,
}

impl StepOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Restarted => "restarted",
            StepOutcome::UpToDate => "up to date",
            StepOutcome::Gone => "gone",
            StepOutcome::TimedOut => "timed out",
            StepOutcome::Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{round_trip, without};

    fn rollout() -> Rollout {
        Rollout {
            id: "r-1-edge-2".into(),
            why: "operator on edge-2".into(),
            started: "2027-01-01T00:30:00Z".into(),
            tenant: Some("acme".into()),
            node: None,
            order: vec!["edge-1".into(), "edge-2".into(), "edge-3".into()],
            steps: vec![RolloutStep {
                node: "edge-1".into(),
                outcome: StepOutcome::Restarted,
                at: "2027-01-01T00:30:04Z".into(),
                detail: "tenant acme".into(),
            }],
            current: Some(Current {
                node: "edge-2".into(),
                since: "2027-01-01T00:30:04Z".into(),
                links_back: vec!["acme".into()],
            }),
            leader: Some("edge-3".into()),
            finished: None,
        }
    }

    #[test]
    fn a_rollout_round_trips_and_its_nullable_keys_are_required() {
        let r = rollout();
        assert_eq!(round_trip(&r), r);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["steps"][0]["outcome"], "restarted");
        assert_eq!(json["current"]["node"], "edge-2");
        assert!(without(&r, "", "finished").contains("finished"));
        assert!(without(&r, "", "tenant").contains("tenant"));
    }
}
