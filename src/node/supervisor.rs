//! The restart scheduler: the actor that owns a running [`Node`], the configuration versions
//! and the schedule. It takes reloads (admin API, SIGHUP), stages or applies them, restarts
//! only the stale router instances — on request (all, or one tenant) or at the next time of
//! `[restart] schedule` in UTC — and records every step in the event log.
//!
//! Its mailbox is a channel; the admin API and the signal handler hold a [`Supervisor`]
//! handle. Requests are handled one at a time, so a reload never races a restart.
//!
//! The scheduler never reads a configuration. A reload checks the node's [`Feed`] on the
//! caller's side of the handle and hands the scheduler the result ([`Checked`]): a
//! configuration to stage or apply, or a refusal to report while the running one stays.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::{Dropped, Node, StartError, Traffic};
use crate::config::{Checked, Config, Feed};
use crate::observe::{Event, Kind};
use crate::restart::plan::{plan, Action, Change, Instance};
use crate::restart::schedule::{next_run, until, Clock};
use crate::restart::versions::Versions;

/// What the admin API and `xfed status` read of the scheduler.
#[derive(Debug, Clone)]
pub struct RestartView {
    pub versions: Versions,
    pub delayed: bool,
    pub schedule: String,
    pub next_run: Option<DateTime<Utc>>,
    /// When the last restart ran and what it did.
    pub last_run: Option<(DateTime<Utc>, String)>,
}

enum Request {
    /// A configuration checked by whoever read its source (SIGHUP, `xfed reload`), or the
    /// problems that refused it (boxed: a configuration is large beside the other requests).
    Offer(Box<Checked>, oneshot::Sender<Result<Value, Value>>),
    Restart {
        tenant: Option<String>,
        dry_run: bool,
        reply: oneshot::Sender<Result<Value, Value>>,
    },
    /// Links and streams per tenant, for the cluster's view of this node.
    Traffic(oneshot::Sender<Traffic>),
    Shutdown(oneshot::Sender<()>),
}

/// A handle on the restart scheduler of a running node.
#[derive(Clone)]
pub struct Supervisor {
    tx: mpsc::UnboundedSender<Request>,
    view: Arc<Mutex<RestartView>>,
    /// Where a reload reads the configuration again.
    feed: Feed,
    /// Held while a reload checks the feed and hands the result over, so configurations
    /// reach the scheduler in the order they were read (reloads come from several threads:
    /// the admin API's and the signal handler's).
    reading: Arc<Mutex<()>>,
    /// The cluster as this node sees it, for `xfed status`; `None` for a node on its own.
    cluster: Option<ClusterViews>,
}

/// Asks the cluster agent for its view (as the API serves it).
pub type ClusterViews =
    Arc<dyn Fn() -> futures_util::future::BoxFuture<'static, Option<Value>> + Send + Sync>;

impl Supervisor {
    /// Starts the node on `config`, and the scheduler that owns it, on the current actix
    /// system; reloads read the folder `config` was read from.
    pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Result<Supervisor, StartError> {
        let feed = Feed::dir(&config.path);
        Self::start_with_feed(config, feed, clock).await
    }

    /// Starts the node on `config`, and the scheduler that owns it, on the current actix
    /// system; reloads check `feed`.
    pub async fn start_with_feed(
        config: Config,
        feed: Feed,
        clock: Arc<dyn Clock>,
    ) -> Result<Supervisor, StartError> {
        Self::start_versioned(config, None, feed, clock, None).await
    }

