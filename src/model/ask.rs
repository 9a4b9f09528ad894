//! What nodes of a cluster ask each other through etcd, and the answers of several nodes to
//! one question (`xfed restart --dry-run`, `xfed connections --cluster`, `xfed events
//! --cluster`).

use serde::{Deserialize, Serialize};

use super::events::EventRecord;
use super::query::{ConnectionsQuery, EventsQuery, RestartQuery};
use super::required;
use super::stream::Connections;

/// What one node asks another through etcd (`P/asks/<node>/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Question {
    /// Restart (or, as a dry run, describe) your stale instances.
    Restart(RestartQuery),
    Connections(ConnectionsQuery),
    Events(EventsQuery),
    /// Drain yourself (`xfed drain --node`).
    Drain,
}

/// A node's answer (`P/answers/<id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Restart(Box<super::change::RestartOutcome>),
    Connections(Connections),
    Events(Vec<EventRecord>),
    Drain(super::drain::DrainOutcome),
    /// It would not: why.
    Refused(String),
}

/// One node's part of a cluster-wide answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FromNode<T> {
    pub node: String,
    /// `None` when it did not answer (the error says why).
    #[serde(
        deserialize_with = "required",
        bound(deserialize = "T: Deserialize<'de>")
    )]
    pub answer: Option<T>,
    #[serde(deserialize_with = "required")]
    pub error: Option<String>,
}

impl FromNode<Reply> {
    /// The answer of the kind `pick` takes; a refusal or another kind becomes the error.
    pub fn pick<U>(self, pick: impl FnOnce(Reply) -> Option<U>) -> FromNode<U> {
        let (answer, error) = match self.answer {
            None => (None, self.error),
            Some(Reply::Refused(why)) => (None, Some(why)),
            Some(reply) => {
                let shown = format!("{reply:?}");
                match pick(reply) {
                    Some(u) => (Some(u), None),
                    None => (None, Some(format!("unexpected answer {shown:.80}"))),
                }
            }
        };
        FromNode {
            node: self.node,
            answer,
            error,
        }
    }
}

/// `GET /api/connections?cluster=true`: every live node's streams and failures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterConnections {
    pub nodes: Vec<FromNode<Connections>>,
}

/// `GET /api/events?cluster=true`: every live node's event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterEvents {
    pub nodes: Vec<FromNode<Vec<EventRecord>>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::round_trip;

    #[test]
    fn questions_and_replies_round_trip() {
        let q = Question::Restart(RestartQuery {
            tenant: Some("acme".into()),
            node: None,
            dry_run: true,
        });
        assert_eq!(round_trip(&q), q);
        let r = Reply::Refused("no tenant x".into());
        assert_eq!(round_trip(&r), r);
        let gathered = ClusterEvents {
            nodes: vec![FromNode {
                node: "edge-1".into(),
                answer: None,
                error: Some("no answer within 3 s".into()),
            }],
        };
        assert_eq!(round_trip(&gathered), gathered);
    }
}
