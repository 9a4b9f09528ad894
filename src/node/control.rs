//! The supervisor as the admin API's [`Control`].

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::supervisor::Supervisor;
use crate::admin::{Answer, Control, Schedule};
use crate::model::{
    ClusterView, LastRun, Refusal, ReloadOutcome, RestartOutcome, RestartQuery, RestartStatus,
    StaleInstance,
};

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
        Box::pin(async move { read(Supervisor::reload(self).await) })
    }

    fn restart(&self, query: RestartQuery) -> Answer<'_, RestartOutcome> {
        Box::pin(async move { read(Supervisor::restart(self, query.tenant, query.dry_run).await) })
    }

    fn cluster(&self) -> BoxFuture<'_, Option<ClusterView>> {
        Box::pin(async move {
            match self.cluster_views() {
                Some(views) => Some(views().await),
                None => None,
            }
        })
    }
}

/// The supervisor's answer read into the admin model. It still writes its answers as JSON
/// of the model's shape (typing them there waits for the rework of how it takes
/// configurations); reading them here, once, makes a key it gets wrong an error the
/// operator sees instead of a blank.
fn read<T: DeserializeOwned>(answer: Result<Value, Value>) -> Result<T, Refusal> {
    let unreadable = |e: serde_json::Error| {
        tracing::error!(error = %e, "the supervisor's answer does not fit the admin API's model");
        Refusal::new(format!(
            "internal error: the supervisor's answer does not read: {e}"
        ))
    };
    match answer {
        Ok(v) => serde_json::from_value(v).map_err(unreadable),
        Err(v) => Err(serde_json::from_value(v).unwrap_or_else(unreadable)),
    }
}