    /// [`Self::start_with_feed`], the first configuration numbered `version` when given (a
    /// cluster's: the etcd revision of its push).
    pub async fn start_versioned(
        config: Config,
        version: Option<u64>,
        feed: Feed,
        clock: Arc<dyn Clock>,
        cluster: Option<ClusterViews>,
    ) -> Result<Supervisor, StartError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let view = Arc::new(Mutex::new(RestartView {
            versions: Versions::new_at(&config, version.unwrap_or(1)),
            delayed: config.restart.delayed,
            schedule: config.restart.schedule_text.clone(),
            // A node of a cluster never runs the schedule alone: every node would restart
            // at the same time. The cluster's leader will (issue 13, part 2).
            next_run: next_run(&config.restart.schedule, clock.now()).filter(|_| cluster.is_none()),
            last_run: None,
        }));
        let handle = Supervisor {
            tx,
            view,
            feed,
            reading: Arc::new(Mutex::new(())),
            cluster,
        };
        let node = Node::start_with(config.clone(), Some(handle.clone()), None).await?;
        let state = State {
            node: Some(node),
            applied: config.clone(),
            latest: config,
            clock,
            view: handle.view.clone(),
            handle: handle.clone(),
        };
        actix_rt::spawn(state.run(rx));
        Ok(handle)
    }

    /// What the scheduler shows now.
    pub fn view(&self) -> RestartView {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the configuration again: `Ok` with the new version and what it changes (and
    /// whether it was applied or staged), `Err` with the problems when refused.
    pub async fn reload(&self) -> Result<Value, Value> {
        let answer = {
            let _turn = self.reading.lock().unwrap_or_else(|e| e.into_inner());
            self.hand(self.feed.check())?
        };
        answer.await.map_err(|_| gone())?
    }

    /// Hands the scheduler a configuration checked elsewhere, answered as [`Self::reload`].
    pub async fn offer(&self, checked: Checked) -> Result<Value, Value> {
        self.hand(checked)?.await.map_err(|_| gone())?
    }

    fn hand(&self, checked: Checked) -> Result<oneshot::Receiver<Result<Value, Value>>, Value> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Offer(Box::new(checked), reply))?;
        Ok(answer)
    }

    /// Restarts the stale instances (of `tenant` only, if given); with `dry_run` only says
    /// what it would restart and disconnect.
    pub async fn restart(&self, tenant: Option<String>, dry_run: bool) -> Result<Value, Value> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Restart {
            tenant,
            dry_run,
            reply,
        })?;
        answer.await.map_err(|_| gone())?
    }

    /// The cluster as this node sees it (`None` for a node on its own).
    pub async fn cluster_view(&self) -> Option<Value> {
        match &self.cluster {
            Some(views) => views().await,
            None => None,
        }
    }

    /// Component links and s2s streams per tenant now (`None` once shutting down).
    pub async fn traffic(&self) -> Option<Traffic> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Request::Traffic(reply)).ok()?;
        answer.await.ok()
    }

    /// Shuts the node down gracefully and stops the scheduler.
    pub async fn shutdown(&self) {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Request::Shutdown(reply)).is_ok() {
            let _ = answer.await;
        }
    }

    fn send(&self, request: Request) -> Result<(), Value> {
        self.tx.send(request).map_err(|_| gone())
    }
}

fn gone() -> Value {
    json!({"error": "the node is shutting down"})
}

/// What a reload or restart comes to: the answer, and the configuration to restart the
/// whole node on if it comes to that.
type Outcome = Result<(Value, Option<Config>), Value>;

/// The scheduler's own state.
struct State {
    /// `None` only while the node restarts.
    node: Option<Node>,
    /// The configuration the instances run (for a partial restart, a mix of versions).
    applied: Config,
    /// The latest accepted configuration.
    latest: Config,
    clock: Arc<dyn Clock>,
    view: Arc<Mutex<RestartView>>,
    /// Handed to a node started anew.
    handle: Supervisor,
}

