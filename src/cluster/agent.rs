//! A node's part in its cluster: it joins under a lease with a name no live node holds and
//! keeps the lease (`agent/lease.rs`), follows the configuration (watching the manifest,
//! reading each version whole and handing it to the node checked) and publishes what it
//! runs under its lease (`agent/follow.rs`), answers the cluster-wide view and other
//! nodes' questions (`agent/mailbox.rs`), and campaigns to lead the schedule and rolling
//! restarts (`agent/leader.rs`). When etcd cannot be reached it keeps what it has, says
//! since when, and catches up when etcd is back.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::future::BoxFuture;
use tokio::sync::Notify;

use super::etcd::{Etcd, EtcdError};
use super::keys::Keys;
use super::settings::Settings;
use super::snapshot::{Incomplete, Snapshot};
use super::source::{as_node_runs, Files, ROUTER};
use crate::config::{check, Checked, ConfigError, ConfigErrors, Feed};
use crate::model::ask::{Question, Reply};
use crate::model::cluster::{Claim, InstanceRow, NodeRow, NodeStatus, Refused, TenantCounts};

mod follow;
mod leader;
mod lease;
mod links;
mod mailbox;
mod view;

/// How often a node looks whether what it runs changed, to publish it.
const PUBLISH_EVERY: Duration = Duration::from_millis(500);
/// How long a node waits before trying etcd again after a failure.
const RETRY: Duration = Duration::from_millis(500);

/// What the cluster asks of the node it runs in (implemented by `node`).
pub trait Host: Send + Sync + 'static {
    /// A configuration read whole from etcd and checked: apply or stage it as a reload
    /// would. `Err`: the node did not take it (the problems, one line each).
    fn offer(&self, checked: Checked) -> BoxFuture<'static, Result<(), Vec<String>>>;

    /// What the node runs now.
    fn report(&self) -> BoxFuture<'static, Report>;

    /// Answers another node's question about this one (a restart of its stale instances,
    /// its connections, its events).
    fn answer(&self, question: Question) -> BoxFuture<'static, Reply>;

    /// Now, on the node's clock (tests move it).
    fn now(&self) -> DateTime<Utc>;

    /// The first time of `[restart] schedule` after `after` while `[restart] delayed` is
    /// on; `None` otherwise. Only the leader acts on it.
    fn next_run(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>>;
}

/// What a node runs, as its [`Host`] reports it.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub instances: Vec<InstanceRow>,
    pub tenants: Vec<TenantCounts>,
    pub streams: usize,
}

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("{0}")]
    Settings(String),
    #[error("{0}: a node joins its cluster at start (is etcd running at {1}?)")]
    Etcd(EtcdError, String),
    #[error("node name {name:?} is held by a live node in cluster {prefix} (pid {} on {}, started {}, admin API {}): give every node its own [node] name", .holder.pid, .holder.host, .holder.started, .holder.admin)]
    NameTaken {
        name: String,
        prefix: String,
        holder: Claim,
    },
    #[error("nothing pushed to cluster {0} yet: push a configuration first (xfed config push --dir DIR)")]
    NothingPushed(String),
    #[error("the cluster's configuration cannot be read whole: {0}")]
    Incomplete(#[from] Incomplete),
}

/// A node's membership in its cluster (cheap to clone).
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

struct Inner {
    etcd: Etcd,
    keys: Keys,
    settings: Settings,
    /// The node's own router file: its machine keys, read again at every check.
    local: PathBuf,
    claim: Claim,
    /// The lease the node's keys live under; replaced when it expired while etcd was away.
    lease: AtomicI64,
    state: Mutex<State>,
    /// Wakes the publisher at once (a version was taken).
    publish_now: Notify,
}

#[derive(Default)]
struct State {
    /// The last configuration read whole.
    snapshot: Option<Arc<Snapshot>>,
    /// The last version read whole and checked.
    seen: u64,
    refused: Option<Refused>,
    /// Since when etcd does not answer, and why.
    unreachable: Option<(DateTime<Utc>, String)>,
    /// What the node last reported, and what was last written to etcd.
    status: Option<NodeStatus>,
    published: Option<NodeStatus>,
    /// The other nodes as last read.
    rows: Vec<NodeRow>,
    /// The tenants this node's link-table entries name, as last written.
    links: std::collections::BTreeSet<String>,
    /// The inter-node listener's address as bound, when it differs from the setting.
    advertised: Option<std::net::SocketAddr>,
    /// Taken out of service (`xfed drain`).
    draining: bool,
    read_at: Option<DateTime<Utc>>,
}

/// The tasks of a joined node; dropping this leaves them running.
pub struct Running {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    agent: Agent,
}

