//! The scheduler behind a [`Supervisor`] handle: it owns the running node, takes requests one
//! at a time (reloads, restarts, traffic counts, shutdown) and fires the restart schedule.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::super::{Dropped, Node};
use super::{Reply, Request, RestartView, Supervisor};
use crate::config::{Checked, Config};
use crate::model::{ChangeRow, Refusal, ReloadOutcome, RestartOutcome, RestartRow};
use crate::observe::{Event, Kind};
use crate::restart::plan::{plan, Action, Change, Instance};
use crate::restart::schedule::{next_run, until, Clock};

/// What a reload or restart comes to: the answer, and the configuration to restart the
/// whole node on if it comes to that.
type Outcome<T> = Result<(T, Option<Config>), Refusal>;

/// The scheduler's own state.
pub(super) struct State {
    /// `None` only while the node restarts.
    pub(super) node: Option<Node>,
    /// The configuration the instances run (for a partial restart, a mix of versions).
    pub(super) applied: Config,
    /// The latest accepted configuration.
    pub(super) latest: Config,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) view: Arc<Mutex<RestartView>>,
    /// Handed to a node started anew.
    pub(super) handle: Supervisor,
}

impl State {
    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Request>) {
        loop {
            let next = self.with_view(|v| v.next_run);
            // In a cluster the leader fires the schedule; this node only shows it.
            let own = !self.handle.in_cluster();
            let wait = next.map(|at| until(self.clock.now(), at));
            let timer = async {
                match wait {
                    Some(d) if own => tokio::time::sleep(d).await,
                    Some(_) => std::future::pending().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                request = rx.recv() => match request {
                    Some(Request::Offer(checked, reply)) => {
                        let outcome = self.reload(*checked).await;
                        let _ = self.finish(outcome, Some(reply), "reload").await;
                    }
                    Some(Request::Restart { tenant, dry_run, reply }) => {
                        let outcome = self.restart(tenant.as_deref(), dry_run, "operator").await;
                        let _ = self.finish(outcome, Some(reply), "operator").await;
                    }
                    Some(Request::Traffic(reply)) => {
                        let _ = reply.send(self.node().traffic().await);
                    }
                    Some(Request::Drain(reply)) => {
                        let _ = reply.send(self.node().drain().await);
                    }
                    Some(Request::Shutdown(reply)) => {
                        if let Some(node) = self.node.take() {
                            node.shutdown().await;
                        }
                        let _ = reply.send(());
                        return;
                    }
                    None => return,
                },
                _ = timer => {
                    // The run is named by its scheduled time.
                    let now = next.unwrap_or_else(|| self.clock.now());
                    let stale = !self.with_view(|v| v.versions.stale().is_empty());
                    let outcome = if stale {
                        let outcome = self.restart(None, false, "schedule").await;
                        match self.finish(outcome, None, "schedule").await {
                            Ok(_) => "applied the staged changes".to_owned(),
                            Err(e) => format!("failed: {}", e.error),
                        }
                    } else {
                        "nothing was stale".to_owned()
                    };
                    let schedule = self.latest.restart.schedule.clone();
                    let clock_now = self.clock.now();
                    self.with_view(|v| {
                        v.last_run = Some((now, outcome));
                        v.next_run = next_run(&schedule, clock_now);
                    });
                }
            }
        }
    }

    fn with_view<R>(&self, f: impl FnOnce(&mut RestartView) -> R) -> R {
        f(&mut self.view.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn node(&self) -> &Node {
        self.node.as_ref().expect("the node runs between requests")
    }

    fn record(&self, event: Event) {
        self.node().observer().events.record(event);
    }

    /// Takes a configuration read again: the answer, and the configuration to restart the
    /// whole node on if it comes to that (see [`State::finish`]).
    async fn reload(&mut self, checked: Checked) -> Outcome<ReloadOutcome> {
        let path = checked.from;
        let number = checked.version;
        let new = match checked.config {
            Ok(c) => c,
            Err(errs) => {
                let problems: Vec<String> = errs.0.iter().map(|e| e.to_string()).collect();
                tracing::warn!(
                    problems = problems.len(),
                    "reload refused; the running configuration stays"
                );
                self.record(
                    Event::new(Kind::ConfigRefused)
                        .field("file", path.display().to_string())
                        .field("problems", problems.clone()),
                );
                return Err(Refusal {
                    error: format!(
                        "configuration refused: {} problem(s); the running configuration stays",
                        problems.len()
                    ),
                    problems,
                });
            }
        };
        let changes = plan(&self.latest, &new);
        let delayed = new.restart.delayed;
        let schedule = new.restart.schedule.clone();
        let now = self.clock.now();
        let version = self.with_view(|v| {
            v.delayed = delayed;
            v.schedule = new.restart.schedule_text.clone();
            v.next_run = next_run(&schedule, now);
            v.versions.accept_as(&new, &changes, number)
        });
        self.latest = new;
        let listed: Vec<ChangeRow> = changes.iter().map(change_row).collect();
        let outcome = |applied, staged, restarted| ReloadOutcome {
            version,
            changes: listed.clone(),
            applied,
            staged,
            restarted,
        };
        if changes.is_empty() {
            return Ok((outcome(false, false, None), None));
        }
        let stale: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
        self.record(
            Event::new(Kind::ConfigStaged)
                .field("version", version)
                .field("changes", stale.clone()),
        );
        tracing::info!(version, changes = ?stale, delayed, "configuration accepted");
        if delayed {
            return Ok((outcome(false, true, None), None));
        }
        let (applied, full) = self.restart(None, false, "reload").await?;
        Ok((outcome(true, false, Some(applied.restarted)), full))
    }

    /// The configuration running after restarting the stale instances of `tenant` (all when
    /// `None`): the applied one with that tenant brought to its latest version.
    fn target(&self, tenant: Option<&str>) -> Result<Config, Refusal> {
        let Some(name) = tenant else {
            return Ok(self.latest.clone());
        };
        let mut mixed = self.applied.clone();
        mixed.tenants.retain(|t| t.name != name);
        if let Some(t) = self.latest.tenant(name) {
            mixed.tenants.push(t.clone());
            // Its certificate as the latest version checked it.
            for path in t.tls.iter().flat_map(|c| [&c.cert, &c.key]) {
                if let Some(m) = self.latest.files.get(path) {
                    mixed.files.insert(path.clone(), m.clone());
                }
            }
        } else if self.applied.tenant(name).is_none() {
            return Err(Refusal::new(format!("no tenant {name}")));
        }
        mixed.tenants.sort_by(|a, b| a.name.cmp(&b.name));
        // A domain moving between tenants needs both restarted together.
        let mut owner = std::collections::HashMap::new();
        for t in &mixed.tenants {
            for d in t.all_domains() {
                if let Some(other) = owner.insert(d.to_owned(), t.name.clone()) {
                    return Err(Refusal::new(format!(
                        "{d} moves between tenants {other} and {}: restart both (xfed restart, without --tenant)",
                        t.name
                    )));
                }
            }
        }
        Ok(mixed)
    }

    /// Sends the answer (to `reply` when a request asked), then — after it, since the
    /// admin API that asked restarts too — the whole-node restart the outcome calls for.
    async fn finish<T: Clone>(
        &mut self,
        outcome: Outcome<T>,
        reply: Option<Reply<T>>,
        why: &str,
    ) -> Result<T, Refusal> {
        let (answer, full) = match outcome {
            Ok((v, full)) => (Ok(v), full),
            Err(e) => (Err(e), None),
        };
        if let Some(reply) = reply {
            let _ = reply.send(answer.clone());
        }
        if let Some(target) = full {
            self.restart_node(target, why).await;
        }
        answer
    }

    /// Applies (or, with `dry_run`, describes) a restart of the stale instances. A
    /// whole-node restart is returned as the configuration to start, for
    /// [`State::finish`] to run after answering.
    async fn restart(
        &mut self,
        tenant: Option<&str>,
        dry_run: bool,
        why: &str,
    ) -> Outcome<RestartOutcome> {
        let target = self.target(tenant)?;
        let changes = plan(&self.applied, &target);
        let full = changes.iter().any(|c| c.action == Action::RestartNode);
        if dry_run || full {
            let mut listed = Vec::new();
            for c in &changes {
                let dropped = self.node().predict(&target, c).await;
                listed.push(restart_row(c, dropped));
            }
            let outcome = RestartOutcome {
                dry_run,
                restarted: listed,
                node_restarting: !dry_run,
                nodes: vec![],
                rollout: None,
            };
            return Ok((outcome, (!dry_run).then_some(target)));
        }
        let node = self.node.as_mut().expect("the node runs between requests");
        let mut done = Vec::new();
        if let Some(c) = changes
            .iter()
            .find(|c| c.action == Action::RestartFederation)
        {
            match node.restart_federation(&target).await {
                Ok(streams) => done.push((c.clone(), Dropped { links: 0, streams })),
                Err(e) => {
                    return Err(Refusal::new(format!(
                        "federation cannot start on the new settings ({e}); it keeps running on the previous ones"
                    )))
                }
            }
        }
        let applied = node
            .apply_tenants(&target, &changes)
            .await
            .map_err(|e| Refusal::new(format!("cannot apply the tenant changes: {e}")))?;
        done.extend(applied);
        let mut listed = Vec::new();
        for (change, dropped) in &done {
            self.record(restart_event(change, *dropped, why));
            listed.push(restart_row(change, *dropped));
        }
        self.applied = target;
        self.mark_applied(&changes);
        if !changes.is_empty() {
            self.record(
                Event::new(Kind::ConfigApplied)
                    .field("version", self.with_view(|v| v.versions.latest)),
            );
        }
        let outcome = RestartOutcome {
            dry_run: false,
            restarted: listed,
            node_restarting: false,
            nodes: vec![],
            rollout: None,
        };
        Ok((outcome, None))
    }

    /// Restarts everything on `target`: graceful shutdown, then a new node.
    async fn restart_node(&mut self, target: Config, why: &str) {
        let changes = plan(&self.applied, &target);
        let Some(node) = self.node.take() else { return };
        // The event log and metrics carry over, unless their own settings changed.
        let observer = (node.config.events == target.events).then(|| node.observer().clone());
        let (out, inb) = node.s2s_stream_counts();
        let dropped = Dropped {
            links: node.link_count().await,
            streams: out + inb,
        };
        tracing::info!(why, "restarting the node for a configuration change");
        if self.handle.in_cluster() {
            // The other nodes take over its tenants' traffic before it goes.
            self.handle.cluster_draining(true).await;
            let drained = node.drain().await;
            tracing::info!(?drained, "drained before the restart");
        }
        node.shutdown().await;
        match Node::start_with(target.clone(), Some(self.handle.clone()), observer.clone()).await {
            Ok(n) => {
                self.node = Some(n);
                self.applied = target;
                for c in &changes {
                    self.record(restart_event(c, dropped, why));
                }
                self.mark_applied(&changes);
                self.record(
                    Event::new(Kind::ConfigApplied)
                        .field("version", self.with_view(|v| v.versions.latest)),
                );
            }
            Err(e) => {
                // The new settings cannot run (e.g. a listener address taken): back to the
                // configuration that ran.
                tracing::error!(
                    "cannot start on the new configuration: {e}; starting on the previous one"
                );
                let previous = self.applied.clone();
                match Node::start_with(previous, Some(self.handle.clone()), observer).await {
                    Ok(n) => {
                        self.node = Some(n);
                        self.record(
                            Event::new(Kind::ConfigRefused)
                                .field("reason", format!("cannot start on it: {e}")),
                        );
                    }
                    Err(e2) => {
                        tracing::error!("cannot start on the previous configuration either: {e2}");
                        std::process::exit(1);
                    }
                }
            }
        }
        if self.handle.in_cluster() {
            self.handle.cluster_draining(false).await;
        }
    }

    fn mark_applied(&self, changes: &[Change]) {
        self.with_view(|v| {
            for c in changes {
                v.versions.applied(&c.instance);
            }
        });
    }
}

fn change_row(c: &Change) -> ChangeRow {
    ChangeRow {
        instance: c.instance.to_string(),
        action: c.action.as_str().to_owned(),
        what: c.what.clone(),
    }
}

fn restart_row(c: &Change, d: Dropped) -> RestartRow {
    RestartRow {
        change: change_row(c),
        links: d.links,
        streams: d.streams,
    }
}

fn restart_event(change: &Change, dropped: Dropped, why: &str) -> Event {
    let tenant = match &change.instance {
        Instance::Tenant(t) => Some(t.as_str()),
        Instance::Node => None,
    };
    Event::new(Kind::Restart)
        .tenant(tenant)
        .field("instance", change.instance.to_string())
        .field("action", change.action.as_str())
        .field("why", why)
        .field("changes", change.what.clone())
        .field("links_dropped", dropped.links)
        .field("streams_dropped", dropped.streams)
}
