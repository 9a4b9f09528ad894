//! Following the configuration (each version read whole goes to the node, checked) and
//! publishing what the node runs under its lease.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::super::etcd::{EtcdError, Seen};
use super::super::snapshot::Snapshot;
use super::{Agent, Host, PUBLISH_EVERY, RETRY};
use crate::model::cluster::{NodeStatus, Refused};

impl Agent {
    /// Reads the configuration whenever its manifest changes, and hands each new version
    /// read whole to the node. Reads afresh after any failure, so nothing is missed.
    pub(super) async fn follow(self, host: Arc<dyn Host>) {
        loop {
            let revision = match self.catch_up(&host).await {
                Ok(r) => r,
                Err(e) => {
                    self.unreachable(&e);
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            let watch = self
                .inner
                .etcd
                .watch(&self.inner.keys.version(), revision + 1)
                .await;
            let mut watch = match watch {
                Ok(w) => w,
                Err(e) => {
                    self.unreachable(&e);
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            loop {
                match watch.next().await {
                    Ok(Some(Seen::Nothing)) => {}
                    Ok(Some(Seen::Changed(_) | Seen::Compacted)) => {
                        if let Err(e) = self.catch_up(&host).await {
                            self.unreachable(&e);
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.unreachable(&e);
                        break;
                    }
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Reads the configuration; a version newer than the last seen goes to the node.
    /// Answers the store's revision at the read, to watch from.
    async fn catch_up(&self, host: &Arc<dyn Host>) -> Result<i64, EtcdError> {
        let range = self.inner.etcd.range(&self.inner.keys.config()).await?;
        self.reachable();
        let snapshot = match Snapshot::read(&self.inner.keys, &range) {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(range.revision),
            Err(e) => {
                tracing::error!("{e}: not applied; the running configuration stays");
                return Ok(range.revision);
            }
        };
        let version = snapshot.version as u64;
        if version <= self.state().seen {
            return Ok(range.revision);
        }
        let checked = self.check(&snapshot);
        {
            let mut state = self.state();
            state.snapshot = Some(Arc::new(snapshot));
            state.seen = version;
            state.refused = None;
        }
        if let Err(problems) = host.offer(checked).await {
            tracing::warn!(
                version,
                "version refused by this node: {}",
                problems.join("; ")
            );
            self.state().refused = Some(Refused { version, problems });
        }
        self.inner.publish_now.notify_one();
        Ok(range.revision)
    }

    /// Writes what the node runs under its lease whenever it changes.
    pub(super) async fn publish(self, host: Arc<dyn Host>) {
        loop {
            let report = host.report().await;
            self.publish_links(&report.tenants).await;
            let status = {
                let mut state = self.state();
                let status = NodeStatus {
                    seen: state.seen,
                    instances: report.instances,
                    tenants: report.tenants,
                    streams: report.streams,
                    refused: state.refused.clone(),
                    draining: state.draining,
                };
                state.status = Some(status.clone());
                (state.published.as_ref() != Some(&status)).then_some(status)
            };
            if let Some(status) = status {
                let lease = self.inner.lease.load(Ordering::Relaxed);
                let key = self.inner.keys.status(&self.inner.settings.name);
                let value = serde_json::to_vec(&status).expect("a status serializes");
                match self.inner.etcd.put(&key, value, lease).await {
                    Ok(()) => {
                        self.reachable();
                        self.state().published = Some(status);
                    }
                    Err(e) => self.unreachable(&e),
                }
            }
            let _ = tokio::time::timeout(PUBLISH_EVERY, self.inner.publish_now.notified()).await;
        }
    }
}