impl Agent {
    /// Joins the cluster the node's own file `local` names: takes a lease, claims the node's
    /// name, and reads the configuration, checked as the node will run it.
    pub async fn join(local: &Path) -> Result<(Agent, Checked), JoinError> {
        let settings = Settings::read(local).map_err(JoinError::Settings)?;
        let keys = Keys::new(&settings.prefix).map_err(JoinError::Settings)?;
        let endpoints = settings.etcd.join(", ");
        let unreachable = |e| JoinError::Etcd(e, endpoints.clone());
        let etcd = Etcd::connect(&settings.etcd, settings.user.clone(), settings.tls.as_ref())
            .await
            .map_err(unreachable)?;
        let lease = etcd
            .grant(settings.lease.as_secs())
            .await
            .map_err(unreachable)?;
        let claim = Claim {
            started: now_text(),
            pid: std::process::id(),
            host: host_name(),
            admin: settings.admin.clone(),
        };
        let inner = Inner {
            etcd,
            keys,
            local: local.to_path_buf(),
            claim,
            lease: AtomicI64::new(lease),
            state: Mutex::new(State::default()),
            publish_now: Notify::new(),
            settings,
        };
        let agent = Agent {
            inner: Arc::new(inner),
        };
        let first = agent.first(lease).await;
        if first.is_err() {
            let _ = agent.inner.etcd.revoke(lease).await;
        }
        first.map(|checked| (agent, checked))
    }

    async fn first(&self, lease: i64) -> Result<Checked, JoinError> {
        let i = &self.inner;
        let unreachable = |e| JoinError::Etcd(e, i.settings.etcd.join(", "));
        if let Some(held) = i
            .etcd
            .create(&i.keys.node(&i.settings.name), claim_json(&i.claim), lease)
            .await
            .map_err(unreachable)?
        {
            let holder = serde_json::from_slice(&held.value).unwrap_or(Claim {
                started: "?".into(),
                pid: 0,
                host: "?".into(),
                admin: "?".into(),
            });
            return Err(JoinError::NameTaken {
                name: i.settings.name.clone(),
                prefix: i.keys.prefix().to_owned(),
                holder,
            });
        }
        i.etcd
            .put(&i.keys.member(&i.settings.name), claim_json(&i.claim), 0)
            .await
            .map_err(unreachable)?;
        let range = i.etcd.range(&i.keys.config()).await.map_err(unreachable)?;
        let snapshot = Snapshot::read(&i.keys, &range)?
            .ok_or_else(|| JoinError::NothingPushed(i.keys.prefix().to_owned()))?;
        let checked = self.check(&snapshot);
        let mut state = self.state();
        state.seen = snapshot.version as u64;
        state.snapshot = Some(Arc::new(snapshot));
        Ok(checked)
    }

    /// Where reloads (SIGHUP, `xfed reload`) read: the node's own file as it is now, with
    /// the last configuration read whole from etcd.
    pub fn feed(&self) -> Feed {
        let agent = self.clone();
        Feed::with(move || {
            let snapshot = agent.state().snapshot.clone();
            match snapshot {
                Some(s) => agent.check(&s),
                None => Checked {
                    from: agent.inner.local.clone(),
                    config: Err(ConfigErrors(vec![ConfigError::new(
                        &agent.inner.local,
                        "cluster",
                        "no configuration read from etcd yet",
                    )])),
                    version: None,
                },
            }
        })
    }

    /// `snapshot` as this node runs it: the pushed router document with the machine keys
    /// of the node's own file, checked.
    fn check(&self, snapshot: &Snapshot) -> Checked {
        let prefix = self.inner.keys.prefix();
        let config = as_node_runs(&self.inner.local, prefix, &snapshot.files)
            .and_then(|source| check(&source));
        Checked {
            from: Files::etcd_root(prefix).join(ROUTER),
            config,
            version: Some(snapshot.version as u64),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts following the configuration and publishing what `host` runs.
    pub fn run(&self, host: Arc<dyn Host>) -> Running {
        let tasks = vec![
            tokio::spawn(self.clone().keep_alive()),
            tokio::spawn(self.clone().follow(host.clone())),
            tokio::spawn(self.clone().publish(host.clone())),
            tokio::spawn(self.clone().serve(host.clone())),
            tokio::spawn(self.clone().lead(host)),
        ];
        Running {
            tasks,
            agent: self.clone(),
        }
    }

    /// Gives the lease back before the node runs (a start that failed after joining).
    pub async fn leave(&self) {
        let lease = self.inner.lease.load(Ordering::Relaxed);
        let _ = self.inner.etcd.revoke(lease).await;
    }

    /// This node's name in the cluster.
    pub fn name(&self) -> &str {
        &self.inner.settings.name
    }
}

impl Running {
    /// Stops following and publishing, and gives the lease back: the node leaves every
    /// view at once (a graceful shutdown).
    pub async fn leave(self) {
        for t in &self.tasks {
            t.abort();
        }
        let lease = self.agent.inner.lease.load(Ordering::Relaxed);
        let _ = self.agent.inner.etcd.revoke(lease).await;
    }

    /// Stops everything without a word to etcd, as a crash would: the node's keys stay
    /// until its lease runs out.
    pub fn abandon(self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn claim_json(claim: &Claim) -> Vec<u8> {
    serde_json::to_vec(claim).expect("a claim serializes")
}

fn now_text() -> String {
    text(Utc::now())
}

/// A time as the cluster's keys write it: RFC 3339, to the second, UTC.
fn text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}
