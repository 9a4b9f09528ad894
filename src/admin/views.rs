//! What the API answers, apart from HTTP: each view of the node as a [`crate::model`] type
//! or the refusal, so that the web console (`crate::console`) reads the very same answers
//! as the `xfed` subcommands, behind its own session instead of the bearer token.

use crate::model::ask::{ClusterConnections, ClusterEvents, FromNode, Question, Reply};
use crate::model::{
    Closed, ComponentRow, Connections, ConnectionsQuery, Events, EventsQuery, FailureRow, LogLevel,
    Refusal,
};
use crate::observe::{events, Event, Kind};
use crate::routing::ConnectionControl;
use crate::telemetry::LevelError;

use super::AdminState;

/// Why a view was refused, and so which HTTP status the API answers with.
#[derive(Debug)]
pub enum ViewError {
    /// A tenant, stream or other name that does not exist (404).
    NotFound(Refusal),
    /// A query that does not parse (400).
    BadRequest(Refusal),
    /// The node cannot do it now (503).
    Unavailable(Refusal),
    /// The cluster would not answer: outside one, or etcd out of reach (409).
    Conflict(Refusal),
}

impl ViewError {
    /// The refusal, whatever its kind.
    pub fn refusal(&self) -> &Refusal {
        match self {
            ViewError::NotFound(r)
            | ViewError::BadRequest(r)
            | ViewError::Unavailable(r)
            | ViewError::Conflict(r) => r,
        }
    }
}

