//! What a reload or a restart did (`POST /api/reload`, `POST /api/restart`), and how the API
//! says no.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::required;

/// One router instance a configuration change touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRow {
    /// `node`, or `tenant NAME`.
    pub instance: String,
    /// What applying it takes, in words.
    pub action: String,
    /// One line per changed setting, e.g. `domains +acme.net`.
    pub what: Vec<String>,
}

/// A change applied (or, in a dry run, that would be), with what it cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartRow {
    #[serde(flatten)]
    pub change: ChangeRow,
    /// Component links dropped.
    pub links: usize,
    /// s2s streams dropped.
    pub streams: usize,
}

/// `POST /api/reload`: the configuration read again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadOutcome {
    /// The latest configuration version (unchanged when nothing changed).
    pub version: u64,
    pub changes: Vec<ChangeRow>,
    /// The changes run now.
    pub applied: bool,
    /// The changes wait for `xfed restart` or the schedule (`[restart] delayed`).
    pub staged: bool,
    /// What restarted to apply them: present only when they were applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted: Option<Vec<RestartRow>>,
}

/// `POST /api/restart`: the stale instances restarted (or, in a dry run, what would be).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartOutcome {
    pub dry_run: bool,
    pub restarted: Vec<RestartRow>,
    /// The whole node restarts once this answer is sent; present only then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub node_restarting: bool,
    /// In a cluster's dry run: what each node would restart (then `restarted` is empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeRestart>,
    /// In a cluster: the rolling restart this request started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<super::rollout::Rollout>,
}

/// One node's part of a cluster's restart dry run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRestart {
    pub node: String,
    /// What would restart there, and what it would drop.
    pub restarted: Vec<RestartRow>,
    /// Why it did not answer.
    #[serde(deserialize_with = "required")]
    pub error: Option<String>,
}

/// Why the API did not do what was asked. A refused configuration lists its problems
/// (`file[:line]: key: reason`); other refusals have none, and then no `problems` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub error: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl Refusal {
    /// A refusal that is not about the configuration.
    pub fn new(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            problems: Vec::new(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{renamed, round_trip, without};

    fn row(links: usize) -> RestartRow {
        RestartRow {
            change: ChangeRow {
                instance: "tenant acme".into(),
                action: "restart the tenant's router (its links reconnect)".into(),
                what: vec!["domains +acme.net".into()],
            },
            links,
            streams: 0,
        }
    }

    #[test]
    fn outcomes_round_trip_with_the_keys_the_api_has_always_served() {
        let reloaded = ReloadOutcome {
            version: 2,
            changes: vec![row(0).change],
            applied: true,
            staged: false,
            restarted: Some(vec![row(1)]),
        };
        assert_eq!(round_trip(&reloaded), reloaded);
        let json = serde_json::to_value(&reloaded).unwrap();
        assert_eq!(json["restarted"][0]["instance"], "tenant acme");
        assert_eq!(json["restarted"][0]["links"], 1);

        let staged = ReloadOutcome {
            applied: false,
            staged: true,
            restarted: None,
            ..reloaded
        };
        assert_eq!(round_trip(&staged), staged);
        let json = serde_json::to_value(&staged).unwrap();
        assert!(json.get("restarted").is_none(), "{json}");

        let dry = RestartOutcome {
            dry_run: true,
            restarted: vec![row(1)],
            node_restarting: false,
            nodes: vec![],
            rollout: None,
        };
        assert_eq!(round_trip(&dry), dry);
        assert!(serde_json::to_value(&dry)
            .unwrap()
            .get("node_restarting")
            .is_none());
        let full = RestartOutcome {
            node_restarting: true,
            ..dry
        };
        assert_eq!(
            serde_json::to_value(&full).unwrap()["node_restarting"],
            true
        );
    }

    #[test]
    fn refusals_list_problems_only_when_there_are_some() {
        let bare = Refusal::new("no tenant nobody");
        assert_eq!(
            serde_json::to_string(&bare).unwrap(),
            r#"{"error":"no tenant nobody"}"#
        );
        assert_eq!(round_trip(&bare), bare);
        let refused = Refusal {
            error: "configuration refused: 1 problem(s)".into(),
            problems: vec!["router.toml:3: listen.s2s: invalid".into()],
        };
        assert_eq!(round_trip(&refused), refused);
    }

    #[test]
    fn a_missing_or_renamed_outcome_key_is_an_error() {
        let dry = RestartOutcome {
            dry_run: true,
            restarted: vec![row(1)],
            node_restarting: false,
            nodes: vec![],
            rollout: None,
        };
        assert!(without(&dry, "/restarted/0", "streams").contains("streams"));
        assert!(without(&dry, "/restarted/0", "what").contains("what"));
        assert!(renamed(&dry, "", "dry_run", "dry").contains("dry_run"));
        assert!(without(&Refusal::new("x"), "", "error").contains("error"));
    }
}
