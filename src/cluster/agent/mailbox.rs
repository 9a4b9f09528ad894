//! Questions between nodes, through etcd: a node asks another by writing
//! `P/asks/<node>/<id>` under its own lease; the node asked takes the key away, answers
//! through its [`Host`] and writes `P/answers/<id>` under the asker's lease. A node asked
//! while it is gone (or its etcd link down) answers nothing, and the asker says so; keys
//! of an asker that died go with its lease.
//!
//! Nodes need no route to each other, only to etcd. Both sides poll every
//! [`POLL`]: asks are rare (an operator's command, one per node and step of a rollout).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::super::keys::Keys;
use super::{Agent, Host};
use crate::model::ask::{FromNode, Question, Reply};

/// How often a node looks for questions to it, and an asker for its answer.
const POLL: Duration = Duration::from_millis(100);

/// What a question key holds.
#[derive(Debug, Serialize, Deserialize)]
struct Ask {
    from: String,
    question: Question,
}

impl Agent {
    /// Asks node `node` and waits for its answer at most `within`.
    pub async fn ask(
        &self,
        node: &str,
        question: &Question,
        within: Duration,
    ) -> Result<Reply, String> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let i = &self.inner;
        let id = format!(
            "{}-{}-{}",
            i.settings.name,
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let ask = Ask {
            from: i.settings.name.clone(),
            question: question.clone(),
        };
        let value = serde_json::to_vec(&ask).expect("a question serializes");
        let lease = i.lease.load(Ordering::Relaxed);
        let key = i.keys.ask(node, &id);
        i.etcd
            .put(&key, value, lease)
            .await
            .map_err(|e| format!("cannot ask {node}: {e}"))?;
        let deadline = tokio::time::Instant::now() + within;
        let answer = i.keys.answer(&id);
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
            if let Ok(Some(kv)) = i.etcd.get(&answer).await {
                let _ = i.etcd.delete(&answer).await;
                return serde_json::from_slice(&kv.value)
                    .map_err(|e| format!("{node} answered what this node cannot read: {e}"));
            }
        }
        let _ = i.etcd.delete(&key).await;
        Err(format!(
            "{node} did not answer within {} s",
            within.as_secs()
        ))
    }

    /// Asks every alive node (only `only` when given), this one included, at once.
    pub async fn ask_all(
        &self,
        question: &Question,
        only: Option<&str>,
        within: Duration,
    ) -> Result<Vec<FromNode<Reply>>, String> {
        let rows = self
            .read_rows()
            .await
            .map_err(|e| format!("cannot read the cluster's nodes: {e}"))?;
        let names = super::super::rollout::order(&rows, only);
        if let Some(only) = only.filter(|_| names.is_empty()) {
            return Err(format!("no alive node {only} in the cluster"));
        }
        let asks = names.iter().map(|n| self.ask(n, question, within));
        let answers = futures_util::future::join_all(asks).await;
        Ok(names
            .into_iter()
            .zip(answers)
            .map(|(node, a)| match a {
                Ok(reply) => FromNode {
                    node,
                    answer: Some(reply),
                    error: None,
                },
                Err(e) => FromNode {
                    node,
                    answer: None,
                    error: Some(e),
                },
            })
            .collect())
    }

    /// Answers the questions to this node, each in a task of its own (a restart may take
    /// a while; a question about connections should not wait for it).
    pub(super) async fn serve(self, host: Arc<dyn Host>) {
        let i = &self.inner;
        let folder = i.keys.asks(&i.settings.name);
        loop {
            tokio::time::sleep(POLL).await;
            let Ok(range) = i.etcd.range(&folder).await else {
                continue;
            };
            for kv in range.kvs {
                let Some(id) = Keys::name_in(&folder, &kv.key).map(str::to_owned) else {
                    continue;
                };
                // Taken away first, so it is answered once.
                if i.etcd.delete(&kv.key).await.is_err() {
                    continue;
                }
                let Ok(ask) = serde_json::from_slice::<Ask>(&kv.value) else {
                    tracing::warn!(key = %kv.key, "a question this node cannot read; dropped");
                    continue;
                };
                let agent = self.clone();
                let host = host.clone();
                tokio::spawn(async move {
                    tracing::debug!(from = %ask.from, question = ?ask.question, "asked");
                    let reply = host.answer(ask.question).await;
                    let value = serde_json::to_vec(&reply).expect("a reply serializes");
                    let key = agent.inner.keys.answer(&id);
                    if let Err(e) = agent.inner.etcd.put(&key, value, kv.lease).await {
                        tracing::warn!(from = %ask.from, "cannot answer: {e}");
                    }
                });
            }
        }
    }
}