impl AdminState {
    /// `GET /api/connections`: every s2s stream, and per domain pair the last failure.
    pub fn connections(&self, filter: &ConnectionsQuery) -> Result<Connections, ViewError> {
        let tenant = match filter.tenant.as_deref() {
            Some(name) => match self.tenants.load().iter().find(|(_, s)| s.name == name) {
                Some((_, slot)) => Some(slot.clone()),
                None => {
                    return Err(ViewError::NotFound(Refusal::new(format!(
                        "no tenant {name}"
                    ))))
                }
            },
            None => None,
        };
        let domain = filter.domain.as_deref().map(crate::config::domain_key);
        let failures = self
            .side
            .load()
            .federation
            .failures()
            .into_iter()
            .filter(|((l, r), _)| {
                tenant.as_ref().is_none_or(|t| t.view().owned.contains(l))
                    && domain.as_deref().is_none_or(|d| l == d || r == d)
            })
            .map(|((local, remote), f)| FailureRow {
                local,
                remote,
                condition: f.condition.as_str().to_owned(),
                reason: f.reason,
                at: f.at,
            })
            .collect();
        let links = self
            .tenants
            .load()
            .iter()
            .map(|(_, slot)| slot)
            .filter(|slot| {
                tenant
                    .as_ref()
                    .is_none_or(|t| std::sync::Arc::ptr_eq(t, slot))
            })
            .flat_map(|slot| {
                let view = slot.view();
                let owns = domain.as_deref().is_none_or(|d| view.owned.contains(d));
                let rows: Vec<ComponentRow> = if owns {
                    view.links
                        .iter()
                        .map(|l| ComponentRow {
                            tenant: slot.name.clone(),
                            id: l.id,
                            peer: l.peer,
                            stanzas_out: l.outbox.stanzas_written(),
                            queued_bytes: l.outbox.queued_bytes(),
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                rows
            })
            .collect();
        Ok(Connections {
            connections: self.streams(tenant.as_deref(), domain.as_deref()),
            failures,
            links,
        })
    }

    /// `GET /api/connections?cluster=true`: every alive node's streams and failures, node by
    /// node (a node that did not answer has its error instead).
    pub async fn cluster_connections(
        &self,
        mut filter: ConnectionsQuery,
    ) -> Result<ClusterConnections, ViewError> {
        filter.cluster = false;
        let nodes = self
            .gather(Question::Connections(filter), |r| match r {
                Reply::Connections(c) => Some(c),
                _ => None,
            })
            .await?;
        Ok(ClusterConnections { nodes })
    }

    /// `GET /api/events?cluster=true`: every alive node's event log.
    pub async fn cluster_events(
        &self,
        mut filter: EventsQuery,
    ) -> Result<ClusterEvents, ViewError> {
        filter.cluster = false;
        let nodes = self
            .gather(Question::Events(filter), |r| match r {
                Reply::Events(e) => Some(e),
                _ => None,
            })
            .await?;
        Ok(ClusterEvents { nodes })
    }

    /// Asks every alive node of the cluster through [`super::Control::gather`].
    /// Each node's answer is read as the kind `pick` takes (another kind, or a refusal,
    /// becomes that node's error).
    async fn gather<T>(
        &self,
        q: Question,
        pick: fn(Reply) -> Option<T>,
    ) -> Result<Vec<FromNode<T>>, ViewError> {
        let Some(control) = &self.control else {
            return Err(ViewError::Unavailable(Refusal::new(
                "this node runs without a restart scheduler",
            )));
        };
        let nodes = control.gather(q).await.map_err(ViewError::Conflict)?;
        Ok(nodes.into_iter().map(|n| n.pick(pick)).collect())
    }

    /// `POST /api/connections/{id}/close`: asks stream `id` to close gracefully.
    pub fn close(&self, id: u64) -> Result<Closed, ViewError> {
        let control = self
            .side
            .load()
            .context()
            .streams
            .get(&id)
            .map(|e| e.control.clone());
        match control {
            Some(control) => {
                control.do_send(ConnectionControl::Retire("operator"));
                Ok(Closed { closed: id })
            }
            None => Err(ViewError::NotFound(Refusal::new(format!(
                "no connection {id}"
            )))),
        }
    }

    /// `GET /api/events`: the event log, oldest first.
    pub fn events(&self, filter: &EventsQuery) -> Result<Events, ViewError> {
        let since = match filter
            .since
            .as_deref()
            .map(chrono::DateTime::parse_from_rfc3339)
        {
            None => None,
            Some(Ok(t)) => Some(t.with_timezone(&chrono::Utc)),
            Some(Err(e)) => {
                return Err(ViewError::BadRequest(Refusal::new(format!(
                    "since: not an RFC 3339 time: {e}"
                ))))
            }
        };
        let query = events::Query {
            since,
            tenant: filter.tenant.clone(),
            limit: filter.limit,
        };
        Ok(Events {
            events: self.observer.events.records(&query),
        })
    }

    /// `GET /api/log-level`.
    pub fn log_level(&self) -> Result<LogLevel, ViewError> {
        let (level, filter) = crate::telemetry::federation_level()
            .map_err(|e| ViewError::Unavailable(Refusal::new(e.to_string())))?;
        Ok(LogLevel {
            target: crate::telemetry::FEDERATION_TARGET.to_owned(),
            federation: level.unwrap_or_else(|| "default".into()),
            filter,
        })
    }

    /// `POST /api/log-level/{level}`: sets the federation log level, and logs that it did.
    pub fn set_log_level(&self, level: &str) -> Result<LogLevel, ViewError> {
        match crate::telemetry::set_federation_level(level) {
            Ok(filter) => {
                self.observer.events.record(
                    Event::new(Kind::LogLevel)
                        .field("target", crate::telemetry::FEDERATION_TARGET)
                        .field("level", level.to_ascii_lowercase()),
                );
                tracing::info!(level = %level, %filter, "federation log level changed");
                Ok(LogLevel {
                    target: crate::telemetry::FEDERATION_TARGET.to_owned(),
                    federation: level.to_ascii_lowercase(),
                    filter,
                })
            }
            Err(e @ LevelError::BadLevel(_)) => {
                Err(ViewError::BadRequest(Refusal::new(e.to_string())))
            }
            Err(e) => Err(ViewError::Unavailable(Refusal::new(e.to_string()))),
        }
    }
}
