//! A node in a cluster: it joins (a lease, its name claimed), starts on the configuration
//! read whole from etcd, and from then on is handed each new version by the cluster agent
//! exactly as a reload hands it one; it tells the agent what it runs.

use std::path::Path;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::supervisor::{ClusterOps, Supervisor};
use super::StartError;
use crate::cluster::relay::Relay;
use crate::cluster::{Agent, Host, JoinError, Report, Running};
use crate::config::{Checked, ConfigErrors};
use crate::model::ask::{FromNode, Question, Reply};
use crate::model::cluster::{ClusterView, InstanceRow};
use crate::model::{DrainOutcome, Refusal, RestartOutcome, RestartQuery};
use crate::restart::schedule::{next_run, Clock};
use crate::routing::Forward;

/// Why a node of a cluster did not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterStartError {
    #[error(transparent)]
    Join(#[from] JoinError),
    /// The cluster's configuration, as this node would run it, is refused.
    #[error("{0}")]
    Refused(ConfigErrors),
    #[error(transparent)]
    Start(#[from] StartError),
    /// The inter-node links could not be set up (`[cluster] listen` taken, etcd lost).
    #[error("inter-node links: {0}")]
    Relay(String),
}

/// A running node of a cluster.
pub struct ClusterNode {
    pub supervisor: Supervisor,
    pub agent: Agent,
    running: Running,
}

impl ClusterNode {
    /// Joins the cluster named in the node's own file `local` and starts the node on the
    /// cluster's configuration.
    pub async fn start(local: &Path, clock: Arc<dyn Clock>) -> Result<Self, ClusterStartError> {
        let (agent, checked) = Agent::join(local).await?;
        let config = match checked.config {
            Ok(c) => c,
            Err(errs) => {
                agent.leave().await;
                return Err(ClusterStartError::Refused(errs));
            }
        };
        let relay = match start_relay(&agent).await {
            Ok(r) => r,
            Err(e) => {
                agent.leave().await;
                return Err(ClusterStartError::Relay(e));
            }
        };
        let supervisor = match Supervisor::start_versioned(
            config,
            checked.version,
            agent.feed(),
            clock.clone(),
            Some(Arc::new(Ops {
                agent: agent.clone(),
                relay,
            })),
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                agent.leave().await;
                return Err(e.into());
            }
        };
        let running = agent.run(Arc::new(NodeHost {
            supervisor: supervisor.clone(),
            clock,
        }));
        Ok(ClusterNode {
            supervisor,
            agent,
            running,
        })
    }

    /// The cluster as this node sees it.
    pub async fn view(&self) -> ClusterView {
        self.agent.view().await
    }

    /// Graceful shutdown: the node stops, then gives its lease back, so it leaves every
    /// view at once.
    pub async fn shutdown(self) {
        self.supervisor.shutdown().await;
        self.running.leave().await;
    }

    /// Stops as a crash would, for tests: nothing more is said to etcd, the node's keys stay
    /// until its lease runs out; the node itself shuts down.
    pub async fn crash(self) {
        self.running.abandon();
        self.supervisor.shutdown().await;
    }
}

/// Binds `[cluster] listen` (if set) and starts the node's side of the inter-node links.
async fn start_relay(agent: &Agent) -> Result<Arc<Relay>, String> {
    let listener = match agent.relay_listen() {
        Some((listen, advertise)) => {
            let l = std::net::TcpListener::bind(listen)
                .map_err(|e| format!("cluster.listen {listen}: {e}"))?;
            if advertise.port() == 0 {
                let bound = l.local_addr().map_err(|e| e.to_string())?;
                agent.set_advertised(std::net::SocketAddr::new(advertise.ip(), bound.port()));
            }
            Some(l)
        }
        None => {
            tracing::warn!("no [cluster] listen: this node forwards to the others but takes no stanzas from them, so tenants linked only here are unreachable through the other nodes");
            None
        }
    };
    Relay::start(agent, listener).await
}

/// The cluster as the node's admin API asks it.
struct Ops {
    agent: Agent,
    relay: Arc<Relay>,
}

/// How long a node waits for another to drain (its own bound is 30 s).
const DRAIN_WITHIN: std::time::Duration = std::time::Duration::from_secs(45);

