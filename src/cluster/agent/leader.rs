//! The cluster's leader: one node, elected with etcd's election API under its lease, runs
//! the restart schedule and carries out rolling restarts (`P/rollout`) one node at a time.
//! Every node campaigns; when the leader dies its lease runs out and the next in line
//! takes over, finishing the rollout it finds. Each step is written to `P/rollout` guarded
//! by the revision the leader last wrote, so a leader that lost its place cannot overwrite
//! its successor's progress.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::super::etcd::{EtcdError, Guarded, Written};
use super::super::rollout::{self, Next};
use super::{now_text, text, Agent, Host};
use crate::model::ask::{Question, Reply};
use crate::model::change::NodeRestart;
use crate::model::cluster::NodeRow;
use crate::model::rollout::{Rollout, RolloutStep, StepOutcome};
use crate::model::{Refusal, RestartOutcome, RestartQuery};

/// How often the leader looks at the schedule and the rollout.
const TICK: Duration = Duration::from_millis(250);
/// How long a dry run waits for each node's answer.
const DRY_RUN_WITHIN: Duration = Duration::from_secs(5);

impl Agent {
    /// Campaigns, and leads while elected; campaigns again when leadership is lost.
    pub(super) async fn lead(self, host: Arc<dyn Host>) {
        let i = &self.inner;
        loop {
            let lease = i.lease.load(Ordering::Relaxed);
            let key = match i
                .etcd
                .campaign(&i.keys.election(), &i.settings.name, lease)
                .await
            {
                Ok(key) => key,
                // Not elected within the request's deadline, or etcd away: try again (the
                // same lease keeps its place in line).
                Err(_) => {
                    tokio::time::sleep(TICK).await;
                    continue;
                }
            };
            tracing::info!("elected to run the restart schedule and rolling restarts");
            let mut anchor = host.now();
            loop {
                match i.etcd.get(&key).await {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        self.unreachable(&e);
                        tokio::time::sleep(TICK).await;
                        continue;
                    }
                }
                match self.lead_once(&host, &key, &mut anchor).await {
                    Ok(()) => {}
                    Err(e) => self.unreachable(&e),
                }
                tokio::time::sleep(TICK).await;
            }
            tracing::warn!("no longer the leader (lease lost)");
        }
    }

    /// One look: a rollout in progress gets its next step; else a time of the schedule that
    /// has come starts one when anything is stale.
    async fn lead_once(
        &self,
        host: &Arc<dyn Host>,
        leadership: &str,
        anchor: &mut DateTime<Utc>,
    ) -> Result<(), EtcdError> {
        let i = &self.inner;
        if let Some(kv) = i.etcd.get(&i.keys.rollout()).await? {
            match serde_json::from_slice::<Rollout>(&kv.value) {
                Ok(r) => return self.carry_out(leadership, r, kv.mod_revision).await,
                Err(e) => {
                    tracing::error!("{}: unreadable ({e}); removed", kv.key);
                    return i.etcd.delete(&kv.key).await;
                }
            }
        }
        let Some(due) = host.next_run(*anchor) else {
            *anchor = host.now();
            return Ok(());
        };
        if host.now() < due {
            return Ok(());
        }
        *anchor = due;
        let rows = self.read_rows().await?;
        if rows.iter().all(|r| !r.alive || r.stale().is_empty()) {
            tracing::info!(at = %due, "scheduled restart: nothing is stale");
            return Ok(());
        }
        let r = self.new_rollout(&rows, None, None, format!("schedule ({})", text(due)));
        tracing::info!(id = %r.id, nodes = ?r.order, "scheduled rolling restart");
        i.etcd
            .create(&i.keys.rollout(), json(&r), 0)
            .await
            .map(drop)
    }

    /// Takes the next step of `r` (written at `revision`), and waits through a node's turn.
    async fn carry_out(
        &self,
        leadership: &str,
        mut r: Rollout,
        mut revision: i64,
    ) -> Result<(), EtcdError> {
        let i = &self.inner;
        let rows = self.read_rows().await?;
        r.leader = Some(i.settings.name.clone());
        let node = match rollout::next(&r, &rows) {
            Next::Done => {
                r.finished = Some(now_text());
                r.current = None;
                tracing::info!(id = %r.id, steps = ?r.steps, "rolling restart done");
                let done = Guarded {
                    key: i.keys.rollout(),
                    mod_revision: revision,
                    puts: vec![(i.keys.last_rollout(), json(&r))],
                    deletes: vec![i.keys.rollout()],
                };
                return i.etcd.guarded(done).await.map(drop);
            }
            Next::Skip(node, outcome) => {
                r.current = None;
                r.steps.push(step(node, outcome, String::new()));
                return self.write(&r, revision).await.map(drop);
            }
            Next::Visit(node) => node,
        };
        let row = rows
            .iter()
            .find(|n| n.name == node)
            .expect("next names a listed node");
        if r.current.as_ref().is_none_or(|c| c.node != node) {
            r.current = Some(rollout::begin(row, r.tenant.as_deref(), now_text()));
        }
        revision = match self.write(&r, revision).await? {
            Some(rev) => rev,
            None => return Ok(()),
        };
        let turn = r.current.clone().expect("set above");
        tracing::info!(id = %r.id, node = %node, "rolling restart: this node's turn");
        let within = i.settings.rollout_step;
        let question = Question::Restart(RestartQuery {
            tenant: r.tenant.clone(),
            node: None,
            dry_run: false,
        });
        let (outcome, detail) = match self.ask(&node, &question, within).await {
            Ok(Reply::Restart(done)) => {
                let detail = restarted(&done);
                match self
                    .wait_settled(&turn, r.tenant.as_deref(), leadership, within)
                    .await?
                {
                    Some(true) => (StepOutcome::Restarted, detail),
                    Some(false) => (
                        StepOutcome::TimedOut,
                        format!(
                            "{detail}; not current with its links back within {} s",
                            within.as_secs()
                        ),
                    ),
                    // Leadership lost: the next leader takes this turn up again.
                    None => return Ok(()),
                }
            }
            Ok(Reply::Refused(why)) => (StepOutcome::Failed, why),
            Ok(other) => (StepOutcome::Failed, format!("unexpected answer {other:?}")),
            Err(why) => (StepOutcome::TimedOut, why),
        };
        tracing::info!(id = %r.id, node = %node, outcome = outcome.as_str(), %detail, "rolling restart step");
        r.current = None;
        r.steps.push(step(node, outcome, detail));
        self.write(&r, revision).await.map(drop)
    }

    /// Waits until the turn is over (`Some(true)`), its time is up (`Some(false)`), or
    /// this node is no longer the leader (`None`).
    async fn wait_settled(
        &self,
        turn: &crate::model::rollout::Current,
        tenant: Option<&str>,
        leadership: &str,
        within: Duration,
    ) -> Result<Option<bool>, EtcdError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.inner.etcd.get(leadership).await?.is_none() {
                return Ok(None);
            }
            let rows = self.read_rows().await?;
            if rollout::settled(turn, &rows, tenant) {
                return Ok(Some(true));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Some(false));
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// Writes `r` if `P/rollout` is still at `revision`: the new revision, or `None` when
    /// someone else wrote it meanwhile.
    async fn write(&self, r: &Rollout, revision: i64) -> Result<Option<i64>, EtcdError> {
        let key = self.inner.keys.rollout();
        let w = Guarded {
            key: key.clone(),
            mod_revision: revision,
            puts: vec![(key, json(r))],
            deletes: vec![],
        };
        Ok(match self.inner.etcd.guarded(w).await? {
            Written::At(rev) => Some(rev),
            Written::Moved(_) => None,
        })
    }

    fn new_rollout(
        &self,
        rows: &[NodeRow],
        tenant: Option<String>,
        node: Option<String>,
        why: String,
    ) -> Rollout {
        Rollout {
            id: format!(
                "r-{}-{}",
                Utc::now().timestamp_millis(),
                self.inner.settings.name
            ),
            why,
            started: now_text(),
            order: rollout::order(rows, node.as_deref()),
            tenant,
            node,
            steps: vec![],
            current: None,
            leader: None,
            finished: None,
        }
    }

    /// `xfed restart` on a node of a cluster. A dry run asks every node (or `node`) what it
    /// would restart and disconnect; otherwise a rolling restart is written for the leader
    /// to carry out, refused while another is in progress.
    pub async fn restart(&self, q: RestartQuery) -> Result<RestartOutcome, Refusal> {
        if q.dry_run {
            let asked = Question::Restart(RestartQuery {
                node: None,
                ..q.clone()
            });
            let answers = self
                .ask_all(&asked, q.node.as_deref(), DRY_RUN_WITHIN)
                .await
                .map_err(Refusal::new)?;
            let nodes = answers
                .into_iter()
                .map(|a| match a.answer {
                    Some(Reply::Restart(o)) => NodeRestart {
                        node: a.node,
                        restarted: o.restarted,
                        error: None,
                    },
                    Some(Reply::Refused(why)) => NodeRestart {
                        node: a.node,
                        restarted: vec![],
                        error: Some(why),
                    },
                    other => NodeRestart {
                        node: a.node,
                        restarted: vec![],
                        error: a
                            .error
                            .or_else(|| Some(format!("unexpected answer {other:?}"))),
                    },
                })
                .collect();
            return Ok(RestartOutcome {
                dry_run: true,
                restarted: vec![],
                node_restarting: false,
                nodes,
                rollout: None,
            });
        }
        let i = &self.inner;
        let unreachable =
            |e: EtcdError| Refusal::new(format!("cannot start a rolling restart: {e}"));
        let rows = self.read_rows().await.map_err(unreachable)?;
        let r = self.new_rollout(
            &rows,
            q.tenant.clone(),
            q.node.clone(),
            format!("operator on {}", i.settings.name),
        );
        if let Some(node) = q.node.as_deref().filter(|_| r.order.is_empty()) {
            return Err(Refusal::new(format!("no alive node {node} in the cluster")));
        }
        if let Some(held) = i
            .etcd
            .create(&i.keys.rollout(), json(&r), 0)
            .await
            .map_err(unreachable)?
        {
            let other = serde_json::from_slice::<Rollout>(&held.value)
                .map(|o| format!("{} ({}, started {})", o.id, o.why, o.started))
                .unwrap_or_else(|_| "?".into());
            return Err(Refusal::new(format!(
                "a rolling restart is in progress: {other}; see xfed status"
            )));
        }
        tracing::info!(id = %r.id, nodes = ?r.order, tenant = ?r.tenant, "rolling restart asked");
        Ok(RestartOutcome {
            dry_run: false,
            restarted: vec![],
            node_restarting: false,
            nodes: vec![],
            rollout: Some(r),
        })
    }

    /// The leader, the rollout in progress and the last one, for the view.
    pub(super) async fn rollouts(
        &self,
    ) -> Result<(Option<String>, Option<Rollout>, Option<Rollout>), EtcdError> {
        let i = &self.inner;
        let (election, now, last) = (i.keys.election(), i.keys.rollout(), i.keys.last_rollout());
        let (leader, current, last) = tokio::try_join!(
            i.etcd.leader(&election),
            i.etcd.get(&now),
            i.etcd.get(&last),
        )?;
        let read = |kv: Option<super::super::etcd::Kv>| {
            kv.and_then(|kv| serde_json::from_slice(&kv.value).ok())
        };
        Ok((leader, read(current), read(last)))
    }
}

fn step(node: String, outcome: StepOutcome, detail: String) -> RolloutStep {
    RolloutStep {
        node,
        outcome,
        at: now_text(),
        detail,
    }
}

/// What a node's restart did, on one line.
fn restarted(o: &RestartOutcome) -> String {
    if o.restarted.is_empty() {
        return "nothing was stale".into();
    }
    let what: Vec<String> = o
        .restarted
        .iter()
        .map(|r| {
            format!(
                "{} ({} links, {} streams dropped)",
                r.change.instance, r.links, r.streams
            )
        })
        .collect();
    what.join(", ")
}

fn json(r: &Rollout) -> Vec<u8> {
    serde_json::to_vec(r).expect("a rollout serializes")
}
