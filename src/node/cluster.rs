//! A node in a cluster: it joins (a lease, its name claimed), starts on the configuration
//! read whole from etcd, and from then on is handed each new version by the cluster agent
//! exactly as a reload hands it one; it tells the agent what it runs.

use std::path::Path;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::supervisor::Supervisor;
use super::StartError;
use crate::cluster::{Agent, Host, JoinError, Report, Running};
use crate::config::{Checked, ConfigErrors};
use crate::model::cluster::{ClusterView, InstanceRow};
use crate::restart::schedule::Clock;

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
        let views = agent.clone();
        let supervisor = match Supervisor::start_versioned(
            config,
            checked.version,
            agent.feed(),
            clock,
            Some(Arc::new(move || {
                let views = views.clone();
                Box::pin(async move { views.view().await }) as BoxFuture<'static, ClusterView>
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

/// The node as the cluster agent sees it.
struct NodeHost {
    supervisor: Supervisor,
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
}
