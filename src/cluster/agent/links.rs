//! What the inter-node links need of etcd: the cluster key, which node holds links of
//! which tenant, and this node's own entries in that table.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use super::super::etcd::EtcdError;
use super::super::relay::table::Table;
use super::Agent;
use crate::model::cluster::TenantCounts;

impl Agent {
    /// The key nodes prove to each other on inter-node links: made by the first node that
    /// asks (32 random bytes, written only if absent), read by every other.
    pub async fn relay_key(&self) -> Result<Vec<u8>, EtcdError> {
        let key = self.inner.keys.relay_key();
        let ours: [u8; 32] = rand::random();
        let hex: String = ours.iter().map(|b| format!("{b:02x}")).collect();
        match self
            .inner
            .etcd
            .create(&key, hex.clone().into_bytes(), 0)
            .await?
        {
            None => Ok(hex.into_bytes()),
            Some(held) => Ok(held.value),
        }
    }

    /// Which nodes hold links of which tenant, as read now.
    pub async fn links(&self) -> Result<Table, EtcdError> {
        let folder = self.inner.keys.links();
        let range = self.inner.etcd.range(&folder).await?;
        Ok(Table::read(
            &folder,
            range
                .kvs
                .iter()
                .map(|kv| (kv.key.as_str(), kv.value.as_slice())),
        ))
    }

    /// Writes this node's entries in the link table to match `tenants` (those with a link
    /// up here), under the node's lease. A node that takes no inter-node links writes none:
    /// no other node could hand it anything.
    pub(super) async fn publish_links(&self, tenants: &[TenantCounts]) {
        let Some((_, advertise)) = self.inner.settings.relay else {
            return;
        };
        let advertise = self.advertised().unwrap_or(advertise);
        let want: BTreeSet<String> = if self.state().draining {
            BTreeSet::new()
        } else {
            tenants
                .iter()
                .filter(|t| t.links > 0)
                .map(|t| t.tenant.clone())
                .collect()
        };
        let have = self.state().links.clone();
        if want == have {
            return;
        }
        let me = &self.inner.settings.name;
        let lease = self.inner.lease.load(Ordering::Relaxed);
        let mut now = have.clone();
        for t in want.difference(&have) {
            let key = self.inner.keys.link(t, me);
            match self
                .inner
                .etcd
                .put(&key, advertise.to_string().into_bytes(), lease)
                .await
            {
                Ok(()) => {
                    now.insert(t.clone());
                }
                Err(e) => return self.unreachable(&e),
            }
        }
        for t in have.difference(&want) {
            match self.inner.etcd.delete(&self.inner.keys.link(t, me)).await {
                Ok(()) => {
                    now.remove(t);
                }
                Err(e) => return self.unreachable(&e),
            }
        }
        self.state().links = now;
    }

    /// This node drains (`on`): its entries in the link table go at once, its status says
    /// so, and this returns once the other nodes have read the table again (they hand it
    /// nothing more). Or it serves again: its entries come back with the next publishing.
    pub async fn set_draining(&self, on: bool) {
        self.state().draining = on;
        if !on {
            self.inner.publish_now.notify_one();
            return;
        }
        let (links, status) = {
            let mut state = self.state();
            let links = std::mem::take(&mut state.links);
            let status = state.status.clone().map(|mut s| {
                s.draining = true;
                s
            });
            (links, status)
        };
        let me = &self.inner.settings.name;
        for t in links {
            if let Err(e) = self.inner.etcd.delete(&self.inner.keys.link(&t, me)).await {
                // The entry goes with the lease if the node goes; meanwhile the others may
                // still hand it stanzas, which it sends on or returns.
                tracing::warn!(tenant = %t, "draining: cannot remove the link entry: {e}");
            }
        }
        if let Some(status) = status {
            let key = self.inner.keys.status(me);
            let value = serde_json::to_vec(&status).expect("a status serializes");
            let lease = self.inner.lease.load(Ordering::Relaxed);
            if self.inner.etcd.put(&key, value, lease).await.is_ok() {
                self.state().published = Some(status);
            }
        }
        tokio::time::sleep(super::super::relay::TABLE_READ_EVERY * 3).await;
    }

    /// Where this node took its inter-node listener, once bound (a `listen` on port 0 is
    /// advertised with the port it got).
    pub fn set_advertised(&self, addr: std::net::SocketAddr) {
        self.state().advertised = Some(addr);
    }

    fn advertised(&self) -> Option<std::net::SocketAddr> {
        self.state().advertised
    }

    /// `[cluster] listen`, if this node takes inter-node links.
    pub fn relay_listen(&self) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
        self.inner.settings.relay
    }
}
