//! The restart scheduler: the actor that owns a running [`Node`], the configuration versions
//! and the schedule. It takes reloads (admin API, SIGHUP), stages or applies them, restarts
//! only the stale router instances — on request (all, or one tenant) or at the next time of
//! `[restart] schedule` in UTC — and records every step in the event log.
//!
//! Its mailbox is a channel; the admin API and the signal handler hold a [`Supervisor`]
//! handle (here). Requests are handled one at a time, so a reload never races a restart,
//! by the scheduler that owns the node (`scheduler`).
//!
//! The scheduler never reads a configuration. A reload checks the node's [`Feed`] on the
//! caller's side of the handle and hands the scheduler the result ([`Checked`]): a
//! configuration to stage or apply, or a refusal to report while the running one stays.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use futures_util::future::BoxFuture;

use super::{Node, StartError, Traffic};
use crate::admin::AdminState;
use crate::config::{Checked, Config, Feed};
use crate::model::ask::{self, FromNode, Question};
use crate::model::{
    ClusterView, DrainOutcome, Refusal, ReloadOutcome, RestartOutcome, RestartQuery,
};
use crate::restart::schedule::{next_run, Clock};
use crate::restart::versions::Versions;
use crate::routing::Forward;

mod scheduler;

use scheduler::State;

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

/// What the scheduler answers a request, or why it would not.
type Reply<T> = oneshot::Sender<Result<T, Refusal>>;

enum Request {
    /// A configuration checked by whoever read its source (SIGHUP, `xfed reload`), or the
    /// problems that refused it (boxed: a configuration is large beside the other requests).
    Offer(Box<Checked>, Reply<ReloadOutcome>),
    Restart {
        tenant: Option<String>,
        dry_run: bool,
        reply: Reply<RestartOutcome>,
    },
    /// Links and streams per tenant, for the cluster's view of this node.
    Traffic(oneshot::Sender<Traffic>),
    /// Take the node out of service (`xfed drain`).
    Drain(oneshot::Sender<DrainOutcome>),
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
    /// The cluster this node is in; `None` for a node on its own.
    cluster: Option<Arc<dyn ClusterOps>>,
    /// The running node's admin state, for other nodes' questions (set by each start of
    /// the node; `None` while the admin API is off).
    admin: Arc<Mutex<Option<Arc<AdminState>>>>,
}

/// What the node's cluster does for its admin API (`node::cluster`, over the agent).
pub trait ClusterOps: Send + Sync {
    /// The cluster as this node sees it, for `xfed status`.
    fn view(&self) -> BoxFuture<'static, ClusterView>;
    /// A restart asked on this node: a rolling restart of the cluster, or its dry run.
    fn restart(&self, q: RestartQuery) -> BoxFuture<'static, Result<RestartOutcome, Refusal>>;
    /// Asks every alive node.
    fn gather(&self, q: Question)
        -> BoxFuture<'static, Result<Vec<FromNode<ask::Reply>>, Refusal>>;
    /// The way to the other nodes' links, for tenants with none up here.
    fn forward(&self) -> Option<Arc<dyn Forward>>;
    /// This node is draining (`on`): the other nodes stop handing it stanzas, and its
    /// status says so; or it serves again (a new start of the node).
    fn draining(&self, on: bool) -> BoxFuture<'static, ()>;
    /// This node's name in the cluster.
    fn name(&self) -> String;
    /// Drains node `node` of the cluster, asked through etcd.
    fn drain(&self, node: &str) -> BoxFuture<'static, Result<DrainOutcome, Refusal>>;
}

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
        cluster: Option<Arc<dyn ClusterOps>>,
    ) -> Result<Supervisor, StartError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let view = Arc::new(Mutex::new(RestartView {
            versions: Versions::new_at(&config, version.unwrap_or(1)),
            delayed: config.restart.delayed,
            schedule: config.restart.schedule_text.clone(),
            // In a cluster the leader runs the schedule (every node would restart at the
            // same time); each node shows when.
            next_run: next_run(&config.restart.schedule, clock.now()),
            last_run: None,
        }));
        let handle = Supervisor {
            tx,
            view,
            feed,
            reading: Arc::new(Mutex::new(())),
            cluster,
            admin: Arc::new(Mutex::new(None)),
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
    pub async fn reload(&self) -> Result<ReloadOutcome, Refusal> {
        let answer = {
            let _turn = self.reading.lock().unwrap_or_else(|e| e.into_inner());
            self.hand(self.feed.check())?
        };
        answer.await.map_err(|_| gone())?
    }

    /// Hands the scheduler a configuration checked elsewhere, answered as [`Self::reload`].
    pub async fn offer(&self, checked: Checked) -> Result<ReloadOutcome, Refusal> {
        self.hand(checked)?.await.map_err(|_| gone())?
    }

    fn hand(
        &self,
        checked: Checked,
    ) -> Result<oneshot::Receiver<Result<ReloadOutcome, Refusal>>, Refusal> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Offer(Box::new(checked), reply))?;
        Ok(answer)
    }

    /// Restarts the stale instances (of `tenant` only, if given); with `dry_run` only says
    /// what it would restart and disconnect.
    pub async fn restart(
        &self,
        tenant: Option<String>,
        dry_run: bool,
    ) -> Result<RestartOutcome, Refusal> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Restart {
            tenant,
            dry_run,
            reply,
        })?;
        answer.await.map_err(|_| gone())?
    }

    /// The cluster this node is in (`None` for a node on its own); the admin API asks it
    /// through [`crate::admin::Control`].
    pub(super) fn cluster(&self) -> Option<&Arc<dyn ClusterOps>> {
        self.cluster.as_ref()
    }

    /// The cluster's way to other nodes' links, for the router of each start of the node.
    pub(super) fn forward(&self) -> Option<Arc<dyn Forward>> {
        self.cluster.as_ref().and_then(|c| c.forward())
    }

    /// Whether this node is one of a cluster's (then the leader runs the schedule).
    pub(super) fn in_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// The running node's admin state.
    pub fn admin(&self) -> Option<Arc<AdminState>> {
        self.admin.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn set_admin(&self, state: Option<Arc<AdminState>>) {
        *self.admin.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    /// Component links and s2s streams per tenant now (`None` once shutting down).
    pub async fn traffic(&self) -> Option<Traffic> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Request::Traffic(reply)).ok()?;
        answer.await.ok()
    }

    /// Drains this node: the cluster stops handing it stanzas first, then the node closes
    /// its links and streams and hands on what it has.
    pub async fn drain(&self) -> Result<DrainOutcome, Refusal> {
        self.cluster_draining(true).await;
        let (reply, answer) = oneshot::channel();
        self.send(Request::Drain(reply))?;
        answer.await.map_err(|_| gone())
    }

    /// Tells the cluster, if any, that this node drains or serves again; when it starts
    /// draining, waits until the other nodes have read that.
    pub(super) async fn cluster_draining(&self, on: bool) {
        if let Some(c) = &self.cluster {
            c.draining(on).await;
        }
    }

    /// Shuts the node down gracefully and stops the scheduler.
    pub async fn shutdown(&self) {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Request::Shutdown(reply)).is_ok() {
            let _ = answer.await;
        }
    }

    fn send(&self, request: Request) -> Result<(), Refusal> {
        self.tx.send(request).map_err(|_| gone())
    }
}

pub(super) fn gone() -> Refusal {
    Refusal::new("the node is shutting down")
}