impl State {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Request>) {
        loop {
            let next = self.with_view(|v| v.next_run);
            let wait = next.map(|at| until(self.clock.now(), at));
            let timer = async {
                match wait {
                    Some(d) => tokio::time::sleep(d).await,
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
                            Err(e) => format!("failed: {}", e["error"].as_str().unwrap_or_default()),
                        }
                    } else {
                        "nothing was stale".to_owned()
                    };
                    let schedule = self.latest.restart.schedule.clone();
                    let clock_now = self.clock.now();
                    let own = self.handle.cluster.is_none();
                    self.with_view(|v| {
                        v.last_run = Some((now, outcome));
                        v.next_run = next_run(&schedule, clock_now).filter(|_| own);
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
    async fn reload(&mut self, checked: Checked) -> Outcome {
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
                return Err(json!({
                    "error": format!("configuration refused: {} problem(s); the running configuration stays", problems.len()),
                    "problems": problems,
                }));
            }
        };
        let changes = plan(&self.latest, &new);
        let delayed = new.restart.delayed;
        let schedule = new.restart.schedule.clone();
        let now = self.clock.now();
        let own = self.handle.cluster.is_none();
        let version = self.with_view(|v| {
            v.delayed = delayed;
            v.schedule = new.restart.schedule_text.clone();
            v.next_run = next_run(&schedule, now).filter(|_| own);
            v.versions.accept_as(&new, &changes, number)
        });
        self.latest = new;
        let listed: Vec<Value> = changes.iter().map(change_json).collect();
        if changes.is_empty() {
            let v =
                json!({"version": version, "changes": listed, "applied": false, "staged": false});
            return Ok((v, None));
        }
        let stale: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
        self.record(
            Event::new(Kind::ConfigStaged)
                .field("version", version)
                .field("changes", stale.clone()),
        );
        tracing::info!(version, changes = ?stale, delayed, "configuration accepted");
        if delayed {
            let v =
                json!({"version": version, "changes": listed, "applied": false, "staged": true});
            return Ok((v, None));
        }
        let (applied, full) = self.restart(None, false, "reload").await?;
        let v = json!({
            "version": version, "changes": listed, "applied": true, "staged": false,
            "restarted": applied["restarted"],
        });
        Ok((v, full))
    }

    /// The configuration running after restarting the stale instances of `tenant` (all when
    /// `None`): the applied one with that tenant brought to its latest version.
    fn target(&self, tenant: Option<&str>) -> Result<Config, Value> {
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
            return Err(json!({"error": format!("no tenant {name}")}));
        }
        mixed.tenants.sort_by(|a, b| a.name.cmp(&b.name));
        // A domain moving between tenants needs both restarted together.
        let mut owner = std::collections::HashMap::new();
        for t in &mixed.tenants {
            for d in t.all_domains() {
                if let Some(other) = owner.insert(d.to_owned(), t.name.clone()) {
                    return Err(json!({"error": format!(
                        "{d} moves between tenants {other} and {}: restart both (xfed restart, without --tenant)",
                        t.name
                    )}));
                }
            }
        }
        Ok(mixed)
    }

    /// Sends the answer (to `reply` when a request asked), then — after it, since the
    /// admin API that asked restarts too — the whole-node restart the outcome calls for.
    async fn finish(
        &mut self,
        outcome: Outcome,
        reply: Option<oneshot::Sender<Result<Value, Value>>>,
        why: &str,
    ) -> Result<Value, Value> {
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
    async fn restart(&mut self, tenant: Option<&str>, dry_run: bool, why: &str) -> Outcome {
        let target = self.target(tenant)?;
        let changes = plan(&self.applied, &target);
        let full = changes.iter().any(|c| c.action == Action::RestartNode);
        if dry_run || full {
            let mut listed = Vec::new();
            for c in &changes {
                let dropped = self.node().predict(&target, c).await;
                listed.push(with_dropped(change_json(c), dropped));
            }
            if dry_run {
                return Ok((json!({"dry_run": true, "restarted": listed}), None));
            }
            let v = json!({"dry_run": false, "restarted": listed, "node_restarting": true});
            return Ok((v, Some(target)));
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
                    return Err(json!({"error": format!(
                        "federation cannot start on the new settings ({e}); it keeps running on the previous ones"
                    )}))
                }
            }
        }
        let applied = node
            .apply_tenants(&target, &changes)
            .await
            .map_err(|e| json!({"error": format!("cannot apply the tenant changes: {e}")}))?;
        done.extend(applied);
        let mut listed = Vec::new();
        for (change, dropped) in &done {
            self.record(restart_event(change, *dropped, why));
            listed.push(with_dropped(change_json(change), *dropped));
        }
        self.applied = target;
        self.mark_applied(&changes);
        if !changes.is_empty() {
            self.record(
                Event::new(Kind::ConfigApplied)
                    .field("version", self.with_view(|v| v.versions.latest)),
            );
        }
        Ok((json!({"dry_run": false, "restarted": listed}), None))
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
    }

    fn mark_applied(&self, changes: &[Change]) {
        self.with_view(|v| {
            for c in changes {
                v.versions.applied(&c.instance);
            }
        });
    }
}

fn change_json(c: &Change) -> Value {
    json!({"instance": c.instance.to_string(), "action": c.action.as_str(), "what": c.what})
}

fn with_dropped(mut v: Value, d: Dropped) -> Value {
    v["links"] = d.links.into();
    v["streams"] = d.streams.into();
    v
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
