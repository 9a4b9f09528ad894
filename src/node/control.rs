//! The supervisor as the admin API's [`Control`].

use super::supervisor::Supervisor;
use crate::admin::{Answer, Control, Schedule};
use crate::model::ask::{FromNode, Question, Reply};
use crate::model::{
    ClusterView, DrainOutcome, DrainQuery, LastRun, Refusal, ReloadOutcome, RestartOutcome,
    RestartQuery, RestartStatus, StaleInstance,
};
use futures_util::future::BoxFuture;

impl Control for Supervisor {
    fn schedule(&self) -> Schedule {
        let view = self.view();
        let stale = view
            .versions
            .instances
            .iter()
            .filter(|(_, v)| v.is_stale())
            .map(|(i, v)| StaleInstance {
                instance: i.to_string(),
                applied: v.applied,
                latest: v.latest,
                pending: v.pending.clone(),
            })
            .collect();
        Schedule {
            restart: RestartStatus {
                delayed: view.delayed,
                schedule: view.schedule,
                next_run: view.next_run,
                last_run: view.last_run.map(|(at, outcome)| LastRun { at, outcome }),
                stale,
            },
            versions: view.versions,
        }
    }

    fn reload(&self) -> Answer<'_, ReloadOutcome> {
        Box::pin(Supervisor::reload(self))
    }

    fn restart(&self, query: RestartQuery) -> Answer<'_, RestartOutcome> {
        match self.cluster() {
            Some(cluster) => cluster.restart(query),
            None if query.node.is_some() => Box::pin(async {
                Err(Refusal::new(
                    "--node names a node of a cluster; this node is not in one",
                ))
            }),
            None => Box::pin(Supervisor::restart(self, query.tenant, query.dry_run)),
        }
    }

    fn drain(&self, query: DrainQuery) -> Answer<'_, DrainOutcome> {
        match (Supervisor::cluster(self), query.node) {
            (Some(cluster), Some(node)) if node != cluster.name() => cluster.drain(&node),
            (None, Some(_)) => Box::pin(async {
                Err(Refusal::new(
                    "--node names a node of a cluster; this node is not in one",
                ))
            }),
            _ => Box::pin(Supervisor::drain(self)),
        }
    }

    fn cluster(&self) -> BoxFuture<'_, Option<ClusterView>> {
        Box::pin(async move {
            match Supervisor::cluster(self) {
                Some(cluster) => Some(cluster.view().await),
                None => None,
            }
        })
    }

    fn gather(&self, question: Question) -> Answer<'_, Vec<FromNode<Reply>>> {
        match Supervisor::cluster(self) {
            Some(cluster) => cluster.gather(question),
            None => Box::pin(async { Err(Refusal::new("this node is not in a cluster")) }),
        }
    }
}
