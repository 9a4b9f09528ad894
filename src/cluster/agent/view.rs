//! The cluster-wide view a node answers for `xfed status`: every node's keys as read from
//! etcd, this node's own row as it knows it now.

use chrono::{SecondsFormat, Utc};

use super::super::etcd::{EtcdError, Range};
use super::super::keys::Keys;
use super::Agent;
use crate::model::cluster::{ClusterView, EtcdState, NodeRow};

impl Agent {
    /// The cluster as this node sees it now: every node's keys read from etcd, or, while
    /// etcd does not answer, as last read (and saying so).
    pub async fn view(&self) -> ClusterView {
        match self.read_rows().await {
            Ok(rows) => {
                self.reachable();
                let mut state = self.state();
                state.rows = rows;
                state.read_at = Some(Utc::now());
            }
            Err(e) => self.unreachable(&e),
        }
        let (leader, rollout, last_rollout) = self.rollouts().await.unwrap_or_default();
        let state = self.state();
        let me = &self.inner.settings.name;
        let mut nodes = state.rows.clone();
        // This node's own row is what it knows now, not what etcd last heard.
        match nodes.iter_mut().find(|r| &r.name == me) {
            Some(row) => {
                row.status = state.status.clone();
                row.claim = Some(self.inner.claim.clone());
                row.alive = true;
            }
            None => nodes.push(NodeRow {
                name: me.clone(),
                alive: true,
                claim: Some(self.inner.claim.clone()),
                status: state.status.clone(),
            }),
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let manifest = state.snapshot.as_ref().map(|s| &s.manifest);
        ClusterView {
            prefix: self.inner.keys.prefix().to_owned(),
            this_node: me.clone(),
            version: state.snapshot.as_ref().map_or(0, |s| s.version as u64),
            pushed_by: manifest.map(|m| m.pushed_by.clone()).unwrap_or_default(),
            pushed_at: manifest.map(|m| m.pushed_at.clone()).unwrap_or_default(),
            etcd: EtcdState {
                reachable: state.unreachable.is_none(),
                unreachable_since: state
                    .unreachable
                    .as_ref()
                    .map(|(t, _)| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
                error: state.unreachable.as_ref().map(|(_, e)| e.clone()),
                read_at: state
                    .read_at
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
                    .unwrap_or_default(),
            },
            nodes,
            leader,
            rollout,
            last_rollout,
        }
    }

    pub(super) async fn read_rows(&self) -> Result<Vec<NodeRow>, EtcdError> {
        let keys = &self.inner.keys;
        let etcd = &self.inner.etcd;
        let (m, n, s) = (keys.members(), keys.nodes(), keys.statuses());
        let (members, live, statuses) =
            tokio::try_join!(etcd.range(&m), etcd.range(&n), etcd.range(&s))?;
        let named = |folder: String, r: &Range| -> Vec<(String, Vec<u8>)> {
            r.kvs
                .iter()
                .filter_map(|kv| {
                    Keys::name_in(&folder, &kv.key).map(|n| (n.to_owned(), kv.value.clone()))
                })
                .collect()
        };
        let live = named(keys.nodes(), &live);
        let statuses = named(keys.statuses(), &statuses);
        Ok(named(keys.members(), &members)
            .into_iter()
            .map(|(name, _)| {
                let claim = live
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, v)| serde_json::from_slice(v).ok());
                let status = statuses
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, v)| serde_json::from_slice(v).ok());
                NodeRow {
                    alive: claim.is_some(),
                    name,
                    claim,
                    status,
                }
            })
            .collect())
    }
}
