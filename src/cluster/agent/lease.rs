//! The node's lease: renewed every third of its life, taken again with the node's name
//! when it ran out while etcd was away; and how the agent says whether etcd answers.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;

use super::super::etcd::EtcdError;
use super::{claim_json, Agent, RETRY};

impl Agent {
    pub(super) fn reachable(&self) {
        let mut state = self.state();
        if let Some((since, _)) = state.unreachable.take() {
            tracing::info!(since = %since, "etcd reachable again");
        }
    }

    pub(super) fn unreachable(&self, e: &EtcdError) {
        let mut state = self.state();
        match &mut state.unreachable {
            Some((_, why)) => *why = e.to_string(),
            None => {
                tracing::warn!("{e}: serving on the last configuration read whole");
                state.unreachable = Some((Utc::now(), e.to_string()));
            }
        }
    }

    /// Renews the lease every third of its life; when it expired (etcd was away longer),
    /// takes a new one and claims the name again. A renewal that failed is tried again
    /// after [`RETRY`], not a third of the lease later: one slow answer (a request waits
    /// up to two seconds) must not use up what is left of a short lease.
    pub(super) async fn keep_alive(self) {
        let every = (self.inner.settings.lease / 3).max(Duration::from_millis(500));
        let mut wait = every;
        loop {
            tokio::time::sleep(wait).await;
            wait = every;
            let lease = self.inner.lease.load(Ordering::Relaxed);
            match self.inner.etcd.keep_alive(lease).await {
                Ok(_) => self.reachable(),
                Err(EtcdError::LeaseExpired(_)) => {
                    self.reachable();
                    if let Err(e) = self.rejoin().await {
                        self.unreachable(&e);
                    }
                }
                Err(e) => {
                    self.unreachable(&e);
                    wait = RETRY.min(every);
                }
            }
        }
    }

    async fn rejoin(&self) -> Result<(), EtcdError> {
        let i = &self.inner;
        let lease = i.etcd.grant(i.settings.lease.as_secs()).await?;
        let key = i.keys.node(&i.settings.name);
        if let Some(held) = i.etcd.create(&key, claim_json(&i.claim), lease).await? {
            tracing::error!(
                holder = %String::from_utf8_lossy(&held.value),
                "lease expired while etcd was away, and another node took the name meanwhile"
            );
            let _ = i.etcd.revoke(lease).await;
            return Ok(());
        }
        i.lease.store(lease, Ordering::Relaxed);
        {
            let mut state = self.state();
            state.published = None;
            state.links.clear();
        }
        i.publish_now.notify_one();
        tracing::info!("lease renewed after etcd came back; name claimed again");
        Ok(())
    }
}