/// How long a node waits for the others' connections or events.
const GATHER_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

impl ClusterOps for Ops {
    fn view(&self) -> BoxFuture<'static, ClusterView> {
        let agent = self.agent.clone();
        Box::pin(async move { agent.view().await })
    }

    fn restart(&self, q: RestartQuery) -> BoxFuture<'static, Result<RestartOutcome, Refusal>> {
        let agent = self.agent.clone();
        Box::pin(async move { agent.restart(q).await })
    }

    fn gather(&self, q: Question) -> BoxFuture<'static, Result<Vec<FromNode<Reply>>, Refusal>> {
        let agent = self.agent.clone();
        Box::pin(async move {
            agent
                .ask_all(&q, None, GATHER_WITHIN)
                .await
                .map_err(Refusal::new)
        })
    }

    fn forward(&self) -> Option<Arc<dyn Forward>> {
        Some(self.relay.clone())
    }

    fn draining(&self, on: bool) -> BoxFuture<'static, ()> {
        let agent = self.agent.clone();
        Box::pin(async move { agent.set_draining(on).await })
    }

    fn name(&self) -> String {
        self.agent.name().to_owned()
    }

    fn drain(&self, node: &str) -> BoxFuture<'static, Result<DrainOutcome, Refusal>> {
        let agent = self.agent.clone();
        let node = node.to_owned();
        Box::pin(async move {
            match agent.ask(&node, &Question::Drain, DRAIN_WITHIN).await {
                Ok(Reply::Drain(o)) => Ok(o),
                Ok(Reply::Refused(why)) => Err(Refusal::new(why)),
                Ok(other) => Err(Refusal::new(format!("{node} answered {other:?}"))),
                Err(e) => Err(Refusal::new(e)),
            }
        })
    }
}

/// The node as the cluster agent sees it.
struct NodeHost {
    supervisor: Supervisor,
    /// The node's clock, for the schedule when this node leads.
    clock: Arc<dyn Clock>,
}

impl Host for NodeHost {
    fn offer(&self, checked: Checked) -> BoxFuture<'static, Result<(), Vec<String>>> {
        let supervisor = self.supervisor.clone();
        Box::pin(async move {
            supervisor.offer(checked).await.map(drop).map_err(|e| {
                if e.problems.is_empty() {
                    vec![e.error]
                } else {
                    e.problems
                }
            })
        })
    }

    fn report(&self) -> BoxFuture<'static, Report> {
        let supervisor = self.supervisor.clone();
        Box::pin(async move {
            let view = supervisor.view();
            let instances = view
                .versions
                .instances
                .iter()
                .map(|(instance, v)| InstanceRow {
                    instance: instance.to_string(),
                    applied: v.applied,
                    latest: v.latest,
                    pending: v.pending.clone(),
                })
                .collect();
            let traffic = supervisor.traffic().await.unwrap_or_default();
            Report {
                instances,
                tenants: traffic.tenants,
                streams: traffic.streams,
            }
        })
    }

    fn answer(&self, question: Question) -> BoxFuture<'static, Reply> {
        let supervisor = self.supervisor.clone();
        Box::pin(async move {
            let refused = |r: Refusal| Reply::Refused(r.error);
            let admin = || {
                supervisor
                    .admin()
                    .ok_or_else(|| Refusal::new("this node's admin API is off"))
            };
            match question {
                Question::Restart(q) => supervisor
                    .restart(q.tenant, q.dry_run)
                    .await
                    .map_or_else(refused, |o| Reply::Restart(Box::new(o))),
                Question::Connections(q) => admin()
                    .and_then(|a| a.connections(&q).map_err(|e| e.refusal().clone()))
                    .map_or_else(refused, Reply::Connections),
                Question::Drain => supervisor.drain().await.map_or_else(refused, Reply::Drain),
                Question::Events(q) => admin()
                    .and_then(|a| a.events(&q).map_err(|e| e.refusal().clone()))
                    .map_or_else(refused, |e| Reply::Events(e.events)),
            }
        })
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn next_run(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let view = self.supervisor.view();
        if !view.delayed {
            return None;
        }
        let schedule = cron::Schedule::from_str(&view.schedule).ok()?;
        next_run(&schedule, after)
    }
}
