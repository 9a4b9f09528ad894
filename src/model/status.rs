//! `GET /api/status`: the node, its federation and restart schedule, and each tenant with
//! its version, links and stream counts.

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{required, time, ClusterView};

/// The node as `xfed status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// `[node] name`.
    pub node: String,
    /// The cluster as this node sees it; `null` on a node outside a cluster.
    #[serde(deserialize_with = "required")]
    pub cluster: Option<ClusterView>,
    /// The latest accepted configuration version.
    pub config_version: u64,
    /// `null` on a node that runs without a restart scheduler (tests).
    #[serde(deserialize_with = "required")]
    pub restart: Option<RestartStatus>,
    pub federation: NodeFederation,
    pub tenants: Vec<TenantStatus>,
}

/// Whether federation is on: for the node, or for one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FederationState {
    Active,
    Inactive,
}

impl FederationState {
    /// `Active` when `active`.
    pub fn of(active: bool) -> Self {
        if active {
            FederationState::Active
        } else {
            FederationState::Inactive
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FederationState::Active => "active",
            FederationState::Inactive => "inactive",
        }
    }
}

/// Whether something federates, and why (not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reach {
    pub state: FederationState,
    pub why: String,
}

/// The node's federation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFederation {
    #[serde(flatten)]
    pub reach: Reach,
    /// `[federation] security_mode`.
    pub security_mode: String,
}

/// The restart scheduler: when staged changes apply, and what is stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartStatus {
    /// `[restart] delayed`: changes wait for `xfed restart` or the schedule.
    pub delayed: bool,
    /// `[restart] schedule` as written (cron, UTC).
    pub schedule: String,
    #[serde(with = "time::rfc3339_or_null")]
    pub next_run: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "required")]
    pub last_run: Option<LastRun>,
    /// The router instances that run an older version than the latest.
    pub stale: Vec<StaleInstance>,
}

/// When the schedule last ran and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    #[serde(with = "time::rfc3339")]
    pub at: DateTime<Utc>,
    pub outcome: String,
}

/// A router instance running an older configuration version than the latest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleInstance {
    /// `node`, or `tenant NAME`.
    pub instance: String,
    pub applied: u64,
    pub latest: u64,
    /// What its restart would apply, one line per changed setting.
    pub pending: Vec<String>,
}

/// Whether an instance runs its latest configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionState {
    Current,
    Stale,
}

impl VersionState {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Current => "current",
            VersionState::Stale => "stale",
        }
    }
}

/// One tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantStatus {
    pub name: String,
    /// The configuration version its router runs.
    pub version: u64,
    pub latest_version: u64,
    /// Digest of its latest configuration; `null` once removed (it stops at its restart).
    #[serde(deserialize_with = "required")]
    pub digest: Option<String>,
    pub state: VersionState,
    /// What its restart would apply.
    pub pending: Vec<String>,
    pub federation: Reach,
    pub domains: Vec<String>,
    pub chat_node_aliases: Vec<String>,
    /// Its privacy mode (`off`, `allow-list`, `deny-list`).
    pub privacy: String,
    /// Its component links.
    pub links: Vec<LinkRow>,
    /// Live s2s streams carrying its domains, by direction.
    pub streams_in: usize,
    pub streams_out: usize,
}

/// One component link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRow {
    pub id: u64,
    pub peer: SocketAddr,
    /// Written to the link's queue and not yet to its socket.
    pub queued_bytes: usize,
    /// When its tenant saw it come up; absent (older nodes) is read as unknown.
    #[serde(default, with = "time::rfc3339_or_null")]
    pub since: Option<DateTime<Utc>>,
    /// Stanzas written to it (to the tenant's server) since it came up; absent is read as
    /// 0. What it sent is not counted per link (that would be on the reader's hot path).
    #[serde(default)]
    pub stanzas_out: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{renamed, round_trip, without};

    fn status() -> Status {
        let at = DateTime::parse_from_rfc3339("2027-01-01T00:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Status {
            node: "edge".into(),
            cluster: None,
            config_version: 3,
            restart: Some(RestartStatus {
                delayed: true,
                schedule: "0 30 0 * * *".into(),
                next_run: Some(at),
                last_run: Some(LastRun {
                    at,
                    outcome: "nothing was stale".into(),
                }),
                stale: vec![StaleInstance {
                    instance: "tenant acme".into(),
                    applied: 2,
                    latest: 3,
                    pending: vec!["secret changed".into()],
                }],
            }),
            federation: NodeFederation {
                reach: Reach {
                    state: FederationState::Active,
                    why: "accepting".into(),
                },
                security_mode: "tls-required".into(),
            },
            tenants: vec![TenantStatus {
                name: "acme".into(),
                version: 2,
                latest_version: 3,
                digest: None,
                state: VersionState::Stale,
                pending: vec!["secret changed".into()],
                federation: Reach {
                    state: FederationState::Inactive,
                    why: "privacy allow-list is empty".into(),
                },
                domains: vec!["acme.example".into()],
                chat_node_aliases: vec![],
                privacy: "allow-list".into(),
                links: vec![LinkRow {
                    id: 1,
                    peer: "127.0.0.1:40000".parse().unwrap(),
                    queued_bytes: 0,
                    since: Some(at),
                    stanzas_out: 12,
                }],
                streams_in: 1,
                streams_out: 0,
            }],
        }
    }

    #[test]
    fn status_round_trips_with_the_keys_the_api_has_always_served() {
        let s = status();
        assert_eq!(round_trip(&s), s);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["federation"]["state"], "active");
        assert_eq!(json["federation"]["security_mode"], "tls-required");
        assert_eq!(json["restart"]["next_run"], "2027-01-01T00:30:00+00:00");
        assert_eq!(json["tenants"][0]["state"], "stale");
        assert_eq!(json["tenants"][0]["federation"]["state"], "inactive");
        assert_eq!(json["tenants"][0]["links"][0]["peer"], "127.0.0.1:40000");
        let bare = Status {
            restart: None,
            ..status()
        };
        assert_eq!(round_trip(&bare), bare);
    }

    #[test]
    fn a_missing_or_renamed_status_key_is_an_error() {
        let s = status();
        assert!(without(&s, "", "restart").contains("restart"));
        assert!(without(&s, "", "cluster").contains("cluster"));
        assert!(without(&s, "/federation", "why").contains("why"));
        assert!(without(&s, "/restart", "next_run").contains("next_run"));
        assert!(without(&s, "/tenants/0", "digest").contains("digest"));
        assert!(renamed(&s, "/tenants/0", "streams_in", "s2s_in").contains("streams_in"));
    }

    #[test]
    fn a_link_row_from_an_older_node_reads_without_since_or_stanzas() {
        let row: LinkRow =
            serde_json::from_str(r#"{"id": 7, "peer": "127.0.0.1:1", "queued_bytes": 0}"#).unwrap();
        assert_eq!((row.since, row.stanzas_out), (None, 0));
        let json = serde_json::to_value(&status().tenants[0].links[0]).unwrap();
        assert_eq!(json["since"], "2027-01-01T00:30:00+00:00");
        assert_eq!(json["stanzas_out"], 12);
    }
}
